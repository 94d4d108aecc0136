"""Decode a DECODE model in Python and compare with the original constants.

The TFLite Micro kernels do no bounds checks: a wrong stride, bit width or
table reads past a buffer silently. So before a compressed model reaches
the runtime, the bytes written are parsed again and every DECODE output is
decoded the way the kernel reads it (from the output tensor's metadata)
and must equal the original constant exactly.
"""

import numpy as np

from keras_compress import _tflite
from keras_compress._decode import layout as _layout
from keras_compress._decode import rewrite
from keras_compress._decode.huffman import Huffman
from keras_compress._decode.huffman import TYPE as HUFFMAN
from keras_compress._decode.lut import TYPE as LUT
from keras_compress._decode.lut import Lut
from keras_compress._decode.prune import TYPE as PRUNE
from keras_compress._decode.prune import Prune

_BY_TYPE = {LUT: Lut, PRUNE: Prune, HUFFMAN: Huffman}


def _bytes(model, tensor):
    data = model.buffers[tensor.buffer].data
    return b"" if data is None else np.asarray(data, dtype=np.uint8).tobytes()


def _quantization(t):
    q = t.quantization
    if q is None:
        return [], []
    return [list(v) if v is not None else [] for v in (q.scale, q.zeroPoint)]


def _same_metadata(a, b):
    return (
        list(a.shape) == list(b.shape) and a.type == b.type
        and _quantization(a) == _quantization(b)
    )


def check_decoding(data, originals):
    """Raises `RuntimeError` unless every DECODE output equals its constant.

    Args:
        data: The compressed `.tflite` bytes.
        originals: `{(subgraph, tensor): (TensorT, values)}`: each
            compressed constant as it was (metadata and stored values).

    Returns:
        The number of DECODE operators checked.
    """
    model = _tflite.parse(data, "compressed model")
    decoded, count = set(), 0
    for g, graph in enumerate(model.subgraphs):
        operators = graph.operators or []
        for k, op in enumerate(operators):
            if not rewrite.is_decode(model, op):
                continue
            count += 1
            ins, outs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]
            consumer = operators[k + 1] if k + 1 < len(operators) else None
            if len(ins) != 2 * len(outs) or consumer is None:
                raise RuntimeError(f"DECODE operator {k} is malformed")
            for j, out in enumerate(outs):
                encoded, ancillary = ins[2 * j], ins[2 * j + 1]
                if (g, encoded) not in originals:
                    raise RuntimeError(
                        f"DECODE operator {k} reads tensor {encoded}, which "
                        "was not compressed"
                    )
                source, want = originals[(g, encoded)]
                target = graph.tensors[out]
                name = _name(source, encoded)
                if not _same_metadata(source, target):
                    raise RuntimeError(
                        f"DECODE operator {k} writes tensor {out} unlike the "
                        f"original constant {name!r}"
                    )
                if out not in [int(i) for i in consumer.inputs]:
                    raise RuntimeError(
                        f"The operator after DECODE {k} does not read {name!r}"
                    )
                try:
                    got = decode_constant(
                        _bytes(model, graph.tensors[encoded]),
                        _bytes(model, graph.tensors[ancillary]),
                        target,
                    )
                except _layout.NotDecodable as e:
                    raise RuntimeError(
                        f"The compressed tensor {name!r} does not decode: {e}"
                    ) from None
                if not np.array_equal(got, want):
                    wrong = int(np.count_nonzero(got != want))
                    raise RuntimeError(
                        f"The compressed tensor {name!r} decodes to other "
                        f"values: {wrong} of {want.size} elements differ"
                    )
                decoded.add((g, encoded))
    missing = set(originals) - decoded
    if missing:
        raise RuntimeError(f"No DECODE operator writes the tensors {sorted(missing)}")
    return count


def _name(tensor, index):
    if not tensor.name:
        return f"tensor {index}"
    return tensor.name.decode("utf-8", "replace")


def decode_constant(encoded, ancillary, tensor):
    """Values a DECODE writes for `tensor` from these bytes (element order).

    Raises:
        NotDecodable: for an unknown decode type or inconsistent bytes.
    """
    codec = _BY_TYPE.get(ancillary[0] if ancillary else None)
    if codec is None:
        raise _layout.NotDecodable(f"decode type {bytes(ancillary[:1])!r}")
    return codec().decode(encoded, ancillary, _layout.Layout.of(tensor))
