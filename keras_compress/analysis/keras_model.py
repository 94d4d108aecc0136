"""Per-layer statistics of a Keras model: parameters, non-zeros and MACs.

MAC conventions (per inference at batch size 1; one MAC is one
multiply(-accumulate); bias adds and plain element-wise adds cost nothing):

- `Dense`: `prod(input dims except batch) * units`, i.e. rows * in * units.
- `EinsumDense`: the product of the sizes of all distinct equation indices
  (batch taken as 1).
- `Conv1D/2D/3D` (and subclasses): `prod(output spatial) * prod(kernel_size)
  * (in_channels / groups) * filters`.
- `DepthwiseConv1D/2D`: `prod(output spatial) * prod(kernel_size) *
  in_channels * depth_multiplier`.
- `SeparableConv1D/2D`: the depthwise part above plus `prod(output spatial) *
  in_channels * depth_multiplier * filters`.
- `Conv1DTranspose/2D/3D`: `prod(input spatial) * prod(kernel_size) *
  in_channels * filters`.
- `BatchNormalization`, `LayerNormalization`: one MAC per output element
  (`y = x * scale + shift`).
- `MaxPooling*`/`AveragePooling*`: `output elements * prod(pool_size)`.
- `GlobalAveragePooling*`/`GlobalMaxPooling*`: number of input elements.
- Every other layer: 0 (activations, `Add`, `Flatten`, `Dropout`, `Reshape`,
  recurrent and attention layers, custom leaf layers, ...).

Layers that are Keras models (Functional, Sequential, subclassed) and custom
layers holding sublayers are expanded: their sublayers become rows named
`"outer/inner"`; weights a container owns directly get a row of its own.

Parameters are all the weights of a layer (trainable and non-trainable, e.g.
`BatchNormalization` moving statistics), each variable counted once even if
shared.

Shapes: for Functional and Sequential models they come from the symbolic
graph (no computation). When the model contains a subclassed model or a custom
container layer, the model is run once on zeros of batch size 1 (its input
shape taken from the inputs of a Functional model or from the shape it was
built or first called with) while the shapes each layer sees are recorded; a
layer called several times adds up the MACs of every call. When no shape is
known (model never built with a shape, dynamic spatial dimensions), params are
still reported for every layer and MACs are `None` for the layers whose MACs
depend on shapes.
"""

import keras
import numpy as np

from keras_compress import graph
from keras_compress.analysis._layer_macs import KNOWN
from keras_compress.analysis._layer_macs import call_macs
from keras_compress.analysis._layer_shapes import symbolic_records
from keras_compress.analysis._layer_shapes import trace_eager
from keras_compress.analysis.summary import LayerStats
from keras_compress.analysis.summary import Summary
from keras_compress.analysis.summary import make_total

_L = keras.layers


def summarize_keras(model):
    """Returns the `Summary` of a built Keras model.

    Args:
        model: A built `keras.Model`.

    Returns:
        A `Summary` with `source="keras"` and one row per layer.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected `model` to be a keras.Model. "
            f"Received: model of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "Expected `obj` to be a built Keras model (call it on data, call "
            "`build(input_shape)` or create it with `keras.Input`). "
            f"Received: obj={model.name!r} (not built)"
        )
    records = None
    if _needs_trace(model):
        records = trace_eager(model)
    walker = _Walker(records)
    walker.walk_container(model, "", 1)
    rows = walker.rows
    return Summary(
        source="keras",
        name=model.name,
        rows=rows,
        totals=make_total(rows, with_stored=False),
        file_bytes=None,
    )


# --------------------------------------------------------------------------
# The layer tree.


def _children(layer):
    if isinstance(layer, keras.Model):
        found = layer.layers
    else:
        found = layer._flatten_layers(include_self=False, recursive=False)
    return [c for c in found if not isinstance(c, _L.InputLayer)]


def _is_container(layer):
    """True for layers whose sublayers become rows of their own."""
    if isinstance(layer, keras.Model):
        return True
    if isinstance(layer, KNOWN):
        return False
    if type(layer).__module__.startswith("keras."):
        return False  # Built-in wrappers (RNN, Bidirectional, ...) are leaves.
    return bool(_children(layer))


def _needs_trace(layer):
    """True if some container in the tree has no symbolic graph."""
    if not _is_container(layer):
        return False
    if not graph.has_graph(layer):
        return True
    return any(_needs_trace(c) for c in _children(layer))


# --------------------------------------------------------------------------
# Rows.


class _Walker:
    def __init__(self, eager_records):
        self.eager = eager_records
        self.rows = []
        self.seen = set()

    def _take_weights(self, weights):
        params = 0
        nonzeros = 0
        for w in weights:
            if id(w) in self.seen:
                continue
            self.seen.add(id(w))
            value = np.asarray(keras.ops.convert_to_numpy(w))
            params += int(value.size)
            nonzeros += int(np.count_nonzero(value))
        return params, nonzeros

    def walk_container(self, layer, prefix, multiplier, calls=None):
        """Adds rows for the sublayers of a container layer.

        `calls` are the records of the container itself in its parent, used
        for the output shape of the row of weights it owns directly.
        """
        if self.eager is not None:
            records = self.eager
        elif graph.has_graph(layer):
            records = symbolic_records(layer)
        else:
            records = {}
        children = _children(layer)
        for child in children:
            name = prefix + child.name
            calls = records.get(id(child))
            if _is_container(child):
                inner = multiplier
                if self.eager is None and calls:
                    inner = multiplier * len(calls)
                self.walk_container(child, name + "/", inner, calls)
            else:
                self.add_leaf(child, name, calls, multiplier)
        # Weights the container holds itself (not through a sublayer).
        own = [w for w in layer.weights if id(w) not in self.seen]
        if own:
            params, nonzeros = self._take_weights(own)
            self.rows.append(LayerStats.build(
                prefix.rstrip("/") or layer.name, type(layer).__name__,
                _first_output_shape(calls), params, nonzeros, 0,
            ))

    def add_leaf(self, layer, name, calls, multiplier):
        params, nonzeros = self._take_weights(layer.weights)
        output_shape = _first_output_shape(calls)
        if not isinstance(layer, KNOWN):
            macs = 0
        elif not calls:
            macs = None
        else:
            macs = 0
            for in_shapes, out_shapes in calls:
                m = call_macs(layer, in_shapes, out_shapes)
                if m is None:
                    macs = None
                    break
                macs += m
            if macs is not None:
                macs *= multiplier
        self.rows.append(LayerStats.build(
            name, type(layer).__name__, output_shape, params, nonzeros, macs,
            binary_macs=(macs or 0) if _is_binary(layer) else 0,
        ))


def _is_binary(layer):
    from keras_compress.layers import BinaryConv2D, BinaryDense

    return isinstance(layer, (BinaryDense, BinaryConv2D))


def _first_output_shape(calls):
    """Output shape of the first call (a tuple of shapes if several)."""
    if not calls:
        return None
    outs = calls[0][1]
    if len(outs) == 1:
        return outs[0]
    return tuple(outs) if outs else None
