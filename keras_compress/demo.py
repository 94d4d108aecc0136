"""The end-to-end demo: a Keras CNN to phone and microcontroller artifacts.

`keras-compress demo` trains a small CNN on the offline digits, exports it
as float32, float16, dynamic-range and full-int8 TFLite, prunes a copy to
80% sparsity while fine-tuning it (`MagnitudePruning`) and exports it as
sparse TFLite, clusters that pruned copy to 16 shared values, fine-tunes it
with quantization-aware training and writes a TFLite Micro bundle whose
weights TFLM decodes at run time (Deep Compression), removes half of the channels of another copy
(`prune_channels`) and fine-tunes it, fine-tunes a QAT copy to int8, adds
two early exits to another copy (a threshold sweep of accuracy against
average MACs, and the stage chain run in LiteRT), writes a microcontroller
bundle, runs every artifact in its real runtime (LiteRT with XNNPACK;
TensorFlow Lite Micro for the bundle) and reports accuracy, size, latency
and arena in one table, a JSON file and two plots.
"""

import json
import os
import time

import numpy as np

from keras_compress import _io

EPOCHS = 30
SEED = 7
PRUNE_SPARSITY = 0.8
CLUSTERS = 16
CHANNEL_RATIO = 0.5
EXIT_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


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
    stage = _Stages(12, log)

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
        rows.append(_tflite_row(
            model, f"TFLite {label}", f"digits_{label.replace('-', '_')}.tflite",
            mode, calibration, out_dir, x_test, y_test,
        ))

    stage(f"Pruning a copy to {PRUNE_SPARSITY:.0%} while fine-tuning, exporting sparse TFLite")
    pruning_rows, pruned = _pruning_rows(model, x_train, y_train, x_test, y_test,
                                         calibration, out_dir, max(2, epochs // 3))
    rows += pruning_rows

    stage(f"Deep Compression: clustering the pruned copy to {CLUSTERS} values, QAT, "
          "a TFLM bundle with compressed weights")
    rows.append(_deep_compression_row(pruned, x_train, y_train, x_test, y_test,
                                      out_dir, max(2, epochs // 6), log))

    stage("Quantization-aware training of a copy, exporting int8 without calibration data")
    rows.append(_qat_row(model, x_train, y_train, x_test, y_test, out_dir,
                         max(2, epochs // 6)))

    stage(f"Removing {CHANNEL_RATIO:.0%} of the channels, fine-tuning, exporting")
    rows += _channel_rows(model, x_train, y_train, x_test, y_test, calibration,
                          out_dir, max(2, epochs // 3))

    stage("Adding two early exits to a copy, sweeping thresholds, running the stage chain")
    early = _early_exit(model, x_train, y_train, x_test, y_test, out_dir,
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
        "latency_ms": _micro_latency(micro, x_test[:50]),
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


def _pruning_rows(model, x_train, y_train, x_test, y_test, calibration,
                  out_dir, epochs):
    """Fine-tunes a copy of `model` with MagnitudePruning; sparse exports."""
    import keras

    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.pruning import PolynomialDecay, strip_pruning

    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    pruned.compile(optimizer=keras.optimizers.Adam(1e-3),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    steps = epochs * int(np.ceil(len(x_train) / 64))
    # Reach the target two thirds of the way in, then fine-tune with the
    # final mask.
    schedule = PolynomialDecay(0.0, PRUNE_SPARSITY, begin_step=0,
                               end_step=max(1, 2 * steps // 3), frequency=20)
    pruned.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0,
               callbacks=[MagnitudePruning(schedule)])
    strip_pruning(pruned)
    pruned.save(os.path.join(out_dir, "digits_cnn_pruned.keras"))
    return [
        _tflite_row(pruned, f"TFLite {label} pruned {PRUNE_SPARSITY:.0%} sparse",
                    f"digits_pruned_{label}_sparse.tflite", mode, calibration,
                    out_dir, x_test, y_test, sparse=True)
        for label, mode in (("float32", None), ("int8", "int8"))
    ], pruned


def _deep_compression_row(pruned, x_train, y_train, x_test, y_test, out_dir,
                          epochs, log):
    """Prune (done) -> cluster -> QAT -> TFLM bundle with DECODE weights."""
    import keras

    from keras_compress import analysis, export
    from keras_compress.clustering import cluster_weights
    from keras_compress.quantization import quantize_model
    from keras_compress.runtime import MicroModel

    model = keras.models.clone_model(pruned)
    model.set_weights(pruned.get_weights())
    cluster_weights(model, clusters=CLUSTERS, seed=SEED)  # zeros: own cluster
    for m in (model, None):
        if m is None:
            m = model = quantize_model(model)  # keeps zeros and clusters
        m.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        m.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    folder = os.path.join(out_dir, "micro_deep_compression")
    report = export.to_micro(model, folder, "digits", compression="auto")
    micro = MicroModel(os.path.join(folder, "digits.tflite"),
                       arena_size=report["arena_bytes"])
    c = report["compression"]
    log(f"  flash {c['flash_bytes_uncompressed']:,} -> {report['flash_bytes']:,} "
        f"bytes; arena {report['arena_bytes']:,} bytes, or "
        f"{c['arena_bytes_with_alt_memory']:,} + "
        f"{c['alt_decompression_memory_bytes']:,} of alternate decompression "
        "memory")
    bits = analysis.weight_bits(model)
    return {
        "artifact": f"TFLM bundle, pruned {PRUNE_SPARSITY:.0%} + {CLUSTERS} "
                    "clusters + QAT, compressed",
        "runtime": "TFLite Micro",
        "accuracy": micro.evaluate(x_test, y_test),
        "size_bytes": report["flash_bytes"],
        "latency_ms": _micro_latency(micro, x_test[:50]),
        "arena_bytes": report["arena_bytes"],
        "file": "micro_deep_compression/digits.tflite",
        # Deep Compression's own format (relative indices + Huffman), for
        # comparison: bits per weight, not a deployable file.
        "deep_compression_bits_per_weight":
            bits.totals.bits_per_weight[bits.totals.best],
    }


def _qat_row(model, x_train, y_train, x_test, y_test, out_dir, epochs):
    """Quantization-aware fine-tuning; int8 export from the learned ranges."""
    import keras

    from keras_compress.callbacks import QATSchedule
    from keras_compress.quantization import quantize_model

    qat = quantize_model(model)
    qat.compile(optimizer=keras.optimizers.Adam(5e-4),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0,
            callbacks=[QATSchedule(freeze_batchnorm=max(1, epochs - 1))])
    qat.save(os.path.join(out_dir, "digits_cnn_qat.keras"))
    row = _tflite_row(qat, "TFLite int8 from QAT", "digits_qat_int8.tflite",
                      "int8", None, out_dir, x_test, y_test)
    row["keras_accuracy"] = float(qat.evaluate(x_test, y_test, verbose=0)[1])
    return row


def _early_exit(model, x_train, y_train, x_test, y_test, out_dir, epochs):
    """Two early exits (after each pooling) trained on the frozen, trained
    backbone; a threshold sweep, its plot, and the stage chain run in
    LiteRT at the threshold that saves most MACs within 1 point.

    Training the backbone jointly with the exits cost its final exit 2-6
    points here; heads on frozen features keep the full network's accuracy.
    """
    import keras

    from keras_compress.early_exit import (
        add_early_exits, compile_multi_exit, export_early_exit, threshold_sweep)
    from keras_compress.runtime import EarlyExitRunner

    pools = [layer.name for layer in model.layers
             if isinstance(layer, keras.layers.MaxPooling2D)]
    multi = add_early_exits(model, pools, head={"hidden_units": 64},
                            freeze_backbone=True)  # a copy
    steps = epochs * -(-len(x_train) // 64)
    trainer = compile_multi_exit(
        multi, keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)))
    trainer.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    multi.save(os.path.join(out_dir, "digits_cnn_early_exit.keras"))
    sweep = threshold_sweep(multi, x_test, y_test, EXIT_THRESHOLDS)
    sweep.plot(os.path.join(out_dir, "early_exit.png"))
    best = sweep.best(0.01) or sweep.rows[-1]
    chain = export_early_exit(multi, os.path.join(out_dir, "early_exit"),
                              threshold=best["threshold"], overwrite=True)
    lite = EarlyExitRunner(os.path.join(out_dir, "early_exit")).predict(x_test)
    fractions = lite.exit_fractions(len(pools) + 1)
    summary = (
        f"Early exits at threshold {best['threshold']:g} (max softmax): LiteRT "
        f"accuracy {100 * lite.accuracy(y_test):.1f}% (Keras {100 * best['accuracy']:.1f}%, "
        f"full network {100 * sweep.full_accuracy:.1f}%), "
        f"{lite.mean_macs:,.0f} MACs per sample on average against the full "
        f"network's {sweep.backbone_macs:,} (reduction "
        f"{sweep.backbone_macs / lite.mean_macs:.2f}x); "
        "samples leaving at each exit: "
        + ", ".join(f"{100 * f:.0f}%" for f in fractions) + "."
    )
    return {
        "threshold": best["threshold"],
        "keras_accuracy": best["accuracy"],
        "litert_accuracy": lite.accuracy(y_test),
        "full_accuracy": sweep.full_accuracy,
        "mean_macs": lite.mean_macs,
        "full_macs": sweep.backbone_macs,
        "exit_fractions": [float(f) for f in fractions],
        "files": [stage["file"] for stage in chain["stages"]],
        "sweep": sweep.to_dict(),
        "summary": summary,
    }


def _channel_rows(model, x_train, y_train, x_test, y_test, calibration,
                  out_dir, epochs):
    """Structured pruning: a model with half the channels, fine-tuned."""
    import keras

    from keras_compress.pruning import L1Norm, prune_channels

    smaller, report = prune_channels(model, ratio=CHANNEL_RATIO, criterion=L1Norm())
    smaller.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    smaller.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    smaller.save(os.path.join(out_dir, "digits_cnn_channels.keras"))
    rows = [
        _tflite_row(smaller, f"TFLite {label} {CHANNEL_RATIO:.0%} channels removed",
                    f"digits_channels_{label}.tflite", mode, calibration,
                    out_dir, x_test, y_test)
        for label, mode in (("float32", None), ("int8", "int8"))
    ]
    for row in rows:
        row["mac_ratio"] = report.mac_ratio
    return rows


def _tflite_row(model, artifact, file, mode, calibration, out_dir, x_test,
                y_test, sparse=False):
    """Exports `model` to `out_dir/file`, runs it in LiteRT, returns the row."""
    from keras_compress import export
    from keras_compress.runtime import LiteRTModel

    data = export.to_tflite(
        model, os.path.join(out_dir, file), quantize=mode, sparse=sparse,
        representative_data=calibration if mode == "int8" else None,
        batch_size=1,
    )
    # XNNPACK cannot prepare sparse int8 FULLY_CONNECTED weights.
    builtin = sparse and mode == "int8"
    runner = LiteRTModel(data, num_threads=1,
                         kernels="builtin" if builtin else "xnnpack")
    return {
        "artifact": artifact,
        "runtime": "LiteRT builtin" if builtin else "LiteRT+XNNPACK",
        "accuracy": runner.evaluate(x_test, y_test),
        "size_bytes": len(data),
        "latency_ms": _median_latency(runner),
        "arena_bytes": None, "file": file,
    }


def table(rows):
    """The demo's result rows as an aligned text table."""
    header = ["artifact", "runtime", "accuracy", "size", "vs float32", "latency", "arena"]
    lines = [header]
    for r in rows:
        lines.append([
            r["artifact"], r["runtime"], f"{100 * r['accuracy']:.1f}%",
            _kb(r["size_bytes"]), f"{r['size_vs_float32']:.2f}x",
            "-" if r["latency_ms"] is None else f"{1000 * r['latency_ms']:.0f} us",
            "-" if r["arena_bytes"] is None else _kb(r["arena_bytes"]),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot(rows, path):
    """Accuracy against size, one labelled point per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 4.5))
    markers = "osD^vP*X"
    for i, r in enumerate(rows):
        kb, acc = r["size_bytes"] / 1024, 100 * r["accuracy"]
        ax.scatter(kb, acc, s=70, marker=markers[i % len(markers)], alpha=0.8,
                   label=f"{r['artifact']} ({kb:.0f} KB, {acc:.1f}%)")
    accuracies = [100 * r["accuracy"] for r in rows]
    middle = (max(accuracies) + min(accuracies)) / 2
    half = max(1.0, (max(accuracies) - min(accuracies)) / 2 + 0.5)
    ax.set_ylim(middle - half, middle + half)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("size (KB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("keras-compress demo: digits CNN, accuracy vs size")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with _io.staged_files([path]) as temps:
        fig.savefig(temps[path], format="png", dpi=120)
    plt.close(fig)


def _median_latency(runner, repeats=3):
    return float(np.median([
        runner.benchmark(num_runs=200, warmup=20)["median_ms"] for _ in range(repeats)
    ]))


def _micro_latency(micro, x):
    times = []
    for sample in x:
        start = time.perf_counter()
        micro.predict(sample[None])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _kb(n):
    return f"{n / 1024:.1f} KB"


class _Stages:
    """Prints `[k/n] what` lines with the time since the start."""

    def __init__(self, total, log):
        self.total, self.log, self.count = total, log, 0
        self.start = time.perf_counter()

    def __call__(self, text):
        self.count += 1
        self.log(f"[{self.count}/{self.total}] {text} ... ({self.elapsed():.0f} s)")

    def elapsed(self):
        return time.perf_counter() - self.start
