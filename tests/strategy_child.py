"""Trains one compression tool under MirroredStrategy on two CPU replicas.

Run as `python strategy_child.py KINDS`, a comma-separated list as in
`backend_child.py`. For each kind it prints `RESULT {json}`: for every
variable, whether its replicas hold the
same values, and the tool's state as the first replica holds it (zeros in
each kernel, distinct kernel values, quantizer ranges). Moving batch
statistics of Keras's `BatchNormalization` are left out of the comparison:
each replica keeps its own (the model reads the first replica's); those of
the fused batch norm of `QuantConv2D` are averaged over replicas and
compared.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from backend_child import _cnn  # noqa: E402
from backend_child import _tool  # noqa: E402
from keras_compress.datasets import load_digits  # noqa: E402


def _replicas(variable):
    value = getattr(variable, "_value", None)
    values = getattr(value, "values", None) or getattr(variable, "values", None)
    return [np.asarray(v.numpy()) for v in values] if values else [np.asarray(variable)]


def quant(variable):
    """Whether `variable` is a QAT layer's fused batch-norm statistic
    (averaged over replicas, unlike Keras's BatchNormalization's)."""
    return getattr(variable, "aggregation", "none") == "mean"


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for kind in sys.argv[1].split(","):
        keras.utils.clear_session()
        run(kind, strategy)


def run(kind, strategy):
    (x, y), _ = load_digits()
    x, y = x[:512], y[:512]
    with strategy.scope():
        model, callbacks = _tool(kind, _cnn())
        model.compile(keras.optimizers.SGD(0.05),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, shuffle=False, verbose=0, callbacks=callbacks)
    result = {"kind": kind, "replicas": strategy.num_replicas_in_sync, "differ": [],
              "state": {}}
    for v in model.variables:
        values = _replicas(v)
        if v.path.endswith(("moving_mean", "moving_variance")) and not quant(v):
            continue  # per replica in Keras's BatchNormalization
        if len(values) > 1 and not all(np.array_equal(values[0], w) for w in values[1:]):
            result["differ"].append(v.path)
        first = values[0]
        if v.path.endswith("kernel"):
            result["state"][v.path] = {"zeros": int((first == 0).sum()),
                                       "size": int(first.size),
                                       "distinct": int(len(np.unique(first)))}
        elif v.path.endswith(("quantizer_min", "quantizer_max")):
            result["state"][v.path] = {"value": first.tolist()}
    result["copies"] = sum(len(_replicas(v)) > 1 for v in model.variables)
    print("RESULT" + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
