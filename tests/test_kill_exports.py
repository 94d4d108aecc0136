"""Exports killed with SIGKILL at random moments leave a complete artifact.

A child process exports in a loop, its renames announced and slowed down
(`kill_child.py`); the parent kills it inside them, and the artifact must
then be a complete one: the previous or the new, never a partial file, a
missing folder or a folder mixing two exports.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_compress import _tflite
from keras_compress.export import c_array
from keras_compress.runtime import EarlyExitRunner

CHILD = os.path.join(os.path.dirname(__file__), "kill_child.py")
KILLS = 5


def _check_tflite(path):
    with open(path, "rb") as f:
        _tflite.parse(f.read())


def _check_chain(path):
    with open(os.path.join(path, "chain.json")) as f:
        chain = json.load(f)
    for stage in chain["stages"]:
        size = os.path.getsize(os.path.join(path, stage["file"]))
        assert size == stage["size_bytes"], "a folder mixing two exports"
    EarlyExitRunner(path).predict(np.zeros((1, 8, 8, 1), "float32"))


def _check_onnx(path):
    import onnx

    onnx.checker.check_model(onnx.load(path))


def _check_micro(path):
    with open(os.path.join(path, "user_main.cc")) as f:
        assert f.read() == USER_FILE, "the user's file was lost"
    with open(os.path.join(path, "net_report.json")) as f:
        report = json.load(f)
    with open(os.path.join(path, "net.tflite"), "rb") as f:
        data = f.read()
    assert len(data) == report["flash_bytes"]
    with open(os.path.join(path, "net.c")) as f:
        source = f.read()
    assert source == c_array.source("net", data), "a bundle mixing two exports"
    with open(os.path.join(path, "net.h")) as f:
        header = f.read()
    assert header == c_array.header("net", len(data), report["arena_bytes"], report["ops"])
    _tflite.parse(data)


USER_FILE = "int main() { return 0; }\n"
PATHS = {"tflite": "model.tflite", "onnx": "model.onnx", "chain": "chain", "micro": "bundle"}


@pytest.mark.slow
@pytest.mark.parametrize("kind,check", [("tflite", _check_tflite), ("chain", _check_chain),
                                        ("onnx", _check_onnx), ("micro", _check_micro)])
def test_killed_export_leaves_a_complete_artifact(tmp_path, kind, check):
    rng = np.random.default_rng(0)
    path = os.path.join(tmp_path, PATHS[kind])
    if kind == "micro":
        os.mkdir(path)
        with open(os.path.join(path, "user_main.cc"), "w") as f:
            f.write(USER_FILE)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, CHILD, kind, path],
                                 stdout=subprocess.PIPE, text=True, env=env)
        # After a complete export, kill within the next rename that touches
        # the artifact's path (announced, then slowed by 0.2 s before and
        # after): the fallback folder swap (two renames) fails this test.
        written = False
        for line in child.stdout:
            written = written or line.startswith("wrote")
            if written and line.startswith("rename") and any(
                    arg == path or arg.startswith(path + os.sep) for arg in line.split()[1:]):
                break
        time.sleep(float(rng.uniform(0.0, 0.6)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        check(path)
    # What a kill can leave: hidden temporary files beside the artifact.
    for name in os.listdir(tmp_path):
        assert name in (os.path.basename(path),) or name.startswith((".tmp-", ".old-")), name
