"""Cluster a model's weights, read the clusters, and strip the constraints."""

import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_compress._checks import check_choice
from keras_compress._checks import check_int
from keras_compress._constraints import check_backend
from keras_compress._constraints import set_constraints
from keras_compress.clustering import _kmeans
from keras_compress.clustering.cluster_constraint import (
    ClusterWeights,
    check_centroid_update,
    normalize_axes,
)
from keras_compress.pruning.mask import PruningMask
from keras_compress.weights import prunable_weights, select_weights, strategy_scope, weight_key

_L = keras.layers
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_TRANSPOSE = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)


def check_arguments(clusters, per_channel, init, preserve_sparsity,
                    centroid_update, seed):
    """Validates the clustering arguments; returns `clusters` as an int."""
    clusters = check_int("clusters", clusters, 2)
    check_choice("init", init, _kmeans.INITS)
    for name, value in (("per_channel", per_channel),
                        ("preserve_sparsity", preserve_sparsity)):
        if not isinstance(value, bool):
            raise TypeError(
                f"Expected `{name}` to be a bool. Received: {name}={value!r}"
            )
    check_centroid_update(centroid_update)
    if seed is not None and (isinstance(seed, bool)
                             or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(
            "Expected `seed` to be None or an integer >= 0. Received: "
            f"seed={seed!r}"
        )
    return clusters


def channel_axes(item):
    """The axes that index an output channel of a clusterable weight.

    The last axis for Dense, Conv and most kernels; the output axis (-2)
    of transposed convolutions; both last axes of depthwise kernels
    `(..., in, multiplier)`, whose channel `i * multiplier + m` is the one
    TFLite's per-channel quantization sees.
    """
    layer = item.layer
    if isinstance(layer, _DEPTHWISE) or (
        isinstance(layer, _SEPARABLE) and item.variable is layer.depthwise_kernel
    ):
        return (-2, -1)
    if isinstance(layer, _TRANSPOSE):
        return (-2,)
    return (-1,)


def _describe(item):
    return (f"layer '{item.layer.name}' weight "
            f"'{item.variable.path.split('/')[-1]}'")


def _projected(constraint, variable):
    """The weight after its existing constraint (masks applied), as NumPy."""
    if constraint is None:
        return ops.convert_to_numpy(variable)
    if isinstance(constraint, PruningMask):
        # Not through `__call__`: a pruning callback's hook would update
        # the mask.
        value = _projected(constraint.constraint, variable)
        if constraint.mask is not None:
            value = value * ops.convert_to_numpy(constraint.mask)
        return value
    return ops.convert_to_numpy(constraint(ops.convert_to_tensor(variable)))


def _to_channels(value, axes):
    """`value` as `(channels, entries)` and the inverse of that reshape."""
    ndim = value.ndim
    perm = list(axes) + [d for d in range(ndim) if d not in axes]
    moved = value.transpose(perm)
    matrix = moved.reshape(math.prod(value.shape[a] for a in axes), -1)
    inverse = np.argsort(perm)

    def back(x):
        return x.reshape(moved.shape).transpose(inverse)

    return matrix, back


def _cluster_one(value, clusters, axes, init, rng, pin_zero):
    """Centroid table, indices and pinned flags of one weight (NumPy)."""
    if axes is None:
        table, indices, pinned = _kmeans.cluster_values(
            value, clusters, init, rng, pin_zero)
        return table, indices.reshape(value.shape), pinned
    matrix, back = _to_channels(value, axes)
    tables, indices, pinned = [], [], []
    for row in matrix:
        t, i, p = _kmeans.cluster_values(row, clusters, init, rng, pin_zero)
        tables.append(t)
        indices.append(i)
        pinned.append(p)
    return np.stack(tables), back(np.stack(indices)), np.stack(pinned)


def check_not_pruning(item, constraint):
    """Raises if a pruning mask of `item` still changes or wraps clusters."""
    if not isinstance(constraint, PruningMask):
        return
    if isinstance(constraint.constraint, ClusterWeights):
        raise ValueError(
            f"Expected {_describe(item)} to be pruned before it is clustered."
            " Received: a PruningMask around its ClusterWeights (pruning "
            "attached after clustering moves the masked entries' clusters). "
            "Prune first (a fit with MagnitudePruning), then cluster."
        )
    if constraint.hook is not None:
        raise ValueError(
            f"Expected the pruning of {_describe(item)} to be finished "
            "before it is clustered. Received: a PruningMask that a pruning "
            "callback still updates (both callbacks in one fit). Prune "
            "first (a fit with MagnitudePruning), then cluster."
        )


def _plan(item, clusters, per_channel, preserve_sparsity):
    """Checks one weight; returns its channel axes, or "keep" if clustered."""
    variable = item.variable
    shape = tuple(variable.shape)
    axes = normalize_axes(channel_axes(item), len(shape)) if per_channel else None
    current = variable.constraint
    if isinstance(current, ClusterWeights) and current.built:
        same = (current.clusters == clusters
                and normalize_axes(current.channel_axes, len(shape)) == axes)
        if not same:
            raise ValueError(
                f"Expected {_describe(item)}, already clustered with "
                f"clusters={current.clusters} "
                f"({'per channel' if current.channel_axes else 'per tensor'}),"
                f" to match the request. Received: clusters={clusters}, "
                f"per_channel={per_channel}. Call strip_clustering(model) "
                "first to cluster it again."
            )
        return "keep"
    if isinstance(current, ClusterWeights):
        # Built from a config without state (e.g. clone_model): start over.
        current = current.constraint
    check_not_pruning(item, current)
    if (not preserve_sparsity and isinstance(current, PruningMask)
            and current.mask is not None):
        raise ValueError(
            f"Expected preserve_sparsity=True for {_describe(item)}, which "
            "is pruned (it has a PruningMask, whose zeros must stay zero). "
            "Call keras_compress.pruning.strip_pruning(model) first to "
            "cluster its zeros with the other values. Received: "
            "preserve_sparsity=False"
        )
    size = math.prod(shape)
    if axes is None:
        if clusters > size:
            raise ValueError(
                f"Expected at most {size} clusters for {_describe(item)} "
                f"of shape {shape} ({size} entries). Received: "
                f"clusters={clusters}"
            )
    else:
        channels = math.prod(shape[a] for a in axes)
        per = size // channels
        if clusters > per:
            raise ValueError(
                f"Expected at most {per} clusters per channel for "
                f"{_describe(item)} of shape {shape} ({channels} channels "
                f"of {per} entries). Received: clusters={clusters}, "
                "per_channel=True"
            )
    return axes


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
                f"Expected a floating-point {_describe(item)}. Received: "
                f"dtype {item.variable.dtype}"
            )
    plans = [(item, _plan(item, clusters, per_channel, preserve_sparsity))
             for item in items]
    todo = [(item, axes) for item, axes in plans if axes != "keep"]
    rng = None if seed is None else np.random.RandomState(seed)
    bar = keras.utils.Progbar(len(todo)) if verbose and todo else None
    results = []
    for n, (item, axes) in enumerate(todo, 1):
        inner = item.variable.constraint
        if isinstance(inner, ClusterWeights):
            inner = inner.constraint
        value = _projected(inner, item.variable)
        results.append((inner, *_cluster_one(
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


def distinct_values(value, channel_axes=None):
    """Most distinct values in `value` (per channel: in any one channel)."""
    value = np.asarray(value)
    axes = normalize_axes(channel_axes, value.ndim)
    if axes is None:
        matrix = value.reshape(1, -1)
    else:
        matrix, _ = _to_channels(value, axes)
    ordered = np.sort(matrix, axis=1)
    counts = 1 + (np.diff(ordered, axis=1) != 0).sum(axis=1)
    return int(counts.max())


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
