"""Which weights a mask may remove: any (unstructured) or N of every M."""

import re

from keras import ops


def _rank(x, axis=-1):
    """Position of each entry of `x` in ascending order along `axis`."""
    return ops.argsort(ops.argsort(x, axis=axis), axis=axis)


def _prune_count(sparsity, size):
    return ops.cast(ops.round(ops.cast(sparsity, "float32") * size), "int32")


class Unstructured:
    """Removes the `round(sparsity * size)` smallest scores of a weight."""

    name = "unstructured"

    def check(self, shape, axis, where):
        del shape, axis, where

    def final_sparsity(self, schedule_final):
        return schedule_final

    def mask(self, score, sparsity, axis):
        del axis
        flat = ops.reshape(score, (-1,))
        count = _prune_count(sparsity, flat.shape[0])
        # One sort finds the threshold; among scores equal to it (already
        # pruned zeros, mostly) the first ones in memory order go, so
        # exactly `count` weights are removed.
        threshold = ops.take(ops.sort(flat), ops.maximum(count - 1, 0))
        below = ops.less(flat, threshold)
        tied = ops.equal(flat, threshold)
        room = count - ops.sum(ops.cast(below, "int32"))
        tied_pruned = ops.logical_and(
            tied, ops.less_equal(ops.cumsum(ops.cast(tied, "int32")), room)
        )
        prune = ops.logical_and(
            ops.greater(count, 0), ops.logical_or(below, tied_pruned)
        )
        keep = ops.logical_not(prune)
        return ops.reshape(ops.cast(keep, score.dtype), ops.shape(score))

    def threshold_mask(self, score, threshold, axis):
        del axis
        return ops.cast(ops.greater(score, threshold), score.dtype)

    def __repr__(self):
        return '"unstructured"'


class NOutOfM:
    """Keeps `n` of every `m` consecutive weights along the input axis.

    The pattern of sparse tensor cores (2:4) and of the sparse kernels that
    follow it. While a schedule ramps up, `round(sparsity * m)` weights of
    each group are removed; the final schedule sparsity must be `1 - n / m`.
    """

    def __init__(self, n, m):
        self.n, self.m = n, m
        self.name = f"{n}:{m}"

    def check(self, shape, axis, where):
        size = shape[axis] if shape else 1
        if size % self.m:
            raise ValueError(
                f"Expected the input dimension of {where} to be a multiple of "
                f"M={self.m} for granularity='{self.name}'. Received: shape="
                f"{tuple(shape)} (input axis {axis} has {size} entries)"
            )

    def final_sparsity(self, schedule_final):
        del schedule_final
        return 1.0 - self.n / self.m

    def _groups(self, score, axis):
        moved = ops.moveaxis(score, axis, -1)
        shape = moved.shape
        return ops.reshape(moved, (-1, self.m)), shape

    def _restore(self, groups, shape, axis):
        return ops.moveaxis(ops.reshape(groups, shape), -1, axis)

    def mask(self, score, sparsity, axis):
        groups, shape = self._groups(score, axis)
        keep = ops.greater_equal(_rank(groups), _prune_count(sparsity, self.m))
        return self._restore(ops.cast(keep, score.dtype), shape, axis)

    def __repr__(self):
        return f'"{self.name}"'


def get(granularity):
    """Parses `"unstructured"` or `"N:M"` (N < M)."""
    if isinstance(granularity, (Unstructured, NOutOfM)):
        return granularity
    if granularity == "unstructured":
        return Unstructured()
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(granularity))
    if isinstance(granularity, str) and match:
        n, m = int(match.group(1)), int(match.group(2))
        if 0 < n < m:
            return NOutOfM(n, m)
    raise ValueError(
        "Expected `granularity` to be 'unstructured' or 'N:M' with "
        f"0 < N < M (such as '2:4'). Received: granularity={granularity!r}"
    )
