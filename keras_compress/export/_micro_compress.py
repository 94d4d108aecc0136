"""`to_micro(compression=...)`: the DECODE compression and its checks."""

import warnings

import numpy as np

from keras_compress import _decode
from keras_compress import _inputs
from keras_compress import _tflite


_VERIFY_SAMPLES = 32
_RANDOM_SAMPLES = 8


def verification_inputs(model, micro, representative_data, limit):
    """Inputs the compressed and uncompressed models must agree on.

    Up to 32 calibration samples (for a Keras model, when the data can be
    read again) and 8 random int8 inputs.
    """
    feeds = []
    if model is not None and representative_data is not None:
        specs = _inputs.tensor_specs(model, batch_size=1)
        try:
            samples = _inputs.take_samples(
                representative_data, specs, min(limit, _VERIFY_SAMPLES)
            )
        except ValueError:
            samples = []  # A generator the calibration used up.
        if samples:
            feeds.append([np.concatenate(s) for s in zip(*samples)])
    rng = np.random.default_rng(0)
    random = []
    for info in micro.inputs:
        shape = (_RANDOM_SAMPLES,) + tuple(info.shape[1:])
        if np.issubdtype(info.dtype, np.integer):
            limits = np.iinfo(info.dtype)
            random.append(rng.integers(limits.min, limits.max, shape, endpoint=True)
                          .astype(info.dtype))
        else:
            random.append(rng.uniform(-1, 1, shape).astype(info.dtype))
    feeds.append(random)
    return feeds


def compress(data, flatbuffer, method, micro, feeds):
    """DECODE-compresses `data`; returns `(data, flatbuffer, report)`.

    The result is checked in Python and in TFLM (see `to_micro`). When
    nothing pays, the model is returned unchanged with a warning.
    """
    from keras_compress._decode import verify

    result = _decode.compress(data, flatbuffer, method)
    report = {
        "method": method,
        "compressed_tensors": sum(r["compressed"] for r in result.rows),
        "flash_bytes_uncompressed": len(data),
        "flash_bytes": len(data),
        "arena_bytes_uncompressed": micro.arena_bytes,
        "arena_bytes": micro.arena_bytes,
        "alt_decompression_memory_bytes": 0,
        "arena_bytes_with_alt_memory": micro.arena_bytes,
        "decode_ops": result.decode_ops,
        "decoded_bytes_per_decode": [sum(d) for d in result.decoded_bytes],
        "overhead_bytes_per_decode": result.per_decode_bytes,
        "overhead_bytes_decode_opcode": result.opcode_bytes,
        "note": result.note,
        "tensors": result.rows,
    }
    if result.data is None:
        warnings.warn(
            f"to_micro(compression={method!r}) compressed nothing: "
            f"{result.note}. The bundle is written uncompressed.",
            stacklevel=3,
        )
        return data, flatbuffer, report
    memory = verify.check_in_tflm(micro, result.data, feeds, result.decoded_bytes)
    report.update(memory, flash_bytes=len(result.data))
    return result.data, _tflite.parse(result.data), report
