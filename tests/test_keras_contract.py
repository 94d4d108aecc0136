"""Every public layer passes Keras's own layer test harness.

`keras.src.testing.TestCase.run_layer_test` builds each layer, checks its
config round trip, output shape and dtype, serialization, a training step
(`fit` in a model), masking flags and mixed precision (`mixed_float16`
and `mixed_bfloat16`). It runs on the backend the process has
(`KERAS_BACKEND`): CI runs this file on TensorFlow, JAX and PyTorch.
"""

import keras
import pytest
from keras.src import testing

from keras_compress import layers as L

# (case name, class, constructor arguments, input shape, output shape)
CASES = [
    ("quant_dense", L.QuantDense, {"units": 4}, (2, 3), (2, 4)),
    ("quant_dense_io", L.QuantDense,
     {"units": 4, "activation": "relu", "input_quantizer": "fake_quant",
      "output_quantizer": "fake_quant"}, (2, 3), (2, 4)),
    ("quant_dense_lora", L.QuantDense, {"units": 4, "lora_rank": 2, "lora_alpha": 4.0},
     (2, 3), (2, 4)),
    ("quant_conv1d", L.QuantConv1D, {"filters": 4, "kernel_size": 3}, (2, 8, 3), (2, 6, 4)),
    ("quant_conv2d", L.QuantConv2D, {"filters": 4, "kernel_size": 3, "padding": "same"},
     (2, 5, 5, 3), (2, 5, 5, 4)),
    ("quant_conv2d_groups", L.QuantConv2D, {"filters": 6, "kernel_size": 3, "groups": 2},
     (2, 5, 5, 4), (2, 3, 3, 6)),
    ("quant_depthwise_conv2d", L.QuantDepthwiseConv2D, {"kernel_size": 3},
     (2, 5, 5, 3), (2, 3, 3, 3)),
    ("quantize", L.Quantize, {}, (2, 5), (2, 5)),
    ("quantize_ste_sign", L.Quantize, {"quantizer": "ste_sign"}, (2, 5), (2, 5)),
    ("binary_dense", L.BinaryDense, {"units": 4, "binarize_inputs": True}, (2, 3), (2, 4)),
    ("binary_conv2d", L.BinaryConv2D, {"filters": 4, "kernel_size": 3},
     (2, 5, 5, 3), (2, 3, 3, 4)),
    ("low_rank_dense", L.LowRankDense, {"units": 4, "rank": 2}, (2, 6), (2, 4)),
    ("low_rank_conv2d", L.LowRankConv2D, {"filters": 4, "kernel_size": 3, "rank": 2},
     (2, 5, 5, 3), (2, 3, 3, 4)),
    ("depthwise_separable_conv2d", L.DepthwiseSeparableConv2D,
     {"filters": 4, "kernel_size": 3}, (2, 5, 5, 3), (2, 3, 3, 4)),
    ("early_exit_head", L.EarlyExitHead, {"num_classes": 10, "filters": 4},
     (2, 5, 5, 3), (2, 10)),
    ("slimmable_dense", L.SlimmableDense, {"units": 4, "width_multipliers": (0.5, 1.0)},
     (2, 6), (2, 4)),
    ("slimmable_conv2d", L.SlimmableConv2D,
     {"filters": 4, "kernel_size": 3, "width_multipliers": (0.5, 1.0)},
     (2, 5, 5, 4), (2, 3, 3, 4)),
    ("switchable_batch_normalization", L.SwitchableBatchNormalization,
     {"width_multipliers": (0.5, 1.0)}, (2, 3, 3, 4), (2, 3, 3, 4)),
]


class _Harness(testing.TestCase):
    def runTest(self):  # unittest needs a test method to make an instance
        pass


# Layers whose Keras parent supports masking (Dense) do too.
MASKING = {"quant_dense", "quant_dense_io", "quant_dense_lora", "binary_dense",
           "slimmable_dense"}


@pytest.mark.parametrize("name,cls,kwargs,input_shape,output_shape", CASES,
                         ids=[case[0] for case in CASES])
def test_keras_layer_harness(name, cls, kwargs, input_shape, output_shape):
    harness = _Harness()
    harness.setUp()
    try:
        harness.run_layer_test(
            cls, kwargs, input_shape=input_shape, expected_output_shape=output_shape,
            supports_masking=name in MASKING, run_training_check=True,
            run_mixed_precision_check=True)
    finally:
        harness.tearDown()
        keras.config.set_dtype_policy("float32")


def test_quant_dense_lora_trains_the_adapter_and_saves(tmp_path):
    """`QuantDense(lora_rank=...)` behaves as `Dense(lora_rank=...)`: the
    kernel is frozen, the adapter trains, and a `.keras` file keeps both."""
    import numpy as np

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    y = np.random.default_rng(1).integers(0, 4, size=32)
    model = keras.Sequential([keras.Input((6,)), L.QuantDense(4, lora_rank=2, lora_alpha=4.0)])
    layer = model.layers[0]
    assert layer.lora_enabled and not layer._kernel.trainable
    kernel = np.asarray(layer._kernel)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(np.asarray(layer._kernel), kernel)
    assert np.abs(np.asarray(layer.lora_kernel_b)).max() > 0  # the adapter trained
    path = str(tmp_path / "lora.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


PARENTS = [
    (L.QuantDense, keras.layers.Dense), (L.BinaryDense, keras.layers.Dense),
    (L.LowRankDense, keras.layers.Dense), (L.SlimmableDense, keras.layers.Dense),
    (L.QuantConv1D, keras.layers.Conv1D), (L.QuantConv2D, keras.layers.Conv2D),
    (L.BinaryConv2D, keras.layers.Conv2D), (L.LowRankConv2D, keras.layers.Conv2D),
    (L.SlimmableConv2D, keras.layers.Conv2D),
    (L.QuantDepthwiseConv2D, keras.layers.DepthwiseConv2D),
    (L.DepthwiseSeparableConv2D, keras.layers.SeparableConv2D),
    (L.SwitchableBatchNormalization, keras.layers.BatchNormalization),
]


@pytest.mark.parametrize("cls,parent", PARENTS, ids=[c.__name__ for c, _ in PARENTS])
def test_every_parent_argument_with_its_default(cls, parent):
    import inspect

    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(parent.__init__).parameters
    for name, param in theirs.items():
        if name in ("self", "kwargs"):
            continue
        assert name in ours, f"{cls.__name__} lacks {parent.__name__}'s `{name}`"
        assert ours[name].default == param.default, (cls.__name__, name)


# Parent arguments a layer refuses (the message names the argument and value).
REFUSED = [
    (L.BinaryDense, {"units": 4}, "lora_rank", 2),
    (L.BinaryDense, {"units": 4}, "quantization_config", "int8"),
    (L.QuantDense, {"units": 4}, "quantization_config", "int8"),
    (L.LowRankDense, {"units": 4, "rank": 2}, "lora_rank", 2),
    (L.LowRankDense, {"units": 4, "rank": 2}, "quantization_config", "int8"),
    (L.LowRankConv2D, {"filters": 4, "kernel_size": 3, "rank": 2}, "groups", 2),
]


@pytest.mark.parametrize("cls,kwargs,name,value", REFUSED,
                         ids=[f"{c.__name__}-{n}" for c, _, n, _ in REFUSED])
def test_unsupported_parent_arguments_are_refused(cls, kwargs, name, value):
    with pytest.raises(ValueError, match=rf"Expected {name}=.*Received: {name}={value!r}"):
        cls(**kwargs, **{name: value})
