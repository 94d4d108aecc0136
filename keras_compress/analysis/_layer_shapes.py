"""The shapes each layer of a Keras model sees, per call.

From the symbolic graph when there is one (`symbolic_records`), else by
running the model once on zeros of batch size 1 (`trace_eager`); see
`keras_compress.analysis.keras_model`.
"""

import keras

from keras_compress import graph


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


def symbolic_records(layer):
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


def trace_eager(model):
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

