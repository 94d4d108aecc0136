"""Run a DECODE-compressed model in TFLite Micro and measure its memory.

TFLite Micro decodes each compressed constant right before the operator
that reads it, into the tensor arena, or into alternate decompression
memory when the firmware hands some to the interpreter
(`MicroInterpreter::SetDecompressionMemory`). Each DECODE operator starts
that memory afresh, so it must hold the largest set of tensors one DECODE
writes; what does not fit there goes to the arena. Both memories are
measured here, in TFLM's own interpreter.
"""

import numpy as np

from keras_compress import _arena
from keras_compress.runtime.micro import MicroModel
from keras_compress.runtime.micro import find_arena_size

_ALIGN = 16


def compare_outputs(reference, micro, feed, what):
    """Raises `RuntimeError` unless `micro` gives `reference`'s raw outputs."""
    want = reference.predict(feed, raw=True)
    got = micro.predict(feed, raw=True)
    want = want if isinstance(want, list) else [want]
    got = got if isinstance(got, list) else [got]
    for i, (w, g) in enumerate(zip(want, got)):
        if w.shape != g.shape or not np.array_equal(w, g):
            diff = (
                int(np.count_nonzero(w != g)) if w.shape == g.shape else "all"
            )
            raise RuntimeError(
                f"The compressed model ({what}) does not compute what the "
                f"uncompressed int8 model computes in TensorFlow Lite Micro: "
                f"expected bit-identical raw outputs. Received: {diff} of "
                f"{w.size} values of output {i} differ; nothing was written"
            )


def smallest_alt_memory(data, decoded_bytes):
    """Alternate decompression memory that keeps every decoded tensor out
    of the arena, and the arena it leaves.

    Args:
        data: The compressed `.tflite` bytes.
        decoded_bytes: For each DECODE operator, the bytes of each tensor
            it writes (aligned to 16). The largest sum, the largest tensor
            and 16 bytes less than each are tried first.

    Returns:
        `(alt_bytes, arena_bytes)`: the smallest alternate memory (to 16
        bytes) with which the model runs in the smallest arena that ample
        alternate memory allows, and that arena.
    """
    sums = [sum(sizes) for sizes in decoded_bytes]
    largest = max(max(sizes) for sizes in decoded_bytes)
    # Ample: every decoded tensor at once, with room to align each.
    count = sum(len(sizes) for sizes in decoded_bytes)
    roomy = sum(sums) + _ALIGN * (count + 8)
    arena = find_arena_size(data, roomy)
    known = {roomy: True}

    def fits(size):
        if size not in known:
            known[size] = _arena.fits(data, arena, size)
        return known[size]

    high, low = roomy, None
    guesses = {max(sums), max(sums) - _ALIGN, largest, largest - _ALIGN}
    for size in sorted((g for g in guesses if g > 0), reverse=True):
        if low is not None and size <= low:
            break
        if fits(size):
            high = size
        else:
            low = size
    if low is None:
        if fits(0):
            return 0, arena  # The arena holds the decoded tensors anyway.
        low = 0
    while high - low > _ALIGN:
        mid = (low + high) // 2 // _ALIGN * _ALIGN
        if fits(mid):
            high = mid
        else:
            low = mid
    return high, arena


def check_in_tflm(reference, data, feeds, decoded_bytes):
    """Runs the compressed model with and without alternate memory.

    Args:
        reference: The uncompressed model's `MicroModel`.
        data: The compressed `.tflite` bytes.
        feeds: Lists of input arrays (one per model input) for both.
        decoded_bytes: For each DECODE operator, the bytes of each tensor
            it writes.

    Returns:
        A dict: `arena_bytes` (decoding into the arena),
        `alt_decompression_memory_bytes` and `arena_bytes_with_alt_memory`.
    """
    micro = MicroModel(data)
    for feed in feeds:
        compare_outputs(reference, micro, feed, "decoding into the arena")
    alt, arena = smallest_alt_memory(data, decoded_bytes)
    with_alt = MicroModel(data, arena_size=arena, alt_decompression_memory_size=alt)
    for feed in feeds:
        compare_outputs(reference, with_alt, feed, "decoding into alternate memory")
    return {
        "arena_bytes": micro.arena_bytes,
        "alt_decompression_memory_bytes": alt,
        "arena_bytes_with_alt_memory": arena,
    }
