"""Prune, quantize, ship: from a float CNN to a microcontroller bundle.

One flow, four artifacts, each run in its runtime on the whole test set:

1. baseline: a CNN of three Conv-BN-ReLU blocks (64, 64, 128 channels;
   Conv1D for sequences, Conv2D for images), global average pooling and
   Dense, trained in float (SGD, momentum 0.9, cosine decay from 0.1);
   exported as float32 TFLite and run in LiteRT;
2. pruned: `prune_channels(ratio=--ratio, criterion=L1Norm())` removes the
   filters with the smallest L1 norms from every layer (real channel
   removal: a smaller Keras model, not zeros), then fine-tuning; float32
   TFLite in LiteRT;
3. QAT int8: `quantize_model` of the pruned model, fine-tuned under
   `QATSchedule(freeze_batchnorm=0)`, exported to int8 TFLite from the
   learned ranges (no calibration data) and run in LiteRT;
4. TFLM bundle: `to_micro` of the QAT model (int8 input and output, C
   array, arena report), run in TensorFlow Lite Micro.

For each: accuracy, file bytes (and how many times smaller than the
baseline's), MACs (`keras_compress.analysis` of the file), latency at batch
1 (LiteRT: XNNPACK, 1 thread; the bundle: TFLite Micro on this host, per
`predict` call) and the bundle's arena. int8 alone makes the file ~3.5x
smaller; removing 60% of every layer's channels removes 82% of the weights;
together they pass 10x. Unstructured sparsity would not: a TFLite Micro
flatbuffer stores zeros like any other weight.

Run (about 35 s on 2 shared cores):

    python examples/pipeline.py --out pipeline_out

Measured with the defaults (MNIST-1D, 4000 train / 1000 test; 30 + 15 + 5
epochs; seed 0; 32 s):

    stage                runtime       accuracy  bytes    x smaller  MACs     latency us  arena bytes
    float baseline             LiteRT     97.6%  160,312        1.0  506,880           6            -
    pruned 60% channels        LiteRT     97.1%   32,428        4.9   86,560           2            -
    QAT int8                   LiteRT     97.1%   14,752       10.9   86,560           2            -
    TFLM bundle          TFLite Micro     97.1%   14,504       11.1   86,560          86        4,624

Seeds 0 / 1 / 2: the bundle is 11.1x smaller every time (the widths do not
depend on the seed: 26-26-51 channels, 7,068 parameters instead of
39,498); accuracy drops 0.5 / -0.4 / 0.5 points from the float baseline
(97.6 / 97.8 / 98.4%) to the bundle in TFLite Micro (median 0.5).

Writes baseline_float32.tflite, pruned_float32.tflite, qat_int8.tflite, the
bundle in micro/ and results.json into --out.
"""

import os
import time

from absl import app, flags, logging

import _common

_common.define_flags(epochs=30, out="pipeline_out", dataset="mnist1d")
flags.DEFINE_float("ratio", 0.6, "Fraction of each layer's channels removed.",
                   lower_bound=0.0, upper_bound=0.95)
flags.DEFINE_integer("finetune_epochs", 15, "Fine-tuning epochs after pruning.", lower_bound=1)
flags.DEFINE_integer("qat_epochs", 5, "Quantization-aware training epochs.", lower_bound=1)
FLAGS = flags.FLAGS


def build_cnn(input_shape, num_classes):
    import keras
    from keras import layers

    one_d = len(input_shape) == 2
    conv = layers.Conv1D if one_d else layers.Conv2D
    inputs = keras.Input(input_shape)
    x = inputs
    for filters, kernel, strides in ((64, 5, 1), (64, 3, 2), (128, 3, 2)):
        x = conv(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = (layers.GlobalAveragePooling1D if one_d else layers.GlobalAveragePooling2D)()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x))


def train(model, x, y, epochs, optimizer, learning_rate, callbacks=()):
    """Fits `model` (logits out) with a cosine learning-rate decay to 0."""
    import keras

    decay = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * -(-len(x) // 64))
    model.compile(optimizer=optimizer(decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=list(callbacks))
    return model


def micro_latency_us(micro, x, samples=100):
    """Median wall time of one TFLite Micro `predict` call (batch 1), us."""
    import numpy as np

    times = []
    for sample in x[:samples]:
        start = time.perf_counter()
        micro.predict(sample[None])
        times.append(time.perf_counter() - start)
    return 1e6 * float(np.median(times))


def main(_):
    import keras

    from keras_compress.analysis import summarize
    from keras_compress.callbacks import QATSchedule
    from keras_compress.export import to_micro, to_tflite
    from keras_compress.pruning import L1Norm, prune_channels
    from keras_compress.quantization import quantize_model
    from keras_compress.runtime import LiteRTModel, MicroModel

    logging.set_verbosity(logging.WARNING)  # TensorFlow's export chatter
    start = time.perf_counter()
    out = _common.output_dir(FLAGS.out)
    (x, y), (x_test, y_test) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    keras.utils.set_random_seed(FLAGS.seed)
    sgd = lambda lr: keras.optimizers.SGD(lr, momentum=0.9)  # noqa: E731
    rows = []

    def add_row(stage, file, runtime, runner, **extra):
        path = os.path.join(out, file)
        rows.append({"stage": stage, "file": file, "runtime": runtime,
                     "accuracy": runner.evaluate(x_test, y_test),
                     "size_bytes": os.path.getsize(path),
                     "macs": summarize(path).totals.macs, **extra})
        print(f"[{time.perf_counter() - start:3.0f} s] {stage}: "
              f"{rows[-1]['accuracy']:.1%}, {rows[-1]['size_bytes']:,} bytes", flush=True)

    def litert_row(stage, model, file, quantize=None):
        data = to_tflite(model, os.path.join(out, file), quantize=quantize, batch_size=1)
        add_row(stage, file, "LiteRT", LiteRTModel(data), latency_us=_common.latency_us(data))

    baseline = train(build_cnn(x.shape[1:], int(max(y.max(), y_test.max())) + 1),
                     x, y, FLAGS.epochs, sgd, 0.1)
    litert_row("float baseline", baseline, "baseline_float32.tflite")

    pruned, report = prune_channels(baseline, ratio=FLAGS.ratio, criterion=L1Norm())
    print(report)
    train(pruned, x, y, FLAGS.finetune_epochs, sgd, 0.03)
    litert_row(f"pruned {FLAGS.ratio:.0%} channels", pruned, "pruned_float32.tflite")

    qat = train(quantize_model(pruned), x, y, FLAGS.qat_epochs, keras.optimizers.Adam, 5e-4,
                [QATSchedule(freeze_batchnorm=0, freeze_ranges=max(1, FLAGS.qat_epochs - 1))])
    litert_row("QAT int8", qat, "qat_int8.tflite", quantize="int8")

    bundle = to_micro(qat, os.path.join(out, "micro"), "model")  # ranges from QAT
    micro = MicroModel(os.path.join(out, "micro", "model.tflite"),
                       arena_size=bundle["arena_bytes"])
    add_row("TFLM bundle", os.path.join("micro", "model.tflite"), "TFLite Micro", micro,
            latency_us=micro_latency_us(micro, x_test), arena_bytes=bundle["arena_bytes"])

    base = rows[0]
    for row in rows:
        row["times_smaller"] = base["size_bytes"] / row["size_bytes"]
        row["accuracy_drop_points"] = 100 * (base["accuracy"] - row["accuracy"])
    print()
    print(_common.table(rows, [
        ("stage", "stage", None), ("runtime", "runtime", None),
        ("accuracy", "accuracy", ".1%"), ("size_bytes", "bytes", ",d"),
        ("times_smaller", "x smaller", ".1f"), ("macs", "MACs", ",d"),
        ("latency_us", "latency us", ".0f"), ("arena_bytes", "arena bytes", ",d"),
    ]))
    final = rows[-1]
    seconds = time.perf_counter() - start
    print(f"\nThe bundle is {final['times_smaller']:.1f}x smaller than the float32 "
          f"baseline (target >= 10x) and loses {final['accuracy_drop_points']:.1f} points "
          f"in TensorFlow Lite Micro (target <= 1.5); {seconds:.0f} s.")
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "seed": FLAGS.seed, "epochs": FLAGS.epochs,
        "finetune_epochs": FLAGS.finetune_epochs, "qat_epochs": FLAGS.qat_epochs,
        "ratio": FLAGS.ratio, "test_samples": int(len(y_test)), "rows": rows,
        "size_ratio": final["times_smaller"],
        "accuracy_drop_points": final["accuracy_drop_points"],
        "pruning": report.to_dict(), "seconds": seconds,
        "files": [row["file"] for row in rows] + [
            os.path.join("micro", f) for f in bundle["files"].values()],
    })
    print(f"Files and results.json are in {out}/")


if __name__ == "__main__":
    app.run(main)
