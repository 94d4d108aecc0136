"""MNIST-1D, generated locally with the mnist1d package's own generator."""

import functools
import random

import numpy as np


def load_mnist1d(seed=42):
    """Generates MNIST-1D (Greydanus, 2020) locally, without downloading.

    Runs `mnist1d.data.make_dataset(get_dataset_args())` with the package's
    default arguments (5000 sequences of length 40, 80/20 split), so the data
    are the published benchmark's: 4000 training and 1000 test sequences.
    Published test accuracies: logistic regression 32%, MLP 68%, CNN 94%,
    GRU 91%. The generator seeds NumPy's global random state; this loader
    restores that state afterwards, so calling it has no side effect.

    Args:
        seed: Generator seed, default 42 (the published data set).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: float32 sequences of shape
        `(n, 40, 1)` (ready for `Conv1D`) and int32 labels in 0..9.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_mnist1d()
    >>> x_train.shape, x_test.shape
    ((4000, 40, 1), (1000, 40, 1))
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            f"Expected `seed` to be an integer. Received: seed={seed!r}"
        )
    arrays = _generate(int(seed))
    return tuple((x.copy(), y.copy()) for x, y in arrays)


@functools.lru_cache(maxsize=4)
def _generate(seed):
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        args = get_dataset_args()
        args.seed = seed
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    def arrays(x, y):
        return x.astype("float32")[..., None], y.astype("int32")
    return arrays(data["x"], data["y"]), arrays(data["x_test"], data["y_test"])
