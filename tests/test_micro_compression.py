"""to_micro(..., compression=...): TFLM DECODE bundles, run in TFLite Micro."""

import json
import math
import os

import keras
import numpy as np
import pytest

from keras_compress import _tflite
from keras_compress import analysis
from keras_compress import export
from keras_compress._decode import check
from keras_compress._decode.huffman import Huffman
from keras_compress._decode.layout import Layout
from keras_compress._decode.layout import NotDecodable
from keras_compress._decode.lut import Lut
from keras_compress._decode.prune import Prune
from keras_compress.runtime import MicroModel
from keras_compress import _arena


_ROOMY = 256 * 1024  # An arena for models whose arena is not measured here.


def _cluster(kernel, k, axis, zeros, rng, shared=False):
    """Rounds every channel (a slice on `axis`) to at most `k` distinct
    values, a fraction `zeros` of them (at random positions) to 0. The
    levels are the channel's quantiles, or with `shared` evenly spaced in
    +-max (so after per-channel quantization every channel has the same
    int8 levels)."""
    w = np.moveaxis(kernel, axis, 0).copy()
    for row in w.reshape(len(w), -1):
        n = k - (zeros > 0)
        if shared:
            levels = np.linspace(-1, 1, n) * np.abs(row).max()
        else:
            levels = np.quantile(row, np.linspace(0, 1, n))
        snapped = levels[np.abs(row[:, None] - levels[None]).argmin(1)]
        snapped[rng.random(row.size) < zeros] = 0.0
        row[:] = snapped
    return np.moveaxis(w, 0, axis)


def _clustered(model, plan, seed=0):
    """Clusters the kernels of `model`'s layers (`{layer: (k, zeros,
    shared)}`) and gives them non-zero biases (stored as int32)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name in plan:
            k, zeros, shared = plan[layer.name]
            weights = layer.get_weights()
            # Depthwise kernels [kh, kw, in, 1]: the channel is axis 2.
            axis = 2 if isinstance(layer, keras.layers.DepthwiseConv2D) else -1
            weights[0] = _cluster(weights[0], k, axis, zeros, rng, shared)
            weights[1] = rng.normal(0.0, 0.05, weights[1].shape)
            layer.set_weights(weights)
    return model


def _mlp():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="d16"),
        keras.layers.Dense(32, activation="relu", name="d4"),
        keras.layers.Dense(10, name="d2"),
    ])
    return _clustered(model, {
        "d16": (16, 0.0, False), "d4": (4, 0.5, False), "d2": (2, 0.0, False),
    })


def _cnn():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu",
                            name="small")(inputs)
    x = keras.layers.DepthwiseConv2D(5, padding="same", activation="relu",
                                     name="dw2")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c16")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, name="d4")(x)
    model = keras.Model(inputs, outputs)
    return _clustered(model, {
        "small": (4, 0.0, False), "dw2": (2, 0.6, False), "c16": (16, 0.3, False),
        "d4": (3, 0.8, True),
    })


@pytest.fixture(scope="module")
def mlp():
    return _mlp()


@pytest.fixture(scope="module")
def cnn_tflite(digits):
    (x_train, _), _ = digits
    return export.to_tflite(
        _cnn(), quantize="int8", representative_data=x_train[:100],
        int8_io=True, batch_size=1,
    )


@pytest.fixture(scope="module")
def cnn_reference(cnn_tflite, digits):
    """Raw int8 outputs of the uncompressed CNN in TFLM on the test digits."""
    _, (x_test, _) = digits
    return MicroModel(cnn_tflite, arena_size=_ROOMY).predict(x_test, raw=True)


@pytest.fixture(scope="module")
def mlp_plain(mlp, digits):
    (x_train, _), _ = digits
    return export.to_tflite(mlp, quantize="int8", representative_data=x_train[:100],
                            int8_io=True, batch_size=1)


@pytest.fixture(scope="module")
def mlp_bundle(mlp, digits, tmp_path_factory):
    (x_train, _), _ = digits
    out = tmp_path_factory.mktemp("mlp") / "lut"
    report = export.to_micro(mlp, out, "mlp", representative_data=x_train[:100],
                             compression="lut")
    return out, report


@pytest.fixture(scope="module")
def cnn_bundles(cnn_tflite, tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn")
    return {
        method: (root / method, export.to_micro(cnn_tflite, root / method, "cnn",
                                                compression=method))
        for method in ("lut", "prune", "huffman", "auto")
    }


def _weights(data):
    """`{(shape, channels): int8 values}` of the int8 weight tensors."""
    model = _tflite.parse(data)
    out = {}
    for t in model.subgraphs[0].tensors:
        data = model.buffers[t.buffer].data
        if t.type == _tflite.schema.TensorType.INT8 and data is not None and len(data):
            out[tuple(int(d) for d in t.shape)] = np.asarray(data, np.uint8).view(np.int8)
    return out


def _lut_bytes(values, shape, last_axis):
    """Packed indices + DCM + per-channel tables, from the values alone."""
    w = values.reshape(shape)
    rows = w.reshape(-1, shape[-1]).T if last_axis else w.reshape(shape[0], -1)
    stride = max(len(np.unique(r)) for r in rows)
    bits = max(1, math.ceil(math.log2(stride)))
    return math.ceil(values.size * bits / 8) + 16 + len(rows) * stride, bits


def test_mlp_lut_bundle_is_bit_identical_and_smaller(mlp_bundle, mlp_plain, digits):
    _, (x_test, _) = digits
    out, report = mlp_bundle
    plain = mlp_plain
    data = (out / "mlp.tflite").read_bytes()
    got = MicroModel(data, arena_size=report["arena_bytes"]).predict(x_test, raw=True)
    want = MicroModel(plain, arena_size=_ROOMY).predict(x_test, raw=True)
    assert np.array_equal(got, want)
    c = report["compression"]
    assert json.loads((out / "mlp_report.json").read_text()) == report
    assert report["flash_bytes"] == len(data) == c["flash_bytes"]
    rows = {tuple(r["shape"]): r for r in c["tensors"]}
    expected_saving = 0
    for shape, values in _weights(plain).items():
        row = rows[shape]
        lut_bytes, bits = _lut_bytes(values, shape, last_axis=False)
        assert row["compressed"] and row["decode_type"] == "lut", row
        assert row["channels"] == shape[0] and row["channel_axis"] == 0
        assert row["bits"] == bits and row["bytes_after"] == lut_bytes
        expected_saving += values.size - lut_bytes
    # 16, 4 (3 + zero) and 2 values per output channel: 4, 2 and 1 bits.
    assert [rows[s]["bits"] for s in [(64, 64), (32, 64), (10, 32)]] == [4, 2, 1]
    biases = [r for r in c["tensors"] if r["dtype"] == "int32"]
    assert len(biases) == 3 and not any(r["compressed"] for r in biases)
    assert all("would grow" in r["reason"] for r in biases)
    # Each DECODE: its measured flatbuffer cost + up to 48 bytes of padding.
    overhead = c["overhead_bytes_decode_opcode"] + 3 * (c["overhead_bytes_per_decode"] + 48)
    saved = c["flash_bytes_uncompressed"] - report["flash_bytes"]
    assert saved >= expected_saving - overhead
    header = (out / "mlp.h").read_text()
    assert "resolver.AddDecode();" in header and "SetDecompressionMemory" in header
    assert f"#define MLP_ARENA_SIZE {c['arena_bytes']}" in header
    alt = c["alt_decompression_memory_bytes"]
    assert f"#define MLP_ALT_DECOMPRESSION_MEMORY_SIZE {alt}" in header


def test_alternate_memory_takes_the_decoded_weights(mlp_bundle, digits):
    _, (x_test, _) = digits
    out, report = mlp_bundle
    c = report["compression"]
    data = (out / "mlp.tflite").read_bytes()
    alt, arena = c["alt_decompression_memory_bytes"], c["arena_bytes_with_alt_memory"]
    # Each DECODE starts the memory afresh: the largest one's weights fit.
    assert alt == max(c["decoded_bytes_per_decode"]) == 64 * 64
    assert c["arena_bytes"] >= c["arena_bytes_uncompressed"] + 64 * 64
    assert arena < c["arena_bytes_uncompressed"] + 1024  # DECODE bookkeeping.
    with_alt = MicroModel(data, arena_size=arena, alt_decompression_memory_size=alt)
    plain = MicroModel(data, arena_size=_ROOMY)
    assert np.array_equal(with_alt.predict(x_test[:50], raw=True),
                          plain.predict(x_test[:50], raw=True))
    # 16 bytes less and the 4 KB weight falls back to the arena.
    assert not _arena.fits(data, arena, alt - 16)
    assert _arena.fits(data, c["arena_bytes"], 0)


def test_summarize_reads_a_decode_model(mlp_bundle, mlp_plain):
    out, report = mlp_bundle
    compressed = analysis.summarize(out / "mlp.tflite")
    reference = analysis.summarize(mlp_plain)
    assert compressed.totals.params == reference.totals.params
    assert compressed.totals.nonzeros == reference.totals.nonzeros
    assert compressed.totals.macs == reference.totals.macs
    rows = report["compression"]["tensors"]
    saved = sum(r["bytes_before"] - r["bytes_after"] for r in rows)
    assert compressed.totals.bytes_stored == reference.totals.bytes_stored - saved
    decode_rows = [r for r in compressed.rows if r.kind == "CUSTOM:TFLM_DECODE"]
    assert len(decode_rows) == 3 and all(r.params == 0 for r in decode_rows)


def test_cnn_lut_tables_follow_each_tensors_channels(cnn_bundles, cnn_tflite,
                                                      cnn_reference, digits):
    _, (x_test, _) = digits
    out, report = cnn_bundles["lut"]
    data = (out / "cnn.tflite").read_bytes()
    got = MicroModel(data, arena_size=report["arena_bytes"]).predict(x_test, raw=True)
    assert np.array_equal(got, cnn_reference)
    rows = {tuple(r["shape"]): r for r in report["compression"]["tensors"]}
    weights = _weights(cnn_tflite)
    depthwise = rows[(1, 5, 5, 32)]  # Quantized on its last axis.
    assert depthwise["channels"] == 32 and depthwise["channel_axis"] == 3
    assert depthwise["compressed"] and depthwise["bits"] == 1
    shape = (1, 5, 5, 32)
    assert depthwise["bytes_after"] == _lut_bytes(weights[shape], shape, True)[0]
    big = rows[(32, 3, 3, 32)]
    assert big["channels"] == 32 and big["channel_axis"] == 0 and big["bits"] == 4
    assert big["bytes_after"] <= 0.56 * big["bytes_before"]  # 4 bits + tables.
    dense = rows[(10, 512)]
    assert dense["bits"] == 2 and dense["bytes_after"] <= 0.27 * dense["bytes_before"]
    # 9 weights per channel: the DECODE costs more than 2-bit indices save.
    small = rows[(32, 3, 3, 1)]
    assert small["bits"] == 2 and not small["compressed"]
    assert small["candidates"]["lut"] < small["bytes_before"]
    assert "would grow" in small["reason"]
    assert report["ops"].count("CUSTOM:TFLM_DECODE") == 1
    assert report["op_counts"]["CUSTOM:TFLM_DECODE"] == 3


@pytest.mark.parametrize("method", ["prune", "huffman", "auto"])
def test_other_decode_types_run_bit_identical(cnn_bundles, cnn_reference, digits, method):
    _, (x_test, _) = digits
    out, report = cnn_bundles[method]
    c = report["compression"]
    assert c["compressed_tensors"] >= 2
    allowed = {"prune": {"prune"}, "huffman": {"huffman"},
               "auto": {"lut", "prune", "huffman"}}[method]
    assert {r["decode_type"] for r in c["tensors"] if r["compressed"]} <= allowed
    data = (out / "cnn.tflite").read_bytes()
    got = MicroModel(data, arena_size=report["arena_bytes"]).predict(x_test, raw=True)
    assert np.array_equal(got, cnn_reference)
    assert report["flash_bytes"] < c["flash_bytes_uncompressed"]
    if method == "huffman":
        # Per-channel levels give a tensor many distinct values, so long
        # codes, decoded through sub-tables.
        model = _tflite.parse((out / "cnn.tflite").read_bytes())
        tables = [np.frombuffer(bytes(b.data)[16:], "<u2") for b in model.buffers
                  if b.data is not None and len(b.data) > 16 and b.data[0] == 1]
        assert len(tables) == c["compressed_tensors"]
        assert any(np.any(t & 0x8000 == 0) for t in tables)
    if method == "auto":
        others = [cnn_bundles[m][1]["flash_bytes"] for m in ("lut", "prune", "huffman")]
        assert report["flash_bytes"] <= min(others)
        # 80% zeros and 3 values: Huffman's 1-bit zero beats 2-bit indices.
        decode_types = {tuple(r["shape"]): r["decode_type"] for r in c["tensors"]}
        assert decode_types[(10, 512)] == "huffman"
        assert decode_types[(32, 3, 3, 32)] == "lut"


def test_a_sparse_bias_is_compressed_with_its_weights(digits, tmp_path):
    """One DECODE writes both constants of a FULLY_CONNECTED: 3-level
    weights (Huffman) and a 4 KB int32 bias with 95% zeros (pruning)."""
    (x_train, _), (x_test, _) = digits
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1024, activation="relu", name="wide"),
                              keras.layers.Dense(10)])
    rng = np.random.default_rng(7)
    kernel, bias = model.get_layer("wide").get_weights()
    bias = rng.normal(0.0, 0.1, bias.shape) * (rng.random(bias.shape) < 0.05)
    model.get_layer("wide").set_weights([np.round(kernel * 20) / 20, bias])
    report = export.to_micro(model, tmp_path / "b", "wide",
                             representative_data=x_train[:64], compression="auto")
    c = report["compression"]
    rows = {tuple(r["shape"]): r for r in c["tensors"]}
    assert rows[(1024,)]["decode_type"] == "prune" and rows[(1024,)]["zeros"] > 0.9
    assert rows[(1024, 64)]["decode_type"] == "huffman"
    assert report["op_counts"]["CUSTOM:TFLM_DECODE"] == 1
    assert c["decoded_bytes_per_decode"] == [1024 * 64 + 1024 * 4]
    # The weights must leave the arena; the bias may stay (it fits there).
    assert 1024 * 64 <= c["alt_decompression_memory_bytes"] <= 1024 * 68
    plain = export.to_tflite(model, quantize="int8", representative_data=x_train[:64],
                             int8_io=True, batch_size=1)
    data = (tmp_path / "b" / "wide.tflite").read_bytes()
    got = MicroModel(data, arena_size=report["arena_bytes"]).predict(x_test, raw=True)
    assert np.array_equal(got, MicroModel(plain, arena_size=_ROOMY).predict(x_test, raw=True))


@pytest.mark.parametrize("k,dtype", [(1, "i1"), (2, "i1"), (255, "i1"), (40, "<i2")])
def test_huffman_round_trip_through_the_kernel_rules(k, dtype, rng):
    if k == 255:
        values = np.clip(np.round(rng.standard_cauchy(6000) * 3), -128, 127)
    else:
        values = rng.integers(0, k, 3000) * 3 - 7
    values = values.astype(dtype)
    layout = Layout(np.dtype(dtype), values.shape)
    encoded, ancillary, info = Huffman().encode(values, layout)
    assert len(encoded) % 4 == 0 and ancillary[0] == 1 and ancillary[4] == 1
    if dtype == "<i2":
        assert ancillary[5] & 1  # int16 needs 32-bit table entries.
    assert np.array_equal(Huffman().decode(encoded, ancillary, layout), values)
    assert info["distinct"] == len(np.unique(values))


def test_the_python_check_catches_a_per_tensor_table_on_per_channel_weights(rng):
    # 4 values per output channel, other values in every channel.
    w = rng.integers(0, 4, (8, 3, 3, 4)) * 5 + np.arange(8)[:, None, None, None]
    w = w.astype("i1")
    layout = Layout(np.dtype("i1"), w.shape, channels=8, zero_points=(0,) * 8)
    encoded, ancillary, _ = Lut().encode(w, layout, one_table=True)
    assert ancillary[5] >> 4 == 0xF  # The header says "one table" ...
    with pytest.raises(NotDecodable, match="value tables"):
        Lut().decode(encoded, ancillary, layout)  # ... the kernel reads 8.
    encoded, ancillary, _ = Lut().encode(w, layout)
    assert np.array_equal(Lut().decode(encoded, ancillary, layout), w.reshape(-1))
    flipped = bytes([encoded[0] ^ 0x40]) + encoded[1:]
    wrong = Lut().decode(flipped, ancillary, layout) != w.reshape(-1)
    assert np.count_nonzero(wrong) == 1


def test_prune_writes_per_channel_zero_points(rng):
    w = rng.integers(-3, 4, (4, 10)).astype("i1")
    zero_points = (0, 2, -1, 0)
    for c, z in enumerate(zero_points):
        w[c, ::2] = z
    layout = Layout(np.dtype("i1"), w.shape, channels=4, zero_points=zero_points)
    encoded, ancillary, info = Prune().encode(w, layout)
    assert info["zeros"] >= 20 and len(ancillary) == 16 + w.size - info["zeros"]
    assert np.array_equal(Prune().decode(encoded, ancillary, layout), w.reshape(-1))


def test_one_table_per_tensor_on_per_channel_weights_is_refused(cnn_tflite, tmp_path,
                                                                 monkeypatch):
    encode = Lut.encode
    monkeypatch.setattr(
        Lut, "encode", lambda self, v, lay: encode(self, v, lay, one_table=True)
    )
    with pytest.raises(RuntimeError, match="does not decode"):
        export.to_micro(cnn_tflite, tmp_path / "b", "cnn", compression="lut")
    assert not (tmp_path / "b").exists()


def test_a_corrupt_encoding_is_caught_in_python(cnn_tflite, tmp_path, monkeypatch):
    encode = Lut.encode

    def flip_one_bit(self, values, layout):
        encoded, ancillary, info = encode(self, values, layout)
        return bytes([encoded[0] ^ 0x80]) + encoded[1:], ancillary, info

    monkeypatch.setattr(Lut, "encode", flip_one_bit)
    match = "compressed tensor .* (does not decode|decodes to other values)"
    with pytest.raises(RuntimeError, match=match):
        export.to_micro(cnn_tflite, tmp_path / "b", "cnn", compression="lut")
    assert not (tmp_path / "b").exists()


def test_tflm_catches_what_the_python_check_missed(cnn_tflite, tmp_path, monkeypatch):
    """With the Python check disabled, TFLM's outputs expose negated value
    tables (which keep every read in bounds)."""
    encode = Lut.encode

    def negate_tables(self, values, layout):
        encoded, ancillary, info = encode(self, values, layout)
        tables = -np.frombuffer(ancillary[16:], layout.dtype)
        return encoded, ancillary[:16] + tables.astype(layout.dtype).tobytes(), info

    monkeypatch.setattr(Lut, "encode", negate_tables)
    monkeypatch.setattr(check, "check_decoding", lambda data, originals: len(originals))
    with pytest.raises(RuntimeError, match="bit-identical raw outputs"):
        export.to_micro(cnn_tflite, tmp_path / "b", "cnn", compression="lut")
    assert not (tmp_path / "b").exists()


def test_nothing_worth_compressing_writes_the_plain_bundle(digits, tmp_path):
    (x_train, _), _ = digits
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(8)])
    with pytest.warns(UserWarning, match="compressed nothing"):
        report = export.to_micro(model, tmp_path / "b", "plain",
                                 representative_data=x_train[:50], compression="auto")
    c = report["compression"]
    assert c["compressed_tensors"] == 0
    assert c["flash_bytes"] == c["flash_bytes_uncompressed"] == report["flash_bytes"]
    assert "CUSTOM:TFLM_DECODE" not in report["ops"]
    weights = next(r for r in c["tensors"] if r["shape"] == [8, 64])
    assert weights["distinct"] > 32 and not weights["compressed"]
    assert "AddDecode" not in (tmp_path / "b" / "plain.h").read_text()
    assert os.path.getsize(tmp_path / "b" / "plain.tflite") == report["flash_bytes"]


def test_float_model_is_refused(mlp, tmp_path):
    with pytest.raises(ValueError, match="full-int8"):
        export.to_micro(export.to_tflite(mlp), tmp_path / "b", "mlp", compression="lut")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("compression", ["zip", "LUT", 4])
def test_unknown_compression_is_refused(cnn_tflite, tmp_path, compression):
    with pytest.raises(ValueError, match="Expected `compression` to be None or one of"):
        export.to_micro(cnn_tflite, tmp_path / "b", "cnn", compression=compression)
    assert not (tmp_path / "b").exists()
