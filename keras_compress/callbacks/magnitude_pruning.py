"""`MagnitudePruning`: gradual magnitude pruning inside `model.fit`."""

import warnings

from keras import ops

from keras_compress.callbacks._masking import PruningCallback
from keras_compress.pruning import granularity as granularity_lib
from keras_compress.pruning import schedules


class MagnitudePruning(PruningCallback):
    """Prunes the smallest weights of a model while it trains.

    Add it to `model.fit` and the selected layers end training with the
    schedule's sparsity. It works on Sequential, Functional, subclassed and
    nested models alike, needs no wrapper layer and no `clone_model`: each
    pruned weight gets a `PruningMask` constraint, which Keras applies after
    every optimizer update inside the compiled train step. At the steps the
    schedule names (keyed on `optimizer.iterations`) the constraint also
    recomputes the mask from the weight magnitudes, in the graph; weights
    pruned once stay at exactly zero. Masks and the step count are saved
    with the model and in checkpoints, so `BackupAndRestore` resumes where
    the run stopped.

    On JAX, whose compiled train step runs constraints statelessly, the
    masks are updated and applied after each step instead, in
    `on_train_batch_end`, with the same result (tested against TensorFlow
    within 3e-7); `compile(steps_per_execution=...)` must then stay 1.

    After training, `keras_compress.pruning.strip_pruning(model)` removes
    the masks and leaves a plain Keras model with exact zeros.

    Prunable: `Dense`, `EinsumDense`, `Conv1D/2D/3D`, `Conv*Transpose`,
    `DepthwiseConv1D/2D`, `SeparableConv1D/2D` (both kernels), `Embedding`,
    and any layer with a `get_prunable_weights()` method returning its
    weights. Biases and normalization weights are never pruned.

    Args:
        schedule: a `PruningSchedule` (`ConstantSparsity`,
            `PolynomialDecay`) or a sparsity in [0, 1), meaning
            `ConstantSparsity(sparsity, begin_step=1)`: pruned after the
            first step, then trained with that sparsity.
        granularity: `"unstructured"` (default) or `"N:M"` such as `"2:4"`:
            every group of M consecutive weights along the input axis keeps
            N (the input dimension must be a multiple of M, and the
            schedule's final sparsity must be `1 - N/M`).
        scope: `"layer"` (default): every layer reaches the target sparsity;
            `"global"`: one magnitude threshold over all selected weights,
            so the total reaches it and layers differ.
        layers: which layers to prune: `None` (all prunable layers), a
            regular expression matched in full against layer names, a list
            of layer names, or a callable `layer -> bool`.
        skip_first: leave the model's first prunable layer dense (it often
            has few weights and much influence). Defaults to False.
        skip_last: leave the last prunable layer dense. Defaults to False.
        rewind_step: if set, when the schedule reaches its `end_step` the
            surviving weights of the pruned layers are reset to their values
            after step `rewind_step` (0: the values when training started)
            and training goes on with the final mask (weight rewinding,
            Frankle et al. 2020). Needs a schedule with an `end_step`.
        log_sparsity: add `sparsity` and `sparsity/<layer>` to the epoch
            logs (so `CSVLogger` and `TensorBoard` record them when they come
            after this callback). Defaults to True.

    Example:

    ```python
    schedule = keras_compress.pruning.PolynomialDecay(
        0.0, 0.9, begin_step=0, end_step=epochs * steps_per_epoch)
    model.fit(x, y, epochs=epochs,
              callbacks=[keras_compress.callbacks.MagnitudePruning(schedule)])
    keras_compress.pruning.strip_pruning(model)
    ```

    Reference:
        Zhu & Gupta, "To prune, or not to prune", 2017; Mishra et al.,
        "Accelerating Sparse Deep Neural Networks" (2:4), 2021.
    """

    def __init__(
        self,
        schedule,
        granularity="unstructured",
        scope="layer",
        layers=None,
        skip_first=False,
        skip_last=False,
        rewind_step=None,
        log_sparsity=True,
    ):
        super().__init__(granularity, scope, layers, skip_first, skip_last,
                         rewind_step, log_sparsity)
        self.schedule = schedules.get(schedule)
        final = self.schedule.final_sparsity()
        if isinstance(self.granularity, granularity_lib.NOutOfM):
            expected = self.granularity.final_sparsity(final)
            if abs(final - expected) > 1e-6:
                raise ValueError(
                    f"Expected a schedule ending at sparsity {expected:g} for "
                    f"granularity={self.granularity!r}. Received: schedule="
                    f"{self.schedule!r}"
                )
        if self.rewind_step is not None:
            end = self.schedule.end_step
            if end == -1 or self.rewind_step >= end:
                raise ValueError(
                    "Expected `rewind_step` < the schedule's `end_step` (the "
                    "step at which weights are rewound). Received: "
                    f"rewind_step={rewind_step}, end_step={end}"
                )

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        end = self.schedule.end_step
        done = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if end != -1 and done >= end:
            warnings.warn(
                f"MagnitudePruning: the optimizer has already taken {done} "
                f"steps, at or past the schedule's end_step={end}, so no mask "
                "will change in this fit. Schedules count "
                "`optimizer.iterations`; to prune a model trained with this "
                f"optimizer, start the schedule at begin_step={done} (or "
                "compile with a new optimizer).",
                stacklevel=2,
            )

    def _after_step(self, step):
        self._threshold_now = None
        if self.scope == "global" and self.schedule.due(step):
            # Every weight is updated by now: one threshold for all.
            self._threshold_now = self._threshold_value(self.schedule(step))
        super()._after_step(step)

    def _step_masks(self, item, pm, w, step):
        # `_hook` in Python, after the step (JAX).
        mask = pm.mask
        if self.schedule.due(step):
            mask = self._new_mask(item, pm, w, self.schedule(step), self._threshold_now)
            pm.mask.assign(mask)
        if self.rewind_step is not None and step == self.schedule.end_step:
            w = ops.convert_to_tensor(pm.snapshot)
        return w, mask

    def _hook(self, item, pm, w):
        step = self._step()
        due = self.schedule.due(step)
        self._capture_snapshot(pm, w, step)

        def update():
            sparsity = self.schedule(step)
            threshold = (self._global_threshold(step, sparsity)
                         if self.scope == "global" else None)
            new = self._new_mask(item, pm, w, sparsity, threshold)
            pm.mask.assign(new)
            return new

        mask = ops.cond(due, update, lambda: ops.cast(pm.mask, w.dtype))
        if self.rewind_step is not None:
            w = ops.cond(
                ops.equal(step, self.schedule.end_step),
                lambda: ops.cast(pm.snapshot, w.dtype),
                lambda: w,
            )
        return w, mask
