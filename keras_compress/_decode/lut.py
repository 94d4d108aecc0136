"""DECODE type 0: look-up tables (value tables + packed indices).

Ancillary data: the 16-byte DCM (byte 4: LUT version 1; byte 5:
`(axis << 4) | bitwidth`, axis 0-14 or 15 for one table; byte 6: elements
per value table), then the value tables, one per channel, each padded to
that stride, in the tensor's element type. Encoded data: one
`bitwidth`-bit index per element, in element order, most significant bit
first (TFLite Micro's `decode_state_lut.cc`).
"""

import math

import numpy as np

from keras_compress._decode import layout as _layout

TYPE = 0
MAX_BITS = 7
MAX_STRIDE = 128
PER_TENSOR_AXIS = 0xF


class Lut:
    """Encoder and runtime-faithful decoder of LUT-compressed tensors."""

    name = "lut"

    @staticmethod
    def tables(flat, layout):
        """Distinct values of each table: one per channel when the tensor
        is per-channel quantized (as the kernel reads it), else one.

        Returns:
            `(tables, indices)`: a list of sorted value arrays and the
            index of every element (element order) into its table.
        """
        rows = layout.rows(flat)
        tables, indices = [], np.empty(rows.shape, dtype=np.int64)
        for c, row in enumerate(rows):
            values, inverse = np.unique(row, return_inverse=True)
            tables.append(values)
            indices[c] = inverse.reshape(-1)
        return tables, layout.unrows(indices)

    @staticmethod
    def distinct(flat, layout):
        """Largest number of distinct values in one table."""
        rows = layout.rows(flat)
        return max(len(np.unique(row)) for row in rows)

    def encode(self, values, layout, one_table=False):
        """Returns `(encoded, ancillary, info)`; raises `NotDecodable`.

        Args:
            values: The tensor's values.
            layout: Its `Layout`.
            one_table: Build one table for the whole tensor even when it
                is per-channel quantized. The kernel would read it as
                per-channel tables: only for tests of the decode check.
        """
        flat = np.asarray(values, dtype=layout.dtype).reshape(-1)
        table_layout = _layout.Layout(layout.dtype, (flat.size,)) if one_table else layout
        tables, indices = self.tables(flat, table_layout)
        stride = max(len(t) for t in tables)
        if stride > MAX_STRIDE:
            raise _layout.NotDecodable(
                f"{stride} distinct values in a table (LUT holds at most "
                f"{MAX_STRIDE})"
            )
        bits = max(1, math.ceil(math.log2(stride)))
        if table_layout.per_channel:
            axis = len(layout.shape) - 1 if layout.last_axis else 0
        else:
            axis = PER_TENSOR_AXIS
        padded = np.zeros((len(tables), stride), dtype=layout.dtype)
        for c, table in enumerate(tables):
            padded[c, : len(table)] = table
        header = _layout.dcm(TYPE, [1, (axis << 4) | bits, stride])
        ancillary = header + padded.tobytes()
        encoded = _layout.pack_bits(indices, bits)
        return encoded, ancillary, {"bits": bits, "distinct": stride}

    def decode(self, encoded, ancillary, layout):
        """The values TFLM's LUT kernel writes, in element order."""
        _layout.check_dcm(ancillary, TYPE, "LUT")
        bits = ancillary[5] & 0x7
        stride = ancillary[6]
        if not 1 <= bits <= MAX_BITS:
            raise _layout.NotDecodable(f"LUT bit width {bits}")
        itemsize = layout.dtype.itemsize
        need = _layout.DCM_BYTES + layout.channels * stride * itemsize
        if len(ancillary) < need:
            raise _layout.NotDecodable(
                f"value tables of {len(ancillary) - _layout.DCM_BYTES} bytes, "
                f"{need - _layout.DCM_BYTES} are read"
            )
        tables = np.frombuffer(
            ancillary[_layout.DCM_BYTES:need], dtype=layout.dtype
        ).reshape(layout.channels, stride)
        indices = _layout.unpack_bits(encoded, bits, layout.size)
        if stride == 0 or indices.max(initial=0) >= stride:
            # The kernel would read the next channel's table (or past it).
            raise _layout.NotDecodable(
                f"an index ({int(indices.max(initial=0))}) past the table "
                f"stride {stride}"
            )
        channel = layout.channel_of_elements()
        return tables[channel, indices]
