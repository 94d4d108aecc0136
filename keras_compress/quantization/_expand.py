"""Composite keras-compress layers as chains of the Keras layers they hold.

`quantize_model` quantizes Keras's own `Dense`, `Conv2D` and
`DepthwiseConv2D`; `DepthwiseSeparableConv2D`, `LowRankDense` and
`LowRankConv2D` compute with such layers inside them. `expand_composites`
rewrites a model so that each of those is the chain of its parts (the
same weights, pruning masks and clusters), which `quantize_model` then
quantizes, fusing each BatchNormalization into its convolution.
"""

import keras

from keras_compress.graph import copy_layer, rebuild
from keras_compress.layers.factorized import (
    DepthwiseSeparableConv2D,
    LowRankConv2D,
    LowRankDense,
)

COMPOSITES = (DepthwiseSeparableConv2D, LowRankDense, LowRankConv2D)


def _part(layer, part, name, **overrides):
    config = {**part.get_config(), "name": f"{layer.name}_{name}", **overrides}
    return copy_layer(part, config)


def _activation(layer, activation, name):
    if activation is keras.activations.linear:
        return []
    return [keras.layers.Activation(activation, name=f"{layer.name}_{name}")]


def _separable_parts(layer):
    parts = [_part(layer, layer.depthwise, "depthwise")]
    if layer.depthwise_bn is not None:
        parts.append(_part(layer, layer.depthwise_bn, "depthwise_bn"))
    parts += _activation(layer, layer.depthwise_activation, "depthwise_activation")
    parts.append(_part(layer, layer.pointwise, "pointwise"))
    if layer.pointwise_bn is not None:
        parts.append(_part(layer, layer.pointwise_bn, "pointwise_bn"))
    return parts + _activation(layer, layer.activation, "activation")


def _low_rank_parts(layer):
    activation = keras.activations.serialize(layer.activation)
    return [
        _part(layer, layer.u, "u"),
        _part(layer, layer.v, "v", activation=activation),
    ]


def parts_of(layer):
    """The chain of built Keras layers computing `layer`, or None."""
    if isinstance(layer, DepthwiseSeparableConv2D):
        return _separable_parts(layer)
    if isinstance(layer, (LowRankDense, LowRankConv2D)):
        return _low_rank_parts(layer)
    return None


def has_composites(model):
    return any(
        isinstance(layer, COMPOSITES)
        for layer in model._flatten_layers(include_self=False)
    )


def expand_composites(model):
    """A copy of `model` with every composite layer replaced by its parts."""
    return rebuild(model, parts_of)
