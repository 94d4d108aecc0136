"""`WeightClustering`: weight sharing, fine-tuned inside `model.fit`."""

import keras

from keras_compress._constraints import after_steps_hook
from keras_compress._constraints import check_fit_model
from keras_compress._constraints import updates_after_steps
from keras_compress._constraints import updates_in_step
from keras_compress.clustering.cluster import (
    check_arguments,
    check_not_pruning,
    cluster_weights,
    distinct_values,
)
from keras_compress.clustering.cluster_constraint import ClusterWeights
from keras_compress.weights import select_weights


class WeightClustering(keras.callbacks.Callback):
    """Clusters a model's weights when `fit` starts and trains the clusters.

    When the callback gets its model (before the train step is traced) it
    calls `keras_compress.clustering.cluster_weights` with its arguments:
    every selected kernel gets at most `clusters` shared values (per tensor
    or per output channel) and a `ClusterWeights` constraint, which moves
    the shared values by their members' optimizer steps after every update,
    in the graph. Weights that already carry one (a model loaded from
    `.keras`, or restored by `BackupAndRestore`) keep their clusters, so a
    resumed run goes on where it stopped. Put this callback after
    `BackupAndRestore` in the list.

    The constraints stay in place after training, so later `fit` calls keep
    the clusters; `keras_compress.clustering.strip_clustering(model)` ends
    clustering and leaves a plain Keras model.

    Args:
        clusters: shared values per tensor (or per channel), >= 2. Default
            16.
        per_channel: one table per output channel. Default False.
        init: `"kmeans++"` (default), `"linear"` or `"density"`.
        layers: which layers: `None` (all clusterable), a regex, a list of
            names, or a callable `layer -> bool`.
        skip_first: leave the first clusterable layer alone.
        skip_last: leave the last clusterable layer alone.
        preserve_sparsity: zeros of a pruned weight form a cluster pinned
            at 0.0. Default True.
        centroid_update: `"mean"` (default) or `"sum"`; see
            `keras_compress.clustering.ClusterWeights`.
        seed: seed of the k-means++ draws, default None.
        log_clusters: add `clusters/<layer>` (the most distinct values in
            the layer's kernel, or in any one of its channels) to the epoch
            logs. Defaults to True.
        verbose: a progress bar while clustering. Default False.

    Example:

    ```python
    model.fit(x, y, epochs=10)  # the float model
    model.fit(x, y, epochs=3,
              callbacks=[keras_compress.callbacks.WeightClustering(16)])
    keras_compress.clustering.strip_clustering(model)
    ```

    Reference:
        Han, Mao & Dally, "Deep Compression", ICLR 2016.
    """

    def __init__(
        self,
        clusters=16,
        per_channel=False,
        init="kmeans++",
        layers=None,
        skip_first=False,
        skip_last=False,
        preserve_sparsity=True,
        centroid_update="mean",
        seed=None,
        log_clusters=True,
        verbose=False,
    ):
        super().__init__()
        self.clusters = check_arguments(clusters, per_channel, init,
                                        preserve_sparsity, centroid_update,
                                        seed)
        self.per_channel = per_channel
        self.init = init
        self.layers = layers
        self.skip_first = skip_first
        self.skip_last = skip_last
        self.preserve_sparsity = preserve_sparsity
        self.centroid_update = centroid_update
        self.seed = seed
        self.log_clusters = log_clusters
        self.verbose = verbose
        self.items = []
        self._attached_to = None
        self._after_steps = False
        after_steps_hook(self, self._after_train_batch)

    def set_model(self, model):
        super().set_model(model)
        if self._attached_to is model:
            return
        check_fit_model(model, type(self).__name__, "clusters weights")
        self._after_steps = not updates_in_step(model, type(self).__name__, "centroids")
        with updates_after_steps():  # (JAX: this callback applies them)
            cluster_weights(
                model,
                clusters=self.clusters,
                per_channel=self.per_channel,
                init=self.init,
                layers=self.layers,
                skip_first=self.skip_first,
                skip_last=self.skip_last,
                preserve_sparsity=self.preserve_sparsity,
                centroid_update=self.centroid_update,
                seed=self.seed,
                verbose=self.verbose,
            )
        self.items = select_weights(model, self.layers, self.skip_first,
                                    self.skip_last)
        self._set_deferred(self._after_steps)
        self._attached_to = model

    def _constraints(self):
        return [(item, item.variable.constraint) for item in self.items
                if isinstance(item.variable.constraint, ClusterWeights)]

    def _set_deferred(self, deferred):
        for _, cw in self._constraints():
            cw.deferred = deferred

    def _after_train_batch(self, batch, logs=None):
        # JAX only (`after_steps_hook`): the constraints' update, after the
        # step, in Python.
        if self._after_steps:
            self.model.jax_state_sync()
            for item, cw in self._constraints():
                cw.deferred = False
                try:
                    item.variable.assign(cw(keras.ops.convert_to_tensor(item.variable)))
                finally:
                    cw.deferred = True

    def on_train_begin(self, logs=None):
        # A pruning callback listed after this one wraps the clusters.
        for item in self.items:
            check_not_pruning(item, item.variable.constraint)

    def cluster_logs(self):
        """`{"clusters/<layer>": most distinct values}` of every weight."""
        logs = {}
        for item in self.items:
            cw = item.variable.constraint
            name = f"clusters/{item.layer.name}"
            if sum(other.layer is item.layer for other in self.items) > 1:
                name += f"/{item.variable.path.split('/')[-1]}"
            logs[name] = distinct_values(
                keras.ops.convert_to_numpy(item.variable),
                getattr(cw, "channel_axes", None))
        return logs

    def on_epoch_end(self, epoch, logs=None):
        if self.log_clusters and logs is not None:
            logs.update(self.cluster_logs())

    def on_train_end(self, logs=None):
        # The constraints stay; a later fit with this callback checks again.
        self._set_deferred(False)
        self._attached_to = None
