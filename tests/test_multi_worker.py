"""Training on two worker processes over loopback (`worker_child.py`).

Each worker holds its own copy of every variable; after 2 epochs the two
copies must be equal (masks, clusters, quantizer ranges, weights), the
tool's state must be what it was asked for, and the numbers must be those
of the same training in one process (global batch 64 either way; within
1e-4, except QAT, where a float difference that moves a value across a
rounding tie moves it one quantization step, as between backends in
`test_backends.py`).

- JAX: Keras's multi-host API (`keras.distribution.initialize`, then
  `DataParallel` over both processes' CPU devices).
- TensorFlow: `MultiWorkerMirroredStrategy`. Keras 3.15's `fit` does not
  run under it (keras-team/keras#20585): before the first step it reduces
  the first batch, a tuple of per-replica tensors, in one
  `strategy.reduce` call, which the strategy refuses. The test checks
  for that failure and is marked xfail while it lasts; once Keras runs,
  the same checks apply.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

CHILD = os.path.join(os.path.dirname(__file__), "worker_child.py")
KINDS = ("pruning", "qat", "clustering")
KERAS_MWMS_BUG = "Attempt to convert a value (PerReplica"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(backend, folder):
    """Runs both workers, then the one-process reference; returns the
    workers' error texts (empty when they finished)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    port, kinds = str(_free_port()), ",".join(KINDS)
    workers = [subprocess.Popen([sys.executable, CHILD, kinds, str(i), port, str(folder)],
                                env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for i in (0, 1)]
    try:
        codes = [w.wait(timeout=600) for w in workers]
    finally:
        for w in workers:
            w.kill()
    errors = [(folder / f"error-{i}.txt").read_text()
              for i in (0, 1) if (folder / f"error-{i}.txt").exists()]
    assert errors or codes == [0, 0], codes
    if not errors:
        single = subprocess.run([sys.executable, CHILD, kinds, "single", "0", str(folder)],
                                env=env, capture_output=True, text=True, timeout=600)
        assert single.returncode == 0, single.stderr[-3000:]
    return errors


def _check(folder):
    for kind in KINDS:
        first, second = (np.load(folder / f"{kind}-{i}.npz") for i in (0, 1))
        single = np.load(folder / f"{kind}-single.npz")
        assert int(first["devices"]) == 2 and int(first["steps"]) == 16
        assert sorted(first.files) == sorted(second.files) == sorted(single.files)
        for name in first.files:
            np.testing.assert_array_equal(first[name], second[name], err_msg=f"{kind}: {name}")
            if name != "devices" and kind != "qat":
                np.testing.assert_allclose(first[name], single[name], rtol=0, atol=1e-4,
                                           err_msg=f"{kind}: {name}")
        kernels = {n: first[n] for n in first.files if n.endswith("kernel")}
        assert len(kernels) == 2
        for name, kernel in kernels.items():
            if kind == "pruning":  # 75% in each layer at the schedule's end
                assert np.sum(kernel == 0) == round(0.75 * kernel.size), name
                assert np.count_nonzero(kernel) == np.count_nonzero(single[name])
            if kind == "clustering":
                assert len(np.unique(kernel)) <= 8, name
        if kind == "qat":
            ranges = [first[n] for n in first.files if n.endswith("quantizer_max")]
            assert ranges and all(r > 0 for r in ranges)


@pytest.mark.slow
def test_two_jax_processes_agree_with_one(tmp_path):
    errors = _train("jax", tmp_path)
    assert not errors, errors[0][-3000:]
    _check(tmp_path)


@pytest.mark.slow
def test_two_tensorflow_workers_agree_with_one(tmp_path):
    errors = _train("tensorflow", tmp_path)
    if errors and all(KERAS_MWMS_BUG in e for e in errors):
        pytest.xfail("Keras 3.15 fit under MultiWorkerMirroredStrategy: "
                     "keras-team/keras#20585")
    assert not errors, errors[0][-3000:]
    _check(tmp_path)
