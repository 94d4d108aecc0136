"""Replace the int8 operators of binary layers by packed custom operators.

For each `BinaryDense` / `BinaryConv2D` of the Keras model, the
FULLY_CONNECTED / CONV_2D of the builtin int8 file whose int8 weights are
that layer's (each output channel takes the values +-m, with the layer's
signs, or all flipped where a folded batch norm scale is negative) becomes
a custom operator reading:

- the same int8 input, or, where the input is the layer's binarization
  chain (`binarize.find`), the tensor before it (the chain is then dropped
  if nothing else reads it);
- the weights as bits (`custom_ops.reference.pack_signs`);
- per output channel: m, the int32 bias, and TFLite's output multiplier
  and shift for input scale * weight scale / output scale, as an int32
  table of the values that differ between channels (the others are stored
  once in the options).

Its output is the builtin operator's output tensor (same quantization), and
its arithmetic is TFLite's reference int8 arithmetic, so a verified file is
bit-identical to the builtin one. A layer whose bits would not be smaller
than its int8 weights (fewer than 5 input channels per tap) keeps its
builtin operator.
"""

import dataclasses

import numpy as np

from keras_compress import _tflite
from keras_compress import _tflite_edit
from keras_compress.custom_ops import options as _options
from keras_compress.custom_ops import reference
from keras_compress.export import _lean
from keras_compress.export._packed import binarize
from keras_compress.export._packed import graph as g

S = g.S
_ACTIVATIONS = {
    S.ActivationFunctionType.NONE: (None, None),
    S.ActivationFunctionType.RELU: (0.0, None),
    S.ActivationFunctionType.RELU6: (0.0, 6.0),
    S.ActivationFunctionType.RELU_N1_TO_1: (-1.0, 1.0),
}


@dataclasses.dataclass
class PackedLayer:
    """How one binary layer was written.

    Attributes:
        layer: The Keras layer's name.
        op: `KC_BINARY_FC` / `KC_BINARY_CONV2D`, or the builtin kept.
        input: `"binary"` (the operator binarizes its input: XOR and
            popcount) or `"int8"` (int8 input, binary weights).
        weights: Number of binary weights.
        int8_bytes: Bytes of the builtin int8 weights.
        packed_bytes: Bytes of the packed weights (0 when kept builtin).
        note: Why the builtin operator was kept (None when packed).
    """

    layer: str
    op: str
    input: str
    weights: int
    int8_bytes: int
    packed_bytes: int
    note: object = None


def binary_layers(model):
    """The model's BinaryDense / BinaryConv2D layers (nested models included)."""
    from keras_compress.layers import BinaryConv2D, BinaryDense

    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, (BinaryDense, BinaryConv2D))]


def _layer_signs(layer):
    kernel = np.asarray(layer.kernel.numpy() if hasattr(layer.kernel, "numpy")
                        else layer.kernel)
    if kernel.ndim == 2:  # Dense (in, out) -> (out, 1, in)
        return (kernel.T >= 0)[:, None, :]
    # Conv2D (kh, kw, in, out) -> (out, kh * kw, in)
    out_c = kernel.shape[-1]
    return (np.transpose(kernel, (3, 0, 1, 2)) >= 0).reshape(out_c, -1, kernel.shape[2])


def _op_weights(model, graph, op):
    """The op's int8 weights as (out_c, taps, in_c), or None."""
    index = g.ids(op.inputs)[1]
    if graph.tensors[index].type != S.TensorType.INT8:
        return None
    w = g.constant(model, graph, index)
    if w is None or w.ndim not in (2, 4):
        return None
    return w.reshape(w.shape[0], -1, w.shape[-1])


def _binary_magnitudes(q, signs):
    """Per-channel m if `q` takes only +-m in each channel with `signs`
    (or every sign flipped); else None."""
    if q is None or q.shape != signs.shape:
        return None
    magnitude = np.abs(q.astype(np.int32)).max(axis=(1, 2))
    if not np.all(np.abs(q.astype(np.int32)) == magnitude[:, None, None]):
        return None
    positive = q > 0
    same = np.all(positive == signs, axis=(1, 2))
    flipped = np.all(positive != signs, axis=(1, 2))
    if not np.all(same | flipped | (magnitude == 0)):
        return None
    return magnitude


@dataclasses.dataclass
class Check:
    """What one packed operator must compute, in the builtin file's terms:
    `reference.run(options, tensor source, packed, params)` equals tensor
    `output` (indices of the builtin file)."""

    layer: str
    source: int
    output: int
    options: dict
    packed: object
    params: object


def pack(data, model):
    """Returns `(packed .tflite bytes, [PackedLayer], [Check])`.

    Raises:
        ValueError: if the model has no binary layer, or a binary layer has
            no operator with its weights in `data`.
    """
    layers = binary_layers(model)
    if not layers:
        raise ValueError(
            "binary='packed' writes BinaryDense and BinaryConv2D layers as "
            f"bit-packed operators. Expected a model with such layers. "
            f"Received: model {model.name!r} has none"
        )
    flat = _tflite.parse(data)
    graph = flat.subgraphs[0]
    links = g.Links(graph)
    candidates = [k for k, op in enumerate(graph.operators)
                  if g.op_name(flat, op) in ("FULLY_CONNECTED", "CONV_2D")]
    rows, checks, claimed = [], [], set()
    for layer in layers:
        signs = _layer_signs(layer)
        match = None
        for k in candidates:
            if k in claimed:
                continue
            m = _binary_magnitudes(_op_weights(flat, graph, graph.operators[k]), signs)
            if m is not None:
                match = (k, m)
                break
        if match is None:
            raise ValueError(
                f"Expected an int8 operator with the binary weights of layer "
                f"{layer.name!r} ({type(layer).__name__}) in the converted "
                "file. Received: no FULLY_CONNECTED or CONV_2D has them (is "
                "the layer's output used?)"
            )
        claimed.add(match[0])
        row, check = _replace(flat, graph, links, match[0], match[1], layer.name)
        rows.append(row)
        if check is not None:
            checks.append(check)
    g.remove_dead_operators(flat, graph)
    _lean.remove_unused(flat)
    return _tflite.serialize(flat), rows, checks


def _replace(model, graph, links, k, magnitude, layer_name):
    op = graph.operators[k]
    name = g.op_name(model, op)
    inputs = g.ids(op.inputs)
    weights = graph.tensors[inputs[1]]
    out_c = int(weights.shape[0])
    taps = int(np.prod(weights.shape[1:-1])) if len(weights.shape) == 4 else 1
    in_c = int(weights.shape[-1])
    count = out_c * taps * in_c
    options = _shape_options(model, graph, op, name)
    kind = "KC_BINARY_FC" if name == "FULLY_CONNECTED" else "KC_BINARY_CONV2D"
    if isinstance(options, str):
        return PackedLayer(layer_name, name, "int8", count, count, 0, options), None
    packed_bytes = out_c * _options.row_bytes(options)
    if packed_bytes >= count:
        return PackedLayer(
            layer_name, name, "int8", count, count, 0,
            f"{in_c} input channel(s) per kernel tap: the bits (padded to "
            "32 per tap) would not be smaller than the int8 weights"), None
    x_scales, x_zeros = g.quantization(graph.tensors[inputs[0]])
    if graph.tensors[inputs[0]].type != S.TensorType.INT8 or x_scales.size != 1:
        return PackedLayer(layer_name, name, "int8", count, count, 0,
                           "its input is not a per-tensor quantized int8 tensor"), None
    x_scale, x_zero = float(x_scales[0]), int(x_zeros[0])
    chain = binarize.find(model, graph, links, inputs[0])
    source = chain.source if chain else inputs[0]
    options.update(_input_options(chain, x_zero))
    output = graph.tensors[g.ids(op.outputs)[0]]
    act = _activation_range(op, output)
    if act is None:
        return PackedLayer(layer_name, name, "int8", count, count, 0,
                           "its fused activation has no int8 clamp here"), None
    options["output_zero_point"] = int(g.quantization(output)[1][0])
    options["act_min"], options["act_max"] = act
    q = g.constant(model, graph, inputs[1]).reshape(out_c, taps, in_c)
    params = _options.split_parameters(
        options, _channel_params(model, graph, inputs, output, x_scale, magnitude, q))
    custom = _tflite_edit.custom_opcode_index(model, kind)
    packed = reference.pack_signs(np.where(q > 0, 1, -1), _options.words_per_tap(options))
    w_index = _tflite_edit.add_constant(model, graph, packed, S.TensorType.UINT8,
                                        f"{layer_name}/packed_weights")
    p_index = _tflite_edit.add_constant(model, graph, params, S.TensorType.INT32,
                                        f"{layer_name}/channel_params")
    new = S.OperatorT()
    new.opcodeIndex = custom
    new.inputs = np.asarray([source, w_index, p_index], dtype=np.int32)
    new.outputs = np.asarray(g.ids(op.outputs), dtype=np.int32)
    new.customOptions = np.frombuffer(_options.pack(options), dtype=np.uint8)
    new.customOptionsFormat = S.CustomOptionsFormat.FLEXBUFFERS
    graph.operators[k] = new
    row = PackedLayer(layer_name, kind, "binary" if chain else "int8", count,
                      count, packed_bytes)
    return row, Check(layer_name, source, int(new.outputs[0]), dict(options), packed, params)


def _input_options(chain, x_zero):
    if chain is None:
        return {"input_mode": _options.INPUT_INT8, "input_zero_point": x_zero,
                "threshold": 0, "d_plus": 0, "d_minus": 0}
    return {"input_mode": _options.INPUT_BINARY, "input_zero_point": 0,
            "threshold": chain.threshold,
            "d_plus": chain.value_true - x_zero,
            "d_minus": chain.value_false - x_zero}


def _shape_options(model, graph, op, name):
    """The shape fields of the options, or a note why the op stays builtin."""
    inputs = g.ids(op.inputs)
    weights = graph.tensors[inputs[1]]
    x = graph.tensors[inputs[0]]
    out = graph.tensors[g.ids(op.outputs)[0]]
    base = dict.fromkeys(_options.FIELDS, 0)
    base.update(kind=_options.FC, in_h=1, in_w=1, out_h=1, out_w=1, k_h=1,
                k_w=1, stride_h=1, stride_w=1, dilation_h=1, dilation_w=1,
                in_c=int(weights.shape[1]), out_c=int(weights.shape[0]))
    if name == "FULLY_CONNECTED":
        o = op.builtinOptions
        if o is not None and o.weightsFormat != S.FullyConnectedOptionsWeightsFormat.DEFAULT:
            return "its weights are shuffled"
        return base
    o = op.builtinOptions
    shape, out_shape = g.ids(x.shape), g.ids(out.shape)
    out_c, k_h, k_w, in_c = (int(v) for v in weights.shape)
    if len(shape) != 4 or len(out_shape) != 4 or shape[3] != in_c:
        return "a grouped or non-4D convolution"
    base.update(kind=_options.CONV2D, in_h=shape[1], in_w=shape[2], in_c=in_c,
                out_h=out_shape[1], out_w=out_shape[2], out_c=out_c, k_h=k_h,
                k_w=k_w, stride_h=o.strideH, stride_w=o.strideW,
                dilation_h=o.dilationHFactor, dilation_w=o.dilationWFactor)
    for axis, pad in (("h", "pad_top"), ("w", "pad_left")):
        extent = (base[f"k_{axis}"] - 1) * base[f"dilation_{axis}"] + 1
        total = (base[f"out_{axis}"] - 1) * base[f"stride_{axis}"] + extent - base[f"in_{axis}"]
        base[pad] = max(total, 0) // 2 if o.padding == S.Padding.SAME else 0
    try:
        _options.check(base)
    except ValueError as e:
        return f"its shapes do not fit the packed operator ({e})"
    return base


def _activation_range(op, output):
    act = getattr(op.builtinOptions, "fusedActivationFunction", S.ActivationFunctionType.NONE)
    if act not in _ACTIVATIONS:
        return None
    scales, zero_points = g.quantization(output)
    scale, zero = np.float32(scales[0]), int(zero_points[0])

    def quantize(x):
        v = np.float32(x) / scale
        return zero + int(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)))

    low, high = _ACTIVATIONS[act]
    act_min = -128 if low is None else max(-128, quantize(low))
    act_max = 127 if high is None else min(127, quantize(high))
    return act_min, act_max


def _channel_params(model, graph, inputs, output, x_scale, magnitude, q):
    out_c = q.shape[0]
    w_scales = g.quantization(graph.tensors[inputs[1]])[0]
    w_scales = np.broadcast_to(w_scales, (out_c,)) if w_scales.size == 1 else w_scales
    out_scale = g.quantization(output)[0][0]
    bias = g.constant(model, graph, inputs[2]) if len(inputs) > 2 else None
    bias = np.zeros(out_c, dtype=np.int64) if bias is None else bias.astype(np.int64)
    params = np.zeros((out_c, len(_options.PARAMS)), dtype=np.int64)
    for j in range(out_c):
        multiplier, shift = reference.quantize_multiplier(
            x_scale * float(w_scales[j]) / out_scale)
        params[j] = (magnitude[j], bias[j], multiplier, shift)
    return params
