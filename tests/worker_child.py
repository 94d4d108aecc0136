"""One worker of a two-process data-parallel run on loopback.

Run as `KERAS_BACKEND=... python worker_child.py KINDS INDEX PORT FOLDER`:
KINDS as in `backend_child.py`, INDEX 0 or 1, PORT a free loopback port
(the first worker's; TensorFlow's second worker takes PORT + 1). INDEX
`single` trains the same way in this one process, without distribution
(the reference).

- `tensorflow`: `tf.distribute.MultiWorkerMirroredStrategy`, the cluster in
  `TF_CONFIG` on 127.0.0.1.
- `jax`: Keras's multi-host API, `keras.distribution.initialize` (JAX's
  coordinator on 127.0.0.1, CPU collectives over gloo) and
  `keras.distribution.DataParallel` over both processes' devices.

Each worker trains every kind for 2 epochs on the first 512 digits in
global batches of 64 (a `tf.data.Dataset`, which Keras shards between the
workers), then writes every variable (its local copy) and the number of
devices in sync to FOLDER/KIND-INDEX.npz. Batch-norm moving statistics
stay per worker (as per replica under MirroredStrategy) and are left out.
A worker that fails writes FOLDER/error-INDEX.txt with the error.
"""

import json
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
KINDS, INDEX, PORT, FOLDER = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), sys.argv[4]
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
SINGLE = INDEX == "single"

if SINGLE:
    import tensorflow as tf
elif BACKEND == "tensorflow":
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{PORT}", f"127.0.0.1:{PORT + 1}"]},
        "task": {"type": "worker", "index": int(INDEX)}})
    import tensorflow as tf

    # Created before any other TensorFlow op, as the strategy requires.
    STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
else:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import tensorflow as tf

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from backend_child import _cnn  # noqa: E402
from backend_child import _tool  # noqa: E402
from keras_compress.datasets import load_digits  # noqa: E402


def _local(variable):
    value = variable.value
    if BACKEND == "jax" and not SINGLE:  # this process's copy
        return np.asarray(value.addressable_shards[0].data)
    return np.asarray(keras.ops.convert_to_numpy(value))


def run(kind):
    keras.utils.clear_session()
    if SINGLE:
        import contextlib

        devices, scope = 1, contextlib.nullcontext()
    elif BACKEND == "jax":
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices()))
        devices, scope = len(jax.devices()), keras.distribution.distribution().scope()
    else:
        devices, scope = STRATEGY.num_replicas_in_sync, STRATEGY.scope()
    (x, y), _ = load_digits()
    data = tf.data.Dataset.from_tensor_slices((x[:512], y[:512])).batch(64).repeat()
    with scope:
        model, callbacks = _tool(kind, _cnn())
        model.compile(keras.optimizers.SGD(0.05),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data, epochs=2, steps_per_epoch=8, verbose=0, callbacks=callbacks)
    state = {v.path: _local(v) for v in model.variables
             if not v.path.endswith(("moving_mean", "moving_variance"))}
    state["devices"] = np.array(devices)
    state["steps"] = np.array(_local(model.optimizer.iterations))
    np.savez(os.path.join(FOLDER, f"{kind}-{INDEX}.npz"), **state)


def main():
    if BACKEND == "jax" and not SINGLE:
        keras.distribution.initialize(f"127.0.0.1:{PORT}", num_processes=2,
                                      process_id=int(INDEX))
    try:
        for kind in KINDS:
            run(kind)
    except Exception:
        with open(os.path.join(FOLDER, f"error-{INDEX}.txt"), "w") as f:
            f.write(traceback.format_exc())
        raise


if __name__ == "__main__":
    main()
