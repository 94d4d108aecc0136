"""Early-exit networks: the head layer, building, training, inference, export."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_compress.analysis import summarize
from keras_compress.early_exit import EarlyExitResult
from keras_compress.early_exit import MultiExitTrainer
from keras_compress.early_exit import add_early_exits
from keras_compress.early_exit import compile_multi_exit
from keras_compress.early_exit import early_exit_predict
from keras_compress.early_exit import exit_macs
from keras_compress.early_exit import export_early_exit
from keras_compress.early_exit import multi_exit_loss
from keras_compress.early_exit import threshold_sweep
from keras_compress.layers.early_exit import EarlyExitHead
from keras_compress.runtime import EarlyExitRunner

from layer_test import run_layer_test


def _backbone(softmax=False, seed=0):
    """3 conv blocks on 8x8 digits, global pooling, Dense(10)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block0")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                            name="block1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="block2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(10, activation="softmax" if softmax else None,
                                 name="classifier")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


@pytest.fixture(scope="module")
def trained(digits):
    """A multi-exit digits CNN trained on the weighted exit losses."""
    (x_train, y_train), _ = digits
    backbone = _backbone()
    model = add_early_exits(backbone, ["block1", "block0"], head={"filters": 16})
    trainer = compile_multi_exit(model, keras.optimizers.Adam(1e-2),
                                 exit_weights=[0.5, 0.5, 1.0])
    keras.utils.set_random_seed(0)
    trainer.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
    return backbone, model


# --------------------------------------------------------------------------
# The head layer.


@pytest.mark.parametrize(
    "input_shape, kwargs",
    [
        ((12, 5), {"filters": 4}),                                   # (batch, steps, ch)
        ((6, 6, 3), {"filters": 4, "hidden_units": 8, "dropout": 0.2}),  # (batch, h, w, ch)
        ((7,), {"filters": 3, "activation": "softmax"}),            # (batch, features)
        ((6, 6, 3), {"pooling": "max"}),
        ((6, 6, 3), {"grid": 2}),                                   # 2x2 cells, flattened
        ((12, 5), {"filters": 4, "grid": 3, "hidden_units": 6}),    # 3 cells of 4 steps
    ],
)
def test_head_layer_helper(input_shape, kwargs):
    model = run_layer_test(EarlyExitHead, {"num_classes": 5, **kwargs}, input_shape,
                           expected_output_shape=(5,))
    # Exact parameters and MACs (summarize sees the head's sublayers).
    ch = input_shape[-1]
    positions = int(np.prod(input_shape[:-1]))
    width = kwargs.get("filters", ch)
    params = macs = 0
    if "filters" in kwargs:
        params += ch * width + width
        macs += positions * ch * width
    if len(input_shape) > 1:
        macs += positions * width                    # global pooling, or into cells
        width *= kwargs.get("grid", 1) ** (len(input_shape) - 1)    # cells, flattened
    hidden = kwargs.get("hidden_units")
    if hidden:
        params += width * hidden + hidden
        macs += width * hidden
        width = hidden
    params += width * 5 + 5
    macs += width * 5
    totals = summarize(model).totals
    assert (totals.params, totals.macs) == (params, macs)


def test_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Expected `num_classes` to be an int >= 2"):
        EarlyExitHead(1)
    with pytest.raises(ValueError, match="Expected `activation` to be one of"):
        EarlyExitHead(10, activation="sigmoid")
    with pytest.raises(ValueError, match="Expected `pooling`"):
        EarlyExitHead(10, pooling="sum")
    with pytest.raises(ValueError, match="Expected `grid` to be an int >= 1"):
        EarlyExitHead(10, grid=0)
    with pytest.raises(ValueError, match="grid=2 expected known steps"):
        EarlyExitHead(10, grid=2).build((None, None, None, 3))
    with pytest.raises(ValueError, match=r"expected an input of rank 2.*Received"):
        EarlyExitHead(10)(np.zeros((1, 2, 2, 2, 2), "float32"))


# --------------------------------------------------------------------------
# Building.


def test_build_orders_exits_copies_backbone_and_saves(tmp_path, digits):
    _, (x_test, _) = digits
    backbone = _backbone(softmax=True)
    before = backbone.predict(x_test[:16], verbose=0)
    model = add_early_exits(backbone, ["block1", "block0"])
    assert [type(model.get_layer(f"exit_{j}")).__name__ for j in range(2)] == [
        "EarlyExitHead", "EarlyExitHead"]
    # Exits ordered from the input: exit_0 on block0 (8x8x8), exit_1 on
    # block1 (4x4x16); the default head pools to 4x4 cells.
    assert model.get_layer("exit_0").grid == 4
    assert model.get_layer("exit_0").classifier.kernel.shape == (16 * 8, 10)
    assert model.get_layer("exit_1").classifier.kernel.shape == (16 * 16, 10)
    # A softmax backbone gets softmax heads.
    assert model.get_layer("exit_0").activation == "softmax"
    outputs = model.predict(x_test[:16], verbose=0)
    assert len(outputs) == 3
    np.testing.assert_allclose(outputs[-1], before, atol=1e-6)
    for out in outputs:
        np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    # The backbone is copied, not changed: training the copy leaves it alone.
    assert all(layer not in backbone.layers for layer in model.layers)
    assert backbone.get_layer("block1").output.shape == (None, 4, 4, 16)
    path = tmp_path / "multi.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(loaded.predict(x_test[:16], verbose=0), outputs):
        np.testing.assert_array_equal(a, b)


def test_freeze_backbone_trains_only_the_heads(digits):
    (x_train, y_train), (x_test, _) = digits
    backbone = _backbone()
    model = add_early_exits(backbone, ["block0", "block1"], freeze_backbone=True)
    heads = [model.get_layer("exit_0"), model.get_layer("exit_1")]
    head_ids = {id(w) for h in heads for w in h.weights}
    frozen = [w for w in model.weights if id(w) not in head_ids]
    before = [np.array(w) for w in frozen]
    head_before = [np.array(w) for h in heads for w in h.trainable_weights]
    assert len(model.trainable_weights) == len(head_before)
    compile_multi_exit(model, keras.optimizers.Adam(1e-2)).fit(
        x_train[:256], y_train[:256], epochs=1, verbose=0)
    for w, b in zip(frozen, before):
        np.testing.assert_array_equal(np.array(w), b)
    after = [np.array(w) for h in heads for w in h.trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(after, head_before))
    # The final exit is the backbone, exactly.
    np.testing.assert_allclose(model.predict(x_test[:32], verbose=0)[-1],
                               backbone.predict(x_test[:32], verbose=0), atol=1e-6)
    with pytest.raises(TypeError, match="Received: freeze_backbone='yes'"):
        add_early_exits(backbone, ["block0"], freeze_backbone="yes")

def test_build_rejects_bad_exit_points():
    backbone = _backbone()
    with pytest.raises(ValueError, match=r"among the layers of the backbone: \['block0'"):
        add_early_exits(backbone, ["block9"])
    with pytest.raises(ValueError, match="Expected distinct exit points"):
        add_early_exits(backbone, ["block0", "block0"])
    with pytest.raises(ValueError, match="before the output layer.*'classifier'"):
        add_early_exits(backbone, ["classifier"])
    with pytest.raises(ValueError, match="between the input and the output"):
        add_early_exits(backbone, [backbone.layers[0].name])
    with pytest.raises(ValueError, match="at least one layer"):
        add_early_exits(backbone, [])
    # A layer inside a residual branch is not on every path to the output.
    inputs = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="branch")(a)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    residual = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(ValueError, match="every path from the input.*'branch'"):
        add_early_exits(residual, ["branch"])
    assert len(add_early_exits(residual, ["add", "stem"]).outputs) == 3


# --------------------------------------------------------------------------
# Training loss.


def _numpy_loss(y, outputs, weights, temperature=None, alpha=None):
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    outputs = [np.asarray(o, np.float64) for o in outputs]
    rows = np.arange(len(y))
    total = 0.0
    for j, z in enumerate(outputs):
        ce = -log_softmax(z)[rows, y].mean()
        if temperature is None or j == len(outputs) - 1:
            total += weights[j] * ce
            continue
        teacher = log_softmax(outputs[-1] / temperature)
        student = log_softmax(z / temperature)
        kl = (np.exp(teacher) * (teacher - student)).sum(-1).mean()
        total += weights[j] * ((1 - alpha) * ce + alpha * temperature ** 2 * kl)
    return total


def test_loss_equals_its_formula(digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    model = add_early_exits(_backbone(seed=3), ["block0", "block1"], head={"hidden_units": 8})
    outputs = [np.asarray(o) for o in model(x, training=False)]
    weights = [0.3, 0.6, 1.0]

    # Without distillation: the formula, and Keras's own multi-output loss.
    trainer = compile_multi_exit(model, "sgd", exit_weights=weights)
    want = _numpy_loss(y, outputs, weights)
    got = float(trainer.compute_loss(y=y, y_pred=model(x, training=False)))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    model.compile(loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True)] * 3,
                  loss_weights=weights)
    keras_loss = model.evaluate(x, [y] * 3, batch_size=64, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(keras_loss, want, rtol=1e-5)

    # With distillation (T = 3, alpha = 0.4), through evaluate.
    trainer = compile_multi_exit(model, "sgd", exit_weights=weights,
                                 distillation={"temperature": 3.0, "alpha": 0.4})
    want = _numpy_loss(y, outputs, weights, temperature=3.0, alpha=0.4)
    got = trainer.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert want > _numpy_loss(y, outputs, [0.3 * 0.6, 0.6 * 0.6, 1.0])  # KL term counts

    # Probabilities in, same loss (log of the softmax is the logits up to a shift).
    probs = [keras.ops.softmax(o) for o in model(x, training=False)]
    got = float(multi_exit_loss(y, probs, weights, [True] * 3,
                                {"temperature": 3.0, "alpha": 0.4}))
    np.testing.assert_allclose(got, want, rtol=1e-4)

    # Stop-gradient on the teacher: with only distillation terms, the final
    # classifier gets no gradient.
    only_kd = MultiExitTrainer(model, exit_weights=[1.0, 1.0, 0.0],
                               distillation={"temperature": 2.0, "alpha": 1.0})
    final_kernel = model.get_layer("classifier").kernel
    head_kernel = model.get_layer("exit_0").classifier.kernel
    with tf.GradientTape() as tape:
        loss = only_kd.compute_loss(y=y, y_pred=model(x, training=True))
    g_final, g_head = tape.gradient(loss, [final_kernel.value, head_kernel.value])
    assert g_final is None or float(tf.reduce_max(tf.abs(g_final))) == 0.0
    assert float(tf.reduce_max(tf.abs(g_head))) > 0.0


def test_training_reaches_accuracy_floor(trained, digits):
    _, model = trained
    _, (x_test, y_test) = digits
    sweep = threshold_sweep(model, x_test, y_test, [0.9])
    assert sweep.full_accuracy > 0.85
    assert sweep.exit_accuracies[1] > 0.6


# --------------------------------------------------------------------------
# Inference and MACs.


def test_mac_accounting_is_exact(trained, digits):
    backbone, model = trained
    _, (x_test, _) = digits
    costs = exit_macs(model)
    full = summarize(model).totals.macs
    assert costs["cumulative"][-1] == full
    assert costs["backbone_total"] == summarize(backbone).totals.macs
    assert costs["model_total"] - costs["backbone_total"] == sum(costs["head"])
    # Stage 0: block0 (8*8*9*1*8) + head 0 (1x1 conv 8->16, pool, Dense 16->10).
    assert costs["stage"][0] == 64 * 9 * 8 + (64 * 8 * 16 + 64 * 16 + 16 * 10)
    # Every sample leaves at the last exit: each pays the whole model.
    result = early_exit_predict(model, x_test, threshold=1.0)
    assert np.all(result.exits == 2)
    assert np.all(result.macs == full)
    # Every sample leaves at the first exit: block0 + head 0 only.
    result = early_exit_predict(model, x_test, threshold=0.0)
    assert np.all(result.exits == 0)
    assert np.all(result.macs == costs["stage"][0])


def test_higher_threshold_never_exits_earlier(trained, digits):
    _, model = trained
    _, (x_test, y_test) = digits
    thresholds = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0]
    sweep = threshold_sweep(model, x_test, y_test, thresholds)
    mean_exit = [r["mean_exit"] for r in sweep.rows]
    mean_macs = [r["mean_macs"] for r in sweep.rows]
    assert all(a <= b for a, b in zip(mean_exit, mean_exit[1:])), mean_exit
    assert all(a <= b for a, b in zip(mean_macs, mean_macs[1:])), mean_macs
    assert sweep.rows[0]["exit_fractions"][-1] < 0.5    # low threshold: most leave early
    assert sweep.rows[0]["mac_reduction"] > 1.3
    assert sweep.rows[-1]["exit_fractions"][-1] == 1.0  # threshold 1: all go to the end
    assert mean_macs[-1] > mean_macs[0]
    # Per sample, too.
    low = early_exit_predict(model, x_test, threshold=0.7)
    high = early_exit_predict(model, x_test, threshold=0.95)
    assert np.all(high.exits >= low.exits) and np.all(high.macs >= low.macs)
    # Entropy: a larger threshold accepts more uncertainty, so exits earlier.
    entropy = threshold_sweep(model, x_test, y_test, [0.05, 0.2, 0.5], criterion="entropy")
    exits = [r["mean_exit"] for r in entropy.rows]
    assert exits[0] >= exits[1] >= exits[2]
    text = str(sweep)
    assert "threshold" in text and "0.95" in text
    assert sweep.best(0.01)["accuracy"] >= sweep.full_accuracy - 0.01


def test_runner_takes_the_keras_decisions(trained, digits, tmp_path):
    _, model = trained
    _, (x_test, _) = digits
    # Thresholds away from ties: float32 LiteRT and Keras logits differ by
    # ~1e-6, so a sample whose confidence is within 1e-4 of the threshold at
    # some exit could go either way. Take the first candidate threshold
    # with no sample that close, then require identical decisions.
    probs = [keras.ops.convert_to_numpy(keras.ops.softmax(o))
             for o in model.predict(x_test, verbose=0)[:2]]
    for threshold in (0.6, 0.55, 0.65, 0.5, 0.7):
        if all(np.min(np.abs(p.max(-1) - threshold)) > 1e-4 for p in probs):
            break
    else:
        pytest.fail("no candidate threshold is away from ties")
    folder = tmp_path / "chain"
    chain = export_early_exit(model, folder, threshold=threshold)
    assert sorted(os.listdir(folder)) == [
        "chain.json", "stage_0.tflite", "stage_1.tflite", "stage_2.tflite"]
    assert json.loads((folder / "chain.json").read_text()) == chain
    assert [s["cumulative_macs"] for s in chain["stages"]] == exit_macs(model)["cumulative"]
    runner = EarlyExitRunner(folder)
    want = early_exit_predict(model, x_test, threshold=threshold)
    got = runner.predict(x_test)
    assert isinstance(got, EarlyExitResult)
    assert 0.05 < np.mean(want.exits < 2) < 0.95     # both paths exercised
    np.testing.assert_array_equal(got.exits, want.exits)
    np.testing.assert_array_equal(got.predictions, want.predictions)
    np.testing.assert_array_equal(got.macs, want.macs)
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-4)
    one = [runner.predict_one(sample) for sample in x_test[:60]]
    assert [p for p, _ in one] == want.predictions[:60].tolist()
    assert [e for _, e in one] == want.exits[:60].tolist()
    # A second export into the non-empty folder needs overwrite=True, and a
    # refused export leaves the folder as it was, with no temporary folder.
    with pytest.raises(ValueError, match="not exist or be empty"):
        export_early_exit(model, folder)
    assert sorted(os.listdir(tmp_path)) == ["chain"]
    assert json.loads((folder / "chain.json").read_text()) == chain


def test_bad_inference_arguments(trained, digits):
    _, model = trained
    _, (x_test, y_test) = digits
    x = x_test[:4]
    with pytest.raises(ValueError, match=r"Expected `threshold` in \[0, 1\].*threshold=1.5"):
        early_exit_predict(model, x, threshold=1.5)
    with pytest.raises(ValueError, match=r"Expected `threshold` in \[0, 1\]"):
        early_exit_predict(model, x, threshold=-0.1, criterion="entropy")
    with pytest.raises(ValueError, match="one per early exit"):
        early_exit_predict(model, x, threshold=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"Expected `criterion` to be one of \['max_prob', "
                                         r"'entropy'\]. Received: criterion='margin'"):
        early_exit_predict(model, x, threshold=0.5, criterion="margin")
    with pytest.raises(ValueError, match="Expected `criterion`"):
        threshold_sweep(model, x, y_test[:4], [0.5], criterion="margin")
    with pytest.raises(ValueError, match="multi-exit model with at least 2 outputs"):
        early_exit_predict(_backbone(), x, threshold=0.5)
    with pytest.raises(ValueError, match="exit_weights"):
        compile_multi_exit(model, exit_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="temperature"):
        compile_multi_exit(model, distillation={"temperature": 0.0, "alpha": 0.5})


def test_sequential_backbone_callable_head_and_int8_chain(digits, tmp_path):
    (x_train, y_train), (x_test, _) = digits
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="c0"),
        keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])

    def head(index, shape):
        assert shape == (None, 6, 6, 8)
        return keras.Sequential([keras.layers.Flatten(),
                                 keras.layers.Dense(10, activation="softmax")],
                                name=f"my_head_{index}")

    model = add_early_exits(backbone, ["c0"], head=[head])
    assert model.output_names == ["my_head_0", "out"]
    trainer = compile_multi_exit(model, keras.optimizers.Adam(1e-2),
                                 distillation={"temperature": 2.0, "alpha": 0.5})
    config = trainer.get_config()
    assert MultiExitTrainer.from_config(config).distillation == {
        "temperature": 2.0, "alpha": 0.5}
    trainer.fit(x_train, y_train, epochs=2, batch_size=128, verbose=0)
    keras_result = early_exit_predict(model, x_test, threshold=0.8)
    assert exit_macs(model)["stage"][0] == 36 * 9 * 8 + 288 * 10
    chain = export_early_exit(model, tmp_path / "int8", threshold=0.8, quantize="int8",
                              representative_data=x_train[:100], batch_size=1)
    assert chain["quantize"] == "int8" and chain["stages"][1]["feature"] is None
    runner = EarlyExitRunner(tmp_path / "int8")
    result = runner.predict(x_test)
    # int8 scores move a little: most decisions agree with float Keras.
    assert np.mean(result.exits == keras_result.exits) > 0.9
    assert np.mean(result.predictions == keras_result.predictions) > 0.9
    with pytest.raises(ValueError, match="representative_data"):
        export_early_exit(model, tmp_path / "x", quantize="int8")
    assert not (tmp_path / "x").exists()
