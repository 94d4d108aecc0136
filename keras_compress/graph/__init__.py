"""The layer graph of Functional and Sequential models: read it, rewrite it.

Every transform that needs a model's graph uses this package: quantization
(`quantize_model`, `fold_batchnorm`), factorization, channel surgery and the
pruning `DependencyGraph`, early exits and slimmable export.

- `graph_of(model)`: the Functional graph, or None for a subclassed model;
  `has_graph(model)`: whether there is one (False for an unbuilt Sequential);
  `check_graph_model(model, why)`: the graph, or the one clear error.
- `nodes(functional)`: the layer calls in execution order; `producer`,
  `consumers`, `layer_nodes`, `graph_layers` (nested models included).
- `rebuild(model, replace_layer, after_tensor)`: a copy of the model with
  layers replaced (by a layer or a chain of layers), dropped (`DROP`) or
  followed by new operations; `copy_layer` (a built copy that keeps its
  pruning masks and clusters, via `keras_compress.weights`).
"""

from keras_compress.graph.functional import check_graph_model
from keras_compress.graph.functional import consumers
from keras_compress.graph.functional import graph_layers
from keras_compress.graph.functional import graph_of
from keras_compress.graph.functional import has_graph
from keras_compress.graph.functional import layer_nodes
from keras_compress.graph.functional import nodes
from keras_compress.graph.functional import producer
from keras_compress.graph.rewrite import DROP
from keras_compress.graph.rewrite import copy_layer
from keras_compress.graph.rewrite import rebuild

__all__ = [
    "DROP",
    "check_graph_model",
    "consumers",
    "copy_layer",
    "graph_layers",
    "graph_of",
    "has_graph",
    "layer_nodes",
    "nodes",
    "producer",
    "rebuild",
]
