"""Runs an example script with tiny settings, for the example tests.

`run_example` runs `examples/<script>` in this process, as `python
examples/<script>` would (its absl flags parsed from the command line, then
its `main`), with `TINY` (one epoch, 256 training and 100 test samples), and
returns its stdout and its `results.json`; `first_test_samples` is the test
data the script saw. In-process saves the five seconds of importing
TensorFlow and Keras again for every example; the flags an example defines
are removed after it ran, so the next one can define its own.
"""

import contextlib
import importlib.util
import io
import json
import os
import sys

from absl import flags

from keras_compress import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
TINY = ["--epochs", "1", "--train_samples", "256", "--test_samples", "100"]


def run_example(script, out, *args):
    """Runs `examples/<script>` with `TINY` and `--out out`; returns
    `(stdout, results)` after checking that its `main` returned normally."""
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)  # the examples import `_common`
    argv = [script, *TINY, "--out", str(out), *args]
    before = set(flags.FLAGS)
    stdout = io.StringIO()
    try:
        spec = importlib.util.spec_from_file_location(
            f"example_{os.path.splitext(script)[0]}", os.path.join(EXAMPLES, script))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # defines the example's flags
        remaining = flags.FLAGS(argv)
        with contextlib.redirect_stdout(stdout):
            module.main(remaining)
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    with open(os.path.join(out, "results.json")) as f:
        return stdout.getvalue(), json.load(f)


def first_test_samples(name):
    """The first 100 test samples of digits or MNIST-1D, as the scripts saw."""
    loader = datasets.load_digits if name == "digits" else datasets.load_mnist1d
    _, (x, y) = loader()
    return x[:100], y[:100]
