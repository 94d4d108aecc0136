"""The offline data sets."""

import random

import numpy as np
import pytest

from keras_compress import datasets


def test_digits_split_is_fixed_and_stratified():
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.float32 and 0.0 == x_train.min() and x_train.max() == 1.0
    assert set(np.bincount(y_test)) <= {35, 36, 37}
    (again, _), _ = datasets.load_digits()
    np.testing.assert_array_equal(x_train, again)


def test_digits_upsample_repeats_pixels():
    (small, _), _ = datasets.load_digits()
    (big, _), _ = datasets.load_digits(upsample=4)
    assert big.shape == (1437, 32, 32, 1)
    np.testing.assert_array_equal(big[:, ::4, ::4], small)
    with pytest.raises(ValueError, match="upsample"):
        datasets.load_digits(upsample=0)


def test_mnist1d_is_the_published_split_and_has_no_side_effect():
    np.random.seed(123)
    random.seed(123)
    state = np.random.get_state()[1].copy()
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist1d()
    assert x_train.shape == (4000, 40, 1) and x_test.shape == (1000, 40, 1)
    assert x_train.dtype == np.float32 and set(np.unique(y_train)) == set(range(10))
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    (again, _), _ = datasets.load_mnist1d()
    np.testing.assert_array_equal(x_train, again)
    again[0] = 99  # Callers get copies: the cache stays intact.
    (third, _), _ = datasets.load_mnist1d()
    np.testing.assert_array_equal(x_train, third)


def test_digits_are_learnable():
    """Real data: a linear model on the raw pixels beats 90%."""
    from sklearn.linear_model import LogisticRegression

    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    clf = LogisticRegression(max_iter=2000).fit(x_train.reshape(len(x_train), -1), y_train)
    assert clf.score(x_test.reshape(len(x_test), -1), y_test) > 0.9
