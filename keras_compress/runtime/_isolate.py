"""Trying an untrusted `.tflite` in a child process first (`isolate=True`).

`keras_compress._tflite` checks what the interpreters trust, but no check
of a file format run by C++ code can be complete. With `isolate=True`,
`LiteRTModel` and `MicroModel` first load the file and run it once on zero
inputs in a child process; if that process dies (a segmentation fault, an
abort) or hangs, the parent raises a `ValueError` and never loads the file.

The child is `keras_compress.runtime._isolate_child`.
"""

import os
import subprocess
import sys
import tempfile

TIMEOUT_S = 120


def probe(data, runtime, arena_size=None, custom_ops=False):
    """Raises `ValueError` if loading and running `data` once kills or
    hangs a child process. Errors the child raises are left to the parent,
    which meets them again when it loads the file."""
    fd, path = tempfile.mkstemp(suffix=".tflite", prefix="keras_compress_isolate_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        command = [sys.executable, "-m", "keras_compress.runtime._isolate_child", runtime,
                   path]
        if arena_size is not None:
            command.append(str(int(arena_size)))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise ValueError(
                f"The {_NAMES[runtime]} interpreter did not finish loading and "
                f"running this model once within {TIMEOUT_S} s in a child "
                "process (isolate=True); it was not loaded here.") from None
    finally:
        os.unlink(path)
    if done.returncode < 0:
        cause = ("The file passed keras-compress's checks: please report it."
                 if arena_size is None else
                 f"An arena of {arena_size} bytes too small for the model is "
                 "a known cause (arena_size=None measures the smallest that "
                 "works).")
        raise ValueError(
            f"The {_NAMES[runtime]} interpreter crashed (signal "
            f"{-done.returncode}) loading or running this model once in a "
            f"child process (isolate=True); it was not loaded here. {cause}")


_NAMES = {"litert": "LiteRT", "micro": "TensorFlow Lite Micro"}
