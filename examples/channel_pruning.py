"""Channel pruning: remove whole filters, fine-tune, get a faster TFLite file.

Trains a small CNN (convolutions with BatchNorm), then for each ratio in
--ratios removes that share of the channels of every layer with
`keras_compress.pruning.prune_channels` (scored by --criterion; the
dependency graph keeps coupled layers consistent and the output layer
whole), fine-tunes the smaller model and exports it to float32 TFLite.
Unlike zeroed weights, removed channels make the model faster: MACs fall
and so does LiteRT's latency. Accuracy and latency (batch 1, one thread,
XNNPACK) are measured by running each exported file in LiteRT.

    python examples/channel_pruning.py
    python examples/channel_pruning.py --ratios 0.5 --criterion l2 --round_to 8

Prints a table (model, conv widths, params, MACs, file size, latency,
speedup, LiteRT accuracy) and writes to --out (default
/tmp/channel_pruning): original.tflite, pruned_<ratio>.tflite and
results.json.

Measured with the defaults (digits, 15 epochs, L1Norm, 5 fine-tuning epochs
per ratio; 20 s on 2 shared, busy cores):

    model        conv widths  params  MACs       bytes    latency us  speedup  LiteRT accuracy
    -----------  -----------  ------  ---------  -------  ----------  -------  ---------------
    original       32-64-128  94,634  1,501,440  378,800        16.3     1.00           99.44%
    pruned_0.25     24-48-96  53,698    849,600  215,728        10.8     1.51           99.17%
    pruned_0.5      16-32-64  24,282    382,080   98,736         5.0     3.24           98.33%
    pruned_0.75      8-16-32   6,386     98,880   27,824         2.1     7.93           95.83%
"""

import os

import _common
from absl import app, flags, logging

_common.define_flags(epochs=15, out="/tmp/channel_pruning")
flags.DEFINE_list("ratios", ["0.25", "0.5", "0.75"], "Shares of channels removed.")
flags.DEFINE_enum("criterion", "l1", ["l1", "l2", "bn"],
                  "Channel importance: L1Norm, L2Norm or BatchNormScale.")
flags.DEFINE_integer("finetune_epochs", 5, "Fine-tuning epochs after pruning.")
flags.DEFINE_integer("round_to", 1, "Keep a multiple of this many channels.")
FLAGS = flags.FLAGS
WIDTHS = (32, 64, 128)


def build_cnn(input_shape, classes):
    import keras
    from keras import layers

    images = len(input_shape) == 3
    conv = layers.Conv2D if images else layers.Conv1D
    pool = layers.GlobalAveragePooling2D if images else layers.GlobalAveragePooling1D
    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(WIDTHS):
        x = conv(width, 3, strides=2 if i == 1 else 1, padding="same",
                 use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    outputs = layers.Dense(classes, name="logits")(pool(name="pool")(x))
    return keras.Model(inputs, outputs, name="cnn")


def fit(model, x, y, epochs, lr):
    import keras

    model.compile(keras.optimizers.Adam(lr), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # no TensorFlow INFO lines
    import keras

    import keras_compress as kc
    from keras_compress.pruning import BatchNormScale, L1Norm, L2Norm, prune_channels

    out = _common.output_dir(FLAGS.out)
    keras.utils.set_random_seed(FLAGS.seed)
    (x, y), (xt, yt) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    model = build_cnn(x.shape[1:], int(y.max()) + 1)
    fit(model, x, y, FLAGS.epochs, 3e-3)
    criterion = {"l1": L1Norm, "l2": L2Norm, "bn": BatchNormScale}[FLAGS.criterion]()

    rows = []

    def measure(name, m, ratio):
        path = os.path.join(out, f"{name}.tflite")
        kc.export.to_tflite(m, path)
        rows.append({
            "model": name, "ratio": ratio,
            "widths": "-".join(str(m.get_layer(f"conv{i}").filters)
                               for i in range(len(WIDTHS))),
            "params": m.count_params(), "macs": _common.macs(m),
            "file": os.path.basename(path), "bytes": os.path.getsize(path),
            "latency_us": _common.latency_us(path),
            "accuracy": _common.accuracy(kc.runtime.LiteRTModel(path), xt, yt),
        })
        rows[-1]["speedup"] = rows[0]["latency_us"] / rows[-1]["latency_us"]

    measure("original", model, 0.0)
    for ratio in (float(r) for r in FLAGS.ratios):
        # A new, smaller Keras model; `model` itself is not changed.
        pruned, report = prune_channels(model, ratio=ratio, criterion=criterion,
                                        round_to=FLAGS.round_to)
        fit(pruned, x, y, FLAGS.finetune_epochs, 1e-3)
        measure(f"pruned_{ratio:g}", pruned, ratio)
    print(_common.table(rows, [
        ("model", "model", None), ("widths", "conv widths", None),
        ("params", "params", ",d"), ("macs", "MACs", ",d"), ("bytes", "bytes", ",d"),
        ("latency_us", "latency us", ".1f"), ("speedup", "speedup", ".2f"),
        ("accuracy", "LiteRT accuracy", ".2%")]))
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "criterion": FLAGS.criterion,
        "epochs": FLAGS.epochs, "finetune_epochs": FLAGS.finetune_epochs,
        "round_to": FLAGS.round_to, "rows": rows,
    })


if __name__ == "__main__":
    app.run(main)
