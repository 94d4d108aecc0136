"""The checks made before a model's weights are clustered.

Every argument and every selected weight is checked before any weight
changes (`keras_compress.clustering.cluster_weights`), so a call that
raises leaves the model as it was.
"""

import math
import numbers

import keras

from keras_compress._checks import check_choice
from keras_compress._checks import check_int
from keras_compress.clustering import _kmeans
from keras_compress.clustering.cluster_constraint import (
    ClusterWeights,
    check_centroid_update,
    normalize_axes,
)
from keras_compress.pruning.mask import PruningMask

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


def describe(item):
    return (f"layer '{item.layer.name}' weight "
            f"'{item.variable.path.split('/')[-1]}'")


def check_not_pruning(item, constraint):
    """Raises if a pruning mask of `item` still changes or wraps clusters."""
    if not isinstance(constraint, PruningMask):
        return
    if isinstance(constraint.constraint, ClusterWeights):
        raise ValueError(
            f"Expected {describe(item)} to be pruned before it is clustered."
            " Received: a PruningMask around its ClusterWeights (pruning "
            "attached after clustering moves the masked entries' clusters). "
            "Prune first (a fit with MagnitudePruning), then cluster."
        )
    if constraint.hook is not None:
        raise ValueError(
            f"Expected the pruning of {describe(item)} to be finished "
            "before it is clustered. Received: a PruningMask that a pruning "
            "callback still updates (both callbacks in one fit). Prune "
            "first (a fit with MagnitudePruning), then cluster."
        )


def plan(item, clusters, per_channel, preserve_sparsity):
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
                f"Expected {describe(item)}, already clustered with "
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
            f"Expected preserve_sparsity=True for {describe(item)}, which "
            "is pruned (it has a PruningMask, whose zeros must stay zero). "
            "Call keras_compress.pruning.strip_pruning(model) first to "
            "cluster its zeros with the other values. Received: "
            "preserve_sparsity=False"
        )
    size = math.prod(shape)
    if axes is None:
        if clusters > size:
            raise ValueError(
                f"Expected at most {size} clusters for {describe(item)} "
                f"of shape {shape} ({size} entries). Received: "
                f"clusters={clusters}"
            )
    else:
        channels = math.prod(shape[a] for a in axes)
        per = size // channels
        if clusters > per:
            raise ValueError(
                f"Expected at most {per} clusters per channel for "
                f"{describe(item)} of shape {shape} ({channels} channels "
                f"of {per} entries). Received: clusters={clusters}, "
                "per_channel=True"
            )
    return axes
