"""The benchmark harness: what every script in benchmarks/ shares.

- `machine_info`: platform, CPU, load and package versions for the JSON;
- `median`, `markdown_table`: the figures and the tables every report quotes;
- `write_results(path, report)`: the results JSON, written atomically;
- `main(benchmark, sections, description)`: the driver of benchmarks made
  of sections (seeds, `--quick`, `--tasks`, `--sections`, `--output`).

A section is a module with `run(tasks, seeds, quick, log) -> dict` (JSON-
serializable, medians and per-seed values) and `tables(result) -> str`
(markdown), and optionally `TASKS`, the task names it supports. The driver
parses the command line, runs the chosen sections one after the other in
this process, prints their tables and writes one JSON file atomically.
"""

import argparse
import importlib.metadata as metadata
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ALL_TASKS = ("mnist1d", "digits")


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(*dists):
    """Platform, CPU, load and package versions (numpy, tensorflow, keras and
    the distributions named in `dists`, keyed with `-` written `_`)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }
    for dist in ("numpy", "tensorflow", "keras") + dists:
        info[dist.replace("-", "_")] = _version(dist)
    return info


def median(values):
    """The median of `values` as a float (what every report quotes)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("Expected at least one value. Received: values=[]")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def write_results(path, report):
    """Writes `report` as indented JSON to `path`, atomically."""
    from keras_compress import _io

    _io.write_atomic(path, json.dumps(report, indent=2) + "\n")


def main(benchmark, sections, description, argv=None):
    """Runs `sections` ({name: module}) and writes their results.

    Args:
        benchmark: Script name without `.py`; also the JSON file's name.
        sections: Ordered dict of section name to section module.
        description: One line for `--help`.
        argv: Command-line arguments; default `sys.argv[1:]`.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    default_output = os.path.join(here, "results", f"{benchmark}.json")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=3,
                        help="number of seeds (0..N-1; default 3)")
    parser.add_argument("--tasks", nargs="+", choices=ALL_TASKS, default=list(ALL_TASKS),
                        help="tasks to run (default: all a section supports)")
    parser.add_argument("--sections", nargs="+", choices=list(sections),
                        default=list(sections), help="sections to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 seed, tiny epochs; writes to the "
                        "temporary folder unless --output is given")
    parser.add_argument("--output", default=None,
                        help=f"JSON output path (default {os.path.relpath(default_output)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    if args.seeds < 1:
        parser.error(f"Expected --seeds >= 1. Received: --seeds={args.seeds}")
    if args.output is None:
        args.output = (os.path.join(tempfile.gettempdir(), f"{benchmark}_quick.json")
                       if args.quick else default_output)

    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    def log(text=""):
        print(text, flush=True)

    info = machine_info("ai-edge-litert")
    start = time.perf_counter()
    results, seconds = {}, {}
    for name in args.sections:
        module = sections[name]
        tasks = [t for t in args.tasks if t in getattr(module, "TASKS", ALL_TASKS)]
        log(f"== {name}: tasks {', '.join(tasks)}, {args.seeds} seed(s)"
            + (", quick" if args.quick else ""))
        begin = time.perf_counter()
        results[name] = module.run(tasks, args.seeds, args.quick, log)
        seconds[name] = round(time.perf_counter() - begin, 1)
    elapsed = time.perf_counter() - start
    for name in args.sections:
        log(f"\n## {name} ({seconds[name]:.0f} s)\n")
        log(sections[name].tables(results[name]))

    given = sys.argv[1:] if argv is None else list(argv)
    report = {
        "benchmark": benchmark,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", f"benchmarks/{benchmark}.py", *given]),
        "settings": {"seeds": args.seeds, "quick": args.quick,
                     "tasks": list(args.tasks), "sections": list(args.sections)},
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "section_seconds": seconds,
        "sections": results,
    }
    write_results(args.output, report)
    log(f"\nWrote {args.output} ({elapsed:.0f} s)")
    return report


def markdown_table(header, rows, left=1):
    """Rows of cells as an aligned markdown table; the first `left` columns
    are left-aligned, the others right-aligned."""
    widths = [max(len(str(line[i])) for line in [header] + rows)
              for i in range(len(header))]

    def fmt(line):
        cells = [str(c).ljust(w) if i < left else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if i < left else "-" * (w + 1) + ":"
        for i, w in enumerate(widths)
    ) + "|"
    return "\n".join([fmt(header), rule] + [fmt(line) for line in rows])
