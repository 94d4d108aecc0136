"""Batches of a criterion's calibration data."""

import numpy as np


def batches(data, batch_size, max_samples, with_labels, arg="data"):
    """Yields `x` (or `(x, y)`) NumPy batches from arrays or `(x, y)`."""
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
    else:
        x, y = data, None
    if with_labels and y is None:
        raise ValueError(
            f"Expected `{arg}` to be a tuple `(x, y)` of inputs and labels. "
            f"Received: {arg} of type {type(data).__name__}"
        )
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"Expected `{arg}` to hold at least one sample. Received: "
            f"shape {x.shape}"
        )
    count = min(len(x), max_samples)
    for start in range(0, count, batch_size):
        end = min(start + batch_size, count)
        if with_labels:
            yield x[start:end], np.asarray(y)[start:end]
        else:
            yield x[start:end]
