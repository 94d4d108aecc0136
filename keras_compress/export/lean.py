"""Lean `.tflite` files, proven to compute exactly what the original computes."""

import numpy as np

from keras_compress import _io
from keras_compress import _tflite
from keras_compress.export import _lean
from keras_compress.export import _sparse

_VERIFY_ARENA = 16 * 1024 * 1024
_RANDOM_SAMPLES = 4


def lean_tflite(tflite, path=None, micro=False, sample_inputs=None):
    """Removes from a `.tflite` what the LiteRT and TFLite Micro runtimes
    never read, and proves the result computes bit-identical outputs.

    Removed: tensor names, the model description, `min_runtime_version` and
    `CONVERSION_METADATA` metadata, the signature def (first putting the
    subgraph's inputs and outputs in its order, so `LiteRTModel` and
    `MicroModel` keep the model's order), the empty buffer the converter
    gives every activation tensor, byte-identical constant buffers, unused
    buffers, tensors and operator codes, `shape_signature` fields equal to
    the shape and empty quantization tables. Kept: every per-channel zero
    point (LiteRT refuses a tensor with fewer zero points than scales) and
    the quantization of int32 biases (XNNPACK needs it). A small int8 model
    loses a fifth of its file this way (a 3,274-parameter Conv1D net:
    9,760 -> 7,648 bytes; `micro=True`: 6,528). The lean file runs in
    LiteRT and TFLite Micro, but `interpreter.get_signature_runner()` is no
    longer available on it.

    Both files are run on `sample_inputs` (random inputs when None) in
    LiteRT, with XNNPACK (builtin kernels for files XNNPACK refuses) and
    with the reference kernels; with `micro=True`, LiteRT runs the portable
    lean file and TFLite Micro runs the original and the micro-lean file.
    The outputs must be identical to the bit; nothing is written otherwise.

    Args:
        tflite: `.tflite` bytes or a path to a `.tflite` file.
        path: Optional output path (its folder must exist). Default None.
        micro: Also store a single zero point for per-channel quantized
            tensors whose zero points are all equal (int8 weights and
            biases: 8 bytes per channel each). TFLite Micro's allocator
            expands it back; LiteRT then refuses the file. Default False.
        sample_inputs: Inputs to compare the outputs on: an array, or a list
            of arrays (one per input). Default None (random inputs).

    Returns:
        The lean flatbuffer as `bytes`.

    Example:

    >>> data = keras_compress.export.to_tflite(model, quantize="int8",
    ...                                        representative_data=x)
    >>> small = lean_tflite(data, sample_inputs=x[:16])
    >>> len(small) < len(data)
    True
    """
    data = _tflite.read_bytes(tflite, "tflite")
    _tflite.parse(data, "tflite")
    if not isinstance(micro, bool):
        raise TypeError(
            f"Expected `micro` to be a bool. Received: micro={micro!r}"
        )
    if path is not None:
        path = _io.check_output_path(path)
    lean = lean_with_check(data, micro=micro, sample_inputs=sample_inputs)
    if path is not None:
        _io.write_atomic(path, lean)
    return lean


def lean_with_check(data, micro=False, sample_inputs=None, litert_kernels=None,
                    tflm=False):
    """The lean version of `data`, after proving it runs bit-identically.

    The portable lean file is compared with `data` in LiteRT, which orders
    the original's inputs and outputs by its signature and the lean file's
    by its subgraph: this also proves the reordering. TFLite Micro ignores
    signatures, so there the lean file is compared with `data` whose
    subgraph inputs and outputs were only put in signature order.

    Args:
        data: Validated `.tflite` bytes.
        micro: See `lean_tflite`. The zero-point sharing is then checked in
            TFLite Micro only (LiteRT cannot load such a file).
        sample_inputs: Inputs to compare on, or None (random).
        litert_kernels: LiteRT kernel settings to compare with; default None
            (XNNPACK, or builtin when XNNPACK refuses the file, and
            reference).
        tflm: Also compare in TFLite Micro, default False (always True
            with `micro`).
    """
    try:
        portable = _lean.lean_bytes(data)
        lean = _lean.lean_bytes(data, micro=True) if micro else portable
    except ValueError as e:
        raise ValueError(f"Could not make the model lean: {e}") from None
    if litert_kernels is None:
        litert_kernels = tuple(dict.fromkeys((litert_kernels_for(data), "reference")))
    for kernels in litert_kernels:
        check_identical(data, portable, sample_inputs, "LiteRT", kernels)
    if tflm or micro:
        check_identical(_lean.signature_ordered(data), lean, sample_inputs,
                        "TFLite Micro")
    return lean


def litert_kernels_for(data):
    """`"builtin"` for files XNNPACK refuses (int8 sparse weights), else
    `"xnnpack"`."""
    if _sparse.has_integer_sparse_tensors(_tflite.parse(data)):
        return "builtin"
    return "xnnpack"


def check_identical(original, lean, sample_inputs, runtime, kernels=None):
    """Raises `RuntimeError` unless both files give the same outputs.

    Args:
        original, lean: `.tflite` bytes.
        sample_inputs: Inputs (array or list of arrays), or None (random).
        runtime: `"LiteRT"` or `"TFLite Micro"`.
        kernels: LiteRT kernel setting (`"xnnpack"`, `"builtin"`,
            `"reference"`).
    """
    before = _runner(original, runtime, kernels)
    after = _runner(lean, runtime, kernels)
    feed = sample_inputs
    if feed is None:
        feed = random_inputs(before.inputs)
    want = _as_list(before.predict(feed, raw=True))
    got = _as_list(after.predict(feed, raw=True))
    same = len(got) == len(want) and all(
        g.shape == w.shape and g.dtype == w.dtype
        and np.array_equal(g, w, equal_nan=g.dtype.kind == "f")
        for g, w in zip(got, want)
    )
    if not same:
        where = runtime if kernels is None else f"{runtime} ({kernels} kernels)"
        raise RuntimeError(
            "The lean .tflite does not compute what the original computes "
            f"in {where}: expected bit-identical outputs. This is a bug in "
            "keras_compress's lean pass; export without it (lean=False)."
        )


def _runner(data, runtime, kernels):
    if runtime == "LiteRT":
        from keras_compress.runtime.litert import LiteRTModel

        return LiteRTModel(data, kernels=kernels)
    from keras_compress.runtime.micro import MicroModel

    return MicroModel(data, arena_size=_VERIFY_ARENA)


def random_inputs(infos, seed=0):
    """Random inputs for a runtime's `inputs` (full int range, or [0, 1)).

    Four samples, whatever the model's batch size (the runtimes loop).
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for info in infos:
        inner = tuple(1 if d is None else d for d in info.shape[1:])
        shape = (_RANDOM_SAMPLES,) + inner
        if np.issubdtype(info.dtype, np.integer):
            limits = np.iinfo(info.dtype)
            a = rng.integers(limits.min, limits.max, shape, endpoint=True)
        else:
            a = rng.uniform(0, 1, shape)
        arrays.append(a.astype(info.dtype))
    return arrays[0] if len(arrays) == 1 else arrays


def _as_list(outputs):
    return [np.asarray(o) for o in (outputs if isinstance(outputs, list) else [outputs])]
