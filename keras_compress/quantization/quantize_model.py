"""`quantize_model`: a Keras model -> the same model with quantization-aware layers."""

import warnings

import keras

from keras_compress import graph
from keras_compress import quantizers as quantizers_lib
from keras_compress import weights
from keras_compress.layers.quantized import (
    QuantConv1D,
    QuantConv2D,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantLayer,
    Quantize,
)
from keras_compress.quantization import _expand

L = keras.layers

# Float layer -> its quantization-aware drop-in (exact class match).
QUANT_CLASSES = {
    L.Dense: QuantDense,
    L.Conv1D: QuantConv1D,
    L.Conv2D: QuantConv2D,
    L.DepthwiseConv2D: QuantDepthwiseConv2D,
}
# Layers whose int8 output keeps its input's scale: no new range needed.
PASS_THROUGH = (
    L.InputLayer, L.MaxPooling1D, L.MaxPooling2D, L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D, L.Flatten, L.Reshape, L.Dropout, L.SpatialDropout1D,
    L.SpatialDropout2D, L.GaussianNoise, L.ZeroPadding1D, L.ZeroPadding2D,
    L.Cropping1D, L.Cropping2D, L.Permute, L.Identity,
)
# Layers that get a range on their output.
REQUANTIZING = (
    L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum,
    L.Concatenate, L.AveragePooling1D, L.AveragePooling2D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.BatchNormalization,
    L.ReLU, L.LeakyReLU, L.ELU, L.PReLU, L.Activation, L.UpSampling1D,
    L.UpSampling2D, L.Rescaling,
)
# Activations TFLite fuses into the op before them, and those whose int8
# kernels have a fixed output range (the converter sets it).
FUSED = ("relu", "relu6")
FIXED_RANGE = ("softmax", "sigmoid", "tanh", "log_softmax")


def _activation_name(layer):
    if isinstance(layer, L.Softmax):
        return "softmax"
    if isinstance(layer, L.ReLU):
        if layer.negative_slope == 0 and layer.threshold == 0:
            if layer.max_value is None:
                return "relu"
            if float(layer.max_value) == 6.0:
                return "relu6"
        return "other"
    if isinstance(layer, L.Activation):
        return getattr(layer.activation, "__name__", "other")
    return None


def _layer_activation(layer):
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "linear") if act is not None else "linear"


class _Plan:
    """Walks the float model once and decides what each call becomes."""

    def __init__(self, model, fold_batchnorm):
        self.model = model
        self.fused_bn = {}  # id(conv layer) -> bn layer
        self.skipped = set()  # id(bn layers folded away)
        self.consumers = graph.consumers(model)
        if fold_batchnorm:
            self._find_batchnorm()

    def _find_batchnorm(self):
        for node in graph.nodes(self.model):
            layer = node.operation
            if type(layer) not in QUANT_CLASSES or _layer_activation(layer) != "linear":
                continue
            if len(layer._inbound_nodes) != 1 or len(node.outputs) != 1:
                continue
            users = self.consumers.get(id(node.outputs[0]), [])
            if len(users) != 1:
                continue
            bn = users[0].operation
            if (
                isinstance(bn, L.BatchNormalization)
                and bn.axis in (-1, len(node.outputs[0].shape) - 1)
                and len(bn._inbound_nodes) == 1
                and bn.center and bn.scale
            ):
                self.fused_bn[id(layer)] = bn
                self.skipped.add(id(bn))

    def sole_consumer(self, tensor):
        users = self.consumers.get(id(tensor), [])
        return users[0].operation if len(users) == 1 else None


def quantize_model(
    model,
    kernel_quantizer="default",
    activation_quantizer="fake_quant",
    fold_batchnorm=True,
    unsupported="error",
):
    """Returns a copy of `model` ready for quantization-aware training.

    Every `Dense`, `Conv1D`, `Conv2D` and `DepthwiseConv2D` becomes its
    `Quant*` drop-in with the same config and weights; a `BatchNormalization`
    that follows one of them (linear activation, sole consumer, channel
    axis) is fused into it (`batch_norm=...`, trained with folding as the
    int8 model computes it). `Quantize` layers are placed where TFLite's
    int8 kernels write a new scale: on each model input, after each conv or
    dense layer (after the ReLU/ReLU6 that TFLite fuses into it), after
    residual adds, concatenations, averages and other activations.
    Max-pooling, reshapes, padding and dropout keep their input's scale;
    softmax, sigmoid and tanh have fixed int8 output ranges. A dense or conv
    layer with such an activation is split into the layer and an
    `Activation`, with a `Quantize` in between.

    Layers that are already quantization-aware (`QuantDense`,
    `BinaryDense`, `BinaryConv2D`, ...) keep their own kernel quantizers and
    get ranges around them like the float layers, so a binary or low-bit
    network exports to full int8 without calibration data.

    keras-compress's composite layers are quantized through their parts: a
    `DepthwiseSeparableConv2D` becomes its depthwise convolution, batch
    norms, activations and pointwise convolution (each convolution fused
    with its BatchNormalization), a `LowRankDense`/`LowRankConv2D` its two
    factors.

    Compression state carries over (tfmot's PQAT, CQAT and PCQAT): a
    kernel with a `PruningMask` or a weight-clustering constraint keeps a
    copy of it in the QAT model, which keeps applying it after every
    optimizer step. Zeros stay exactly zero (int8 weights are symmetric, so
    zero is on the grid) and a clustered kernel keeps at most its number of
    clusters of distinct values per channel, so the int8 file has exactly
    the same zeros and at most that many int8 values per channel.

    After `fit`, `to_tflite(model, quantize="int8")` converts it to full
    int8 with the learned ranges, without calibration data.

    Args:
        model: A built Functional or Sequential `keras.Model`. Subclassed
            models: build them from the `Quant*` layers directly.
        kernel_quantizer: Kernel quantizer of every converted layer:
            `"default"` (TFLite's int8: per channel for convolutions, per
            tensor for dense), or a quantizer, name or config (for low-bit
            training, e.g. `DoReFa(4)`).
        activation_quantizer: Quantizer of the `Quantize` layers, default
            `"fake_quant"` (8 bits, asymmetric, moving-average ranges).
        fold_batchnorm: Fuse conv/dense + BatchNormalization pairs, default
            True.
        unsupported: What to do with a layer this function cannot quantize
            (custom layers, `EinsumDense`, RNNs, transposed or separable
            convolutions, nested models): `"error"` (default, a ValueError
            naming it) or `"float"` (keep it in float, with a warning;
            a full-int8 export then needs representative data or fails).

    Returns:
        A new `keras.Model`; the input model is not changed.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> qat = quantize_model(model)
    """
    graph_model = graph.check_graph_model(
        model, "quantize_model rebuilds the layer graph, and a subclassed "
        "model has none (build it from QuantDense/QuantConv2D/... and "
        "Quantize layers directly).")
    if unsupported not in ("error", "float"):
        raise ValueError(
            "Expected `unsupported` to be 'error' or 'float'. "
            f"Received: unsupported={unsupported!r}"
        )
    if kernel_quantizer != "default":
        quantizers_lib.get(kernel_quantizer)  # Validate early.
    quantizers_lib.get(activation_quantizer)
    if _expand.has_composites(graph_model):
        graph_model = graph.graph_of(_expand.expand_composites(graph_model))
    plan = _Plan(graph_model, fold_batchnorm)
    _check_supported(graph_model, plan, unsupported)

    new_layers = {}
    originals = {}

    def operation_fn(layer):
        if id(layer) not in new_layers:
            new = _convert_layer(layer, plan, kernel_quantizer)
            new_layers[id(layer)] = new
            originals[id(new)] = layer
        return new_layers[id(layer)]

    def quantize(tensor, name):
        if not keras.backend.is_float_dtype(tensor.dtype):
            return tensor
        layer = Quantize(activation_quantizer, name=_unique(name))
        return layer(tensor)

    def call_fn(new, *args, **kwargs):
        old = originals[id(new)]
        if id(old) in plan.skipped:
            return args[0]  # A fused BatchNormalization: its conv did it.
        outputs = new(*args, **kwargs)
        if isinstance(new, QuantLayer) and getattr(new, "_split_activation", None):
            outputs = quantize(outputs, f"{new.name}_quantize")
            return L.Activation(new._split_activation,
                                name=_unique(f"{new.name}_activation"))(outputs)
        if _needs_range(old, plan):
            return quantize(outputs, f"{new.name}_quantize")
        return outputs

    used = {layer.name for layer in graph_model._flatten_layers()}

    def _unique(name):
        base, i = name, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    names = [x._keras_history.operation.name for x in graph_model.inputs]
    inputs = [
        keras.Input(batch_shape=x.shape, dtype=x.dtype, name=name)
        for x, name in zip(graph_model.inputs, names)
    ]
    fed = [quantize(x, f"{name}_quantize") for x, name in zip(inputs, names)]
    outputs = graph_model._run_through_graph(
        fed, operation_fn=operation_fn, call_fn=call_fn
    )
    new_model = keras.Model(
        inputs if len(inputs) > 1 else inputs[0], outputs,
        name=f"{model.name}_qat",
    )
    for new in new_layers.values():
        _copy_weights(originals[id(new)], new, plan)
    return new_model


def _check_supported(model, plan, unsupported):
    for node in graph.nodes(model):
        layer = node.operation
        known = (
            type(layer) in QUANT_CLASSES
            or isinstance(layer, (QuantLayer,) + PASS_THROUGH + REQUANTIZING
                          + (L.Softmax,))
        )
        if known:
            continue
        message = (
            f"quantize_model cannot quantize layer {layer.name!r} "
            f"({type(layer).__name__}): it knows Dense, Conv1D, Conv2D, "
            "DepthwiseConv2D, BatchNormalization, DepthwiseSeparableConv2D, "
            "LowRankDense, LowRankConv2D, pooling, merges, activations and "
            "shape layers."
        )
        if unsupported == "error":
            raise ValueError(
                message + " Expected a model of those layers, or "
                "unsupported='float' to keep this one in float. Received: "
                f"layer {layer.name!r} of class {type(layer).__name__}"
            )
        warnings.warn(message + " It stays in float.", stacklevel=3)


def _convert_layer(layer, plan, kernel_quantizer):
    cls = QUANT_CLASSES.get(type(layer))
    if cls is None:
        return layer.__class__.from_config(layer.get_config())
    config = dict(layer.get_config())
    split = None
    act = _layer_activation(layer)
    if act in FIXED_RANGE or (act not in FUSED + ("linear",)
                              and config.get("activation") is not None):
        split, config["activation"] = config["activation"], None
    config["kernel_quantizer"] = kernel_quantizer
    bn = plan.fused_bn.get(id(layer))
    if bn is not None:
        config["batch_norm"] = {"momentum": bn.momentum, "epsilon": bn.epsilon}
    new = cls.from_config(config)
    new._split_activation = split
    return new


def _needs_range(old, plan):
    if isinstance(old, PASS_THROUGH) or isinstance(old, L.Softmax):
        return False
    name = _activation_name(old)
    if name in FIXED_RANGE:
        return False
    if type(old) in QUANT_CLASSES and _layer_activation(old) in FIXED_RANGE:
        return False
    if isinstance(old, L.BatchNormalization) and id(old) in plan.skipped:
        return False
    if not isinstance(old, tuple(QUANT_CLASSES) + REQUANTIZING):
        return False  # Unsupported layers kept in float.
    # A ReLU/ReLU6 that TFLite fuses into this op takes the range instead.
    node = old._inbound_nodes[0]
    tensor = node.outputs[0]
    if type(old) in QUANT_CLASSES and id(old) in plan.fused_bn:
        bn = plan.fused_bn[id(old)]
        tensor = bn._inbound_nodes[0].outputs[0]
    nxt = plan.sole_consumer(tensor)
    fusable = type(old) in QUANT_CLASSES or isinstance(old, (L.Add, L.Subtract))
    if fusable and nxt is not None and _activation_name(nxt) in FUSED:
        return False
    return True


def _copy_weights(old, new, plan):
    if not old.weights or id(old) in plan.skipped:
        return
    by_name = {v.name: v for v in new.weights}
    sources = list(old.weights)
    bn = plan.fused_bn.get(id(old))
    if bn is not None:
        sources += list(bn.weights)
    for v in sources:
        target = by_name.get(v.name)
        if target is None:
            raise RuntimeError(
                f"quantize_model: no weight {v.name!r} in new layer {new.name!r}"
            )
        target.assign(v)
    weights.copy_constraints(old, new)
