"""Keras model -> ONNX, verified in ONNX Runtime."""

from keras_compress import _io
from keras_compress import _inputs
from keras_compress import _verify as _verify_outputs

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

    feed = _verify_outputs.random_inputs(specs)
    _verify_outputs.check_outputs(ONNXModel(data), model, feed, "ONNX", tolerance=1e-4)
