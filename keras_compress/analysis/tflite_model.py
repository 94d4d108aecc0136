"""Per-operator statistics of a `.tflite` model, read from the flatbuffer.

No interpreter is used: shapes, constants and options come from the
flatbuffer (validated by `keras_compress._tflite.load_model_bytes`).

Conventions:

- Shapes: a dimension whose `shape_signature` is `-1` counts as 1 (batch size
  1). Element counts follow the data through `RESHAPE`/`EXPAND_DIMS`/
  `SQUEEZE` and the batch factor of `SPACE_TO_BATCH_ND`/`BATCH_TO_SPACE_ND`
  (dilated convolutions), so dynamic shapes still give exact MACs in those
  cases; other dynamic non-batch dimensions count as 1.
- MACs (per inference, batch 1): `CONV_2D` output elements * kh * kw * in
  (filter `[O, kh, kw, I]`); `DEPTHWISE_CONV_2D` output elements * kh * kw
  (for a dilated convolution, converted as `SPACE_TO_BATCH_ND` -> conv ->
  `BATCH_TO_SPACE_ND`, the output elements are those `BATCH_TO_SPACE_ND`
  keeps, not the padded grid the conv runs on);
  `TRANSPOSE_CONV` input elements * kh * kw * O; `FULLY_CONNECTED` input
  elements * units; `CONV_3D` output elements * kd * kh * kw * I;
  `CONV_3D_TRANSPOSE` input elements * kd * kh * kw * O; `BATCH_MATMUL`
  output elements * inner size; `MUL` with a constant operand: output
  elements (how a lone `BatchNormalization` converts); `MAX_POOL_2D`,
  `AVERAGE_POOL_2D`, `L2_POOL_2D`: output elements * filter_h * filter_w;
  `MEAN`, `REDUCE_MAX`: input elements. Every other operator (`ADD`, `SUB`,
  activations, reshapes, ...) costs 0. These agree with the Keras-side
  conventions of `keras_model` for the layers listed there.
- Params of an operator: elements of the weight constants among its inputs
  (tensors whose buffer holds data and whose dtype is floating point, or that
  carry quantization scales, e.g. int8 weights and int32 biases); integer
  constants without quantization (shapes, axes, paddings) are not params.
  Each buffer is counted once, by the first operator using it. Constants
  that go through `DEQUANTIZE` (float16 weights) or `DENSIFY` (sparse
  weights) are attributed to the operator consuming the result, so a float16
  model has the same rows' params as the float32 one; the `DEQUANTIZE` row
  then has none.
- Non-zeros: stored values different from the tensor's zero point (0 for
  float tensors and when no zero point is given; per-channel zero points are
  applied per channel). A sparse-encoded tensor counts its dense shape as
  params and its stored non-zero values as non-zeros.
- `bytes_stored`: length of the buffers of every constant the operator
  claims (weights and integer constants alike), in their stored dtype;
  sparse index metadata lives outside the buffers and is not counted.
- TFLite Micro `TFLM_DECODE` operators (`to_micro(..., compression=...)`):
  a decoded constant counts for the operator that reads it, with the
  decoded values' params and non-zeros and, as `bytes_stored`, its encoded
  and ancillary buffers; the DECODE row itself has none.
"""

import gzip
import math
import os

import numpy as np

from keras_compress import _tflite
from keras_compress.analysis.summary import LayerStats
from keras_compress.analysis.summary import Summary
from keras_compress.analysis.summary import make_total

_T = _tflite.schema.TensorType
_FLOAT_TYPES = {_T.FLOAT32, _T.FLOAT16, _T.FLOAT64, _T.BFLOAT16}
for _name in ("FLOAT8_E4M3FN", "FLOAT8_E5M2"):
    if hasattr(_T, _name):
        _FLOAT_TYPES.add(getattr(_T, _name))
_NUMPY_TYPES = {
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
_PASS_THROUGH = ("DEQUANTIZE", "DENSIFY")
_DECODE = "CUSTOM:TFLM_DECODE"
_SAME_ELEMENTS = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE")
_POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D")
# Operators whose activation input is not the first one.
_DATA_INPUT = {"TRANSPOSE_CONV": 2, "CONV_3D_TRANSPOSE": 2}


def summarize_tflite(obj):
    """Returns the `Summary` of a `.tflite` model.

    Args:
        obj: `.tflite` content as bytes, or a path (`str`/`os.PathLike`).

    Returns:
        A `Summary` with `source="tflite"`, one row per operator (operators
        of subgraphs after the first are named `"subgraph_<i>/<name>"`) and
        `file_bytes` set.

    Raises:
        ValueError: if the file is missing, corrupt or truncated.
    """
    data, model = _tflite.load_model_bytes(obj, "obj")
    if isinstance(obj, (str, os.PathLike)):
        name = os.path.basename(os.fspath(obj))
    else:
        name = "<bytes>"
    claimed = set()
    rows = []
    for g, subgraph in enumerate(model.subgraphs):
        prefix = "" if g == 0 else f"subgraph_{g}/"
        rows += _Subgraph(model, data, subgraph, claimed).rows(prefix)
    return Summary(
        source="tflite",
        name=name,
        rows=rows,
        totals=make_total(rows, with_stored=True),
        file_bytes=len(data),
        gzip_bytes=len(gzip.compress(data, compresslevel=9, mtime=0)),
    )


def _prod(dims):
    return math.prod(int(d) for d in dims)


class _Subgraph:
    def __init__(self, model, data, subgraph, claimed):
        self.model = model
        self.data = data
        self.tensors = subgraph.tensors or []
        self.ops = subgraph.operators or []
        self.outputs = set(_ids(subgraph.outputs))
        self.claimed = claimed  # Buffer indices already counted.
        self.names = [
            _tflite.builtin_op_name(model.operatorCodes[op.opcodeIndex])
            for op in self.ops
        ]
        self.producer = {}
        self.consumers = {}
        for k, op in enumerate(self.ops):
            for i in _ids(op.outputs):
                self.producer[i] = k
            for i in _ids(op.inputs):
                if i >= 0:
                    self.consumers.setdefault(i, []).append(k)
        consumed = set(self.consumers)
        # Outputs of DEQUANTIZE/DENSIFY of a constant -> that constant.
        self.alias = {}
        self.folded = set()  # Pass-through ops whose constant moves on.
        for k, (op, name) in enumerate(zip(self.ops, self.names)):
            ins, outs = _ids(op.inputs), _ids(op.outputs)
            if name not in _PASS_THROUGH or not ins or len(outs) != 1:
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
            ins, outs = _ids(op.inputs), _ids(op.outputs)
            if name == _DECODE and len(ins) == 2 * len(outs):
                self.folded.add(k)
                for j, out in enumerate(outs):
                    self.decoded[out] = (ins[2 * j], ins[2 * j + 1])
        self.elems = {}
        self._propagate_elements()

    # -- constants ---------------------------------------------------------

    def is_const(self, i):
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
        b = self.model.buffers[self.tensors[i].buffer]
        if b.data is not None and len(b.data) > 0:
            return np.asarray(b.data, dtype=np.uint8).tobytes()
        return bytes(self.data[b.offset: b.offset + b.size])

    def const_values(self, i):
        """Values of an integer constant (e.g. a block shape), or None."""
        if i < 0 or not self.is_const(i):
            return None
        dtype = _NUMPY_TYPES.get(self.tensors[i].type)
        if dtype is None:
            return None
        return np.frombuffer(self.raw(i), dtype=dtype)

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
            params = _prod(_shape(self.tensors[i]))
            return params, params, stored
        params, nonzeros, _ = self.constant_stats(i, raw=values.tobytes())
        return params, nonzeros, stored

    def constant_stats(self, i, raw=None):
        """Returns `(params, nonzeros, stored bytes)` of constant `i`.

        `raw` gives the values' bytes of a tensor without a buffer.
        """
        t = self.tensors[i]
        raw = self.raw(i) if raw is None else raw
        q = t.quantization
        quantized = q is not None and q.scale is not None and len(q.scale) > 0
        if t.type not in _FLOAT_TYPES and not quantized:
            return 0, 0, len(raw)
        params = _prod(_shape(t))
        values = _decode(t.type, raw)
        if values is None:
            return params, params, len(raw)
        if t.sparsity is None:
            values = values[:params]
        zero = 0
        if quantized and q.zeroPoint is not None and len(q.zeroPoint) > 0:
            zp = np.asarray(q.zeroPoint).reshape(-1)
            shape = _shape(t)
            if zp.size == 1 or np.all(zp == zp[0]):
                zero = zp[0]
            elif values.size == params and 0 <= q.quantizedDimension < len(
                shape
            ) and shape[q.quantizedDimension] == zp.size:
                bshape = [1] * len(shape)
                bshape[q.quantizedDimension] = zp.size
                values = values.reshape(shape)
                zero = zp.reshape(bshape)
        if t.type in _FLOAT_TYPES and values.dtype.kind == "u":
            nonzeros = int(np.count_nonzero(values))  # Bit patterns of +-0.
        else:
            nonzeros = int(np.count_nonzero(values != zero))
        return params, min(nonzeros, params), len(raw)

    # -- shapes --------------------------------------------------------------

    def shape(self, i):
        return _shape(self.tensors[i]) if i >= 0 else None

    def _elements_of(self, i):
        if i in self.elems:
            return self.elems[i]
        return _prod(self.shape(i))

    def _batch_of(self, i):
        if i is None or i < 0:
            return 1
        t = self.tensors[i]
        sig = _ids(t.shapeSignature)
        shape = self.shape(i)
        if not sig or sig[0] != -1 or -1 in sig[1:]:
            return 1
        inner = _prod(shape[1:])
        if inner <= 0:
            return 1
        return max(1, self._elements_of(i) // inner)

    def data_input(self, k):
        op, name = self.ops[k], self.names[k]
        ins = _ids(op.inputs)
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
            for out in _ids(op.outputs):
                if out < 0:
                    continue
                t = self.tensors[out]
                shape = self.shape(out)
                sig = _ids(t.shapeSignature)
                if name in _SAME_ELEMENTS and x is not None:
                    count = self._elements_of(x)
                elif name == "FULLY_CONNECTED" and x is not None and len(
                    _ids(op.inputs)
                ) > 1:
                    w = self.shape(_ids(op.inputs)[1])
                    if w and len(w) == 2 and w[1] > 0:
                        count = self._elements_of(x) // w[1] * w[0]
                    else:
                        count = _prod(shape)
                elif sig and sig[0] == -1 and -1 not in sig[1:] and shape:
                    batch = self._batch_of(x)
                    if name in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"):
                        block = self.const_values(_ids(op.inputs)[1])
                        factor = 1 if block is None else _prod(block)
                        if name == "SPACE_TO_BATCH_ND":
                            batch *= factor
                        else:
                            batch = max(1, batch // max(factor, 1))
                    count = batch * _prod(shape[1:])
                else:
                    count = _prod(shape)
                self.elems[out] = count

    # -- rows ----------------------------------------------------------------

    def macs(self, k):
        op, name = self.ops[k], self.names[k]
        ins = _ids(op.inputs)
        outs = [o for o in _ids(op.outputs) if o >= 0]
        out = self._elements_of(outs[0]) if outs else 0

        def shape(j):
            return self.shape(ins[j]) if j < len(ins) else None

        def elements(j):
            return self._elements_of(ins[j]) if j < len(ins) else 0

        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            out = self._dilated_output_elements(k) or out
            if name == "CONV_2D":
                return out * _prod(shape(1)[1:])
            return out * _prod(shape(1)[1:3])
        if name == "TRANSPOSE_CONV":
            f = shape(1)
            return elements(2) * _prod(f[:3])
        if name == "FULLY_CONNECTED":
            return elements(0) * shape(1)[0]
        if name == "CONV_3D":
            return out * _prod(shape(1)[:4])
        if name == "CONV_3D_TRANSPOSE":
            return elements(2) * _prod(shape(1)[:4])
        if name == "BATCH_MATMUL":
            lhs = shape(0)
            options = op.builtinOptions
            inner = lhs[-2] if getattr(options, "adjX", False) else lhs[-1]
            return out * inner
        if name == "MUL":
            if any(self.is_const(self.alias.get(i, i)) for i in ins if i >= 0):
                return out
            return 0
        if name in _POOLS:
            options = op.builtinOptions
            return out * options.filterHeight * options.filterWidth
        if name in ("MEAN", "REDUCE_MAX"):
            return elements(0)
        return 0

    def _dilated_output_elements(self, k):
        """Output elements of the dilated convolution op `k` belongs to.

        The converter writes a dilated convolution as SPACE_TO_BATCH_ND ->
        conv -> BATCH_TO_SPACE_ND, padding the input to a multiple of the
        dilation. The conv then runs on a padded grid; counting the outputs
        that BATCH_TO_SPACE_ND keeps gives the MACs of the convolution the
        model describes. Returns None when `k` is not in that pattern.
        """
        x = self.data_input(k)
        p = self.producer.get(x)
        while p is not None and self.names[p] in _SAME_ELEMENTS:
            p = self.producer.get(self.data_input(p))
        if p is None or self.names[p] != "SPACE_TO_BATCH_ND":
            return None
        outs = _ids(self.ops[k].outputs)
        t = outs[0] if outs else -1
        while True:
            users = self.consumers.get(t, [])
            if len(users) != 1:
                return None
            c = users[0]
            c_outs = _ids(self.ops[c].outputs)
            if not c_outs:
                return None
            if self.names[c] in _SAME_ELEMENTS:
                t = c_outs[0]
                continue
            if self.names[c] == "BATCH_TO_SPACE_ND":
                return self._elements_of(c_outs[0])
            return None

    def rows(self, prefix):
        rows = []
        for k, (op, name) in enumerate(zip(self.ops, self.names)):
            params = nonzeros = stored = 0
            if k not in self.folded:
                for i in _ids(op.inputs):
                    if i in self.decoded:
                        buffers = {self.tensors[j].buffer for j in self.decoded[i]}
                        if not buffers & self.claimed:
                            self.claimed.update(buffers)
                            p, nz, nbytes = self.decoded_stats(i)
                            params += p
                            nonzeros += nz
                            stored += nbytes
                        continue
                    source = self.alias.get(i, i)
                    if not self.is_const(source):
                        continue
                    buffer = self.tensors[source].buffer
                    if buffer in self.claimed:
                        continue
                    self.claimed.add(buffer)
                    p, nz, nbytes = self.constant_stats(source)
                    params += p
                    nonzeros += nz
                    stored += nbytes
            outs = [o for o in _ids(op.outputs) if o >= 0]
            row_name = f"op_{k}"
            output_shape = None
            if outs:
                t = self.tensors[outs[0]]
                label = _text(t.name).split(";")[0]
                row_name = label or row_name
                output_shape = _display_shape(t)
            rows.append(LayerStats.build(
                prefix + row_name, name, output_shape, params, nonzeros,
                self.macs(k), stored,
            ))
        return rows


def _ids(values):
    return [] if values is None else [int(v) for v in values]


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _shape(t):
    """Static shape with dynamic (-1) dimensions as 1."""
    shape = _ids(t.shape)
    sig = _ids(t.shapeSignature)
    if len(sig) == len(shape):
        shape = [1 if s == -1 else d for d, s in zip(shape, sig)]
    return [max(d, 1) if d < 0 else d for d in shape]


def _display_shape(t):
    shape = _ids(t.shape)
    sig = _ids(t.shapeSignature)
    if len(sig) == len(shape):
        return tuple(None if s == -1 else d for d, s in zip(shape, sig))
    return tuple(shape)


def _decode(tensor_type, raw):
    """Stored values as a numpy array, or None for unsupported types.

    Floating types come back as floats, except bfloat16 and float8, which come
    back as their bit patterns with the sign bit cleared (0 means zero).
    """
    if tensor_type in _NUMPY_TYPES:
        dtype = np.dtype(_NUMPY_TYPES[tensor_type])
        usable = len(raw) - len(raw) % dtype.itemsize
        return np.frombuffer(raw[:usable], dtype=dtype)
    packed = np.frombuffer(raw, dtype=np.uint8)
    if tensor_type == _T.BFLOAT16:
        usable = len(raw) - len(raw) % 2
        return np.frombuffer(raw[:usable], dtype="<u2") & 0x7FFF
    if tensor_type in _FLOAT_TYPES:  # float8 variants.
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
