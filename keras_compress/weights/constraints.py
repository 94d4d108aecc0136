"""Stateful weight constraints carried from one weight or layer to another.

A `PruningMask` or a `ClusterWeights` holds state (the mask, the centroids)
and copies itself with `copy_for(weight)`; a rewritten layer (a copy, its
QAT drop-in) gets such copies so it keeps its zeros and clusters.
"""

import keras


def copy_constraint(constraint, weight):
    """A copy of `constraint` for `weight`, with its state.

    Stateful constraints (a `PruningMask`, a `ClusterWeights`) copy
    themselves with `copy_for(weight)`; a stateless one is rebuilt from its
    config; `None` stays `None`.
    """
    if constraint is None:
        return None
    copy_for = getattr(constraint, "copy_for", None)
    if callable(copy_for):
        return copy_for(weight)
    return keras.constraints.deserialize(keras.constraints.serialize(constraint))


def copy_constraints(old_layer, new_layer):
    """Gives `new_layer` copies of the stateful constraints of `old_layer`.

    A stateful constraint (a `PruningMask`, a `ClusterWeights`: any
    constraint with a `copy_for(variable)` method) of an `old_layer` weight
    is copied, state and all, onto the same-named weight of `new_layer`,
    and onto the layer attribute that held it (`kernel_constraint`, ...),
    so a rewritten layer (its QAT drop-in, a copy) keeps its zeros and
    clusters through later training. Weights are not copied.

    Returns:
        The number of constraints copied.
    """
    old_layers = list(old_layer._flatten_layers(include_self=True))
    new_layers = list(new_layer._flatten_layers(include_self=True))
    if len(old_layers) != len(new_layers):
        return 0
    copied = 0
    for old, new in zip(old_layers, new_layers):  # Same structure, same order.
        copied += _copy_own_constraints(old, new)
    return copied


def _own_variables(layer):
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def _copy_own_constraints(old_layer, new_layer):
    targets = {v.name: v for v in _own_variables(new_layer)}
    attributes = {id(value): name for name, value in vars(old_layer).items()
                  if getattr(value, "copy_for", None) is not None}
    copied = 0
    for variable in _own_variables(old_layer):
        constraint = getattr(variable, "constraint", None)
        target = targets.get(variable.name)
        if target is None or not callable(getattr(constraint, "copy_for", None)):
            continue
        copy = constraint.copy_for(target)
        target.constraint = copy
        if id(constraint) in attributes:
            setattr(new_layer, attributes[id(constraint)], copy)
        copied += 1
    return copied
