"""`fold_batchnorm`: merge inference-mode BatchNormalization into the layer
before it."""

import collections

import keras
import numpy as np

from keras_compress import graph
from keras_compress.graph import (
    DROP, check_graph_model, consumers, copy_layer, graph_of, nodes, rebuild,
)

_L = keras.layers

# Exact classes (a subclass may compute something else with the same
# weights) whose output channel is the last axis of the output.
_DENSE_LIKE = (_L.Dense, _L.Conv1D, _L.Conv2D, _L.Conv3D)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)


def _graphs(model, found):
    """Every distinct Functional graph of `model` and its nested models."""
    if id(model) in found:
        return
    functional = graph_of(model)
    found[id(model)] = functional
    for node in nodes(functional):
        op = node.operation
        if isinstance(op, keras.Model) and graph_of(op) is not None:
            _graphs(op, found)


def _foldable_producer(bn_node, functional, calls, users):
    """The layer whose output `bn_node` can be folded into, or None."""
    bn = bn_node.operation
    if calls[id(bn)] != 1 or len(bn_node.input_tensors) != 1:
        return None
    args, kwargs = bn_node.arguments.args, bn_node.arguments.kwargs
    if len(args) != 1 or kwargs.get("training") is True:
        return None
    (x,) = bn_node.input_tensors
    if bn.axis not in (-1, len(x.shape) - 1):
        return None
    producer = graph.producer(x)[0]
    if type(producer) not in _DENSE_LIKE + _DEPTHWISE:
        return None
    if calls[id(producer)] != 1:
        return None
    if [id(n) for n in users.get(id(x), [])] != [id(bn_node)]:
        return None
    if any(x is out for out in functional.outputs):
        return None
    if producer.activation is not keras.activations.linear:
        return None
    if getattr(producer, "data_format", "channels_last") != "channels_last":
        return None
    if getattr(producer, "lora_enabled", False):
        return None
    if getattr(producer, "quantization_mode", None) is not None:
        return None
    return producer


def _folded_weights(producer, bn):
    """`[kernel, bias]` of `producer` with `bn` (inference mode) folded in."""
    kernel = keras.ops.convert_to_numpy(producer.kernel)
    dtype = kernel.dtype
    kernel = kernel.astype(np.float64)
    if isinstance(producer, _DEPTHWISE):
        channels = kernel.shape[-2] * kernel.shape[-1]
    else:
        channels = kernel.shape[-1]

    def value(variable, default):
        if variable is None:
            return np.full(channels, default, np.float64)
        return keras.ops.convert_to_numpy(variable).astype(np.float64)

    gamma = value(bn.gamma if bn.scale else None, 1.0)
    beta = value(bn.beta if bn.center else None, 0.0)
    mean = value(bn.moving_mean, 0.0)
    variance = value(bn.moving_variance, 1.0)
    bias = value(producer.bias if producer.use_bias else None, 0.0)
    factor = gamma / np.sqrt(variance + bn.epsilon)
    if isinstance(producer, _DEPTHWISE):
        # Output channel c = input channel i * depth_multiplier + m.
        kernel = kernel * factor.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        kernel = kernel * factor
    bias = beta + (bias - mean) * factor
    return [kernel.astype(dtype), bias.astype(dtype)]


def fold_batchnorm(model, return_report=False):
    """Folds BatchNormalization layers into the layer before them.

    In inference mode a BatchNormalization computes
    `gamma * (x - mean) / sqrt(var + eps) + beta` per channel: an affine map
    that can be merged into the kernel and bias of a linear layer in front
    of it. The result computes the same outputs (up to float rounding) with
    fewer layers, and is what integer quantization and export expect. The
    input model is not changed: a new model is returned, with the same
    input and output structure, model name and layer names; every kept
    layer is a copy with the same config and weights.

    What is folded: a `BatchNormalization` over the last (channel) axis whose
    input comes straight from a `Dense`, `Conv1D`, `Conv2D`, `Conv3D`,
    `DepthwiseConv1D` or `DepthwiseConv2D` (exactly these classes) with
    `activation=None`, `channels_last`, called once in the model, and whose
    output only this BatchNormalization reads. The producer becomes the same
    class with `use_bias=True`, `kernel * gamma / sqrt(var + eps)` along the
    output channels and bias `beta + (bias - mean) * gamma / sqrt(var + eps)`
    (`gamma = 1` when `scale=False`, `beta = 0` when `center=False`); it
    keeps its name, and the BatchNormalization disappears. Nested Functional
    and Sequential models are folded inside too.

    What is kept as it is: a BatchNormalization after an activation or any
    other layer (including a producer with a nonlinear activation, a model
    `Input` or a nested model's output), after a layer whose output has
    other consumers or is a model output, after a layer or itself called at
    several places (shared weights), normalizing another axis (e.g. after a
    `channels_first` convolution), or called with `training=True`.

    A Sequential model gives a Sequential model. The new model is not
    compiled. If a folded BatchNormalization produced a model output of a
    list-structured model, the output's name (which Keras takes from the
    last layer) becomes the producer's name in a saved and reloaded copy;
    the returned model keeps the original `output_names`.

    Args:
        model: a built Functional or Sequential Keras model.
        return_report: if True, also return which pairs were folded.
            Defaults to False.

    Returns:
        The new model; with `return_report=True`, `(new_model, folded)` where
        `folded` is a list of `(producer_name, batchnorm_name)` pairs in
        graph order (nested models included).

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if `model` is a subclassed model (it has no layer graph
            to rewrite) or a Sequential model that was never built.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    >>> x = keras.layers.BatchNormalization()(x)
    >>> outputs = keras.layers.ReLU()(x)
    >>> model = keras.Model(inputs, outputs)
    >>> folded_model, folded = fold_batchnorm(model, return_report=True)
    >>> len(folded_model.layers) == len(model.layers) - 1
    True
    """
    check_graph_model(
        model, "folding batch normalization needs the layer graph to find "
        "which layer feeds each BatchNormalization (rebuild it with the "
        "Functional API).")

    graphs = {}
    _graphs(model, graphs)
    calls = collections.Counter()
    for functional in graphs.values():
        for node in nodes(functional):
            calls[id(node.operation)] += 1

    folded = []  # (producer, bn) in graph order
    for functional in graphs.values():
        users = consumers(functional)
        for node in nodes(functional):
            if type(node.operation) is not _L.BatchNormalization:
                continue
            producer = _foldable_producer(node, functional, calls, users)
            if producer is not None:
                folded.append((producer, node.operation))

    producers = {id(p): (p, bn) for p, bn in folded}
    dropped = {id(bn) for _, bn in folded}

    def replace_layer(layer):
        if id(layer) in dropped:
            return DROP
        if id(layer) in producers:
            producer, bn = producers[id(layer)]
            config = producer.get_config()
            config["use_bias"] = True
            return copy_layer(producer, config, _folded_weights(producer, bn))
        return None

    new_model = rebuild(model, replace_layer)
    names = getattr(model, "output_names", None)
    if names is not None and hasattr(new_model, "output_names"):
        new_model.output_names = list(names)
    if return_report:
        return new_model, [(p.name, bn.name) for p, bn in folded]
    return new_model
