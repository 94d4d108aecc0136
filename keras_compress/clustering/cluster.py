"""Cluster a model's weights, read the clusters, and strip the constraints."""

import keras
import numpy as np
from keras import ops

from keras_compress._constraints import check_backend
from keras_compress._constraints import set_constraints
from keras_compress.clustering._plan import check_arguments
# check_not_pruning and distinct_values: for keras_compress.callbacks.
from keras_compress.clustering._plan import check_not_pruning  # noqa: F401
from keras_compress.clustering._plan import describe
from keras_compress.clustering._plan import plan
from keras_compress.clustering._weight_values import cluster_one
from keras_compress.clustering._weight_values import distinct_values  # noqa: F401
from keras_compress.clustering._weight_values import projected
from keras_compress.clustering.cluster_constraint import ClusterWeights
from keras_compress.clustering.cluster_constraint import normalize_axes
from keras_compress.weights import prunable_weights, select_weights, strategy_scope, weight_key


def cluster_weights(
    model,
    clusters=16,
    per_channel=False,
    init="kmeans++",
    layers=None,
    skip_first=False,
    skip_last=False,
    preserve_sparsity=True,
    centroid_update="mean",
    seed=None,
    verbose=False,
):
    """Shares weight values: each kernel keeps at most `clusters` values.

    For every selected weight, initial centroids are computed from its
    current values (NumPy and scikit-learn), refined by exact 1-D k-means
    (Lloyd), every entry is set to its nearest centroid, and a
    `ClusterWeights` constraint is attached that keeps it so in training:
    after every optimizer update the centroids move by their members'
    proposed steps and the entries are set back to them (see
    `ClusterWeights` for `centroid_update`). Fine-tune with `model.fit`
    afterwards (re-`compile` is not needed), then `strip_clustering`.

    Works on Sequential, Functional, subclassed and nested models; the
    clusterable weights are the prunable ones (`Dense`, `EinsumDense`,
    `Conv*`, `Conv*Transpose`, `DepthwiseConv*`, `SeparableConv*` (both
    kernels), `Embedding`, layers with `get_prunable_weights()`). Biases
    and normalization weights are not clustered. Everything is checked
    before any weight changes: a call that raises leaves the model as it
    was. Weights that already carry a `ClusterWeights` (a loaded or
    resumed model) keep their clusters.

    With pruning: prune first (a `fit` with `MagnitudePruning`), then
    cluster; the weight's `PruningMask` becomes the inner constraint, its
    zeros a pinned cluster, and after `strip_clustering` it is a plain
    pruned weight again (`get_masks` and `strip_pruning` do not look inside
    a `ClusterWeights`: strip the clusters first). Pruning and clustering
    in one `fit` is refused. A clustered weight changed outside the
    optimizer (`set_weights`, `assign`) moves its centroids by the change
    at the next training step; to start from new values, `strip_clustering`
    and cluster again.

    Args:
        model: a built `keras.Model`; changed in place.
        clusters: shared values per tensor (or per channel), >= 2. Default
            16 (4-bit indices).
        per_channel: one table of `clusters` values for each output
            channel (the last axis of Dense/Conv kernels, the output axis
            of transposed convolutions, `in * multiplier` of depthwise
            kernels) instead of one per tensor. Default False.
        init: initial centroids: `"kmeans++"` (default, scikit-learn's
            `kmeans_plusplus`), `"linear"` (evenly spaced between the
            minimum and the maximum) or `"density"` (evenly spaced in the
            cumulative distribution of the values); k-means refines each.
        layers: which layers: `None` (all clusterable), a regular
            expression matched in full against layer names, a list of
            names, or a callable `layer -> bool`.
        skip_first: leave the first clusterable layer alone.
        skip_last: leave the last clusterable layer alone.
        preserve_sparsity: the exact zeros of a weight (a pruned one) form
            their own cluster, pinned at 0.0: they stay zero in training
            and count as one of the `clusters` values. Default True. False
            clusters zeros like any value (not allowed on a weight that
            still has a `PruningMask`).
        centroid_update: `"mean"` (default) or `"sum"`; see
            `ClusterWeights`.
        seed: seed of the k-means++ draws; `None` (default) uses NumPy's
            global generator (seeded by `keras.utils.set_random_seed`).
        verbose: show a progress bar over the weights. Default False.

    Returns:
        The model.

    Example:

    >>> model.fit(x, y, epochs=10)  # doctest: +SKIP
    >>> cluster_weights(model, clusters=16)  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3)  # fine-tune the shared values  # doctest: +SKIP
    >>> strip_clustering(model).save("clustered.keras")  # doctest: +SKIP

    Reference:
        Han, Mao & Dally, "Deep Compression: Compressing Deep Neural
        Networks with Pruning, Trained Quantization and Huffman Coding",
        ICLR 2016.
    """
    check_backend("cluster_weights", "centroids")
    clusters = check_arguments(clusters, per_channel, init, preserve_sparsity,
                               centroid_update, seed)
    items = select_weights(model, layers, skip_first, skip_last)
    for item in items:
        if not np.issubdtype(np.dtype(item.variable.dtype), np.floating):
            raise TypeError(
                f"Expected a floating-point {describe(item)}. Received: "
                f"dtype {item.variable.dtype}"
            )
    plans = [(item, plan(item, clusters, per_channel, preserve_sparsity))
             for item in items]
    todo = [(item, axes) for item, axes in plans if axes != "keep"]
    rng = None if seed is None else np.random.RandomState(seed)
    bar = keras.utils.Progbar(len(todo)) if verbose and todo else None
    results = []
    for n, (item, axes) in enumerate(todo, 1):
        inner = item.variable.constraint
        if isinstance(inner, ClusterWeights):
            inner = inner.constraint
        value = projected(inner, item.variable)
        results.append((inner, *cluster_one(
            value, clusters, axes, init, rng, preserve_sparsity)))
        if bar is not None:
            bar.update(n)

    # Everything is computed: now change the model.
    for item, axes in plans:
        if axes == "keep":
            item.variable.constraint.centroid_update = centroid_update
    with strategy_scope(model):
        constraints = []
        for (item, axes), (inner, table, indices, pinned) in zip(todo, results):
            cw = ClusterWeights(clusters, axes, centroid_update, None)
            cw.constraint = inner
            cw.build(item.variable, table, indices, pinned)
            constraints.append(cw)
    for (item, _), cw in zip(todo, constraints):
        item.variable.assign(cw.shared_values())
    set_constraints(model, [(item, cw) for (item, _), cw in zip(todo, constraints)])
    return model


def clustered_weights(model):
    """`(PrunableWeight, ClusterWeights)` for every clustered weight."""
    return [
        (item, item.variable.constraint)
        for item in prunable_weights(model)
        if isinstance(item.variable.constraint, ClusterWeights)
        and item.variable.constraint.built
    ]


def get_clusters(model):
    """The cluster state of every clustered weight of `model`, as NumPy.

    Returns:
        `{"<layer>/<weight>": {"centroids", "indices", "pinned",
        "channel_axes"}}`: the shared values (`(clusters,)`, or
        `(channels, clusters)` per channel), the int32 cluster of every
        entry (the weight's shape), booleans marking pinned clusters (the
        zeros of a pruned weight) and the channel axes (non-negative, or
        `None` per tensor). The weight equals
        `centroids.reshape(-1)[indices + channel * clusters]`, where
        `channel` is the flattened index over `channel_axes`.
    """
    result = {}
    for item, cw in clustered_weights(model):
        shape = tuple(item.variable.shape)
        result[weight_key(item)] = {
            "centroids": ops.convert_to_numpy(cw.centroids),
            "indices": ops.convert_to_numpy(cw.indices),
            "pinned": ops.convert_to_numpy(cw.pinned),
            "channel_axes": normalize_axes(cw.channel_axes, len(shape)),
        }
    return result


def strip_clustering(model):
    """Removes every `ClusterWeights` constraint, keeping the shared values.

    Each clustered weight is set to its centroids one last time and gets
    back the constraint it had before clustering (a `PruningMask` stays:
    `keras_compress.pruning.strip_pruning` removes it), so a model clustered
    from a plain one is a plain Keras model whose kernels hold at most
    `clusters` distinct values per tensor (or channel). Changes `model` in
    place.

    Returns:
        The model.

    Example:

    >>> cluster_weights(model, clusters=16)  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3)  # doctest: +SKIP
    >>> strip_clustering(model).save("clustered.keras")  # doctest: +SKIP
    """
    clustered = clustered_weights(model)
    for item, cw in clustered:
        item.variable.assign(cw.shared_values())
    set_constraints(model, [(item, cw.constraint) for item, cw in clustered])
    return model
