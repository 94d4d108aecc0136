"""Size, latency, accuracy and XNNPACK coverage of the four TFLite formats.

Two models are exported with `keras_compress.export.to_tflite` as float32,
float16, dynamic-range and full-int8 flatbuffers (batch size 1):

- the demo CNN (`keras_compress.demo.train_cnn`), trained on the offline
  16x16 digits and calibrated on 100 real training digits;
- a MobileNet-style CNN (96x96x3 input, a stride-2 3x3 stem, seven
  depthwise-separable blocks growing to 256 channels, global average pool,
  Dense(10)) with random weights, calibrated on 100 uniform random images.

Every artifact is loaded in LiteRT (XNNPACK delegate) and measured in the
same run: file size, latency (`LiteRTModel.benchmark`, median over several
repeats, the formats interleaved within each repeat so machine noise hits
all of them alike), XNNPACK op coverage and, for the demo CNN, test
accuracy. Results are printed as tables and written to
`benchmarks/results/export_formats.json`.

Usage:

    python benchmarks/export_formats.py              # defaults, about a minute
    python benchmarks/export_formats.py --quick      # smoke test, ~30 s, temp output
    python benchmarks/export_formats.py --threads 2 --repeats 7 --runs 200
"""

import argparse
import os
import shlex
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_compress.demo import EPOCHS as DEMO_EPOCHS  # noqa: E402

from _harness import machine_info, write_results  # noqa: E402  (benchmarks/ is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "export_formats.json")

FORMATS = (
    ("float32", None),
    ("float16", "float16"),
    ("dynamic", "dynamic"),
    ("int8", "int8"),
)
CALIBRATION_SAMPLES = 100

# (output channels, stride) of each depthwise-separable block.
MOBILENET_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (256, 2),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare float32, float16, dynamic-range and int8 TFLite "
        "exports side by side in LiteRT (XNNPACK).",
    )
    parser.add_argument("--threads", type=int, default=1,
                        help="LiteRT interpreter threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="latency repeats per format; the reported latency "
                        "is the median over repeats (default 5)")
    parser.add_argument("--runs", type=int, default=200,
                        help="timed invocations per repeat (default 200)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed invocations before each repeat (default 20)")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS,
                        help=f"training epochs of the demo CNN (default {DEMO_EPOCHS}, "
                        "as in `keras-compress demo`)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 epoch, 1 repeat, 5 runs, 1 warmup; "
                        "writes to a temporary folder unless --output is given")
    parser.add_argument("--output", default=None,
                        help=f"JSON output path (default {os.path.relpath(DEFAULT_OUTPUT)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats, args.runs, args.warmup = 1, 1, 5, 1
    for name in ("threads", "repeats", "runs", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive int, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.output is None:
        if args.quick:
            import tempfile

            args.output = os.path.join(tempfile.gettempdir(), "export_formats_quick.json")
        else:
            args.output = DEFAULT_OUTPUT
    return args


RANDOM_MODEL_DESCRIPTIONS = {
    "mobilenet_style": "MobileNet-v1-style CNN, random weights: stride-2 3x3 "
                       "stem, depthwise-separable blocks "
                       f"{[list(b) for b in MOBILENET_BLOCKS]} (channels, "
                       "stride), global average pool, Dense(10); int8 "
                       "calibrated on 100 uniform random images",
    "mobilenet_v1": "keras.applications.MobileNet(alpha=1.0, weights=None, "
                    "classes=10) at 96x96x3, random weights and BatchNorm "
                    "statistics; int8 calibrated on 100 uniform random images",
}


def build_mobilenet_style(input_shape=(96, 96, 3), num_classes=10, seed=0):
    """A MobileNet-v1-style CNN with random weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for channels, stride in MOBILENET_BLOCKS:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(channels, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes)(x)
    model = keras.Model(inputs, outputs, name="mobilenet_style")
    return randomize_batchnorm(model, seed)


def build_mobilenet_v1(input_shape=(96, 96, 3), num_classes=10, seed=0):
    """Keras's own MobileNet v1 at full width (alpha 1.0), random weights."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNet(
        input_shape=input_shape, alpha=1.0, weights=None, classes=num_classes
    )
    return randomize_batchnorm(model, seed)


def randomize_batchnorm(model, seed):
    """Gives BatchNorm layers trained-looking statistics.

    Fresh BatchNorm layers are identities, which the converter folds into
    all-zero biases that it then stores once for the whole model; that
    would flatter the file sizes. With random statistics every layer keeps
    its own bias, as in a trained model.
    """
    from keras import layers

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.1, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0.0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
    return model


def export_all(model, calibration, log):
    """Exports `model` in every format; returns {label: bytes}."""
    from keras_compress.export import to_tflite

    artifacts = {}
    for label, mode in FORMATS:
        start = time.perf_counter()
        artifacts[label] = to_tflite(
            model, quantize=mode,
            representative_data=calibration if mode == "int8" else None,
            calibration_samples=CALIBRATION_SAMPLES,
            batch_size=1,
        )
        log(f"  exported {label:<8} {len(artifacts[label]):>9,} bytes "
            f"({time.perf_counter() - start:.1f} s)")
    return artifacts


def size_breakdown(data):
    """Splits a flatbuffer's bytes into constant data, quantization
    parameters (scales, zero points, min/max of every tensor) and the rest
    (graph, names, signatures, metadata, alignment)."""
    from keras_compress import _tflite

    model = _tflite.parse(data)
    constant = sum(
        len(b.data) if b.data is not None else (b.size or 0)
        for b in model.buffers or []
    )

    def count(values):
        return 0 if values is None else len(values)

    quantization = 0
    for subgraph in model.subgraphs:
        for t in subgraph.tensors or []:
            q = t.quantization
            if q is not None:
                quantization += (4 * count(q.scale) + 8 * count(q.zeroPoint)
                                 + 4 * count(q.min) + 4 * count(q.max))
    return {
        "constant_bytes": int(constant),
        "quantization_param_bytes": int(quantization),
        "other_bytes": int(len(data) - constant - quantization),
    }


def measure(artifacts, args, test_data=None):
    """Loads every artifact in LiteRT and measures it; returns result rows."""
    from keras_compress.runtime import LiteRTModel

    runners = {
        label: LiteRTModel(data, num_threads=args.threads)
        for label, data in artifacts.items()
    }
    labels = list(runners)
    medians = {label: [] for label in labels}
    p90s = {label: [] for label in labels}
    for repeat in range(args.repeats):
        # Interleave, and rotate the order so no format always runs first.
        shift = repeat % len(labels)
        for label in labels[shift:] + labels[:shift]:
            stats = runners[label].benchmark(num_runs=args.runs, warmup=args.warmup)
            medians[label].append(stats["median_ms"])
            p90s[label].append(stats["p90_ms"])

    rows = []
    for label in labels:
        runner = runners[label]
        delegation = runner.delegation()
        row = {
            "format": label,
            "size_bytes": runner.size_bytes,
            "median_ms": float(np.median(medians[label])),
            "p90_ms": float(np.median(p90s[label])),
            "median_ms_per_repeat": [float(v) for v in medians[label]],
            "xnnpack_ops": delegation["xnnpack_ops"],
            "total_ops": delegation["total_ops"],
            "builtin_only": delegation["builtin_only"],
            **size_breakdown(artifacts[label]),
        }
        if test_data is not None:
            row["accuracy"] = float(runner.evaluate(*test_data))
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["size_ratio_vs_float32"] = base["size_bytes"] / row["size_bytes"]
        row["constant_ratio_vs_float32"] = base["constant_bytes"] / row["constant_bytes"]
        row["latency_ratio_vs_float32"] = base["median_ms"] / row["median_ms"]
    return rows


def table(rows, keras_accuracy=None):
    """Result rows as an aligned text table."""
    has_accuracy = "accuracy" in rows[0]
    header = ["format", "bytes", "smaller", "median ms", "faster", "p90 ms", "XNNPACK ops"]
    if has_accuracy:
        header.append("accuracy")
    header.append("not on XNNPACK")
    lines = [header]
    for r in rows:
        line = [
            r["format"], f"{r['size_bytes']:,}", f"{r['size_ratio_vs_float32']:.2f}x",
            f"{r['median_ms']:.3f}", f"{r['latency_ratio_vs_float32']:.2f}x",
            f"{r['p90_ms']:.3f}", f"{r['xnnpack_ops']}/{r['total_ops']}",
        ]
        if has_accuracy:
            line.append(f"{100 * r['accuracy']:.2f}%")
        line.append(", ".join(r["builtin_only"]) or "-")
        lines.append(line)
    if keras_accuracy is not None:
        line = ["Keras"] + ["-"] * (len(header) - 3) + [f"{100 * keras_accuracy:.2f}%", "-"]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(
            cell.ljust(w) if i in (0, len(header) - 1) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def breakdown_table(rows):
    """Where each file's bytes go, as an aligned text table."""
    header = ["format", "file bytes", "constants", "quant params", "other",
              "constants smaller"]
    lines = [header] + [
        [r["format"], f"{r['size_bytes']:,}", f"{r['constant_bytes']:,}",
         f"{r['quantization_param_bytes']:,}", f"{r['other_bytes']:,}",
         f"{r['constant_ratio_vs_float32']:.2f}x"]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = machine_info("ai-edge-litert")

    def log(text):
        print(text, flush=True)

    from keras_compress.demo import train_cnn

    log(f"[1/4] Training the demo CNN on 16x16 digits ({args.epochs} epochs)")
    cnn, ((x_train, _), (x_test, y_test)) = train_cnn(epochs=args.epochs)
    keras_accuracy = float(cnn.evaluate(x_test, y_test, verbose=0)[1])
    log(f"  Keras test accuracy {100 * keras_accuracy:.2f}% "
        f"({time.perf_counter() - start:.0f} s)")

    log("[2/4] Exporting the demo CNN")
    cnn_artifacts = export_all(cnn, x_train[:CALIBRATION_SAMPLES], log)
    log(f"  measuring ({args.repeats} repeats x {args.runs} runs, "
        f"{args.threads} thread(s))")
    cnn_rows = measure(cnn_artifacts, args, (x_test, y_test))

    random_models = [("mobilenet_style", "MobileNet-style CNN", build_mobilenet_style)]
    if not args.quick:
        random_models.append(
            ("mobilenet_v1", "MobileNet v1 (keras.applications, alpha 1.0)",
             build_mobilenet_v1))
    steps = 3 + len(random_models)
    random_results = {}
    for k, (key, title, build) in enumerate(random_models):
        log(f"[{3 + k}/{steps}] Exporting the {title} (random weights)")
        model = build()
        rng = np.random.default_rng(0)
        calibration = rng.uniform(
            0, 1, (CALIBRATION_SAMPLES,) + tuple(model.input_shape[1:])
        ).astype("float32")
        artifacts = export_all(model, calibration, log)
        log("  measuring")
        random_results[key] = (title, model, measure(artifacts, args))

    elapsed = time.perf_counter() - start
    log(f"[{steps}/{steps}] Results\n")
    log(f"Demo CNN ({cnn.count_params():,} parameters, 16x16x1 input), "
        f"LiteRT + XNNPACK, {args.threads} thread(s), batch 1")
    log(table(cnn_rows, keras_accuracy))
    log("")
    log(breakdown_table(cnn_rows))
    for title, model, rows in random_results.values():
        log("")
        log(f"{title} ({model.count_params():,} parameters, 96x96x3 input, "
            f"random weights), LiteRT + XNNPACK, {args.threads} thread(s), batch 1")
        log(table(rows))
        log("")
        log(breakdown_table(rows))

    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/export_formats.py", *given])
    result = {
        "benchmark": "export_formats",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": {
            "threads": args.threads,
            "repeats": args.repeats,
            "runs": args.runs,
            "warmup": args.warmup,
            "epochs": args.epochs,
            "quick": args.quick,
            "batch_size": 1,
            "calibration_samples": CALIBRATION_SAMPLES,
            "latency": "median over repeats of the per-repeat median (and p90) "
                       "of LiteRTModel.benchmark; formats interleaved per repeat",
        },
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "models": {
            "demo_cnn": {
                "description": "keras_compress.demo.train_cnn(): 16x16x1 digits, "
                               "int8 calibrated on 100 real training digits",
                "params": int(cnn.count_params()),
                "input_shape": list(cnn.input_shape[1:]),
                "keras_accuracy": keras_accuracy,
                "test_samples": int(len(x_test)),
                "rows": cnn_rows,
            },
            **{
                key: {
                    "description": RANDOM_MODEL_DESCRIPTIONS[key],
                    "params": int(model.count_params()),
                    "input_shape": list(model.input_shape[1:]),
                    "rows": rows,
                }
                for key, (_, model, rows) in random_results.items()
            },
        },
    }
    write_results(args.output, result)
    log(f"\nWrote {args.output} ({elapsed:.0f} s)")
    return result


if __name__ == "__main__":
    main()
