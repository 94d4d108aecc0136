"""One call on one (possibly corrupt) .tflite, in a process of its own.

Run as `python fuzz_probe.py CALL PATH`. Prints `ok` when the call
returns, `error <type>: <message>` when it raises; a crash shows as the
process dying by a signal (the parent tells).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

CALLS = ("summarize", "litert", "litert_builtin", "micro", "early_exit", "cli_report",
         "cli_bench")


def _zeros(model):
    return [np.zeros((1,) + tuple(i.shape[1:]), i.dtype) for i in model.inputs]


def run(call, path):
    if call == "summarize":
        from keras_compress.analysis import summarize

        summarize(path)
    elif call in ("litert", "litert_builtin"):
        from keras_compress.runtime import LiteRTModel

        kernels = "builtin" if call == "litert_builtin" else "xnnpack"
        model = LiteRTModel(path, kernels=kernels)
        model.predict(_zeros(model))
    elif call == "micro":
        from keras_compress.runtime import MicroModel

        model = MicroModel(path, arena_size=1 << 20)
        model.predict(_zeros(model))
    elif call == "early_exit":
        from keras_compress.runtime import EarlyExitRunner

        runner = EarlyExitRunner(path)
        shape = (1,) + tuple(runner._file.model.inputs[0].shape[1:])
        runner.predict(np.zeros(shape, "float32"))
    else:
        from keras_compress import cli

        argv = ["report", path] if call == "cli_report" else ["bench", path, "--runs", "3"]
        code = cli.main(argv)
        if code:
            raise ValueError(f"the CLI exited with {code}")


def main():
    call, path = sys.argv[1], sys.argv[2]
    try:
        run(call, path)
    except Exception as e:  # noqa: BLE001 - the parent judges the type
        kind = "ValueError" if isinstance(e, ValueError) else type(e).__name__
        print(f"error {kind}: {e}".replace("\n", " ")[:500])
        return
    print("ok")


if __name__ == "__main__":
    main()
