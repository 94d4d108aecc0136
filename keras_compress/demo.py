"""The end-to-end demo: a Keras CNN to phone and microcontroller artifacts.

`keras-compress demo` trains a small CNN on the offline digits, exports it
as float32, float16, dynamic-range and full-int8 TFLite, prunes a copy to
80% sparsity while fine-tuning it (`MagnitudePruning`) and exports it as
sparse TFLite, clusters that pruned copy to 16 shared values, fine-tunes it
with quantization-aware training and writes a TFLite Micro bundle whose
weights TFLM decodes at run time (Deep Compression), removes half of the channels of another copy
(`prune_channels`) and fine-tunes it, fine-tunes a QAT copy to int8, adds
two early exits to another copy (a threshold sweep of accuracy against
average MACs, and one int8 file that exits early by itself, run and timed
per sample in LiteRT), writes a microcontroller
bundle, runs every artifact in its real runtime (LiteRT with XNNPACK;
TensorFlow Lite Micro for the bundle) and reports accuracy, size, latency
and arena in one table, a JSON file and two plots.
"""

import json
import os

from keras_compress import _io
from keras_compress._demo.measure import micro_latency
from keras_compress._demo.measure import tflite_row
from keras_compress._demo.report import Stages
from keras_compress._demo.report import plot
from keras_compress._demo.report import table
from keras_compress._demo.stages import CHANNEL_RATIO
from keras_compress._demo.stages import CLUSTERS
from keras_compress._demo.stages import EXIT_THRESHOLDS  # noqa: F401 (public)
from keras_compress._demo.stages import PRUNE_SPARSITY
from keras_compress._demo.stages import SEED
from keras_compress._demo.stages import channel_rows
from keras_compress._demo.stages import deep_compression_row
from keras_compress._demo.stages import early_exit
from keras_compress._demo.stages import pruning_rows
from keras_compress._demo.stages import qat_row

EPOCHS = 30


def build_cnn(input_shape=(16, 16, 1), num_classes=10):
    """The demo CNN: Conv2D, BatchNorm, DepthwiseConv2D, a residual Add,
    pooling and Dense, the layer types a phone or microcontroller model has."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    shortcut = x
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(32, 1)(x)
    x = layers.Add()([x, shortcut])
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def train_cnn(epochs=EPOCHS, seed=SEED):
    """Trains the demo CNN on the 16x16 digits; returns `(model, data)`."""
    import keras

    from keras_compress.datasets import load_digits

    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits(upsample=2)
    model = build_cnn(x_train.shape[1:])
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return model, ((x_train, y_train), (x_test, y_test))


def run(out_dir="demo_out", epochs=EPOCHS, log=print):
    """Runs the demo; writes artifacts, `results.json` and `accuracy_vs_size.png`.

    Args:
        out_dir: Output folder, created if missing (its parent must exist).
        epochs: Training epochs, default 30.
        log: Where progress lines go, default `print`.

    Returns:
        The list of result rows (one dict per artifact).
    """
    from keras_compress import export
    from keras_compress.runtime import MicroModel

    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"Expected `epochs` to be a positive int. Received: epochs={epochs!r}")
    out_dir = _io.check_output_dir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stage = Stages(12, log)

    stage(f"Training the demo CNN on 16x16 digits ({epochs} epochs)")
    model, ((x_train, y_train), (x_test, y_test)) = train_cnn(epochs)
    keras_accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    model.save(os.path.join(out_dir, "digits_cnn.keras"))
    calibration = x_train[:200]

    rows = [{
        "artifact": "Keras float32 weights", "runtime": "Keras", "accuracy": keras_accuracy,
        "size_bytes": 4 * model.count_params(), "latency_ms": None, "arena_bytes": None,
        "file": "digits_cnn.keras",
    }]
    variants = [
        ("float32", None), ("float16", "float16"),
        ("dynamic-range", "dynamic"), ("int8", "int8"),
    ]
    for label, mode in variants:
        stage(f"Exporting {label} TFLite and running it in LiteRT (XNNPACK)")
        rows.append(tflite_row(
            model, f"TFLite {label}", f"digits_{label.replace('-', '_')}.tflite",
            mode, calibration, out_dir, x_test, y_test,
        ))

    stage(f"Pruning a copy to {PRUNE_SPARSITY:.0%} while fine-tuning, exporting sparse TFLite")
    pruned_rows, pruned = pruning_rows(model, x_train, y_train, x_test, y_test,
                                       calibration, out_dir, max(2, epochs // 3))
    rows += pruned_rows

    stage(f"Deep Compression: clustering the pruned copy to {CLUSTERS} values, QAT, "
          "a TFLM bundle with compressed weights")
    rows.append(deep_compression_row(pruned, x_train, y_train, x_test, y_test,
                                     out_dir, max(2, epochs // 6), log))

    stage("Quantization-aware training of a copy, exporting int8 without calibration data")
    rows.append(qat_row(model, x_train, y_train, x_test, y_test, out_dir,
                        max(2, epochs // 6)))

    stage(f"Removing {CHANNEL_RATIO:.0%} of the channels, fine-tuning, exporting")
    rows += channel_rows(model, x_train, y_train, x_test, y_test, calibration,
                         out_dir, max(2, epochs // 3))

    stage("Adding two early exits to a copy, sweeping thresholds, exporting one early-exit file")
    early = early_exit(model, x_train, y_train, x_test, y_test, out_dir,
                       max(2, epochs // 3))

    stage("Writing the microcontroller bundle and running it in TFLite Micro")
    report = export.to_micro(
        model, os.path.join(out_dir, "micro"), "digits", representative_data=calibration
    )
    # to_micro measured the arena already; run the bundle at that size.
    micro = MicroModel(
        os.path.join(out_dir, "micro", "digits.tflite"), arena_size=report["arena_bytes"]
    )
    rows.append({
        "artifact": "TFLM int8 bundle", "runtime": "TFLite Micro",
        "accuracy": micro.evaluate(x_test, y_test),
        "size_bytes": report["flash_bytes"],
        "latency_ms": micro_latency(micro, x_test[:50]),
        "arena_bytes": report["arena_bytes"], "file": "micro/digits.tflite",
    })

    stage("Writing results.json and accuracy_vs_size.png")
    base = rows[1]["size_bytes"]
    for row in rows:
        row["size_vs_float32"] = base / row["size_bytes"]
    _io.write_atomic(
        os.path.join(out_dir, "results.json"),
        json.dumps({"keras_params": model.count_params(), "rows": rows,
                    "early_exit": early}, indent=2) + "\n",
    )
    plot(rows, os.path.join(out_dir, "accuracy_vs_size.png"))
    log("")
    log(table(rows))
    log("")
    log(early["summary"])
    log(f"\nArtifacts, results.json, accuracy_vs_size.png and early_exit.png are "
        f"in {out_dir}/ ({stage.elapsed():.0f} s).")
    return rows
