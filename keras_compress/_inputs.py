"""Input signatures and calibration data for converting a Keras model."""

import itertools

import numpy as np

from keras_compress._checks import check_optional_int


def check_model(model, arg_name="model"):
    """Raises unless `model` is a built `keras.Model`."""
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected `{arg_name}` to be a keras.Model. "
            f"Received: {arg_name} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"Expected `{arg_name}` to be built (call it on a batch of data "
            f"or build it with an input shape first). Received: unbuilt "
            f"model {model.name!r}"
        )


def input_shapes(model):
    """Returns the input shapes of a built model, batch dimension included.

    Functional and Sequential models know their inputs; a subclassed model
    is asked for the shapes it was built with.
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs:
        return [tuple(t.shape) for t in inputs], [str(t.dtype) for t in inputs]
    shapes = list(getattr(model, "_build_shapes_dict", None) or {})
    if len(shapes) == 1:
        shape = model._build_shapes_dict[shapes[0]]
        if isinstance(shape, (list, tuple)) and all(
            d is None or isinstance(d, int) for d in shape
        ):
            return [tuple(shape)], ["float32"]
    raise ValueError(
        f"Could not tell the input shape of model {model.name!r}: expected a "
        "Functional or Sequential model, or a subclassed model with a single "
        "input that was built or called on data. Received: a "
        f"{type(model).__name__} without known input shapes"
    )


def tensor_specs(model, batch_size=None):
    """`tf.TensorSpec`s of the model inputs with the given batch size."""
    import tensorflow as tf

    batch_size = check_optional_int("batch_size", batch_size, " (dynamic)")
    shapes, dtypes = input_shapes(model)
    names = _input_names(len(shapes))
    return [
        tf.TensorSpec((batch_size,) + tuple(s[1:]), dtype=d, name=n)
        for s, d, n in zip(shapes, dtypes, names)
    ]


def _input_names(count):
    # LiteRT lists a signature's inputs sorted by name: zero-padded names
    # keep them in the model's order.
    return ["input"] if count == 1 else [f"input_{i:03d}" for i in range(count)]


def iterate_samples(data, specs, arg_name="representative_data"):
    """Yields lists of single-sample arrays (batch dimension 1) from `data`.

    `data` may be an array (or a list/tuple of arrays, one per input), a
    `tf.data.Dataset`, a generator, an iterable or a callable returning one.
    Elements may carry labels as `(x, y)`; batched elements are split into
    samples.
    """
    import tensorflow as tf

    if isinstance(data, np.ndarray) or (
        isinstance(data, (list, tuple))
        and len(data) == len(specs)
        and all(isinstance(a, np.ndarray) for a in data)
    ):
        arrays = [data] if isinstance(data, np.ndarray) else list(data)
        elements = [arrays]
    elif isinstance(data, tf.data.Dataset):
        elements = data.as_numpy_iterator()
    elif callable(data):
        elements = data()
    elif hasattr(data, "__iter__"):
        elements = data
    else:
        raise TypeError(
            f"Expected `{arg_name}` to be an array, a tf.data.Dataset, a "
            f"generator or a callable returning one. Received: {arg_name} of "
            f"type {type(data).__name__}"
        )
    for element in elements:
        for sample in _split(element, specs, arg_name):
            yield sample


def _split(element, specs, arg_name):
    n = len(specs)
    if not isinstance(element, (list, tuple)):
        arrays = [element]
    elif n == 1:
        arrays = [element[0]]  # (x,) or (x, y): the input comes first.
    elif element and isinstance(element[0], (list, tuple)):
        arrays = list(element[0])  # ((x1, x2), y)
    else:
        arrays = list(element[:n])
    arrays = [np.asarray(a) for a in arrays]
    if len(arrays) != len(specs):
        raise ValueError(
            f"Expected each element of `{arg_name}` to hold {len(specs)} "
            f"input(s). Received: {len(arrays)}"
        )
    batched = []
    for a, spec in zip(arrays, specs):
        want = tuple(spec.shape[1:])
        if a.shape == want:
            a = a[None]
        if tuple(a.shape[1:]) != want:
            raise ValueError(
                f"Expected samples of `{arg_name}` to have shape "
                f"{(None,) + want}. Received: shape {a.shape}"
            )
        batched.append(a.astype(spec.dtype.as_numpy_dtype, copy=False))
    for i in range(len(batched[0])):
        yield [a[i : i + 1] for a in batched]


def take_samples(data, specs, limit, arg_name="representative_data"):
    """Up to `limit` samples from `data`, as a list of input lists."""
    samples = list(itertools.islice(iterate_samples(data, specs, arg_name), limit))
    if not samples:
        raise ValueError(
            f"Expected `{arg_name}` to hold at least one sample. "
            "Received: an empty data source"
        )
    return samples
