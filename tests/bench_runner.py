"""Runs a benchmark script with `--quick`, for the benchmark smoke tests.

`run_benchmark(capsys, script, out, *args)` imports `benchmarks/<script>.py`
and calls its `main(["--quick", "--output", out, *args])` in this process
(no second TensorFlow import), then returns `(stdout, report)`: what it
printed and the JSON file it wrote. `run_benchmark_subprocess` runs the
script in a process of its own, for the scripts that import tfmot: importing
tfmot sets `TF_USE_LEGACY_KERAS=1` for the whole process, which would turn
`tf.keras` into tf_keras for every test after it. `needs_peers` skips a test
when tfmot or tf_keras is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
PEERS = ("tensorflow_model_optimization", "tf_keras")
MISSING = [name for name in PEERS if importlib.util.find_spec(name) is None]

needs_peers = pytest.mark.skipif(
    bool(MISSING),
    reason=f"the benchmark needs {', '.join(MISSING)} (the `bench` extra: "
    "pip install tensorflow-model-optimization tf_keras)",
)


def _argv(out, args):
    return ["--quick", "--output", str(out), *args]


def run_benchmark(capsys, script, out, *args):
    """Runs `benchmarks/<script>.py --quick --output out *args` in this
    process; returns `(stdout, report)` (the report read back from `out`)."""
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)  # the scripts import their helpers
    spec = importlib.util.spec_from_file_location(
        f"benchmark_{script}", os.path.join(BENCHMARKS, f"{script}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()  # only what `main` prints
    returned = module.main(_argv(out, args))
    stdout = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert returned["benchmark"] == report["benchmark"] == script
    assert returned["command"] == report["command"]
    return stdout, report


def run_benchmark_subprocess(script, out, *args, timeout=900):
    """`run_benchmark` in a subprocess of its own; returns `(stdout, report)`."""
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, f"{script}.py"), *_argv(out, args)],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(out.read_text())
