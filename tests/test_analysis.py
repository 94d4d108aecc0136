"""Tests of keras_compress.analysis on real Keras models and real conversions.

Expected numbers are written as explicit arithmetic from the MAC conventions:
output positions * kernel size * input channels (per group) * filters, etc.
"""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_compress.analysis import LayerStats
from keras_compress.analysis import Summary
from keras_compress.analysis import summarize

L = keras.layers


def _model(input_shape, *layers, name=None):
    x = keras.Input(input_shape)
    y = x
    for layer in layers:
        y = layer(y)
    return keras.Model(x, y, name=name)


def _randomize(model, seed=0):
    """Non-zero weights everywhere, so the converter drops no bias."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))
    return model


def _to_tflite(model):
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


# Each case: (id, model factory, Keras MACs, Keras params, TFLite params).
# TFLite MACs must equal the Keras MACs in every case.
CASES = [
    (
        "dense",
        lambda: _model((5,), L.Dense(3)),
        5 * 3,
        5 * 3 + 3,
        5 * 3 + 3,
    ),
    (
        "dense_on_sequence",  # Dense on (4, 5): 4 rows of 5 -> 3.
        lambda: _model((4, 5), L.Dense(3)),
        4 * 5 * 3,
        5 * 3 + 3,
        5 * 3 + 3,
    ),
    (
        "conv1d_stride2_same",  # length 10, stride 2, same -> 5.
        lambda: _model((10, 3), L.Conv1D(4, 3, strides=2, padding="same")),
        5 * 3 * 3 * 4,
        3 * 3 * 4 + 4,
        3 * 3 * 4 + 4,
    ),
    (
        # Causal keeps length 10. The converter emits PAD, SPACE_TO_BATCH_ND,
        # a CONV_2D with a zero bias of its own (4 values), BATCH_TO_SPACE_ND
        # and an ADD of the real bias.
        "conv1d_causal_dilated",
        lambda: _model(
            (10, 3), L.Conv1D(4, 3, padding="causal", dilation_rate=2)
        ),
        10 * 3 * 3 * 4,
        3 * 3 * 4 + 4,
        3 * 3 * 4 + 4 + 4,
    ),
    (
        "conv2d_stride2_valid",  # 9x9, k3, s2, valid -> 4x4.
        lambda: _model(
            (9, 9, 4), L.Conv2D(8, 3, strides=2, padding="valid")
        ),
        4 * 4 * 3 * 3 * 4 * 8,
        3 * 3 * 4 * 8 + 8,
        3 * 3 * 4 * 8 + 8,
    ),
    (
        "conv2d_stride2_same",  # 8x8, k3, s2, same -> 4x4.
        lambda: _model((8, 8, 3), L.Conv2D(4, 3, strides=2, padding="same")),
        4 * 4 * 3 * 3 * 3 * 4,
        3 * 3 * 3 * 4 + 4,
        3 * 3 * 3 * 4 + 4,
    ),
    (
        # 9x9, k3, dilation 2 -> 5x5. The converter runs the conv on a padded
        # 2x2-block grid (4 x 3x3 = 36 positions); MACs count the 25 kept.
        # As for Conv1D above, a zero bias (4) is added to the CONV_2D.
        "conv2d_dilated",
        lambda: _model((9, 9, 3), L.Conv2D(4, 3, dilation_rate=2)),
        5 * 5 * 3 * 3 * 3 * 4,
        3 * 3 * 3 * 4 + 4,
        3 * 3 * 3 * 4 + 4 + 4,
    ),
    (
        "conv2d_groups2",  # 6x6 -> 4x4, each filter sees 4 / 2 channels.
        lambda: _model((6, 6, 4), L.Conv2D(6, 3, groups=2)),
        4 * 4 * 3 * 3 * (4 // 2) * 6,
        3 * 3 * (4 // 2) * 6 + 6,
        3 * 3 * (4 // 2) * 6 + 6,
    ),
    (
        "depthwise_conv2d_dm2",  # 8x8 -> 6x6, 3 channels * 2.
        lambda: _model((8, 8, 3), L.DepthwiseConv2D(3, depth_multiplier=2)),
        6 * 6 * 3 * 3 * 3 * 2,
        3 * 3 * 3 * 2 + 3 * 2,
        3 * 3 * 3 * 2 + 3 * 2,
    ),
    (
        # The converter gives the depthwise half a bias of its own (zeros,
        # 3 values) that the Keras layer does not have.
        "separable_conv2d",
        lambda: _model((8, 8, 3), L.SeparableConv2D(5, 3)),
        6 * 6 * 3 * 3 * 3 + 6 * 6 * 3 * 5,
        3 * 3 * 3 + 3 * 5 + 5,
        3 * 3 * 3 + 3 + 3 * 5 + 5,
    ),
    (
        "conv2d_transpose_stride2",  # input positions 4x4.
        lambda: _model((4, 4, 3), L.Conv2DTranspose(5, 3, strides=2)),
        4 * 4 * 3 * 3 * 3 * 5,
        3 * 3 * 5 * 3 + 5,
        3 * 3 * 5 * 3 + 5,
    ),
    (
        # gamma, beta, moving mean and variance; the converter keeps one
        # scale (MUL) and one shift (ADD) per channel.
        "batch_normalization",
        lambda: _model((4, 4, 3), L.BatchNormalization()),
        4 * 4 * 3,
        4 * 3,
        2 * 3,
    ),
    (
        "max_pooling2d",  # 4x4 -> 2x2, window 2x2.
        lambda: _model((4, 4, 3), L.MaxPooling2D(2)),
        2 * 2 * 3 * 2 * 2,
        0,
        0,
    ),
    (
        "average_pooling2d",  # 5x5, window 3, stride 1 -> 3x3.
        lambda: _model((5, 5, 3), L.AveragePooling2D(3, strides=1)),
        3 * 3 * 3 * 3 * 3,
        0,
        0,
    ),
    (
        "global_average_pooling2d",
        lambda: _model((4, 4, 3), L.GlobalAveragePooling2D()),
        4 * 4 * 3,
        0,
        0,
    ),
    (
        "global_max_pooling2d",
        lambda: _model((4, 4, 3), L.GlobalMaxPooling2D()),
        4 * 4 * 3,
        0,
        0,
    ),
    (
        "conv3d",  # 4x4x4 -> 3x3x3; the converter adds the bias with ADD.
        lambda: _model((4, 4, 4, 2), L.Conv3D(3, 2)),
        3 * 3 * 3 * 2 * 2 * 2 * 2 * 3,
        2 * 2 * 2 * 2 * 3 + 3,
        2 * 2 * 2 * 2 * 3 + 3,
    ),
]


@pytest.mark.parametrize(
    "factory, macs, params, tflite_params",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_layer_macs_and_params(factory, macs, params, tflite_params):
    model = _randomize(factory())
    s = summarize(model)
    assert s.source == "keras"
    assert s.file_bytes is None
    assert s.totals.macs == macs
    assert s.totals.params == params
    assert s.totals.nonzeros == params
    assert s.totals.bytes_stored is None
    layer_row = s.rows[-1]
    assert layer_row.macs == macs
    assert layer_row.output_shape == (None,) + tuple(model.output.shape[1:])

    t = summarize(_to_tflite(model))
    assert t.source == "tflite"
    assert t.totals.macs == macs
    assert t.totals.params == tflite_params
    assert t.totals.bytes_stored >= 4 * tflite_params  # float32 weights.


def test_lone_batch_norm_converts_to_mul_and_add():
    model = _randomize(_model((4, 4, 3), L.BatchNormalization()))
    t = summarize(_to_tflite(model))
    assert [r.kind for r in t.rows] == ["MUL", "ADD"]
    assert [r.macs for r in t.rows] == [4 * 4 * 3, 0]
    assert [r.params for r in t.rows] == [3, 3]


def test_byte_conventions():
    model = _randomize(_model((6, 6, 4), L.Conv2D(8, 3)))
    kernel = model.layers[-1].kernel
    values = np.ones(kernel.shape, "float32")
    values.reshape(-1)[: values.size // 2] = 0.0
    kernel.assign(values)
    params = 3 * 3 * 4 * 8 + 8
    nonzeros = 3 * 3 * 4 * 8 // 2 + 8
    for s in (summarize(model), summarize(_to_tflite(model))):
        row = [r for r in s.rows if r.params][0]
        assert row.params == params
        assert row.nonzeros == nonzeros
        assert row.sparsity == pytest.approx(1 - nonzeros / params)
        assert row.bytes_float32 == 4 * params
        assert row.bytes_int8 == params
        assert row.bytes_sparse == 4 * nonzeros + math.ceil(params / 8)
        assert s.totals.nonzeros == nonzeros


def test_zero_params_sparsity_is_zero():
    s = summarize(_model((4, 4, 3), L.ReLU(), L.Flatten()))
    assert [r.params for r in s.rows] == [0, 0]
    assert [r.sparsity for r in s.rows] == [0.0, 0.0]
    assert [r.macs for r in s.rows] == [0, 0]
    assert s.rows[1].output_shape == (None, 4 * 4 * 3)


def test_nested_model():
    inner = keras.Sequential(
        [keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="conv"), L.ReLU()],
        name="block",
    )
    x = keras.Input((8, 8, 3))
    y = L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(inner(x)))
    model = _randomize(keras.Model(x, y, name="outer"))
    s = summarize(model)
    names = [r.name for r in s.rows]
    assert names[0] == "block/conv"
    assert "gap" in names and "head" in names
    macs = 6 * 6 * 3 * 3 * 3 * 4 + 6 * 6 * 4 + 4 * 2
    params = 3 * 3 * 3 * 4 + 4 + 4 * 2 + 2
    assert s.totals.macs == macs
    assert s.totals.params == params
    t = summarize(_to_tflite(model))
    assert t.totals.macs == macs
    assert t.totals.params == params


def test_shared_layer_counts_every_call():
    dense = L.Dense(3, name="shared")
    a, b = keras.Input((5,)), keras.Input((5,))
    model = keras.Model([a, b], L.Add()([dense(a), dense(b)]))
    s = summarize(model)
    row = [r for r in s.rows if r.name == "shared"][0]
    assert row.macs == 2 * 5 * 3
    assert row.params == 5 * 3 + 3


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L.Conv2D(4, 3, name="conv")
        self.pool = L.GlobalAveragePooling2D(name="gap")
        self.head = L.Dense(2, name="head")

    def call(self, x):
        return self.head(self.pool(self.conv(x)))


def test_subclassed_model_traced_after_call():
    model = _Subclassed()
    model(np.zeros((2, 8, 8, 3), "float32"))
    s = summarize(model)
    assert [r.name for r in s.rows] == ["conv", "gap", "head"]
    assert s.totals.macs == 6 * 6 * 3 * 3 * 3 * 4 + 6 * 6 * 4 + 4 * 2
    assert s.totals.params == 3 * 3 * 3 * 4 + 4 + 4 * 2 + 2
    assert s.rows[0].output_shape == (None, 6, 6, 4)


def test_unbuilt_model_is_rejected():
    model = keras.Sequential([L.Dense(3)])
    with pytest.raises(ValueError, match="built"):
        summarize(model)


def _small_cnn():
    return _randomize(
        _model(
            (8, 8, 3),
            L.Conv2D(4, 3, padding="same"),
            L.GlobalAveragePooling2D(),
            L.Dense(2),
        )
    )


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
def test_int8_model():
    model = _small_cnn()
    rng = np.random.default_rng(1)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.uniform(0, 1, (1, 8, 8, 3)).astype("float32")] for _ in range(8)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    t = summarize(converter.convert())
    k = summarize(model)
    assert t.totals.params == k.totals.params
    assert t.totals.macs == k.totals.macs
    conv = [r for r in t.rows if r.kind == "CONV_2D"][0]
    # int8 weights (1 byte each) and int32 biases (4 bytes each).
    assert conv.params == 3 * 3 * 3 * 4 + 4
    assert conv.bytes_stored == 3 * 3 * 3 * 4 + 4 * 4
    dense = [r for r in t.rows if r.kind == "FULLY_CONNECTED"][0]
    assert dense.bytes_stored == 4 * 2 + 4 * 2
    # Everything else stored is the MEAN axes: two int32.
    assert t.totals.bytes_stored == conv.bytes_stored + dense.bytes_stored + 8
    assert t.totals.params <= t.totals.bytes_stored < 2 * t.totals.params


def test_float16_weights_attributed_to_consumer():
    model = _small_cnn()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    t = summarize(converter.convert())
    assert t.totals.params == summarize(model).totals.params
    assert all(r.params == 0 for r in t.rows if r.kind == "DEQUANTIZE")
    conv = [r for r in t.rows if r.kind == "CONV_2D"][0]
    assert conv.params == 3 * 3 * 3 * 4 + 4
    assert conv.bytes_stored == 2 * (3 * 3 * 3 * 4 + 4)


def test_sparse_encoded_tflite():
    x = keras.Input((4, 4, 8))
    y = L.Dense(4)(L.Flatten()(L.Conv2D(16, 1)(x)))
    model = _randomize(keras.Model(x, y))
    rng = np.random.default_rng(2)
    for layer in model.layers[1:]:
        if getattr(layer, "kernel", None) is not None:
            kernel = np.array(layer.kernel)
            kernel[rng.uniform(size=kernel.shape) < 0.9] = 0.0
            layer.kernel.assign(kernel)
    k = summarize(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    t = summarize(converter.convert())
    assert "DENSIFY" in [r.kind for r in t.rows]  # Really sparse-encoded.
    assert all(r.params == 0 for r in t.rows if r.kind == "DENSIFY")
    params = 8 * 16 + 16 + 4 * 4 * 16 * 4 + 4
    assert t.totals.params == k.totals.params == params
    assert t.totals.nonzeros == k.totals.nonzeros
    assert t.totals.sparsity == k.totals.sparsity
    assert t.totals.macs == k.totals.macs == 4 * 4 * 8 * 16 + 4 * 4 * 16 * 4
    # Only the non-zero values are stored.
    assert t.totals.bytes_stored < t.totals.bytes_float32 / 4


def test_json_round_trip(tmp_path):
    model = _small_cnn()
    data = _to_tflite(model)
    for s in (summarize(model), summarize(data)):
        text = s.to_json()
        assert Summary.from_dict(json.loads(text)) == s
        path = tmp_path / f"{s.source}.json"
        assert s.to_json(path) == text
        assert Summary.from_dict(json.loads(path.read_text())) == s
    assert sorted(os.listdir(tmp_path)) == ["keras.json", "tflite.json"]
    row = summarize(model).rows[0]
    assert LayerStats.from_dict(row.to_dict()) == row
    assert isinstance(row.output_shape, tuple)


def test_table_lists_every_layer_and_total():
    model = _small_cnn()
    s = summarize(model)
    text = str(s)
    assert text == s.table()
    for layer in model.layers[1:]:  # Every layer but the InputLayer.
        assert layer.name in text
    assert "total" in text
    assert f"{s.totals.macs:,}" in text
    t = summarize(_to_tflite(model))
    text = str(t)
    for kind in ("CONV_2D", "MEAN", "FULLY_CONNECTED", "total", "stored"):
        assert kind in text


def test_paths(tmp_path):
    model = _small_cnn()
    data = _to_tflite(model)
    tflite_path = tmp_path / "m.tflite"
    tflite_path.write_bytes(data)
    from_path = summarize(tflite_path)
    assert from_path.file_bytes == len(data)
    assert from_path.name == "m.tflite"
    assert from_path.rows == summarize(data).rows
    assert summarize(str(tflite_path)).totals == from_path.totals

    keras_path = tmp_path / "m.keras"
    model.save(keras_path)
    loaded = summarize(str(keras_path))
    assert loaded.source == "keras"
    assert loaded.rows == summarize(model).rows


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="obj"):
        summarize(os.urandom(1000))
    data = _to_tflite(_small_cnn())
    with pytest.raises(ValueError, match="obj"):
        summarize(data[: len(data) // 2])
    with pytest.raises(ValueError, match="obj"):
        summarize(data[:200])
    with pytest.raises(TypeError, match="obj of type int"):
        summarize(42)
    with pytest.raises(TypeError, match="obj of type Dense"):
        summarize(L.Dense(3))
    with pytest.raises(ValueError, match="missing.tflite"):
        summarize(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="missing.keras"):
        summarize(str(tmp_path / "missing.keras"))
    bad_keras = tmp_path / "bad.keras"
    bad_keras.write_bytes(os.urandom(100))
    with pytest.raises(ValueError, match="bad.keras"):
        summarize(bad_keras)
