"""`APoZ`: average percentage of zeros of each channel after ReLU."""

import keras
import numpy as np

from keras_compress.pruning.criteria._data import batches
from keras_compress.pruning.criteria.base import Criterion
from keras_compress.pruning.graph import PRODUCERS


def _is_relu(layer):
    if isinstance(layer, keras.layers.ReLU):
        return True
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Activation) or isinstance(layer, PRODUCERS):
        return getattr(activation, "__name__", "") == "relu"
    return False


class APoZ(Criterion):
    """Importance of a channel = 1 - its fraction of zeros after ReLU.

    Runs the model on `data` and measures, for every ReLU output of the
    top-level graph (a `ReLU` layer, `Activation("relu")`, or a layer with
    `activation="relu"`), how often each channel is exactly zero. A channel
    that is almost always zero does almost nothing.

    Args:
        data: input samples (an array, or `(x, y)`; labels are ignored).
        batch_size: samples per forward pass. Defaults to 64.
        max_samples: samples used at most. Defaults to 1000.

    Reference:
        Hu et al., "Network Trimming: A Data-Driven Neuron Pruning Approach
        towards Efficient Deep Architectures", 2016.
    """

    needs_data = True

    def __init__(self, data, batch_size=64, max_samples=1000):
        self.data = data
        self.batch_size = batch_size
        self.max_samples = max_samples

    def channel_scores(self, graph):
        model = graph.model
        probes = []
        for layer, _, _ in graph.layer_entries():
            if _is_relu(layer) and len(layer._inbound_nodes) == 1:
                try:
                    probes.append((layer, layer.output))
                except (AttributeError, ValueError):
                    continue
        if not probes:
            raise ValueError(
                f"Expected model '{model.name}' to have ReLU outputs in its "
                "top-level graph for APoZ. Received: none"
            )
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        probe = keras.Model(inputs, [t for _, t in probes])
        zeros = [0.0] * len(probes)
        count = 0
        for x in batches(self.data, self.batch_size, self.max_samples, False):
            outputs = probe(x, training=False)
            if len(probes) == 1:
                outputs = [outputs]
            for i, out in enumerate(outputs):
                out = keras.ops.convert_to_numpy(out)
                zeros[i] = zeros[i] + (out == 0).reshape(-1, out.shape[-1]).mean(0) * len(out)
            count += len(x)
        return {
            (layer, j): 1.0 - float(value / count)
            for (layer, _), z in zip(probes, zeros)
            for j, value in enumerate(np.atleast_1d(z))
        }

    def get_config(self):
        return {"batch_size": self.batch_size, "max_samples": self.max_samples}
