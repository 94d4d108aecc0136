"""Tests for `fold_batchnorm` and the graph rewriter (`rebuild`) it uses."""

import keras
import numpy as np
import pytest

from keras_compress.graph import DROP, rebuild
from keras_compress.quantization.fold_batchnorm import fold_batchnorm

L = keras.layers


# -- helpers ---------------------------------------------------------------


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _bn_count(model):
    return sum(isinstance(l, L.BatchNormalization) for l in _all_layers(model))


def _randomize(model, seed=0):
    """Non-trivial BN statistics and biases, so folding really is tested."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            values = []
            if layer.scale:
                values.append(rng.uniform(0.5, 2.0, c))
            if layer.center:
                values.append(rng.uniform(-0.5, 0.5, c))
            values += [rng.uniform(-0.3, 0.3, c), rng.uniform(0.5, 2.0, c)]
            layer.set_weights([v.astype("float32") for v in values])
        elif getattr(layer, "use_bias", False) and hasattr(layer, "bias"):
            bias = rng.uniform(-0.5, 0.5, layer.bias.shape).astype("float32")
            layer.bias.assign(bias)
    return model


def _data(model, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3,) + tuple(x.shape[1:])).astype("float32")
            for x in model.inputs]


def _predict(model, xs):
    out = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    return out if isinstance(out, list) else [out]


def _assert_same_outputs(a, b, xs):
    for ya, yb in zip(_predict(a, xs), _predict(b, xs)):
        np.testing.assert_allclose(ya, yb, atol=1e-5, rtol=1e-5)


def _fold_and_check(model, folded_pairs=None, bn_left=0):
    _randomize(model)
    xs = _data(model)
    before = [w.copy() for w in model.get_weights()]
    layers = [id(l) for l in model.layers]
    new, report = fold_batchnorm(model, return_report=True)
    _assert_same_outputs(model, new, xs)
    assert _bn_count(new) == bn_left
    if folded_pairs is not None:
        assert report == folded_pairs
    # The input model is unchanged.
    assert [id(l) for l in model.layers] == layers
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert not set(map(id, _all_layers(new))) & set(map(id, _all_layers(model)))
    return new, report


def _functional(inputs, outputs, name="model"):
    return keras.Model(inputs, outputs, name=name)


# -- folded ----------------------------------------------------------------


@pytest.mark.parametrize("center,scale", [(True, True), (False, True),
                                          (True, False), (False, False)])
def test_dense_bn(center, scale):
    inputs = keras.Input((5,), name="features")
    x = L.Dense(4, name="dense")(inputs)
    outputs = L.BatchNormalization(center=center, scale=scale, name="bn")(x)
    model = _functional(inputs, outputs)
    new, _ = _fold_and_check(model, [("dense", "bn")])
    assert [l.name for l in new.layers] == ["features", "dense"]
    assert new.get_layer("dense").use_bias
    assert new.output_names == model.output_names
    assert new.input.name == "features"


def test_conv1d_bn():
    inputs = keras.Input((10, 3))
    x = L.Conv1D(4, 3, name="conv")(inputs)
    outputs = L.BatchNormalization(name="bn")(x)
    _fold_and_check(_functional(inputs, outputs), [("conv", "bn")])


@pytest.mark.parametrize("use_bias", [True, False])
def test_conv2d_bn(use_bias):
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, padding="same", use_bias=use_bias, name="conv")(inputs)
    x = L.BatchNormalization(epsilon=1e-2, name="bn")(x)
    outputs = L.Dense(2, name="head")(L.Flatten()(x))
    new, _ = _fold_and_check(_functional(inputs, outputs), [("conv", "bn")])
    conv = new.get_layer("conv")
    assert type(conv) is L.Conv2D and conv.use_bias
    assert conv.get_config()["padding"] == "same"


def test_depthwise_bn_depth_multiplier():
    inputs = keras.Input((6, 6, 3))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(inputs)
    outputs = L.BatchNormalization(name="bn")(x)
    _fold_and_check(_functional(inputs, outputs), [("dw", "bn")])


def test_conv_bn_relu_then_more_layers():
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, name="c1")(inputs)
    x = L.BatchNormalization(name="b1")(x)
    x = L.ReLU(name="r1")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(3, 1, use_bias=False, name="c2")(x)
    x = L.BatchNormalization(name="b2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(2, activation="softmax", name="out")(x)
    new, _ = _fold_and_check(_functional(inputs, outputs),
                             [("c1", "b1"), ("c2", "b2")])
    assert [l.name for l in new.layers][1:] == ["c1", "r1", "pool", "c2",
                                                "gap", "out"]


def test_residual_block():
    inputs = keras.Input((6, 6, 4))
    x = L.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    y = L.Conv2D(4, 3, padding="same", use_bias=False, name="a")(x)
    y = L.BatchNormalization(name="a_bn")(y)
    y = L.ReLU()(y)
    y = L.Conv2D(4, 3, padding="same", use_bias=False, name="b")(y)
    y = L.BatchNormalization(name="b_bn")(y)
    x = L.ReLU()(L.Add()([x, y]))
    outputs = L.Concatenate()([x, L.Conv2D(2, 1, name="side")(x)])
    _fold_and_check(_functional(inputs, outputs),
                    [("stem", "stem_bn"), ("a", "a_bn"), ("b", "b_bn")])


def test_multiple_inputs_and_outputs():
    a = keras.Input((4,), name="a")
    b = keras.Input((6, 2), name="b")
    x = L.BatchNormalization(name="bn_a")(L.Dense(3, name="da")(a))
    y = L.BatchNormalization(name="bn_b")(L.Conv1D(3, 2, name="cb")(b))
    y = L.GlobalAveragePooling1D()(y)
    merged = L.Dense(2, name="head")(L.Concatenate()([x, y]))
    model = _functional([a, b], [merged, x], name="two")
    new, report = _fold_and_check(model)
    assert sorted(report) == [("cb", "bn_b"), ("da", "bn_a")]
    assert [t.name for t in new.inputs] == ["a", "b"]
    assert new.output_names == model.output_names
    assert new.name == "two"


def test_sequential():
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        L.Conv2D(3, 3, name="conv"),
        L.BatchNormalization(name="bn"),
        L.ReLU(),
        L.Flatten(),
        L.Dense(4, name="dense"),
        L.BatchNormalization(name="bn2"),
    ], name="seq")
    new, _ = _fold_and_check(model, [("conv", "bn"), ("dense", "bn2")])
    assert isinstance(new, keras.Sequential) and new.name == "seq"


def test_nested_models_are_folded_inside():
    inner = keras.Sequential([
        keras.Input((6, 6, 3)),
        L.Conv2D(4, 3, padding="same", name="inner_conv"),
        L.BatchNormalization(name="inner_bn"),
        L.ReLU(),
    ], name="inner")
    block_in = keras.Input((6, 6, 4))
    y = L.Conv2D(4, 1, name="block_conv")(block_in)
    y = L.BatchNormalization(name="block_bn")(y)
    block = _functional(block_in, L.Add()([block_in, y]), name="block")
    inputs = keras.Input((6, 6, 3))
    x = block(block(inner(inputs)))  # a shared nested model
    x = L.Conv2D(2, 1, name="outer_conv")(x)
    outputs = L.BatchNormalization(name="outer_bn")(x)
    model = _functional(inputs, outputs)
    new, report = _fold_and_check(model)
    assert sorted(report) == [("block_conv", "block_bn"),
                              ("inner_conv", "inner_bn"),
                              ("outer_conv", "outer_bn")]
    assert isinstance(new.get_layer("inner"), keras.Sequential)
    assert isinstance(new.get_layer("block"), keras.Model)


def test_default_returns_only_model():
    inputs = keras.Input((3,))
    model = _functional(inputs, L.BatchNormalization()(L.Dense(2)(inputs)))
    assert isinstance(fold_batchnorm(model), keras.Model)


# -- kept ------------------------------------------------------------------


def _kept_cases():
    def after_activation():
        inputs = keras.Input((6, 6, 2))
        x = L.ReLU()(L.Conv2D(3, 3)(inputs))
        return inputs, L.BatchNormalization()(x)

    def after_activation_argument():
        inputs = keras.Input((5,))
        return inputs, L.BatchNormalization()(
            L.Dense(3, activation="relu")(inputs))

    def two_consumers():
        inputs = keras.Input((6, 6, 2))
        x = L.Conv2D(3, 3)(inputs)
        return inputs, L.Add()([L.BatchNormalization()(x), x])

    def first_after_input():
        inputs = keras.Input((5,))
        return inputs, L.Dense(2)(L.BatchNormalization()(inputs))

    def channel_axis_not_last():
        inputs = keras.Input((3, 6, 6))
        x = L.Conv2D(4, 3, data_format="channels_first")(inputs)
        return inputs, L.BatchNormalization(axis=1)(x)

    def shared_bn():
        inputs = keras.Input((4,))
        bn = L.BatchNormalization()
        return inputs, L.Add()([bn(L.Dense(3)(inputs)), bn(L.Dense(3)(inputs))])

    def shared_producer():
        inputs = keras.Input((4,))
        dense = L.Dense(4)
        return inputs, L.Add()([L.BatchNormalization()(dense(inputs)),
                                dense(dense(inputs))])

    def training_true():
        inputs = keras.Input((4,))
        x = L.Dense(3)(inputs)
        return inputs, L.Dense(2)(L.BatchNormalization()(x, training=True))

    def after_nested_model():
        inner_in = keras.Input((4,))
        inner = keras.Model(inner_in, L.Dense(3)(inner_in))
        inputs = keras.Input((4,))
        return inputs, L.BatchNormalization()(inner(inputs))

    return [after_activation, after_activation_argument, two_consumers,
            first_after_input, channel_axis_not_last, shared_bn,
            shared_producer, training_true, after_nested_model]


@pytest.mark.parametrize("build", _kept_cases(), ids=lambda f: f.__name__)
def test_unfoldable_batchnorm_is_kept(build):
    model = _functional(*build())
    new, report = _fold_and_check(model, [], bn_left=1)
    assert [l.name for l in _all_layers(new)] == [
        l.name for l in _all_layers(model)]


def test_mixed_folded_and_kept():
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, name="conv")(inputs)
    x = L.BatchNormalization(name="folded")(x)
    x = L.ReLU()(x)
    outputs = L.BatchNormalization(name="kept")(x)
    _fold_and_check(_functional(inputs, outputs), [("conv", "folded")],
                    bn_left=1)


# -- errors ----------------------------------------------------------------


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(2)
        self.bn = L.BatchNormalization()

    def call(self, x):
        return self.bn(self.dense(x))


def test_subclassed_model_raises():
    model = _Subclassed(name="sub")
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match=r"Expected `model` to be a Functional "
                       r"or Sequential model.*Received: subclassed model "
                       r"'sub' of class _Subclassed"):
        fold_batchnorm(model)


@pytest.mark.parametrize("value", [None, "model", L.Dense(2)])
def test_non_model_raises(value):
    with pytest.raises(TypeError, match="Expected `model` to be a keras.Model"):
        fold_batchnorm(value)


# -- saving ----------------------------------------------------------------


def test_folded_model_saves_and_loads_safe_mode(tmp_path):
    inputs = keras.Input((6, 6, 2))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)(inputs)
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.BatchNormalization()(L.Conv2D(3, 1)(x))
    outputs = L.Dense(2)(L.Flatten()(x))
    model = _randomize(_functional(inputs, outputs))
    new = fold_batchnorm(model)
    path = str(tmp_path / "folded.keras")
    new.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    xs = _data(model)
    _assert_same_outputs(new, loaded, xs)
    _assert_same_outputs(model, loaded, xs)
    assert _bn_count(loaded) == 0


# -- the rebuild helper ----------------------------------------------------


def test_rebuild_drop_and_after_tensor():
    inputs = keras.Input((4,), name="x")
    x = L.Dense(3, name="d1")(inputs)
    x = L.Dropout(0.5, name="drop")(x)
    outputs = L.Dense(2, name="d2")(x)
    model = _randomize(_functional(inputs, outputs))
    seen = []

    def after(tensor, layer):
        seen.append(None if layer is None else layer.name)
        if layer is not None and layer.name == "d1":
            return L.Activation("linear", name="after_d1")(tensor)
        return None

    new = rebuild(model, lambda l: DROP if isinstance(l, L.Dropout) else None,
                  after)
    assert [l.name for l in new.layers] == ["x", "d1", "after_d1", "d2"]
    assert seen == [None, "d1", "d2"]
    _assert_same_outputs(model, new, _data(model))


def test_rebuild_sequential_stays_sequential():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d"),
                              L.Dropout(0.2, name="drop")], name="seq")
    _randomize(model)
    new = rebuild(
        model, None,
        lambda t, layer: L.Identity(name="id_" + layer.name)(t) if layer
        else None)
    assert isinstance(new, keras.Sequential) and new.name == "seq"
    assert [l.name for l in new.layers] == ["d", "id_d", "drop", "id_drop"]
    _assert_same_outputs(model, new, _data(model))
