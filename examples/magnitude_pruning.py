"""Gradual magnitude pruning, then float and int8 TFLite files, plain and sparse.

Trains a small CNN, fine-tunes it while `keras_compress.callbacks.
MagnitudePruning` raises the sparsity of every kernel from 0 to --sparsity
(Zhu & Gupta's polynomial schedule; the masks live in weight constraints and
are updated inside the compiled train step), removes the masks with
`keras_compress.pruning.strip_pruning` and exports float32 and int8 TFLite
files, each plainly and with `sparse=True` (TFLite's sparse tensor format).
The dense model is exported the same way for comparison. Each accuracy comes
from running the file in LiteRT, each size is the file's size, and the
sparsity is the share of zero weights stored in the file
(`keras_compress.analysis.summarize`, biases included).

    python examples/magnitude_pruning.py                  # 90% unstructured
    python examples/magnitude_pruning.py --pattern 2:4    # 2 of every 4 kept

Prints a table (file, sparsity, LiteRT accuracy, size, gzipped size) and
writes to --out (default /tmp/magnitude_pruning): dense.tflite,
dense_int8.tflite, pruned.tflite, pruned_sparse.tflite, pruned_int8.tflite,
pruned_int8_sparse.tflite and results.json.

Measured with the defaults (digits, 20 epochs + 10 while pruning to 90%;
30 s on 2 shared, busy cores):

    file                       sparsity  LiteRT accuracy  bytes    gzipped
    -------------------------  --------  ---------------  -------  -------
    dense.tflite                   0.0%           96.11%  119,352  109,203
    dense_int8.tflite              0.9%           96.11%   35,672   30,163
    pruned.tflite                 89.7%           96.94%  119,352   20,793
    pruned_sparse.tflite          89.7%           96.94%   21,576   16,772
    pruned_int8.tflite            89.7%           96.94%   35,672    8,488
    pruned_int8_sparse.tflite     89.7%           96.94%   17,440   10,054

The plain pruned files are as large as the dense ones (their zeros are
stored) but gzip well; `sparse=True` stores only the non-zeros (and their
indices). At 50% (--pattern 2:4: 96.39%) the indices cost more than int8
zeros: sparse files of 83,352 bytes (float) and 43,608 (int8, vs 35,672).
"""

import gzip
import math
import os

import _common
from absl import app, flags, logging

_common.define_flags(epochs=20, out="/tmp/magnitude_pruning")
flags.DEFINE_float("sparsity", 0.9, "Target sparsity of every kernel.")
flags.DEFINE_string("pattern", None, "N:M pattern such as 2:4 instead of "
                    "unstructured pruning (sets the sparsity to 1 - N/M).")
flags.DEFINE_integer("prune_epochs", 10, "Fine-tuning epochs while pruning.")
FLAGS = flags.FLAGS


def build_model(input_shape, classes):
    import keras

    conv = keras.layers.Conv1D if len(input_shape) == 2 else keras.layers.Conv2D
    return keras.Sequential([
        keras.Input(input_shape),
        conv(32, 3, padding="same", activation="relu", name="conv1"),
        conv(64, 3, strides=2, padding="same", activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(classes, name="logits"),
    ], name="cnn")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # no TensorFlow INFO lines
    import keras

    import keras_compress as kc
    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.pruning import PolynomialDecay, strip_pruning

    out = _common.output_dir(FLAGS.out)
    keras.utils.set_random_seed(FLAGS.seed)
    (x, y), (xt, yt) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    model = build_model(x.shape[1:], int(y.max()) + 1)
    model.compile(keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=FLAGS.epochs, verbose=0)

    def export(name, **kwargs):
        path = os.path.join(out, name)
        kc.export.to_tflite(model, path, representative_data=x[:200], **kwargs)
        return path

    files = [export("dense.tflite"), export("dense_int8.tflite", quantize="int8")]

    # Fine-tune while pruning: the sparsity rises to its target over the
    # first 3/4 of the steps; the last quarter trains with the final masks.
    # Schedules count `optimizer.iterations`, which training already advanced.
    sparsity, pattern = FLAGS.sparsity, FLAGS.pattern or "unstructured"
    if FLAGS.pattern:
        n, m = (int(v) for v in FLAGS.pattern.split(":"))
        sparsity = 1 - n / m
    begin = int(model.optimizer.iterations)
    steps = FLAGS.prune_epochs * math.ceil(len(x) / 32)
    end = begin + max(1, int(0.75 * steps))
    schedule = PolynomialDecay(0.0, sparsity, begin_step=begin, end_step=end,
                               frequency=max(1, (end - begin) // 10))
    # An N:M pattern groups the input channels, so the first layer (1 or 3
    # input channels) stays dense.
    pruning = MagnitudePruning(schedule, granularity=pattern,
                               skip_first=bool(FLAGS.pattern))
    model.fit(x, y, batch_size=32, epochs=FLAGS.prune_epochs, verbose=0,
              callbacks=[pruning])
    strip_pruning(model)  # a plain Keras model with exact zeros

    files += [export("pruned.tflite"), export("pruned_sparse.tflite", sparse=True),
              export("pruned_int8.tflite", quantize="int8"),
              export("pruned_int8_sparse.tflite", quantize="int8", sparse=True)]

    rows = []
    for path in files:
        name = os.path.basename(path)
        # LiteRT 2.3's XNNPACK cannot run sparse int8 Dense kernels.
        kernels = "builtin" if name == "pruned_int8_sparse.tflite" else "xnnpack"
        runner = kc.runtime.LiteRTModel(path, kernels=kernels)
        with open(path, "rb") as f:
            data = f.read()
        rows.append({
            "file": name,
            "sparsity": kc.analysis.summarize(path).totals.sparsity,
            "accuracy": _common.accuracy(runner, xt, yt),
            "bytes": os.path.getsize(path),
            "gzip_bytes": len(gzip.compress(data, 9)),
        })
    print(_common.table(rows, [
        ("file", "file", None), ("sparsity", "sparsity", ".1%"),
        ("accuracy", "LiteRT accuracy", ".2%"), ("bytes", "bytes", ",d"),
        ("gzip_bytes", "gzipped", ",d")]))
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "pattern": pattern, "target_sparsity": sparsity,
        "epochs": FLAGS.epochs, "prune_epochs": FLAGS.prune_epochs, "rows": rows,
    })


if __name__ == "__main__":
    app.run(main)
