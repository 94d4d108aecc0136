"""The compression stages of the demo, each on a copy of the trained CNN.

Each stage fine-tunes its copy, saves it as `.keras`, exports it and runs
the export in its runtime (`keras_compress._demo.measure`).
"""

import os

import numpy as np

from keras_compress._demo.measure import micro_latency
from keras_compress._demo.measure import tflite_row

SEED = 7
PRUNE_SPARSITY = 0.8
CLUSTERS = 16
CHANNEL_RATIO = 0.5
EXIT_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def pruning_rows(model, x_train, y_train, x_test, y_test, calibration,
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
        tflite_row(pruned, f"TFLite {label} pruned {PRUNE_SPARSITY:.0%} sparse",
                   f"digits_pruned_{label}_sparse.tflite", mode, calibration,
                   out_dir, x_test, y_test, sparse=True)
        for label, mode in (("float32", None), ("int8", "int8"))
    ], pruned


def deep_compression_row(pruned, x_train, y_train, x_test, y_test, out_dir,
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
        "latency_ms": micro_latency(micro, x_test[:50]),
        "arena_bytes": report["arena_bytes"],
        "file": "micro_deep_compression/digits.tflite",
        # Deep Compression's own format (relative indices + Huffman), for
        # comparison: bits per weight, not a deployable file.
        "deep_compression_bits_per_weight":
            bits.totals.bits_per_weight[bits.totals.best],
    }


def qat_row(model, x_train, y_train, x_test, y_test, out_dir, epochs):
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
    row = tflite_row(qat, "TFLite int8 from QAT", "digits_qat_int8.tflite",
                     "int8", None, out_dir, x_test, y_test)
    row["keras_accuracy"] = float(qat.evaluate(x_test, y_test, verbose=0)[1])
    return row


def early_exit(model, x_train, y_train, x_test, y_test, out_dir, epochs):
    """Two early exits (after each pooling) trained on the frozen, trained
    backbone; a threshold sweep, its plot, and, at the threshold that saves
    most MACs within 1 point, one full-int8 TFLite file that exits early by
    itself, run and timed per sample in LiteRT beside the plain int8 model.

    Training the backbone jointly with the exits cost its final exit 2-6
    points here; heads on frozen features keep the full network's accuracy.
    """
    import keras

    from keras_compress.early_exit import (
        add_early_exits, compile_multi_exit, export_early_exit_file, threshold_sweep)
    from keras_compress.export import to_tflite
    from keras_compress.runtime import EarlyExitRunner, LiteRTModel

    pools = [layer.name for layer in model.layers
             if isinstance(layer, keras.layers.MaxPooling2D)]
    multi = add_early_exits(model, pools, freeze_backbone=True)  # a copy
    steps = epochs * -(-len(x_train) // 64)
    trainer = compile_multi_exit(
        multi, keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)))
    trainer.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    multi.save(os.path.join(out_dir, "digits_cnn_early_exit.keras"))
    sweep = threshold_sweep(multi, x_test, y_test, EXIT_THRESHOLDS)
    sweep.plot(os.path.join(out_dir, "early_exit.png"))
    best = sweep.best(0.01) or sweep.rows[-1]
    path = os.path.join(out_dir, "early_exit_int8.tflite")
    calibration = x_train[:200]
    export_early_exit_file(multi, path, threshold=best["threshold"], quantize="int8",
                           representative_data=calibration, verify_data=x_test[:100])
    runner = EarlyExitRunner(path, num_threads=1)
    lite = runner.predict(x_test)
    profile = runner.profile(x_test[:120], repeats=3)
    plain = LiteRTModel(to_tflite(model, quantize="int8", representative_data=calibration,
                                  batch_size=1), num_threads=1)
    plain_ms = plain.benchmark(num_runs=200)["median_ms"]
    fractions = lite.exit_fractions(len(pools) + 1)
    summary = (
        f"Early exits at threshold {best['threshold']:g} (max softmax), one int8 "
        f"file: LiteRT accuracy {100 * lite.accuracy(y_test):.1f}% (Keras "
        f"{100 * best['accuracy']:.1f}%, full network {100 * sweep.full_accuracy:.1f}%), "
        f"{lite.mean_macs:,.0f} MACs per sample on average against the full "
        f"network's {sweep.backbone_macs:,} (reduction "
        f"{sweep.backbone_macs / lite.mean_macs:.2f}x); "
        "samples leaving at each exit: "
        + ", ".join(f"{100 * f:.0f}%" for f in fractions)
        + f"; {1e3 * profile['mean_ms']:.1f} us per sample in LiteRT (1 thread) "
        f"against {1e3 * plain_ms:.1f} us for the plain int8 model."
    )
    return {
        "threshold": best["threshold"],
        "keras_accuracy": best["accuracy"],
        "litert_accuracy": lite.accuracy(y_test),
        "full_accuracy": sweep.full_accuracy,
        "mean_macs": lite.mean_macs,
        "full_macs": sweep.backbone_macs,
        "exit_fractions": [float(f) for f in fractions],
        "latency_us": 1e3 * profile["mean_ms"],
        "latency_us_by_exit": [None if e["median_ms"] is None else 1e3 * e["median_ms"]
                               for e in profile["by_exit"]],
        "plain_int8_latency_us": 1e3 * plain_ms,
        "files": [os.path.basename(path)],
        "sweep": sweep.to_dict(),
        "summary": summary,
    }


def channel_rows(model, x_train, y_train, x_test, y_test, calibration,
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
        tflite_row(smaller, f"TFLite {label} {CHANNEL_RATIO:.0%} channels removed",
                   f"digits_channels_{label}.tflite", mode, calibration,
                   out_dir, x_test, y_test)
        for label, mode in (("float32", None), ("int8", "int8"))
    ]
    for row in rows:
        row["mac_ratio"] = report.mac_ratio
    return rows

