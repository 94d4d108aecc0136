"""`ClusterWeights`: a weight constraint that holds shared weight values."""

import math

import keras
import numpy as np
from keras import ops

from keras_compress._checks import check_choice
from keras_compress._checks import check_int
from keras_compress._stateful_constraint import StatefulConstraint
from keras_compress.weights import copy_constraint

CENTROID_UPDATES = ("mean", "sum")


def check_centroid_update(value):
    return check_choice("centroid_update", value, CENTROID_UPDATES)


def normalize_axes(channel_axes, ndim):
    """Sorted non-negative axes, or `None` (one table for the whole tensor)."""
    if channel_axes is None:
        return None
    axes = sorted({int(a) % ndim for a in channel_axes})
    return tuple(axes)


@keras.saving.register_keras_serializable(package="keras_compress")
class ClusterWeights(StatefulConstraint):
    """Constraint that keeps a weight at `clusters` shared values.

    Weight sharing ("Deep Compression"): every entry of the weight belongs
    to one cluster, for good, and holds that cluster's centroid. The
    centroids (shape `(clusters,)`, or `(channels, clusters)` with
    `channel_axes`) and the int32 cluster index of every entry (the
    weight's shape) are non-trainable variables owned by this constraint;
    they are saved with the model (`.keras`, `save_weights`,
    `BackupAndRestore`) like a `PruningMask`'s mask.

    Keras applies a variable's constraint right after every optimizer
    update, inside the compiled train step. There, this constraint reads
    the step the optimizer proposed for every entry, `delta_i = w_i -
    c[a_i]` (the entry held `c[a_i]` before the update), moves each
    centroid by its members' steps and writes the centroids back into the
    weight, which therefore always holds exactly the shared values:

    - `centroid_update="mean"` (default): `c_k += mean(delta_i)` over the
      members of cluster `k`. With SGD (with or without momentum) this is
      exactly a gradient step on the centroid with the mean of its
      members' gradients; with Adam, whose per-entry steps are about the
      learning rate whatever the gradient, it moves a centroid like one
      Adam-trained weight. Stable with any optimizer.
    - `centroid_update="sum"`: `c_k += sum(delta_i)`. With SGD (with or
      without momentum) this is exactly a gradient step on the centroid,
      whose gradient is the sum of its members' gradients (Han et al.). A
      centroid of n members then moves n times as far as a weight would:
      it needs a learning rate about n times smaller, and with adaptive
      optimizers it diverges.

    "mean" is the default because it never hurt where we measured it (2
    seeds, 5 fine-tuning epochs from a trained float model, per-tensor
    k-means++ clusters). MNIST-1D, a 3-conv CNN at 86.4% (fine-tuned in
    float for the same 5 epochs: 88.6% with Adam(1e-3), 88.5% with
    SGD(0.01, momentum=0.9) and with SGD(0.01)): with 16 clusters, 86.4%
    before fine-tuning, "mean" 88.4%, 88.0%, 88.2%; with 8 clusters, 80.2%
    before, "mean" 86.1%, 86.0%, 85.8%. "sum" fell to chance in 7 of the
    8 runs with Adam or momentum (the eighth: 81.9%) and gave 87.1%, 64.8%
    and twice chance with plain SGD. Digits, an MLP 64-300-100-10 at 97.6%:
    16 clusters, "mean" 97.8% (Adam) and 97.6% (SGD with momentum), "sum"
    53% (Adam; one seed diverged) and 97.6-97.8% (SGD).

    Clusters flagged in `pinned` never move: `cluster_weights` pins a
    cluster of the exact zeros of a pruned weight at 0.0, so pruned entries
    stay zero. A constraint the weight already had (the user's own, or a
    `PruningMask`) runs first, on the proposed weights.

    `keras_compress.clustering.cluster_weights` builds and attaches these
    constraints; users rarely build one.

    Args:
        clusters: number of shared values per tensor (or per channel).
        channel_axes: `None` (default: one table for the whole tensor) or
            the axes that index a channel (each channel gets its own
            `clusters` values): `(-1,)` for Dense and Conv kernels, `(-2,)`
            for transposed convolutions, `(-2, -1)` for depthwise kernels
            (channel `i * multiplier + m`, as TFLite's per-channel
            quantization sees it).
        centroid_update: `"mean"` (default) or `"sum"`, see above.
        constraint: the weight's previous constraint, applied first (a
            constraint object, its name, or `None`).
    """

    def __init__(self, clusters, channel_axes=None, centroid_update="mean",
                 constraint=None):
        self.clusters = check_int("clusters", clusters, 2)
        self.channel_axes = (
            None if channel_axes is None else tuple(int(a) for a in channel_axes)
        )
        self.centroid_update = check_centroid_update(centroid_update)
        self.constraint = keras.constraints.get(constraint)
        # Set by `WeightClustering` on JAX, whose compiled train step runs
        # constraints statelessly: the callback applies this one after
        # each step instead, and in the step it leaves the weight alone.
        self.deferred = False
        self.centroids = None
        self.indices = None
        self.pinned = None

    def table_shape(self, weight_shape):
        """Shape of the centroids for a weight of `weight_shape`."""
        axes = normalize_axes(self.channel_axes, len(weight_shape))
        if axes is None:
            return (self.clusters,)
        return (math.prod(weight_shape[a] for a in axes), self.clusters)

    def build(self, weight, centroids, indices, pinned=None):
        """Creates (or sets) the cluster state of `weight`.

        Args:
            weight: the `keras.Variable` this constraint will keep.
            centroids: the shared values, shape `table_shape(weight.shape)`.
            indices: the cluster of every entry, shaped like `weight`,
                integers in `[0, clusters)`.
            pinned: booleans shaped like `centroids`, True for clusters
                that never move; default none.
        """
        shape = tuple(weight.shape)
        table = self.table_shape(shape)
        centroids = np.asarray(centroids)
        indices = np.asarray(indices)
        pinned = (np.zeros(table, bool) if pinned is None
                  else np.asarray(pinned, bool))
        for name, value, expected in (("centroids", centroids, table),
                                      ("indices", indices, shape),
                                      ("pinned", pinned, table)):
            if value.shape != expected:
                raise ValueError(
                    f"Expected `{name}` of shape {expected} for weight "
                    f"'{weight.path}'. Received: shape {value.shape}"
                )
        if indices.size and (indices.min() < 0 or indices.max() >= self.clusters):
            raise ValueError(
                f"Expected `indices` in [0, {self.clusters}) for weight "
                f"'{weight.path}'. Received: values in [{indices.min()}, "
                f"{indices.max()}]"
            )
        prefix = weight.path.replace("/", "_")
        values = {
            "centroids": (centroids.astype(weight.dtype), weight.dtype),
            "indices": (indices.astype("int32"), "int32"),
            "pinned": (pinned, "bool"),
        }
        for key, (value, dtype) in values.items():
            current = getattr(self, key)
            if current is None:
                setattr(self, key, self.new_variable(
                    f"{prefix}_cluster_{key}", value, dtype))
            else:
                current.assign(value)

    @property
    def built(self):
        return self.centroids is not None

    def _ids(self):
        """Index of every entry into the flattened centroid table."""
        indices = ops.convert_to_tensor(self.indices)
        shape = tuple(self.indices.shape)
        axes = normalize_axes(self.channel_axes, len(shape))
        if axes is None:
            return indices
        sizes = [shape[a] for a in axes]
        channel = ops.reshape(
            ops.arange(math.prod(sizes), dtype="int32"),
            [shape[d] if d in axes else 1 for d in range(len(shape))],
        )
        return indices + ops.broadcast_to(channel, shape) * self.clusters

    def shared_values(self):
        """The weight as the centroids say it is (a tensor)."""
        table = ops.reshape(ops.convert_to_tensor(self.centroids), (-1,))
        return ops.take(table, self._ids())

    def __call__(self, w):
        if self.deferred:
            return w
        if self.constraint is not None:
            w = self.constraint(w)
        if self.centroids is None:
            return w
        w = ops.convert_to_tensor(w)
        table = ops.reshape(ops.convert_to_tensor(self.centroids), (-1,))
        ids = self._ids()
        flat_ids = ops.reshape(ids, (-1,))
        delta = ops.reshape(w - ops.take(table, ids), (-1,))
        size = int(np.prod(self.centroids.shape))
        step = ops.segment_sum(delta, flat_ids, num_segments=size)
        if self.centroid_update == "mean":
            counts = ops.segment_sum(ops.ones_like(delta), flat_ids,
                                     num_segments=size)
            step = step / ops.maximum(counts, 1.0)
        pinned = ops.reshape(ops.convert_to_tensor(self.pinned), (-1,))
        table = ops.where(pinned, table, table + step)
        self.centroids.assign(ops.reshape(table, self.centroids.shape))
        return ops.take(table, ids)

    def copy_for(self, variable):
        """An equivalent constraint for `variable`, with copied state.

        The copy has its own variables (named after `variable`) holding the
        same centroids, indices and pinned flags, and a copy of the inner
        constraint (its own `copy_for` if it has one, e.g. a `PruningMask`
        with a copy of its mask; else a fresh one from its config). Use it to
        carry the clusters into another model's weight of the same shape,
        e.g. a quantization-aware copy: set `variable.constraint` (and the
        layer's `*_constraint` attribute) to the result.

        Args:
            variable: a `keras.Variable` shaped like this constraint's
                weight.

        Returns:
            A new `ClusterWeights`.
        """
        if not self.built:
            raise ValueError(
                "Expected a built ClusterWeights (with centroids) to copy. "
                "Received: one without cluster state"
            )
        shape = tuple(self.indices.shape)
        if tuple(variable.shape) != shape:
            raise ValueError(
                f"Expected a variable of shape {shape} to copy the clusters "
                f"to. Received: variable '{variable.path}' of shape "
                f"{tuple(variable.shape)}"
            )
        new = ClusterWeights(self.clusters, self.channel_axes,
                             self.centroid_update, None)
        new.constraint = copy_constraint(self.constraint, variable)
        new.build(
            variable,
            ops.convert_to_numpy(self.centroids),
            ops.convert_to_numpy(self.indices),
            ops.convert_to_numpy(self.pinned),
        )
        return new

    def get_config(self):
        return {
            **super().get_config(),
            "clusters": self.clusters,
            "channel_axes": (None if self.channel_axes is None
                             else list(self.channel_axes)),
            "centroid_update": self.centroid_update,
            "constraint": keras.constraints.serialize(self.constraint),
        }

    def save_own_variables(self, store):
        if self.centroids is not None:
            store["centroids"] = ops.convert_to_numpy(self.centroids)
            store["indices"] = ops.convert_to_numpy(self.indices)
            store["pinned"] = ops.convert_to_numpy(self.pinned)

    def load_own_variables(self, store):
        keys = ("centroids", "indices", "pinned")
        if not all(key in store.keys() for key in keys):
            return
        for key in keys:
            self.load_state(key, store[key][...], "cluster")
