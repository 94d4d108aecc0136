"""Keras model -> ONNX, verified in ONNX Runtime."""

import numpy as np

from keras_compress import _io
from keras_compress.export import _inputs

DEFAULT_OPSET = 17


def to_onnx(model, path=None, opset=DEFAULT_OPSET, verify=True):
    """Converts a Keras model to ONNX.

    Keras 3 models are traced through a `tf.function` (`training=False`) and
    converted with `tf2onnx.convert.from_function` (its `from_keras` does
    not accept Keras 3 models), so Sequential, Functional and subclassed
    models all work. The batch dimension stays dynamic. Unless
    `verify=False`, the result is run in ONNX Runtime and must match Keras
    within 1e-4 (relative to the output scale) before anything is written;
    the file is written atomically.

    Args:
        model: A built `keras.Model`.
        path: Optional `.onnx` file path; its folder must exist. Default None.
        opset: ONNX opset version, default 17.
        verify: Compare ONNX Runtime's outputs with Keras's, default True.

    Returns:
        The serialized ONNX model as `bytes`.

    Example:

    >>> onnx_bytes = to_onnx(model, "model.onnx")
    """
    _inputs.check_model(model)
    if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= 21:
        raise ValueError(
            f"Expected `opset` to be an int from 7 to 21. Received: opset={opset!r}"
        )
    if path is not None:
        path = _io.check_output_path(path)
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as e:
        raise ImportError(
            "ONNX export needs tf2onnx: pip install 'keras-compress[onnx]'"
        ) from e
    specs = _inputs.tensor_specs(model, batch_size=None)
    if len(specs) == 1:
        fn = tf.function(lambda x: model(x, training=False))
    else:
        fn = tf.function(lambda *xs: model(list(xs), training=False))
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset)
    except Exception as e:
        raise RuntimeError(
            f"tf2onnx could not convert model {model.name!r} to ONNX opset "
            f"{opset}: {e}"
        ) from e
    data = proto.SerializeToString()
    if verify:
        _verify(model, data, specs)
    if path is not None:
        _io.write_atomic(path, data)
    return data


def _verify(model, data, specs):
    from keras_compress.runtime.onnx import ONNXModel

    rng = np.random.default_rng(0)
    inputs = [
        rng.uniform(0, 1, (4,) + tuple(s.shape[1:])).astype(s.dtype.as_numpy_dtype)
        for s in specs
    ]
    feed = inputs[0] if len(inputs) == 1 else inputs
    got = ONNXModel(data).predict(feed)
    want = model.predict(feed, verbose=0)
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    for g, w in zip(got, want):
        w = np.asarray(w)
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        if g.shape != w.shape or not np.allclose(g, w, rtol=0, atol=1e-4 * scale):
            raise RuntimeError(
                "The ONNX export does not match Keras: expected outputs of "
                f"shape {w.shape} within {1e-4 * scale:.3g}. Received: shape "
                f"{g.shape}"
            )
