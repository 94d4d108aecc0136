"""One-dimensional k-means in NumPy: initial centroids and Lloyd's refinement."""

import numpy as np

INITS = ("linear", "density", "kmeans++")


def initial_centroids(values, k, init, rng):
    """`k` starting centroids of the 1-D `values` (float64, any order).

    Args:
        values: a non-empty 1-D float64 array.
        k: number of centroids (>= 1).
        init: `"linear"` (evenly spaced between min and max), `"density"`
            (evenly spaced in the empirical CDF: the quantiles 0, 1/(k-1),
            ..., 1) or `"kmeans++"` (scikit-learn's `kmeans_plusplus`).
        rng: a `numpy.random.RandomState` for `"kmeans++"`.
    """
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    if init == "density":
        return np.quantile(values, np.linspace(0.0, 1.0, k))
    from sklearn.cluster import kmeans_plusplus

    centers, _ = kmeans_plusplus(values[:, None], k, random_state=rng)
    return centers[:, 0]


def _bounds(sorted_values, centroids):
    # Each centroid's members are a contiguous run of the sorted values,
    # cut at the midpoints between neighbouring centroids.
    mid = (centroids[1:] + centroids[:-1]) / 2
    cuts = np.searchsorted(sorted_values, mid, side="right")
    return np.concatenate([[0], cuts, [len(sorted_values)]])


def lloyd(values, centroids, max_iter=300):
    """Exact 1-D k-means (Lloyd) from `centroids`; returns them sorted.

    A centroid that loses all its members keeps its value. Iterates until
    no value changes cluster (or `max_iter`).
    """
    x = np.sort(values)
    prefix = np.concatenate([[0.0], np.cumsum(x)])
    c = np.sort(np.asarray(centroids, dtype=np.float64))
    bounds = _bounds(x, c)
    for _ in range(max_iter):
        counts = np.diff(bounds)
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        filled = counts > 0
        c = np.where(filled, sums / np.maximum(counts, 1), c)
        # Means of sorted runs stay sorted; clamping keeps empty ones in line.
        c = np.maximum.accumulate(c)
        new = _bounds(x, c)
        if np.array_equal(new, bounds):
            break
        bounds = new
    return c


def assign(values, centroids):
    """Index of the nearest of the sorted `centroids` for every value."""
    mid = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(mid, values, side="left").astype(np.int32)


def fit_centroids(values, k, init, rng):
    """`k` sorted centroids of the 1-D `values`: `init`, then Lloyd.

    With at most `k` distinct values, they are the centroids (the last
    one repeated to fill `k`): exact, and no draw from `rng`.
    """
    distinct = np.unique(values)
    if distinct.size <= k:
        return np.concatenate(
            [distinct, np.full(k - distinct.size, distinct[-1])])
    return lloyd(values, initial_centroids(values, k, init, rng))


def cluster_values(values, k, init, rng, pin_zero):
    """Centroids (length `k`), int32 indices and pinned flags for `values`.

    With `pin_zero` and at least one exact zero in `values`, cluster 0 is
    the zeros, pinned at 0.0, and the other `k - 1` clusters share the
    non-zero values (a non-zero value never joins the zero cluster).
    Centroids are sorted ascending (after the zero cluster).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    zeros = values == 0
    pinned = np.zeros(k, dtype=bool)
    if pin_zero and zeros.any():
        pinned[0] = True
        free = values[~zeros]
        table = np.zeros(k, dtype=np.float64)
        indices = np.zeros(values.shape, dtype=np.int32)
        if free.size:
            c = fit_centroids(free, k - 1, init, rng)
            table[1:] = c
            indices[~zeros] = assign(free, c) + 1
        return table, indices, pinned
    c = fit_centroids(values, k, init, rng)
    return c, assign(values, c), pinned
