"""Tests of the Deep Compression size accounting in keras_compress.analysis.

Every Huffman size is checked against a real encoding that decodes back to
the tensor; hand-computed examples give the expected bits of each
representation as explicit arithmetic.
"""

import json
import math
import os

import keras
import numpy as np
import pytest

from keras_compress import datasets
from keras_compress import export
from keras_compress.analysis import REPRESENTATIONS
from keras_compress.analysis import DeepCompressionTable
from keras_compress.analysis import HuffmanCode
from keras_compress.analysis import WeightBits
from keras_compress.analysis import decode_relative
from keras_compress.analysis import decode_tensor
from keras_compress.analysis import deep_compression_table
from keras_compress.analysis import encode_relative
from keras_compress.analysis import encode_tensor
from keras_compress.analysis import entropy_bits
from keras_compress.analysis import tensor_bits
from keras_compress.analysis import weight_bits
from keras_compress.analysis.coding import LENGTH_FIELD_BITS

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Every test draws the same numbers whichever worker and order run it."""
    global RNG
    RNG = np.random.default_rng(0)


def _streams():
    """Symbol streams with different statistics (name, int array)."""
    return [
        ("uniform16", RNG.integers(0, 16, size=5000)),
        ("geometric", RNG.geometric(0.3, size=4000) - 1),
        ("two_symbols", RNG.choice([-3, 9], size=777, p=[0.9, 0.1])),
        ("skewed", RNG.choice(8, size=3000, p=[.6, .2, .1, .05, .03, .01,
                                              .007, .003])),
        ("negative", RNG.integers(-100, 100, size=2000)),
    ]


# -- Huffman coder -----------------------------------------------------------


@pytest.mark.parametrize("name,stream", _streams(), ids=[s[0] for s in _streams()])
def test_huffman_round_trip_and_size(name, stream):
    code = HuffmanCode.from_symbols(stream)
    data, nbits = code.encode(stream)
    assert nbits == code.encoded_bits(stream)
    assert len(data) == math.ceil(nbits / 8)
    np.testing.assert_array_equal(code.decode(data, nbits, stream.size), stream)
    # The table alone rebuilds the code, and costs what table_bits says.
    offset = int(stream.min())
    shifted = stream - offset
    code = HuffmanCode.from_symbols(shifted)
    table, table_nbits = code.pack_table(symbol_bits=8)
    assert table_nbits == code.table_bits(8) == len(code.symbols) * (8 + 5)
    rebuilt = HuffmanCode.unpack_table(table, table_nbits, len(code.symbols), 8)
    assert rebuilt == code
    data, nbits = rebuilt.encode(shifted)
    np.testing.assert_array_equal(rebuilt.decode(data, nbits, stream.size),
                                  shifted)


@pytest.mark.parametrize("name,stream", _streams(), ids=[s[0] for s in _streams()])
def test_huffman_between_entropy_and_entropy_plus_one(name, stream):
    code = HuffmanCode.from_symbols(stream)
    size = code.encoded_bits(stream)
    h = entropy_bits(stream)
    assert h <= size < h + stream.size
    # Entropy by hand: sum of -log2 p over the stream.
    _, counts = np.unique(stream, return_counts=True)
    p = counts / counts.sum()
    assert h == pytest.approx(float(-(counts * np.log2(p)).sum()))


def test_canonical_code_is_prefix_free_and_complete():
    stream = RNG.geometric(0.2, size=3000)
    code = HuffmanCode.from_symbols(stream)
    words = [format(w, f"0{n}b") for w, n in code.codes().values()]
    for a in words:
        for b in words:
            assert a == b or not b.startswith(a)
    assert sum(2.0 ** -len(w) for w in words) == 1.0


def test_huffman_one_symbol_and_empty_stream():
    stream = np.full(50, 7)
    code = HuffmanCode.from_symbols(stream)
    assert code.lengths == (0,)
    data, nbits = code.encode(stream)
    assert (data, nbits) == (b"", 0)
    np.testing.assert_array_equal(code.decode(data, nbits, 50), stream)
    assert entropy_bits(stream) == 0.0
    empty = HuffmanCode.from_symbols(np.zeros(0, dtype=int))
    assert empty.encode([]) == (b"", 0)
    assert empty.decode(b"", 0, 0).size == 0


def test_huffman_length_limit_keeps_a_complete_code():
    # Fibonacci counts give the deepest Huffman tree: 20 symbols need 19 bits.
    fib = [1, 1]
    while len(fib) < 20:
        fib.append(fib[-1] + fib[-2])
    stream = np.repeat(np.arange(20), fib)
    free = HuffmanCode.from_symbols(stream, max_length=31)
    assert free.max_length == 19
    limited = HuffmanCode.from_symbols(stream, max_length=8)
    assert limited.max_length == 8
    assert sum(2.0 ** -n for n in limited.lengths) == 1.0
    assert limited.encoded_bits(stream) >= free.encoded_bits(stream)
    data, nbits = limited.encode(stream)
    np.testing.assert_array_equal(limited.decode(data, nbits, stream.size),
                                  stream)


def test_huffman_bad_input():
    with pytest.raises(TypeError, match="Expected `symbols` to be an array of"):
        HuffmanCode.from_symbols(np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="Expected `max_length` to be an int"):
        HuffmanCode.from_symbols([1, 2], max_length=0)
    with pytest.raises(ValueError, match="at most 2 \\*\\* max_length = 4"):
        HuffmanCode.from_symbols(np.arange(5), max_length=2)
    code = HuffmanCode.from_symbols([1, 2, 2, 3])
    with pytest.raises(ValueError, match="symbols without one: \\[9\\]"):
        code.encode([1, 9])
    data, nbits = code.encode([1, 2, 2, 3, 3])
    with pytest.raises(ValueError, match="truncated"):
        code.decode(data, nbits - 2, 5)
    with pytest.raises(ValueError, match="fill the stream"):
        code.decode(data, nbits, 4)


# -- Relative indices --------------------------------------------------------


def _naive_relative(flat, index_bits):
    """Reference encoder, written as the paper's figure 2 describes it."""
    gaps, values, since = [], [], 0
    largest = 2 ** index_bits - 1
    for v in flat:
        if v == 0:
            since += 1
            continue
        while since > largest:
            gaps.append(largest)
            values.append(0)
            since -= largest + 1  # The filler takes a position too.
        gaps.append(since)
        values.append(v)
        since = 0
    return gaps, values


def test_relative_index_hand_example():
    s = encode_relative(np.array([0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 7]), 3)
    assert s.gaps.tolist() == [1, 7, 0]
    assert s.values.tolist() == [5, 0, 7]
    assert s.positions.tolist() == [1, 9, 10]
    assert (s.entries, s.fillers) == (3, 1)


@pytest.mark.parametrize("index_bits", [1, 2, 3, 5, 8])
def test_relative_index_decodes_to_the_exact_positions(index_bits):
    w = RNG.normal(size=(40, 30)).astype("float32")
    w[RNG.random(w.shape) < 0.93] = 0.0
    s = encode_relative(w, index_bits)
    gaps, values = _naive_relative(w.reshape(-1), index_bits)
    assert s.gaps.tolist() == gaps
    np.testing.assert_array_equal(s.values, np.asarray(values, "float32"))
    assert s.entries == np.count_nonzero(w) + s.fillers
    assert s.gaps.max() < 2 ** index_bits
    back = decode_relative(s.gaps, s.values, w.size).reshape(w.shape)
    np.testing.assert_array_equal(back, w)
    np.testing.assert_array_equal(np.flatnonzero(back), np.flatnonzero(w))


def test_relative_index_bad_input():
    with pytest.raises(ValueError, match="Expected `index_bits` to be an int"):
        encode_relative(np.ones(3), 0)
    with pytest.raises(ValueError, match="fit in size=4"):
        decode_relative([1, 3], [1.0, 2.0], 4)
    with pytest.raises(ValueError, match="one value per gap"):
        decode_relative([1], [1.0, 2.0], 4)


# -- Hand-computed representations --------------------------------------------


def _four_by_four(dtype):
    # Non-zeros at flat positions 0, 5, 15: gaps 0, 4, 9. With 2-bit gaps
    # (largest 3), gap 4 needs one filler and gap 9 two: stored gaps
    # [0, 3, 0, 3, 3, 1], values [a, 0, a, 0, 0, b], 6 entries.
    a, b = (0.5, -0.25) if dtype == "float32" else (64, -32)
    w = np.zeros(16, dtype=dtype)
    w[0], w[5], w[15] = a, a, b
    return w.reshape(4, 4)


@pytest.mark.parametrize("dtype,vb", [("float32", 32), ("int8", 8)])
def test_four_by_four_by_hand(dtype, vb):
    t = tensor_bits(_four_by_four(dtype), index_bits=2, verify=True)
    assert (t.params, t.nonzeros, t.distinct, t.clusters) == (16, 3, 3, 3)
    assert (t.entries, t.fillers, t.value_bits) == (6, 3, vb)
    codebook = 3 * vb  # {b, 0, a}
    table = 3 * LENGTH_FIELD_BITS
    assert t.bits["dense"] == 16 * vb
    assert t.bits["sparse"] == 6 * (2 + vb)
    assert t.bits["clustered"] == 16 * 2 + codebook
    assert t.bits["sparse_clustered"] == 6 * (2 + 2) + codebook
    # All 16 indices: counts {0 (b): 1, 1 (zero): 13, 2 (a): 2} -> code
    # lengths 2, 1, 2.
    assert t.bits["clustered_huffman"] == (
        codebook + table + (1 * 2 + 13 * 1 + 2 * 2)
    )
    # Stored indices [2, 1, 2, 1, 1, 0]: counts 1, 3, 2 -> lengths 2, 1, 2;
    # gaps [0, 3, 0, 3, 3, 1]: counts {0: 2, 1: 1, 3: 3} -> lengths 2, 2, 1;
    # the gap table lists 3 gap values of 2 bits with 5-bit lengths.
    assert t.bits["sparse_clustered_huffman"] == (
        codebook + table + (1 * 2 + 3 * 1 + 2 * 2)
        + 3 * (2 + LENGTH_FIELD_BITS) + (2 * 2 + 1 * 2 + 3 * 1)
    )
    h = 1 * math.log2(6) + 3 * math.log2(2) + 2 * math.log2(3)
    assert t.entropy_bits["sparse_clustered_huffman"] == pytest.approx(2 * h)
    assert t.entropy_bits["clustered_huffman"] == pytest.approx(
        1 * 4 + 13 * math.log2(16 / 13) + 2 * 3
    )
    assert t.bits_per_weight["dense"] == vb
    assert t.bits_per_weight["sparse"] == 6 * (2 + vb) / 16
    # float32: 512, 204, 128, 120, 130, 150; int8: 128, 60, 56, 48, 58, 78.
    assert t.best == "sparse_clustered"


def test_default_index_bits_follow_the_paper():
    fc = tensor_bits(np.eye(8, dtype="float32"))
    conv = tensor_bits(np.ones((3, 3, 2, 4), "float32"))
    assert (fc.index_bits, conv.index_bits) == (5, 8)
    assert fc.bits["sparse"] == 8 * (5 + 32)  # Gaps of 8 zeros fit 5 bits.


@pytest.mark.parametrize("dtype,vb", [("float32", 32), ("float16", 16),
                                      ("int8", 8), ("float64", 64)])
def test_value_bits_follow_the_dtype(dtype, vb):
    w = np.array([[0, 1, 0, 2], [3, 0, 0, 1]], dtype=dtype)
    t = tensor_bits(w, verify=True)
    assert (t.value_bits, t.bits["dense"]) == (vb, 8 * vb)
    assert t.bits["sparse"] == 4 * (5 + vb)
    assert t.bits["clustered"] == 8 * 2 + 4 * vb  # {0, 1, 2, 3}


def test_encoding_sections_are_real_bit_strings():
    w = RNG.normal(size=(3, 3, 8, 16)).astype("float32")
    w[np.abs(w) < 1.2] = 0
    w = np.round(w * 3) / 3
    for sparse in (True, False):
        enc = encode_tensor(w, sparse=sparse)
        for data, nbits in enc.sections.values():
            assert len(data) == math.ceil(nbits / 8)
        np.testing.assert_array_equal(decode_tensor(enc), w)
        assert decode_tensor(enc).dtype == w.dtype
        rep = "sparse_clustered_huffman" if sparse else "clustered_huffman"
        t = tensor_bits(w)
        assert t.bits[rep] == enc.bits == sum(enc.section_bits().values())
        assert t.sections[rep] == enc.section_bits()
        assert t.bits[rep] >= t.entropy_bits[rep]


def test_one_distinct_value():
    w = np.full((8, 8), 0.5, "float32")
    t = tensor_bits(w, verify=True)
    assert (t.distinct, t.clusters, t.nonzeros, t.entries) == (1, 1, 64, 64)
    assert t.bits["dense"] == 64 * 32
    assert t.bits["sparse"] == 64 * (5 + 32)
    assert t.bits["clustered"] == 0 * 64 + 32  # 0-bit indices + codebook.
    assert t.bits["sparse_clustered"] == 64 * 5 + 32
    assert t.bits["clustered_huffman"] == 32 + LENGTH_FIELD_BITS
    # Gaps all 0: one gap symbol with a 0-bit code, table 5 + 5 bits.
    assert t.bits["sparse_clustered_huffman"] == (
        32 + LENGTH_FIELD_BITS + (5 + LENGTH_FIELD_BITS)
    )
    assert t.best == "clustered"
    assert t.entropy_bits == {"clustered_huffman": 0.0,
                              "sparse_clustered_huffman": 0.0}


def test_all_zero_tensor():
    w = np.zeros((3, 3, 4, 8), "float32")
    t = tensor_bits(w, verify=True)
    assert (t.nonzeros, t.entries, t.fillers, t.distinct) == (0, 0, 0, 1)
    assert t.bits == {
        "dense": 288 * 32,
        "sparse": 0,
        "clustered": 32,
        "sparse_clustered": 0,
        "clustered_huffman": 32 + LENGTH_FIELD_BITS,
        "sparse_clustered_huffman": 0,
    }
    assert t.best == "sparse"
    np.testing.assert_array_equal(decode_tensor(encode_tensor(w)), w)


def test_per_channel_codebooks_on_int8():
    # Channel c (axis 0) holds only +-(c + 1): 2 values per channel, 8 in
    # the tensor.
    signs = np.where(RNG.random((4, 6)) < 0.5, -1, 1)
    w = (signs * np.arange(1, 5)[:, None]).astype("int8")
    per_tensor = tensor_bits(w)
    per_channel = tensor_bits(w, channel_axis=0, verify=True)
    assert (per_tensor.distinct, per_tensor.clusters) == (8, 8)
    assert (per_channel.distinct, per_channel.clusters) == (8, 2)
    assert per_tensor.bits["clustered"] == 24 * 3 + 8 * 8
    assert per_channel.bits["clustered"] == 24 * 1 + 4 * 2 * 8
    assert per_channel.codebooks["clustered"] == "channel"
    # Without zeros the sparse stream is every weight with gap 0.
    assert per_channel.bits["sparse_clustered"] == 24 * (5 + 1) + 4 * 2 * 8
    # Both layouts are tried; the per-tensor one never wins here.
    for rep in REPRESENTATIONS:
        assert per_channel.bits[rep] <= per_tensor.bits[rep]
    enc = encode_tensor(w, channel_axis=0)
    np.testing.assert_array_equal(decode_tensor(enc), w)
    enc = encode_tensor(np.moveaxis(w, 0, -1), channel_axis=-1, sparse=False)
    np.testing.assert_array_equal(decode_tensor(enc), np.moveaxis(w, 0, -1))


def test_huffman_unavailable_beyond_max_length():
    w = np.arange(1, 11, dtype="float32").reshape(2, 5)
    t = tensor_bits(w, max_length=3)  # 10 values > 2 ** 3 code words.
    assert t.bits["clustered_huffman"] is None
    assert t.bits["sparse_clustered_huffman"] is None
    assert t.entropy_bits["clustered_huffman"] == pytest.approx(10 * math.log2(10))
    assert t.best == "dense"
    assert t.bits_per_weight["clustered_huffman"] is None
    json.dumps(t.to_dict())


def test_tensor_bits_bad_input():
    with pytest.raises(TypeError, match="Expected `array` to be a NumPy array"):
        tensor_bits("weights")
    with pytest.raises(TypeError, match="hold integers or floats"):
        tensor_bits(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="no NaN"):
        tensor_bits(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="at least one element"):
        tensor_bits(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="Expected `index_bits` to be an int"):
        tensor_bits(np.ones((2, 2)), index_bits=40)
    with pytest.raises(ValueError, match="Expected `channel_axis` to be None"):
        tensor_bits(np.ones((2, 2)), channel_axis=2)
    with pytest.raises(ValueError, match="Expected `representation`"):
        tensor_bits(np.ones((2, 2))).total_bits("zip")
    with pytest.raises(TypeError, match="Expected `encoded` to be"):
        decode_tensor(np.ones(3))


# -- Models and files --------------------------------------------------------


def _prune_and_round(model, keep=0.25, levels=6):
    """Magnitude-prunes every kernel to `keep` and rounds it to `levels`."""
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel, bias = layer.get_weights()
        cut = np.quantile(np.abs(kernel), 1 - keep)
        kernel = np.where(np.abs(kernel) > cut, kernel, 0)
        grid = np.linspace(np.abs(kernel).max() / levels, np.abs(kernel).max(),
                           levels // 2)
        nz = kernel != 0
        nearest = np.abs(np.abs(kernel[nz])[:, None] - grid).argmin(1)
        kernel[nz] = np.sign(kernel[nz]) * grid[nearest]
        layer.set_weights([kernel.astype("float32"), bias])
    return model


@pytest.fixture(scope="module")
def small():
    """A small CNN on 8x8 digits, pruned and rounded, and its int8 TFLite."""
    (x, y), _ = datasets.load_digits()
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    dense_weights = [w.copy() for w in model.get_weights()]
    _prune_and_round(model)
    tflite = export.to_tflite(model, quantize="int8",
                              representative_data=x[:100])
    return model, dense_weights, tflite


def test_weight_bits_keras_model(small, tmp_path):
    model, _, _ = small
    report = weight_bits(model, verify=True)
    assert report.source == "keras"
    kernels = [model.layers[0].kernel, model.layers[2].kernel]
    assert [r.name for r in report.rows] == [k.path for k in kernels]
    assert [r.shape for r in report.rows] == [(3, 3, 1, 8), (288, 10)]
    assert [r.index_bits for r in report.rows] == [8, 5]
    params = sum(int(np.prod(k.shape)) for k in kernels)
    nonzeros = sum(int(np.count_nonzero(np.asarray(k))) for k in kernels)
    assert (report.totals.params, report.totals.nonzeros) == (params, nonzeros)
    assert report.totals.bits["dense"] == 32 * params
    for rep in REPRESENTATIONS:
        assert report.totals.bits[rep] == sum(r.bits[rep] for r in report.rows)
    assert max(r.clusters for r in report.rows) <= 7  # 6 levels + zero.
    assert report.totals.best == "sparse_clustered_huffman"
    text = str(report)
    assert "sp+cl+huff" in text and report.rows[1].name in text
    path = tmp_path / "small.keras"
    model.save(path)
    from_file = weight_bits(str(path))
    assert from_file.name == "small.keras"
    assert from_file.totals.bits == report.totals.bits


def test_weight_bits_int8_tflite(small, tmp_path):
    model, _, tflite = small
    report = weight_bits(tflite, verify=True)
    assert report.source == "tflite"
    assert sorted(r.shape for r in report.rows) == [(8, 3, 3, 1), (10, 288)]
    assert all(r.dtype == "int8" and r.value_bits == 8 for r in report.rows)
    keras_params = 3 * 3 * 1 * 8 + 288 * 10
    assert report.totals.params == keras_params
    assert report.totals.bits["dense"] == 8 * keras_params
    conv = next(r for r in report.rows if len(r.shape) == 4)
    assert conv.channel_axis == 0 and conv.scale_bits == 32 * 8
    # Per-channel cluster count, computed independently.
    from keras_compress import _tflite

    flat = _tflite.parse(tflite)
    sub = flat.subgraphs[0]
    t = next(t for t in sub.tensors if list(t.shape) == [8, 3, 3, 1]
             and t.type == _tflite.schema.TensorType.INT8
             and flat.buffers[t.buffer].data is not None)
    values = np.asarray(flat.buffers[t.buffer].data, np.uint8).view(np.int8)
    values = values.reshape(8, -1)
    assert conv.clusters == max(np.unique(v).size for v in values)
    assert conv.distinct == np.unique(values).size
    # Symmetric int8 keeps pruned zeros; rounding may add a few.
    keras_nonzeros = weight_bits(model).totals.nonzeros
    assert report.totals.nonzeros <= keras_nonzeros
    assert report.totals.total_bits() == (
        report.totals.bits[report.totals.best] + 32 * (8 + 10)
    )
    path = tmp_path / "model.tflite"
    path.write_bytes(tflite)
    assert weight_bits(path).to_dict() == {**report.to_dict(),
                                           "name": "model.tflite"}
    out = tmp_path / "bits.json"
    text = report.to_json(out)
    assert json.loads(out.read_text()) == json.loads(text) == report.to_dict()
    assert sorted(os.listdir(tmp_path)) == ["bits.json", "model.tflite"]  # No temp.


def test_deep_compression_table(small, tmp_path):
    model, dense_weights, tflite = small
    first = {"conv": dense_weights[0], "dense": dense_weights[2]}
    stages = {"float32": first, "pruned+rounded": model, "int8": tflite}
    table = deep_compression_table(stages, accuracy={"float32": 0.9, "int8": 0.875})
    assert isinstance(table, DeepCompressionTable)
    assert [r.stage for r in table.rows] == list(stages)
    assert [r.accuracy for r in table.rows] == [0.9, None, 0.875]
    for row in table.rows:
        report = table.reports[row.stage]
        assert isinstance(report, WeightBits)
        assert row.representation == report.totals.best
        assert row.bits == report.totals.total_bits()
        assert row.bytes == math.ceil(row.bits / 8)
        assert row.bits_per_weight == row.bits / row.params
        assert row.ratio == table.rows[0].bytes / row.bytes
    assert table.rows[0].representation == "dense"
    assert table.rows[0].ratio == 1.0
    assert table.rows[1].ratio > 8  # 25% kept, <= 7 values: > 8x smaller.
    assert table.rows[0].params == table.rows[1].params == table.rows[2].params
    text = str(table)
    assert "pruned+rounded" in text and "sparse_clustered_huffman" in text
    out = tmp_path / "dc.json"
    table.to_json(out)
    assert json.loads(out.read_text()) == table.to_dict()
    # A report already computed is used as it is.
    again = deep_compression_table({"a": table.reports["int8"]})
    assert again.rows[0].bits == table.rows[2].bits


def test_weight_bits_and_table_bad_input(tmp_path):
    with pytest.raises(TypeError, match="Expected `obj` to be a keras.Model"):
        weight_bits(42)
    with pytest.raises(ValueError, match="at least one weight tensor"):
        weight_bits({})
    with pytest.raises(TypeError, match="Expected the values of `obj`"):
        weight_bits({"w": "not an array"})
    with pytest.raises(ValueError, match="TFLite flatbuffer"):
        weight_bits(b"not a tflite file")
    with pytest.raises(ValueError, match="no such file"):
        weight_bits(str(tmp_path / "missing.tflite"))
    with pytest.raises(ValueError, match="folder .* does not exist"):
        weight_bits({"w": np.ones((2, 2))}).to_json(tmp_path / "no" / "x.json")
    with pytest.raises(ValueError, match="at least one stage"):
        deep_compression_table({})
    with pytest.raises(TypeError, match="Expected `stages` to be a mapping"):
        deep_compression_table([np.ones((2, 2))])
    with pytest.raises(TypeError, match="stage names in `stages` to be strings"):
        deep_compression_table({1: {"w": np.ones((2, 2))}})
    stages = {"a": {"w": np.ones((2, 2))}}
    with pytest.raises(ValueError, match="unknown stages \\['b'\\]"):
        deep_compression_table(stages, accuracy={"b": 0.5})
    with pytest.raises(TypeError, match="accuracy\\['a'\\] to be a number"):
        deep_compression_table(stages, accuracy={"a": "high"})
