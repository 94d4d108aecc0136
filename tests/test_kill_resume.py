"""Training killed with SIGKILL mid-epoch resumes to the same end state.

`resume_child.py` trains under `keras.callbacks.BackupAndRestore` (QAT
with its switches, or a Distiller); it is killed in the middle of epoch 2,
started again, and must end with the same variables (weights, optimizer
state, quantization ranges, batch-norm statistics, switches) as an
uninterrupted run: BackupAndRestore restores the state at the end of the
last finished epoch, and the data order (`shuffle=False`) is the same.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

CHILD = os.path.join(os.path.dirname(__file__), "resume_child.py")


def _run(kind, backup, out, kill_after_epoch=None, extra=()):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen([sys.executable, CHILD, kind, backup, out, *extra],
                             stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if kill_after_epoch is not None and line.startswith(f"epoch {kill_after_epoch} done"):
            time.sleep(0.3)  # into the next epoch
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    return child.returncode, lines


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["qat", "qat_backup_first", "distiller", "pruning", "lottery",
             "lottery_backup_first", "slimming", "clustering"])
def test_killed_training_resumes_exactly(tmp_path, kind):
    _check_resumes(tmp_path, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["qat", "pruning"])
def test_killed_training_resumes_exactly_under_mirrored_strategy(tmp_path, kind):
    """The same, trained under MirroredStrategy on two logical CPUs."""
    _check_resumes(tmp_path, kind, extra=["--mirrored"])


def _check_resumes(tmp_path, kind, extra=()):
    reference = str(tmp_path / "reference.npz")
    code, _ = _run(kind, str(tmp_path / "backup_ref"), reference, extra=extra)
    assert code == 0
    resumed = str(tmp_path / "resumed.npz")
    backup = str(tmp_path / "backup")
    code, lines = _run(kind, backup, resumed, kill_after_epoch=1, extra=extra)
    assert code == -signal.SIGKILL and not os.path.exists(resumed)
    code, lines = _run(kind, backup, resumed, extra=extra)
    assert code == 0
    # Resumed after the last finished epoch (1): only epochs 2 and 3 ran.
    assert [line for line in lines if line.startswith("epoch")] == [
        "epoch 2 done", "epoch 3 done"]
    want, got = np.load(reference), np.load(resumed)
    assert sorted(want.files) == sorted(got.files)
    for name in want.files:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
