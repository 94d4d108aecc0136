"""Every training tool under tf.distribute.MirroredStrategy (two CPU replicas).

`strategy_child.py` trains each tool in a fresh interpreter (TensorFlow
fixes its logical devices at start-up); every replica must then hold the
same weights, masks, clusters, quantizer ranges and switches, and the
tool's state must be what it is asked for. (MagnitudePruning's own test
is `test_pruning_distributed.py`.)
"""

import json
import os
import subprocess
import sys

import pytest

CHILD = os.path.join(os.path.dirname(__file__), "strategy_child.py")


KINDS = ("qat", "clustering", "slimming", "lottery", "distiller", "sandwich", "multi_exit")


@pytest.mark.slow
def test_replicas_agree():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, CHILD, ",".join(KINDS)], capture_output=True,
                         text=True, timeout=900, env=env)
    results = [json.loads(line[len("RESULT"):]) for line in run.stdout.splitlines()
               if line.startswith("RESULT")]
    assert run.returncode == 0 and len(results) == len(KINDS), run.stderr[-3000:]
    for result in results:
        _check(result["kind"], result)


def _check(kind, result):
    assert result["replicas"] == 2 and result["copies"] > 0
    assert result["differ"] == [], (kind, result["differ"])
    state = result["state"]
    kernels = {k: v for k, v in state.items() if k.endswith("kernel")}
    if kind == "clustering":
        assert all(v["distinct"] <= 8 for v in kernels.values()), kernels
    if kind == "lottery":  # one round at rate 0.5 in every layer
        assert all(v["zeros"] == round(0.5 * v["size"]) for v in kernels.values()), kernels
    if kind == "qat":
        ranges = [v["value"] for k, v in state.items() if k.endswith("quantizer_max")]
        assert ranges and all(r > 0 for r in ranges)
