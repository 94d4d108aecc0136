"""JAX-only behaviour of the callbacks that update state after each step.

Run on JAX by `test_backends.py` (the TensorFlow run skips it).
"""

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="JAX-only behaviour")


def _model(steps_per_execution=1):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
    return model


def test_steps_per_execution_must_be_one():
    from keras_compress.callbacks import MagnitudePruning, WeightClustering

    x, y = np.ones((8, 4), "float32"), np.ones((8, 3), "float32")
    for callback, what in ((MagnitudePruning(0.5), "masks"),
                           (WeightClustering(clusters=4), "centroids")):
        with pytest.raises(ValueError, match=rf"updates {what} after every train step on "
                                             r"JAX.*Received: steps_per_execution=2"):
            _model(2).fit(x, y, epochs=1, verbose=0, callbacks=[callback])


def test_cluster_weights_then_fit_is_refused_naming_the_callback():
    from keras_compress.clustering import cluster_weights

    with pytest.raises(ValueError, match=r"WeightClustering.*Received: backend='jax'"):
        cluster_weights(_model(), clusters=4)


def test_masks_hold_after_each_step():
    from keras_compress.callbacks import MagnitudePruning

    model = _model()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model.fit(x, x[:, :3], epochs=2, batch_size=8, verbose=0,
              callbacks=[MagnitudePruning(0.5)])
    kernel = np.asarray(model.layers[0].kernel)
    assert int((kernel == 0).sum()) == 6  # half of 12, exactly
