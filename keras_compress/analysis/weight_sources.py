"""The weight tensors `weight_bits` measures, read from a model or a file.

- Keras model: the kernels `keras_compress.weights.prunable_weights(model)`
  lists (Dense/Conv/Depthwise/Separable/Embedding/EinsumDense kernels and
  weights of layers with `get_prunable_weights()`), as stored (float32
  usually), one codebook per tensor. Biases and normalization weights are
  left out, as Deep Compression counts the weights it prunes.
- `.tflite`: every constant tensor of type float32, float16 or int8 with
  two or more dimensions (the kernels of `CONV_2D`, `FULLY_CONNECTED`,
  `DEPTHWISE_CONV_2D`, ...; rank-1 biases and int32 constants are left out,
  matching the Keras side), each buffer once. An int8 tensor with several
  scales is per-channel quantized along its `quantized_dimension`, which
  becomes its `channel_axis`; its scales count 32 bits each (`scale_bits`);
  zero points must be 0 (the converter's symmetric weights) and cost nothing.
  Tensors stored in TFLite's sparse format are refused (`ValueError`).
- A mapping `{name: array}`: the arrays as given, one codebook each.
"""

import collections.abc
import dataclasses
import os

import numpy as np

from keras_compress import _tflite

_T = _tflite.schema.TensorType
_TFLITE_DTYPES = {_T.FLOAT32: "<f4", _T.FLOAT16: "<f2", _T.INT8: "i1"}


@dataclasses.dataclass
class WeightTensor:
    """One weight tensor to measure.

    Args:
        name: Tensor or variable name.
        value: The values as a NumPy array.
        channel_axis: Axis of per-channel quantization, or `None`.
        scale_bits: Bits of its quantization scales. Defaults to 0.
    """

    name: str
    value: np.ndarray
    channel_axis: object = None
    scale_bits: int = 0


def read_weights(obj, arg_name="obj"):
    """Returns `(source, name, [WeightTensor])` of a model, file or mapping.

    Args:
        obj: A built `keras.Model`; a path to a `.keras` file; `.tflite`
            bytes or a path to a `.tflite` file; or a mapping of names to
            arrays.
        arg_name: Argument name for error messages.

    Returns:
        `source` is `"keras"`, `"tflite"` or `"arrays"`.
    """
    if isinstance(obj, collections.abc.Mapping):
        return "arrays", "<arrays>", _mapping_weights(obj, arg_name)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(obj))
        if path.lower().endswith(".keras"):
            return "keras", os.path.basename(path), _keras_weights(
                _load_keras(path, arg_name)
            )
        name = os.path.basename(path)
        return "tflite", name, _tflite_weights(obj, arg_name)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "tflite", "<bytes>", _tflite_weights(obj, arg_name)
    import keras  # Only now: a .tflite needs no TensorFlow.

    if isinstance(obj, keras.Model):
        if not obj.built:
            raise ValueError(
                f"Expected `{arg_name}` to be a built Keras model. "
                f"Received: {arg_name}={obj.name!r} (not built)"
            )
        return "keras", obj.name, _keras_weights(obj)
    raise TypeError(
        f"Expected `{arg_name}` to be a keras.Model, .tflite bytes, a path "
        "(str or os.PathLike) to a .tflite or .keras file, or a mapping of "
        f"names to arrays. Received: {arg_name} of type {type(obj).__name__}"
    )


def _mapping_weights(obj, arg_name):
    result = []
    for name, value in obj.items():
        if not isinstance(value, np.ndarray) and not hasattr(value, "__array__"):
            raise TypeError(
                f"Expected the values of `{arg_name}` to be arrays. Received: "
                f"{arg_name}[{name!r}] of type {type(value).__name__}"
            )
        result.append(WeightTensor(str(name), np.asarray(value)))
    return result


def _load_keras(path, arg_name):
    import keras

    if not os.path.isfile(path):
        raise ValueError(
            f"Expected `{arg_name}` to be the path of an existing .keras "
            f"file. Received: {arg_name}={path!r} (no such file)"
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:
        raise ValueError(
            f"Expected `{arg_name}` to be a loadable .keras file "
            f"({type(e).__name__}: {e}). Received: {arg_name}={path!r}"
        ) from None


def _keras_weights(model):
    import keras

    from keras_compress.weights import prunable_weights

    return [
        WeightTensor(item.variable.path,
                     keras.ops.convert_to_numpy(item.variable))
        for item in prunable_weights(model)
    ]


def _tflite_weights(obj, arg_name):
    data, model = _tflite.load_model_bytes(obj, arg_name)
    seen, result = set(), []
    for subgraph in model.subgraphs:
        for t in subgraph.tensors or []:
            dtype = _TFLITE_DTYPES.get(t.type)
            shape = [] if t.shape is None else [int(d) for d in t.shape]
            if dtype is None or len(shape) < 2 or t.isVariable:
                continue
            if t.buffer <= 0 or t.buffer in seen:
                continue
            raw = _raw(model, data, t.buffer)
            if not raw:
                continue
            seen.add(t.buffer)
            name = _text(t.name).split(";")[0]
            if t.sparsity is not None:
                raise ValueError(
                    f"Expected dense constant tensors in `{arg_name}`. "
                    f"Received: tensor {name!r} stored sparse "
                    "(TFLite sparsity format), which is not supported"
                )
            value = np.frombuffer(raw, dtype=dtype)
            if value.size != int(np.prod(shape)):
                raise ValueError(
                    f"Expected tensor {name!r} of `{arg_name}` to hold "
                    f"{int(np.prod(shape))} values. Received: {value.size}"
                )
            axis, scale_bits = _quantization(t, shape, name, arg_name)
            result.append(WeightTensor(
                name, value.astype(value.dtype.newbyteorder("=")).reshape(shape),
                axis, scale_bits,
            ))
    return result


def _quantization(t, shape, name, arg_name):
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None, 0
    if q.zeroPoint is not None and np.any(np.asarray(q.zeroPoint) != 0):
        raise ValueError(
            f"Expected symmetric weights (zero points 0, as TFLite's "
            f"converter writes them) in `{arg_name}`. Received: tensor "
            f"{name!r} with zero points {np.unique(q.zeroPoint)[:4].tolist()}"
        )
    scales = len(q.scale)
    axis = None
    if scales > 1:
        axis = int(q.quantizedDimension)
        if not 0 <= axis < len(shape) or shape[axis] != scales:
            raise ValueError(
                f"Expected tensor {name!r} of `{arg_name}` to have one scale "
                f"per index of its quantized dimension. Received: {scales} "
                f"scales, quantized_dimension={axis}, shape={shape}"
            )
    return axis, 32 * scales


def _raw(model, data, index):
    b = model.buffers[index]
    if b.data is not None and len(b.data) > 0:
        return np.asarray(b.data, dtype=np.uint8).tobytes()
    if b.offset > 1 and b.size > 0:
        return bytes(data[b.offset:b.offset + b.size])
    return b""


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
