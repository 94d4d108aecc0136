"""The check every keras-compress layer goes through.

`run_layer_test` builds the layer, calls it, round-trips its config, saves
and loads a model holding it as `.keras` with `safe_mode=True` (identical
outputs), takes one training step, and, where the layer is exportable,
checks that the float TFLite export run in LiteRT matches Keras.
"""

import os
import tempfile

import keras
import numpy as np

from keras_compress import export
from keras_compress.runtime import LiteRTModel


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape=None,
    exportable=True,
    tflite_atol=1e-4,
    seed=0,
):
    """Runs the standard layer checks; returns the trained test model.

    Args:
        layer_cls: The layer class.
        init_kwargs: Constructor arguments.
        input_shape: Input shape without the batch dimension.
        expected_output_shape: Output shape without batch, if known.
        exportable: Also check LiteRT parity of the float TFLite export.
        tflite_atol: Tolerance of that parity check, default 1e-4.
        seed: Seed of weights and data.
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (8,) + tuple(input_shape)).astype("float32")

    # Build and call.
    layer = layer_cls(**init_kwargs)
    y = np.asarray(layer(x))
    assert np.all(np.isfinite(y)), f"{layer_cls.__name__} gave non-finite output"
    if expected_output_shape is not None:
        assert y.shape[1:] == tuple(expected_output_shape), (
            f"{layer_cls.__name__}: output shape {y.shape[1:]}, expected "
            f"{tuple(expected_output_shape)}"
        )

    # Config round trip: same config, same output with the same weights.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert np.asarray(clone(x)).shape == y.shape, (
        f"{layer_cls.__name__}: the config round trip changed the output shape"
    )
    assert clone.get_config() == config, f"{layer_cls.__name__} config changed"
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), y, rtol=1e-6, atol=1e-6)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is layer_cls

    # .keras save and load under safe_mode.
    inputs = keras.Input(tuple(input_shape))
    model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs))
    before = model.predict(x, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)

    # One training step changes the trainable weights and stays finite.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    target = rng.uniform(-1, 1, before.shape).astype("float32")
    trainable = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(x, target)
    assert np.isfinite(loss)
    if trainable:
        moved = [
            not np.array_equal(a, np.asarray(w))
            for a, w in zip(trainable, model.trainable_weights)
        ]
        assert any(moved), f"{layer_cls.__name__}: no weight moved in training"

    if exportable:
        runner = LiteRTModel(export.to_tflite(model))
        np.testing.assert_allclose(
            runner.predict(x), model.predict(x, verbose=0), rtol=0, atol=tflite_atol
        )
    return model
