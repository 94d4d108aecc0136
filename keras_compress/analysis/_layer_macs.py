"""MACs of one call of a Keras layer, from the shapes the call saw.

The formulas are the conventions documented in
`keras_compress.analysis.keras_model`; `KNOWN` lists the layer types that
have one (every other layer costs 0).
"""

import math

import keras

_L = keras.layers

# Layer types with a MAC formula; every other layer costs 0 MACs.
_CONV = (_L.Conv1D, _L.Conv2D, _L.Conv3D)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_TRANSPOSE = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
_NORM = (_L.BatchNormalization, _L.LayerNormalization)
_POOL = (
    _L.MaxPooling1D,
    _L.MaxPooling2D,
    _L.MaxPooling3D,
    _L.AveragePooling1D,
    _L.AveragePooling2D,
    _L.AveragePooling3D,
)
_GLOBAL_POOL = (
    _L.GlobalAveragePooling1D,
    _L.GlobalAveragePooling2D,
    _L.GlobalAveragePooling3D,
    _L.GlobalMaxPooling1D,
    _L.GlobalMaxPooling2D,
    _L.GlobalMaxPooling3D,
)
KNOWN = (
    (_L.Dense, _L.EinsumDense)
    + _CONV + _DEPTHWISE + _SEPARABLE + _TRANSPOSE + _NORM + _POOL
    + _GLOBAL_POOL
)


def _prod(dims):
    dims = list(dims)
    if any(d is None for d in dims):
        return None
    return math.prod(int(d) for d in dims)


def _spatial_and_channels(layer, shape):
    """Returns `(spatial dims, channels)` of a conv-like feature map."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return shape[2:], shape[1]
    return shape[1:-1], shape[-1]


def _mul(*factors):
    return _prod(factors)


def call_macs(layer, in_shapes, out_shapes):
    """MACs of one call of a known layer, or `None` if shapes are unknown."""
    if not in_shapes or not out_shapes:
        return None
    x, y = in_shapes[0], out_shapes[0]
    if isinstance(layer, _SEPARABLE):
        _, cin = _spatial_and_channels(layer, x)
        out_spatial, _ = _spatial_and_channels(layer, y)
        dm = layer.depth_multiplier
        depthwise = _mul(_prod(out_spatial), _prod(layer.kernel_size), cin, dm)
        pointwise = _mul(_prod(out_spatial), cin, dm, layer.filters)
        if depthwise is None or pointwise is None:
            return None
        return depthwise + pointwise
    if isinstance(layer, _DEPTHWISE):
        _, cin = _spatial_and_channels(layer, x)
        out_spatial, _ = _spatial_and_channels(layer, y)
        return _mul(_prod(out_spatial), _prod(layer.kernel_size), cin,
                    layer.depth_multiplier)
    if isinstance(layer, _TRANSPOSE):
        spatial, cin = _spatial_and_channels(layer, x)
        return _mul(_prod(spatial), _prod(layer.kernel_size), cin,
                    layer.filters)
    if isinstance(layer, _CONV):
        _, cin = _spatial_and_channels(layer, x)
        out_spatial, _ = _spatial_and_channels(layer, y)
        if cin is None:
            return None
        return _mul(_prod(out_spatial), _prod(layer.kernel_size),
                    cin // layer.groups, layer.filters)
    if isinstance(layer, _L.Dense):
        return _mul(_prod(x[1:]), layer.units)
    if isinstance(layer, _L.EinsumDense):
        return _einsum_macs(layer, x)
    if isinstance(layer, _NORM):
        return _prod(y[1:])
    if isinstance(layer, _POOL):
        return _mul(_prod(y[1:]), _prod(layer.pool_size))
    if isinstance(layer, _GLOBAL_POOL):
        return _prod(x[1:])
    return 0


def _einsum_macs(layer, x):
    equation = layer.equation.replace(" ", "")
    lhs, out = equation.split("->")
    in_spec, kernel_spec = lhs.split(",")
    dims = (1,) + tuple(x[1:])  # Batch size 1.
    if any(d is None for d in dims):
        return None
    sizes = {}
    extra = 1
    if "..." in in_spec:
        head, tail = in_spec.split("...")
        n_ellipsis = len(dims) - len(head) - len(tail)
        extra = _prod(dims[len(head): len(head) + n_ellipsis]) or 1
        pairs = list(zip(head, dims[: len(head)]))
        pairs += list(zip(tail, dims[len(dims) - len(tail):]))
    else:
        pairs = list(zip(in_spec, dims))
    kernel_shape = tuple(layer.kernel.shape)
    if len(kernel_shape) == len(kernel_spec):
        pairs += list(zip(kernel_spec, kernel_shape))
    for letter, size in pairs:
        sizes.setdefault(letter, int(size))
    full = getattr(layer, "full_output_shape", None)
    if full is not None:
        out_letters = out.replace("...", "")
        tail = list(full[len(full) - len(out_letters):])
        for letter, size in zip(out_letters, tail):
            if size is not None:
                sizes.setdefault(letter, int(size))
    return extra * math.prod(sizes.values())

