"""One `.tflite` tensor at a time: dtypes, shapes, stored values, counts.

The tensor-level half of `keras_compress.analysis.tflite_model`; the
conventions (dynamic dimensions, params, non-zeros, stored bytes) are
documented there.
"""

import math

import numpy as np

from keras_compress import _tflite

_T = _tflite.schema.TensorType
FLOAT_TYPES = {_T.FLOAT32, _T.FLOAT16, _T.FLOAT64, _T.BFLOAT16}
for _name in ("FLOAT8_E4M3FN", "FLOAT8_E5M2"):
    if hasattr(_T, _name):
        FLOAT_TYPES.add(getattr(_T, _name))
NUMPY_TYPES = {
    _T.FLOAT32: "<f4",
    _T.FLOAT16: "<f2",
    _T.FLOAT64: "<f8",
    _T.INT8: "i1",
    _T.UINT8: "u1",
    _T.INT16: "<i2",
    _T.UINT16: "<u2",
    _T.INT32: "<i4",
    _T.UINT32: "<u4",
    _T.INT64: "<i8",
    _T.UINT64: "<u8",
    _T.BOOL: "u1",
}


def prod(dims):
    """The product of `dims` as an int (1 for no dims)."""
    return math.prod(int(d) for d in dims)


def ids(values):
    """A flatbuffer vector (or None) as a list of ints."""
    return [] if values is None else [int(v) for v in values]


def text(value):
    """A flatbuffer string (bytes, str or None) as a str."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def static_shape(t):
    """Static shape with dynamic (-1) dimensions as 1."""
    shape = ids(t.shape)
    sig = ids(t.shapeSignature)
    if len(sig) == len(shape):
        shape = [1 if s == -1 else d for d, s in zip(shape, sig)]
    return [max(d, 1) if d < 0 else d for d in shape]


def display_shape(t):
    """The shape to show, dynamic dimensions as None."""
    shape = ids(t.shape)
    sig = ids(t.shapeSignature)
    if len(sig) == len(shape):
        return tuple(None if s == -1 else d for d, s in zip(shape, sig))
    return tuple(shape)


def decode_values(tensor_type, raw):
    """Stored values as a numpy array, or None for unsupported types.

    Floating types come back as floats, except bfloat16 and float8, which come
    back as their bit patterns with the sign bit cleared (0 means zero).
    """
    if tensor_type in NUMPY_TYPES:
        dtype = np.dtype(NUMPY_TYPES[tensor_type])
        usable = len(raw) - len(raw) % dtype.itemsize
        return np.frombuffer(raw[:usable], dtype=dtype)
    packed = np.frombuffer(raw, dtype=np.uint8)
    if tensor_type == _T.BFLOAT16:
        usable = len(raw) - len(raw) % 2
        return np.frombuffer(raw[:usable], dtype="<u2") & 0x7FFF
    if tensor_type in FLOAT_TYPES:  # float8 variants.
        return packed & 0x7F
    if tensor_type in (_T.INT4, getattr(_T, "UINT4", -1)):
        nibbles = np.stack([packed & 0xF, packed >> 4], axis=1).reshape(-1)
        if tensor_type == _T.INT4:
            return (nibbles.astype(np.int8) ^ 8) - 8
        return nibbles
    if tensor_type == getattr(_T, "INT2", -1):
        parts = [(packed >> (2 * s)) & 0x3 for s in range(4)]
        crumbs = np.stack(parts, axis=1).reshape(-1).astype(np.int8)
        return (crumbs ^ 2) - 2
    return None


def constant_stats(t, raw):
    """Returns `(params, nonzeros, stored bytes)` of a constant.

    Args:
        t: The flatbuffer tensor.
        raw: The bytes of its values.
    """
    q = t.quantization
    quantized = q is not None and q.scale is not None and len(q.scale) > 0
    if t.type not in FLOAT_TYPES and not quantized:
        return 0, 0, len(raw)
    params = prod(static_shape(t))
    values = decode_values(t.type, raw)
    if values is None:
        return params, params, len(raw)
    if t.sparsity is None:
        values = values[:params]
    zero = 0
    if quantized and q.zeroPoint is not None and len(q.zeroPoint) > 0:
        zp = np.asarray(q.zeroPoint).reshape(-1)
        shape = static_shape(t)
        if zp.size == 1 or np.all(zp == zp[0]):
            zero = zp[0]
        elif values.size == params and 0 <= q.quantizedDimension < len(
            shape
        ) and shape[q.quantizedDimension] == zp.size:
            bshape = [1] * len(shape)
            bshape[q.quantizedDimension] = zp.size
            values = values.reshape(shape)
            zero = zp.reshape(bshape)
    if t.type in FLOAT_TYPES and values.dtype.kind == "u":
        nonzeros = int(np.count_nonzero(values))  # Bit patterns of +-0.
    else:
        nonzeros = int(np.count_nonzero(values != zero))
    return params, min(nonzeros, params), len(raw)
