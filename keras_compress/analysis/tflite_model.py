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
import os

from keras_compress import _tflite
from keras_compress.analysis._tflite_graph import Subgraph
from keras_compress.analysis._tflite_tensors import display_shape
from keras_compress.analysis._tflite_tensors import ids
from keras_compress.analysis._tflite_tensors import prod
from keras_compress.analysis._tflite_tensors import text
from keras_compress.analysis.summary import LayerStats
from keras_compress.analysis.summary import Summary
from keras_compress.analysis.summary import make_total

_POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D")
_BINARY_OPS = ("CUSTOM:KC_BINARY_FC", "CUSTOM:KC_BINARY_CONV2D")


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
        rows += _rows(Subgraph(model, data, subgraph, claimed), prefix)
    return Summary(
        source="tflite",
        name=name,
        rows=rows,
        totals=make_total(rows, with_stored=True),
        file_bytes=len(data),
        gzip_bytes=len(gzip.compress(data, compresslevel=9, mtime=0)),
    )


def _macs(graph, k):
    """MACs of operator `k` of `graph`."""
    op, name = graph.ops[k], graph.names[k]
    ins = ids(op.inputs)
    outs = [o for o in ids(op.outputs) if o >= 0]
    out = graph.elements_of(outs[0]) if outs else 0

    def shape(j):
        return graph.shape(ins[j]) if j < len(ins) else None

    def elements(j):
        return graph.elements_of(ins[j]) if j < len(ins) else 0

    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        out = graph.dilated_output_elements(k) or out
        if name == "CONV_2D":
            return out * prod(shape(1)[1:])
        return out * prod(shape(1)[1:3])
    if name == "TRANSPOSE_CONV":
        f = shape(1)
        return elements(2) * prod(f[:3])
    if name == "FULLY_CONNECTED":
        return elements(0) * shape(1)[0]
    if name == "CONV_3D":
        return out * prod(shape(1)[:4])
    if name == "CONV_3D_TRANSPOSE":
        return elements(2) * prod(shape(1)[:4])
    if name == "BATCH_MATMUL":
        lhs = shape(0)
        options = op.builtinOptions
        inner = lhs[-2] if getattr(options, "adjX", False) else lhs[-1]
        return out * inner
    if name == "MUL":
        if any(graph.is_const(graph.alias.get(i, i)) for i in ins if i >= 0):
            return out
        return 0
    if name in _POOLS:
        options = op.builtinOptions
        return out * options.filterHeight * options.filterWidth
    if name in ("MEAN", "REDUCE_MAX"):
        return elements(0)
    return 0


def _packed_binary(graph, op):
    """`(params, nonzeros, stored bytes, MACs)` of a packed binary operator:
    its one-bit weights and int32 biases, as a builtin operator would count
    them, and the bytes of its packed weights and channel table."""
    from keras_compress.custom_ops import options as op_options

    custom = op.customOptions if op.customOptions is not None else []
    o = op_options.parse(bytes(bytearray(custom)),
                         "the custom options of a packed binary operator")
    inputs = ids(op.inputs)
    table = graph.const_values(inputs[2]) if len(inputs) == 3 else None
    weights = graph.const_values(inputs[1]) if len(inputs) == 3 else None
    columns = len(op_options.table_columns(o))
    if (table is None or table.size != o["out_c"] * columns
            or weights is None or weights.size != o["out_c"] * op_options.row_bytes(o)):
        raise ValueError(
            "Expected a packed binary operator with constant packed weights "
            f"({o['out_c']} x {op_options.row_bytes(o)} bytes) and channel "
            f"table ({o['out_c']} x {columns} int32). Received: inputs {inputs}"
        )
    table = op_options.channel_parameters(o, table)
    graph.claimed.update(graph.tensors[i].buffer for i in inputs[1:])
    per_channel = o["k_h"] * o["k_w"] * o["in_c"]
    params = o["out_c"] * (per_channel + 1)
    nonzeros = int((table[:, 0] != 0).sum()) * per_channel + int((table[:, 1] != 0).sum())
    stored = sum(graph.constant_stats(i)[2] for i in inputs[1:])
    batch = graph.elements_of(ids(op.outputs)[0]) // (o["out_h"] * o["out_w"] * o["out_c"])
    macs = batch * o["out_h"] * o["out_w"] * o["out_c"] * per_channel
    return params, nonzeros, stored, macs


def _rows(graph, prefix):
    """One `LayerStats` per operator of `graph`, names prefixed."""
    rows = []
    for k, (op, name) in enumerate(zip(graph.ops, graph.names)):
        params = nonzeros = stored = binary_macs = 0
        macs = None
        if name in _BINARY_OPS:
            params, nonzeros, stored, binary_macs = _packed_binary(graph, op)
            macs = binary_macs
        elif k not in graph.folded:
            for i in ids(op.inputs):
                if i in graph.decoded:
                    buffers = {graph.tensors[j].buffer for j in graph.decoded[i]}
                    if not buffers & graph.claimed:
                        graph.claimed.update(buffers)
                        p, nz, nbytes = graph.decoded_stats(i)
                        params += p
                        nonzeros += nz
                        stored += nbytes
                    continue
                source = graph.alias.get(i, i)
                if not graph.is_const(source):
                    continue
                buffer = graph.tensors[source].buffer
                if buffer in graph.claimed:
                    continue
                graph.claimed.add(buffer)
                p, nz, nbytes = graph.constant_stats(source)
                params += p
                nonzeros += nz
                stored += nbytes
        outs = [o for o in ids(op.outputs) if o >= 0]
        row_name = f"op_{k}"
        output_shape = None
        if outs:
            t = graph.tensors[outs[0]]
            label = text(t.name).split(";")[0]
            row_name = label or row_name
            output_shape = display_shape(t)
        rows.append(LayerStats.build(
            prefix + row_name, name, output_shape, params, nonzeros,
            _macs(graph, k) if macs is None else macs, stored, binary_macs,
        ))
    return rows
