"""Weight clustering: cluster_weights, ClusterWeights, WeightClustering."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_compress import _tflite, export
from keras_compress.callbacks import MagnitudePruning, WeightClustering
from keras_compress.clustering import (
    ClusterWeights,
    cluster_weights,
    get_clusters,
    strip_clustering,
)
from keras_compress.clustering import _kmeans
from keras_compress.pruning import PruningMask, get_masks, set_masks, strip_pruning

L = keras.layers
BATCH = 64


def _compile(model, optimizer=None):
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def mlp(name="mlp"):
    return keras.Sequential([
        keras.Input((8, 8, 1)), L.Flatten(),
        L.Dense(300, activation="relu", name="fc1"),
        L.Dense(100, activation="relu", name="fc2"),
        L.Dense(10, name="logits"),
    ], name=name)


def distinct(value, axes=None):
    """Distinct values of `value`, or per channel over `axes` (a list)."""
    value = np.asarray(value)
    if axes is None:
        return len(np.unique(value))
    axes = [a % value.ndim for a in axes]
    rest = [d for d in range(value.ndim) if d not in axes]
    channels = value.transpose(axes + rest).reshape(
        int(np.prod([value.shape[a] for a in axes])), -1)
    return [len(np.unique(row)) for row in channels]


def kernels(model):
    return {layer.name: np.asarray(layer.kernel) for layer in model.layers
            if hasattr(layer, "kernel")}


def tflite_constants(data):
    """`{tensor name: float32 array}` of the constant float tensors."""
    flatbuffer = _tflite.parse(data)
    result = {}
    for t in flatbuffer.subgraphs[0].tensors:
        buffer = flatbuffer.buffers[t.buffer]
        if t.type != _tflite.schema.TensorType.FLOAT32 or buffer.data is None:
            continue
        raw = bytes(bytearray(buffer.data))
        if raw:
            result[t.name.decode()] = np.frombuffer(raw, np.float32).reshape(t.shape)
    return result


@pytest.fixture(scope="module")
def float_mlp(digits):
    """Weights and test accuracy of the digits MLP 64-300-100-10."""
    (x, y), (x_test, y_test) = digits
    keras.utils.set_random_seed(0)
    model = _compile(mlp())
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    return model.get_weights(), model.evaluate(x_test, y_test, verbose=0)[1]


def trained_mlp(float_mlp, optimizer=None):
    model = _compile(mlp(), optimizer)
    model.set_weights(float_mlp[0])
    return model


def test_at_most_k_values_after_clustering_training_and_strip(digits, float_mlp):
    (x, y), (x_test, y_test) = digits
    model = trained_mlp(float_mlp)
    biases = {layer.name: np.asarray(layer.bias) for layer in model.layers[1:]}
    before = kernels(model)
    out = cluster_weights(model, clusters=16, seed=0)
    assert out is model
    for name, kernel in kernels(model).items():
        assert distinct(kernel) == 16, name
        # Every entry went to its nearest centroid.
        table = get_clusters(model)[f"{name}/kernel"]["centroids"]
        nearest = table[np.abs(before[name][..., None] - table).argmin(-1)]
        np.testing.assert_array_equal(kernel, nearest)
    assert isinstance(model.get_layer("fc1").kernel_constraint, ClusterWeights)
    clusters = get_clusters(model)
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
    tuned = get_clusters(model)
    for name, kernel in kernels(model).items():
        key = f"{name}/kernel"
        assert distinct(kernel) <= 16, name
        np.testing.assert_array_equal(tuned[key]["indices"], clusters[key]["indices"])
        # The shared values trained, and the weight holds exactly them.
        assert not np.allclose(tuned[key]["centroids"], clusters[key]["centroids"])
        np.testing.assert_array_equal(
            kernel, tuned[key]["centroids"][tuned[key]["indices"]])
        # Biases are not clustered: they keep training freely.
        bias = np.asarray(model.get_layer(name).bias)
        assert not np.array_equal(bias, biases[name])
        assert name == "logits" or distinct(bias) > 16
    predictions = model.predict(x_test, verbose=0)
    strip_clustering(model)
    assert get_clusters(model) == {}
    assert "keras_compress" not in str(model.get_config())
    assert model.get_layer("fc1").kernel.constraint is None
    np.testing.assert_array_equal(model.predict(x_test, verbose=0), predictions)
    for name, kernel in kernels(model).items():
        assert distinct(kernel) <= 16, name
    # The float TFLite file stores exactly those shared values.
    constants = tflite_constants(export.to_tflite(model))
    stored = [c for c in constants.values() if c.size >= 1000]
    assert sorted(c.size for c in stored) == [1000, 19200, 30000]
    kernel_values = [set(np.unique(k)) for k in kernels(model).values()]
    for c in stored:
        assert set(np.unique(c)) in kernel_values


def test_16_clusters_fine_tuned_stay_within_a_point(digits, float_mlp):
    (x, y), (x_test, y_test) = digits
    float_accuracy = float_mlp[1]
    assert float_accuracy > 0.95
    model = trained_mlp(float_mlp)
    keras.utils.set_random_seed(1)
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0,
                        callbacks=[WeightClustering(16, seed=0)])
    assert history.history["clusters/fc1"] == [16, 16, 16]
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    assert accuracy >= float_accuracy - 0.01
    # A later fit without the callback keeps the clusters.
    model.fit(x[:256], y[:256], epochs=1, verbose=0)
    assert max(distinct(k) for k in kernels(model).values()) <= 16


def _reference_steps(x_batches, y_batches, table, ids, bias, lr, momentum,
                     mode):
    """SGD with momentum on (centroids, bias) of `x @ take(c, ids) + b`."""
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    c = tf.Variable(table.reshape(-1))
    b = tf.Variable(bias)
    counts = np.bincount(ids.reshape(-1), minlength=table.size).astype("float32")
    velocity = [np.zeros_like(table.reshape(-1)), np.zeros_like(bias)]
    for xb, yb in zip(x_batches, y_batches):
        with tf.GradientTape() as tape:
            kernel = ops.take(c, ids)
            loss = loss_fn(yb, ops.matmul(xb, kernel) + b)
        grad_c, grad_b = (np.asarray(g) for g in tape.gradient(loss, [c, b]))
        if mode == "mean":
            grad_c = grad_c / np.maximum(counts, 1)
        for i, (var, grad) in enumerate(((c, grad_c), (b, grad_b))):
            velocity[i] = momentum * velocity[i] - lr * grad
            var.assign_add(velocity[i])
    return np.asarray(c).reshape(table.shape), np.asarray(b)


@pytest.mark.parametrize("mode, momentum, per_channel", [
    ("sum", 0.0, False), ("sum", 0.9, True), ("mean", 0.9, False),
])
def test_centroid_update_is_a_gradient_step_on_the_centroids(
        digits, mode, momentum, per_channel):
    (x, y), _ = digits
    x = x.reshape(len(x), -1)
    keras.utils.set_random_seed(0)
    model = _compile(keras.Sequential([keras.Input((64,)), L.Dense(10, name="d")]),
                     keras.optimizers.SGD(0.05, momentum=momentum))
    model.fit(x, y, epochs=1, verbose=0)  # not at initialization
    model.compile(optimizer=keras.optimizers.SGD(0.05 if mode == "mean" else 0.002,
                                                 momentum=momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cluster_weights(model, clusters=4, per_channel=per_channel,
                    centroid_update=mode, seed=0)
    state = get_clusters(model)["d/kernel"]
    table, indices = state["centroids"], state["indices"]
    ids = indices + (np.arange(10) * 4 if per_channel else 0)
    bias = np.asarray(model.layers[0].bias)
    x_batches = [x[i * 128:(i + 1) * 128] for i in range(3)]
    y_batches = [y[i * 128:(i + 1) * 128] for i in range(3)]
    lr = float(model.optimizer.learning_rate)
    expected_c, expected_b = _reference_steps(
        x_batches, y_batches, table, ids, bias, lr, momentum, mode)
    for xb, yb in zip(x_batches, y_batches):
        model.train_on_batch(xb, yb)
    got = get_clusters(model)["d/kernel"]
    moved = np.abs(expected_c - table).max()
    assert moved > 1e-3  # the steps are not negligible
    np.testing.assert_allclose(got["centroids"], expected_c, atol=2e-6 + 1e-4 * moved)
    np.testing.assert_allclose(np.asarray(model.layers[0].bias), expected_b, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model.layers[0].kernel),
                                  got["centroids"].reshape(-1)[ids])


@pytest.mark.parametrize("per_channel", [False, True], ids=["tensor", "channel"])
def test_pruned_zeros_are_a_pinned_cluster(digits, float_mlp, per_channel):
    (x, y), _ = digits
    model = trained_mlp(float_mlp)
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(0.7)])
    masks = get_masks(model)
    cluster_weights(model, clusters=8, per_channel=per_channel, seed=0)
    constraint = model.get_layer("fc1").kernel_constraint
    assert isinstance(constraint.constraint, PruningMask)  # the mask runs first
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
    for key, state in get_clusters(model).items():
        kernel = np.asarray(model.get_layer(key.split("/")[0]).kernel)
        mask = masks[key]
        assert np.all(kernel[mask == 0] == 0) and np.all(kernel[mask == 1] != 0)
        # The zeros are cluster 0, pinned at exactly 0.0; nothing else is.
        np.testing.assert_array_equal(state["indices"] == 0, mask == 0)
        table = state["centroids"].reshape(-1, 8)
        assert np.all(table[:, 0] == 0) and np.all(state["pinned"].reshape(-1, 8)[:, 0])
        assert not state["pinned"].reshape(-1, 8)[:, 1:].any()
        counts = distinct(kernel, [-1] if per_channel else None)
        assert np.max(counts) <= 8  # zero counts as one of the 8
    strip_clustering(model)
    assert isinstance(model.get_layer("fc1").kernel_constraint, PruningMask)
    strip_pruning(model)
    assert model.get_layer("fc1").kernel_constraint is None
    kernel = np.asarray(model.get_layer("fc1").kernel)
    assert (kernel == 0).mean() == pytest.approx(0.7, abs=1e-3)
    assert np.max(distinct(kernel, [-1] if per_channel else None)) <= 8


def cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                          activation="relu", name="depthwise")(x)
    x = L.Conv2DTranspose(6, 3, strides=2, padding="same", name="transpose")(x)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(10, name="logits")(x)
    return _compile(keras.Model(inputs, outputs), keras.optimizers.Adam(3e-3))


def test_per_channel_tables_in_conv_depthwise_and_dense(digits):
    (x, y), _ = digits
    model = cnn()
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
    channel_axes = {"conv": [-1], "depthwise": [-2, -1], "transpose": [-2],
                    "logits": [-1]}
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[WeightClustering(4, per_channel=True, seed=0)])
    clusters = get_clusters(model)
    assert clusters["depthwise/kernel"]["centroids"].shape == (16, 4)
    assert clusters["transpose/kernel"]["centroids"].shape == (6, 4)
    history = model.history.history
    for name, axes in channel_axes.items():
        kernel = np.asarray(model.get_layer(name).kernel)
        assert max(distinct(kernel, axes)) == history[f"clusters/{name}"][-1] <= 4
        assert max(distinct(kernel, axes)) <= 4, name
        assert distinct(kernel) > 4, name  # each channel has its own table
    strip_clustering(model)
    # TFLite's depthwise filter is (1, h, w, in * multiplier): the clustered
    # channels are its last axis.
    constants = tflite_constants(export.to_tflite(model))
    (dw,) = [c for c in constants.values() if c.shape == (1, 3, 3, 16)]
    assert max(distinct(dw, [-1])) <= 4
    (fc,) = [c for c in constants.values() if c.shape == (10, 6)]
    assert max(distinct(fc, [0])) <= 4  # FULLY_CONNECTED stores (out, in)


class Residual(keras.Model):
    """A subclassed model holding a nested Sequential block."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = keras.Sequential(
            [L.Dense(32, activation="relu", name="inner_a"),
             L.Dense(64, name="inner_b")], name="block")
        self.flatten = L.Flatten()
        self.head = L.Dense(10, name="head")

    def call(self, x):
        x = self.flatten(x)
        return self.head(x + self.block(x))


def test_subclassed_and_nested_models(digits):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = _compile(Residual())
    model(x[:1])
    cluster_weights(model, clusters=8, layers="inner_.*|head")
    model.fit(x[:256], y[:256], epochs=1, verbose=0)
    for layer in (*model.block.layers, model.head):
        assert distinct(layer.kernel) <= 8, layer.name
    inner = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, name="c"),
                              L.Flatten()], name="backbone")
    inputs = keras.Input((8, 8, 1))
    nested = _compile(keras.Model(inputs, L.Dense(10, name="out")(inner(inputs))))
    cluster_weights(nested, clusters=4, layers=["c"])
    assert distinct(inner.layers[0].kernel) == 4
    assert nested.get_layer("out").kernel_constraint is None


def test_the_layers_own_constraint_runs_first_and_comes_back(digits, tmp_path):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = _compile(keras.Sequential([
        keras.Input((8, 8, 1)), L.Flatten(),
        L.Dense(10, kernel_constraint="non_neg", name="d")]))
    model.fit(x[:256], y[:256], epochs=1, verbose=0)
    cluster_weights(model, clusters=4)
    model.fit(x[:256], y[:256], epochs=1, verbose=0)
    kernel = np.asarray(model.get_layer("d").kernel)
    assert kernel.min() >= 0 and distinct(kernel) <= 4
    config = model.get_layer("d").kernel_constraint.get_config()
    assert config == {"clusters": 4, "channel_axes": None, "centroid_update": "mean",
                      "constraint": keras.constraints.serialize(keras.constraints.NonNeg())}
    assert ClusterWeights.from_config(config).get_config() == config
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("d").kernel_constraint.constraint).__name__ == "NonNeg"
    strip_clustering(loaded)
    assert type(loaded.get_layer("d").kernel_constraint).__name__ == "NonNeg"
    assert type(loaded.get_layer("d").kernel.constraint).__name__ == "NonNeg"


def test_quantize_model_carries_the_clusters_into_int8(digits, float_mlp):
    from keras_compress.quantization import quantize_model

    (x, y), (x_test, y_test) = digits
    model = cluster_weights(trained_mlp(float_mlp), clusters=16, seed=0)
    qat = _compile(quantize_model(model))
    qat.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    assert len(get_clusters(qat)) == 3
    assert qat.evaluate(x_test, y_test, verbose=0)[1] > float_mlp[1] - 0.02
    data = export.to_tflite(strip_clustering(qat), quantize="int8")
    flatbuffer = _tflite.parse(data)
    weights = []
    for t in flatbuffer.subgraphs[0].tensors:
        buffer = flatbuffer.buffers[t.buffer].data
        if buffer is not None and t.type == _tflite.schema.TensorType.INT8:
            weights.append(np.frombuffer(bytes(bytearray(buffer)), np.int8).reshape(t.shape))
    assert sorted(w.size for w in weights) == [1000, 19200, 30000]
    for w in weights:  # FULLY_CONNECTED weights: (out, in), a scale per row
        assert max(distinct(w, [0])) <= 16


def test_keras_round_trip_with_safe_mode(digits, tmp_path):
    (x, y), (x_test, _) = digits
    model = cnn()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[MagnitudePruning(0.5, layers=["logits"])])
    mask = get_masks(model)["logits/kernel"]
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0,
              callbacks=[WeightClustering(8, seed=0)])
    path = str(tmp_path / "clustered.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0),
                                  model.predict(x_test, verbose=0))
    before, after = get_clusters(model), get_clusters(loaded)
    assert before.keys() == after.keys() == {
        "conv/kernel", "depthwise/kernel", "transpose/kernel", "logits/kernel"}
    for key in before:
        for field in ("centroids", "indices", "pinned"):
            np.testing.assert_array_equal(before[key][field], after[key][field])
    inner = loaded.get_layer("logits").kernel_constraint.constraint
    np.testing.assert_array_equal(np.asarray(inner.mask), mask)
    # Training after loading keeps the clusters and the zeros; the callback
    # keeps the loaded clusters instead of clustering again.
    loaded.fit(x[:256], y[:256], epochs=1, verbose=0,
               callbacks=[WeightClustering(8, seed=1)])
    trained = get_clusters(loaded)
    for key, state in trained.items():
        np.testing.assert_array_equal(state["indices"], before[key]["indices"])
        kernel = np.asarray(loaded.get_layer(key.split("/")[0]).kernel)
        assert distinct(kernel) <= 8, key
    assert not np.allclose(trained["conv/kernel"]["centroids"],
                           before["conv/kernel"]["centroids"])
    logits = np.asarray(loaded.get_layer("logits").kernel)
    assert np.all(logits[mask == 0] == 0) and (mask == 0).sum() == 30


def test_resume_with_backup_and_restore(digits, tmp_path):
    (x, y), _ = digits
    x, y = x[:512], y[:512]

    def build():
        keras.utils.set_random_seed(0)
        model = _compile(keras.Sequential(
            [keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="c"), L.Flatten(),
             L.Dense(10, name="d")]))
        model.fit(x, y, epochs=1, verbose=0)  # a trained float model
        return model

    model = build()
    model.fit(x, y, epochs=4, batch_size=BATCH, shuffle=False, verbose=0,
              callbacks=[WeightClustering(4, seed=0)])
    expected = get_clusters(model)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("preempted")

    backup = str(tmp_path / "backup")
    model = build()
    with pytest.raises(RuntimeError, match="preempted"):
        model.fit(x, y, epochs=4, batch_size=BATCH, shuffle=False, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup),
                             WeightClustering(4, seed=0), Crash()])
    model = build()  # a new process would start from scratch like this
    history = model.fit(
        x, y, epochs=4, batch_size=BATCH, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup),
                   WeightClustering(4, seed=0)])
    assert len(history.history["loss"]) == 2  # resumed at epoch 2
    resumed = get_clusters(model)
    for key in expected:
        np.testing.assert_array_equal(resumed[key]["indices"], expected[key]["indices"])
        np.testing.assert_allclose(resumed[key]["centroids"],
                                   expected[key]["centroids"], atol=1e-6)


def test_copy_for_carries_the_state_to_another_variable(digits):
    (x, y), _ = digits
    source = cnn()
    set_masks(source, {"logits/kernel": np.arange(60).reshape(6, 10) % 3 != 0})
    cluster_weights(source, clusters=4, per_channel=True, seed=0)
    target = cnn()
    for name in ("depthwise", "logits"):
        old = source.get_layer(name)
        new = target.get_layer(name)
        new.set_weights(old.get_weights())
        copy = old.kernel.constraint.copy_for(new.kernel)
        new.kernel.constraint = copy
        assert copy.centroids is not old.kernel.constraint.centroids
        for field in ("centroids", "indices", "pinned"):
            np.testing.assert_array_equal(np.asarray(getattr(copy, field)),
                                          np.asarray(getattr(old.kernel.constraint, field)))
    inner = target.get_layer("logits").kernel.constraint.constraint
    assert isinstance(inner, PruningMask) and inner.mask is not None
    kept = get_clusters(source)
    target.fit(x[:128], y[:128], epochs=1, verbose=0)
    for field in ("centroids", "indices"):  # the source did not move
        np.testing.assert_array_equal(get_clusters(source)["logits/kernel"][field],
                                      kept["logits/kernel"][field])
    logits = np.asarray(target.get_layer("logits").kernel)
    assert max(distinct(logits, [-1])) <= 4
    assert np.all(logits[np.arange(60).reshape(6, 10) % 3 == 0] == 0)
    with pytest.raises(ValueError,
                       match=r"shape \(6, 10\).*'conv/kernel' of shape \(3, 3, 1, 8\)"):
        source.get_layer("logits").kernel.constraint.copy_for(target.get_layer("conv").kernel)


@pytest.mark.parametrize("init", _kmeans.INITS)
def test_kmeans_reaches_a_lloyd_fixed_point(rng, init):
    from sklearn.cluster import KMeans

    values = np.concatenate([rng.normal(0, 1, 3000), rng.laplace(2, 0.3, 1000)])
    table, indices, pinned = _kmeans.cluster_values(
        values, 8, init, np.random.RandomState(0), pin_zero=True)
    assert not pinned.any()  # no exact zeros, so no zero cluster
    assert np.all(np.diff(table) > 0)
    for k in range(8):  # every centroid is the mean of its members ...
        assert table[k] == pytest.approx(values[indices == k].mean(), abs=1e-12)
    # ... and every value is with its nearest centroid.
    np.testing.assert_array_equal(indices, np.abs(values[:, None] - table).argmin(1))
    ours = ((values - table[indices]) ** 2).sum()
    start = _kmeans.initial_centroids(values, 8, init, np.random.RandomState(0))
    sk = KMeans(8, init=start[:, None], n_init=1, tol=0).fit(values[:, None])
    assert ours <= sk.inertia_ * (1 + 1e-9)
    # Fewer distinct values than clusters: they are the centroids.
    table, indices, _ = _kmeans.cluster_values(
        np.array([0.0, 1.0, 1.0, 3.0, 0.0]), 4, init, None, pin_zero=True)
    np.testing.assert_array_equal(table[indices], [0.0, 1.0, 1.0, 3.0, 0.0])


def small():
    keras.utils.set_random_seed(0)
    return _compile(keras.Sequential([
        keras.Input((4,)), L.Dense(300, name="big"), L.Dense(2, name="tiny")],
        name="small"))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(clusters=1), ValueError, "clusters` to be an integer >= 2. Received: clusters=1"),
    (dict(clusters=2.5), ValueError, "clusters=2.5"),
    (dict(clusters=True), ValueError, "clusters=True"),
    (dict(init="random"), ValueError, r"init.*'kmeans\+\+'.*Received: init='random'"),
    (dict(centroid_update="avg"), ValueError, "centroid_update='avg'"),
    (dict(per_channel="yes"), TypeError, "per_channel='yes'"),
    (dict(seed=-1), ValueError, "seed=-1"),
    (dict(clusters=601), ValueError,
     r"at most 600 clusters for layer 'tiny' weight 'kernel' of shape \(300, 2\)"),
    (dict(clusters=8, per_channel=True, layers=["big"]), ValueError,
     r"at most 4 clusters per channel for layer 'big' weight 'kernel' of shape \(4, 300\)"),
    (dict(layers="dense_.*"), ValueError, r"layers='dense_\.\*'"),
    (dict(layers=["big", "nope"]), ValueError, r"not found: \['nope'\]"),
    (dict(layers=lambda layer: False), ValueError, "at least one prunable layer"),
])
def test_bad_arguments_change_nothing(kwargs, error, match):
    model = small()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        cluster_weights(model, **kwargs)
    with pytest.raises(error, match=match):
        WeightClustering(**kwargs).set_model(model)
    # The first layer could be clustered, but nothing was touched.
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert all(layer.kernel.constraint is None for layer in model.layers)
    assert get_clusters(model) == {}


def test_errors_on_models_and_states(digits):
    (x, y), _ = digits
    nothing = _compile(keras.Sequential(
        [keras.Input((8, 8, 1)), L.Flatten(), L.BatchNormalization()],
        name="no_kernels"))
    with pytest.raises(ValueError, match="model 'no_kernels' to have at least one prunable"):
        cluster_weights(nothing)
    unbuilt = _compile(Residual(name="unbuilt"))
    with pytest.raises(ValueError, match="model 'unbuilt' has not created its weights"):
        unbuilt.fit(x[:64], y[:64], verbose=0, callbacks=[WeightClustering(4)])
    uncompiled = keras.Sequential([keras.Input((4,)), L.Dense(2)], name="raw")
    with pytest.raises(ValueError, match="compiled model.*'raw' without an optimizer"):
        WeightClustering(4).set_model(uncompiled)
    with pytest.raises(TypeError, match="Expected a keras.Model"):
        cluster_weights(L.Dense(3))
    pruned = _compile(keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(),
                                        L.Dense(10, name="d")]))
    for callbacks in ([MagnitudePruning(0.5), WeightClustering(4)],
                      [WeightClustering(4), MagnitudePruning(0.5)]):
        with pytest.raises(ValueError, match="layer 'd' weight 'kernel'.*Prune first"):
            pruned.fit(x[:64], y[:64], verbose=0, callbacks=callbacks)
        strip_pruning(pruned)  # the mask, with the clusters inside it
        strip_clustering(pruned)
        assert pruned.get_layer("d").kernel.constraint is None
    model = small()
    set_masks(model, {"big/kernel": np.ones((4, 300)) * (np.arange(300) % 2)})
    with pytest.raises(ValueError, match="preserve_sparsity=True for layer 'big'.*strip_pruning"):
        cluster_weights(model, clusters=4, preserve_sparsity=False)
    assert get_clusters(model) == {}
    cluster_weights(model, clusters=4)
    state = get_clusters(model)
    with pytest.raises(ValueError,
                       match=r"already clustered with clusters=4.*clusters=8.*strip_clustering"):
        cluster_weights(model, clusters=8)
    cluster_weights(model, clusters=4)  # same request: kept as it is
    for key, value in get_clusters(model).items():
        np.testing.assert_array_equal(value["centroids"], state[key]["centroids"])
    with pytest.raises(ValueError, match=r"Expected `indices` in \[0, 4\)"):
        model.get_layer("tiny").kernel.constraint.build(
            model.get_layer("tiny").kernel, np.zeros(4), np.full((300, 2), 4))
