"""Helpers shared by the factorization converters."""

import collections

import keras
import numpy as np

from keras_compress.quantization._rebuild import graph_of


def check_model(model, fn_name):
    """Raises unless `model` is a built Functional or Sequential model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected `model` to be a keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    if graph_of(model) is None:
        raise ValueError(
            f"Expected a Functional or Sequential model: `{fn_name}` rebuilds "
            "the layer graph with new layers, and a subclassed model has "
            f"none. Received: subclassed model '{model.name}' of class "
            f"{type(model).__name__}. Build it with the Functional API, or "
            "use the factorized layers directly."
        )


def graph_layers(model, recursive):
    """Layers of the graph of `model` in topological order.

    Returns:
        A list of `(layer, calls, nested)` with each layer once: `calls` is
        how many times the graph calls it, `nested` the name of the nested
        model holding it (None at the top level). Nested Functional or
        Sequential models are entered when `recursive` is True.
    """
    order = []
    calls = collections.Counter()
    where = {}

    def walk(m, nested):
        functional = graph_of(m)
        for depth in sorted(functional._nodes_by_depth, reverse=True):
            for node in functional._nodes_by_depth[depth]:
                op = node.operation
                if op is None or node.is_input:
                    continue
                if isinstance(op, keras.Model) and graph_of(op) is not None:
                    if recursive:
                        if id(op) not in where:
                            where[id(op)] = nested
                            walk(op, op.name)
                        continue
                calls[id(op)] += 1
                if id(op) not in where:
                    where[id(op)] = nested
                    order.append(op)

    walk(model, None)
    return [(op, calls[id(op)], where[id(op)]) for op in order]


def check_layer_names(layers, found, fn_name):
    """Returns `layers` as a list of names, checking each exists in `found`.

    Args:
        layers: None, a layer name or a list/tuple of names.
        found: `{name: layer}` of the layers of the model.
        fn_name: The calling function, for error messages.
    """
    if layers is None:
        return None
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not all(
        isinstance(n, str) for n in layers
    ):
        raise TypeError(
            "Expected `layers` to be None, a layer name or a list of layer "
            f"names. Received: layers={layers!r}"
        )
    missing = [n for n in layers if n not in found]
    if missing:
        raise ValueError(
            f"Expected `layers` to name layers of the model given to "
            f"`{fn_name}`. Received: layers={list(layers)!r}; not in the "
            f"model: {missing}. Layers: {sorted(found)}"
        )
    if len(set(layers)) != len(layers):
        raise ValueError(
            f"Expected `layers` to name each layer once. Received: "
            f"layers={list(layers)!r}"
        )
    return list(layers)


def count_params(obj):
    """Number of weight elements of a model or layer, each variable once."""
    seen = set()
    total = 0
    for w in obj.weights:
        if id(w) in seen:
            continue
        seen.add(id(w))
        total += int(np.prod(w.shape))
    return total


def build_input_shape(layer):
    """The input shape `layer` was built with."""
    config = layer.get_build_config() or {}
    shape = config.get("input_shape")
    if shape is None:
        raise ValueError(
            f"Expected layer {layer.name!r} to be built. Received: an "
            "unbuilt layer (call the model on data first)"
        )
    return tuple(shape)
