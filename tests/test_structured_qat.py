"""Structure-preserving QAT: quantize_model keeps pruning masks (and learns
the composite keras-compress layers), and the int8 file has the same zeros."""

import keras
import numpy as np
import pytest

from keras_compress import _tflite, datasets, export
from keras_compress import layers as kl
from keras_compress.pruning import masking, prunable_weights
from keras_compress.quantization import quantize_model
from keras_compress.runtime import LiteRTModel

L = keras.layers


def _compile(model, lr=1e-3):
    model.compile(
        keras.optimizers.Adam(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _composite_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    x = kl.DepthwiseSeparableConv2D(
        16, 3, padding="same", batch_norm=True, use_bias=False,
        activation="relu", depthwise_activation="relu", name="separable",
    )(x)
    x = kl.LowRankConv2D(16, 3, rank=4, padding="same", activation="relu",
                         name="low_rank_conv")(x)
    x = L.Flatten()(x)
    x = kl.LowRankDense(32, rank=8, activation="relu", name="low_rank_dense")(x)
    outputs = L.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs)


def _prune_half(model):
    """Masks the smaller half of every kernel (fixed masks, by hand)."""
    items = prunable_weights(model)
    for item, pm in zip(items, masking.attach(model, items)):
        w = np.asarray(item.variable)
        mask = (np.abs(w) > np.median(np.abs(w))).astype("float32")
        pm.mask.assign(mask)
        item.variable.assign(w * mask)
    return items


def _int8_kernels(data):
    """`{tensor name: int8 array}` of the constant int8 weight tensors."""
    flatbuffer = _tflite.parse(data)
    graph = flatbuffer.subgraphs[0]
    result = {}
    for t in graph.tensors:
        buffer = flatbuffer.buffers[t.buffer].data
        if buffer is None or t.type != _tflite.schema.TensorType.INT8:
            continue
        if len(t.shape) < 2:
            continue
        array = np.frombuffer(bytes(bytearray(buffer)), np.int8)
        result[t.name.decode()] = array.reshape(t.shape)
    return result


def _tflite_layout(kernel, layer):
    """A Keras kernel in the layout the TFLite converter stores it."""
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw, i, m = kernel.shape
        return kernel.reshape(1, kh, kw, i * m)
    if kernel.ndim == 4:
        return kernel.transpose(3, 0, 1, 2)
    return kernel.T


@pytest.fixture(scope="module")
def pruned_qat():
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    model = _compile(_composite_model())
    model.fit(x_train, y_train, epochs=6, batch_size=32, verbose=0)
    _prune_half(model)
    masks_before = {id(v): m.copy() for v, m in (
        (item.variable, np.asarray(item.variable.constraint.mask))
        for item in prunable_weights(model))}
    qat = _compile(quantize_model(model), lr=3e-4)
    qat.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)
    return model, qat, masks_before, (x_test, y_test)


def test_quantize_model_expands_composite_layers(pruned_qat):
    _, qat, _, _ = pruned_qat
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert kinds.count("QuantDepthwiseConv2D") == 1
    assert kinds.count("QuantConv2D") == 4  # stem, pointwise, low-rank u, v
    assert kinds.count("QuantDense") == 3   # low-rank u, v, logits
    assert "BatchNormalization" not in kinds  # fused into its convolution
    assert not any(isinstance(layer, (kl.DepthwiseSeparableConv2D,
                                      kl.LowRankDense, kl.LowRankConv2D))
                   for layer in qat.layers)


def test_masks_survive_qat_exactly(pruned_qat):
    model, qat, masks_before, _ = pruned_qat
    originals = {item.layer.name: item for item in prunable_weights(model)}
    items = prunable_weights(qat)
    assert len(items) == 8
    for item in items:
        pm = item.variable.constraint
        assert isinstance(pm, masking.PruningMask), item.layer.name
        mask = np.asarray(pm.mask)
        kernel = np.asarray(item.variable)
        assert (mask == 0).mean() == pytest.approx(0.5, abs=0.02)
        np.testing.assert_array_equal(kernel[mask == 0], 0.0)
        assert np.count_nonzero(kernel[mask == 1]) == int(mask.sum())
    # The copy owns its masks: the input model's are untouched.
    for item in originals.values():
        np.testing.assert_array_equal(
            np.asarray(item.variable.constraint.mask), masks_before[id(item.variable)]
        )
    assert all(
        item.variable.constraint.mask is not originals[name].variable.constraint.mask
        for name, item in ((i.layer.name, i) for i in items) if name in originals
    )


def test_int8_file_has_the_same_zeros(pruned_qat):
    _, qat, _, (x_test, y_test) = pruned_qat
    data = export.to_tflite(qat, quantize="int8")
    stored = list(_int8_kernels(data).values())
    expected = [
        _tflite_layout(np.asarray(item.variable.constraint.mask), item.layer)
        for item in prunable_weights(qat)
    ]
    assert len(stored) == len(expected)
    unmatched = list(stored)
    for mask in expected:
        hit = [i for i, a in enumerate(unmatched)
               if a.shape == mask.shape and np.array_equal(a != 0, mask != 0)]
        assert hit, f"no int8 tensor with the zeros of a {mask.shape} mask"
        unmatched.pop(hit[0])
    keras_top1 = qat.predict(x_test, verbose=0).argmax(-1)
    litert_top1 = LiteRTModel(data).predict(x_test).argmax(-1)
    assert (keras_top1 == litert_top1).mean() >= 0.97
    assert (litert_top1 == y_test).mean() >= 0.6


def test_binary_mlp_exports_to_a_one_bit_micro_bundle(tmp_path):
    # quantize_model keeps BinaryDense (its own kernel quantizer) and places
    # ranges around it; the int8 bundle then holds two values per tensor,
    # stored by TFLM's DECODE operator at one bit per weight.
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    keras.utils.set_random_seed(0)
    model = _compile(keras.Sequential([
        keras.Input((8, 8, 1)), L.Flatten(),
        kl.BinaryDense(128, activation="relu", scale="tensor", use_bias=False),
        kl.BinaryDense(10, scale="tensor", use_bias=False),
    ]))
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    qat = quantize_model(model)
    assert [type(layer).__name__ for layer in qat.layers].count("BinaryDense") == 2
    report = export.to_micro(qat, tmp_path, "binary", compression="auto")
    rows = {r["name"]: r for r in report["compression"]["tensors"]}
    weights = [r for name, r in rows.items() if name.endswith("/weights")]
    assert len(weights) == 2 and all(r["distinct"] == 2 for r in weights)
    big = max(weights, key=lambda r: r["bytes_before"])
    assert big["compressed"] and big["bytes_after"] <= big["bytes_before"] / 8 + 64
    with open(tmp_path / "binary.tflite", "rb") as f:
        data = f.read()
    from keras_compress.runtime import MicroModel

    micro = MicroModel(data).predict(x_test).argmax(-1)
    keras_top1 = qat.predict(x_test, verbose=0).argmax(-1)
    assert (micro == keras_top1).mean() >= 0.97
    assert (micro == y_test).mean() >= 0.8


def test_pruned_and_clustered_qat_keeps_zeros_and_clusters_in_int8():
    # tfmot's PCQAT: a pruned, clustered model through quantize_model and
    # QAT; the int8 file has the same zeros and at most k values per tensor.
    from keras_compress.clustering import cluster_weights, get_clusters

    (x_train, y_train), _ = datasets.load_digits()
    keras.utils.set_random_seed(1)
    model = _compile(keras.Sequential([
        keras.Input((8, 8, 1)), L.Flatten(),
        L.Dense(64, activation="relu", name="hidden"), L.Dense(10, name="logits"),
    ]))
    model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0)
    _prune_half(model)
    cluster_weights(model, clusters=8, seed=0)
    qat = _compile(quantize_model(model), lr=3e-4)
    qat.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)
    assert set(get_clusters(qat)) == {"hidden/kernel", "logits/kernel"}
    stored = _int8_kernels(export.to_tflite(qat, quantize="int8"))
    for item in prunable_weights(qat):
        kernel = np.asarray(item.variable)
        mask = np.asarray(item.variable.constraint.constraint.mask)  # inner mask
        np.testing.assert_array_equal(kernel != 0, mask != 0)
        assert len(np.unique(kernel)) <= 8
        (int8,) = [a for a in stored.values() if a.shape == kernel.T.shape]
        np.testing.assert_array_equal(int8 != 0, mask.T != 0)
        assert len(np.unique(int8)) <= 8
