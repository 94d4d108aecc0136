"""Finding the prunable weights of a model and the layers a user selected."""

import collections
import contextlib
import re

import keras

PrunableWeight = collections.namedtuple(
    "PrunableWeight", ["layer", "variable", "constraint_attr", "axis"]
)
PrunableWeight.__doc__ = """A weight that magnitude pruning may mask.

Fields:
    layer: the layer owning the weight.
    variable: the weight (a `keras.Variable`).
    constraint_attr: the layer attribute that holds the weight's constraint
        and goes into its config (`"kernel_constraint"`, ...), or `None`.
    axis: the input (reduction) axis, along which N:M groups are formed.
"""

_L = keras.layers
# (layer classes, [(weight attribute, constraint attribute, input axis)]).
# Subclasses come before their parents.
_KNOWN = (
    ((_L.SeparableConv1D, _L.SeparableConv2D), [
        ("depthwise_kernel", "depthwise_constraint", -2),
        ("pointwise_kernel", "pointwise_constraint", -2),
    ]),
    ((_L.DepthwiseConv1D, _L.DepthwiseConv2D), [
        ("kernel", "depthwise_constraint", -2),
    ]),
    ((_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose), [
        ("kernel", "kernel_constraint", -1),
    ]),
    ((_L.Conv1D, _L.Conv2D, _L.Conv3D, _L.Dense), [
        ("kernel", "kernel_constraint", -2),
    ]),
    ((_L.Embedding,), [("embeddings", "embeddings_constraint", -1)]),
)

PRUNABLE_LAYERS = tuple(c.__name__ for classes, _ in _KNOWN for c in classes) + (
    "EinsumDense",
)


def _einsum_axis(layer):
    # The kernel's reduction axis: a letter shared with the input and
    # missing from the output. With several, the last one.
    inputs, output = layer.equation.split("->")
    x_spec, k_spec = inputs.split(",")
    axes = [i for i, c in enumerate(k_spec) if c in x_spec and c not in output]
    return axes[-1] if axes else 0


def _custom_weights(layer):
    weights = layer.get_prunable_weights()
    result = []
    for variable in weights:
        if not isinstance(variable, keras.Variable) or not variable.trainable:
            raise ValueError(
                "Expected `get_prunable_weights()` of layer "
                f"'{layer.name}' to return trainable keras.Variables. "
                f"Received: {variable!r}"
            )
        name = variable.path.split("/")[-1]
        attr = f"{name}_constraint"
        if not hasattr(layer, attr):
            attr = None
        axis = -2 if len(variable.shape) >= 2 else 0
        result.append(PrunableWeight(layer, variable, attr, axis))
    return result


def layer_weights(layer):
    """The prunable weights of one layer (an empty list if it has none)."""
    if not layer.built:
        return []
    if callable(getattr(layer, "get_prunable_weights", None)):
        return _custom_weights(layer)
    if isinstance(layer, _L.EinsumDense):
        if getattr(layer, "quantization_mode", None):
            return []
        return [PrunableWeight(layer, layer.kernel, "kernel_constraint",
                               _einsum_axis(layer))]
    for classes, specs in _KNOWN:
        if isinstance(layer, classes):
            if getattr(layer, "quantization_mode", None):
                return []
            return [
                PrunableWeight(layer, getattr(layer, w), c, axis)
                for w, c, axis in specs
            ]
    return []


def _leaf_layers(model):
    seen, layers = set(), []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if id(layer) not in seen:
            seen.add(id(layer))
            layers.append(layer)
    return layers


def prunable_weights(model):
    """All prunable weights of `model` (nested and subclassed too), in order.

    A layer with `get_prunable_weights()` decides for itself; the weights
    of layers inside it are not listed twice.
    """
    seen, result = set(), []
    for layer in _leaf_layers(model):
        for item in layer_weights(layer):
            if id(item.variable) not in seen:
                seen.add(id(item.variable))
                result.append(item)
    return result


def _describe(selector):
    if callable(selector) and not isinstance(selector, str):
        return getattr(selector, "__name__", repr(selector))
    return repr(selector)


def select_weights(model, layers=None, skip_first=False, skip_last=False):
    """The prunable weights of the layers a user selected.

    Args:
        model: a built Keras model.
        layers: `None` (every prunable layer), a regular expression matched
            in full against layer names, a list of layer names, or a
            callable taking a layer and returning a bool.
        skip_first: leave the first prunable layer dense.
        skip_last: leave the last prunable layer dense.

    Raises:
        ValueError: when the model has no prunable weight, a name or regex
            selects nothing, or the selection is empty.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected a keras.Model. Received: model of type {type(model).__name__}"
        )
    candidates = prunable_weights(model)
    if not candidates:
        raise ValueError(
            f"Expected model '{model.name}' to have at least one prunable "
            f"layer ({', '.join(PRUNABLE_LAYERS)}, or a layer with "
            "`get_prunable_weights()`), built. Received: layers "
            f"{[layer.name for layer in _leaf_layers(model)]}"
        )
    order = []
    for item in candidates:
        if item.layer not in order:
            order.append(item.layer)
    skipped = set()
    if skip_first:
        skipped.add(id(order[0]))
    if skip_last:
        skipped.add(id(order[-1]))
    names = [layer.name for layer in order]
    if layers is None:
        chosen = lambda layer: True  # noqa: E731
    elif isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as e:
            raise ValueError(
                f"Expected `layers` to be a valid regular expression. "
                f"Received: layers={layers!r} ({e})"
            ) from None
        if not any(pattern.fullmatch(n) for n in names):
            raise ValueError(
                "Expected `layers` to match the name of at least one "
                f"prunable layer {names}. Received: layers={layers!r}"
            )
        chosen = lambda layer: bool(pattern.fullmatch(layer.name))  # noqa: E731
    elif isinstance(layers, (list, tuple, set)):
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(
                f"Expected `layers` to name prunable layers of the model "
                f"{names}. Received: layers={list(layers)!r}; not found: "
                f"{missing}"
            )
        wanted = set(layers)
        chosen = lambda layer: layer.name in wanted  # noqa: E731
    elif callable(layers):
        chosen = layers
    else:
        raise ValueError(
            "Expected `layers` to be None, a regex string, a list of layer "
            f"names or a callable. Received: layers={layers!r}"
        )
    selected = [
        item
        for item in candidates
        if id(item.layer) not in skipped and chosen(item.layer)
    ]
    if not selected:
        raise ValueError(
            f"Expected the selection to leave at least one prunable layer "
            f"of {names}. Received: layers={_describe(layers)}, "
            f"skip_first={skip_first}, skip_last={skip_last}"
        )
    return selected


def weight_key(item):
    """`"<layer name>/<weight name>"`: names a weight across model copies."""
    return f"{item.layer.name}/{item.variable.name}"


def strategy_scope(model):
    """The model's distribution strategy scope (TensorFlow), else a no-op."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
