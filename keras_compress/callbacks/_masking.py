"""Shared part of the pruning callbacks: selection, masks and logging."""

import keras
from keras import ops

from keras_compress._checks import check_choice
from keras_compress._constraints import after_steps_hook
from keras_compress._constraints import check_fit_model
from keras_compress._constraints import updates_in_step
from keras_compress.pruning import granularity as granularity_lib
from keras_compress.pruning import masking
from keras_compress.weights import select_weights, strategy_scope

_SCOPES = ("layer", "global")


def check_scope(scope):
    return check_choice("scope", scope, _SCOPES)


def check_rewind_step(rewind_step):
    if rewind_step is None:
        return None
    if isinstance(rewind_step, bool) or not isinstance(rewind_step, int) or (
        rewind_step < 0
    ):
        raise ValueError(
            "Expected `rewind_step` to be None or an integer >= 0. "
            f"Received: rewind_step={rewind_step!r}"
        )
    return rewind_step


def _unchanged(pm, w):
    # JAX: masks are applied after each step, outside the compiled step.
    return w, ops.ones((), w.dtype)


def log_name(item, items):
    """`sparsity/<layer>` or, for layers with several weights, `/<weight>`."""
    shared = sum(other.layer is item.layer for other in items) > 1
    name = f"sparsity/{item.layer.name}"
    return f"{name}/{item.variable.path.split('/')[-1]}" if shared else name


class PruningCallback(keras.callbacks.Callback):
    """Base of callbacks that train a model through `PruningMask`s.

    On `set_model` (before the train step is traced) it selects the weights,
    attaches masks and installs `_hook` on each; on `on_train_end` it
    removes the hooks, so later training keeps the masks fixed. Sparsity
    per layer and in total goes into the epoch logs (put this callback
    before `CSVLogger` or `TensorBoard` in the list so they see it).

    JAX runs constraints statelessly inside its compiled train step, so
    there the masks cannot change in the step. On JAX the constraint
    leaves the weights alone during `fit`, and after every step (in
    `on_train_batch_end`, with the model's state synced back from the
    compiled loop) `_after_step` updates the masks in Python and masks the
    weights: the same arithmetic, at the same step, as the constraint's.
    """

    def __init__(self, granularity, scope, layers, skip_first, skip_last,
                 rewind_step, log_sparsity):
        super().__init__()
        self.granularity = granularity_lib.get(granularity)
        self.scope = check_scope(scope)
        if self.scope == "global" and isinstance(
            self.granularity, granularity_lib.NOutOfM
        ):
            raise ValueError(
                "Expected scope='layer' with an N:M granularity (the pattern "
                "is decided inside each group of M). Received: "
                f"granularity={self.granularity!r}, scope='global'"
            )
        self.layers = layers
        self.skip_first = skip_first
        self.skip_last = skip_last
        self.rewind_step = check_rewind_step(rewind_step)
        self.log_sparsity = log_sparsity
        self.items = []
        self.masks = []
        self._attached_to = None
        self._after_steps = False
        after_steps_hook(self, self._after_train_batch)

    def set_model(self, model):
        super().set_model(model)
        if self._attached_to is model:
            return
        check_fit_model(model, type(self).__name__, "attaches masks")
        self._after_steps = not updates_in_step(model, type(self).__name__, "masks")
        items = select_weights(
            model, self.layers, self.skip_first, self.skip_last
        )
        for item in items:
            self.granularity.check(
                tuple(item.variable.shape),
                item.axis,
                f"layer '{item.layer.name}' weight "
                f"'{item.variable.path.split('/')[-1]}'",
            )
        self.items = items
        self.masks = masking.attach(model, items)
        if self.rewind_step is not None:
            with strategy_scope(model):
                for item, pm in zip(items, self.masks):
                    pm.build_snapshot(item.variable)
        if self.scope == "global":
            with strategy_scope(model):
                self._threshold = keras.Variable(
                    -1.0, trainable=False, name="pruning_threshold",
                    synchronization="on_read", aggregation="only_first_replica",
                )
                self._threshold_step = keras.Variable(
                    -1, dtype="int32", trainable=False,
                    name="pruning_threshold_step",
                    synchronization="on_read", aggregation="only_first_replica",
                )
        for item, pm in zip(items, self.masks):
            pm.hook = _unchanged if self._after_steps else self._make_hook(item)
        self._attached_to = model

    def _make_hook(self, item):
        def hook(pm, w):
            return self._hook(item, pm, ops.convert_to_tensor(w))

        return hook

    def _hook(self, item, pm, w):
        raise NotImplementedError

    def _after_train_batch(self, batch, logs=None):
        # JAX only (`after_steps_hook`).
        if self._after_steps:
            self.model.jax_state_sync()  # the compiled loop's state, to variables
            step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
            self._after_step(step)

    def _after_step(self, step):
        """JAX: updates the masks after train step `step` and masks the weights."""
        for item, pm in zip(self.items, self.masks):
            w = ops.convert_to_tensor(item.variable)
            if self.rewind_step and step == self.rewind_step:
                pm.snapshot.assign(w)
            w, mask = self._step_masks(item, pm, w, step)
            item.variable.assign(w * ops.cast(mask, w.dtype))

    def _step_masks(self, item, pm, w, step):
        """JAX: `(weight, mask)` after step `step` (default: mask unchanged)."""
        return w, pm.mask

    def _step(self):
        # Constraints run before the optimizer counts the update, so the
        # step that just happened is `iterations + 1`.
        return ops.cast(self.model.optimizer.iterations, "int32") + 1

    def _capture_snapshot(self, pm, w, step):
        """In-graph: remember `w` at `rewind_step` (step 0: at attach time)."""
        if not self.rewind_step:
            return

        def capture():
            pm.snapshot.assign(w)
            return ops.convert_to_tensor(0)

        ops.cond(ops.equal(step, self.rewind_step), capture,
                 lambda: ops.convert_to_tensor(0))

    def _threshold_value(self, sparsity):
        """The magnitude under which weights go, over all selected weights."""
        scores = [
            ops.reshape(
                ops.cast(
                    ops.abs(item.variable)
                    * ops.cast(pm.mask, item.variable.dtype),
                    "float32",
                ),
                (-1,),
            )
            for item, pm in zip(self.items, self.masks)
        ]
        flat = ops.sort(ops.concatenate(scores))
        count = ops.cast(ops.round(sparsity * flat.shape[0]), "int32")
        return ops.where(
            ops.greater(count, 0),
            ops.take(flat, ops.maximum(count - 1, 0)),
            -1.0,
        )

    def _global_threshold(self, step, sparsity):
        """In-graph `_threshold_value`, computed once per step.

        The first mask constraint that runs in a step computes it (all
        weights are updated by then) and the others reuse it.
        """
        def compute():
            value = self._threshold_value(sparsity)
            self._threshold.assign(value)
            self._threshold_step.assign(step)
            return value

        return ops.cond(
            ops.not_equal(ops.convert_to_tensor(self._threshold_step), step),
            compute,
            lambda: ops.convert_to_tensor(self._threshold),
        )

    def _new_mask(self, item, pm, w, sparsity, threshold=None):
        """Mask of `w` at `sparsity`; with a global `threshold`, by it."""
        score = ops.abs(w) * ops.cast(pm.mask, w.dtype)
        if threshold is not None:
            return self.granularity.threshold_mask(
                ops.cast(score, "float32"), threshold, item.axis
            )
        return self.granularity.mask(score, sparsity, item.axis)

    def sparsity_logs(self):
        """`{log name: sparsity}` of every selected weight and in total."""
        logs, zeros, total = {}, 0, 0
        for item, pm in zip(self.items, self.masks):
            value = pm.sparsity()
            logs[log_name(item, self.items)] = value
            size = int(ops.size(pm.mask))
            zeros += round(value * size)
            total += size
        logs["sparsity"] = zeros / total if total else 0.0
        return logs

    def on_epoch_end(self, epoch, logs=None):
        if self.log_sparsity and logs is not None:
            logs.update(self.sparsity_logs())

    def on_train_end(self, logs=None):
        for pm in self.masks:
            pm.hook = None
        if self.model is not None:
            self.model.train_function = None
        self._attached_to = None
