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

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_compress.demo import EPOCHS as DEMO_EPOCHS  # noqa: E402

import _harness  # noqa: E402  (benchmarks/ is on sys.path)
from _cnns import (  # noqa: E402
    CALIBRATION_SAMPLES, MOBILENET_BLOCKS, build_mobilenet_style, build_mobilenet_v1,
    export_all, random_images)
from _harness import log, markdown_table  # noqa: E402

FORMATS = (
    ("float32", None),
    ("float16", "float16"),
    ("dynamic", "dynamic"),
    ("int8", "int8"),
)
# --quick: the random-weight model at a smaller input (the same weights).
QUICK_INPUT_SHAPE = (32, 32, 3)


def parse_args(argv=None):
    parser = _harness.arguments(
        "export_formats",
        "Compare float32, float16, dynamic-range and int8 TFLite exports side "
        "by side in LiteRT (XNNPACK).",
        quick="1 epoch, 1 repeat, 5 runs, 1 warmup, the MobileNet-style "
        "CNN at 32x32x3 and no MobileNet v1")
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
    args = _harness.parse(
        parser, argv, quick={"epochs": 1, "repeats": 1, "runs": 5, "warmup": 1},
        positive=("threads", "repeats", "runs", "epochs"))
    if args.warmup < 0:
        parser.error(f"Expected --warmup >= 0. Received: --warmup={args.warmup}")
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
    timings = _harness.litert_latency(runners, args.repeats, args.runs, args.warmup)
    rows = []
    for label, runner in runners.items():
        row = {"format": label, "size_bytes": runner.size_bytes, **timings[label],
               **size_breakdown(artifacts[label])}
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
    """Result rows as a markdown table."""
    has_accuracy = "accuracy" in rows[0]
    header = ["format", "bytes", "smaller", "median ms", "faster", "p90 ms", "XNNPACK ops"]
    if has_accuracy:
        header.append("accuracy")
    header.append("not on XNNPACK")
    lines = []
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
        lines.append(["Keras"] + ["-"] * (len(header) - 3)
                     + [f"{100 * keras_accuracy:.2f}%", "-"])
    return markdown_table(header, lines)


def breakdown_table(rows):
    """Where each file's bytes go, as a markdown table."""
    header = ["format", "file bytes", "constants", "quant params", "other",
              "constants smaller"]
    return markdown_table(header, [
        [r["format"], f"{r['size_bytes']:,}", f"{r['constant_bytes']:,}",
         f"{r['quantization_param_bytes']:,}", f"{r['other_bytes']:,}",
         f"{r['constant_ratio_vs_float32']:.2f}x"]
        for r in rows
    ])


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = _harness.machine_info("ai-edge-litert")

    from keras_compress.demo import train_cnn

    log(f"[1/4] Training the demo CNN on 16x16 digits ({args.epochs} epochs)")
    cnn, ((x_train, _), (x_test, y_test)) = train_cnn(epochs=args.epochs)
    keras_accuracy = float(cnn.evaluate(x_test, y_test, verbose=0)[1])
    log(f"  Keras test accuracy {100 * keras_accuracy:.2f}% "
        f"({time.perf_counter() - start:.0f} s)")

    log("[2/4] Exporting the demo CNN")
    cnn_artifacts = export_all(cnn, FORMATS, x_train[:CALIBRATION_SAMPLES], log)
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
        model = build(input_shape=QUICK_INPUT_SHAPE) if args.quick else build()
        artifacts = export_all(model, FORMATS, random_images(model.input_shape[1:]), log)
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
        shape = "x".join(map(str, model.input_shape[1:]))
        log(f"{title} ({model.count_params():,} parameters, {shape} input, "
            f"random weights), LiteRT + XNNPACK, {args.threads} thread(s), batch 1")
        log(table(rows))
        log("")
        log(breakdown_table(rows))

    settings = {
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
    }
    models = {
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
    }
    return _harness.write_report(
        args, _harness.report(args, argv, settings, info, elapsed, models=models))


if __name__ == "__main__":
    main()
