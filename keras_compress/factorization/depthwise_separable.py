"""`to_depthwise_separable`: replace trained `Conv2D` layers by
`DepthwiseSeparableConv2D` layers fitted to them."""

import keras
import numpy as np
from keras import ops

from keras_compress._checks import check_int
from keras_compress.graph import graph_layers, rebuild
from keras_compress.factorization._common import build_input_shape
from keras_compress.factorization._common import check_layer_names
from keras_compress.factorization._common import check_model
from keras_compress.factorization._common import count_params
from keras_compress.factorization._common import finish
from keras_compress.factorization._separable_fit import assign
from keras_compress.factorization._separable_fit import num_samples
from keras_compress.factorization._separable_fit import refine
from keras_compress.layers.factorized.depthwise_separable_conv2d import (
    DepthwiseSeparableConv2D,
)


def _reason(layer, calls, nested, depth_multiplier):
    """Why `layer` cannot be converted, or None."""
    if type(layer) is not keras.layers.Conv2D:
        return f"not a keras.layers.Conv2D (type {type(layer).__name__})"
    if nested is not None:
        return (f"inside nested model {nested!r} (convert that model, or "
                "flatten it into the outer graph)")
    if calls != 1:
        return f"called {calls} times (shared layers are not supported)"
    if layer.groups != 1:
        return f"grouped convolution (groups={layer.groups})"
    if tuple(layer.dilation_rate) != (1, 1):
        return f"dilated convolution (dilation_rate={tuple(layer.dilation_rate)})"
    kh, kw = layer.kernel_size
    if kh * kw == 1:
        return "1x1 kernel (already pointwise)"
    limit = min(kh * kw, layer.filters)
    if depth_multiplier > limit:
        return (f"depth_multiplier {depth_multiplier} > min(kernel height * "
                f"width, filters) = {limit}")
    return None


def _separable_init(kernel, m):
    """Per input channel, the top-`m` SVD of its `(k*k, O)` kernel slice.

    Returns:
        `(depthwise (kh, kw, I, m), pointwise (I*m, O))`.
    """
    kh, kw, cin, cout = kernel.shape
    depthwise = np.zeros((kh, kw, cin, m))
    pointwise = np.zeros((cin * m, cout))
    for c in range(cin):
        u, s, vt = np.linalg.svd(kernel[:, :, c, :].reshape(kh * kw, cout),
                                 full_matrices=False)
        root = np.sqrt(s[:m])
        depthwise[:, :, c, :] = (u[:, :m] * root).reshape(kh, kw, m)
        pointwise[c * m:(c + 1) * m] = root[:, None] * vt[:m]
    return depthwise, pointwise


def _effective_kernel(depthwise, pointwise):
    kh, kw, cin, m = depthwise.shape
    d = depthwise.reshape(kh * kw, cin, m)
    p = pointwise.reshape(cin, m, -1)
    return np.einsum("tcj,cjo->tco", d, p).reshape(kh, kw, cin, -1)


def _plan(conv, depth_multiplier):
    """The separable layer initialized from `conv` and its report row."""
    kernel = np.asarray(ops.convert_to_numpy(conv.kernel), np.float64)
    kh, kw, cin, cout = kernel.shape
    m = depth_multiplier
    depthwise, pointwise = _separable_init(kernel, m)
    norm = np.linalg.norm(kernel)
    error = np.linalg.norm(kernel - _effective_kernel(depthwise, pointwise))
    new = DepthwiseSeparableConv2D(
        filters=conv.filters,
        kernel_size=conv.kernel_size,
        strides=conv.strides,
        padding=conv.padding,
        data_format=conv.data_format,
        depth_multiplier=m,
        activation=conv.activation,
        use_bias=conv.use_bias,
        depthwise_initializer=conv.kernel_initializer,
        pointwise_initializer=conv.kernel_initializer,
        bias_initializer=conv.bias_initializer,
        depthwise_regularizer=conv.kernel_regularizer,
        pointwise_regularizer=conv.kernel_regularizer,
        bias_regularizer=conv.bias_regularizer,
        activity_regularizer=conv.activity_regularizer,
        depthwise_constraint=conv.kernel_constraint,
        pointwise_constraint=conv.kernel_constraint,
        bias_constraint=conv.bias_constraint,
        name=conv.name,
        dtype=conv.dtype_policy,
        trainable=conv.trainable,
    )
    new.build(build_input_shape(conv))
    bias = ops.convert_to_numpy(conv.bias) if conv.use_bias else None
    assign(new, depthwise, pointwise, bias)
    row = {
        "name": conv.name,
        "kernel_size": [int(kh), int(kw)],
        "channels": [int(cin), int(cout)],
        "depth_multiplier": int(m),
        "params_before": int(count_params(conv)),
        "params_after": int(count_params(new)),
        "kernel_error": float(error / norm) if norm > 0 else 0.0,
        "relative_error_init": None,
        "relative_error": None,
        "replaced": True,
        "status": "replaced",
    }
    return row, new


MIN_INPUT_CHANNELS = 4


def to_depthwise_separable(model, data, layers=None, depth_multiplier=1,
                           iterations=10, batch_size=128,
                           return_report=False):
    """Replaces trained `Conv2D` layers by fitted `DepthwiseSeparableConv2D`.

    A `k x k` convolution with kernel `W` (`k x k x I x O`) becomes a
    depthwise `k x k` convolution (`depth_multiplier = m` filters per input
    channel, same strides and padding) followed by a `1 x 1` convolution,
    with the original bias and activation, and the original layer name:
    `k*k*I*m + I*m*O` weights instead of `k*k*I*O`.

    Initialization (data-free): the `k*k x O` slice of `W` of each input
    channel is factorized by SVD; its top `m` singular vectors give the
    channel's `m` depthwise filters and their pointwise weights. This is
    exact when every slice has rank <= `m` (a truly separable kernel).

    Refinement (with `data`): layer by layer in graph order, the new layer
    is fitted by least squares so that its pre-activation outputs, on the
    inputs it receives in the new model (after the layers before it were
    converted), match the original layer's pre-activation outputs on the
    original model's activations. The pointwise weights and bias are solved
    exactly; with `iterations > 0` the depthwise filters and pointwise
    weights are then refined by alternating least squares (each step
    solves its half exactly, so the error never grows). The statistics are
    gathered in one pass over `data` per converted layer.

    Candidates: `keras.layers.Conv2D` layers (exactly that class) of the
    top-level graph, called once, with `groups=1`, no dilation and a kernel
    larger than `1 x 1`. With `layers=None` every candidate with at least
    4 input channels whose replacement has fewer parameters is converted
    and the others are reported as kept (as in MobileNets, a stem
    convolution on 1-3 image channels stays standard: one filter per input
    channel cannot express it; on a digits CNN, converting the stem too
    ended at 68-79% after fine-tuning, against 96% with it kept). A layer named in `layers` that cannot be converted
    is an error.

    Args:
        model: A built Functional or Sequential `keras.Model`; not changed.
        data: Model inputs (an array, or a list/dict of arrays for several
            inputs) whose activations the least-squares fit uses, e.g. a
            few hundred training samples; or None to keep the SVD
            initialization.
        layers: None (default: every candidate with 4 or more input
            channels that saves parameters), a layer name or a list of
            names.
        depth_multiplier: Depthwise filters per input channel, at most
            `min(k*k, filters)`. Defaults to 1.
        iterations: Alternating least-squares rounds after the first
            pointwise fit; 0 fits only the pointwise weights and bias.
            Defaults to 10.
        batch_size: Samples per forward pass while gathering statistics.
            Defaults to 128.
        return_report: Also return a `FactorizationReport` (per layer:
            parameters before and after, kernel error, output error after
            the SVD and after the fit). Defaults to False.

    Returns:
        The new, uncompiled model (compile it and `fit` to fine-tune), or
        `(new_model, report)` with `return_report=True`.

    Raises:
        TypeError: if `model` is not a Keras model, `data` is not arrays,
            or `layers` is not a name or list of names.
        ValueError: for a subclassed model, a layer name that is not in the
            model, a named layer that is not a plain `Conv2D` of the
            top-level graph, is shared, grouped, dilated or `1 x 1`, a
            `depth_multiplier` above `min(k*k, filters)` of a named layer,
            or invalid `depth_multiplier`, `iterations` or `batch_size`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((8, 8, 3)),
    ...                           keras.layers.Conv2D(16, 3, activation="relu"),
    ...                           keras.layers.Conv2D(16, 3)])
    >>> x = np.random.rand(64, 8, 8, 3).astype("float32")
    >>> separable, report = to_depthwise_separable(model, x,
    ...                                            return_report=True)

    Reference:
        - [Howard et al., MobileNets: Efficient Convolutional Neural
          Networks for Mobile Vision Applications, 2017](
          https://arxiv.org/abs/1704.04861)
        - [Zhang et al., Accelerating Very Deep Convolutional Networks for
          Classification and Detection, TPAMI 2016](
          https://arxiv.org/abs/1505.06798) (fitting a factorized layer to
          the original layer's outputs, layer by layer)
    """
    check_model(model, "to_depthwise_separable")
    depth_multiplier = check_int("depth_multiplier", depth_multiplier, 1)
    iterations = check_int("iterations", iterations, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    if data is not None:
        num_samples(data)

    entries = graph_layers(model, recursive=True)
    found = {layer.name: layer for layer, _, _ in entries}
    names = check_layer_names(layers, found, "to_depthwise_separable")
    rows, plans = [], []
    for layer, calls, nested in entries:
        if names is not None and layer.name not in names:
            continue
        if names is None and type(layer) is not keras.layers.Conv2D:
            continue
        reason = _reason(layer, calls, nested, depth_multiplier)
        if reason is not None and names is not None:
            raise ValueError(
                "Expected `layers` to name Conv2D layers that can become "
                "depthwise-separable (keras.layers.Conv2D of the top-level "
                "graph, called once, groups=1, no dilation, kernel larger "
                "than 1x1, depth_multiplier <= min(k*k, filters)). "
                f"Received: layer {layer.name!r}: {reason}"
            )
        if reason is None and names is None and layer.kernel.shape[-2] < MIN_INPUT_CHANNELS:
            reason = (f"{layer.kernel.shape[-2]} input channels (fewer than "
                      f"{MIN_INPUT_CHANNELS}: stems stay standard unless named "
                      "in `layers`)")
        if reason is None:
            row, new = _plan(layer, depth_multiplier)
            if names is None and row["params_after"] >= row["params_before"]:
                reason = (f"no saving ({row['params_before']:,} -> "
                          f"{row['params_after']:,} params)")
        if reason is not None:
            params = count_params(layer)
            rows.append({"name": layer.name, "params_before": params,
                         "params_after": params, "replaced": False,
                         "status": f"kept: {reason}"})
            continue
        rows.append(row)
        plans.append((layer, new, row))

    replacements = {id(old): new for old, new, _ in plans}
    new_model = rebuild(model, lambda layer: replacements.get(id(layer)))
    if data is not None:
        for old, new, row in plans:
            refine(model, new_model, old, new, row, data, iterations,
                   batch_size)
    return finish(model, new_model, "depthwise_separable", rows, return_report)
