"""`prune_channels`: remove filters and neurons, return a smaller model."""

import math

import keras
import numpy as np

from keras_compress._checks import check_choice
from keras_compress._checks import check_int
from keras_compress._checks import check_number
from keras_compress.graph import rebuild
from keras_compress.pruning.channel_report import ChannelReport
from keras_compress.pruning.compensation import fold_removed
from keras_compress.pruning.criteria import L1Norm
from keras_compress.pruning.criteria.base import Criterion
from keras_compress.pruning.graph import DEPTHWISE, PRODUCERS, DependencyGraph

_L = keras.layers
_SCOPES = ("layer", "global")


def _check_args(ratio, threshold, scope, min_channels, round_to, criterion):
    if (ratio is None) == (threshold is None):
        raise ValueError(
            "Expected exactly one of `ratio` and `threshold`. Received: "
            f"ratio={ratio!r}, threshold={threshold!r}"
        )
    if ratio is not None:
        check_number("ratio", ratio, "a number in [0, 1)", lambda v: 0 <= v < 1)
    if threshold is not None:
        check_number("threshold", threshold, "a number")
    check_choice("scope", scope, _SCOPES)
    if min_channels is not None:
        check_int("min_channels", min_channels, 1)
    check_int("round_to", round_to, 1)
    if not isinstance(criterion, Criterion):
        raise TypeError(
            "Expected `criterion` to be a Criterion (L1Norm(), L2Norm(), "
            "BatchNormScale(), APoZ(data), Taylor(data)). Received: "
            f"criterion={criterion!r}"
        )


def _choose(graph, scores, ratio, threshold, scope, min_channels, round_to):
    """Returns the set of channel classes to remove."""
    groups = [g for g in graph.groups if g.prunable]
    ranked = {}
    for g in groups:
        classes = [c for c in graph.classes(g.index) if c in scores]
        ranked[g.index] = sorted(classes, key=lambda c: (scores[c], c))
    remove = {}
    if threshold is not None:
        for g in groups:
            remove[g.index] = [c for c in ranked[g.index] if scores[c] < threshold]
    elif scope == "layer":
        for g in groups:
            remove[g.index] = ranked[g.index][: int(round(ratio * g.channels))]
    else:
        pool = sorted(
            ((scores[c], c, g.index) for g in groups for c in ranked[g.index]),
        )
        total = len(pool)  # the channels the criterion scores
        for g in groups:
            remove[g.index] = []
        for _, c, index in pool[: int(round(ratio * total))]:
            remove[index].append(c)
    removed = set()
    for g in groups:
        chosen = remove[g.index]
        floor = min_channels if min_channels is not None else 1
        if min_channels is not None and min_channels > g.channels:
            raise ValueError(
                f"Expected `min_channels` <= the channels of every pruned "
                f"layer. Received: min_channels={min_channels}, but layers "
                f"{', '.join(g.layers)} have {g.channels} channels"
            )
        keep = g.channels - len(chosen)
        if keep == 0 and min_channels is None:
            raise ValueError(
                f"Expected pruning to leave at least one channel in every "
                f"layer. Received: ratio={ratio}, threshold={threshold}, "
                f"which would remove all {g.channels} channels of layers "
                f"{', '.join(g.layers)}. Lower it or set `min_channels`."
            )
        target = max(keep, floor)
        target = min(g.channels, int(math.ceil(target / round_to)) * round_to)
        # Give back the best of the chosen channels until `target` remain.
        chosen = chosen[: max(0, g.channels - target)]
        removed.update(chosen)
    return removed


def _keep(graph, labels, removed):
    return np.array([graph.class_of(l) not in removed for l in labels], bool)


def _weights(layer, change):
    """The layer's weights as arrays, with a compensation change applied."""
    weights = [np.array(keras.ops.convert_to_numpy(w)) for w in layer.weights]
    for key, delta in (change or {}).items():
        names = [w.name for w in layer.weights]
        index = names.index(key)
        weights[index] = (weights[index] + delta).astype(weights[index].dtype)
    return weights


def _slice_weights(layer, ins_keep, out_keep, weights):
    """The layer's weights with removed input and output channels dropped."""
    if not weights:
        return []
    in_keep = ins_keep[0] if ins_keep else None
    if isinstance(layer, (_L.SeparableConv1D, _L.SeparableConv2D)):
        depthwise, pointwise, *bias = weights
        rep = np.repeat(in_keep, layer.depth_multiplier)
        result = [depthwise[..., in_keep, :], pointwise[..., rep, :][..., out_keep]]
        return result + [b[out_keep] for b in bias]
    if isinstance(layer, PRODUCERS):
        kernel, *bias = weights
        if "Transpose" in type(layer).__name__:
            kernel = kernel[..., out_keep, :][..., in_keep]
        else:
            kernel = kernel[..., in_keep, :][..., out_keep]
        return [kernel] + [b[out_keep] for b in bias]
    if isinstance(layer, DEPTHWISE):
        kernel, *bias = weights
        rep = np.repeat(in_keep, layer.depth_multiplier)
        return [kernel[..., in_keep, :]] + [b[rep] for b in bias]
    # Per-channel layers (BatchNormalization, PReLU): the channel axis last.
    return [w[..., in_keep] for w in weights]


def _config(layer, out_keep):
    config = layer.get_config()
    if out_keep is not None and not out_keep.all():
        key = "units" if isinstance(layer, _L.Dense) else "filters"
        config[key] = int(out_keep.sum())
    return config


def prune_channels(
    model,
    ratio=None,
    threshold=None,
    criterion=None,
    scope="layer",
    min_channels=None,
    round_to=1,
    compensate=True,
):
    """Removes the least important channels; returns a smaller model.

    Builds the model's `DependencyGraph`, scores every coupled channel set
    with `criterion`, removes the lowest-scoring ones, and returns a new
    Keras model with fewer filters and neurons and the surviving weights
    copied. The input model is not changed. Channels that reach a model
    output, or a layer the graph cannot reason about, are kept.

    Args:
        model: a built Functional or Sequential Keras model.
        ratio: fraction of channels to remove, in [0, 1): of every channel
            group (`scope="layer"`) or of all prunable channels ranked by
            their scores (`scope="global"`).
        threshold: instead of a ratio, remove every channel scoring below
            this value (with `BatchNormScale`: one global threshold on
            |gamma|, as network slimming does).
        criterion: a `Criterion`; defaults to `L1Norm()`.
        scope: `"layer"` (default) or `"global"`, for `ratio`.
        min_channels: keep at least this many channels in each group; by
            default pruning that would empty a layer is an error.
        round_to: round the channels kept up to a multiple of this (8 suits
            fast kernels). Defaults to 1.
        compensate: fold the expected output of each removed channel (its
            BatchNorm offset through the activation, ...) into the bias of
            the layers that read it, or into the moving mean of the
            BatchNorm after a bias-free one. Exact for channels whose BN
            scale is zero (network slimming); a first-order estimate
            otherwise. Defaults to True.

    Returns:
        `(pruned_model, report)`: the new model and a `ChannelReport` of
        channels, parameters and MACs per layer before and after.

    Example:

    >>> pruned, report = prune_channels(model, ratio=0.5)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    criterion = L1Norm() if criterion is None else criterion
    _check_args(ratio, threshold, scope, min_channels, round_to, criterion)
    graph = DependencyGraph(model)
    scores = criterion.scores(graph)
    removed = _choose(graph, scores, ratio, threshold, scope, min_channels, round_to)

    plans = {}
    for layer, ins, out in graph.layer_entries():
        if id(layer) in graph.kept_whole:
            continue
        ins_keep = [_keep(graph, l, removed) for l in ins]
        out_keep = _keep(graph, out, removed) if out is not None else None
        plans[id(layer)] = (ins_keep, out_keep)

    def clone(layer):
        plan = plans.get(id(layer))
        if isinstance(layer, keras.Model):
            # A nested model: new inputs with the surviving channels, then
            # the same cloning inside.
            inputs = [
                keras.Input(tuple(x.shape[1:-1]) + (int(keep.sum()),),
                            dtype=x.dtype, name=x.name)
                for x, keep in zip(layer.inputs, plan[0])
            ]
            if len(inputs) == 1:
                inputs = inputs[0]
            return rebuild(layer, clone, inputs=inputs)
        out_keep = plan[1] if plan else None
        return layer.__class__.from_config(_config(layer, out_keep))

    pruned = rebuild(model, clone)
    changes = fold_removed(graph, removed) if compensate else {}
    _copy_weights(model, pruned, plans, changes)
    return pruned, ChannelReport.compare(model, pruned, graph, plans)


def _copy_weights(old_model, new_model, plans, changes):
    for old in old_model.layers:
        if not old.weights:
            continue
        new = new_model.get_layer(old.name)
        if isinstance(old, keras.Model):
            _copy_weights(old, new, plans, changes)
            continue
        weights = _weights(old, changes.get(id(old)))
        plan = plans.get(id(old))
        if plan is None:
            new.set_weights(weights)
            continue
        ins_keep, out_keep = plan
        new.set_weights(_slice_weights(old, ins_keep, out_keep, weights))
