"""Factorized layers and the converters that build them from trained models.

`DepthwiseSeparableConv2D`, `LowRankDense`, `LowRankConv2D` (through the
shared layer helper, exact parameter and MAC formulas, config round trips,
TFLite operators) and `factorize` / `to_depthwise_separable` (exactness
where the factorization is exact, report numbers, accuracy after
fine-tuning on real data, errors).
"""

import inspect
import os

import keras
import numpy as np
import pytest

from keras_compress import export
from keras_compress.analysis import summarize
from keras_compress.factorization import FactorizationReport
from keras_compress.factorization import factorize
from keras_compress.factorization import to_depthwise_separable
from keras_compress.layers.factorized import DepthwiseSeparableConv2D
from keras_compress.layers.factorized import LowRankConv2D
from keras_compress.layers.factorized import LowRankDense
from layer_test import run_layer_test

L = keras.layers
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _compile(model, lr, steps=23):
    """Adam, cross-entropy, accuracy; one compiled call per epoch of 1437
    digits at batch 64 (tiny models: Python overhead would dominate)."""
    model.compile(keras.optimizers.Adam(lr), CE, metrics=["accuracy"],
                  steps_per_execution=steps)
    return model

# --------------------------------------------------------------------------
# Layers.

LAYER_CASES = [
    (DepthwiseSeparableConv2D, {"filters": 8, "kernel_size": 3}, (6, 6, 4), (4, 4, 8)),
    (DepthwiseSeparableConv2D,
     {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same",
      "depth_multiplier": 2, "batch_norm": {"momentum": 0.9},
      "depthwise_activation": "relu", "activation": "relu6",
      "depthwise_use_bias": True, "use_bias": False},
     (7, 7, 3), (4, 4, 6)),
    (LowRankDense, {"units": 8, "rank": 3, "activation": "relu"}, (10,), (8,)),
    (LowRankDense, {"units": 6, "rank": 2, "use_bias": False}, (5, 10), (5, 6)),
    (LowRankConv2D, {"filters": 8, "kernel_size": 3, "rank": 3,
                     "padding": "same"}, (6, 6, 4), (6, 6, 8)),
]


@pytest.mark.parametrize(
    "cls,kwargs,shape,out", LAYER_CASES,
    ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(LAYER_CASES)])
def test_layer_helper(cls, kwargs, shape, out):
    run_layer_test(cls, kwargs, shape, expected_output_shape=out)


@pytest.mark.parametrize("cls,parent,skipped", [
    (DepthwiseSeparableConv2D, L.SeparableConv2D, ()),
    (LowRankDense, L.Dense, ("lora_rank", "lora_alpha", "quantization_config")),
    (LowRankConv2D, L.Conv2D, ("groups", "lora_rank", "lora_alpha")),
], ids=["separable", "dense", "conv"])
def test_signature_keeps_keras_arguments(cls, parent, skipped):
    ours = inspect.signature(cls.__init__).parameters
    for name, param in inspect.signature(parent.__init__).parameters.items():
        if name in skipped:
            continue
        assert name in ours, f"{cls.__name__} lacks {name!r}"
        assert ours[name].default == param.default, (cls.__name__, name)


def _model(layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, "same")])
def test_separable_params_and_macs_formulas(m, stride, padding):
    k, cin, cout, size = 3, 6, 16, 9
    sep = _model(DepthwiseSeparableConv2D(
        cout, k, strides=stride, padding=padding, depth_multiplier=m,
        use_bias=False), (size, size, cin))
    conv = _model(L.Conv2D(cout, k, strides=stride, padding=padding,
                           use_bias=False), (size, size, cin))
    out = sep.output.shape[1]
    assert out == conv.output.shape[1]
    s, c = summarize(sep).totals, summarize(conv).totals
    assert s.params == k * k * cin * m + cin * m * cout
    assert c.params == k * k * cin * cout
    assert s.macs == out * out * (k * k * cin * m + cin * m * cout)
    assert c.macs == out * out * k * k * cin * cout
    if m == 1:
        assert s.params / c.params == pytest.approx(1 / cout + 1 / k**2, rel=1e-12)


def test_separable_counts_with_biases_and_batch_norm():
    k, cin, cout, m, size = 3, 4, 8, 2, 6
    model = _model(DepthwiseSeparableConv2D(
        cout, k, depth_multiplier=m, batch_norm=True, depthwise_use_bias=True,
        depthwise_activation="relu"), (size, size, cin))
    out = size - k + 1
    totals = summarize(model).totals
    mid = cin * m
    # Kernels, the two biases, and gamma/beta/mean/variance of each BN.
    assert totals.params == k * k * mid + mid * cout + mid + cout + 4 * mid + 4 * cout
    # One MAC per BatchNormalization output element (house convention).
    assert totals.macs == out * out * (k * k * mid + mid * cout + mid + cout)
    names = [r.name.split("/")[-1] for r in summarize(model).rows]
    assert names == ["depthwise", "depthwise_bn", "pointwise", "pointwise_bn"]


def test_low_rank_params_and_macs_formulas():
    m_in, n_out, r = 24, 16, 5
    dense = summarize(_model(LowRankDense(n_out, r), (m_in,))).totals
    assert dense.params == r * (m_in + n_out) + n_out
    assert dense.macs == r * (m_in + n_out)
    k, cin, cout, size = 3, 4, 12, 8
    conv = summarize(_model(LowRankConv2D(cout, k, r), (size, size, cin))).totals
    out = size - k + 1
    assert conv.params == k * k * cin * r + r * cout + cout
    assert conv.macs == out * out * (k * k * cin * r + r * cout)


def test_low_rank_dense_exports_two_fully_connected_ops():
    keras.utils.set_random_seed(0)
    model = _model(LowRankDense(8, 3, activation="relu"), (12,))
    data = export.to_tflite(model)
    kinds = [r.kind for r in summarize(data).rows]
    assert kinds == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert summarize(data).totals.macs == 3 * (12 + 8)


def test_config_round_trip_is_exact():
    layers = [
        DepthwiseSeparableConv2D(
            8, (3, 5), strides=2, padding="same", depth_multiplier=2,
            activation="relu", use_bias=False, depthwise_initializer="he_normal",
            pointwise_regularizer=keras.regularizers.L2(1e-4),
            depthwise_constraint=keras.constraints.MaxNorm(2.0),
            activity_regularizer="l1", depthwise_activation="relu6",
            batch_norm={"momentum": 0.9, "epsilon": 1e-5},
            depthwise_use_bias=True, name="sep"),
        LowRankDense(7, 3, activation="tanh", kernel_regularizer="l2",
                     bias_constraint="non_neg", name="lr"),
        LowRankConv2D(6, 3, 2, dilation_rate=2, kernel_initializer="he_uniform",
                      name="lrc"),
    ]
    for layer in layers:
        config = layer.get_config()
        again = type(layer).from_config(config)
        assert again.get_config() == config
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer))
        assert restored.get_config() == config
    sep = layers[0]
    assert sep.get_config()["batch_norm"] == {"momentum": 0.9, "epsilon": 1e-5}
    assert DepthwiseSeparableConv2D(4, 3, batch_norm=True).get_config()[
        "batch_norm"] == {"momentum": 0.99, "epsilon": 1e-3}


def test_separable_layer_computes_depthwise_then_pointwise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 7, 3)).astype("float32")
    layer = DepthwiseSeparableConv2D(5, 3, depth_multiplier=2,
                                     depthwise_activation="relu")
    y = np.asarray(layer(x))
    reference = L.SeparableConv2D(5, 3, depth_multiplier=2)
    reference(x)
    reference.set_weights(layer.get_weights())  # Same shapes and order.
    linear = np.asarray(reference(x))
    layer.depthwise_activation = keras.activations.get(None)
    np.testing.assert_allclose(np.asarray(layer(x)), linear, rtol=1e-5, atol=1e-5)
    assert not np.allclose(y, linear)  # The ReLU in between acted.


def test_layer_argument_errors():
    with pytest.raises(ValueError, match=r"Layer 'lr'.*rank.*\[1, 4\].*Received: rank=5"):
        _model(LowRankDense(4, 5, name="lr"), (10,))
    with pytest.raises(ValueError, match=r"rank.*\[1, 6\].*Received: rank=7"):
        _model(LowRankDense(12, 7), (6,))
    with pytest.raises(ValueError, match=r"integer >= 1.*Received: rank=0"):
        LowRankDense(4, 0)
    with pytest.raises(ValueError, match=r"Received: rank=2.5"):
        LowRankDense(4, 2.5)
    with pytest.raises(ValueError, match=r"Layer 'c'.*\[1, 3\].*Received: rank=4"):
        _model(LowRankConv2D(3, 1, 4, name="c"), (5, 5, 8))
    with pytest.raises(ValueError, match=r"filters.*Received: filters=0"):
        DepthwiseSeparableConv2D(0, 3)
    with pytest.raises(ValueError, match=r"depth_multiplier.*Received: depth_multiplier=0"):
        DepthwiseSeparableConv2D(4, 3, depth_multiplier=0)
    with pytest.raises(ValueError, match=r"batch_norm.*Received: batch_norm="):
        DepthwiseSeparableConv2D(4, 3, batch_norm={"momentum": 0.9, "bad": 1})


# --------------------------------------------------------------------------
# factorize.


def _mlp(input_dim=64, hidden=(64, 48), seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((input_dim,))]
    for i, units in enumerate(hidden):
        layers.append(L.Dense(units, activation="relu", name=f"fc{i}"))
    layers.append(L.Dense(10, name="out"))
    return keras.Sequential(layers, name="mlp")


def test_factorize_full_rank_is_identical():
    model = _mlp()
    x = np.random.default_rng(0).normal(size=(32, 64)).astype("float32")
    full = factorize(model, rank={"fc0": 64, "fc1": 48, "out": 10},
                     min_saving=None)
    assert all(type(full.get_layer(n)) is LowRankDense for n in ("fc0", "fc1", "out"))
    want = model.predict(x, verbose=0)
    got = full.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1, np.abs(want).max()))
    assert isinstance(full, keras.Sequential)


def test_factorize_report_matches_the_new_model():
    model = _mlp()
    weights = [w.copy() for w in model.get_weights()]
    new, report = factorize(model, energy=0.5, return_report=True)
    assert isinstance(report, FactorizationReport)
    for row in report.layers:
        layer = new.get_layer(row["name"])
        assert row["params_after"] == layer.count_params()
        assert row["params_before"] == model.get_layer(row["name"]).count_params()
        if row["replaced"]:
            m, n = row["shape"]
            assert type(layer) is LowRankDense and layer.rank == row["rank"]
            assert row["params_after"] == row["rank"] * (m + n) + n
            assert 0.5 <= row["kept_energy"] <= 1.0
    assert report.params_before == summarize(model).totals.params
    assert report.params_after == summarize(new).totals.params
    assert report.compression == pytest.approx(report.params_before / report.params_after)
    text = str(report)
    assert "fc0" in text and f"{report.params_after:,}" in text
    # The input model was not touched.
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(type(layer) is L.Dense for layer in model.layers)


def test_factorize_energy_is_monotone_and_rank_is_exact():
    model = _mlp()
    _, low = factorize(model, energy=0.5, min_saving=None, return_report=True)
    _, high = factorize(model, energy=1.0, min_saving=None, return_report=True)
    for a, b in zip(low.layers, high.layers):
        assert a["rank"] <= b["rank"]
        assert a["kept_energy"] <= b["kept_energy"]
        assert a["kept_energy"] >= 0.5
    assert high.layers[0]["kept_energy"] == pytest.approx(1.0)
    assert low.params_after <= high.params_after
    # Energy picks the smallest rank reaching it.
    kernel = np.asarray(model.get_layer("fc0").kernel, np.float64)
    s2 = np.linalg.svd(kernel, compute_uv=False) ** 2
    r = low.layers[0]["rank"]
    assert s2[:r].sum() / s2.sum() >= 0.5 > s2[:r - 1].sum() / s2.sum()
    # A fixed rank; layers with rank > min(M, N) are kept when not named.
    new, report = factorize(model, rank=12, return_report=True)
    assert new.get_layer("fc0").rank == 12 and new.get_layer("fc1").rank == 12
    assert type(new.get_layer("out")) is L.Dense
    assert report.layers[-1]["status"].startswith("kept: rank 12 > min(M, N) = 10")


def test_factorize_skips_layers_without_saving():
    model = _mlp(input_dim=8, hidden=(8,))
    new, report = factorize(model, rank=6, layers=["fc0"], return_report=True)
    assert type(new.get_layer("fc0")) is L.Dense  # 6 * 16 + 8 > 8 * 8 + 8
    assert report.layers[0]["status"] == "kept: rank 6 saves nothing"
    assert report.params_after == report.params_before


def test_factorize_nested_and_functional():
    inner = _mlp(input_dim=16, hidden=(32,))
    inputs = keras.Input((16,))
    outputs = L.Dense(4, name="head")(inner(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(1).normal(size=(8, 16)).astype("float32")
    new = factorize(model, rank={"fc0": 16, "head": 4}, min_saving=None)
    assert type(new.get_layer("mlp").get_layer("fc0")) is LowRankDense
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(new.predict(x, verbose=0), want, atol=1e-5 * max(1, np.abs(want).max()))


def test_factorize_errors():
    model = _mlp()
    with pytest.raises(ValueError, match=r"rank.*\[1, 10\].*'out'.*Received: rank=11"):
        factorize(model, rank=11, layers=["out"])
    with pytest.raises(ValueError, match=r"rank.*\[1, 48\].*'fc1'.*Received: rank=60"):
        factorize(model, rank={"fc1": 60})
    with pytest.raises(ValueError, match=r"integer >= 1.*Received: rank=0"):
        factorize(model, rank=0)
    for energy in (0.0, 1.5, -0.1, True):
        with pytest.raises(ValueError, match=r"\(0, 1\].*Received: energy="):
            factorize(model, energy=energy)
    with pytest.raises(ValueError, match="either `rank` or `energy`"):
        factorize(model, rank=4, energy=0.9)
    with pytest.raises(ValueError, match=r"not in the model: \['nope'\]"):
        factorize(model, layers=["fc0", "nope"])
    with pytest.raises(TypeError, match="layer names"):
        factorize(model, layers=[3])
    with pytest.raises(ValueError, match=r"min_saving.*Received: min_saving=1.0"):
        factorize(model, min_saving=1.0)
    conv = keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(2, 3, name="c"),
                             L.Flatten(), L.Dense(3)])
    with pytest.raises(ValueError, match=r"Dense layers.*'c' of type Conv2D"):
        factorize(conv, layers=["c"])

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(4)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model"):
        factorize(sub)
    with pytest.raises(TypeError, match="keras.Model"):
        factorize(L.Dense(3))


@pytest.mark.slow
def test_factorized_digits_mlp_recovers_accuracy(digits):
    (x, y), (x_test, y_test) = digits
    x, x_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    model = _mlp(input_dim=64, hidden=(256, 256))
    _compile(model, 1e-3)
    model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    dense_acc = model.evaluate(x_test, y_test, verbose=0)[1]
    small, report = factorize(model, energy=0.5, return_report=True)
    assert report.compression > 2.5
    _compile(small, 1e-3)
    before = small.evaluate(x_test, y_test, verbose=0)[1]
    small.fit(x, y, epochs=5, batch_size=64, verbose=0)
    after = small.evaluate(x_test, y_test, verbose=0)[1]
    print(f"digits MLP: dense {dense_acc:.3f}, factorized {before:.3f}, "
          f"fine-tuned {after:.3f}, {report.compression:.2f}x fewer params")
    assert dense_acc > 0.93
    assert after > 0.9


# --------------------------------------------------------------------------
# to_depthwise_separable.


def _separable_kernels(model, names, m, rng):
    """Sets the kernels of `names` to exactly separable ones (rank m per
    input channel)."""
    for name in names:
        layer = model.get_layer(name)
        kh, kw, cin, cout = layer.kernel.shape
        d = rng.normal(size=(kh, kw, cin, m))
        p = rng.normal(size=(cin, m, cout)) / np.sqrt(cin * m)
        layer.kernel.assign(np.einsum("abcj,cjo->abco", d, p).astype("float32"))


def _conv_net(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    h = L.Conv2D(8, 3, strides=2, padding="same", name="c2")(h)
    h = L.BatchNormalization(name="bn")(h)
    h = L.Conv2D(8, 3, use_bias=False, name="c3")(h)
    h = L.Dense(5, name="head")(L.Flatten()(h))
    return keras.Model(inputs, h, name="convnet")


@pytest.mark.parametrize("m", [1, 2])
def test_separable_conversion_of_a_separable_kernel_is_exact(m):
    rng = np.random.default_rng(m)
    model = _conv_net()
    _separable_kernels(model, ["c1", "c2", "c3"], m, rng)
    x = rng.normal(size=(96, 8, 8, 3)).astype("float32")
    weights = [w.copy() for w in model.get_weights()]
    # By default the stem (3 input channels) stays standard.
    default = to_depthwise_separable(model, None, depth_multiplier=m,
                                     return_report=True)[1]
    assert [r["name"] for r in default.layers if r["replaced"]] == ["c2", "c3"]
    assert "3 input channels" in default.layers[0]["status"]
    new, report = to_depthwise_separable(model, x, layers=["c1", "c2", "c3"],
                                         depth_multiplier=m, return_report=True)
    assert [r["name"] for r in report.layers if r["replaced"]] == ["c1", "c2", "c3"]
    for name in ("c1", "c2", "c3"):
        layer = new.get_layer(name)
        assert type(layer) is DepthwiseSeparableConv2D
        assert layer.depth_multiplier == m
    x_test = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    want = model.predict(x_test, verbose=0)
    got = new.predict(x_test, verbose=0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    for row in report.layers:
        assert row["kernel_error"] < 1e-6
        assert row["relative_error"] < 1e-5
        old = model.get_layer(row["name"])
        kh, kw, cin, cout = old.kernel.shape
        bias = cout if old.use_bias else 0
        assert row["params_before"] == kh * kw * cin * cout + bias
        assert row["params_after"] == kh * kw * cin * m + cin * m * cout + bias
        assert row["params_after"] == new.get_layer(row["name"]).count_params()
    assert report.params_after == summarize(new).totals.params
    # Without data, the SVD alone is exact too; the input model is untouched.
    svd_only = to_depthwise_separable(model, None, layers=["c1", "c2", "c3"],
                                      depth_multiplier=m)
    np.testing.assert_allclose(svd_only.predict(x_test, verbose=0), want,
                               rtol=0, atol=1e-5 * np.abs(want).max())
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert type(model.get_layer("c2")) is L.Conv2D


def test_separable_fit_reduces_the_output_error(tmp_path):
    """On a random (not separable) kernel, least squares beats the SVD."""
    rng = np.random.default_rng(0)
    model = _conv_net()
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    new, report = to_depthwise_separable(model, x, layers=["c2", "c3"],
                                         return_report=True)
    assert type(new.get_layer("c1")) is L.Conv2D
    for row in report.layers:
        assert row["relative_error"] < row["relative_error_init"]
        assert row["kernel_error"] > 0.1
    _, pointwise = to_depthwise_separable(model, x, layers=["c2", "c3"],
                                          iterations=0, return_report=True)
    for alt, pw in zip(report.layers, pointwise.layers):
        assert alt["relative_error"] <= pw["relative_error"] + 1e-9
    # Saves and loads under safe_mode, and trains.
    path = os.path.join(tmp_path, "sep.keras")
    new.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), new.predict(x, verbose=0))
    new.compile(keras.optimizers.SGD(0.01), "mse")
    target = model.predict(x, verbose=0)
    before = new.get_layer("c2").pointwise.get_weights()[0].copy()
    history = new.fit(x, target, epochs=4, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert not np.array_equal(before, new.get_layer("c2").pointwise.get_weights()[0])
    text = str(report)
    assert "c2" in text and "replaced" in text


def test_separable_default_selection_skips_what_does_not_pay():
    inputs = keras.Input((8, 8, 3))
    stem = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    h = L.Conv2D(4, 1, name="point")(stem)
    narrow = L.Conv2D(1, 3, name="narrow")(h)  # 9*4 + 4 + 1 > 9*4 + 1
    wide = L.Conv2D(16, 3, name="wide")(h)
    model = keras.Model(inputs, L.Concatenate()([narrow, wide]))
    new, report = to_depthwise_separable(model, None, return_report=True)
    status = {r["name"]: r["status"] for r in report.layers}
    assert status["stem"].startswith("kept: 3 input channels")
    assert status["point"] == "kept: 1x1 kernel (already pointwise)"
    assert status["narrow"].startswith("kept: no saving")
    assert status["wide"] == "replaced"
    assert type(new.get_layer("wide")) is DepthwiseSeparableConv2D


def test_separable_conversion_errors():
    model = _conv_net()
    x = np.zeros((4, 8, 8, 3), "float32")
    with pytest.raises(ValueError, match=r"not in the model: \['nope'\]"):
        to_depthwise_separable(model, x, layers=["nope"])
    with pytest.raises(ValueError, match=r"'head': not a keras.layers.Conv2D \(type Dense\)"):
        to_depthwise_separable(model, x, layers=["head"])
    with pytest.raises(ValueError, match=r"'c1': depth_multiplier 7 > min"):
        to_depthwise_separable(model, x, layers=["c1"], depth_multiplier=7)
    with pytest.raises(ValueError, match=r"Received: depth_multiplier=0"):
        to_depthwise_separable(model, x, depth_multiplier=0)
    with pytest.raises(TypeError, match=r"`data`"):
        to_depthwise_separable(model, "images")

    inputs = keras.Input((8, 8, 4))
    grouped = L.Conv2D(4, 3, groups=2, name="grouped")(inputs)
    dilated = L.Conv2D(4, 3, dilation_rate=2, name="dilated")(inputs)
    shared = L.Conv2D(4, 3, padding="same", name="shared")
    other = keras.Model(inputs, [grouped, dilated, shared(shared(inputs))])
    x = np.zeros((2, 8, 8, 4), "float32")
    with pytest.raises(ValueError, match=r"'grouped': grouped convolution \(groups=2\)"):
        to_depthwise_separable(other, x, layers=["grouped"])
    with pytest.raises(ValueError, match=r"'dilated': dilated convolution"):
        to_depthwise_separable(other, x, layers="dilated")
    with pytest.raises(ValueError, match=r"'shared': called 2 times"):
        to_depthwise_separable(other, x, layers=["shared"])
    _, report = to_depthwise_separable(other, x, return_report=True)
    assert report.replaced == []  # Nothing convertible, nothing changed.

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.c = L.Conv2D(4, 3)

        def call(self, x):
            return self.c(x)

    sub = Sub()
    sub(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model"):
        to_depthwise_separable(sub, np.zeros((1, 8, 8, 3), "float32"))


def _digits_cnn(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = inputs
    for i, (filters, stride) in enumerate(((16, 1), (32, 2), (32, 1))):
        h = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                     name=f"conv{i}")(h)
        h = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)
        h = L.ReLU(name=f"relu{i}")(h)
    h = L.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, L.Dense(10, name="out")(h))


@pytest.mark.slow
def test_separable_digits_cnn_recovers_accuracy(digits):
    (x, y), (x_test, y_test) = digits
    model = _digits_cnn(0)
    _compile(model, 3e-3)
    model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    base = model.evaluate(x_test, y_test, verbose=0)[1]
    new, report = to_depthwise_separable(model, x[:512], layers=["conv1", "conv2"],
                                         return_report=True)
    _compile(new, 1e-3)
    before = new.evaluate(x_test, y_test, verbose=0)[1]
    new.fit(x, y, epochs=2, batch_size=64, verbose=0)
    after = new.evaluate(x_test, y_test, verbose=0)[1]
    print(f"digits CNN: standard {base:.3f}, separable {before:.3f}, "
          f"fine-tuned {after:.3f}, {report.compression:.2f}x fewer params")
    assert base > 0.95
    assert report.compression > 3
    assert after > 0.93
