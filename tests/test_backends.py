"""The same numbers on TensorFlow, JAX and PyTorch.

Each tool trains the same model (weights drawn with NumPy) on the same
data, without shuffling, in a process per backend (`backend_child.py`);
every variable must match TensorFlow's. QAT is compared after two steps:
fake quantization amplifies float differences between backends (a value
that lands on a rounding tie in one and not the other moves one step), so
longer runs drift by 1e-3 to 1e-2 while keeping the same int8 grid.
On JAX, MagnitudePruning, LotteryTicket and WeightClustering update
masks and centroids after each step instead of inside it (JAX runs
constraints statelessly) and must still give TensorFlow's numbers.

Export stays on TensorFlow: a model trained on JAX or PyTorch is saved as
`.keras` and exported from a TensorFlow process (tested with a QAT model,
int8 in LiteRT). The backend-independent test files also run whole on JAX
and PyTorch.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(__file__)
CHILD = os.path.join(HERE, "backend_child.py")
BACKENDS = ("jax", "torch")
KINDS = ("pruning", "pruning_global", "lottery", "slimming", "clustering", "qat",
         "distiller", "sandwich", "multi_exit")
# Backend-independent test files (no TFLite export), run on every backend.
PORTABLE_TESTS = ("test_keras_contract.py", "test_safe_mode.py", "test_jax_callbacks.py")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`trained(backend)`: the folder where every tool was trained on
    `backend` (once per backend, in one process)."""
    done = {}

    def run(backend):
        if backend not in done:
            folder = tmp_path_factory.mktemp(backend)
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            extra = [] if backend == "tensorflow" else [str(folder / "qat.keras")]
            run = subprocess.run([sys.executable, CHILD, ",".join(KINDS), str(folder)]
                                 + extra, capture_output=True, text=True, env=env,
                                 timeout=900)
            assert run.returncode == 0, run.stderr[-3000:]
            done[backend] = folder
        return done[backend]

    return run


def _check_same_state(kind, got, want):
    assert "error" not in got.files, str(got["error"]) if "error" in got.files else ""
    assert sorted(got.files) == sorted(want.files)
    for name in want.files:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-4,
                                   err_msg=f"{kind}: {name}")
        if name.endswith("kernel"):  # exact sparsity and clusters
            assert np.count_nonzero(got[name]) == np.count_nonzero(want[name]), name
    if kind == "clustering":
        assert len(np.unique(got["sequential/dense/kernel"])) <= 8
    if kind.startswith("pruning"):
        zeros = sum(int(np.sum(got[n] == 0)) for n in got.files if n.endswith("kernel"))
        assert zeros > 0


def _check_export_from_tensorflow(folder, digits):
    """QAT trained elsewhere, `.keras`, then int8 TFLite from TensorFlow."""
    import keras

    import keras_compress.layers  # noqa: F401 - registers the layers for loading
    from keras_compress import export
    from keras_compress.runtime import LiteRTModel

    model = keras.saving.load_model(str(folder / "qat.keras"), safe_mode=True)
    (x_train, _), _ = digits
    np.testing.assert_allclose(model.predict(x_train[:16], verbose=0),
                               np.load(folder / "qat_saved.npz")["predictions"], atol=1e-4)
    data = export.to_tflite(model, quantize="int8", representative_data=x_train[:64])
    litert = LiteRTModel(data).predict(x_train[:256])
    keras_out = model.predict(x_train[:256], verbose=0)
    assert np.mean(litert.argmax(-1) == keras_out.argmax(-1)) >= 0.97


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_same_state_as_tensorflow_and_export(backend, trained, digits):
    folder, reference = trained(backend), trained("tensorflow")
    for kind in KINDS:
        _check_same_state(kind, np.load(folder / f"{kind}.npz"),
                          np.load(reference / f"{kind}.npz"))
    _check_export_from_tensorflow(folder, digits)


@pytest.mark.slow
def test_jax_data_parallel_matches_tensorflow(trained, tmp_path):
    """Pruning and clustering under `keras.distribution.DataParallel` (two
    CPU devices): every variable on both devices with equal copies, and
    TensorFlow's numbers."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    kinds = ("pruning", "clustering")
    run = subprocess.run([sys.executable, CHILD, ",".join(kinds), str(tmp_path),
                          "--data-parallel"], capture_output=True, text=True, env=env,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    for kind in kinds:
        got = dict(np.load(tmp_path / f"{kind}.npz"))
        assert got.pop("copies_equal").all(), kind
        _check_same_state(kind, _Saved(got), np.load(trained("tensorflow") / f"{kind}.npz"))


class _Saved(dict):
    """A dict with the `files` list of a loaded `.npz`."""

    @property
    def files(self):
        return list(self)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_portable_tests_pass_on(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    files = [os.path.join(HERE, name) for name in PORTABLE_TESTS]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         *files], capture_output=True, text=True, env=env, timeout=1200, cwd=HERE)
    assert done.returncode == 0, done.stdout[-3000:]
