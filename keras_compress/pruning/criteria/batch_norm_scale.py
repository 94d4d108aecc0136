"""`BatchNormScale`: |gamma| of the BatchNormalization on each channel."""

import keras
import numpy as np

from keras_compress.pruning.criteria.base import Criterion


class BatchNormScale(Criterion):
    """Importance of a channel = |gamma| of its BatchNormalization.

    After training with an L1 penalty on the gammas (`NetworkSlimming`),
    many gammas are near zero and their channels carry almost nothing; one
    global threshold on |gamma| removes them. Channels without a
    BatchNormalization are kept.

    Reference:
        Liu et al., "Learning Efficient Convolutional Networks through
        Network Slimming", ICCV 2017.
    """

    def channel_scores(self, graph):
        scores = {}
        for layer, _, _ in graph.layer_entries():
            if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
                gamma = np.abs(keras.ops.convert_to_numpy(layer.gamma))
                scores.update({(layer, j): float(v) for j, v in enumerate(gamma)})
        return scores
