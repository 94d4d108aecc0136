"""MagnitudePruning and the mask helpers, on real training."""

import csv
import warnings

import keras
import numpy as np
import pytest

from keras_compress import analysis, export
from keras_compress.callbacks import MagnitudePruning
from keras_compress.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    PruningMask,
    get_masks,
    set_masks,
    strip_pruning,
)

BATCH = 64


def _compile(model, optimizer="adam"):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def cnn(name="cnn"):
    """Every built-in prunable layer kind, in a Functional model."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = L.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = L.SeparableConv2D(8, 3, padding="same", activation="relu", name="separable")(x)
    x = L.Conv2DTranspose(8, 3, padding="same", name="transpose")(x)
    x = L.Reshape((64, 8))(x)
    x = L.Conv1D(8, 3, name="conv1d")(x)
    x = L.Flatten()(x)
    x = L.EinsumDense("ab,bc->ac", output_shape=32, name="einsum")(x)
    outputs = L.Dense(10, name="logits")(x)
    return _compile(keras.Model(inputs, outputs, name=name))


def steps(x, epochs):
    return epochs * int(np.ceil(len(x) / BATCH))


def zeros(variable):
    return int((keras.ops.convert_to_numpy(variable) == 0).sum())


def test_every_selected_weight_reaches_the_target(digits):
    (x, y), (x_test, y_test) = digits
    model = cnn()
    end = steps(x, 3)
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=end, frequency=10)
    history = model.fit(x, y, epochs=3, batch_size=BATCH, verbose=0,
                        callbacks=[MagnitudePruning(schedule)])
    assert int(model.optimizer.iterations) == end
    pruned = 0
    for layer in model.layers:
        for v in layer.trainable_weights:
            if v.name == "bias":
                assert zeros(v) < 3  # biases are never pruned
                continue
            assert zeros(v) == round(np.float32(0.8) * np.prod(v.shape)), v.path
            pruned += 1
    assert pruned == 8  # separable has two kernels
    assert history.history["sparsity/separable/pointwise_kernel"][-1] == pytest.approx(0.8, abs=1 / 64)
    assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=1e-3)


def test_pruned_accuracy_close_to_dense(digits):
    (x, y), (x_test, y_test) = digits
    accuracy = {}
    for name in ("dense", "pruned"):
        keras.utils.set_random_seed(0)
        model = _compile(keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]), keras.optimizers.Adam(3e-3))
        schedule = PolynomialDecay(0.0, 0.8, 0, steps(x, 6), frequency=20)
        callbacks = [MagnitudePruning(schedule)] if name == "pruned" else []
        model.fit(x, y, epochs=8, batch_size=BATCH, verbose=0, callbacks=callbacks)
        accuracy[name] = model.evaluate(x_test, y_test, verbose=0)[1]
    assert accuracy["dense"] > 0.93
    assert accuracy["pruned"] > accuracy["dense"] - 0.03


def test_global_scope_hits_the_total_and_layers_differ(digits):
    (x, y), _ = digits
    model = cnn()
    callback = MagnitudePruning(
        ConstantSparsity(0.7, begin_step=steps(x, 1), end_step=steps(x, 2)),
        scope="global",
    )
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[callback])
    masks = get_masks(model)
    total = sum(m.size for m in masks.values())
    pruned = sum(int((m == 0).sum()) for m in masks.values())
    assert abs(pruned - round(np.float32(0.7) * total)) <= 1
    per_layer = {k: float((m == 0).mean()) for k, m in masks.items()}
    assert max(per_layer.values()) - min(per_layer.values()) > 0.1
    for item_key, mask in masks.items():  # weights follow their masks
        layer, weight = item_key.split("/")
        value = getattr(model.get_layer(layer), weight)
        assert np.all(keras.ops.convert_to_numpy(value)[mask == 0] == 0)


def test_n_out_of_m_pattern_holds_in_every_group(digits):
    (x, y), _ = digits
    model = cnn()
    callback = MagnitudePruning(
        PolynomialDecay(0.0, 0.5, 0, steps(x, 2), frequency=5),
        granularity="2:4", skip_first=True, layers=r"(?!depthwise).*",
    )
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[callback])
    axes = {"separable": -2, "transpose": -1, "conv1d": -2, "einsum": 0, "logits": 0}
    for item in callback.items:
        kernel = keras.ops.convert_to_numpy(item.variable)
        axis = axes[item.layer.name]
        groups = np.moveaxis(kernel, axis, -1).reshape(-1, 4)
        assert np.all((groups != 0).sum(axis=1) == 2), item.variable.path
    names = {item.layer.name for item in callback.items}
    assert "conv" not in names and "depthwise" not in names
    assert zeros(model.get_layer("conv").kernel) == 0


@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.Adam(1e-2),
     lambda: keras.optimizers.SGD(0.05, momentum=0.9)],
    ids=["adam", "sgd_momentum"],
)
def test_pruned_weights_stay_zero_in_later_training(digits, optimizer):
    (x, y), _ = digits
    model = _compile(cnn(), optimizer())
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(0.6)])
    masks = get_masks(model)
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)  # no callback
    after = get_masks(model)
    for key, mask in masks.items():
        np.testing.assert_array_equal(after[key], mask)
        layer, weight = key.split("/")
        value = keras.ops.convert_to_numpy(getattr(model.get_layer(layer), weight))
        assert np.all(value[mask == 0] == 0)
        assert np.count_nonzero(value) == np.count_nonzero(mask)


def test_unselected_layers_are_untouched(digits):
    (x, y), _ = digits
    model = cnn()
    before = {v.path: v.numpy().copy() for v in model.get_layer("conv").weights}
    callback = MagnitudePruning(0.5, layers=["logits", "einsum"])
    model.fit(x[:64], y[:64], epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[callback])
    assert [item.layer.name for item in callback.items] == ["einsum", "logits"]
    assert model.get_layer("conv").kernel.constraint is None
    assert model.get_layer("conv").kernel_constraint is None
    # The conv layer trained normally (one step) but kept every weight.
    assert zeros(model.get_layer("conv").kernel) == 0
    assert not np.array_equal(model.get_layer("conv").kernel.numpy(),
                              before[model.get_layer("conv").kernel.path])


class Residual(keras.Model):
    """A subclassed model holding a nested Sequential block."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = keras.Sequential(
            [keras.layers.Dense(32, activation="relu", name="inner_a"),
             keras.layers.Dense(64, name="inner_b")], name="block")
        self.flatten = keras.layers.Flatten()
        self.head = keras.layers.Dense(10, name="head")

    def call(self, x):
        x = self.flatten(x)
        return self.head(x + self.block(x))


def test_subclassed_model_with_nested_block(digits):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    # Named: Keras numbers auto-named models, and other tests make models too.
    model = _compile(Residual(name="residual"))
    with pytest.raises(ValueError, match="model 'residual' has not created its weights"):
        model.fit(x[:64], y[:64], verbose=0, callbacks=[MagnitudePruning(0.5)])
    model(x[:1])
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(ConstantSparsity(0.9, frequency=10))])
    for layer in (model.block.layers[0], model.block.layers[1], model.head):
        assert zeros(layer.kernel) == round(np.float32(0.9) * layer.kernel.numpy().size)


def test_nested_functional_model(digits):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    inner = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="inner_conv"),
         keras.layers.Flatten()], name="backbone")
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(10, name="outer")(inner(inputs))
    model = _compile(keras.Model(inputs, outputs))
    callback = MagnitudePruning(0.5, layers="inner_.*")
    model.fit(x[:128], y[:128], epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[callback])
    assert zeros(inner.layers[0].kernel) == 36
    assert zeros(model.get_layer("outer").kernel) == 0


class Gate(keras.layers.Layer):
    """A custom layer that declares its prunable weight."""

    def build(self, input_shape):
        self.gate = self.add_weight(shape=(input_shape[-1], 10), name="gate")

    def call(self, x):
        return keras.ops.matmul(x, self.gate)

    def get_prunable_weights(self):
        return [self.gate]


def test_custom_layer_with_get_prunable_weights(digits):
    (x, y), _ = digits
    model = _compile(keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), Gate(name="gate")]))
    model.fit(x[:128], y[:128], epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(0.75)])
    assert zeros(model.layers[-1].gate) == 480


def test_sparsity_reaches_csv_logger(digits, tmp_path):
    (x, y), _ = digits
    path = tmp_path / "log.csv"
    model = cnn()
    model.fit(x[:128], y[:128], epochs=2, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(0.5), keras.callbacks.CSVLogger(str(path))])
    rows = list(csv.DictReader(open(path)))
    assert float(rows[-1]["sparsity/logits"]) == pytest.approx(0.5)
    assert float(rows[-1]["sparsity"]) == pytest.approx(0.5, abs=1e-3)


def test_keras_round_trip_with_safe_mode(digits, tmp_path):
    (x, y), (x_test, _) = digits
    model = cnn()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(ConstantSparsity(0.7, frequency=5))])
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("logits").kernel_constraint, PruningMask)
    before, after = get_masks(model), get_masks(loaded)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0),
                               model.predict(x_test, verbose=0), atol=1e-6)
    loaded.fit(x[:128], y[:128], epochs=1, verbose=0)  # masks still hold
    for key, mask in get_masks(loaded).items():
        layer, weight = key.split("/")
        value = getattr(loaded.get_layer(layer), weight).numpy()
        assert np.all(value[mask == 0] == 0)


def test_strip_leaves_a_plain_sparse_model(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    model = cnn()
    model.get_layer("logits").kernel_constraint = None
    model.fit(x, y, epochs=3, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(PolynomialDecay(0.0, 0.9, 0, steps(x, 2)))])
    dense_bytes = export.to_tflite(model)
    out = strip_pruning(model)
    assert out is model
    assert get_masks(model) == {}
    config = str(model.get_config())
    assert "keras_compress" not in config
    assert zeros(model.get_layer("einsum").kernel) == round(np.float32(0.9) * 496 * 32)
    path = str(tmp_path / "plain.keras")
    model.save(path)
    assert keras.saving.load_model(path).get_layer("logits").kernel_constraint is None
    sparse_bytes = export.to_tflite(model, sparse=True)
    assert len(sparse_bytes) < 0.5 * len(dense_bytes)
    summary = analysis.summarize(sparse_bytes)
    assert summary.file_bytes == len(sparse_bytes)
    assert 0 < summary.gzip_bytes < summary.file_bytes
    # Zeros also gzip well in the dense layout, but not as well.
    assert summary.gzip_bytes < analysis.summarize(dense_bytes).gzip_bytes


def test_rewind_step_resets_survivors(digits):
    (x, y), _ = digits
    model = cnn()
    initial = {v.path: v.numpy().copy() for v in model.trainable_weights}
    end = steps(x[:256], 2)
    callback = MagnitudePruning(ConstantSparsity(0.5, begin_step=2, end_step=end),
                                rewind_step=0)
    model.fit(x[:256], y[:256], epochs=2, batch_size=BATCH, verbose=0,
              callbacks=[callback])
    for item, pm in zip(callback.items, callback.masks):
        mask = pm.mask.numpy()
        np.testing.assert_array_equal(item.variable.numpy(),
                                      initial[item.variable.path] * mask)
    # Biases are not rewound: they trained.
    bias = model.get_layer("logits").bias
    assert not np.array_equal(bias.numpy(), initial[bias.path])


def test_set_masks_fixes_a_pattern(digits):
    (x, y), _ = digits
    model = cnn()
    rng = np.random.default_rng(0)
    mask = (rng.random((32, 10)) < 0.3).astype("float32")
    set_masks(model, {"logits/kernel": mask})
    model.fit(x[:128], y[:128], epochs=1, verbose=0)
    kernel = model.get_layer("logits").kernel.numpy()
    assert np.all(kernel[mask == 0] == 0) and np.all(kernel[mask == 1] != 0)
    with pytest.raises(ValueError, match="shape"):
        set_masks(model, {"logits/kernel": mask[:3]})
    with pytest.raises(ValueError, match="unknown keys: \\['nope/kernel'\\]"):
        set_masks(model, {"nope/kernel": mask})


def _fit(model, callback, x, y):
    model.fit(x[:64], y[:64], epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[callback])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(schedule=1.0), r"target_sparsity=1\.0"),
        (dict(schedule=0.5, granularity="4:2"), "granularity='4:2'"),
        (dict(schedule=0.5, granularity="2-4"), "granularity='2-4'"),
        (dict(schedule=0.6, granularity="2:4"), "ending at sparsity 0.5"),
        (dict(schedule=0.5, granularity="2:4", scope="global"), "scope='layer'"),
        (dict(schedule=0.5, scope="model"), "scope='model'"),
        (dict(schedule=0.5, rewind_step=10), "rewind_step=10, end_step=-1"),
        (dict(schedule=0.5, rewind_step=-1), "rewind_step=-1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MagnitudePruning(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(schedule=0.5, granularity="2:4"),
         r"layer 'conv' weight 'kernel' to be a multiple of M=4.*\(3, 3, 1, 8\)"),
        (dict(schedule=0.5, layers=["logits", "missing"]), r"not found: \['missing'\]"),
        (dict(schedule=0.5, layers="dense_.*"), r"layers='dense_\.\*'"),
        (dict(schedule=0.5, layers="("), "valid regular expression"),
        (dict(schedule=0.5, layers=lambda layer: False), "at least one prunable layer"),
    ],
)
def test_bad_selection(digits, kwargs, match):
    (x, y), _ = digits
    model = cnn()
    with pytest.raises(ValueError, match=match):
        _fit(model, MagnitudePruning(**kwargs), x, y)
    # Nothing was attached to the model by the failed call.
    assert get_masks(model) == {}


def test_model_without_prunable_weights(digits):
    (x, y), _ = digits
    model = _compile(keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(),
         keras.layers.BatchNormalization(name="bn")], name="no_kernels"))
    with pytest.raises(ValueError, match="model 'no_kernels' to have at least one prunable"):
        _fit(model, MagnitudePruning(0.5), x, y)


def test_resume_with_backup_and_restore(digits, tmp_path):
    (x, y), _ = digits
    x, y = x[:512], y[:512]

    def build():
        keras.utils.set_random_seed(0)
        return _compile(keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="c"),
             keras.layers.Flatten(), keras.layers.Dense(10, name="d")]))

    def pruning():
        return MagnitudePruning(PolynomialDecay(0.0, 0.9, 0, steps(x, 4), frequency=3))

    model = build()
    model.fit(x, y, epochs=4, batch_size=BATCH, shuffle=False, verbose=0,
              callbacks=[pruning()])
    expected = get_masks(model)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("preempted")

    backup = str(tmp_path / "backup")
    model = build()
    with pytest.raises(RuntimeError, match="preempted"):
        model.fit(x, y, epochs=4, batch_size=BATCH, shuffle=False, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup), pruning(), Crash()])
    model = build()  # a new process would start from scratch like this
    history = model.fit(x, y, epochs=4, batch_size=BATCH, shuffle=False, verbose=0,
                        callbacks=[keras.callbacks.BackupAndRestore(backup), pruning()])
    assert len(history.history["loss"]) == 2  # resumed at epoch 2
    assert int(model.optimizer.iterations) == steps(x, 4)
    resumed = get_masks(model)
    for key in expected:
        np.testing.assert_array_equal(resumed[key], expected[key])
        assert (resumed[key] == 0).mean() == pytest.approx(0.9, abs=0.02)


def test_composes_with_the_layers_own_constraint(digits, tmp_path):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = _compile(keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(10, kernel_constraint="non_neg", name="dense")]))
    params = analysis.summarize(model).totals.params
    model.fit(x[:256], y[:256], epochs=2, verbose=0,
              callbacks=[MagnitudePruning(ConstantSparsity(0.5, frequency=2))])
    kernel = model.get_layer("dense").kernel.numpy()
    assert kernel.min() >= 0 and zeros(model.get_layer("dense").kernel) >= 320
    assert get_masks(model)["dense/kernel"].mean() == 0.5
    # Masks are not layer weights: the parameter count is unchanged.
    assert analysis.summarize(model).totals.params == params
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inner = loaded.get_layer("dense").kernel_constraint.constraint
    assert type(inner).__name__ == "NonNeg"
    strip_pruning(loaded)
    assert type(loaded.get_layer("dense").kernel_constraint).__name__ == "NonNeg"


def test_warns_when_the_schedule_ended_before_this_fit():
    # Schedules count optimizer.iterations: fine-tuning with the optimizer
    # that trained the model, a schedule starting at 0 is already over.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)  # 8 steps
    late = MagnitudePruning(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=4, frequency=1))
    with pytest.warns(UserWarning, match="already taken 8 steps.*begin_step=8"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[late])
    assert (np.asarray(model.layers[0].kernel) == 0).sum() == 0  # nothing pruned
    on_time = MagnitudePruning(PolynomialDecay(0.0, 0.5, begin_step=12, end_step=16, frequency=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[on_time])
    assert not [w for w in caught if "MagnitudePruning" in str(w.message)]
    kernel = np.asarray(model.layers[0].kernel)
    assert (kernel == 0).sum() == 8
