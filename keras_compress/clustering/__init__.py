"""Weight clustering (weight sharing, as in Deep Compression).

`cluster_weights` gives each selected kernel at most `clusters` shared
values (per tensor or per output channel), held by a `ClusterWeights`
constraint that trains the shared values inside `model.fit`;
`strip_clustering` removes the constraints and `get_clusters` returns the
centroids and indices. The callback `keras_compress.callbacks.WeightClustering`
clusters a model when its `fit` starts.
"""

from keras_compress.clustering.cluster import (
    cluster_weights,
    get_clusters,
    strip_clustering,
)
from keras_compress.clustering.cluster_constraint import ClusterWeights

__all__ = ["ClusterWeights", "cluster_weights", "get_clusters", "strip_clustering"]
