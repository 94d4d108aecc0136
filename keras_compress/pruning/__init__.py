"""Pruning: schedules, masks, importance criteria and channel surgery.

Unstructured: the callbacks that prune during training live in
`keras_compress.callbacks` (`MagnitudePruning`, `LotteryTicket`); this
package holds their schedules, masks and `strip_pruning`.

Structured: `DependencyGraph` finds coupled channels, criteria (`L1Norm`,
`L2Norm`, `BatchNormScale`, `APoZ`, `Taylor`) score them, `prune_channels`
returns a smaller model.
"""

from keras_compress.pruning.channel_report import ChannelReport
from keras_compress.pruning.criteria import (
    APoZ,
    BatchNormScale,
    Criterion,
    L1Norm,
    L2Norm,
    Taylor,
)
from keras_compress.pruning.graph import ChannelGroup, DependencyGraph
from keras_compress.pruning.mask import PruningMask
from keras_compress.pruning.masking import get_masks, set_masks, strip_pruning
from keras_compress.pruning.schedules import (
    ConstantSparsity,
    PolynomialDecay,
    PruningSchedule,
)
from keras_compress.weights import prunable_weights, select_weights
from keras_compress.pruning.slimming import network_slimming
from keras_compress.pruning.surgery import prune_channels

__all__ = [
    "APoZ",
    "BatchNormScale",
    "ChannelGroup",
    "ChannelReport",
    "Criterion",
    "DependencyGraph",
    "L1Norm",
    "L2Norm",
    "Taylor",
    "network_slimming",
    "prune_channels",
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
