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

import math

import keras
import numpy as np

from keras_compress import graph
from keras_compress.analysis.summary import LayerStats
from keras_compress.analysis.summary import Summary
from keras_compress.analysis.summary import make_total

_L = keras.layers

# Layer types with a MAC formula; every other layer costs 0 MACs.
_CONV = (_L.Conv1D, _L.Conv2D, _L.Conv3D)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_TRANSPOSE = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
_NORM = (_L.BatchNormalization, _L.LayerNormalization)
_POOL = (
    _L.MaxPooling1D,
    _L.MaxPooling2D,
    _L.MaxPooling3D,
    _L.AveragePooling1D,
    _L.AveragePooling2D,
    _L.AveragePooling3D,
)
_GLOBAL_POOL = (
    _L.GlobalAveragePooling1D,
    _L.GlobalAveragePooling2D,
    _L.GlobalAveragePooling3D,
    _L.GlobalMaxPooling1D,
    _L.GlobalMaxPooling2D,
    _L.GlobalMaxPooling3D,
)
_KNOWN = (
    (_L.Dense, _L.EinsumDense)
    + _CONV + _DEPTHWISE + _SEPARABLE + _TRANSPOSE + _NORM + _POOL
    + _GLOBAL_POOL
)


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
        records = _trace_eager(model)
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
    if isinstance(layer, _KNOWN):
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
# Shapes.


def _shape(x):
    shape = getattr(x, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except TypeError:
        return None


def _shapes(structure):
    out = []
    for x in keras.tree.flatten(structure):
        s = _shape(x)
        if s is not None:
            out.append(s)
    return out


def _symbolic_records(layer):
    """Returns `{id(op): [(input_shapes, output_shapes), ...]}` of a graph."""
    records = {}
    for node in graph.nodes(graph.graph_of(layer)):
        args = node.arguments.args
        first = args[0] if args else node.arguments.keras_tensors
        records.setdefault(id(node.operation), []).append(
            (_shapes(first), _shapes(node.outputs))
        )
    return records


def _trace_input(model):
    """Zeros of batch size 1 matching the model's input, or `None`."""

    def zeros(shape, dtype="float32"):
        if shape is None or len(shape) == 0:
            return None
        dims = (1,) + tuple(shape[1:])
        if any(d is None for d in dims):
            return None
        return keras.ops.zeros(dims, dtype=dtype)

    if graph.has_graph(model):
        inputs = graph.graph_of(model).inputs
        made = [zeros(_shape(x), getattr(x, "dtype", "float32"))
                for x in inputs]
        if any(m is None for m in made):
            return None
        return made[0] if len(made) == 1 else made
    shapes = getattr(model, "_build_shapes_dict", None)
    if not shapes or len(shapes) != 1:
        return None
    shape = next(iter(shapes.values()))
    if isinstance(shape, dict):
        return None
    if isinstance(shape, (list, tuple)) and shape and all(
        isinstance(s, (list, tuple)) for s in shape
    ):
        made = [zeros(tuple(s)) for s in shape]
        return None if any(m is None for m in made) else made
    return zeros(tuple(shape))


def _all_layers(model):
    return model._flatten_layers(include_self=False, recursive=True)


def _trace_eager(model):
    """Runs `model` once on zeros, recording what every layer sees.

    Returns:
        `{id(layer): [(input_shapes, output_shapes), ...]}`, or `None` when the
        input shape is unknown or the run fails.
    """
    inputs = _trace_input(model)
    if inputs is None:
        return None
    records = {}
    active = set()
    patched = []

    def wrap(layer, fn):
        def recorded(*args, **kwargs):
            key = id(layer)
            if key in active:  # quantized_call -> call of the same layer.
                return fn(*args, **kwargs)
            active.add(key)
            try:
                outputs = fn(*args, **kwargs)
            finally:
                active.discard(key)
            if args:
                first = args[0]
            else:
                first = next(iter(kwargs.values()), None)
            in_shapes = [_batch_none(s) for s in _shapes(first)]
            out_shapes = [_batch_none(s) for s in _shapes(outputs)]
            records.setdefault(key, []).append((in_shapes, out_shapes))
            return outputs

        return recorded

    for layer in _all_layers(model):
        for attr in ("call", "quantized_call"):
            if attr in layer.__dict__:
                continue  # Never shadow an attribute set by the user.
            fn = getattr(layer, attr, None)
            if fn is None:
                continue
            object.__setattr__(layer, attr, wrap(layer, fn))
            patched.append((layer, attr))
    try:
        model(inputs, training=False)
    except Exception:  # A model we cannot run still gets its params.
        return None
    finally:
        for layer, attr in patched:
            object.__delattr__(layer, attr)
    return records


def _batch_none(shape):
    return (None,) + tuple(shape[1:]) if shape else shape


# --------------------------------------------------------------------------
# MACs of one call.


def _prod(dims):
    dims = list(dims)
    if any(d is None for d in dims):
        return None
    return math.prod(int(d) for d in dims)


def _spatial_and_channels(layer, shape):
    """Returns `(spatial dims, channels)` of a conv-like feature map."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return shape[2:], shape[1]
    return shape[1:-1], shape[-1]


def _mul(*factors):
    if any(f is None for f in factors):
        return None
    return math.prod(int(f) for f in factors)


def _call_macs(layer, in_shapes, out_shapes):
    """MACs of one call of a known layer, or `None` if shapes are unknown."""
    if not in_shapes or not out_shapes:
        return None
    x, y = in_shapes[0], out_shapes[0]
    if isinstance(layer, _SEPARABLE):
        _, cin = _spatial_and_channels(layer, x)
        out_spatial, _ = _spatial_and_channels(layer, y)
        dm = layer.depth_multiplier
        depthwise = _mul(_prod(out_spatial), _prod(layer.kernel_size), cin, dm)
        pointwise = _mul(_prod(out_spatial), cin, dm, layer.filters)
        if depthwise is None or pointwise is None:
            return None
        return depthwise + pointwise
    if isinstance(layer, _DEPTHWISE):
        _, cin = _spatial_and_channels(layer, x)
        out_spatial, _ = _spatial_and_channels(layer, y)
        return _mul(_prod(out_spatial), _prod(layer.kernel_size), cin,
                    layer.depth_multiplier)
    if isinstance(layer, _TRANSPOSE):
        spatial, cin = _spatial_and_channels(layer, x)
        return _mul(_prod(spatial), _prod(layer.kernel_size), cin,
                    layer.filters)
    if isinstance(layer, _CONV):
        _, cin = _spatial_and_channels(layer, x)
        out_spatial, _ = _spatial_and_channels(layer, y)
        if cin is None:
            return None
        return _mul(_prod(out_spatial), _prod(layer.kernel_size),
                    cin // layer.groups, layer.filters)
    if isinstance(layer, _L.Dense):
        return _mul(_prod(x[1:]), layer.units)
    if isinstance(layer, _L.EinsumDense):
        return _einsum_macs(layer, x)
    if isinstance(layer, _NORM):
        return _prod(y[1:])
    if isinstance(layer, _POOL):
        return _mul(_prod(y[1:]), _prod(layer.pool_size))
    if isinstance(layer, _GLOBAL_POOL):
        return _prod(x[1:])
    return 0


def _einsum_macs(layer, x):
    equation = layer.equation.replace(" ", "")
    lhs, out = equation.split("->")
    in_spec, kernel_spec = lhs.split(",")
    dims = (1,) + tuple(x[1:])  # Batch size 1.
    if any(d is None for d in dims):
        return None
    sizes = {}
    extra = 1
    if "..." in in_spec:
        head, tail = in_spec.split("...")
        n_ellipsis = len(dims) - len(head) - len(tail)
        extra = _prod(dims[len(head): len(head) + n_ellipsis]) or 1
        pairs = list(zip(head, dims[: len(head)]))
        pairs += list(zip(tail, dims[len(dims) - len(tail):]))
    else:
        pairs = list(zip(in_spec, dims))
    kernel_shape = tuple(layer.kernel.shape)
    if len(kernel_shape) == len(kernel_spec):
        pairs += list(zip(kernel_spec, kernel_shape))
    for letter, size in pairs:
        sizes.setdefault(letter, int(size))
    full = getattr(layer, "full_output_shape", None)
    if full is not None:
        out_letters = out.replace("...", "")
        tail = list(full[len(full) - len(out_letters):])
        for letter, size in zip(out_letters, tail):
            if size is not None:
                sizes.setdefault(letter, int(size))
    return extra * math.prod(sizes.values())


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
            records = _symbolic_records(layer)
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
        if not isinstance(layer, _KNOWN):
            macs = 0
        elif not calls:
            macs = None
        else:
            macs = 0
            for in_shapes, out_shapes in calls:
                m = _call_macs(layer, in_shapes, out_shapes)
                if m is None:
                    macs = None
                    break
                macs += m
            if macs is not None:
                macs *= multiplier
        self.rows.append(LayerStats.build(
            name, type(layer).__name__, output_shape, params, nonzeros, macs
        ))


def _first_output_shape(calls):
    """Output shape of the first call (a tuple of shapes if several)."""
    if not calls:
        return None
    outs = calls[0][1]
    if len(outs) == 1:
        return outs[0]
    return tuple(outs) if outs else None
