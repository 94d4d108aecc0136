"""The `keras-compress` command line: demo, report, bench."""

import argparse
import os
import sys


def main(argv=None):
    """Entry point of `keras-compress`; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
        print(f"keras-compress {args.command}: error: {e}", file=sys.stderr)
        return 1


def _parser():
    parser = argparse.ArgumentParser(
        prog="keras-compress",
        description="Compress Keras 3 models and prove the result runs.",
    )
    sub = parser.add_subparsers(dest="command")

    demo = sub.add_parser(
        "demo", help="train a digits CNN and export it to LiteRT and TFLite Micro"
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default: 30)")
    demo.set_defaults(run=_demo)

    report = sub.add_parser("report", help="parameters, MACs and bytes of a .keras or .tflite")
    report.add_argument("path")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(run=_report)

    bench = sub.add_parser(
        "bench", help="LiteRT latency, XNNPACK op coverage and TFLM arena of a .tflite"
    )
    bench.add_argument("path")
    bench.add_argument("--runs", type=int, default=100, help="timed runs (default: 100)")
    bench.add_argument("--warmup", type=int, default=10, help="warm-up runs (default: 10)")
    bench.add_argument("--threads", type=int, default=None, help="interpreter threads")
    bench.add_argument("--json", action="store_true", help="print JSON instead of text")
    bench.set_defaults(run=_bench)
    return parser


def _demo(args):
    from keras_compress import demo

    kwargs = {} if args.epochs is None else {"epochs": args.epochs}
    demo.run(args.out, log=lambda line: print(line, flush=True), **kwargs)
    return 0


def _report(args):
    from keras_compress.analysis import summarize

    _check_exists(args.path)
    summary = summarize(args.path)
    print(summary.to_json() if args.json else summary)
    return 0


def _bench(args):
    import json

    from keras_compress import _tflite
    from keras_compress.export.micro import check_full_int8
    from keras_compress.runtime import LiteRTModel, MicroModel

    _check_exists(args.path)
    data, flatbuffer = _tflite.load_model_bytes(args.path, "path")
    print(f"Timing {args.path} in LiteRT ({args.runs} runs) ...", file=sys.stderr, flush=True)
    runner = LiteRTModel(data, num_threads=args.threads)
    latency = runner.benchmark(num_runs=args.runs, warmup=args.warmup)
    delegation = runner.delegation()
    try:
        check_full_int8(flatbuffer, "path")
        arena = MicroModel(data).arena_bytes
        arena_note = None
    except ValueError:
        arena, arena_note = None, "not a full-int8 model: TFLite Micro does not apply"
    except RuntimeError as e:
        arena, arena_note = None, f"TFLite Micro cannot run it: {e}"
    result = {
        "path": args.path,
        "size_bytes": len(data),
        "latency": latency,
        "xnnpack_ops": delegation["xnnpack_ops"],
        "total_ops": delegation["total_ops"],
        "builtin_only": delegation["builtin_only"],
        "tflm_arena_bytes": arena,
    }
    if arena_note:
        result["tflm_note"] = arena_note
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model            {args.path} ({len(data):,} bytes)")
    print(f"LiteRT latency   median {latency['median_ms'] * 1000:.1f} us, "
          f"p90 {latency['p90_ms'] * 1000:.1f} us "
          f"({latency['runs']} runs, batch {latency['batch_size']})")
    print(f"XNNPACK          {delegation['xnnpack_ops']}/{delegation['total_ops']} ops"
          + (f"; builtin kernels for: {', '.join(delegation['builtin_only'])}"
             if delegation["builtin_only"] else ""))
    print("TFLM arena       " + (f"{arena:,} bytes" if arena is not None else arena_note))
    return 0


def _check_exists(path):
    if not os.path.isfile(path):
        raise ValueError(f"Expected an existing file. Received: path={path!r}")


if __name__ == "__main__":
    sys.exit(main())
