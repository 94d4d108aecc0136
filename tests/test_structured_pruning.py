"""Channel surgery: exact outputs, exact counts, untouched inputs, export."""

import keras
import numpy as np
import pytest

from keras_compress import analysis, export
from keras_compress.pruning import (
    APoZ,
    BatchNormScale,
    DependencyGraph,
    L1Norm,
    L2Norm,
    Taylor,
    prune_channels,
)
from keras_compress.runtime import LiteRTModel

L = keras.layers


def plain_cnn(w=(8, 16), name="plain"):
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(w[0], 3, padding="same", activation="relu", name="c1")(inputs)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(w[1], 3, padding="same", name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(5, name="out")(x), name=name)


def resnet(w=(8, 12), name="resnet"):
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(w[0], 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    for i in range(2):
        y = L.Conv2D(w[1], 3, padding="same", activation="relu", name=f"a{i}")(x)
        y = L.Conv2D(w[0], 3, padding="same", name=f"b{i}")(y)
        y = L.BatchNormalization(name=f"bn{i}")(y)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(5, name="out")(x), name=name)


def densenet(w=(6, 4, 4, 8), name="densenet"):
    inputs = keras.Input((10, 10, 3))
    x = L.Conv2D(w[0], 3, padding="same", activation="relu", name="stem")(inputs)
    for i in range(2):
        y = L.BatchNormalization(name=f"bn{i}")(x)
        y = L.Conv2D(w[1 + i], 3, padding="same", activation="relu", name=f"grow{i}")(y)
        x = L.Concatenate()([x, y])
    x = L.Conv2D(w[3], 1, name="transition")(x)
    x = L.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, L.Dense(5, name="out")(x), name=name)


def mobilenet(w=(8, 16, 16), name="mobilenet"):
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(w[0], 3, strides=2, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0)(x)
    for i, width in enumerate(w[1:]):
        x = L.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = L.BatchNormalization(name=f"dw_bn{i}")(x)
        x = L.ReLU(6.0)(x)
        x = L.Conv2D(width, 1, name=f"pw{i}")(x)
        x = L.BatchNormalization(name=f"pw_bn{i}")(x)
        x = L.ReLU(6.0)(x)
    x = L.SeparableConv2D(w[-1], 3, padding="same", name="sep")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(5, name="out")(x), name=name)


def mlp(w=(50, 30), name="mlp"):
    return keras.Sequential([
        keras.Input((20,)),
        L.Dense(w[0], activation="relu", name="h1"),
        L.Dropout(0.1),
        L.Dense(w[1], activation="relu", name="h2"),
        L.Dense(5, name="out"),
    ], name=name)


def conv_flatten_dense(w=(6, 16), name="flat"):
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(w[0], 3, activation="relu", name="conv"),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dense(w[1], activation="relu", name="fc"),
        L.Dense(5, name="out"),
    ], name=name)


def nested(w=(8, 12), name="nested"):
    block = keras.Sequential([
        keras.Input((10, 10, w[0])),
        L.Conv2D(w[1], 3, padding="same", activation="relu", name="inner"),
        L.BatchNormalization(name="inner_bn"),
    ], name="block")
    inputs = keras.Input((10, 10, 3))
    x = L.Conv2D(w[0], 3, padding="same", activation="relu", name="outer")(inputs)
    x = block(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(5, name="out")(x), name=name)


ARCHITECTURES = {
    "plain": (plain_cnn, (8, 16), (4, 8)),
    "resnet": (resnet, (8, 12), (4, 6)),
    "densenet": (densenet, (6, 4, 4, 8), (3, 2, 2, 4)),
    "mobilenet": (mobilenet, (8, 16, 16), (4, 8, 8)),
    "mlp": (mlp, (50, 30), (25, 15)),
    "flat": (conv_flatten_dense, (6, 16), (3, 8)),
    "nested": (nested, (8, 12), (4, 6)),
}


def _randomize(model, seed=0):
    """Random weights everywhere, BN statistics included (not identity)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape = tuple(v.shape)
        if "variance" in v.path:
            v.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            v.assign(rng.normal(0, 0.3, shape).astype("float32"))


def _zero_half(model):
    """Zeroes the last half of every prunable channel group, the way the
    issue states it: filters, biases, and the BN shift (beta, mean)."""
    graph = DependencyGraph(model)
    doomed = set()
    for group in graph.groups:
        if group.prunable:
            classes = graph.classes(group.index)
            doomed.update(classes[len(classes) - len(classes) // 2:])
    for layer, ins, out in graph.layer_entries():
        weights = [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]
        if not weights:
            continue
        if out is not None:
            cols = [j for j, l in enumerate(out) if graph.class_of(l) in doomed]
            kernel = weights[1] if isinstance(layer, L.SeparableConv2D) else weights[0]
            kernel[..., cols] = 0
            if layer.use_bias:
                weights[-1][cols] = 0
        elif isinstance(layer, L.DepthwiseConv2D):
            cols = [j for j, l in enumerate(np.repeat(ins[0], layer.depth_multiplier))
                    if graph.class_of(l) in doomed]
            if layer.use_bias:
                weights[-1][cols] = 0
        elif isinstance(layer, L.BatchNormalization):
            cols = [j for j, l in enumerate(ins[0]) if graph.class_of(l) in doomed]
            names = [w.name for w in layer.weights]
            for key in ("beta", "moving_mean"):
                weights[names.index(key)][cols] = 0
        layer.set_weights(weights)
    return doomed


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_pruning_zeroed_channels_preserves_outputs(name):
    build, widths, half = ARCHITECTURES[name]
    keras.utils.set_random_seed(0)
    model = build(widths)
    _randomize(model)
    _zero_half(model)
    before = [w.numpy().copy() for w in model.weights]
    x = np.random.default_rng(1).random((4,) + model.input_shape[1:]).astype("float32")
    expected = model.predict(x, verbose=0)

    pruned, report = prune_channels(model, ratio=0.5, criterion=L1Norm())

    np.testing.assert_allclose(pruned.predict(x, verbose=0), expected, atol=1e-5)
    # The input model is unchanged.
    for old, now in zip(before, model.weights):
        np.testing.assert_array_equal(old, now.numpy())
    # Counts are those of the same architecture built at the smaller widths.
    reference = build(half, name="reference")
    assert pruned.count_params() == reference.count_params() == report.params_after
    assert report.params_before == model.count_params()
    assert report.macs_after == analysis.summarize(reference).totals.macs
    assert report.macs_before == analysis.summarize(model).totals.macs
    assert report.macs_after < report.macs_before


@pytest.mark.parametrize("name", ["resnet", "mobilenet", "nested"])
def test_pruned_model_exports_and_runs(name):
    build, widths, _ = ARCHITECTURES[name]
    keras.utils.set_random_seed(0)
    model = build(widths)
    _randomize(model)
    pruned, _ = prune_channels(model, ratio=0.5)
    data = export.to_tflite(pruned)  # verified against Keras within 1e-3
    x = np.random.default_rng(2).random((3,) + model.input_shape[1:]).astype("float32")
    np.testing.assert_allclose(LiteRTModel(data).predict(x),
                               pruned.predict(x, verbose=0), atol=1e-4)


def test_graph_groups_residual_stage_and_keeps_outputs():
    graph = DependencyGraph(resnet())
    groups = {g.layers: g for g in graph.groups}
    # stem, b0 and b1 feed the same residual stream: one group.
    assert groups[("stem", "b0", "b1")].channels == 8
    assert groups[("stem", "b0", "b1")].prunable
    assert groups[("out",)].prunable is False
    assert "model output" in groups[("out",)].reason


def test_unknown_layer_is_kept_whole_with_a_note():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="c1")(inputs)
    x = L.Reshape((6, 6, 8))(x)
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.Flatten()(x)
    model = keras.Model(inputs, L.Dense(2, name="out")(x))
    graph = DependencyGraph(model)
    assert any("'reshape" in n and "kept whole" in n for n in graph.notes)
    by_layer = {g.layers: g for g in graph.groups}
    assert not by_layer[("c1",)].prunable and by_layer[("c2",)].prunable
    pruned, report = prune_channels(model, ratio=0.5)
    assert [r["channels_after"] for r in report.layers] == [8, 4, 2]
    x = np.zeros((1, 8, 8, 3), "float32")
    assert pruned.predict(x, verbose=0).shape == (1, 2)


def test_global_ratio_threshold_min_channels_and_round_to():
    keras.utils.set_random_seed(0)
    model = mobilenet((16, 32, 32))
    _randomize(model)
    pruned, report = prune_channels(model, ratio=0.5, scope="global",
                                    criterion=BatchNormScale())
    kept = {r["name"]: r["channels_after"] for r in report.layers}
    removed = sum(r["channels_before"] - r["channels_after"] for r in report.layers
                  if r["name"] != "out")
    # Half of the 16 + 32 + 32 channels that have a BatchNorm; the
    # separable conv's channels have none and are kept.
    assert removed == 40
    assert kept["sep"] == 32
    # The stem's channels pass stem_bn and dw_bn0: their score is the mean.
    graph = DependencyGraph(model)
    scores = BatchNormScale().scores(graph)
    stem = next(g.index for g in graph.groups if "stem" in g.layers)
    threshold = float(np.median([scores[c] for c in graph.classes(stem)]))
    _, by_threshold = prune_channels(model, threshold=threshold,
                                     criterion=BatchNormScale())
    assert {r["name"]: r["channels_after"] for r in by_threshold.layers}["stem"] == 8
    _, rounded = prune_channels(model, ratio=0.7, round_to=8, min_channels=8)
    for r in rounded.layers:
        assert r["channels_after"] % 8 == 0 or r["channels_after"] == r["channels_before"]
    assert kept["out"] == 5


@pytest.mark.parametrize("criterion_name", ["l2", "apoz", "taylor"])
def test_data_and_norm_criteria_prune(digits, criterion_name):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = conv_flatten_dense((8, 32))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:256], np.minimum(y[:256], 4), epochs=1, verbose=0)
    criterion = {
        "l2": L2Norm(),
        "apoz": APoZ(x[:200]),
        "taylor": Taylor((x[:200], np.minimum(y[:200], 4))),
    }[criterion_name]
    scores = criterion.scores(DependencyGraph(model))
    # conv, fc and (not for APoZ: no ReLU there) the output layer
    assert len(scores) == 8 + 32 + (0 if criterion_name == "apoz" else 5)
    assert all(np.isfinite(v) for v in scores.values())
    pruned, report = prune_channels(model, ratio=0.25, criterion=criterion)
    assert [r["channels_after"] for r in report.layers] == [6, 24, 5]


def test_apoz_finds_dead_channels(digits):
    (x, _), _ = digits
    keras.utils.set_random_seed(0)
    model = conv_flatten_dense((8, 16))
    conv = model.get_layer("conv")
    kernel, bias = conv.get_weights()
    bias[:3] = -100.0  # channels 0-2 never fire
    conv.set_weights([kernel, bias])
    _, report = prune_channels(model, ratio=3 / 8, criterion=APoZ(x[:100]))
    assert report.layers[0]["channels_after"] == 5
    graph = DependencyGraph(model)
    scores = APoZ(x[:100]).scores(graph)
    conv_classes = graph.classes(0)
    assert [scores[c] for c in conv_classes[:3]] == [0.0, 0.0, 0.0]


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.dense = L.Dense(4)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ratio=1.0), r"ratio=1\.0"),
        (dict(ratio=-0.1), r"ratio=-0\.1"),
        (dict(ratio=0.5, threshold=0.1), "exactly one of"),
        (dict(), "exactly one of"),
        (dict(ratio=0.5, min_channels=64), "min_channels=64, but layers c1 have 8"),
        (dict(ratio=0.5, round_to=0), "round_to=0"),
        (dict(ratio=0.5, scope="net"), "scope='net'"),
        (dict(threshold=1e9), "would remove all 8 channels of layers c1"),
        (dict(ratio=0.5, criterion="l1"), "criterion='l1'"),
    ],
)
def test_bad_arguments(kwargs, match):
    model = plain_cnn()
    with pytest.raises((ValueError, TypeError), match=match):
        prune_channels(model, **kwargs)


def test_ratio_that_empties_a_layer():
    model = keras.Sequential([keras.Input((4,)), L.Dense(2, name="tiny"),
                              L.Dense(3, name="out")])
    with pytest.raises(ValueError, match="remove all 2 channels of layers tiny"):
        prune_channels(model, ratio=0.9)
    _, report = prune_channels(model, ratio=0.9, min_channels=1)
    assert report.layers[0]["channels_after"] == 1


def test_subclassed_model_is_refused():
    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="Functional or Sequential.*'subclassed'"):
        prune_channels(model, ratio=0.5)
    with pytest.raises(TypeError, match="keras.Model"):
        DependencyGraph("model.keras")


@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_compensation_folds_constant_channels(kind):
    """Channels with BN scale 0 output a constant (ReLU of the offset); the
    pruned model keeps it in the next bias or BN mean and stays exact."""
    keras.utils.set_random_seed(0)
    if kind == "conv":
        inputs = keras.Input((8, 8, 3))
        x = L.Conv2D(8, 3, use_bias=False, name="c1")(inputs)  # valid padding
        x = L.ReLU()(L.BatchNormalization(name="bn1")(x))
        x = L.Conv2D(6, 1, use_bias=False, name="c2")(x)  # folds into bn2
        x = L.ReLU()(L.BatchNormalization(name="bn2")(x))
        x = L.Dense(4, name="d")(x)  # a biased consumer on the way
        x = L.GlobalAveragePooling2D()(x)
    else:
        inputs = keras.Input((12,))
        x = L.Dense(8, name="c1")(inputs)
        x = L.ReLU()(L.BatchNormalization(name="bn1")(x))
        x = L.Dense(6, name="c2")(x)  # folds into its bias
        x = L.ReLU()(L.BatchNormalization(name="bn2")(x))
    model = keras.Model(inputs, L.Dense(5, name="out")(x))
    _randomize(model)
    gamma, beta, mean, var = model.get_layer("bn1").get_weights()
    gamma[:4] = 0.0
    beta[:4] = [0.5, -0.3, 0.8, 0.2]  # two survive the ReLU as constants
    model.get_layer("bn1").set_weights([gamma, beta, mean, var])
    x = np.random.default_rng(3).random((6,) + model.input_shape[1:]).astype("float32")
    expected = model.predict(x, verbose=0)

    pruned, report = prune_channels(model, threshold=1e-9, criterion=BatchNormScale())
    plain, _ = prune_channels(model, threshold=1e-9, criterion=BatchNormScale(),
                              compensate=False)

    assert report.layers[0]["channels_after"] == 4
    np.testing.assert_allclose(pruned.predict(x, verbose=0), expected, atol=1e-5)
    assert np.abs(plain.predict(x, verbose=0) - expected).max() > 1e-4
