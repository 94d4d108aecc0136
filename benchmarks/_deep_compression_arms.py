"""The two arms of `_deep_compression.py`, ours and tfmot, and their
artifacts: one trained float model (`train_float`) compressed by each
toolkit (`ours`, `tfmot_arm`), its LiteRT files and TFLite Micro bundles
measured in the runtime that runs them.
"""

import os
import tempfile
import time

import numpy as np

from _pruning_arms import accuracy as keras_accuracy, build_net, gzip_size  # noqa: F401  (benchmarks/ on sys.path)

CLUSTERS = 16
BATCH = 32
LEARNING_RATES = {"float": 1e-3, "prune": 1e-3, "cluster": 1e-4, "qat": 1e-4}


def build(K, net, task, input_shape):
    """The net in Keras 3 (`K=keras`) or tf_keras, with fixed layer names."""
    return build_net(K, task, input_shape, net, name=f"{task}_{net}")


def load(task):
    from keras_compress import datasets

    return (datasets.load_digits if task == "digits" else datasets.load_mnist1d)()


def _compile(K, model, lr):
    model.compile(optimizer=K.optimizers.Adam(lr),
                  loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit(model, x, y, epochs, seed, callbacks=()):
    # Same shuffles for every arm: NumPy permutations, fed without shuffling.
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        model.fit(x[order], y[order], batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=list(callbacks))


def litert_accuracy(data, x, y):
    from keras_compress.runtime import LiteRTModel

    return LiteRTModel(data, kernels="builtin").evaluate(x, y)


def micro_bundle(model_or_tflite, compression):
    """`(report, .tflite bytes)` of a TFLM bundle written to a temp folder.

    QAT models and `.tflite` files need no calibration data: the int8
    ranges are the learned ones, as in the LiteRT file.
    """
    from keras_compress.export import to_micro

    with tempfile.TemporaryDirectory() as folder:
        report = to_micro(model_or_tflite, folder, "model", compression=compression)
        with open(os.path.join(folder, "model.tflite"), "rb") as f:
            data = f.read()
    return report, data


def micro_accuracy(data, x, y):
    from keras_compress.runtime import MicroModel

    return MicroModel(data).evaluate(x, y)


def ours(net, task, weights, data, cfg, seed, sparsity):
    import keras

    from keras_compress.analysis import deep_compression_table
    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.clustering import cluster_weights
    from keras_compress.export import to_tflite
    from keras_compress.pruning import PolynomialDecay, strip_pruning
    from keras_compress.quantization import quantize_model

    (x, y), (xt, yt) = data
    epochs = cfg["epochs"]
    steps = -(-len(x) // BATCH)
    model = _compile(keras, build(keras, net, task, x.shape[1:]), LEARNING_RATES["prune"])
    model.set_weights(weights)
    float_model = build(keras, net, task, x.shape[1:])
    float_model.set_weights(weights)
    start = time.perf_counter()
    schedule = PolynomialDecay(0.0, sparsity, begin_step=0,
                               end_step=epochs["prune_end"] * steps, frequency=steps)
    _fit(model, x, y, epochs["prune"], seed,
         [MagnitudePruning(schedule, scope="global", log_sparsity=False)])
    strip_pruning(model)
    stages = {"float32": float_model, "pruned": build(keras, net, task, x.shape[1:])}
    stages["pruned"].set_weights(model.get_weights())
    accuracy = {"float32": keras_accuracy(float_model, xt, yt),
                "pruned": keras_accuracy(model, xt, yt)}
    cluster_weights(model, clusters=CLUSTERS, preserve_sparsity=True, seed=seed)
    _compile(keras, model, LEARNING_RATES["cluster"])
    _fit(model, x, y, epochs["cluster"], seed + 1)
    accuracy["clustered"] = keras_accuracy(model, xt, yt)
    stages["clustered"] = model
    qat = _compile(keras, quantize_model(model), LEARNING_RATES["qat"])
    _fit(qat, x, y, epochs["qat"], seed + 2)
    accuracy["qat"] = keras_accuracy(qat, xt, yt)
    train_s = time.perf_counter() - start
    int8 = to_tflite(qat, quantize="int8", lean=True)
    report, bundle = micro_bundle(qat, "auto")
    stages["int8"] = int8
    accuracy["int8"] = litert_accuracy(int8, xt, yt)
    table = deep_compression_table(
        stages, accuracy={k: accuracy[k] for k in stages})
    return {
        "sparsity": sparsity,
        "train_s": train_s,
        "accuracy": accuracy,
        "litert": {"bytes": len(int8), "gzip_bytes": gzip_size(int8),
                   "accuracy": accuracy["int8"]},
        "micro": {"flash_bytes": report["flash_bytes"],
                  "arena_bytes": report["arena_bytes"],
                  "compression": _compression_summary(report),
                  "accuracy": micro_accuracy(bundle, xt, yt)},
        "deep_compression": table.to_dict()["rows"],
    }


def _compression_summary(report):
    c = report.get("compression") or {}
    keep = ("flash_bytes_uncompressed", "arena_bytes",
            "alt_decompression_memory_bytes", "arena_bytes_with_alt_memory")
    summary = {k: c[k] for k in keep if k in c}
    methods = {}
    for row in c.get("tensors", []):
        method = row.get("method") or "none"
        methods[method] = methods.get(method, 0) + 1
    summary["tensors_by_method"] = methods
    return summary


def tfmot_arm(net, task, weights, data, cfg, seed, sparsity):
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (  # noqa: E501
        default_8bit_cluster_preserve_quantize_scheme as cluster_preserve,
    )

    (x, y), (xt, yt) = data
    epochs = cfg["epochs"]
    steps = -(-len(x) // BATCH)
    base = build(tf_keras, net, task, x.shape[1:])
    base.set_weights(weights)
    start = time.perf_counter()
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, sparsity, 0, epochs["prune_end"] * steps, frequency=steps)
    model = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    _compile(tf_keras, model, LEARNING_RATES["prune"])
    _fit(model, x, y, epochs["prune"], seed,
         [tfmot.sparsity.keras.UpdatePruningStep()])
    model = tfmot.sparsity.keras.strip_pruning(model)
    accuracy = {"pruned": keras_accuracy(model, xt, yt)}
    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    model = tfmot.clustering.keras.cluster_weights(
        model, number_of_clusters=CLUSTERS, cluster_centroids_init=init,
        preserve_sparsity=True)
    _compile(tf_keras, model, LEARNING_RATES["cluster"])
    _fit(model, x, y, epochs["cluster"], seed + 1)
    model = tfmot.clustering.keras.strip_clustering(model)
    accuracy["clustered"] = keras_accuracy(model, xt, yt)
    try:
        qat = tfmot.quantization.keras.quantize_apply(
            tfmot.quantization.keras.quantize_annotate_model(model),
            cluster_preserve.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=True))
    except RuntimeError as e:  # tfmot's QAT has no Conv1D.
        qat, int8_note = None, f"no PCQAT ({e}); int8 by post-training calibration"
    else:
        int8_note = "PCQAT"
        _compile(tf_keras, qat, LEARNING_RATES["qat"])
        _fit(qat, x, y, epochs["qat"], seed + 2)
        accuracy["qat"] = keras_accuracy(qat, xt, yt)
    train_s = time.perf_counter() - start

    def convert(m):
        converter = tf.lite.TFLiteConverter.from_keras_model(m)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()

    dynamic = convert(model)
    if qat is None:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s[None]] for s in x[:200])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        int8 = converter.convert()
        accuracy["qat"] = accuracy["clustered"]
    else:
        int8 = convert(qat)
    report, bundle = micro_bundle(int8, None)
    artifacts = {
        "dynamic": {"bytes": len(dynamic), "gzip_bytes": gzip_size(dynamic),
                    "accuracy": litert_accuracy(dynamic, xt, yt)},
        "int8": {"bytes": len(int8), "gzip_bytes": gzip_size(int8),
                 "accuracy": litert_accuracy(int8, xt, yt), "note": int8_note},
    }
    best = min(artifacts, key=lambda k: artifacts[k]["gzip_bytes"])
    return {
        "sparsity": sparsity,
        "train_s": train_s,
        "accuracy": accuracy,
        "litert_artifacts": artifacts,
        "litert": {**artifacts[best], "artifact": best},
        "micro": {"flash_bytes": report["flash_bytes"],
                  "arena_bytes": report["arena_bytes"],
                  "accuracy": micro_accuracy(bundle, xt, yt)},
    }


def train_float(net, task, data, cfg, seed):
    import keras

    from keras_compress.export import to_tflite

    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    model = _compile(keras, build(keras, net, task, x.shape[1:]), LEARNING_RATES["float"])
    _fit(model, x, y, cfg["epochs"]["float"], seed)
    data32 = to_tflite(model)
    data32_lean = to_tflite(model, lean=True)
    int8 = to_tflite(model, quantize="int8", representative_data=x[:200])
    # Our int8 path: quantize_model + calibration (per-tensor Dense weights,
    # as QAT trains them), against the converter's own PTQ (per-channel).
    from keras_compress.quantization import calibrate, quantize_model

    ptq = quantize_model(model)
    calibrate(ptq, x[:200], verbose=0)
    int8_lean = to_tflite(ptq, quantize="int8", lean=True)
    return model.get_weights(), {
        "params": int(model.count_params()),
        "accuracy": keras_accuracy(model, xt, yt),
        "float32_bytes": len(data32),
        "float32_gzip_bytes": gzip_size(data32),
        "float32_lean_bytes": len(data32_lean),
        "float32_accuracy": litert_accuracy(data32, xt, yt),
        "int8_bytes": len(int8),
        "int8_lean_bytes": len(int8_lean),
    }
