"""Prove a packed file computes what the builtin int8 file computes.

Three checks, each on the verification inputs:

1. NumPy: every packed operator's reference computation
   (`custom_ops.reference.run`, rounding as LiteRT's reference kernels) on its input
   tensor, as the builtin file computes it in LiteRT's reference kernels,
   equals the builtin operator's output tensor. Needs nothing but NumPy.
2. LiteRT: the packed file, its operators in the keras-compress delegate
   and every other operator in LiteRT's reference kernels, gives the
   builtin file's outputs bit for bit.
3. TFLite Micro: the same, with the compiled registerer.

A mismatch raises `RuntimeError`. A check that cannot run here (no C
compiler, a tflite-micro build other than the pinned one, a model TFLM
cannot run) is skipped with a warning that says why; the result lists what
ran.
"""

import warnings

import numpy as np

from keras_compress.custom_ops import BuildError
from keras_compress.custom_ops import reference

_ARENA = 64 * 1024 * 1024


def verify(builtin, packed, checks, feed, micro=True):
    """Runs the checks; returns `{"numpy": ..., "litert": ..., "tflm": ...}`,
    each `"passed"` or `"skipped: <reason>"`."""
    from keras_compress.runtime.litert import LiteRTModel

    result = {}
    runner = LiteRTModel(builtin, kernels="reference", preserve_all_tensors=True)
    for k, batch in enumerate(_batches(feed, runner)):
        wanted = [i for c in checks for i in (c.source, c.output)]
        values = runner.tensors(batch, wanted)
        for c in checks:
            rounding = reference.LITERT_ROUNDING[c.options["kind"]]
            got = reference.run(c.options, values[c.source], c.packed, c.params,
                                rounding).reshape(values[c.output].shape)
            want = values[c.output]
            if not np.array_equal(got, want):
                where = np.argwhere(got != want)[0]
                raise RuntimeError(
                    f"The packed operator of layer {c.layer!r} computes other "
                    "values than the builtin int8 operator it replaces: "
                    f"{int(np.sum(got != want))} of {want.size} int8 values "
                    f"differ on verification batch {k} (first at index "
                    f"{tuple(int(i) for i in where)}: {int(got[tuple(where)])} "
                    f"instead of {int(want[tuple(where)])})."
                )
    result["numpy"] = "passed"
    result["litert"] = _compare("LiteRT", lambda d: LiteRTModel(d, kernels="reference"),
                                builtin, packed, feed)
    if micro:
        from keras_compress.runtime.micro import MicroModel

        # A generous arena: this compares outputs, `to_micro` measures it.
        result["tflm"] = _compare(
            "TFLite Micro", lambda d: MicroModel(d, arena_size=_ARENA),
            builtin, packed, feed)
    return result


def _batches(feed, runner):
    arrays = feed if isinstance(feed, list) else [feed]
    step = len(arrays[0]) if runner.dynamic_batch else runner._batch
    for start in range(0, len(arrays[0]) - step + 1, step):
        chunk = [a[start:start + step] for a in arrays]
        yield chunk if isinstance(feed, list) else chunk[0]


def _compare(runtime, make, builtin, packed, feed):
    try:
        want = make(builtin).predict(feed, raw=True)
    except (RuntimeError, ValueError) as e:
        return _skip(runtime, f"it cannot run the builtin file ({e})")
    try:
        got = make(packed).predict(feed, raw=True)
    except BuildError as e:
        return _skip(runtime, str(e))
    got, want = (v if isinstance(v, list) else [v] for v in (got, want))
    for g, w in zip(got, want):
        if not np.array_equal(g, w):
            raise RuntimeError(
                f"The packed file's outputs in {runtime} differ from the builtin "
                f"int8 file's ({int(np.sum(g != w))} of {w.size} values)."
            )
    return "passed"


def _skip(runtime, reason):
    warnings.warn(
        f"binary='packed': the {runtime} check of the packed file was skipped: "
        f"{reason}",
        stacklevel=4,
    )
    return f"skipped: {reason}"
