"""A weight's values in NumPy: read through its constraints, clustered,
counted per channel."""

import math

import numpy as np
from keras import ops

from keras_compress.clustering import _kmeans
from keras_compress.clustering.cluster_constraint import normalize_axes
from keras_compress.pruning.mask import PruningMask


def projected(constraint, variable):
    """The weight after its existing constraint (masks applied), as NumPy."""
    if constraint is None:
        return ops.convert_to_numpy(variable)
    if isinstance(constraint, PruningMask):
        # Not through `__call__`: a pruning callback's hook would update
        # the mask.
        value = projected(constraint.constraint, variable)
        if constraint.mask is not None:
            value = value * ops.convert_to_numpy(constraint.mask)
        return value
    return ops.convert_to_numpy(constraint(ops.convert_to_tensor(variable)))


def to_channels(value, axes):
    """`value` as `(channels, entries)` and the inverse of that reshape."""
    ndim = value.ndim
    perm = list(axes) + [d for d in range(ndim) if d not in axes]
    moved = value.transpose(perm)
    matrix = moved.reshape(math.prod(value.shape[a] for a in axes), -1)
    inverse = np.argsort(perm)

    def back(x):
        return x.reshape(moved.shape).transpose(inverse)

    return matrix, back


def cluster_one(value, clusters, axes, init, rng, pin_zero):
    """Centroid table, indices and pinned flags of one weight (NumPy)."""
    if axes is None:
        table, indices, pinned = _kmeans.cluster_values(
            value, clusters, init, rng, pin_zero)
        return table, indices.reshape(value.shape), pinned
    matrix, back = to_channels(value, axes)
    tables, indices, pinned = [], [], []
    for row in matrix:
        t, i, p = _kmeans.cluster_values(row, clusters, init, rng, pin_zero)
        tables.append(t)
        indices.append(i)
        pinned.append(p)
    return np.stack(tables), back(np.stack(indices)), np.stack(pinned)


def distinct_values(value, channel_axes=None):
    """Most distinct values in `value` (per channel: in any one channel)."""
    value = np.asarray(value)
    axes = normalize_axes(channel_axes, value.ndim)
    if axes is None:
        matrix = value.reshape(1, -1)
    else:
        matrix, _ = to_channels(value, axes)
    ordered = np.sort(matrix, axis=1)
    counts = 1 + (np.diff(ordered, axis=1) != 0).sum(axis=1)
    return int(counts.max())
