"""`L2Norm`: the Euclidean norm of each filter."""

import numpy as np

from keras_compress.pruning.criteria.base import Criterion, producer_kernels


class L2Norm(Criterion):
    """Importance of a filter (or neuron) = L2 norm of its weights.

    Reference:
        Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017;
        He et al., "Soft Filter Pruning", IJCAI 2018.
    """

    def channel_scores(self, graph):
        return {
            (layer, j): float(value)
            for layer, kernel in producer_kernels(graph)
            for j, value in enumerate(np.sqrt((kernel ** 2).sum(axis=0)))
        }
