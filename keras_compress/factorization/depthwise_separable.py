"""`to_depthwise_separable`: replace trained `Conv2D` layers by
`DepthwiseSeparableConv2D` layers fitted to them."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_compress.graph import graph_layers, graph_of, nodes, rebuild
from keras_compress.factorization._common import build_input_shape
from keras_compress.factorization._common import check_layer_names
from keras_compress.factorization._common import check_model
from keras_compress.factorization._common import count_params
from keras_compress.factorization.factorization_report import (
    FactorizationReport,
)
from keras_compress.layers.factorized.depthwise_separable_conv2d import (
    DepthwiseSeparableConv2D,
)

_RIDGE = 1e-7


def _check_int(name, value, minimum):
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < minimum):
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _num_samples(data):
    leaves = keras.tree.flatten(data)
    if not leaves or any(not hasattr(a, "shape") or len(a.shape) == 0
                         for a in leaves):
        raise TypeError(
            "Expected `data` to be None or the model's input: an array, or a "
            "list/dict of arrays for several inputs. Received: data of type "
            f"{type(data).__name__}"
        )
    n = int(leaves[0].shape[0])
    if n < 1 or any(int(a.shape[0]) != n for a in leaves):
        raise ValueError(
            "Expected `data` to hold at least one sample, with the same "
            "number of samples in every input. Received: data with sample "
            f"counts {[int(a.shape[0]) for a in leaves]}"
        )
    return n


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
    _assign(new, depthwise, pointwise, bias)
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


def _assign(layer, depthwise, pointwise, bias):
    dw, pw = layer.depthwise, layer.pointwise
    dw.kernel.assign(depthwise.astype(dw.kernel.dtype))
    pw.kernel.assign(pointwise.reshape(pw.kernel.shape).astype(pw.kernel.dtype))
    if bias is not None:
        pw.bias.assign(np.asarray(bias).astype(pw.bias.dtype))


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
    depth_multiplier = _check_int("depth_multiplier", depth_multiplier, 1)
    iterations = _check_int("iterations", iterations, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    if data is not None:
        _num_samples(data)

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
            _refine(model, new_model, old, new, row, data, iterations,
                    batch_size)
    if not return_report:
        return new_model
    report = FactorizationReport(
        method="depthwise_separable",
        layers=rows,
        params_before=count_params(model),
        params_after=count_params(new_model),
    )
    return new_model, report


# --------------------------------------------------------------------------
# Least-squares refinement.


def _input_of(model, layer):
    """A model from the inputs of `model` to the input tensor of `layer`."""
    functional = graph_of(model)
    for node in nodes(functional):
        if node.operation is layer:
            return keras.Model(functional._inputs_struct, node.input_tensors[0])
    raise RuntimeError(f"layer {layer.name!r} is not in the graph")


def _channels_last(x, data_format):
    x = np.asarray(ops.convert_to_numpy(x), np.float32)
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


class _Stats:
    """Sums of the least-squares problem `y ~ [patch, 1] @ W`."""

    def __init__(self, k, cout, bias):
        size = k + int(bias)
        self.bias = bias
        self.c = np.zeros((size, size))
        self.q = np.zeros((size, cout))
        self.yy = 0.0

    def add(self, patches, y):
        if self.bias:
            patches = np.concatenate(
                [patches, np.ones((len(patches), 1), patches.dtype)], axis=1)
        patches = patches.astype(np.float64)
        y = y.astype(np.float64)
        self.c += patches.T @ patches
        self.q += patches.T @ y
        self.yy += float(np.sum(y * y))

    def loss(self, w):
        value = self.yy - 2 * np.sum(w * self.q) + np.sum(w * (self.c @ w))
        return max(float(value), 0.0)

    def relative_error(self, w):
        return float(np.sqrt(self.loss(w) / self.yy)) if self.yy > 0 else 0.0


def _solve(h, g):
    scale = np.trace(h) / len(h)
    ridge = _RIDGE * scale if scale > 0 else 1e-12
    return np.linalg.solve(h + ridge * np.eye(len(h)), g)


class _Separable:
    """Depthwise filters `d (kh, kw, I, m)`, pointwise `p (I*m, O)`, bias."""

    def __init__(self, depthwise, pointwise, bias):
        self.kh, self.kw, self.cin, self.m = depthwise.shape
        self.d = depthwise.reshape(-1).copy()
        self.p = pointwise.copy()
        self.b = None if bias is None else np.asarray(bias, np.float64).copy()
        # Entry a of `d` sits at row rows[a] of the (k*k*I, I*m) matrix D
        # and column cols[a]; rows follow the order of image patches.
        alpha = np.arange(self.d.size)
        self.rows = alpha // self.m
        self.cols = (self.rows % self.cin) * self.m + alpha % self.m

    def matrix(self):
        k = self.kh * self.kw * self.cin
        out = np.zeros((k, self.cin * self.m))
        out[self.rows, self.cols] = self.d
        return out

    def weights(self):
        """The effective `[patch, 1] -> y` matrix."""
        w = self.matrix() @ self.p
        return w if self.b is None else np.vstack([w, self.b[None]])

    def fit_pointwise(self, stats):
        d = self.matrix()
        if self.b is not None:
            k, im = d.shape
            aug = np.zeros((k + 1, im + 1))
            aug[:k, :im] = d
            aug[k, im] = 1.0
            d = aug
        solution = _solve(d.T @ stats.c @ d, d.T @ stats.q)
        if self.b is None:
            self.p = solution
        else:
            self.p, self.b = solution[:-1], solution[-1]

    def fit_depthwise(self, stats):
        k = self.kh * self.kw * self.cin
        c, r = stats.c[:k, :k], stats.q[:k]
        if self.b is not None:
            r = r - np.outer(stats.c[:k, k], self.b)
        ppt = self.p @ self.p.T
        h = c[np.ix_(self.rows, self.rows)] * ppt[np.ix_(self.cols, self.cols)]
        g = (r @ self.p.T)[self.rows, self.cols]
        self.d = _solve(h, g)
        self._balance()

    def _balance(self):
        """Equal norms for each depthwise filter and its pointwise row."""
        d = self.d.reshape(-1, self.cin * self.m)
        dn = np.linalg.norm(d, axis=0)
        pn = np.linalg.norm(self.p, axis=1)
        ok = (dn > 0) & (pn > 0)
        scale = np.ones_like(dn)
        scale[ok] = np.sqrt(pn[ok] / dn[ok])
        self.d = (d * scale).reshape(-1)
        self.p = self.p / scale[:, None]


def _refine(model, new_model, old, new, row, data, iterations, batch_size):
    """Fits `new` to the pre-activation outputs of `old` on `data`."""
    old_inputs = _input_of(model, old)
    new_inputs = _input_of(new_model, new)
    kernel = ops.convert_to_numpy(old.kernel)
    bias = ops.convert_to_numpy(old.bias) if old.use_bias else None
    fmt = old.data_format
    kh, kw = old.kernel_size
    cin, cout = kernel.shape[2], kernel.shape[3]
    stats = _Stats(kh * kw * cin, cout, old.use_bias)
    n = _num_samples(data)
    for start in range(0, n, batch_size):
        chunk = keras.tree.map_structure(
            lambda a: a[start:start + batch_size], data)
        x_old = old_inputs(chunk, training=False)
        y = ops.conv(x_old, kernel, strides=old.strides, padding=old.padding,
                     data_format=fmt)
        y = _channels_last(y, fmt)
        if bias is not None:
            y = y + bias
        x_new = _channels_last(new_inputs(chunk, training=False), fmt)
        patches = ops.image.extract_patches(
            x_new, (kh, kw), strides=old.strides, padding=old.padding,
            data_format="channels_last")
        patches = np.asarray(ops.convert_to_numpy(patches))
        stats.add(patches.reshape(-1, patches.shape[-1]), y.reshape(-1, cout))

    m = new.depth_multiplier
    depthwise = ops.convert_to_numpy(new.depthwise.kernel)
    pointwise = ops.convert_to_numpy(new.pointwise.kernel).reshape(cin * m, cout)
    sep = _Separable(depthwise.astype(np.float64),
                     pointwise.astype(np.float64), bias)
    row["relative_error_init"] = stats.relative_error(sep.weights())
    sep.fit_pointwise(stats)
    for _ in range(iterations):
        sep.fit_depthwise(stats)
        sep.fit_pointwise(stats)
    row["relative_error"] = stats.relative_error(sep.weights())
    _assign(new, sep.d.reshape(kh, kw, cin, sep.m), sep.p, sep.b)
