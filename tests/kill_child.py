"""Exports in a loop until killed (tests/test_kill_exports.py).

Run as `python kill_child.py KIND PATH`: KIND is `tflite` (`to_tflite`
to a file), `onnx` (`to_onnx` to a file), `chain` (`export_early_exit` to
a folder) or `micro` (`to_micro` into a folder that also holds a file of
the user's). The renames that
put an export in place are slowed down and announced ("rename" on
stdout), so that the parent can kill it right in them.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_compress import _io  # noqa: E402


def _slowed(fn):
    def slow(*args):
        print("rename", *args, flush=True)
        time.sleep(0.2)
        result = fn(*args)
        time.sleep(0.2)
        return result
    return slow


os.replace = _slowed(os.replace)
os.rename = _slowed(os.rename)
_io._exchange = _slowed(_io._exchange)


def main():
    kind, path = sys.argv[1], sys.argv[2]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b0")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(h)))
    if kind == "chain":
        from keras_compress.early_exit import add_early_exits, export_early_exit

        model = add_early_exits(model, ["b0"])
    from keras_compress.export import to_micro
    from keras_compress.export import to_onnx
    from keras_compress.export import to_tflite

    data = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
    for k in range(10_000):
        # A different model each round, so old and new files differ.
        model.layers[-1].bias.assign(np.full(10, float(k), "float32"))
        if kind == "tflite":
            to_tflite(model, path, verify=False)
        elif kind == "onnx":
            to_onnx(model, path, verify=False)
        elif kind == "micro":
            # Bundles of one size differ in their bytes only; the scale of
            # the data changes the quantization, so old and new differ.
            to_micro(model, path, "net", representative_data=data * (1 + k % 7))
        else:
            export_early_exit(model, path, overwrite=True)
        print(f"wrote {k}", flush=True)


if __name__ == "__main__":
    main()
