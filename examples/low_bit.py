"""Low-bit and binary weights: DoReFa 4/2-bit, ternary and binary layers.

Trains one small network five times: a first convolution, a middle
convolution, a middle dense layer (97% of the weights on digits) and the
output layer. The middle layers get the variant's weights: float,
`QuantConv2D`/`QuantDense` with `kernel_quantizer=DoReFa(4)`, `DoReFa(2)`
or `Ternary()`, or `BinaryConv2D`/`BinaryDense` (+-alpha per output
channel); the first and last keep int8 weights (the `Quant*` default).
Activations stay float in training (weights only, as in BinaryConnect).
Sequences (MNIST-1D) run as (length, 1) images with (3, 1) kernels.

The variants are exported to full-int8 TFLite (activations calibrated on
200 training samples) and run in LiteRT. Low-bit layers train on TFLite's
int8 weight grid, so the files keep their few values: `values/channel` is
the most distinct int8 values any output channel of the middle convolution
holds in the file (read back with the `ai_edge_litert` interpreter); binary
weights take two. These files still store 8 bits per weight. The binary
variant is also written with `binary="packed"` (`binary_packed`): its
middle layers become bit-packed `KC_BINARY_*` operators (1 bit per weight;
run in LiteRT by the keras-compress delegate, compiled on first use).

Run (about 50 s on 2 shared cores):

    python examples/low_bit.py --out low_bit_out

Measured with the defaults (digits: 1437 train / 360 test; 30 epochs per
variant; seed 0):

    weights        bits/weight  Keras acc  LiteRT int8 acc  values/channel  bytes
    float32                 32      98.9%            98.9%             172  64,496
    dorefa4                  4      99.4%            99.4%              16  64,704
    dorefa2                  2      99.2%            99.2%               4  64,704
    ternary               1.58      98.9%            98.9%               3  64,720
    binary                   1      98.9%            98.9%               2  64,672
    binary_packed            1      98.9%            98.9%               2  16,736

The task is too easy to separate the formats (one test digit is 0.3
points); BENCHMARKS.md has them over seeds.

Writes `<variant>_int8.tflite` for each variant (and
`binary_packed_int8.tflite`), kernels.png (the int8
values of the middle convolution in each file) and results.json into --out.
"""

import os

from absl import app, flags, logging

import _common

_common.define_flags(epochs=30, out="low_bit_out")
FLAGS = flags.FLAGS

# Variant -> bits per weight of the middle layers.
VARIANTS = {"float32": 32, "dorefa4": 4, "dorefa2": 2, "ternary": 1.58, "binary": 1}


def kernel_layer(variant, position, units, kernel=None, **kwargs):
    """A Dense (no `kernel`) or Conv2D layer with the variant's weights."""
    from keras import layers

    from keras_compress.layers import BinaryConv2D, BinaryDense, QuantConv2D, QuantDense
    from keras_compress.quantizers import DoReFa, Ternary

    dense = kernel is None
    args = (units,) if dense else (units, kernel)
    if variant == "float32":
        return (layers.Dense if dense else layers.Conv2D)(*args, **kwargs)
    if position == "middle" and variant == "binary":
        return (BinaryDense if dense else BinaryConv2D)(*args, **kwargs)
    quantizer = {"dorefa4": DoReFa(4), "dorefa2": DoReFa(2), "ternary": Ternary()}
    quantizer = quantizer[variant] if position == "middle" else "default"  # int8
    return (QuantDense if dense else QuantConv2D)(*args, kernel_quantizer=quantizer, **kwargs)


def build(variant, input_shape, num_classes):
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    x, kernel, pool = inputs, 3, 2
    if len(input_shape) == 2:  # sequences as (length, 1) images
        x = layers.Reshape((input_shape[0], 1, input_shape[1]))(x)
        kernel, pool = (3, 1), (2, 1)
    for position, filters in (("first", 32), ("middle", 64)):
        x = kernel_layer(variant, position, filters, kernel, padding="same",
                         use_bias=False, name=f"conv_{position}")(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.MaxPooling2D(pool)(x)
    x = layers.Flatten()(x)
    x = kernel_layer(variant, "middle", 128, use_bias=False, name="dense_middle")(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    outputs = kernel_layer(variant, "last", num_classes, name="dense_last")(x)
    return keras.Model(inputs, outputs, name=variant)


def int8_kernels(path, shape):
    """The int8 tensors of this Keras kernel shape in a .tflite, (out, ...) each."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=path, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    wanted = (shape[-1], *shape[:-2], shape[-2])  # TFLite: (out, h, w, in)
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_tensor_details()
            if d["dtype"] == np.int8 and tuple(d["shape"]) == wanted]


def packed_row(model, binary_row, out, x, x_test, y_test):
    """The binary variant with bit-packed operators (`binary="packed"`)."""
    from keras_compress.export import to_tflite
    from keras_compress.runtime import LiteRTModel

    row = {"variant": "binary_packed", "bits_per_weight": 1,
           "keras_accuracy": binary_row["keras_accuracy"],
           "file": "binary_packed_int8.tflite"}
    path = os.path.join(out, row["file"])
    to_tflite(model, path, quantize="int8", representative_data=x[:200], binary="packed")
    row["values_per_channel"] = 2
    row["litert_accuracy"] = _common.accuracy(LiteRTModel(path), x_test, y_test)
    row["size_bytes"] = os.path.getsize(path)
    return row


def main(_):
    import keras
    import numpy as np

    from keras_compress.export import to_tflite
    from keras_compress.runtime import LiteRTModel

    logging.set_verbosity(logging.WARNING)  # TensorFlow's export chatter
    out = _common.output_dir(FLAGS.out)
    (x, y), (x_test, y_test) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    classes = int(max(y.max(), y_test.max())) + 1
    rows, kernels = [], {}
    for variant, bits in VARIANTS.items():
        keras.utils.set_random_seed(FLAGS.seed)
        model = build(variant, x.shape[1:], classes)
        steps = FLAGS.epochs * -(-len(x) // 64)
        model.compile(optimizer=keras.optimizers.Adam(
                          keras.optimizers.schedules.CosineDecay(3e-3, steps)),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(x, y, epochs=FLAGS.epochs, batch_size=64, verbose=0)
        row = {"variant": variant, "bits_per_weight": bits,
               "keras_accuracy": _common.accuracy(model, x_test, y_test)}
        rows.append(row)
        print(f"{variant}: Keras accuracy {row['keras_accuracy']:.1%}", flush=True)
        row["file"] = f"{variant}_int8.tflite"
        path = os.path.join(out, row["file"])
        to_tflite(model, path, quantize="int8", representative_data=x[:200])
        (kernel,) = int8_kernels(path, model.get_layer("conv_middle").kernel.shape)
        kernels[variant] = kernel
        row["values_per_channel"] = max(np.unique(c).size for c in kernel.reshape(len(kernel), -1))
        row["litert_accuracy"] = _common.accuracy(LiteRTModel(path), x_test, y_test)
        row["size_bytes"] = os.path.getsize(path)
        if variant == "binary":
            rows.append(packed_row(model, row, out, x, x_test, y_test))

    print()
    print(_common.table(rows, [
        ("variant", "weights", None), ("bits_per_weight", "bits/weight", "g"),
        ("keras_accuracy", "Keras acc", ".1%"), ("litert_accuracy", "LiteRT int8 acc", ".1%"),
        ("values_per_channel", "values/channel", "d"), ("size_bytes", "bytes", ",d"),
    ]))
    plot(kernels, os.path.join(out, "kernels.png"))
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "epochs": FLAGS.epochs, "seed": FLAGS.seed,
        "test_samples": int(len(y_test)), "rows": rows,
        "files": [row["file"] for row in rows if "file" in row] + ["kernels.png"],
    })
    print(f"\nFiles, kernels.png and results.json are in {out}/")


def plot(kernels, path):
    """One histogram per variant of the middle convolution's int8 weights."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(kernels), figsize=(3 * len(kernels), 2.6), sharex=True)
    for ax, (variant, kernel) in zip(axes, kernels.items()):
        values, counts = np.unique(kernel, return_counts=True)
        ax.bar(values, counts, width=3, color="tab:blue")  # wide enough to see
        ax.set_xlim(-135, 135)
        ax.set_title(variant)
        ax.set_xlabel("int8 value in the file")
    fig.tight_layout()
    fig.savefig(path + ".tmp", format="png", dpi=100)
    plt.close(fig)
    os.replace(path + ".tmp", path)  # all or nothing


if __name__ == "__main__":
    app.run(main)
