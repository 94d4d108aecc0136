"""Helpers shared by the factorization converters."""

import numpy as np

from keras_compress.factorization.factorization_report import FactorizationReport
from keras_compress.graph import check_graph_model


def check_model(model, fn_name):
    """Raises unless `model` is a built Functional or Sequential model."""
    check_graph_model(
        model, f"`{fn_name}` rebuilds the layer graph with new layers, and a "
        "subclassed model has none (build it with the Functional API, or use "
        "the factorized layers directly).")


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


def finish(model, new_model, method, rows, return_report):
    """`new_model`, or `(new_model, FactorizationReport)` with `return_report`.

    Args:
        model: The model given to the converter.
        new_model: The converted model.
        method: The report's `method` (`"low_rank"`, ...).
        rows: The report's per-layer rows.
        return_report: Whether to return the report too.
    """
    if not return_report:
        return new_model
    report = FactorizationReport(
        method=method,
        layers=rows,
        params_before=count_params(model),
        params_after=count_params(new_model),
    )
    return new_model, report


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
