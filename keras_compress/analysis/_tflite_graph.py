"""The operator graph of one `.tflite` subgraph, as the statistics read it.

Who produces and consumes each tensor, which constants reach an operator
through `DEQUANTIZE`/`DENSIFY` or a TFLM `DECODE`, and how many elements
each tensor holds at batch size 1 (see the conventions of
`keras_compress.analysis.tflite_model`).
"""

import numpy as np

from keras_compress import _tflite
from keras_compress.analysis._tflite_tensors import NUMPY_TYPES
from keras_compress.analysis._tflite_tensors import constant_stats
from keras_compress.analysis._tflite_tensors import ids
from keras_compress.analysis._tflite_tensors import prod
from keras_compress.analysis._tflite_tensors import static_shape

PASS_THROUGH = ("DEQUANTIZE", "DENSIFY")
DECODE = "CUSTOM:TFLM_DECODE"
SAME_ELEMENTS = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE")
# Operators whose activation input is not the first one.
_DATA_INPUT = {"TRANSPOSE_CONV": 2, "CONV_3D_TRANSPOSE": 2}


class Subgraph:
    """One subgraph of a parsed `.tflite` model.

    Args:
        model: The parsed flatbuffer model.
        data: The file's bytes (for buffers stored past the flatbuffer).
        subgraph: The subgraph to read.
        claimed: A set of buffer indices already counted, shared between
            the subgraphs of one model.
    """

    def __init__(self, model, data, subgraph, claimed):
        self.model = model
        self.data = data
        self.tensors = subgraph.tensors or []
        self.ops = subgraph.operators or []
        self.outputs = set(ids(subgraph.outputs))
        self.claimed = claimed  # Buffer indices already counted.
        self.names = [
            _tflite.builtin_op_name(model.operatorCodes[op.opcodeIndex])
            for op in self.ops
        ]
        self.producer = {}
        self.consumers = {}
        for k, op in enumerate(self.ops):
            for i in ids(op.outputs):
                self.producer[i] = k
            for i in ids(op.inputs):
                if i >= 0:
                    self.consumers.setdefault(i, []).append(k)
        consumed = set(self.consumers)
        # Outputs of DEQUANTIZE/DENSIFY of a constant -> that constant.
        self.alias = {}
        self.folded = set()  # Pass-through ops whose constant moves on.
        for k, (op, name) in enumerate(zip(self.ops, self.names)):
            ins, outs = ids(op.inputs), ids(op.outputs)
            if name not in PASS_THROUGH or not ins or len(outs) != 1:
                continue
            source = self.alias.get(ins[0], ins[0])
            if ins[0] >= 0 and self.is_const(source) and (
                outs[0] in consumed or outs[0] in self.outputs
            ):
                self.alias[outs[0]] = source
                if outs[0] in consumed:
                    self.folded.add(k)
        # Outputs of TFLM_DECODE -> (encoded, ancillary) constants.
        self.decoded = {}
        for k, (op, name) in enumerate(zip(self.ops, self.names)):
            ins, outs = ids(op.inputs), ids(op.outputs)
            if name == DECODE and len(ins) == 2 * len(outs):
                self.folded.add(k)
                for j, out in enumerate(outs):
                    self.decoded[out] = (ins[2 * j], ins[2 * j + 1])
        self.elems = {}
        self._propagate_elements()

    # -- constants ---------------------------------------------------------

    def is_const(self, i):
        """True if tensor `i` has a buffer holding data."""
        if i < 0:
            return False
        t = self.tensors[i]
        if t.isVariable or t.buffer <= 0:
            return False
        b = self.model.buffers[t.buffer]
        if b.data is not None and len(b.data) > 0:
            return True
        return b.offset > 1 and b.size > 0

    def raw(self, i):
        """The bytes of the buffer of tensor `i`."""
        b = self.model.buffers[self.tensors[i].buffer]
        if b.data is not None and len(b.data) > 0:
            return np.asarray(b.data, dtype=np.uint8).tobytes()
        return bytes(self.data[b.offset: b.offset + b.size])

    def const_values(self, i):
        """Values of an integer constant (e.g. a block shape), or None."""
        if i < 0 or not self.is_const(i):
            return None
        dtype = NUMPY_TYPES.get(self.tensors[i].type)
        if dtype is None:
            return None
        return np.frombuffer(self.raw(i), dtype=dtype)

    def constant_stats(self, i):
        """Returns `(params, nonzeros, stored bytes)` of constant `i`."""
        return constant_stats(self.tensors[i], self.raw(i))

    def decoded_stats(self, i):
        """`(params, nonzeros, stored bytes)` of DECODE output `i`."""
        from keras_compress._decode import check

        encoded, ancillary = self.decoded[i]
        stored = sum(len(self.raw(j)) for j in (encoded, ancillary) if self.is_const(j))
        try:
            values = check.decode_constant(
                self.raw(encoded), self.raw(ancillary), self.tensors[i]
            )
        except (ValueError, IndexError):
            params = prod(static_shape(self.tensors[i]))
            return params, params, stored
        params, nonzeros, _ = constant_stats(self.tensors[i], values.tobytes())
        return params, nonzeros, stored

    # -- shapes --------------------------------------------------------------

    def shape(self, i):
        """Static shape of tensor `i` (None for an absent input)."""
        return static_shape(self.tensors[i]) if i >= 0 else None

    def elements_of(self, i):
        """Elements of tensor `i` at batch size 1, dynamic shapes followed."""
        if i in self.elems:
            return self.elems[i]
        return prod(self.shape(i))

    def _batch_of(self, i):
        if i is None or i < 0:
            return 1
        t = self.tensors[i]
        sig = ids(t.shapeSignature)
        shape = self.shape(i)
        if not sig or sig[0] != -1 or -1 in sig[1:]:
            return 1
        inner = prod(shape[1:])
        if inner <= 0:
            return 1
        return max(1, self.elements_of(i) // inner)

    def data_input(self, k):
        """The activation input of operator `k`, or None."""
        op, name = self.ops[k], self.names[k]
        ins = ids(op.inputs)
        if name in _DATA_INPUT:
            j = _DATA_INPUT[name]
            return ins[j] if j < len(ins) and ins[j] >= 0 else None
        for i in ins:
            if i >= 0 and not self.is_const(self.alias.get(i, i)):
                return i
        return None

    def _propagate_elements(self):
        for k, (op, name) in enumerate(zip(self.ops, self.names)):
            x = self.data_input(k)
            for out in ids(op.outputs):
                if out < 0:
                    continue
                t = self.tensors[out]
                shape = self.shape(out)
                sig = ids(t.shapeSignature)
                if name in SAME_ELEMENTS and x is not None:
                    count = self.elements_of(x)
                elif name == "FULLY_CONNECTED" and x is not None and len(
                    ids(op.inputs)
                ) > 1:
                    w = self.shape(ids(op.inputs)[1])
                    if w and len(w) == 2 and w[1] > 0:
                        count = self.elements_of(x) // w[1] * w[0]
                    else:
                        count = prod(shape)
                elif sig and sig[0] == -1 and -1 not in sig[1:] and shape:
                    batch = self._batch_of(x)
                    if name in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"):
                        block = self.const_values(ids(op.inputs)[1])
                        factor = 1 if block is None else prod(block)
                        if name == "SPACE_TO_BATCH_ND":
                            batch *= factor
                        else:
                            batch = max(1, batch // max(factor, 1))
                    count = batch * prod(shape[1:])
                else:
                    count = prod(shape)
                self.elems[out] = count

    def dilated_output_elements(self, k):
        """Output elements of the dilated convolution op `k` belongs to.

        The converter writes a dilated convolution as SPACE_TO_BATCH_ND ->
        conv -> BATCH_TO_SPACE_ND, padding the input to a multiple of the
        dilation. The conv then runs on a padded grid; counting the outputs
        that BATCH_TO_SPACE_ND keeps gives the MACs of the convolution the
        model describes. Returns None when `k` is not in that pattern.
        """
        x = self.data_input(k)
        p = self.producer.get(x)
        while p is not None and self.names[p] in SAME_ELEMENTS:
            p = self.producer.get(self.data_input(p))
        if p is None or self.names[p] != "SPACE_TO_BATCH_ND":
            return None
        outs = ids(self.ops[k].outputs)
        t = outs[0] if outs else -1
        while True:
            users = self.consumers.get(t, [])
            if len(users) != 1:
                return None
            c = users[0]
            c_outs = ids(self.ops[c].outputs)
            if not c_outs:
                return None
            if self.names[c] in SAME_ELEMENTS:
                t = c_outs[0]
                continue
            if self.names[c] == "BATCH_TO_SPACE_ND":
                return self.elements_of(c_outs[0])
            return None
