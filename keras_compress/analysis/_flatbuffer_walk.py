"""A walk over the objects of a `.tflite` flatbuffer, claiming their bytes.

Reads the file as written (tables, vtables, vectors and strings at the
offsets it holds) and gives each byte to one category; what the categories
mean is `keras_compress.analysis.file_bytes`'s to say.
"""

import struct

import numpy as np

from keras_compress import _tflite

# Vector and string fields of builtin option tables: vtable offset -> kind.
_OPTION_FIELDS = {
    "ReshapeOptions": {4: ("vector", 4)},
    "SqueezeOptions": {4: ("vector", 4)},
    "BucketizeOptions": {4: ("vector", 4)},
    "ConcatEmbeddingsOptions": {6: ("vector", 4), 8: ("vector", 4)},
    "VarHandleOptions": {4: ("string", None), 6: ("string", None)},
}
_OPTION_NAMES = {
    v: k
    for k, v in vars(_tflite.schema.BuiltinOptions).items()
    if not k.startswith("_")
}
_SEGMENT_ELEMENT_SIZE = {1: 4, 2: 2, 3: 1}  # Int32Vector, Uint16Vector, Uint8Vector.


class Walker:
    """Claims every byte the flatbuffer's objects occupy for a category.

    The first claim of a byte wins, so shared vtables count once.

    Args:
        data: The file's bytes.
        buffer_kinds: `{buffer index: category}` of the buffers' data
            (default: `"unreferenced_data"`).
        index: `{category: number}`, numbers from 1 to 255; `owner[i]` is
            the number of the category of byte `i`, 0 where unclaimed.
    """

    def __init__(self, data, buffer_kinds, index):
        self.data = data
        self.buffer_kinds = buffer_kinds
        self.index = index
        self.owner = np.zeros(len(data), dtype=np.uint8)

    # -- raw reads -----------------------------------------------------------

    def u32(self, pos):
        return struct.unpack_from("<I", self.data, pos)[0]

    def u16(self, pos):
        return struct.unpack_from("<H", self.data, pos)[0]

    def claim(self, start, length, category):
        span = self.owner[start: start + length]
        span[span == 0] = self.index[category]

    # -- flatbuffer objects --------------------------------------------------

    def table(self, pos, category):
        """Claims the table at `pos` and its vtable; returns a field lookup."""
        vtable = pos - struct.unpack_from("<i", self.data, pos)[0]
        vtable_size = self.u16(vtable)
        self.claim(vtable, vtable_size, "vtables")
        self.claim(pos, self.u16(vtable + 2), category)

        def field(slot):
            if slot >= vtable_size:
                return None
            rel = self.u16(vtable + slot)
            return pos + rel if rel else None

        return field

    def target(self, field_pos):
        return None if field_pos is None else field_pos + self.u32(field_pos)

    def vector(self, field_pos, element_size, category, prefix=None):
        """Claims a scalar vector; returns `(start of elements, length)`."""
        start = self.target(field_pos)
        if start is None:
            return None, 0
        n = self.u32(start)
        self.claim(start, 4, prefix or category)
        self.claim(start + 4, n * element_size, category)
        return start + 4, n

    def string(self, field_pos, category):
        start = self.target(field_pos)
        if start is not None:
            self.claim(start, 4 + self.u32(start) + 1, category)

    def tables(self, field_pos, category):
        """Claims a vector of tables; returns the tables' positions."""
        start, n = self.vector(field_pos, 4, category)
        if start is None:
            return []
        return [start + 4 * k + self.u32(start + 4 * k) for k in range(n)]

    def u8(self, field_pos, default=0):
        if field_pos is None:
            return default
        return self.data[field_pos]

    # -- the TFLite schema ---------------------------------------------------

    def model(self, pos):
        self.claim(0, 8, "model_header")  # Root offset, "TFL3".
        f = self.table(pos, "model_header")
        for code in self.tables(f(6), "operators"):
            self.string(self.table(code, "operators")(6), "operators")
        for graph in self.tables(f(8), "model_header"):
            self.subgraph(graph)
        self.string(f(10), "model_header")
        for k, buffer in enumerate(self.tables(f(12), "buffer_table")):
            self.buffer(k, buffer)
        self.vector(f(14), 4, "metadata")
        for entry in self.tables(f(16), "metadata"):
            self.string(self.table(entry, "metadata")(4), "metadata")
        for signature in self.tables(f(18), "signature_defs"):
            g = self.table(signature, "signature_defs")
            for slot in (4, 6):
                for tensor_map in self.tables(g(slot), "signature_defs"):
                    self.string(self.table(tensor_map, "signature_defs")(4),
                                "signature_defs")
            self.string(g(8), "signature_defs")
        for group in self.tables(f(20), "buffer_table"):
            self.string(self.table(group, "buffer_table")(4), "buffer_table")
        for external in self.tables(f(22), "buffer_table"):
            self.string(self.table(external, "buffer_table")(12), "buffer_table")

    def subgraph(self, pos):
        f = self.table(pos, "model_header")
        for tensor in self.tables(f(4), "tensor_tables"):
            self.tensor(tensor)
        self.vector(f(6), 4, "model_header")
        self.vector(f(8), 4, "model_header")
        for op in self.tables(f(10), "operators"):
            self.operator(op)
        self.string(f(12), "model_header")

    def tensor(self, pos):
        f = self.table(pos, "tensor_tables")
        self.vector(f(4), 4, "shapes")
        self.string(f(10), "tensor_names")
        quantization = self.target(f(12))
        if quantization is not None:
            self.quantization(quantization)
        sparsity = self.target(f(16))
        if sparsity is not None:
            self.sparsity(sparsity)
        self.vector(f(18), 4, "shape_signatures")
        for variant in self.tables(f(22), "tensor_tables"):
            self.vector(self.table(variant, "tensor_tables")(4), 4, "tensor_tables")

    def quantization(self, pos):
        f = self.table(pos, "quant_other")
        self.vector(f(4), 4, "quant_other")
        self.vector(f(6), 4, "quant_other")
        self.vector(f(8), 4, "quant_scales")
        self.vector(f(10), 8, "quant_zero_points")
        details = self.target(f(14))
        if details is not None:
            # CustomQuantization (1) holds a byte vector; the block-wise
            # ones an int32 vector at slot 10.
            kind = self.u8(f(12))
            g = self.table(details, "quant_other")
            if kind == 1:
                self.vector(g(4), 1, "quant_other")
            else:
                self.vector(g(10), 4, "quant_other")

    def sparsity(self, pos):
        f = self.table(pos, "sparsity")
        self.vector(f(4), 4, "sparsity")
        self.vector(f(6), 4, "sparsity")
        for dim in self.tables(f(8), "sparsity"):
            g = self.table(dim, "sparsity")
            for type_slot, value_slot in ((8, 10), (12, 14)):
                target = self.target(g(value_slot))
                if target is None:
                    continue
                size = _SEGMENT_ELEMENT_SIZE.get(self.u8(g(type_slot)), 1)
                self.vector(self.table(target, "sparsity")(4), size, "sparsity")

    def operator(self, pos):
        f = self.table(pos, "operators")
        for slot in (6, 8, 20):
            self.vector(f(slot), 4, "operators")
        self.vector(f(18), 1, "operators")
        options = self.target(f(12))
        if options is not None:
            g = self.table(options, "operator_options")
            kind = _OPTION_NAMES.get(self.u8(f(10)))
            for slot, (what, size) in _OPTION_FIELDS.get(kind, {}).items():
                if what == "vector":
                    self.vector(g(slot), size, "operator_options")
                else:
                    self.string(g(slot), "operator_options")
        self.vector(f(14), 1, "operator_options")
        options = self.target(f(28))
        if options is not None:
            self.table(options, "operator_options")

    def buffer(self, index, pos):
        f = self.table(pos, "buffer_table")
        kind = self.buffer_kinds.get(index, "unreferenced_data")
        self.vector(f(4), 1, kind, prefix="buffer_table")
        offset_pos, size_pos = f(6), f(8)
        if offset_pos is not None and size_pos is not None:
            offset = struct.unpack_from("<Q", self.data, offset_pos)[0]
            size = struct.unpack_from("<Q", self.data, size_pos)[0]
            if offset > 1 and size > 0:
                self.claim(offset, size, kind)
