"""Slimmable layers: one set of weights that runs at several widths.

`SlimmableConv2D` and `SlimmableDense` (drop-ins for `Conv2D` and `Dense`)
use only their first channels at a narrower width;
`SwitchableBatchNormalization` keeps private BatchNorm parameters and
statistics per width. `active_channels(n, w)` is the one rule for the
number of channels at a width. Switch, train and export these models with
`keras_compress.slimmable`.
"""

from keras_compress.layers.slimmable.base_slimmable import SlimmableLayer
from keras_compress.layers.slimmable.base_slimmable import active_channels
from keras_compress.layers.slimmable.slimmable_conv2d import SlimmableConv2D
from keras_compress.layers.slimmable.slimmable_dense import SlimmableDense
from keras_compress.layers.slimmable.switchable_batch_normalization import (
    SwitchableBatchNormalization,
)

__all__ = [
    "SlimmableConv2D",
    "SlimmableDense",
    "SlimmableLayer",
    "SwitchableBatchNormalization",
    "active_channels",
]
