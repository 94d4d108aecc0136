"""The benchmark harness: what every script in benchmarks/ shares.

- `machine_info`, `load_average`: platform, CPU, load and package versions;
- `median`, `markdown_table`: the figures and the tables every report quotes;
- `arguments` and `parse`: the command line every script starts from
  (`--quick`, `--output`, and `--seeds` / `--tasks` where a script has them),
  with the defaults of all: `--quick` writes to the temporary folder,
  otherwise `benchmarks/results/<benchmark>.json`;
- `arm_order`, `interleave`, `interleaved_timing`, `litert_latency`: arms
  run in turns (the order rotating from one repeat to the next) so machine
  noise hits all of them alike, and medians over the repeats;
- `report` and `write_report`: the results JSON (benchmark, date, command,
  settings, machine, elapsed seconds, then the script's own figures),
  written atomically;
- `main(benchmark, sections, description, argv)`: the driver of benchmarks
  made of sections (seeds, `--quick`, `--tasks`, `--sections`, `--output`).

A section is a module with `run(tasks, seeds, quick, log) -> dict` (JSON-
serializable, medians and per-seed values) and `tables(result) -> str`
(markdown), and optionally `TASKS`, the task names it supports. The driver
parses the command line, runs the chosen sections one after the other in
this process, prints their tables and writes one JSON file atomically.

Every script's `main(argv=None)` returns the report it wrote, so the smoke
tests call it in their own process.
"""

import argparse
import importlib.metadata as metadata
import json
import os
import platform
import re
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


def load_average():
    """The 1, 5 and 15 minute load averages, or None where unknown."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def log(text=""):
    """Prints a progress or result line at once (the scripts' `log`)."""
    print(text, flush=True)


# -- the command line ------------------------------------------------------

def arguments(benchmark, description, quick, seeds=None, tasks=None):
    """The parser every script starts from: `--quick` (`quick` says what it
    does, for `--help`), `--output`, and `--seeds` (default `seeds`) and
    `--tasks` (choices `tasks`, default all) where given. The script adds
    its own options, then calls `parse`."""
    parser = argparse.ArgumentParser(description=description)
    parser.set_defaults(benchmark=benchmark)
    if seeds is not None:
        parser.add_argument("--seeds", type=int, default=seeds,
                            help=f"number of seeds (0..N-1; default {seeds})")
    if tasks is not None:
        parser.add_argument("--tasks", nargs="+", choices=list(tasks),
                            default=list(tasks), help="tasks to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {quick}; writes to the temporary "
                        "folder unless --output is given")
    parser.add_argument("--output", default=None,
                        help="JSON output path (default "
                        f"{os.path.relpath(_default_output(benchmark))})")
    return parser


def _default_output(benchmark):
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "results", f"{benchmark}.json")


def parse(parser, argv=None, quick=None, positive=()):
    """Parses `argv` (default `sys.argv[1:]`) with a parser from `arguments`.

    With `--quick`, the attributes in `quick` ({name: value}) are set and
    `--seeds` becomes 1; the options named in `positive` (and `--seeds`)
    must then be >= 1 (None means "not given"). `args.output` defaults to
    `<tmp>/<benchmark>_quick.json` with `--quick`, else to
    `benchmarks/results/<benchmark>.json`; its folder must exist.
    """
    from keras_compress import _io

    args = parser.parse_args(argv)
    if args.quick:
        for name, value in (quick or {}).items():
            setattr(args, name, value)
        if hasattr(args, "seeds"):
            args.seeds = 1
    names = (("seeds",) if hasattr(args, "seeds") else ()) + tuple(positive)
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"Expected --{name.replace('_', '-')} >= 1. "
                         f"Received: --{name.replace('_', '-')}={value}")
    if args.output is None:
        args.output = (os.path.join(tempfile.gettempdir(), f"{args.benchmark}_quick.json")
                       if args.quick else _default_output(args.benchmark))
    try:
        _io.check_output_path(args.output, "--output")
    except ValueError as e:
        parser.error(str(e))
    return args


# -- arms in turns ---------------------------------------------------------

def arm_order(names, turn, turns=None):
    """The order of `names` in turn `turn` (0-based): rotated by one arm per
    turn, or, given the number of `turns`, by `len(names) / turns` arms, so
    that over few turns every part of the list gets to run first."""
    names = list(names)
    shift = (turn * len(names)) // turns if turns else turn % len(names)
    return names[shift:] + names[:shift]


def interleave(arms, repeats, spread=False):
    """Calls every arm ({name: fn(repeat)}) once per repeat, the arms in
    turns (`arm_order`; `spread`: over `repeats` turns) so machine noise
    hits all of them alike; returns `{name: [fn's result per repeat]}`."""
    results = {name: [] for name in arms}
    for repeat in range(repeats):
        for name in arm_order(arms, repeat, repeats if spread else None):
            results[name].append(arms[name](repeat))
    return results


def interleaved_timing(callables, repeats, warmup=0, rounds=1, reverse=False):
    """Wall-clock latency of `callables` ({name: fn(i)}), measured in turns.

    Each of the `repeats` repeats runs `rounds` rounds; a round calls every
    fn once with the round's index `i` (0..rounds-1), in an order that
    changes from round to round (rotated, or with `reverse` reversed every
    other round) and from repeat to repeat. A repeat's figure is the mean
    time of one call over its rounds. First, every fn runs for the rounds
    `0..warmup-1`, untimed.

    Returns:
        `{name: {"median_ms": median over repeats, "runs_ms": per repeat}}`.
    """
    names = list(callables)
    for name in names:
        for i in range(min(warmup, rounds)):
            callables[name](i)
    clock = time.perf_counter
    runs = {name: [] for name in names}
    for repeat in range(repeats):
        sums = dict.fromkeys(names, 0.0)
        for i in range(rounds):
            turn = repeat + i
            order = (names[::-1] if turn % 2 else names) if reverse else arm_order(names, turn)
            for name in order:
                start = clock()
                callables[name](i)
                sums[name] += clock() - start
        for name in names:
            runs[name].append(1e3 * sums[name] / rounds)
    return {name: {"median_ms": median(runs[name]), "runs_ms": runs[name]}
            for name in names}


def litert_latency(runners, repeats, runs, warmup, min_time=None):
    """Latency of LiteRT runners ({key: LiteRTModel}) in turns.

    Each repeat calls `runner.benchmark(num_runs=runs, warmup=warmup)` for
    every runner, the order rotating from repeat to repeat. With `min_time`
    (seconds), a first 10-run probe sizes each runner's runs to about
    `min_time` per repeat (at least `runs`, at most 5000; reported as
    `runs_per_repeat`). Returns, per key, the median over repeats of each
    repeat's median (and p90), the per-repeat medians and the runner's
    XNNPACK coverage.
    """
    count = dict.fromkeys(runners, runs)
    if min_time is not None:
        for key, runner in runners.items():
            probe = runner.benchmark(num_runs=10, warmup=warmup)
            estimate_s = max(probe["median_ms"], 1e-3) / 1e3
            count[key] = int(min(5000, max(runs, round(min_time / estimate_s))))
    stats = interleave(
        {key: (lambda _, r=runner, n=count[key]: r.benchmark(num_runs=n, warmup=warmup))
         for key, runner in runners.items()}, repeats)
    out = {}
    for key, runner in runners.items():
        medians = [float(s["median_ms"]) for s in stats[key]]
        delegation = runner.delegation()
        out[key] = {
            "median_ms": median(medians),
            "p90_ms": median(s["p90_ms"] for s in stats[key]),
            "median_ms_per_repeat": medians,
            "xnnpack_ops": delegation["xnnpack_ops"],
            "total_ops": delegation["total_ops"],
            "builtin_only": delegation["builtin_only"],
        }
        if min_time is not None:
            out[key]["runs_per_repeat"] = count[key]
    return out


# -- the report ------------------------------------------------------------

def report(args, argv, settings, machine, elapsed, **figures):
    """The results dict: benchmark, date, command (as typed: `argv`, default
    `sys.argv[1:]`), settings, machine, elapsed seconds, then `figures`."""
    given = sys.argv[1:] if argv is None else list(argv)
    return {
        "benchmark": args.benchmark,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", f"benchmarks/{args.benchmark}.py", *given]),
        "settings": settings,
        "machine": machine,
        "elapsed_s": round(elapsed, 1),
        **figures,
    }


def write_results(path, result, compact_lists=False):
    """Writes `result` as indented JSON to `path`, atomically; with
    `compact_lists`, every list of numbers stays on one line (curves)."""
    from keras_compress import _io

    text = json.dumps(result, indent=2)
    if compact_lists:
        text = re.sub(
            r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
            lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
            text)
    _io.write_atomic(path, text + "\n")


def write_report(args, result, compact_lists=False):
    """Writes `result` to `args.output`, says so, and returns it."""
    write_results(args.output, result, compact_lists)
    log(f"\nWrote {args.output} ({result['elapsed_s']:.0f} s)")
    return result


# -- the sections driver ---------------------------------------------------

def main(benchmark, sections, description, argv=None):
    """Runs `sections` ({name: module}) and writes their results.

    Args:
        benchmark: Script name without `.py`; also the JSON file's name.
        sections: Ordered dict of section name to section module.
        description: One line for `--help`.
        argv: Command-line arguments; default `sys.argv[1:]`.

    Returns:
        The report written.
    """
    parser = arguments(benchmark, description, "1 seed, tiny epochs", seeds=3)
    parser.add_argument("--tasks", nargs="+", choices=ALL_TASKS, default=list(ALL_TASKS),
                        help="tasks to run (default: all a section supports)")
    parser.add_argument("--sections", nargs="+", choices=list(sections),
                        default=list(sections), help="sections to run (default: all)")
    args = parse(parser, argv)

    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
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
    settings = {"seeds": args.seeds, "quick": args.quick,
                "tasks": list(args.tasks), "sections": list(args.sections)}
    return write_report(args, report(args, argv, settings, info, elapsed,
                                     section_seconds=seconds, sections=results))


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
