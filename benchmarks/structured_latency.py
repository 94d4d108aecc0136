"""Does channel pruning's LiteRT speedup follow its MAC reduction?

Two CNNs with random weights (and random BatchNorm statistics, so no
BatchNorm is an identity) are pruned with
`keras_compress.pruning.prune_channels(model, ratio, criterion=L1Norm(),
scope="layer")` at 25%, 50% and 75% of the channels of every prunable
channel group, plus extra rows on `round_to` (kept channels rounded up to
a multiple): 50% with `round_to=8`, and 60% with `round_to=1`, 8 and 16:

- a MobileNet-v1-style CNN (128x128x3 input, a stride-2 3x3 stem with 32
  channels, seven depthwise-separable blocks DepthwiseConv2D+BN+ReLU6,
  1x1 Conv2D+BN+ReLU6 growing to 256 channels, global average pool,
  Dense(10));
- a ResNet-style CNN (64x64x3 input, a 3x3 stem with 32 channels, three
  stages of two basic residual blocks (3x3 conv+BN+ReLU, 3x3 conv+BN, Add,
  ReLU) with 32/64/128 channels, stride-2 1x1 projection shortcuts at the
  stage changes, global average pool, Dense(10)). Every convolution that
  feeds one stage's `Add`s shares its channels, so each stage's residual
  stream is pruned as one group.

The dense model and every pruned variant are exported with
`keras_compress.export.to_tflite(batch_size=1)` as float32 and full int8
(calibrated on 100 uniform random images) and timed in LiteRT with the
XNNPACK delegate (`LiteRTModel.benchmark`). All variants and formats of a
model are interleaved within each repeat, in an order that rotates from
repeat to repeat, so machine noise hits all of them alike; the latency
reported is the median over repeats of each repeat's median. Each repeat
times a variant for `--min-time` seconds (at least `--runs` invocations).

For every variant the script reports parameters, MACs (Keras count, from
the `ChannelReport`, and the MACs of the float32 `.tflite` with BatchNorm
folded), MAC ratio (dense / pruned), latency and latency ratio (dense /
pruned) per format and thread count, and the target check: the latency
ratio must be within 1.2x of the MAC ratio, `mac_ratio / latency_ratio <=
1.2` (PASS / FAIL). Results are printed as markdown tables and written to
`benchmarks/results/structured_latency.json`.

Usage:

    python benchmarks/structured_latency.py              # defaults, ~6 minutes
    python benchmarks/structured_latency.py --quick      # smoke test, < 60 s, temp output
    python benchmarks/structured_latency.py --repeats 9 --threads 1
"""

import functools
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402  (benchmarks/ is on sys.path)
from _cnns import (  # noqa: E402
    CALIBRATION_SAMPLES, MOBILENET_BLOCKS, RESNET_BLOCKS_PER_STAGE, RESNET_STAGES,
    build_mobilenet_style, build_resnet_style, export_all, random_images)
from _harness import log, markdown_table  # noqa: E402

FORMATS = (("float32", None), ("int8", "int8"))
RATIOS = (0.25, 0.5, 0.75)
QUICK_RATIOS = (0.5,)
# Extra rows on rounding the kept channels up to a multiple (`round_to`).
# At 50% every width of both models stays a multiple of 8, so
# `pruned_50_r8` is the same architecture as `pruned_50` (and a gauge of
# measurement noise); at 60% the kept widths are 13/26/51/102 (round_to=1),
# 16/32/56/104 (8) and 16/32/64/112 (16).
ROUNDING_VARIANTS = (
    ("pruned_50_r8", 0.5, 8),
    ("pruned_60", 0.6, 1),
    ("pruned_60_r8", 0.6, 8),
    ("pruned_60_r16", 0.6, 16),
)
# Target: the measured speedup is within this factor of the MAC reduction.
TARGET_FACTOR = 1.2


def parse_args(argv=None):
    parser = _harness.arguments(
        "structured_latency",
        "Channel pruning (25/50/75%) of a MobileNet-style and a ResNet-style "
        "CNN: MAC reduction vs. measured LiteRT (XNNPACK) speedup.",
        quick="32x32 inputs, only 50%% pruning, no round_to rows, 1 thread, "
        "1 repeat, 10 runs")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated LiteRT interpreter thread counts "
                        "(default 1,2; the target check uses the first)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="latency repeats; the reported latency is the "
                        "median over repeats (default 7)")
    parser.add_argument("--runs", type=int, default=30,
                        help="minimum timed invocations per variant and repeat "
                        "(default 30)")
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="seconds of timed invocations per variant and "
                        "repeat; the number of runs is sized from a first "
                        "measurement (default 0.2)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed invocations before each repeat (default 10)")
    parser.add_argument("--no-rounding", dest="rounding", action="store_false",
                        help="skip the extra round_to variants (50%% with "
                        "round_to=8; 60%% with round_to=1, 8 and 16)")
    quick = {"threads": "1", "repeats": 1, "runs": 10, "warmup": 2,
             "min_time": 0.0, "rounding": False}
    args = _harness.parse(parser, argv, quick=quick, positive=("repeats", "runs"))
    try:
        args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    except ValueError:
        parser.error(f"--threads must be comma-separated ints, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        parser.error(f"--threads must be positive ints, got {args.threads}")
    if args.warmup < 0:
        parser.error(f"Expected --warmup >= 0. Received: --warmup={args.warmup}")
    if args.min_time < 0:
        parser.error(f"Expected --min-time >= 0. Received: --min-time={args.min_time}")
    return args


MODELS = {
    "mobilenet_style": {
        "title": "MobileNet-style CNN",
        "build": functools.partial(build_mobilenet_style, relu6=True, named=True),
        "input_shape": (128, 128, 3),
        "description": "MobileNet-v1-style CNN, random weights and BatchNorm "
                       "statistics: stride-2 3x3 stem (32 channels), "
                       "depthwise-separable blocks (DepthwiseConv2D+BN+ReLU6, "
                       "1x1 Conv2D+BN+ReLU6) "
                       f"{[list(b) for b in MOBILENET_BLOCKS]} (channels, "
                       "stride), global average pool, Dense(10)",
    },
    "resnet_style": {
        "title": "ResNet-style CNN",
        "build": build_resnet_style,
        "input_shape": (64, 64, 3),
        "description": "ResNet-style CNN, random weights and BatchNorm "
                       "statistics: 3x3 stem (32 channels, stride 1), stages "
                       f"{[list(s) for s in RESNET_STAGES]} (channels, first "
                       f"stride) of {RESNET_BLOCKS_PER_STAGE} basic blocks "
                       "(3x3 conv+BN+ReLU, 3x3 conv+BN, Add, ReLU), 1x1 "
                       "stride-2 projection shortcuts at stage changes, "
                       "global average pool, Dense(10)",
    },
}
QUICK_INPUT_SHAPE = (32, 32, 3)


def variants_of(args):
    """`(label, ratio, round_to)` of the dense model and every pruned variant."""
    ratios = QUICK_RATIOS if args.quick else RATIOS
    variants = [("dense", None, None)]
    variants += [(f"pruned_{int(r * 100)}", r, 1) for r in ratios]
    if args.rounding:
        variants += list(ROUNDING_VARIANTS)
    return variants


# -- pruning and export -------------------------------------------------

def prune_and_export(model, variants, calibration, log):
    """Prunes `model` into every variant and exports each; returns a list
    of dicts (label, ratio, round_to, params, MACs, artifacts, ...)."""
    from keras_compress.analysis import summarize
    from keras_compress.pruning import L1Norm, prune_channels

    out = []
    for label, ratio, round_to in variants:
        start = time.perf_counter()
        if ratio is None:
            pruned, report = model, None
            totals = summarize(model).totals
            params, macs = int(totals.params), int(totals.macs or 0)
        else:
            pruned, report = prune_channels(
                model, ratio=ratio, criterion=L1Norm(), scope="layer",
                round_to=round_to,
            )
            params, macs = int(report.params_after), int(report.macs_after)
        artifacts = export_all(pruned, FORMATS, calibration)
        tflite_macs = int(summarize(artifacts["float32"]).totals.macs or 0)
        entry = {
            "variant": label,
            "ratio": ratio,
            "round_to": round_to,
            "params": params,
            "macs": macs,
            "tflite_macs": tflite_macs,
            "artifacts": artifacts,
            "report": report,
        }
        if report is not None:
            entry["channels"] = {r["name"]: [r["channels_before"], r["channels_after"]]
                                 for r in report.layers}
            entry["notes"] = list(report.notes)
        out.append(entry)
        sizes = ", ".join(f"{fmt} {len(b):,} B" for fmt, b in artifacts.items())
        log(f"  {label:<13} params {params:>9,}  MACs {macs:>12,}  ({sizes}; "
            f"{time.perf_counter() - start:.1f} s)")
    return out


# -- latency ------------------------------------------------------------

def measure(entries, args, log):
    """Times every (variant, format, threads) runner, interleaved per repeat.

    Returns `{(variant, format, threads): {"median_ms", "p90_ms",
    "median_ms_per_repeat", "runs_per_repeat", "xnnpack_ops", "total_ops",
    "builtin_only"}}`.
    """
    from keras_compress.runtime import LiteRTModel

    results = {}
    for threads in args.threads:
        runners = {}
        for e in entries:
            for fmt, data in e["artifacts"].items():
                runners[(e["variant"], fmt, threads)] = LiteRTModel(
                    data, num_threads=threads)
        start = time.perf_counter()
        results.update(_harness.litert_latency(
            runners, args.repeats, args.runs, args.warmup, min_time=args.min_time))
        log(f"  {threads} thread(s): {len(runners)} runners x {args.repeats} repeats "
            f"({time.perf_counter() - start:.0f} s)")
    return results


def build_rows(entries, timings, args):
    """One JSON row per variant, with ratios and the target check."""
    dense = entries[0]
    rows = []
    for e in entries:
        mac_ratio = dense["macs"] / max(e["macs"], 1)
        row = {
            "variant": e["variant"],
            "ratio": e["ratio"],
            "round_to": e["round_to"],
            "params": e["params"],
            "param_ratio": dense["params"] / max(e["params"], 1),
            "macs": e["macs"],
            "mac_ratio": mac_ratio,
            "tflite_macs": e["tflite_macs"],
            "tflite_mac_ratio": dense["tflite_macs"] / max(e["tflite_macs"], 1),
            "sizes_bytes": {fmt: len(b) for fmt, b in e["artifacts"].items()},
            "latency": {},
        }
        if e["report"] is not None:
            row["report_mac_ratio"] = e["report"].mac_ratio
            row["channels"] = e["channels"]
            row["notes"] = e["notes"]
        for fmt, _ in FORMATS:
            for threads in args.threads:
                t = timings[(e["variant"], fmt, threads)]
                base = timings[(dense["variant"], fmt, threads)]
                latency_ratio = base["median_ms"] / t["median_ms"]
                cell = dict(t)
                cell["latency_ratio"] = latency_ratio
                if e["ratio"] is not None:
                    gap = mac_ratio / latency_ratio
                    cell["mac_over_latency_ratio"] = gap
                    cell["target_pass"] = bool(gap <= TARGET_FACTOR)
                row["latency"][f"{fmt}_{threads}t"] = cell
        rows.append(row)
    return rows


# -- output -------------------------------------------------------------

def main_table(rows, threads):
    """Params, MACs, and per format: latency, speedup, target check."""
    header = ["variant", "params", "MACs", "MAC ratio"]
    for fmt, _ in FORMATS:
        header += [f"{fmt} ms", f"{fmt} speedup", f"{fmt} MAC/speedup"]
    lines = []
    for r in rows:
        line = [r["variant"], f"{r['params']:,}", f"{r['macs'] / 1e6:.1f} M",
                f"{r['mac_ratio']:.2f}x"]
        for fmt, _ in FORMATS:
            cell = r["latency"][f"{fmt}_{threads}t"]
            line += [f"{cell['median_ms']:.3f}", f"{cell['latency_ratio']:.2f}x"]
            if "target_pass" in cell:
                verdict = "PASS" if cell["target_pass"] else "FAIL"
                line.append(f"{cell['mac_over_latency_ratio']:.2f} {verdict}")
            else:
                line.append("-")
        lines.append(line)
    return markdown_table(header, lines)


def extra_table(rows, args):
    """Other thread counts, TFLite MACs (BatchNorm folded), XNNPACK coverage."""
    header = ["variant", "TFLite MACs", "TFLite MAC ratio"]
    for threads in args.threads[1:]:
        for fmt, _ in FORMATS:
            header += [f"{fmt} {threads}t ms", f"{fmt} {threads}t speedup"]
    header += ["XNNPACK ops (f32 / int8)"]
    lines = []
    for r in rows:
        line = [r["variant"], f"{r['tflite_macs'] / 1e6:.1f} M",
                f"{r['tflite_mac_ratio']:.2f}x"]
        for threads in args.threads[1:]:
            for fmt, _ in FORMATS:
                cell = r["latency"][f"{fmt}_{threads}t"]
                line += [f"{cell['median_ms']:.3f}", f"{cell['latency_ratio']:.2f}x"]
        t = args.threads[0]
        cov = [r["latency"][f"{fmt}_{t}t"] for fmt, _ in FORMATS]
        line.append(" / ".join(f"{c['xnnpack_ops']}/{c['total_ops']}" for c in cov))
        lines.append(line)
    return markdown_table(header, lines)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = _harness.machine_info("ai-edge-litert")
    variants = variants_of(args)
    results = {}
    steps = 2 * len(MODELS) + 1
    step = 0
    for key, spec in MODELS.items():
        input_shape = QUICK_INPUT_SHAPE if args.quick else spec["input_shape"]
        step += 1
        log(f"[{step}/{steps}] {spec['title']} {input_shape}: pruning "
            f"{', '.join(v[0] for v in variants[1:])} and exporting float32 + int8")
        model = spec["build"](input_shape=input_shape)
        entries = prune_and_export(model, variants, random_images(input_shape), log)
        step += 1
        log(f"[{step}/{steps}] Measuring the {spec['title']} in LiteRT "
            f"({args.repeats} repeats, threads {args.threads})")
        timings = measure(entries, args, log)
        results[key] = {
            "title": spec["title"],
            "description": spec["description"],
            "input_shape": list(input_shape),
            "notes": entries[1]["notes"] if len(entries) > 1 else [],
            "rows": build_rows(entries, timings, args),
        }

    elapsed = time.perf_counter() - start
    log(f"[{steps}/{steps}] Results\n")
    t = args.threads[0]
    for key, res in results.items():
        log(f"### {res['title']} ({res['rows'][0]['params']:,} parameters, "
            f"{'x'.join(map(str, res['input_shape']))} input, random weights), "
            f"LiteRT + XNNPACK, {t} thread(s), batch 1\n")
        log(main_table(res["rows"], t))
        log("")
        log(extra_table(res["rows"], args))
        for note in res["notes"]:
            log(f"note: {note}")
        log("")
    passes = [
        (key, r["variant"], fmt, r["latency"][f"{fmt}_{t}t"]["target_pass"])
        for key, res in results.items() for r in res["rows"][1:] for fmt, _ in FORMATS
    ]
    for fmt, _ in FORMATS:
        mine = [p for p in passes if p[2] == fmt]
        failed = [f"{k}/{v}" for k, v, _, p in mine if not p]
        log(f"Target (MAC ratio / speedup <= {TARGET_FACTOR}, {t} thread(s)), "
            f"{fmt}: {len(mine) - len(failed)}/{len(mine)} PASS"
            + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    info["load_average_at_end"] = _harness.load_average()

    settings = {
        "threads": args.threads,
        "repeats": args.repeats,
        "min_runs": args.runs,
        "min_time_s": args.min_time,
        "warmup": args.warmup,
        "quick": args.quick,
        "batch_size": 1,
        "formats": [fmt for fmt, _ in FORMATS],
        "calibration_samples": CALIBRATION_SAMPLES,
        "pruning": "prune_channels(model, ratio, criterion=L1Norm(), "
                   "scope='layer', round_to=1 (pruned_<ratio>) or N "
                   "(pruned_<ratio>_rN))",
        "target": f"mac_ratio / latency_ratio <= {TARGET_FACTOR} "
                  "(ratios are dense / pruned; MACs as counted on the "
                  "Keras model by ChannelReport)",
        "latency": "median over repeats of the per-repeat median (and p90) "
                   "of LiteRTModel.benchmark; all variants and formats of a "
                   "model interleaved per repeat, order rotating",
    }
    return _harness.write_report(
        args, _harness.report(args, argv, settings, info, elapsed, models=results))


if __name__ == "__main__":
    main()
