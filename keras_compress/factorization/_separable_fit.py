"""The least-squares fit of a depthwise-separable layer to a `Conv2D`.

`refine` gathers, in one pass over the data, the sums of the problem
`y ~ [patch, 1] @ W` (patches of the new layer's inputs, `y` the original
layer's pre-activation outputs), then fits the pointwise weights and bias
exactly and alternates with exact depthwise fits (see
`keras_compress.factorization.to_depthwise_separable`).
"""

import keras
import numpy as np
from keras import ops

from keras_compress.graph import graph_of, nodes

_RIDGE = 1e-7


def num_samples(data):
    """Samples in `data` (the model's inputs); raises unless arrays agree."""
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


def assign(layer, depthwise, pointwise, bias):
    """Sets the kernels (and bias) of a `DepthwiseSeparableConv2D`."""
    dw, pw = layer.depthwise, layer.pointwise
    dw.kernel.assign(depthwise.astype(dw.kernel.dtype))
    pw.kernel.assign(pointwise.reshape(pw.kernel.shape).astype(pw.kernel.dtype))
    if bias is not None:
        pw.bias.assign(np.asarray(bias).astype(pw.bias.dtype))


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


def refine(model, new_model, old, new, row, data, iterations, batch_size):
    """Fits `new` to the pre-activation outputs of `old` on `data`."""
    old_inputs = _input_of(model, old)
    new_inputs = _input_of(new_model, new)
    kernel = ops.convert_to_numpy(old.kernel)
    bias = ops.convert_to_numpy(old.bias) if old.use_bias else None
    fmt = old.data_format
    kh, kw = old.kernel_size
    cin, cout = kernel.shape[2], kernel.shape[3]
    stats = _Stats(kh * kw * cin, cout, old.use_bias)
    n = num_samples(data)
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
    assign(new, sep.d.reshape(kh, kw, cin, sep.m), sep.p, sep.b)
