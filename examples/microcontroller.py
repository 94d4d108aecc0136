"""A Keras CNN as a TensorFlow Lite Micro bundle, run in TFLite Micro.

Trains a small microcontroller-sized CNN (Conv-BN-ReLU, max pooling, a
depthwise-separable block, global average pooling, Dense), then writes a
firmware bundle with `keras_compress.export.to_micro`: full-int8 `.tflite`
(calibrated on 200 training samples, int8 input and output, batch 1), the
same bytes as a 16-byte aligned C array (`.h` / `.c`), and a report with
the flash bytes, the smallest tensor arena TFLite Micro runs it in, and
the operators to register. The bundle is then run in TFLite Micro's own
interpreter (`keras_compress.runtime.MicroModel`, the C++ runtime that runs
on microcontrollers, built for the host) on the test set, next to the
float32 TFLite file run in LiteRT.

Run (about 15 s on 2 shared cores):

    python examples/microcontroller.py --out microcontroller_out

Measured with the defaults (digits: 1437 train / 360 test; 30 epochs; seed
0; 16 s):

    artifact          runtime       accuracy  flash bytes  arena bytes  MACs    ops
    float32 TFLite          LiteRT     97.8%       38,692            -  78,464    -
    int8 TFLM bundle  TFLite Micro     98.1%       21,976        7,584  78,464    6

The int8 file is only 1.8x smaller here: for 8,202 weights it also stores
a float scale and an int64 zero point per output channel (6.5 KB) and the
tensor names (2.8 KB). `examples/pipeline.py` shrinks a larger network 11x.

With `--binary`, the two 1x1 convolutions are `BinaryConv2D` layers with
binarized inputs, written as bit-packed `KC_BINARY_CONV2D` operators
(`to_micro(binary="packed")`: 1 bit per weight, XOR and popcount, proven
bit-identical to the builtin int8 bundle in TFLite Micro); the bundle then
also holds the operators' C sources and the header names the call that
registers them (`KcAddBinaryOps(resolver)`). Measured (the defaults plus
`--binary`):

    artifact                          runtime       accuracy  flash bytes  arena bytes
    float32 TFLite                          LiteRT     95.8%       42,448            -
    int8 + packed binary TFLM bundle  TFLite Micro     95.0%       10,880        7,712

Writes float32.tflite, the bundle in micro/ (<name>.tflite, <name>.h,
<name>.c, <name>_report.json, and with --binary kc_binary.h, kc_binary.c,
kc_tflm_ops.h) and results.json into --out, and prints the table, the
operators and the top of the generated header.
"""

import os

from absl import app, flags, logging

import _common

_common.define_flags(epochs=30, out="microcontroller_out")
flags.DEFINE_string("name", "model", "C identifier of the bundle's files and arrays.")
flags.DEFINE_bool("binary", False,
                  "Make the two 1x1 convolutions BinaryConv2D (binarized inputs and "
                  "weights) and write them as bit-packed operators "
                  "(to_micro(binary='packed')): the bundle then also holds their C "
                  "kernels (kc_binary.c, kc_tflm_ops.h).")
FLAGS = flags.FLAGS


def build_cnn(input_shape, num_classes, binary=False):
    """Conv-BN-ReLU, then two depthwise-separable blocks, global pool, Dense.

    Conv1D layers for sequences, Conv2D for images; max pooling after the
    first two blocks. With `binary` (images only), the 1x1 convolutions are
    `BinaryConv2D` with binarized inputs (XNOR-Net style), and the batch
    norms before them have no ReLU (the sign is the nonlinearity).
    """
    import keras
    from keras import layers

    from keras_compress.layers import BinaryConv2D

    one_d = len(input_shape) == 2
    conv = layers.Conv1D if one_d else layers.Conv2D
    depthwise = layers.DepthwiseConv1D if one_d else layers.DepthwiseConv2D
    pool = layers.MaxPooling1D if one_d else layers.MaxPooling2D
    global_pool = layers.GlobalAveragePooling1D if one_d else layers.GlobalAveragePooling2D
    inputs = keras.Input(input_shape)
    x = inputs
    if binary and one_d:
        raise ValueError("Expected --dataset=digits with --binary (BinaryConv2D). "
                         "Received: a sequence data set")

    def pointwise(filters):
        if binary:
            return BinaryConv2D(filters, 1, use_bias=False, binarize_inputs=True)
        return conv(filters, 1, use_bias=False)

    for layer in (conv(32, 3, padding="same", use_bias=False), pool(2),
                  depthwise(3, padding="same", use_bias=False), pointwise(64),
                  pool(2), depthwise(3, padding="same", use_bias=False),
                  pointwise(64)):
        x = layer(x)
        if isinstance(layer, pool):
            continue
        x = layers.BatchNormalization()(x)
        if not (binary and isinstance(layer, depthwise)):
            # Before a binarized input, the sign is the nonlinearity (a ReLU
            # would make every input +1).
            x = layers.ReLU()(x)
    x = global_pool()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


def main(_):
    import keras

    from keras_compress.analysis import summarize
    from keras_compress.export import to_micro, to_tflite
    from keras_compress.runtime import LiteRTModel, MicroModel

    logging.set_verbosity(logging.WARNING)  # TensorFlow's export chatter
    out = _common.output_dir(FLAGS.out)
    (x, y), (x_test, y_test) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    keras.utils.set_random_seed(FLAGS.seed)
    model = build_cnn(x.shape[1:], int(max(y.max(), y_test.max())) + 1, FLAGS.binary)
    steps = FLAGS.epochs * -(-len(x) // 64)
    model.compile(optimizer=keras.optimizers.Adam(
                      keras.optimizers.schedules.CosineDecay(3e-3, steps)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=FLAGS.epochs, batch_size=64, verbose=0)

    float_path = os.path.join(out, "float32.tflite")
    to_tflite(model, float_path, batch_size=1)
    bundle = os.path.join(out, "micro")
    report = to_micro(model, bundle, FLAGS.name, representative_data=x[:200],
                      binary="packed" if FLAGS.binary else None)
    micro_path = os.path.join(bundle, report["files"]["tflite"])
    micro = MicroModel(micro_path, arena_size=report["arena_bytes"])
    label = "int8 + packed binary TFLM bundle" if FLAGS.binary else "int8 TFLM bundle"
    rows = [
        {"artifact": "float32 TFLite", "runtime": "LiteRT", "file": "float32.tflite",
         "accuracy": _common.accuracy(LiteRTModel(float_path), x_test, y_test),
         "size_bytes": os.path.getsize(float_path),
         "macs": summarize(float_path).totals.macs},
        {"artifact": label, "runtime": "TFLite Micro",
         "file": os.path.join("micro", report["files"]["tflite"]),
         "accuracy": micro.evaluate(x_test, y_test),
         "size_bytes": os.path.getsize(micro_path), "arena_bytes": report["arena_bytes"],
         "macs": summarize(micro_path).totals.macs, "ops": len(report["ops"])},
    ]
    print(_common.table(rows, [
        ("artifact", "artifact", None), ("runtime", "runtime", None),
        ("accuracy", "accuracy", ".1%"), ("size_bytes", "flash bytes", ",d"),
        ("arena_bytes", "arena bytes", ",d"), ("macs", "MACs", ",d"), ("ops", "ops", "d"),
    ]))
    print("\nOperators: " + ", ".join(f"{op} x{n}" for op, n in report["op_counts"].items()))
    header = os.path.join(bundle, report["files"]["header"])
    with open(header) as f:
        top = f.read().split("#ifdef __cplusplus")[0].rstrip()
    print(f"\nThe top of {header}:\n\n{top}\n")
    bundle_files = []
    for f in report["files"].values():  # custom_op_sources is a list
        bundle_files += f if isinstance(f, list) else [f]
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "epochs": FLAGS.epochs, "seed": FLAGS.seed,
        "test_samples": int(len(y_test)), "rows": rows, "report": report,
        "files": ["float32.tflite"] + [os.path.join("micro", f) for f in bundle_files],
    })
    print(f"Files and results.json are in {out}/")


if __name__ == "__main__":
    app.run(main)
