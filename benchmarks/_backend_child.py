"""Measures training steps on the backend of this process (`backends.py`).

Run as `KERAS_BACKEND=... python _backend_child.py MODE SETTINGS_JSON`:

- `steps`: the dense, pruned and QAT arms of the same CNN, timed in
  turns after an untimed `fit` past the first mask update (`repeats`
  turns, the order rotating; each turn one `fit` of 1 + `epochs` epochs
  per arm). A step's time is that of the epochs after
  the first (which traces the step) over their steps; the first epoch's
  extra time is reported too. Prints `RESULT {"step_ms": {arm: [per
  turn]}, "first_epoch_extra_s": {arm: [per turn]}}`.
- `worker`: the pruned arm as worker `index` of `workers` processes
  (`keras.distribution.initialize` on 127.0.0.1:`port`, `DataParallel`
  over every process's CPU device, gloo collectives), or alone with
  `workers=1`. Prints `RESULT {"seconds": [per turn], "samples": N}`,
  the wall time of each timed `fit` and the samples it trained on.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
MODE, SETTINGS = sys.argv[1], json.loads(sys.argv[2])
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if MODE == "worker" and SETTINGS["workers"] > 1:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_compress.datasets import load_digits  # noqa: E402


def _cnn():
    """32x32 digits: Conv(32)-BN-ReLU, Conv(64, stride 2)-BN-ReLU,
    Conv(64, stride 2)-BN-ReLU, global average pooling, Dense(10)."""
    keras.utils.set_random_seed(0)
    layers = [keras.Input((32, 32, 1))]
    for filters, strides in ((32, 1), (64, 2), (64, 2)):
        layers += [keras.layers.Conv2D(filters, 3, strides=strides, padding="same",
                                       use_bias=False),
                   keras.layers.BatchNormalization(), keras.layers.ReLU()]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    return keras.Sequential(layers)


def _data(samples):
    (x, y), _ = load_digits()
    x = np.kron(x[:samples], np.ones((1, 4, 4, 1), "float32"))  # 32x32
    return x, y[:samples]


def _arm(name, total_steps):
    from keras_compress import callbacks as kc

    model, callbacks = _cnn(), []
    if name == "pruned":
        from keras_compress.pruning import PolynomialDecay

        # Masks updated every 10 steps all through the timed fits.
        callbacks = [kc.MagnitudePruning(
            PolynomialDecay(0.0, 0.8, 0, total_steps, frequency=10))]
    if name == "qat":
        from keras_compress.quantization import quantize_model

        model = quantize_model(model)
        callbacks = [kc.QATSchedule(quantize_start=0)]
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, callbacks


class _EpochTimes(keras.callbacks.Callback):
    """Wall time of each epoch of a fit (the first traces the step)."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def steps(settings):
    x, y = _data(settings["samples"])
    batch, epochs, repeats = settings["batch"], settings["epochs"], settings["repeats"]
    per_epoch = -(-len(x) // batch)
    names = ("dense", "pruned", "qat")
    arms = {name: _arm(name, per_epoch * (epochs + 1) * repeats + 11) for name in names}
    # Untimed: past the first mask update (step 10), whose computation JAX
    # compiles once (~2.5 s).
    for model, callbacks in arms.values():
        model.fit(x, y, batch_size=batch, epochs=-(-11 // per_epoch), verbose=0,
                  callbacks=callbacks)
    clock = _EpochTimes()
    times = {name: [] for name in names}
    trace = {name: [] for name in names}
    for turn in range(repeats):
        k = turn % len(names)
        for name in names[k:] + names[:k]:
            model, callbacks = arms[name]
            model.fit(x, y, batch_size=batch, epochs=1 + epochs, verbose=0,
                      callbacks=callbacks + [clock])
            first, rest = clock.seconds[0], clock.seconds[1:]
            times[name].append(1e3 * sum(rest) / (len(rest) * per_epoch))
            trace[name].append(first - sum(rest) / len(rest))
    return {"step_ms": times, "first_epoch_extra_s": trace}


def worker(settings):
    import tensorflow as tf

    if settings["workers"] > 1:
        keras.distribution.initialize(f"127.0.0.1:{settings['port']}",
                                      num_processes=settings["workers"],
                                      process_id=settings["index"])
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices()))
    x, y = _data(settings["samples"])
    batch, epochs, repeats = settings["batch"], settings["epochs"], settings["repeats"]
    per_epoch = len(x) // batch
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True)
    data = data.repeat()
    model, callbacks = _arm("pruned", per_epoch * epochs * (repeats + 1))
    model.fit(data, epochs=1, steps_per_epoch=per_epoch, verbose=0, callbacks=callbacks)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(data, epochs=epochs, steps_per_epoch=per_epoch, verbose=0,
                  callbacks=callbacks)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "samples": per_epoch * epochs * batch}


if __name__ == "__main__":
    result = steps(SETTINGS) if MODE == "steps" else worker(SETTINGS)
    print("RESULT" + json.dumps(result), flush=True)
