"""Base class of channel importance criteria."""

import collections

import numpy as np


class Criterion:
    """Scores the channels of a model; low scores are removed first.

    Subclasses implement `channel_scores(graph)`, returning
    `{(layer, channel): score}` for the channels they can see (a filter of
    a convolution, a BatchNorm channel, ...); `scores(graph)` maps these to
    the coupled channel classes of a `DependencyGraph` and averages over
    each class (a residual stage's channel is the mean over its
    convolutions). A class the criterion cannot see is never removed.
    """

    needs_data = False

    def channel_scores(self, graph):
        raise NotImplementedError

    def scores(self, graph):
        """`{channel class: score}` for every class the criterion sees."""
        sums = collections.defaultdict(float)
        counts = collections.defaultdict(int)
        for (layer, channel, label), value in self._labelled(graph):
            cls = graph.class_of(label)
            sums[cls] += float(value)
            counts[cls] += 1
        return {cls: sums[cls] / counts[cls] for cls in sums}

    def _labelled(self, graph):
        labels = {}
        for layer, ins, out in graph.layer_entries():
            labels[id(layer)] = (ins, out)
        for (layer, channel), value in self.channel_scores(graph).items():
            ins, out = labels[id(layer)]
            source = out if out is not None else ins[0]
            yield (layer, channel, source[channel]), value

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def producer_kernels(graph):
    """`(layer, kernel as (fan_in..., out) NumPy array)` of every producer."""
    import keras

    for layer, _, out in graph.layer_entries():
        if out is None:
            continue
        if isinstance(layer, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
            kernel = layer.pointwise_kernel
        else:
            kernel = layer.kernel
        kernel = np.asarray(keras.ops.convert_to_numpy(kernel))
        if "Transpose" in type(layer).__name__:
            kernel = np.swapaxes(kernel, -1, -2)
        yield layer, kernel.reshape(-1, kernel.shape[-1])
