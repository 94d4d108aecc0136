"""Network slimming: L1 on BatchNorm scales, then remove the idle channels.

Trains a CNN twice from the same initialization: once plainly (the
baseline) and once with `keras_compress.pruning.network_slimming`, which
trains with the `keras_compress.callbacks.NetworkSlimming` callback (an L1
penalty --penalty * sum|gamma| on every BatchNormalization scale, so that
unneeded channels end with gamma near 0), then removes --ratio of the
BatchNorm channels by one global |gamma| threshold (`prune_channels` with
`BatchNormScale()`, the removed channels' constant outputs folded into the
next layer). The smaller model is then fine-tuned (Liu et al., ICCV 2017).
Every model is exported to float32 TFLite; accuracy and latency (batch 1,
one thread, XNNPACK) come from running the files in LiteRT.

    python examples/network_slimming.py
    python examples/network_slimming.py --dataset digits --ratio 0.5 --epochs 40

Prints a table (model, conv widths, params, MACs, file size, latency,
LiteRT accuracy) and writes to --out (default /tmp/network_slimming):
baseline.tflite, slimmed.tflite, pruned.tflite, finetuned.tflite,
gammas.png (|gamma| of the baseline and the slimmed model) and results.json.

Measured with the defaults (MNIST-1D, 30 epochs, penalty 0.01, ratio 0.7,
15 fine-tuning epochs; 45 s on 2 shared, busy cores):

    layer   channels
    conv0     64 -> 20
    conv1     64 -> 28
    conv2    128 -> 29
    logits    10 -> 10
    params 39,498 -> 4,824 (8.19x fewer); MACs 512,000 -> 64,190 (7.98x fewer)

    model      conv widths  params  MACs     bytes    latency us  LiteRT accuracy
    ---------  -----------  ------  -------  -------  ----------  ---------------
    baseline     64-64-128  39,498  512,000  160,488         6.4           97.60%
    slimmed      64-64-128  39,498  512,000  160,488         6.4           97.10%
    pruned        20-28-29   4,824   64,190   23,940         2.0           97.10%
    finetuned     20-28-29   4,824   64,190   23,940         2.0           97.10%

    |gamma| < 0.01: baseline 0.0%, slimmed 79.3%
"""

import os

import _common
import numpy as np
from absl import app, flags, logging

_common.define_flags(epochs=30, out="/tmp/network_slimming", dataset="mnist1d")
flags.DEFINE_float("penalty", 1e-2, "L1 strength on the BatchNorm scales.")
flags.DEFINE_float("ratio", 0.7, "Share of the BatchNorm channels removed.")
flags.DEFINE_integer("finetune_epochs", 15, "Fine-tuning epochs after pruning.")
FLAGS = flags.FLAGS
BLOCKS = ((64, 5, 1), (64, 3, 2), (128, 3, 2))  # (filters, kernel, stride)
BATCH = 64


def build_cnn(input_shape, classes):
    import keras
    from keras import layers

    images = len(input_shape) == 3
    conv = layers.Conv2D if images else layers.Conv1D
    pool = layers.GlobalAveragePooling2D if images else layers.GlobalAveragePooling1D
    inputs = keras.Input(input_shape)
    x = inputs
    for i, (filters, kernel, stride) in enumerate(BLOCKS):
        x = conv(filters, kernel, strides=stride, padding="same", use_bias=False,
                 name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    outputs = layers.Dense(classes, name="logits")(pool(name="pool")(x))
    return keras.Model(inputs, outputs, name="cnn")


def compile_sgd(model, lr, epochs, n):
    # SGD with momentum and a cosine decay, as in the paper (with Adam the
    # L1 subgradient barely moves the gammas).
    import keras

    steps = -(-n // BATCH)
    decay = keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps))
    model.compile(keras.optimizers.SGD(decay, momentum=0.9), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps)  # one compiled call per epoch
    return model


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # no TensorFlow INFO lines
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import keras_compress as kc
    from keras_compress.pruning import network_slimming

    out, epochs = _common.output_dir(FLAGS.out), FLAGS.epochs
    (x, y), (xt, yt) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    shape, classes = x.shape[1:], int(y.max()) + 1
    keras.utils.set_random_seed(FLAGS.seed)
    baseline = build_cnn(shape, classes)
    slimmed = build_cnn(shape, classes)
    slimmed.set_weights(baseline.get_weights())
    compile_sgd(baseline, 0.1, epochs, len(x))
    baseline.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)

    # Sparsity training and channel removal; `slimmed` keeps its channels.
    compile_sgd(slimmed, 0.1, epochs, len(x))
    pruned, (report,) = network_slimming(
        slimmed, x, y, FLAGS.ratio, epochs=epochs, finetune_epochs=0,
        penalty=FLAGS.penalty, min_channels=4, batch_size=BATCH, verbose=0)
    print(f"{report}\n")

    rows = []

    def measure(name, model):
        path = os.path.join(out, f"{name}.tflite")
        kc.export.to_tflite(model, path)
        rows.append({
            "model": name, "file": os.path.basename(path),
            "widths": "-".join(str(model.get_layer(f"conv{i}").filters)
                               for i in range(len(BLOCKS))),
            "params": model.count_params(), "macs": _common.macs(model),
            "bytes": os.path.getsize(path), "latency_us": _common.latency_us(path),
            "accuracy": _common.accuracy(kc.runtime.LiteRTModel(path), xt, yt),
        })

    measure("baseline", baseline)
    measure("slimmed", slimmed)
    measure("pruned", pruned)
    compile_sgd(pruned, 0.01, FLAGS.finetune_epochs, len(x))  # a fresh optimizer
    pruned.fit(x, y, batch_size=BATCH, epochs=FLAGS.finetune_epochs, verbose=0)
    measure("finetuned", pruned)
    print(_common.table(rows, [
        ("model", "model", None), ("widths", "conv widths", None),
        ("params", "params", ",d"), ("macs", "MACs", ",d"), ("bytes", "bytes", ",d"),
        ("latency_us", "latency us", ".1f"), ("accuracy", "LiteRT accuracy", ".2%")]))

    def gammas(model):
        return np.concatenate([np.abs(model.get_layer(f"bn{i}").gamma.numpy())
                               for i in range(len(BLOCKS))])

    near_zero = {n: float((gammas(m) < 1e-2).mean())
                 for n, m in (("baseline", baseline), ("slimmed", slimmed))}
    print(f"\n|gamma| < 0.01: baseline {near_zero['baseline']:.1%}, "
          f"slimmed {near_zero['slimmed']:.1%}")
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, max(gammas(baseline).max(), gammas(slimmed).max()), 40)
    ax.hist(gammas(baseline), bins, alpha=0.6, label="baseline")
    ax.hist(gammas(slimmed), bins, alpha=0.6, label=f"L1 penalty {FLAGS.penalty:g}")
    ax.set_xlabel("|gamma| of BatchNorm channels")
    ax.set_ylabel("channels")
    ax.set_title(f"Network slimming, {FLAGS.dataset}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "gammas.png"), dpi=100)
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "penalty": FLAGS.penalty, "ratio": FLAGS.ratio,
        "epochs": epochs, "finetune_epochs": FLAGS.finetune_epochs, "rows": rows,
        "near_zero_gammas": near_zero, "report": report.to_dict(), "plot": "gammas.png",
    })


if __name__ == "__main__":
    app.run(main)
