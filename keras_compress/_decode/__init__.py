"""TFLite Micro DECODE compression of constant tensors (LUT, pruning, Huffman).

`compress` rewrites an int8 `.tflite` so that weights are stored encoded
and decoded by `TFLM_DECODE` operators at run time. The encoders and the
runtime-faithful decoders are ours; the formats are those of TFLite
Micro's kernels (`tensorflow/lite/micro/kernels/decode_state_*.cc`).
"""

import dataclasses

from keras_compress import _tflite
from keras_compress._decode import check
from keras_compress._decode import plan
from keras_compress._decode import rewrite
from keras_compress._decode.plan import METHODS

__all__ = ["METHODS", "Compression", "compress"]


@dataclasses.dataclass
class Compression:
    """The result of `compress`.

    Attributes:
        data: The compressed `.tflite` bytes, or None when nothing paid.
        rows: One dict per quantized constant an operator reads.
        per_decode_bytes: Measured flatbuffer bytes of one more DECODE
            (operator, ancillary tensor and buffer, decoded tensor).
        opcode_bytes: Measured bytes of the `TFLM_DECODE` operator code.
        decode_ops: Number of DECODE operators written.
        decoded_bytes: Bytes of each tensor each DECODE writes (aligned
            to 16), a tuple per DECODE.
        note: Why nothing was compressed (None when something was).
    """

    data: object
    rows: list
    per_decode_bytes: int
    opcode_bytes: int
    decode_ops: int = 0
    decoded_bytes: tuple = ()
    note: object = None


def compress(data, model, method):
    """Compresses the constants of `model` where it pays.

    Args:
        data: The `.tflite` bytes of `model`.
        model: Its `schema.ModelT` (not changed).
        method: One of `METHODS`: "lut", "prune", "huffman" or "auto"
            (per tensor, the decode type that saves the most).

    Returns:
        A `Compression`. Its `data` decodes, in Python, to exactly the
        original constants (checked here; `RuntimeError` otherwise).
    """
    candidates = plan.find_candidates(model, data)
    usable = [c for c in candidates if c.reason is None]
    per_decode, opcode = plan.measure_overhead(model, usable) if usable else (0, 0)
    encodings = plan.choose(candidates, method, per_decode, opcode)
    result = Compression(None, [], per_decode, opcode)
    if not candidates:
        result.note = "the model has no quantized constant read by an operator"
    elif not encodings:
        result.note = "no tensor gets smaller with DECODE (see the tensor rows)"
    else:
        new = rewrite.insert_decodes(model, encodings)
        out = _tflite.serialize(new)
        if len(out) >= len(data):
            result.note = (
                f"the compressed model would take {len(out)} bytes, the "
                f"uncompressed one {len(data)}"
            )
            for c in candidates:
                if c.choice is not None:
                    c.choice = None
                    c.reason = result.note
        else:
            originals = {
                c.key: (c.tensor, c.values.reshape(-1))
                for c in candidates if c.choice is not None
            }
            result.decode_ops = check.check_decoding(out, originals)
            result.data = out
            result.decoded_bytes = tuple(plan.decoded_bytes_per_decode(new))
    result.rows = [c.row() for c in candidates]
    return result
