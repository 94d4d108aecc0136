"""The smallest TFLite Micro arena of a model, probed in a child process.

TFLM's Python interpreter can crash the whole process (a segmentation fault,
not an exception) when an arena is too small and an allocation fails part
way: a 64-300-100-10 int8 MLP crashed with arenas of 3,000-3,700 and 5,232
bytes and failed cleanly with 5,216. Probing sizes that may be too small
therefore happens in a child process that only imports the TFLM runtime; a
probe that kills it counts as "does not fit" and a new child goes on.

Run as `python _arena.py MODEL ALT SIZE...`: it
probes the sizes in order, then bisects between the largest that did not fit
(or the first size) and the smallest that fit, printing `probe SIZE` before
and `fits SIZE 0|1` after each probe, and `done SIZE` at the end.
"""

import os
import subprocess
import sys
import tempfile

ALIGN = 16


# Set for a child whose model has keras-compress custom operators: it then
# registers them (keras_compress.custom_ops) with the interpreter.
_OPS_VARIABLE = "KERAS_COMPRESS_ARENA_CUSTOM_OPS"


def fits(data, size, alt=0, custom_ops=False):
    """Whether TFLM allocates and runs `data` in an arena of `size` bytes."""
    with _model_file(data) as path:
        results, _ = _run_child(path, alt, [size], custom_ops)
    return results.get(size, False)


def smallest_arena(data, low, high, alt=0, hint=None, custom_ops=False):
    """Smallest multiple of 16 in (low, high] that fits.

    `low` must not fit and `high` must fit; `hint`, a size likely to fit
    just above the answer, is tried first. `custom_ops`: the model has
    keras-compress custom operators.
    """
    sizes = [low, high] + ([hint] if hint is not None and low < hint < high else [])
    known = {low: False, high: True}
    with _model_file(data) as path:
        for _ in range(64):  # Each child moves a bound; bisection needs ~20.
            results, done = _run_child(path, alt, sizes, custom_ops)
            known.update(results)
            if done is not None:
                return done
            low = max(s for s, ok in known.items() if not ok)
            high = min(s for s, ok in known.items() if ok)
            sizes = [low, high]
    raise RuntimeError(
        "TensorFlow Lite Micro's interpreter crashed too often while the "
        "arena size was measured; pass `arena_size=` to skip measuring."
    )


class _model_file:
    def __init__(self, data):
        self.data = data

    def __enter__(self):
        self.folder = tempfile.TemporaryDirectory(prefix="keras_compress_arena_")
        path = os.path.join(self.folder.name, "model.tflite")
        with open(path, "wb") as f:
            f.write(self.data)
        return path

    def __exit__(self, *exc):
        self.folder.cleanup()


def _run_child(path, alt, sizes, custom_ops=False):
    """Runs one child; returns `({size: fits}, answer or None)`."""
    # The script itself, not `-m`: the child imports no keras_compress
    # (but its custom operators' registerer when the model has them).
    command = [sys.executable, os.path.abspath(__file__), path, str(alt)]
    command += [str(s) for s in sizes]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop(_OPS_VARIABLE, None)
    if custom_ops:
        env[_OPS_VARIABLE] = "1"
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    results, probing = {}, None
    for line in run.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "probe":
            probing = int(rest)
        elif word == "fits":
            size, ok = (int(v) for v in rest.split())
            results[size], probing = bool(ok), None
        elif word == "done":
            return results, int(rest)
    if probing is None and not results:
        raise RuntimeError(
            "The TensorFlow Lite Micro arena probe failed: "
            f"{run.stderr.strip()[-800:]}"
        )
    if probing is not None:
        results[probing] = False  # The child died probing: it does not fit.
    return results, None


def _registerers():
    if not os.environ.get(_OPS_VARIABLE):
        return []
    from keras_compress.custom_ops import micro_registerers

    return micro_registerers()


def _fits(data, size, alt):
    from tflite_micro.python.tflite_micro import runtime

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)
    try:
        interpreter = runtime.Interpreter.from_bytes(
            data, arena_size=size, alt_decompression_memory_size=alt,
            custom_op_registerers=_registerers(),
        )
        interpreter.invoke()
        return True
    except RuntimeError:
        return False
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _probe(data, size, alt):
    print(f"probe {size}", flush=True)
    ok = _fits(data, size, alt)
    print(f"fits {size} {int(ok)}", flush=True)
    return ok


def _main(path, alt, sizes):
    with open(path, "rb") as f:
        data = f.read()
    if len(sizes) == 1:
        _probe(data, sizes[0], alt)
        return
    low, high, *rest = sizes
    for size in rest:
        if _probe(data, size, alt):
            high = min(high, size)
        else:
            low = max(low, size)
    while high - low > ALIGN:
        mid = (low + high) // 2 // ALIGN * ALIGN
        if mid <= low:
            break
        low, high = (low, mid) if _probe(data, mid, alt) else (mid, high)
    print(f"done {high}", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]), [int(v) for v in sys.argv[3:]])
