"""DECODE type 2: pruning (a bitmask + the values that are kept).

Encoded data: one bit per element, in element order, most significant bit
first; 1 means "read the next kept value", 0 means "the zero point".
Ancillary data: the 16-byte DCM (byte 4: pruning version 1), then the kept
values in element order, in the tensor's element type. The zero point is
the channel's own for per-channel int8 tensors with a non-zero zero
point, else the first zero point (TFLite Micro's `decode_state_prune.cc`;
other types must have all zero points 0).
"""

import numpy as np

from keras_compress._decode import layout as _layout

TYPE = 2


class Prune:
    """Encoder and runtime-faithful decoder of pruning-compressed tensors."""

    name = "prune"

    @staticmethod
    def zero_points(layout):
        """The zero point the kernel writes for each element."""
        zps = np.asarray(layout.zero_points, dtype=np.int64)
        if np.any(zps != 0) and layout.dtype != np.int8:
            raise _layout.NotDecodable(
                "non-zero zero points on a non-int8 tensor (pruning decode "
                "needs them all 0)"
            )
        if layout.per_channel and np.any(zps != 0):
            return zps[layout.channel_of_elements()]
        return np.full(layout.size, zps[0], dtype=np.int64)

    def encode(self, values, layout):
        """Returns `(encoded, ancillary, info)`; raises `NotDecodable`."""
        flat = np.asarray(values, dtype=layout.dtype).reshape(-1)
        zero = self.zero_points(layout).astype(layout.dtype)
        kept = flat != zero
        encoded = np.packbits(kept.astype(np.uint8)).tobytes()
        ancillary = _layout.dcm(TYPE, [1]) + flat[kept].tobytes()
        zeros = int(flat.size - np.count_nonzero(kept))
        return encoded, ancillary, {"zeros": zeros}

    def decode(self, encoded, ancillary, layout):
        """The values TFLM's pruning kernel writes, in element order."""
        _layout.check_dcm(ancillary, TYPE, "pruning")
        kept = _layout.unpack_bits(encoded, 1, layout.size).astype(bool)
        stored = np.frombuffer(
            ancillary[_layout.DCM_BYTES:], dtype=np.uint8
        )
        itemsize = layout.dtype.itemsize
        count = int(np.count_nonzero(kept))
        if stored.size < count * itemsize:
            raise _layout.NotDecodable(
                f"{stored.size // itemsize} kept values stored, {count} read"
            )
        values = stored[: count * itemsize].view(layout.dtype)
        out = self.zero_points(layout).astype(layout.dtype)
        out[kept] = values
        return out
