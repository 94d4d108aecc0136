"""Deep Compression to a microcontroller: prune, cluster, QAT, compressed bundle.

Han et al.'s pipeline (ICLR 2016), carried to the device, on an MLP shaped
like LeNet-300-100 (Flatten, Dense 300, Dense 100, Dense 10):

1. float: trained with Adam; exported as float32 TFLite, run in LiteRT;
2. pruned: `MagnitudePruning(PolynomialDecay(0, --sparsity),
   scope="global")` while fine-tuning, then `strip_pruning`;
3. clustered: `cluster_weights(clusters=--clusters)` (the zeros are their
   own cluster, pinned at 0), fine-tuned: every weight holds one of at most
   `--clusters` shared values;
4. QAT int8: `quantize_model` keeps the masks and clusters through
   quantization-aware training; the lean int8 LiteRT file (gzipped: what a
   phone app downloads);
5. TFLM bundle: `to_micro(compression="auto")` stores each weight tensor
   as TFLM DECODE data (look-up table, pruning bitmask or Huffman code,
   whichever is smallest), checked bit for bit against the plain int8
   bundle in TensorFlow Lite Micro before anything is written.

For each: accuracy in its runtime, bytes (and how many times smaller than
the float32 file). The Deep Compression table (`analysis.deep_compression_
table`) gives bits per weight of the best encoding of each stage with real
Huffman codes: Deep Compression's own storage format, which no runtime
reads, for comparison with what the device stores.

Run (about 30 s on 2 shared cores):

    python examples/deep_compression.py --out deep_compression_out

Measured with the defaults (digits, 1437 train / 360 test; 30 + 15 + 5 + 3
epochs; seed 0; 24 s):

    stage                    runtime       accuracy  bytes    gzip     x smaller  x smaller (gzip)
    float32                        LiteRT     97.5%  205,432  189,064        1.0               1.1
    QAT int8, lean                 LiteRT     97.8%   54,144    9,598        3.8              21.4
    TFLM bundle, compressed  TFLite Micro     97.8%   12,368    8,013       16.6              25.6

The bundle's weights are Huffman-coded by TFLM's DECODE operator (about
1.4 bits per weight at 90% zeros: zero takes one bit); the uncompressed
int8 bundle is 53,376 bytes. Deep Compression's own format (relative
indices + Huffman) would need 0.88 bits per weight (36x on the weights),
but no runtime reads it.

Writes float32.tflite, qat_int8.tflite, the bundle in micro/, results.json
and deep_compression.json into --out.
"""

import gzip
import os
import time

from absl import app, flags, logging

import _common

_common.define_flags(epochs=30, out="deep_compression_out")
flags.DEFINE_float("sparsity", 0.9, "Fraction of the weights pruned.",
                   lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_integer("clusters", 16, "Shared values per weight tensor.", lower_bound=2)
flags.DEFINE_integer("prune_epochs", 15, "Pruning epochs (the last third at the "
                     "final sparsity).", lower_bound=1)
flags.DEFINE_integer("cluster_epochs", 5, "Fine-tuning epochs of the clusters.",
                     lower_bound=1)
flags.DEFINE_integer("qat_epochs", 3, "Quantization-aware training epochs.", lower_bound=1)
FLAGS = flags.FLAGS


def build_mlp(input_shape, num_classes):
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(input_shape), layers.Flatten(),
        layers.Dense(300, activation="relu"), layers.Dense(100, activation="relu"),
        layers.Dense(num_classes),
    ])


def fit(model, x, y, epochs, learning_rate, callbacks=()):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=list(callbacks))
    return model


def main(_):
    import keras

    from keras_compress.analysis import deep_compression_table
    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.clustering import cluster_weights
    from keras_compress.export import to_micro, to_tflite
    from keras_compress.pruning import PolynomialDecay, strip_pruning
    from keras_compress.quantization import quantize_model
    from keras_compress.runtime import LiteRTModel, MicroModel

    logging.set_verbosity(logging.WARNING)  # TensorFlow's export chatter
    start = time.perf_counter()
    out = _common.output_dir(FLAGS.out)
    (x, y), (x_test, y_test) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    keras.utils.set_random_seed(FLAGS.seed)
    rows = []

    def add_row(stage, runtime, accuracy, file):
        with open(os.path.join(out, file), "rb") as f:
            data = f.read()
        rows.append({"stage": stage, "runtime": runtime, "accuracy": accuracy,
                     "file": file, "size_bytes": len(data),
                     "gzip_bytes": len(gzip.compress(data, 9, mtime=0))})
        print(f"[{time.perf_counter() - start:3.0f} s] {stage}: {accuracy:.1%}, "
              f"{len(data):,} bytes", flush=True)

    model = fit(build_mlp(x.shape[1:], int(max(y.max(), y_test.max())) + 1),
                x, y, FLAGS.epochs, 1e-3)
    float_model = keras.models.clone_model(model)
    float_model.set_weights(model.get_weights())
    data = to_tflite(model, os.path.join(out, "float32.tflite"))
    add_row("float32", "LiteRT", LiteRTModel(data).evaluate(x_test, y_test),
            "float32.tflite")

    steps = -(-len(x) // 32)
    schedule = PolynomialDecay(0.0, FLAGS.sparsity, begin_step=0,
                               end_step=max(1, 2 * FLAGS.prune_epochs * steps // 3))
    fit(model, x, y, FLAGS.prune_epochs, 1e-3,
        [MagnitudePruning(schedule, scope="global")])
    strip_pruning(model)
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    accuracy = {"float32": rows[0]["accuracy"],
                "pruned": float(model.evaluate(x_test, y_test, verbose=0)[1])}

    cluster_weights(model, clusters=FLAGS.clusters, seed=FLAGS.seed)
    fit(model, x, y, FLAGS.cluster_epochs, 1e-4)
    accuracy["clustered"] = float(model.evaluate(x_test, y_test, verbose=0)[1])

    qat = fit(quantize_model(model), x, y, FLAGS.qat_epochs, 1e-4)
    data = to_tflite(qat, os.path.join(out, "qat_int8.tflite"), quantize="int8",
                     lean=True)
    accuracy["int8"] = LiteRTModel(data).evaluate(x_test, y_test)
    add_row("QAT int8, lean", "LiteRT", accuracy["int8"], "qat_int8.tflite")

    bundle = to_micro(qat, os.path.join(out, "micro"), "model", compression="auto")
    micro = MicroModel(os.path.join(out, "micro", "model.tflite"),
                       arena_size=bundle["arena_bytes"])
    add_row("TFLM bundle, compressed", "TFLite Micro",
            micro.evaluate(x_test, y_test), os.path.join("micro", "model.tflite"))
    rows[-1]["arena_bytes"] = bundle["arena_bytes"]
    rows[-1]["flash_bytes_uncompressed"] = bundle["compression"]["flash_bytes_uncompressed"]

    table = deep_compression_table(
        {"float32": float_model, "pruned": pruned, "clustered": model, "int8": data},
        accuracy=accuracy)
    table.to_json(os.path.join(out, "deep_compression.json"))
    base = rows[0]["size_bytes"]
    for row in rows:
        row["times_smaller"] = base / row["size_bytes"]
        row["times_smaller_gzip"] = base / row["gzip_bytes"]
    print()
    print(_common.table(rows, [
        ("stage", "stage", None), ("runtime", "runtime", None),
        ("accuracy", "accuracy", ".1%"), ("size_bytes", "bytes", ",d"),
        ("gzip_bytes", "gzip", ",d"), ("times_smaller", "x smaller", ".1f"),
        ("times_smaller_gzip", "x smaller (gzip)", ".1f"),
    ]))
    print(f"\nDeep Compression's format (weights only, not a runtime file):\n{table}")
    seconds = time.perf_counter() - start
    print(f"\nThe TFLM bundle is {rows[-1]['times_smaller']:.1f}x smaller than the "
          f"float32 file ({rows[-1]['flash_bytes_uncompressed']:,} bytes without "
          f"compression); {seconds:.0f} s.")
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "seed": FLAGS.seed, "sparsity": FLAGS.sparsity,
        "clusters": FLAGS.clusters, "test_samples": int(len(y_test)),
        "rows": rows, "keras_accuracy": accuracy, "seconds": seconds,
        "files": [row["file"] for row in rows] + ["deep_compression.json"] + [
            os.path.join("micro", f) for f in bundle["files"].values()],
    })
    print(f"Files and results.json are in {out}/")


if __name__ == "__main__":
    app.run(main)
