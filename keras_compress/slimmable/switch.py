"""Reading and switching the active width of a slimmable model."""

import contextlib

import keras
from keras import ops

from keras_compress.layers.slimmable.base_slimmable import SlimmableLayer
from keras_compress.layers.slimmable.base_slimmable import width_index


def _check_model(model):
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "Expected `model` to be a keras.Model (or layer) with slimmable "
            f"layers. Received: model of type {type(model).__name__}"
        )


def slimmable_layers(model):
    """The slimmable layers of `model` (nested models included), in order.

    Args:
        model: A `keras.Model` or layer.

    Returns:
        A list of `SlimmableLayer`s (empty if there are none).
    """
    _check_model(model)
    found = list(model._flatten_layers(include_self=True, recursive=True))
    layers, seen = [], set()
    for layer in found:
        if isinstance(layer, SlimmableLayer) and id(layer) not in seen:
            seen.add(id(layer))
            layers.append(layer)
    return layers


def _layers_or_raise(model):
    layers = slimmable_layers(model)
    if not layers:
        raise ValueError(
            "Expected a model with slimmable layers (SlimmableConv2D, "
            "SlimmableDense, SwitchableBatchNormalization). Received: "
            f"model '{model.name}' without any"
        )
    return layers


def model_widths(model):
    """The widths every slimmable layer of `model` can run at, sorted.

    Args:
        model: A `keras.Model` with slimmable layers.

    Returns:
        A tuple of floats ending with 1.0.

    Raises:
        ValueError: if `model` has no slimmable layers.
    """
    layers = _layers_or_raise(model)
    common = list(layers[0].width_multipliers)
    for layer in layers[1:]:
        common = [w for w in common
                  if width_index(layer.width_multipliers, w) is not None]
    return tuple(common)


def _check_width(model, width, layers):
    widths = model_widths(model)
    if width_index(widths, width) is None:
        raise ValueError(
            f"Expected `width` to be one of the widths of model "
            f"'{model.name}': {list(widths)}. Received: width={width!r}"
        )
    for layer in layers:
        if not layer.built:
            raise ValueError(
                f"Expected a built model: layer '{layer.name}' of model "
                f"'{model.name}' is not built yet. Call the model on data (or "
                "create it with keras.Input) first."
            )
    return float(widths[width_index(widths, width)])


def set_width(model, width):
    """Makes every slimmable layer of `model` compute at `width`.

    The width is held by a non-trainable variable per layer and read inside
    the graph, so compiled functions (`predict`, `evaluate`, a
    `tf.function`) switch without retracing.

    Args:
        model: A built `keras.Model` with slimmable layers.
        width: One of `model_widths(model)`.

    Raises:
        ValueError: if `model` has no slimmable layers or `width` is not one
            of its widths (the model is then left unchanged).

    Example:

    >>> import keras
    >>> from keras_compress.layers.slimmable import SlimmableDense
    >>> model = keras.Sequential([keras.Input((4,)), SlimmableDense(8)])
    >>> set_width(model, 0.5)
    >>> get_width(model)
    0.5
    """
    layers = _layers_or_raise(model)
    width = _check_width(model, width, layers)
    for layer in layers:
        layer.width_index.assign(width_index(layer.width_multipliers, width))


def get_width(model):
    """The width all slimmable layers of `model` compute at.

    Raises:
        ValueError: if `model` has no slimmable layers, is not built, or its
            layers are at different widths (call `set_width`).
    """
    layers = _layers_or_raise(model)
    widths = set()
    for layer in layers:
        if not layer.built:
            raise ValueError(
                f"Expected a built model: layer '{layer.name}' of model "
                f"'{model.name}' is not built yet."
            )
        index = int(ops.convert_to_numpy(layer.width_index))
        widths.add(layer.width_multipliers[index])
    if len(widths) != 1:
        raise ValueError(
            f"Expected the slimmable layers of model '{model.name}' to share "
            f"one width; call set_width(model, width). Received: widths "
            f"{sorted(widths)}"
        )
    return widths.pop()


def _snapshot(layers):
    return [(layer, int(ops.convert_to_numpy(layer.width_index))) for layer in layers]


def _restore(snapshot):
    for layer, index in snapshot:
        layer.width_index.assign(index)


@contextlib.contextmanager
def width(model, width):
    """Context manager: `model` computes at `width` inside the block.

    The previous width of every slimmable layer comes back when the block
    exits, also on an error.

    Example:

    >>> import keras, numpy as np
    >>> from keras_compress.layers.slimmable import SlimmableDense
    >>> model = keras.Sequential([keras.Input((4,)), SlimmableDense(8)])
    >>> with width(model, 0.25):
    ...     y = model(np.ones((1, 4), "float32"))
    >>> get_width(model)
    1.0
    """
    layers = _layers_or_raise(model)
    _check_width(model, width, layers)
    snapshot = _snapshot(layers)
    set_width(model, width)
    try:
        yield model
    finally:
        _restore(snapshot)
