"""MagnitudePruning under tf.distribute.MirroredStrategy on two CPU replicas.

TensorFlow fixes its logical devices at start-up, so the run happens in a
fresh interpreter.
"""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.datasets import load_digits
    from keras_compress.pruning import PolynomialDecay

    (x, y), _ = load_digits()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}
    for scope in ("layer", "global"):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                keras.layers.Flatten(),
                keras.layers.Dense(10, name="dense"),
            ])
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
                from_logits=True))
        steps = 3 * int(np.ceil(len(x) / 64))
        callback = MagnitudePruning(
            PolynomialDecay(0.0, 0.8, 0, steps, frequency=5), scope=scope)
        model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[callback])
        layers = {}
        for layer in (model.get_layer("conv"), model.get_layer("dense")):
            kernels = [v.numpy() for v in layer.kernel._value.values]
            masks = [v.numpy() for v in layer.kernel.constraint.mask._value.values]
            layers[layer.name] = {
                "size": int(kernels[0].size),
                "kernel_zeros": [int((k == 0).sum()) for k in kernels],
                "mask_zeros": [int((m == 0).sum()) for m in masks],
                "kernels_equal": all(np.array_equal(k, kernels[0]) for k in kernels),
                "masks_equal": all(np.array_equal(m, masks[0]) for m in masks),
                "zeros_follow_mask": all(
                    np.all(k[masks[0] == 0] == 0) for k in kernels),
            }
        result[scope] = layers
    print("RESULT" + json.dumps(result))
""")


@pytest.mark.slow
def test_mirrored_strategy_two_replicas():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                         text=True, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT"):])
    assert result["replicas"] == 2
    for layer in ("conv", "dense"):
        stats = result["layer"][layer]
        assert stats["masks_equal"] and stats["kernels_equal"]
        assert stats["zeros_follow_mask"]
        target = round(0.8 * stats["size"])
        assert stats["mask_zeros"] == [target, target]
    total = sum(result["global"][k]["size"] for k in ("conv", "dense"))
    zeros = sum(result["global"][k]["mask_zeros"][0] for k in ("conv", "dense"))
    assert abs(zeros - round(0.8 * total)) <= 1
    for layer in ("conv", "dense"):
        assert result["global"][layer]["masks_equal"]
        assert result["global"][layer]["zeros_follow_mask"]
