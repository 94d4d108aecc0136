"""Parameters, non-zeros, MACs and bytes of a Keras or `.tflite` model.

`summarize` reads both ends of the pipeline: the Keras model before export
and the `.tflite` bytes after it, with MAC conventions that agree between the
two (see `keras_compress.analysis.keras_model` and
`keras_compress.analysis.tflite_model`), and byte conventions documented in
`keras_compress.analysis.summary`. `file_breakdown` tells where the bytes of
a `.tflite` go (weights, quantization parameters, names, tables, ...).

`weight_bits` and `deep_compression_table` count the bits of the weights in
the encodings of Deep Compression (dense, sparse with relative indices,
clustered, Huffman-coded; see `keras_compress.analysis.weight_bits`), the
Huffman sizes being lengths of real encodings (`encode_tensor` /
`decode_tensor`, codes in `keras_compress.analysis.coding`).
"""

import os

from keras_compress.analysis.coding import HuffmanCode
from keras_compress.analysis.coding import entropy_bits
from keras_compress.analysis.codec import EncodedTensor
from keras_compress.analysis.codec import decode_tensor
from keras_compress.analysis.codec import encode_tensor
from keras_compress.analysis.deep_compression import DeepCompressionTable
from keras_compress.analysis.deep_compression import StageRow
from keras_compress.analysis.deep_compression import deep_compression_table
from keras_compress.analysis.file_bytes import FileBreakdown
from keras_compress.analysis.file_bytes import file_breakdown
from keras_compress.analysis.relative_index import RelativeIndexStream
from keras_compress.analysis.relative_index import decode_relative
from keras_compress.analysis.relative_index import encode_relative
from keras_compress.analysis.summary import LayerStats
from keras_compress.analysis.summary import Summary
from keras_compress.analysis.weight_bits import REPRESENTATIONS
from keras_compress.analysis.weight_bits import TensorBits
from keras_compress.analysis.weight_bits import tensor_bits
from keras_compress.analysis.weight_report import WeightBits
from keras_compress.analysis.weight_report import weight_bits

__all__ = [
    "DeepCompressionTable",
    "EncodedTensor",
    "FileBreakdown",
    "HuffmanCode",
    "LayerStats",
    "REPRESENTATIONS",
    "RelativeIndexStream",
    "StageRow",
    "Summary",
    "TensorBits",
    "WeightBits",
    "decode_relative",
    "decode_tensor",
    "deep_compression_table",
    "encode_relative",
    "encode_tensor",
    "entropy_bits",
    "file_breakdown",
    "summarize",
    "tensor_bits",
    "weight_bits",
]


def summarize(obj):
    """Returns per-layer or per-operator statistics of a model.

    Each row gives the parameters, the non-zero parameters, the sparsity, the
    multiply-accumulates per inference at batch size 1 and the size of the
    parameters as float32 (`4 * params`), int8 (`params`; quantization scales
    not counted) and sparse (`4 * nonzeros + ceil(params / 8)`: float32
    non-zeros plus a one-bit mask). TFLite rows also give `bytes_stored`, the
    bytes the file really holds for the operator's constants.

    MACs: one per multiply(-accumulate), bias and element-wise adds free.
    `Dense`: rows * in * units; convolutions: output positions * kernel
    size * in_channels / groups * filters (transposed ones use input
    positions); depthwise: output positions * kernel size * channels *
    depth_multiplier; `BatchNormalization`: one per output element; pooling:
    output elements * pool size; global pooling: input elements; other layers
    0. The TFLite side uses the same formulas on the converted operators
    (`CONV_2D`, `DEPTHWISE_CONV_2D`, `TRANSPOSE_CONV`, `FULLY_CONNECTED`,
    `MUL` by a constant, pooling, `MEAN`, ...), so a model and its float
    conversion report the same total MACs for these layers. Exceptions come
    from converter rewrites: a `BatchNormalization` right after a convolution
    or `Dense` is folded into it and costs 0 in the `.tflite`.

    Args:
        obj: A built `keras.Model`; `.tflite` content as `bytes`,
            `bytearray` or `memoryview`; or a path (`str` or `os.PathLike`)
            to a `.tflite` file or to a `.keras` file (loaded with
            `keras.saving.load_model(path, safe_mode=True)`).

    Returns:
        A `Summary`. `print(summary)` shows an aligned table;
        `summary.to_json(path)` stores it.

    Raises:
        TypeError: if `obj` is none of the accepted types.
        ValueError: if a path does not exist, a `.tflite` is corrupt or
            truncated, a `.keras` file cannot be loaded, or a Keras model is
            not built.

    Example:

    ```python
    import keras
    from keras_compress.analysis import summarize

    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    s = summarize(model)
    print(s)
    assert s.totals.macs == 6 * 6 * 3 * 3 * 3 * 4 + 6 * 6 * 4 + 4 * 2
    ```
    """
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if path.lower().endswith(".keras"):
            return _summarize_keras_file(path)
        from keras_compress.analysis.tflite_model import summarize_tflite

        return summarize_tflite(path)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        from keras_compress.analysis.tflite_model import summarize_tflite

        return summarize_tflite(obj)
    import keras  # Only now: reading a .tflite needs no TensorFlow.

    if isinstance(obj, keras.Model):
        from keras_compress.analysis.keras_model import summarize_keras

        return summarize_keras(obj)
    raise TypeError(
        "Expected `obj` to be a keras.Model, .tflite bytes, or a path (str "
        "or os.PathLike) to a .tflite or .keras file. "
        f"Received: obj of type {type(obj).__name__}"
    )


def _summarize_keras_file(path):
    import keras

    from keras_compress.analysis.keras_model import summarize_keras

    if not os.path.isfile(path):
        raise ValueError(
            "Expected `obj` to be the path of an existing .keras file. "
            f"Received: obj={path!r} (no such file)"
        )
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as e:
        raise ValueError(
            f"Expected `obj` to be a loadable .keras file ({type(e).__name__}:"
            f" {e}). Received: obj={path!r}"
        ) from None
    return summarize_keras(model)
