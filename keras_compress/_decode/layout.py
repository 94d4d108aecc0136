"""A constant tensor as TFLite Micro's DECODE kernels see it.

The kernels take the element type, the shape and the quantization of the
tensor DECODE writes (the decoded tensor), never anything the encoder
meant: the number of value tables (LUT) or zero points (pruning) is the
number of quantization scales, and the channel axis is the first one,
or the last one when `quantized_dimension` names it and there are several
scales. The axis nibble of a LUT header is not read. Encoders and the
Python decoders both work from this `Layout`, so a table laid out for
another reading of the tensor decodes to other values and is caught.
"""

import dataclasses

import numpy as np

from keras_compress import _tflite

_T = _tflite.schema.TensorType
# Element types the DECODE kernels write (LUT and pruning; Huffman: int8
# and int16 only).
NUMPY_TYPES = {
    _T.INT8: np.dtype("i1"),
    _T.INT16: np.dtype("<i2"),
    _T.INT32: np.dtype("<i4"),
    _T.INT64: np.dtype("<i8"),
    _T.FLOAT32: np.dtype("<f4"),
    _T.BOOL: np.dtype("u1"),
}
TYPE_NAMES = {
    v: k.lower() for k, v in vars(_T).items() if not k.startswith("_")
}


class NotDecodable(ValueError):
    """The runtime cannot decode a tensor with this layout or codec."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Element type, shape and channels of a tensor, as the kernels read them.

    Args:
        dtype: NumPy dtype of the elements.
        shape: The tensor shape.
        channels: Value tables / zero points: the number of quantization
            scales, 1 for a per-tensor quantized or unquantized tensor.
        last_axis: The channel is the last axis (else the first).
        zero_points: One zero point per channel (or one).
    """

    dtype: np.dtype
    shape: tuple
    channels: int = 1
    last_axis: bool = False
    zero_points: tuple = (0,)

    @classmethod
    def of(cls, tensor):
        """The layout of a `schema.TensorT`; raises `NotDecodable`."""
        dtype = NUMPY_TYPES.get(tensor.type)
        if dtype is None:
            raise NotDecodable(
                f"type {TYPE_NAMES.get(tensor.type, tensor.type)} is not "
                "decoded by TFLM"
            )
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
        q = tensor.quantization
        scales = [] if q is None or q.scale is None else list(q.scale)
        channels = max(len(scales), 1)
        axis = 0 if q is None else int(q.quantizedDimension)
        last = channels > 1 and axis == len(shape) - 1
        if channels > 1 and not last and axis != 0:
            raise NotDecodable(
                f"quantized on axis {axis}: TFLM decodes per-channel tensors "
                "on the first or last axis only"
            )
        if channels == 1 and axis != 0:
            raise NotDecodable(f"quantized_dimension {axis} with one scale")
        if channels > 1 and (not shape or shape[axis] != channels):
            raise NotDecodable(
                f"{channels} scales for shape {list(shape)} on axis {axis}"
            )
        zps = [] if q is None or q.zeroPoint is None else [int(z) for z in q.zeroPoint]
        if not zps:
            zps = [0]
        if len(zps) == 1:
            zps = zps * channels  # TFLM's allocator expands one zero point.
        if len(zps) != channels:
            raise NotDecodable(f"{len(zps)} zero points for {channels} scales")
        return cls(dtype, shape, channels, last, tuple(zps))

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def per_channel(self):
        return self.channels > 1

    def rows(self, flat):
        """`flat` (element order) as a `[channels, elements]` array."""
        if self.last_axis:
            return flat.reshape(-1, self.channels).T
        return flat.reshape(self.channels, -1)

    def unrows(self, rows):
        """Inverse of `rows`: back to element order."""
        if self.last_axis:
            return rows.T.reshape(-1)
        return rows.reshape(-1)

    def channel_of_elements(self):
        """Channel index of every element, in element order."""
        index = np.arange(self.size)
        if self.last_axis:
            return index % self.channels
        return index // max(self.size // self.channels, 1)


def pack_bits(values, bits):
    """Unsigned ints as `bits`-bit fields, most significant bit first.

    The last byte is padded with zero bits.
    """
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    shifts = np.arange(bits - 1, -1, -1)
    fields = ((values[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(fields.reshape(-1)).tobytes()


def unpack_bits(data, bits, count):
    """Inverse of `pack_bits`: `count` fields of `bits` bits."""
    need = -(-count * bits // 8)
    if len(data) < need:
        raise NotDecodable(
            f"encoded data holds {len(data)} bytes, {need} are read"
        )
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    fields = flat.reshape(count, bits).astype(np.int64)
    return fields @ (1 << np.arange(bits - 1, -1, -1))


DCM_BYTES = 16


def dcm(decode_type, user):
    """The 16-byte DECODE Common Metadata: type, version 1, user bytes 4-15."""
    head = bytes([decode_type, 1, 0, 0]) + bytes(user)
    return head + bytes(DCM_BYTES - len(head))


def check_dcm(ancillary, decode_type, version_name):
    """Checks the common header and the type's own version (byte 4)."""
    if len(ancillary) < DCM_BYTES:
        raise NotDecodable(f"ancillary data of {len(ancillary)} bytes (< 16)")
    if ancillary[0] != decode_type or ancillary[1] != 1:
        raise NotDecodable(
            f"DCM type {ancillary[0]} version {ancillary[1]}, expected "
            f"type {decode_type} version 1"
        )
    if ancillary[4] != 1:
        raise NotDecodable(f"{version_name} version {ancillary[4]} != 1")
