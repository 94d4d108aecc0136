"""The child process of `isolate=True` (see `_isolate`).

Run as `python -m keras_compress.runtime._isolate_child RUNTIME PATH
[ARENA]`: loads the model in that runtime and runs it once on zero inputs.
"""

import sys


def main(argv):
    import numpy as np

    runtime, path = argv[0], argv[1]
    try:
        if runtime == "litert":
            from keras_compress.runtime.litert import LiteRTModel

            model = LiteRTModel(path)
        else:
            from keras_compress.runtime.micro import MicroModel

            arena = int(argv[2]) if len(argv) > 2 else None
            model = MicroModel(path, arena_size=arena)
        model.predict([np.zeros((1,) + tuple(i.shape[1:]), i.dtype) for i in model.inputs])
    except Exception as e:  # noqa: BLE001 - the parent meets it again
        print(f"error {type(e).__name__}: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
