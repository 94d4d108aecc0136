"""Attach, read, set and remove pruning masks on a model's weights."""

import numpy as np
from keras import ops

from keras_compress._constraints import set_constraints
from keras_compress.pruning.mask import PruningMask
from keras_compress.weights import prunable_weights, strategy_scope, weight_key


def attach(model, items):
    """Gives each `PrunableWeight` in `items` a `PruningMask` constraint.

    A weight that already has one (a loaded or resumed model) keeps it and
    its mask. Returns the constraints, in the order of `items`.
    """
    masks = []
    with strategy_scope(model):
        for item in items:
            pm = item.variable.constraint
            if not isinstance(pm, PruningMask):
                pm = PruningMask(pm)
            pm.build(item.variable)
            masks.append(pm)
    set_constraints(model, zip(items, masks))
    return masks


def masked_weights(model):
    """`(PrunableWeight, PruningMask)` for every masked weight of `model`."""
    return [
        (item, item.variable.constraint)
        for item in prunable_weights(model)
        if isinstance(item.variable.constraint, PruningMask)
        and item.variable.constraint.mask is not None
    ]


def get_masks(model):
    """Returns `{"<layer>/<weight>": mask as a NumPy array}` of a model.

    The keys name the same weight in a fresh copy of the model built from
    the same code, so `set_masks(copy, get_masks(model))` works.
    """
    return {
        weight_key(item): ops.convert_to_numpy(pm.mask)
        for item, pm in masked_weights(model)
    }


def set_masks(model, masks):
    """Prunes `model` with given masks and keeps them fixed in training.

    Useful to train a known sparsity pattern from a new initialization (the
    random re-initialization control of the lottery-ticket experiments).

    Args:
        model: a built Keras model.
        masks: `{"<layer>/<weight>": array}` as returned by `get_masks`; 0
            marks a pruned weight.

    Returns:
        The model, its weights multiplied by the masks.
    """
    items = {weight_key(item): item for item in prunable_weights(model)}
    unknown = sorted(set(masks) - set(items))
    if unknown:
        raise ValueError(
            f"Expected `masks` keys to name prunable weights of model "
            f"'{model.name}' {sorted(items)}. Received unknown keys: {unknown}"
        )
    for path, value in masks.items():
        shape = tuple(items[path].variable.shape)
        if np.shape(value) != shape:
            raise ValueError(
                f"Expected the mask for '{path}' to have shape {shape}. "
                f"Received: shape {np.shape(value)}"
            )
    chosen = [items[path] for path in masks]
    for item, pm in zip(chosen, attach(model, chosen)):
        value = np.asarray(masks[weight_key(item)]) != 0
        pm.mask.assign(value.astype(item.variable.dtype))
        item.variable.assign(item.variable * pm.mask)
    return model


def strip_pruning(model):
    """Removes every pruning mask from `model`, leaving exact zeros.

    Each masked weight is multiplied by its mask one last time and gets
    back the constraint it had before pruning, so the model is a plain
    Keras model: it saves and loads without keras_compress and exports to
    TFLite (`to_tflite(model, sparse=True)` stores the zeros compactly).
    Changes `model` in place.

    Returns:
        The model.

    Example:

    >>> model.fit(x, y, callbacks=[MagnitudePruning(0.8)])  # doctest: +SKIP
    >>> strip_pruning(model).save("sparse.keras")  # doctest: +SKIP
    """
    masked = masked_weights(model)
    for item, pm in masked:
        item.variable.assign(item.variable * ops.cast(pm.mask, item.variable.dtype))
    set_constraints(model, [(item, pm.constraint) for item, pm in masked])
    return model
