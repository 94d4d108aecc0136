"""keras_compress.distillation: Distiller (temperature, ensembles, hints)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_compress.distillation import Distiller, Hint
from keras_compress.export import to_tflite
from keras_compress.runtime import LiteRTModel

CLASSES = 5


def dense_model(name, units=CLASSES, inputs=6, activation=None, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(units, activation=activation,
                                                    name=f"{name}_out")],
        name=name,
    )


def conv_model(name, widths, strides=(1, 2), seed=0):
    """A digits CNN whose conv layers are named `{name}_conv{i}`."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i, (width, stride) in enumerate(zip(widths, strides)):
        x = keras.layers.Conv2D(width, 3, strides=stride, padding="same",
                                activation="relu", name=f"{name}_conv{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name=f"{name}_out")(x), name=name)


class SubclassedStudent(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.out = keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.hidden(self.flatten(x)))


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def numpy_loss(s, teachers, y, temperature, alpha, sample_weight=None):
    """The docstring's formula, in float64."""
    s, teachers = s.astype("float64"), [t.astype("float64") for t in teachers]
    w = np.ones(len(s)) if sample_weight is None else sample_weight
    p = np.mean([softmax(t / temperature) for t in teachers], axis=0)
    kl = (p * (np.log(p) - log_softmax(s / temperature))).sum(-1)
    ce = -log_softmax(s)[np.arange(len(y)), y]
    return alpha * np.mean(w * ce) + (1 - alpha) * temperature**2 * np.mean(w * kl)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, CLASSES, 32)
    return x, y


@pytest.fixture(scope="module")
def trained_teacher(digits):
    """A digits CNN (16-32 channels) trained briefly."""
    (x, y), _ = digits
    teacher = conv_model("teacher", (16, 32), seed=1)
    teacher.compile(keras.optimizers.Adam(1e-2),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    steps_per_execution=8)
    teacher.fit(x, y, epochs=12, batch_size=64, verbose=0)
    return teacher


# The loss --------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_loss_matches_numpy_formula(batch, weighted):
    x, y = batch
    teachers = [dense_model(f"t{k}", seed=k + 1) for k in range(3)]
    student = dense_model("s", seed=7)
    distiller = Distiller(student, teachers, temperature=2.5, alpha=0.3)
    w = np.linspace(0.5, 2.0, len(x)).astype("float32") if weighted else None
    got = float(distiller.compute_loss(x, y, student(x), sample_weight=w,
                                       training=False))
    want = numpy_loss(np.asarray(student(x)), [np.asarray(t(x)) for t in teachers],
                      y, 2.5, 0.3, w)
    assert got == pytest.approx(want, rel=1e-5)
    # The two terms are logged separately.
    soft = float(distiller.soft_loss_tracker.result())
    hard = float(distiller.hard_loss_tracker.result())
    assert 0.3 * hard + 0.7 * soft == pytest.approx(want, rel=1e-5)


def test_single_teacher_matches_keras_distiller(batch):
    # Keras's own Distiller with an explicit KLDivergence instance computes
    # Hinton's loss too (its default "kl_divergence" string does not take
    # the softmax): the two agree.
    x, y = batch
    teacher, student = dense_model("t", seed=1), dense_model("s", seed=2)
    ours = Distiller(student, teacher, temperature=3.0, alpha=0.4)
    theirs = keras.distillation.Distiller(
        teacher=teacher, student=student, student_loss_weight=0.4,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=3.0, loss=keras.losses.KLDivergence()))
    theirs.compile(optimizer="adam",
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits = student(x)
    assert float(ours.compute_loss(x, y, logits, training=False)) == pytest.approx(
        float(theirs.compute_loss(x, y, logits)), rel=1e-5)


def test_ensemble_of_one_equals_single_teacher(batch):
    x, y = batch
    teacher = dense_model("t", seed=1)
    losses, weights = [], []
    for teachers in (teacher, [teacher], [teacher, teacher]):
        student = dense_model("s", seed=2)  # same initial weights each time
        distiller = Distiller(student, teachers, temperature=4.0, alpha=0.2)
        losses.append(np.asarray(distiller.compute_loss(x, y, student(x),
                                                        training=False)))
        distiller.compile(keras.optimizers.SGD(0.1))
        keras.utils.set_random_seed(0)
        distiller.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        weights.append(student.get_weights())
    np.testing.assert_array_equal(losses[0], losses[1])
    np.testing.assert_array_equal(losses[0], losses[2])
    for other in weights[1:]:
        for a, b in zip(weights[0], other):
            np.testing.assert_array_equal(a, b)


def test_ensemble_target_is_the_average_of_probabilities(batch):
    # Averaging probabilities is not averaging logits: with two teachers
    # the loss must match the probability average, not the logit one.
    x, y = batch
    t1, t2 = dense_model("t1", seed=1), dense_model("t2", seed=3)
    student = dense_model("s", seed=2)
    distiller = Distiller(student, [t1, t2], temperature=1.0, alpha=0.0)
    got = float(distiller.compute_loss(x, y, student(x), training=False))
    s, l1, l2 = (np.asarray(m(x)) for m in (student, t1, t2))
    assert got == pytest.approx(numpy_loss(s, [l1, l2], y, 1.0, 0.0), rel=1e-5)
    assert got != pytest.approx(numpy_loss(s, [(l1 + l2) / 2], y, 1.0, 0.0), rel=1e-3)


def test_temperature_squared_keeps_gradients_the_same_size(batch):
    x, y = batch
    teacher = dense_model("t", seed=1)
    t = np.asarray(teacher(x), "float64")
    s = np.random.default_rng(1).normal(size=t.shape)
    norms = {}
    for temperature in (1.0, 4.0, 20.0, 40.0):
        distiller = Distiller(dense_model("s"), teacher, temperature=temperature,
                              alpha=0.0)
        logits = tf.Variable(s.astype("float32"))
        with tf.GradientTape() as tape:
            loss = distiller.compute_loss(x, y, logits, training=False)
        grad = tape.gradient(loss, logits).numpy()
        # d/ds of T^2 * mean KL = T * (q - p) / batch, exactly.
        want = temperature * (softmax(s / temperature) - softmax(t / temperature)) / len(s)
        np.testing.assert_allclose(grad, want, atol=1e-6)
        norms[temperature] = np.linalg.norm(grad)
    # For large T the gradient tends to (centered s - centered t) / (C * batch),
    # whatever T; without the T^2 factor it would shrink 4x from T=20 to 40.
    assert norms[40.0] / norms[20.0] == pytest.approx(1.0, abs=0.02)
    centered = lambda z: z - z.mean(axis=-1, keepdims=True)  # noqa: E731
    limit = np.linalg.norm(centered(s) - centered(t)) / (CLASSES * len(s))
    assert norms[40.0] == pytest.approx(limit, rel=0.02)


def test_teacher_ending_in_softmax_is_detected(batch):
    x, y = batch
    logits_teacher = dense_model("t", seed=1)
    probs_teacher = dense_model("tp", activation="softmax", seed=1)
    probs_teacher.set_weights(logits_teacher.get_weights())
    student = dense_model("s", seed=2)
    values = [
        float(Distiller(student, t, temperature=3.0).compute_loss(
            x, y, student(x), training=False))
        for t in (logits_teacher, probs_teacher)
    ]
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    with pytest.raises(ValueError, match="Expected the student to output logits"):
        Distiller(dense_model("sp", activation="softmax"), logits_teacher)


# Training --------------------------------------------------------------------


@pytest.mark.slow
def test_distilled_student_reaches_accuracy_and_exports(digits, trained_teacher, tmp_path):
    (x, y), (x_test, y_test) = digits
    teacher_weights = [w.copy() for w in trained_teacher.get_weights()]
    teacher_acc = float((np.asarray(trained_teacher(x_test)).argmax(1) == y_test).mean())
    assert teacher_acc > 0.9

    keras.utils.set_random_seed(3)
    student = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10),
    ], name="student")
    assert student.count_params() < trained_teacher.count_params() / 4
    layer_names = [layer.name for layer in student.layers]
    distiller = Distiller(student, trained_teacher, temperature=2.0, alpha=0.5)
    distiller.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"],
                      steps_per_execution=8)
    history = distiller.fit(x, y, epochs=15, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]

    # Teachers are frozen and untouched.
    assert trained_teacher.trainable
    for a, b in zip(teacher_weights, trained_teacher.get_weights()):
        np.testing.assert_array_equal(a, b)

    # predict is the student's output; evaluate reports its accuracy.
    predicted = distiller.predict(x_test, verbose=0)
    np.testing.assert_allclose(predicted, student.predict(x_test, verbose=0), atol=1e-6)
    accuracy = float((predicted.argmax(1) == y_test).mean())
    assert accuracy > 0.9
    logs = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert set(logs) >= {"loss", "accuracy", "hard_loss", "soft_loss"}

    # The student is a plain model: same layers, saves, loads and exports.
    assert [layer.name for layer in student.layers] == layer_names
    path = tmp_path / "student.keras"
    student.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), predicted, atol=1e-5)
    tflite = to_tflite(student, path=tmp_path / "student.tflite")
    np.testing.assert_allclose(LiteRTModel(tflite).predict(x_test), predicted,
                               atol=1e-4)


@pytest.mark.slow
def test_hints_lower_the_hint_loss(digits, trained_teacher):
    (x, y), _ = digits
    student = conv_model("student", (4, 8), seed=3)
    params = student.count_params()
    hints = [Hint("student_conv0", "teacher_conv0"),
             ("student_conv1", "teacher_conv1", 0.5)]
    distiller = Distiller(student, trained_teacher, hints=hints)
    # One adapter per hint: Dense(4 -> 16) and Dense(8 -> 32).
    assert [a.count_params() for a in distiller.adapters] == [4 * 16 + 16, 8 * 32 + 32]
    distiller.compile(keras.optimizers.Adam(1e-2), steps_per_execution=8)
    history = distiller.fit(x, y, epochs=6, batch_size=64, verbose=0).history
    assert history["hint_loss"][-1] < 0.5 * history["hint_loss"][0]
    # The adapters train with the student but are not part of it.
    assert student.count_params() == params
    trainable = {id(v) for v in distiller.trainable_weights}
    assert all(id(v) in trainable for v in student.trainable_weights)
    assert all(id(v) in trainable for a in distiller.adapters for v in a.weights)
    assert not any(id(v) in trainable for v in trained_teacher.weights)


def test_subclassed_student(digits):
    (x, y), (x_test, y_test) = digits
    teacher = conv_model("teacher", (8, 8), seed=1)
    student = SubclassedStudent()
    distiller = Distiller(student, teacher, alpha=0.5)
    distiller.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"],
                      steps_per_execution=8)
    history = distiller.fit(x, y, epochs=3, batch_size=64, verbose=0).history
    assert history["hard_loss"][-1] < history["hard_loss"][0]
    predicted = distiller.predict(x_test[:16], verbose=0)
    assert predicted.shape == (16, 10)
    np.testing.assert_allclose(predicted, np.asarray(student(x_test[:16])), atol=1e-6)
    with pytest.raises(ValueError, match="Expected a Functional or Sequential student"):
        Distiller(SubclassedStudent(), teacher,
                  hints=[("hidden", "teacher_conv0")])


def test_config_round_trip_and_save(batch, tmp_path):
    x, y = batch
    student = conv_model("student", (4, 8), seed=3)
    teachers = [conv_model("teacher", (8, 16), seed=1),
                conv_model("teacher2", (8, 16), seed=2)]
    distiller = Distiller(student, teachers, temperature=2.0, alpha=0.25,
                          hints=[Hint("student_conv1", "teacher2_conv1", 2.0, teacher=1)])
    config = distiller.get_config()
    assert {k: config[k] for k in ("temperature", "alpha")} == {
        "temperature": 2.0, "alpha": 0.25}
    clone = Distiller.from_config(config)
    assert clone.hints == distiller.hints
    assert len(clone.teachers) == 2
    images = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
    distiller.compile("adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    distiller.fit(images, np.arange(8), epochs=1, verbose=0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, Distiller) and loaded.compiled
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               distiller.predict(images, verbose=0), atol=1e-6)
    np.testing.assert_allclose(
        float(loaded.compute_loss(images, np.arange(8), training=False)),
        float(distiller.compute_loss(images, np.arange(8), training=False)), rtol=1e-5)


# Bad input -------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0, -1.0, float("inf"), "4", True])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match=r"Expected `temperature` to be a finite number > 0\. "
                       r"Received: temperature="):
        Distiller(dense_model("s"), dense_model("t"), temperature=temperature)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, None])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"Expected `alpha` to be a number in \[0, 1\]"):
        Distiller(dense_model("s"), dense_model("t"), alpha=alpha)


def test_mismatched_teacher_output():
    student = dense_model("s")
    good, bad = dense_model("good"), dense_model("wide", units=CLASSES + 2)
    with pytest.raises(ValueError, match=r"Expected teacher 1 \('wide'\) to output the "
                       r"student's shape \(None, 5\)\. Received: teacher output shape "
                       r"\(None, 7\)"):
        Distiller(student, [good, bad])


def test_mismatched_subclassed_teacher_is_caught_at_the_first_step(batch):
    x, y = batch

    class Wide(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.out = keras.layers.Dense(CLASSES + 1)

        def call(self, x):
            return self.out(x)

    student = dense_model("s")
    before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student, Wide(name="wide"))
    distiller.compile("adam")
    with pytest.raises(ValueError, match=r"Expected teacher 0 \('wide'\) to output the "
                       r"student's shape"):
        distiller.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_teachers():
    student = dense_model("s")
    with pytest.raises(ValueError, match=r"Expected at least one teacher\. Received: teachers=\[\]"):
        Distiller(student, [])
    with pytest.raises(TypeError, match=r"Expected every teacher to be a keras\.Model\. "
                       r"Received: teachers\[1\] of type str"):
        Distiller(student, [dense_model("t"), "teacher"])
    with pytest.raises(ValueError, match="Expected teachers distinct from the student"):
        Distiller(student, student)
    with pytest.raises(TypeError, match="Expected `student` to be a keras.Model"):
        Distiller(None, dense_model("t"))


def test_hint_layers_not_found():
    student = conv_model("student", (4, 8))
    teacher = conv_model("teacher", (8, 16))
    with pytest.raises(ValueError, match=r"Expected `student_layer` to name a layer of the "
                       r"student 'student'\. Received: student_layer='conv9'\. Layers: "
                       r"\[.*'student_conv0', 'student_conv1'"):
        Distiller(student, teacher, hints=[("conv9", "teacher_conv0")])
    with pytest.raises(ValueError, match=r"Expected `teacher_layer` to name a layer of "
                       r"teacher 0 'teacher'\. Received: teacher_layer='nope'\. Layers: "
                       r"\[.*'teacher_conv1'"):
        Distiller(student, teacher, hints=[("student_conv0", "nope")])
    with pytest.raises(ValueError, match=r"Expected hint 0 `teacher` to index the 1 "
                       r"teacher\(s\)\. Received: teacher=2"):
        Distiller(student, teacher, hints=[Hint("student_conv0", "teacher_conv0", teacher=2)])


def test_hint_spatial_mismatch():
    student = conv_model("student", (4, 8), strides=(2, 2))
    teacher = conv_model("teacher", (8, 16))
    with pytest.raises(ValueError, match=r"same sizes on every axis but the batch and the "
                       r"last \(channels\) one\. Received: student layer 'student_conv0' "
                       r"output \(None, 4, 4, 4\), teacher layer 'teacher_conv0' output "
                       r"\(None, 8, 8, 8\)"):
        Distiller(student, teacher, hints=[("student_conv0", "teacher_conv0")])


def test_hints_with_subclassed_teacher():
    class Sub(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.flatten, self.out = keras.layers.Flatten(), keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.flatten(x))

    with pytest.raises(ValueError, match=r"Expected a Functional or Sequential teacher "
                       r"for hint 0\. Received: teacher 0 \('sub'"):
        Distiller(conv_model("student", (4, 8)), Sub(name="sub"),
                  hints=[("student_conv0", "flatten")])


def test_bad_hint_arguments():
    with pytest.raises(ValueError, match=r"Expected the hint `weight` to be a number >= 0\. "
                       r"Received: weight=-1"):
        Hint("a", "b", weight=-1)
    with pytest.raises(TypeError, match=r"Expected `student_layer` to be a layer name"):
        Hint(3, "b")
    with pytest.raises(TypeError, match=r"Expected each hint to be a Hint or a tuple"):
        Distiller(conv_model("student", (4, 8)), conv_model("teacher", (8, 16)),
                  hints=["student_conv0"])


def test_bad_compile_loss():
    distiller = Distiller(dense_model("s"), dense_model("t"))
    with pytest.raises(ValueError, match=r"Expected a loss on logits .* Received: "
                       r"loss='sparse_categorical_crossentropy'"):
        distiller.compile("adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="set from_logits=True"):
        distiller.compile("adam", loss=keras.losses.SparseCategoricalCrossentropy())
    assert not distiller.compiled
