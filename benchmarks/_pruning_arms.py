"""The arms of `pruning_vs_tfmot.py`, and the small nets both tfmot
benchmarks train.

`build_net` is the network of a task in Keras 3 or tf_keras (also used by
`_deep_compression.py`); `batch_stream` the batches both frameworks see;
`run_arm` trains one arm (dense, dense_tf_keras, ours, tfmot) from given
initial weights, timed, and measures the result, untimed.
"""

import gc
import gzip
import sys
import time

import numpy as np


def build_net(K, task, input_shape, net="cnn", name=None):
    """The task's network in Keras 3 (`K=keras`) or tf_keras (`K=tf_keras`):
    `net="cnn"` (convolutions) or `"mlp"` (LeNet-300-100's shape), Flatten,
    Dense(10) logits; `name` defaults to the task.

    Layers and models get fixed names, so the TFLite files (whose tensor
    names come from them) do not grow as Keras numbers new layers.
    """
    L = K.layers
    if net == "mlp":
        body = [L.Flatten(name="flatten"),
                L.Dense(300, activation="relu", name="fc1"),
                L.Dense(100, activation="relu", name="fc2")]
    elif task == "mnist1d":
        body = [
            L.Conv1D(32, 5, activation="relu", name="conv1"),
            L.Conv1D(64, 3, strides=2, activation="relu", name="conv2"),
            L.Conv1D(64, 3, strides=2, activation="relu", name="conv3"),
            L.Flatten(name="flatten"),
        ]
    elif task == "digits":
        body = [
            L.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            L.Conv2D(64, 3, strides=2, padding="same", activation="relu",
                     name="conv2"),
            L.Flatten(name="flatten"),
        ]
    else:
        raise ValueError(f"Unknown task {task!r}")
    return K.Sequential([K.Input(input_shape), *body, L.Dense(10, name="logits")],
                        name=name or task)


def gzip_size(data):
    """Bytes of `data` gzipped (level 9, no timestamp)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def load_task_data(task, train_samples=None):
    from keras_compress.datasets import load_digits, load_mnist1d

    loader = {"mnist1d": load_mnist1d, "digits": load_digits}[task]
    (x_train, y_train), (x_test, y_test) = loader()
    if train_samples is not None:
        x_train, y_train = x_train[:train_samples], y_train[:train_samples]
    return (x_train, y_train), (x_test, y_test)


def batch_stream(x, y, epochs, batch_size, seed):
    """`epochs` shuffled passes over `(x, y)` as one `tf.data` stream.

    The permutations come from NumPy (`default_rng(seed)`), not from either
    framework's shuffling, so Keras 3 and tf_keras see identical batches in
    identical order. Each epoch ends with its own partial batch, as in
    `fit(shuffle=True)`. Fed with `steps_per_epoch`, both frameworks keep one
    iterator across epochs (the stream is repeated so neither ever runs dry).
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(len(x)) for _ in range(epochs)])
    xs, ys = tf.constant(x[order]), tf.constant(y[order])
    stream = tf.data.Dataset.from_tensor_slices((xs, ys)).flat_map(
        lambda a, b: tf.data.Dataset.from_tensor_slices((a, b)).batch(batch_size)
    )
    return stream.repeat().prefetch(2)


def compiled_net(K, task, input_shape, weights, cfg):
    """The net of `task` with `weights`, compiled as every arm trains it."""
    model = build_net(K, task, input_shape)
    model.set_weights(weights)
    model.compile(
        optimizer=K.optimizers.Adam(cfg["learning_rate"]),
        loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def train_dense(K, task, input_shape, weights, stream, cfg):
    """Unpruned training, Keras 3 (`K=keras`) or tf_keras (`K=tf_keras`)."""
    model = compiled_net(K, task, input_shape, weights, cfg)
    model.fit(stream, epochs=cfg["epochs"], steps_per_epoch=cfg["steps_per_epoch"],
              shuffle=False, verbose=0)
    return model


def train_ours(task, input_shape, weights, stream, cfg, sparsity):
    import keras

    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.pruning import PolynomialDecay, strip_pruning

    model = compiled_net(keras, task, input_shape, weights, cfg)
    schedule = PolynomialDecay(0.0, sparsity, begin_step=0,
                               end_step=cfg["end_step"], frequency=cfg["frequency"])
    model.fit(stream, epochs=cfg["epochs"], steps_per_epoch=cfg["steps_per_epoch"],
              shuffle=False, verbose=0, callbacks=[MagnitudePruning(schedule)])
    return strip_pruning(model)


def train_tfmot(task, input_shape, weights, stream, cfg, sparsity):
    import tensorflow_model_optimization as tfmot
    import tf_keras

    base = build_net(tf_keras, task, input_shape)
    base.set_weights(weights)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
        end_step=cfg["end_step"], frequency=cfg["frequency"])
    # prune_low_magnitude clones the model and keeps its weights.
    model = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(cfg["learning_rate"]),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(stream, epochs=cfg["epochs"], steps_per_epoch=cfg["steps_per_epoch"],
              shuffle=False, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(model)


def accuracy(model, x, y):
    # A direct call: `predict` would trace a new function for every model.
    logits = np.asarray(model(x, training=False))
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def kernel_zeros(model):
    """Zeros of every kernel (the weights both toolkits prune), per layer."""
    layers = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        values = np.asarray(kernel)
        layers.append({"layer": layer.name, "size": int(values.size),
                       "zeros": int(np.count_nonzero(values == 0))})
    return layers


def tflite_ours(model, sparse):
    from keras_compress.export import to_tflite

    return to_tflite(model, sparse=sparse)


def tflite_tf_keras(model, sparse):
    """tf_keras model -> float32 TFLite with the converter options that
    `keras_compress.export.to_tflite(..., sparse=...)` sets (no quantization,
    `EXPERIMENTAL_SPARSITY` when sparse, dynamic batch)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    return converter.convert()


def file_stats(data):
    from keras_compress.analysis import summarize

    return {
        "tflite_bytes": len(data),
        "gzip_bytes": gzip_size(data),
        # Bytes of the constant tensors (weights, biases, sparse indices)
        # the file stores: the part pruning can shrink, without the graph.
        "constant_bytes": int(summarize(data).totals.bytes_stored),
    }


def clear_sessions():
    """Frees the previous run's models and graphs in both frameworks."""
    import keras
    import tf_keras

    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    gc.collect()


def run_arm(arm, sparsity, task, data, weights, stream, cfg, seed):
    """Trains one arm once (timed) and measures the result (untimed)."""
    import keras
    import tf_keras

    (x_train, _), (x_test, y_test) = data
    input_shape = x_train.shape[1:]
    clear_sessions()
    start = time.perf_counter()
    if arm == "dense":
        model = train_dense(keras, task, input_shape, weights, stream, cfg)
    elif arm == "dense_tf_keras":
        model = train_dense(tf_keras, task, input_shape, weights, stream, cfg)
    elif arm == "ours":
        model = train_ours(task, input_shape, weights, stream, cfg, sparsity)
    elif arm == "tfmot":
        model = train_tfmot(task, input_shape, weights, stream, cfg, sparsity)
    else:
        raise ValueError(arm)
    train_s = time.perf_counter() - start

    layers = kernel_zeros(model)
    zeros = sum(layer["zeros"] for layer in layers)
    size = sum(layer["size"] for layer in layers)
    export = tflite_tf_keras if arm in ("tfmot", "dense_tf_keras") else tflite_ours
    record = {
        "seed": seed,
        "accuracy": accuracy(model, x_test, y_test),
        "train_s": train_s,
        "sparsity": zeros / size,
        **file_stats(export(model, sparse=sparsity is not None)),
        "layers": layers,
    }
    if sparsity is not None:
        # The most zeros any layer is away from round(sparsity * size).
        record["max_layer_zeros_off_target"] = max(
            abs(layer["zeros"] - round(sparsity * layer["size"])) for layer in layers
        )
    return record


def warm_up():
    """One untimed mini-fit per framework and pruning toolkit, so process-wide
    first-use costs are not charged to whichever arm happens to run first."""
    import keras
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(16, 40, 1)).astype("float32")
    y = np.arange(16, dtype="int32") % 10
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    cfg = {"learning_rate": 3e-3, "epochs": 1, "steps_per_epoch": 2,
           "end_step": 2, "frequency": 1}
    weights = build_net(keras, "mnist1d", (40, 1)).get_weights()
    train_ours("mnist1d", (40, 1), weights, stream, cfg, 0.5)
    train_tfmot("mnist1d", (40, 1), weights, stream, cfg, 0.5)
    clear_sessions()


def check_peer():
    """Imports tf_keras and tfmot, or exits with a clear message."""
    try:
        import tensorflow_model_optimization  # noqa: F401
        import tf_keras  # noqa: F401
    except ImportError as e:
        sys.exit(f"This benchmark needs tfmot and tf_keras (the `bench` extra: "
                 f"pip install tensorflow-model-optimization tf_keras): {e}")
