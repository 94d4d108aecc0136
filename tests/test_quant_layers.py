"""Quant and Binary layers: drop-in signatures, the layer helper, exports."""

import inspect
import warnings

import keras
import numpy as np
import pytest

from keras_compress import export, quantizers
from keras_compress import layers as kl
from keras_compress.runtime import LiteRTModel
from layer_test import run_layer_test

PARENTS = {
    kl.QuantDense: keras.layers.Dense,
    kl.QuantConv1D: keras.layers.Conv1D,
    kl.QuantConv2D: keras.layers.Conv2D,
    kl.QuantDepthwiseConv2D: keras.layers.DepthwiseConv2D,
}
EXTRA = ["kernel_quantizer", "input_quantizer", "output_quantizer", "batch_norm"]


@pytest.mark.parametrize("cls", list(PARENTS), ids=lambda c: c.__name__)
def test_signature_parity(cls):
    parent = inspect.signature(PARENTS[cls].__init__).parameters
    ours = inspect.signature(cls.__init__).parameters
    for name, param in parent.items():
        assert name in ours, f"{cls.__name__} lacks Keras argument {name!r}"
        assert ours[name].default == param.default, (cls.__name__, name)
        assert ours[name].kind == param.kind, (cls.__name__, name)
    # Keras's arguments come first and in order, then ours, then **kwargs.
    names = [n for n in ours if n != "kwargs"]
    keras_names = [n for n in parent if n != "kwargs"]
    assert names == keras_names + EXTRA


@pytest.mark.parametrize(
    "cls,parent",
    [(kl.BinaryDense, keras.layers.Dense), (kl.BinaryConv2D, keras.layers.Conv2D)],
    ids=["BinaryDense", "BinaryConv2D"],
)
def test_binary_signature_keeps_keras_arguments(cls, parent):
    parent = inspect.signature(parent.__init__).parameters
    ours = inspect.signature(cls.__init__).parameters
    for name in ("activation", "use_bias", "kernel_initializer", "kernel_constraint"):
        assert ours[name].default == parent[name].default


LAYER_CASES = [
    (kl.QuantDense, {"units": 4, "activation": "relu"}, (8,), (4,)),
    (kl.QuantDense, {"units": 3, "batch_norm": True,
                     "input_quantizer": "fake_quant"}, (8,), (3,)),
    (kl.QuantConv1D, {"filters": 4, "kernel_size": 3, "padding": "causal"}, (10, 3), (10, 4)),
    (kl.QuantConv1D, {"filters": 4, "kernel_size": 3, "strides": 2,
                      "batch_norm": {"momentum": 0.9}}, (11, 3), (5, 4)),
    (kl.QuantConv2D, {"filters": 4, "kernel_size": 3, "batch_norm": True}, (6, 6, 3), (4, 4, 4)),
    (kl.QuantConv2D, {"filters": 4, "kernel_size": 3, "padding": "same",
                      "kernel_quantizer": "dorefa",
                      "output_quantizer": "fake_quant"}, (6, 6, 3), (6, 6, 4)),
    (kl.QuantDepthwiseConv2D, {"kernel_size": 3, "depth_multiplier": 2}, (6, 6, 3), (4, 4, 6)),
    (kl.QuantDepthwiseConv2D, {"kernel_size": 3, "batch_norm": True,
                               "kernel_quantizer": "ternary"}, (6, 6, 3), (4, 4, 3)),
    (kl.BinaryDense, {"units": 4}, (8,), (4,)),
    (kl.BinaryDense, {"units": 4, "scale": None, "binarize_inputs": True}, (8,), (4,)),
    (kl.BinaryConv2D, {"filters": 4, "kernel_size": 3, "binarize_inputs": True}, (6, 6, 3), (4, 4, 4)),
    (kl.Quantize, {}, (5,), (5,)),
    (kl.Quantize, {"quantizer": {"class_name": "FakeQuant", "config": {"bits": 4},
                                 "module": "keras_compress.quantizers.fake_quant",
                                 "registered_name": "keras_compress>FakeQuant"}}, (5,), (5,)),
]


@pytest.mark.parametrize("cls,kwargs,shape,out", LAYER_CASES,
                         ids=[f"{c.__name__}-{i}" for i, (c, *_ ) in enumerate(LAYER_CASES)])
def test_layer_helper(cls, kwargs, shape, out):
    run_layer_test(cls, kwargs, shape, expected_output_shape=out, tflite_atol=1e-3)


def test_default_kernel_is_tflite_int8_grid():
    layer = kl.QuantConv2D(5, 3)
    layer.build((None, 8, 8, 2))
    w = np.asarray(layer.quantized_kernel())
    for c in range(5):
        step = np.abs(w[..., c]).max() / 127
        np.testing.assert_allclose(w[..., c] / step, np.round(w[..., c] / step), atol=1e-3)
    dense = kl.QuantDense(3)
    dense.build((None, 4))
    w = np.asarray(dense.quantized_kernel())
    step = np.abs(w).max() / 127  # One scale per tensor.
    np.testing.assert_allclose(w / step, np.round(w / step), atol=1e-3)


@pytest.mark.parametrize("conv", [True, False])
def test_fused_batch_norm_matches_conv_then_batch_norm(conv):
    """Float kernel: the fused layer is exactly layer + BatchNormalization."""
    rng = np.random.default_rng(0)
    if conv:
        x = rng.normal(size=(16, 6, 6, 3)).astype("float32")
        plain = keras.layers.Conv2D(4, 3)
        fused = kl.QuantConv2D(4, 3, kernel_quantizer=None, batch_norm={"momentum": 0.9})
    else:
        x = rng.normal(size=(16, 5)).astype("float32")
        plain = keras.layers.Dense(4)
        fused = kl.QuantDense(4, kernel_quantizer=None, batch_norm={"momentum": 0.9})
    bn = keras.layers.BatchNormalization(momentum=0.9)
    reference = lambda v, training: bn(plain(v), training=training)  # noqa: E731
    reference(x, False)
    fused(x)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.uniform(-0.5, 0.5, 4)
    mean, var = rng.uniform(-0.3, 0.3, 4), rng.uniform(0.5, 2, 4)
    bn.set_weights([gamma, beta, mean, var])
    for v in fused.weights:
        source = {"kernel": plain.kernel, "bias": plain.bias, "gamma": bn.gamma,
                  "beta": bn.beta, "moving_mean": bn.moving_mean,
                  "moving_variance": bn.moving_variance}.get(v.name)
        if source is not None:
            v.assign(source)
    for training in (True, False):
        want = np.asarray(reference(x, training))
        got = np.asarray(fused(x, training=training))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Same gradients in training, including the path through the batch
    # statistics (without it, QAT of a trained CNN diverged).
    import tensorflow as tf

    probe = rng.normal(size=want.shape).astype("float32")
    grads = []
    for layer, variables in ((fused, [fused.kernel, fused.gamma]),
                             (None, [plain.kernel, bn.gamma])):
        with tf.GradientTape() as tape:
            out = layer(x, training=True) if layer else reference(x, True)
            loss = tf.reduce_sum(out * probe)
        grads.append([np.asarray(g) for g in tape.gradient(loss, variables)])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    # Both updated their moving statistics the same way in training.
    np.testing.assert_allclose(np.asarray(fused.moving_mean), np.asarray(bn.moving_mean), atol=1e-5)
    np.testing.assert_allclose(np.asarray(fused.moving_variance), np.asarray(bn.moving_variance), atol=1e-4)
    # Frozen: training uses the moving statistics and stops updating them.
    fused.batch_norm_freeze_step.assign(fused.batch_norm_steps)
    before = np.asarray(fused.moving_mean).copy()
    np.testing.assert_allclose(
        np.asarray(fused(x, training=True)), np.asarray(fused(x, training=False)), atol=1e-5
    )
    np.testing.assert_array_equal(np.asarray(fused.moving_mean), before)


def _int8_weights(data):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    tensors = interpreter.get_tensor_details()
    out = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            t = tensors[op["inputs"][1]]
            out[op["op_name"]] = interpreter.get_tensor(t["index"])
    return out


def test_binary_layers_export_two_int8_values_per_channel():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    h = kl.Quantize()(inputs)
    h = kl.BinaryConv2D(6, 3, output_quantizer="fake_quant")(h)
    h = keras.layers.Flatten()(h)
    outputs = kl.BinaryDense(5, output_quantizer="fake_quant")(h)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).uniform(0, 1, (64, 8, 8, 1)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.zeros((64, 5)), epochs=1, verbose=0)
    data = export.to_tflite(model, quantize="int8")
    weights = _int8_weights(data)
    conv = weights["CONV_2D"]  # (out, h, w, in)
    for c in range(conv.shape[0]):
        assert sorted(np.unique(conv[c])) == [-127, 127]
    fc = weights["FULLY_CONNECTED"]  # (out, in)
    for c in range(fc.shape[0]):
        values = np.unique(fc[c])
        assert len(values) == 2 and values[0] == -values[1]
    got = LiteRTModel(data).predict(x)
    want = model.predict(x, verbose=0)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 0.05 * scale


def test_ternary_conv_with_a_large_kernel_exports_three_values_per_channel():
    # 3x3x32x64 = 18k weights: a bool-to-float cast in Ternary made the
    # converter fail on the FakeQuant op after it ("neither a custom op nor
    # a flex op").
    from keras_compress.quantizers import Ternary

    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 32))
    h = kl.Quantize()(inputs)
    h = kl.QuantConv2D(64, 3, kernel_quantizer=Ternary(), output_quantizer="fake_quant")(h)
    outputs = kl.QuantDense(5, output_quantizer="fake_quant")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 32)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.zeros((32, 5)), epochs=1, verbose=0)
    data = export.to_tflite(model, quantize="int8")
    conv = _int8_weights(data)["CONV_2D"]
    for c in range(conv.shape[0]):
        magnitudes = np.unique(np.abs(conv[c]))
        assert set(magnitudes) - {0} and len(set(magnitudes) - {0}) == 1, magnitudes

def test_binary_latent_clip_and_warning():
    layer = kl.BinaryDense(3)
    assert isinstance(layer.kernel_constraint, kl.WeightClip)
    layer.build((None, 4))
    layer.kernel.assign(np.full((4, 3), 3.0, "float32"))
    np.testing.assert_array_equal(np.asarray(layer.kernel_constraint(layer.kernel)), 1.0)
    with pytest.warns(UserWarning, match="latent_clip=None"):
        kl.BinaryDense(3, latent_clip=None)
    # A config round trip does not wrap the clip twice.
    again = kl.BinaryDense.from_config(layer.get_config())
    assert again.kernel_constraint.constraint is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kl.BinaryConv2D(2, 3)


def test_binary_forward_is_sign_times_channel_mean():
    layer = kl.BinaryConv2D(3, 2, use_bias=False)
    layer.build((None, 4, 4, 2))
    w = np.asarray(layer.kernel)
    got = np.asarray(layer.quantized_kernel())
    alpha = np.abs(w).mean(axis=(0, 1, 2))
    want = np.where(w >= 0, 1.0, -1.0) * alpha
    np.testing.assert_allclose(got, want, atol=alpha.max() / 127)
    for c in range(3):
        assert len(np.unique(got[..., c])) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="quantization_config"):
        kl.QuantDense(3, quantization_config="int8")
    with pytest.raises(ValueError, match="batch_norm"):
        kl.QuantConv2D(3, 3, batch_norm={"momentun": 0.9})
    with pytest.raises(ValueError, match="batch_norm"):
        kl.QuantDense(3, batch_norm={"momentum": 1.5})
    with pytest.raises(ValueError, match="Unknown quantizer"):
        kl.QuantDense(3, kernel_quantizer="int3")
    with pytest.raises(ValueError, match="scale"):
        kl.BinaryDense(3, scale="row")
    with pytest.raises(ValueError, match="quantizer=None"):
        kl.Quantize(None)
    with pytest.raises(ValueError, match="limit"):
        kl.WeightClip(0.0)
    with pytest.raises(ValueError, match="axis"):
        layer = kl.QuantConv2D(3, 3, kernel_quantizer=quantizers.FakeQuant(axis=5))
        layer.build((None, 6, 6, 2))
    with pytest.raises(ValueError, match="channels_last"):
        layer = kl.QuantConv2D(3, 3, data_format="channels_first", batch_norm=True)
        layer.build((None, 2, 6, 6))
