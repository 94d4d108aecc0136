"""Pruning: schedules, masks and their removal.

The callbacks that prune during training live in `keras_compress.callbacks`
(`MagnitudePruning`); this package holds what they are made of and what a
user calls around them.
"""

from keras_compress.pruning.mask import PruningMask
from keras_compress.pruning.masking import get_masks, set_masks, strip_pruning
from keras_compress.pruning.schedules import (
    ConstantSparsity,
    PolynomialDecay,
    PruningSchedule,
)
from keras_compress.pruning.selection import prunable_weights, select_weights

__all__ = [
    "ConstantSparsity",
    "PolynomialDecay",
    "PruningMask",
    "PruningSchedule",
    "get_masks",
    "prunable_weights",
    "select_weights",
    "set_masks",
    "strip_pruning",
]
