"""Folding the constant output of removed channels into the next layers.

A channel whose BatchNormalization scale is (near) zero still outputs a
constant: its BN offset, passed through the activation. Removing it drops
that constant from every layer that reads the channel. Following the
channel's expected value through the graph (BN: its offset beta;
element-wise layers: the layer applied to the value; pooling and dropout:
unchanged; depthwise convolutions: value times the kernel sum plus bias;
merges and Concatenate/Flatten: combined) gives, at each consumer, the value
to fold into its bias (or, for a bias-free consumer followed by a
BatchNormalization, into that BN's moving mean). The fold is exact when the
removed channels' scales are zero and convolutions use 'valid' padding or
1x1 kernels (zero padding makes the border differ), and the first-order
estimate otherwise.
"""

import keras
import numpy as np

from keras_compress.pruning.graph import DEPTHWISE, MERGES, PER_CHANNEL, PRODUCERS

_L = keras.layers
_MERGE_OPS = {
    _L.Add: np.sum, _L.Average: np.mean, _L.Maximum: np.max,
    _L.Minimum: np.min, _L.Multiply: np.prod,
}


def _numpy(v):
    return np.asarray(keras.ops.convert_to_numpy(v), dtype="float64")


def _propagate(layer, values, out_width):
    """Expected output values per channel, NaN where unknown."""
    unknown = np.full(out_width, np.nan)
    if isinstance(layer, _L.BatchNormalization):
        beta = _numpy(layer.beta) if layer.center else np.zeros(out_width)
        return beta
    if isinstance(layer, DEPTHWISE):
        kernel = _numpy(layer.kernel)
        sums = kernel.reshape(-1, *kernel.shape[-2:]).sum(axis=0)  # (C, m)
        out = (values[:, None] * sums).reshape(-1)
        if layer.use_bias:
            out = out + _numpy(layer.bias)
        return out
    if isinstance(layer, PER_CHANNEL):
        if isinstance(layer, (_L.ReLU, _L.LeakyReLU, _L.ELU, _L.Activation)):
            x = keras.ops.convert_to_tensor(values[None].astype("float32"))
            return _numpy(layer(x))[0]
        if isinstance(layer, _L.PReLU):
            return unknown
        return values
    if isinstance(layer, MERGES):
        if isinstance(layer, _L.Subtract):
            return values[0] - values[1]
        return _MERGE_OPS[type(layer)](np.stack(values), axis=0)
    if isinstance(layer, _L.Concatenate):
        return np.concatenate(values) if len(np.shape(values[0])) else unknown
    if isinstance(layer, _L.Flatten):
        return np.tile(values, out_width // max(len(values), 1))
    return unknown


def _contribution(layer, values):
    """What the inputs with known values add to each output channel."""
    known = np.where(np.isfinite(values), values, 0.0)
    if isinstance(layer, (_L.SeparableConv1D, _L.SeparableConv2D)):
        dw = _numpy(layer.depthwise_kernel)
        dw = dw.reshape(-1, *dw.shape[-2:]).sum(axis=0)  # (C, m)
        pw = _numpy(layer.pointwise_kernel).reshape(-1, layer.filters)
        return ((known[:, None] * dw).reshape(-1)) @ pw
    kernel = _numpy(layer.kernel)
    if "Transpose" in type(layer).__name__:
        kernel = np.swapaxes(kernel, -1, -2)
    kernel = kernel.reshape(-1, *kernel.shape[-2:]).sum(axis=0)  # (in, out)
    return known @ kernel


def fold_removed(graph, removed):
    """Returns `{id(layer): {"bias": delta} or {"moving_mean": delta}}`.

    Deltas are over the layer's full (unpruned) output channels.
    """
    values = {}
    readers = {}
    for layer, in_ids, out_ids in graph.calls:
        for i in in_ids:
            readers.setdefault(i, []).append(layer)
    changes = {}
    for layer, in_ids, out_ids in graph.calls:
        ins = [values.get(i) for i in in_ids]
        ins = [v if v is not None else np.full(len(graph.tensor_labels.get(i, [])), np.nan)
               for v, i in zip(ins, in_ids)]
        if layer is None:  # into or out of a nested model
            for i, o in zip(in_ids, out_ids):
                values[o] = values.get(i)
            continue
        out_width = len(graph.tensor_labels.get(out_ids[0], [])) if out_ids else 0
        if isinstance(layer, PRODUCERS) and len(in_ids) == 1:
            labels = graph.tensor_labels.get(in_ids[0])
            if labels is not None and id(layer) not in graph.kept_whole:
                gone = np.array([graph.class_of(l) in removed for l in labels])
                folded = np.where(gone, ins[0], np.nan)
                if np.isfinite(folded).any():
                    try:
                        delta = _contribution(layer, folded)
                    except Exception:  # an unusual kernel layout: no fold
                        delta = None
                    if delta is not None and np.all(np.isfinite(delta)):
                        _record(changes, layer, delta, out_ids, readers)
            values[out_ids[0]] = np.full(out_width, np.nan)
            continue
        try:
            out = _propagate(layer, ins if isinstance(layer, MERGES + (_L.Concatenate,))
                             else ins[0], out_width)
        except Exception:  # a layer we cannot evaluate: unknown values
            out = np.full(out_width, np.nan)
        for o in out_ids:
            values[o] = np.asarray(out, dtype="float64")
    return changes


def _record(changes, layer, delta, out_ids, readers):
    if getattr(layer, "use_bias", False):
        entry = changes.setdefault(id(layer), {"bias": 0.0})
        entry["bias"] = entry["bias"] + delta
        return
    after = readers.get(out_ids[0], [])
    if len(after) == 1 and isinstance(after[0], _L.BatchNormalization) and (
        getattr(layer, "activation", None) in (None, keras.activations.linear)
    ):
        entry = changes.setdefault(id(after[0]), {"moving_mean": 0.0})
        entry["moving_mean"] = entry["moving_mean"] - delta
