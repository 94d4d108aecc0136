"""`PruningMask`: a weight constraint that holds the weight's mask."""

import keras
from keras import ops

from keras_compress._stateful_constraint import StatefulConstraint
from keras_compress.weights import copy_constraint


@keras.saving.register_keras_serializable(package="keras_compress")
class PruningMask(StatefulConstraint):
    """Constraint that keeps the pruned entries of a weight at zero.

    Keras applies a variable's constraint right after every optimizer
    update, inside the compiled train step, so a weight whose constraint is
    a `PruningMask` stays exactly zero where its mask is zero, with no
    wrapper layer. The mask is a non-trainable variable owned by the
    constraint; it is saved with the model (`.keras`, `save_weights`,
    `BackupAndRestore`) because the constraint sits in the layer's config
    (`kernel_constraint` and friends) and carries its own variables.

    The pruning callbacks attach, update and remove these constraints; users
    rarely build one. A constraint the layer already had keeps running first.

    Args:
        constraint: the layer's own constraint, applied before the mask
            (a constraint object, its name, or `None`).
    """

    def __init__(self, constraint=None):
        self.constraint = keras.constraints.get(constraint)
        self.mask = None
        self.snapshot = None
        # Set by pruning callbacks while they train: `hook(self, value)`
        # returns the value to mask and may update `self.mask` in-graph.
        self.hook = None

    def build(self, weight):
        """Creates an all-ones mask shaped like `weight` (once)."""
        if self.mask is None:
            name = weight.path.replace("/", "_") + "_mask"
            self.mask = self.new_variable(
                name, ops.ones(weight.shape, weight.dtype), weight.dtype
            )

    def build_snapshot(self, weight):
        """Creates the variable that remembers `weight` for rewinding."""
        if self.snapshot is None:
            name = weight.path.replace("/", "_") + "_snapshot"
            # A copy: a variable made from another's value aliases it.
            value = ops.convert_to_numpy(weight).copy()
            self.snapshot = self.new_variable(name, value, weight.dtype)

    def copy_for(self, weight):
        """An equivalent `PruningMask` for `weight` (same shape), state copied.

        Model rewrites (`quantize_model`, `fold_batchnorm`, ...) call it so
        that the copy of a pruned layer keeps its mask.
        """
        if self.mask is not None and tuple(self.mask.shape) != tuple(weight.shape):
            raise ValueError(
                f"Expected a weight of shape {tuple(self.mask.shape)} for this "
                f"mask. Received: weight '{weight.path}' of shape "
                f"{tuple(weight.shape)}"
            )
        copy = PruningMask(copy_constraint(self.constraint, weight))
        for key in ("mask", "snapshot"):
            value = getattr(self, key)
            if value is not None:
                name = weight.path.replace("/", "_") + f"_{key}"
                array = ops.convert_to_numpy(value).copy()
                setattr(copy, key, copy.new_variable(name, array, value.dtype))
        return copy

    def __call__(self, w):
        if self.constraint is not None:
            w = self.constraint(w)
        if self.mask is None:
            return w
        if self.hook is not None:
            w, mask = self.hook(self, w)
        else:
            mask = self.mask
        return w * ops.cast(mask, w.dtype)

    def sparsity(self):
        """Fraction of zeros in the mask (0.0 before it is built)."""
        if self.mask is None:
            return 0.0
        mask = ops.convert_to_numpy(self.mask)
        return float((mask == 0).mean())

    def get_config(self):
        return {"constraint": keras.constraints.serialize(self.constraint)}

    def save_own_variables(self, store):
        if self.mask is not None:
            store["mask"] = ops.convert_to_numpy(self.mask)
        if self.snapshot is not None:
            store["snapshot"] = ops.convert_to_numpy(self.snapshot)

    def load_own_variables(self, store):
        for key in ("mask", "snapshot"):
            if key not in store.keys():
                continue
            self.load_state(key, store[key][...], "pruning")
