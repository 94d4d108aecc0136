"""The compressible weights of a model and their stateful constraints.

Pruning, clustering, quantization and the analysis all ask the same two
questions, answered here once:

- which weights of a model can be compressed: `prunable_weights(model)`
  (kernels of Dense, Conv*, Embedding, EinsumDense and of layers with
  `get_prunable_weights()`), `layer_weights(layer)`, `select_weights`
  (the layers a user chose), `weight_key` (a weight's name across copies);
- how a constraint with state moves to another weight: `copy_constraint`
  (one constraint), `copy_constraints` (every one of a layer, onto its
  rewritten copy).
"""

from keras_compress.weights.constraints import copy_constraint
from keras_compress.weights.constraints import copy_constraints
from keras_compress.weights.selection import PRUNABLE_LAYERS
from keras_compress.weights.selection import PrunableWeight
from keras_compress.weights.selection import layer_weights
from keras_compress.weights.selection import prunable_weights
from keras_compress.weights.selection import select_weights
from keras_compress.weights.selection import strategy_scope
from keras_compress.weights.selection import weight_key

__all__ = [
    "PRUNABLE_LAYERS",
    "PrunableWeight",
    "copy_constraint",
    "copy_constraints",
    "layer_weights",
    "prunable_weights",
    "select_weights",
    "strategy_scope",
    "weight_key",
]
