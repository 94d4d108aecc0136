"""Runs an example script with tiny settings, for the example tests.

`run_example` runs `examples/<script>` in a subprocess with `TINY` (one
epoch, 256 training and 100 test samples) and returns its stdout and its
`results.json`; `first_test_samples` is the test data the script saw.
"""

import json
import os
import subprocess
import sys

from keras_compress import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs", "1", "--train_samples", "256", "--test_samples", "100"]


def run_example(script, out, *args, timeout=600):
    """Runs `examples/<script>` with `TINY` and `--out out`; returns
    `(stdout, results)` after checking that it exited with 0."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script), *TINY,
         "--out", str(out), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "results.json")) as f:
        return result.stdout, json.load(f)


def first_test_samples(name):
    """The first 100 test samples of digits or MNIST-1D, as the scripts saw."""
    loader = datasets.load_digits if name == "digits" else datasets.load_mnist1d
    _, (x, y) = loader()
    return x[:100], y[:100]
