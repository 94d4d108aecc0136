"""Training step time of dense, pruned and QAT models on every backend,
and the pruning callback on one and two worker processes.

Keras 3 runs one model on TensorFlow, JAX and PyTorch; the compression
tools must not make training much slower on any of them. This script
measures, side by side in one run:

1. **Step time per backend.** The same CNN (32x32 digits: Conv(32)-BN-ReLU,
   Conv(64, stride 2)-BN-ReLU, Conv(64, stride 2)-BN-ReLU, global average
   pooling, Dense(10); SGD with momentum, batch 64) trained three ways in
   one process per backend (`_backend_child.py`):
   - dense: plain `fit`;
   - pruned: `MagnitudePruning(PolynomialDecay(0, 0.8, ...,
     frequency=10))`, the masks updated every 10 steps all through the
     timed fits (on JAX, after each step, outside the compiled step);
   - QAT: `quantize_model` (batch norm fused into the convolutions) with
     `QATSchedule(quantize_start=0)`.
   A step's time is that of the epochs after the first of each `fit` (the
   first traces the step) over their steps. The arms take turns within a
   process (the order rotating), the backends take turns over `--rounds`
   rounds, and the figure is the median over every turn. Ratios are to the
   same backend's dense step. Targets (issue 17): pruned at most 1.10x and
   QAT at most 1.5x on every backend.
2. **Workers.** The pruned arm on JAX as one process, then as two worker
   processes on loopback (`keras.distribution.initialize` + `DataParallel`,
   gloo collectives), the same global batch of 64: throughput in samples
   per second (global samples over worker 0's wall time), median over
   turns, alternating. Both workers share this machine's 2 cores, so this
   measures the cost of the second process and of synchronizing, not a
   speed-up. TensorFlow's `MultiWorkerMirroredStrategy` is not measured:
   Keras 3.15's `fit` fails under it (keras-team/keras#20585,
   `tests/test_multi_worker.py`).

Usage:

    python benchmarks/backends.py            # ~6 min on 2 shared cores
    python benchmarks/backends.py --quick    # smoke test, temp output
"""

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
ARMS = ("dense", "pruned", "qat")
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_backend_child.py")
TARGETS = {"pruned": 1.10, "qat": 1.5}


def _child(backend, mode, settings, wait=True):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, CHILD, mode, json.dumps(settings)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    return _result(process) if wait else process


def _result(process):
    stdout, stderr = process.communicate(timeout=1200)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed:\n{stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT"):])


def step_times(settings, rounds, log):
    runs = {b: {a: [] for a in ARMS} for b in BACKENDS}
    for turn in range(rounds):
        for backend in h.arm_order(list(BACKENDS), turn):
            result = _child(backend, "steps", settings)
            for arm in ARMS:
                runs[backend][arm] += result["step_ms"][arm]
            log(f"  round {turn + 1}, {backend}: " + ", ".join(
                f"{a} {h.median(result['step_ms'][a]):.1f} ms" for a in ARMS))
    figures = {}
    for backend in BACKENDS:
        dense = h.median(runs[backend]["dense"])
        figures[backend] = {arm: {"median_ms": h.median(runs[backend][arm]),
                                  "ratio_to_dense": h.median(runs[backend][arm]) / dense,
                                  "runs_ms": runs[backend][arm]} for arm in ARMS}
    return figures


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workers(settings, rounds, log):
    seconds = {1: [], 2: []}
    samples = None
    for turn in range(rounds):
        for count in ((1, 2) if turn % 2 == 0 else (2, 1)):
            common = dict(settings, workers=count, port=_free_port())
            processes = [_child("jax", "worker", dict(common, index=i), wait=False)
                         for i in range(count)]
            results = [_result(p) for p in processes]
            seconds[count] += results[0]["seconds"]
            samples = results[0]["samples"]
            log(f"  round {turn + 1}, {count} worker(s): "
                f"{samples / h.median(results[0]['seconds']):.0f} samples/s")
    figures = {}
    for count in (1, 2):
        median = h.median(seconds[count])
        figures[f"{count}_workers"] = {"samples_per_s": samples / median,
                                       "median_s": median, "runs_s": seconds[count]}
    figures["ratio_2_to_1"] = (figures["2_workers"]["samples_per_s"]
                               / figures["1_workers"]["samples_per_s"])
    return figures


def tables(steps, scale):
    rows = []
    for backend in BACKENDS:
        arms = steps[backend]
        rows.append([backend] + [f"{arms[a]['median_ms']:.1f}" for a in ARMS]
                    + [f"{arms[a]['ratio_to_dense']:.2f}x"
                       + ("" if arms[a]["ratio_to_dense"] <= TARGETS[a] else " (over)")
                       for a in ("pruned", "qat")])
    text = h.markdown_table(["backend", "dense ms/step", "pruned ms/step", "QAT ms/step",
                             "pruned / dense (<= 1.10x)", "QAT / dense (<= 1.5x)"], rows)
    rows = [[f"{n} process{'es' if n > 1 else ''}",
             f"{scale[f'{n}_workers']['samples_per_s']:.0f}",
             f"{scale[f'{n}_workers']['median_s']:.2f}"] for n in (1, 2)]
    text += "\n\n" + h.markdown_table(
        ["JAX, pruned arm", "samples/s", "s per timed fit"], rows)
    return text + f"\n\n2 processes / 1: {scale['ratio_2_to_1']:.2f}x throughput"


def main(argv=None):
    parser = h.arguments("backends", __doc__.splitlines()[0], "128 samples, 1 turn")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over the backends and worker counts (default 3)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed fits per arm in each backend process (default 3)")
    args = h.parse(parser, argv, quick={"rounds": 1, "repeats": 1},
                   positive=("rounds", "repeats"))
    samples = 128 if args.quick else 512
    step_settings = {"samples": samples, "batch": 64, "epochs": 2, "repeats": args.repeats}
    worker_settings = {"samples": samples, "batch": 64, "epochs": 2,
                       "repeats": args.repeats}
    info = h.machine_info("jax", "torch")
    start = time.perf_counter()
    h.log("== step time per backend")
    steps = step_times(step_settings, args.rounds, h.log)
    h.log("== pruning on 1 and 2 JAX processes")
    scale = workers(worker_settings, args.rounds, h.log)
    h.log("\n" + tables(steps, scale))
    settings = {"rounds": args.rounds, "quick": args.quick, "steps": step_settings,
                "workers": worker_settings, "targets": TARGETS}
    return h.write_report(args, h.report(args, argv, settings, info,
                                         time.perf_counter() - start,
                                         step_time=steps, workers=scale))


if __name__ == "__main__":
    main()
