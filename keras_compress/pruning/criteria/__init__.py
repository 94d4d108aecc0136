"""Channel importance criteria for `prune_channels`."""

from keras_compress.pruning.criteria.apoz import APoZ
from keras_compress.pruning.criteria.base import Criterion
from keras_compress.pruning.criteria.batch_norm_scale import BatchNormScale
from keras_compress.pruning.criteria.l1_norm import L1Norm
from keras_compress.pruning.criteria.l2_norm import L2Norm
from keras_compress.pruning.criteria.taylor import Taylor

__all__ = ["APoZ", "BatchNormScale", "Criterion", "L1Norm", "L2Norm", "Taylor"]
