"""`L1Norm`: the sum of absolute weights of each filter."""

import numpy as np

from keras_compress.pruning.criteria.base import Criterion, producer_kernels


class L1Norm(Criterion):
    """Importance of a filter (or neuron) = sum of its absolute weights.

    Filters with small weights produce weak activations; Li et al. prune
    them first.

    Example:

    >>> pruned, report = prune_channels(model, ratio=0.5,
    ...                                 criterion=L1Norm())  # doctest: +SKIP

    Reference:
        Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.
    """

    def channel_scores(self, graph):
        return {
            (layer, j): float(value)
            for layer, kernel in producer_kernels(graph)
            for j, value in enumerate(np.abs(kernel).sum(axis=0))
        }
