"""The check every keras-compress layer goes through.

`run_layer_test` builds the layer, calls it, round-trips its config, saves
and loads a model holding it as `.keras` with `safe_mode=True` (identical
outputs), takes one training step, and, where the layer is exportable,
checks that the float TFLite export run in LiteRT matches Keras. A
`.keras` file whose config was tampered with (an unknown class, a lambda,
a path to an arbitrary callable) must be refused under `safe_mode=True`
with a message, running nothing.
"""

import json
import os
import tempfile
import zipfile

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
        check_tampered_configs_are_refused(path, layer_cls.__name__)
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


def _rewrite(path, target, change):
    """Copies the `.keras` at `path` to `target` with `change(config)`."""
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)


def _layer_configs(config, class_name):
    """Every serialized object dict of class `class_name` in a config."""
    found = []
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == class_name and "config" in item:
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_tampered_configs_are_refused(path, class_name):
    """Three tamperings of the layer's entry in a saved model, each refused
    by `load_model(safe_mode=True)` with a message; none runs code."""
    folder = os.path.dirname(path)
    sentinel = os.path.join(folder, "ran")

    def unknown(config):
        for entry in _layer_configs(config, class_name):
            entry["class_name"] = "NoSuchLayer"
            entry["registered_name"] = "keras_compress>NoSuchLayer"
            entry["module"] = "keras_compress.no_such_module"

    def arbitrary_callable(config):
        for entry in _layer_configs(config, class_name):
            entry.update({"module": "os", "class_name": "system",
                          "registered_name": None, "config": f"touch {sentinel}"})

    def nested_lambda(config):
        # A lambda where the layer's config holds a serialized object (an
        # initializer, a quantizer, ...), or as the layer itself.
        lam = {"module": "builtins", "class_name": "__lambda__", "registered_name": None,
               "config": {"code": "lambda x: __import__('os').system('touch " + sentinel
                          + "')", "defaults": None, "closure": None}}
        for entry in _layer_configs(config, class_name):
            # (Not the dtype policy: Keras's base Layer reads it before any
            # check and fails with an AttributeError on anything else.)
            nested = [k for k, v in entry["config"].items()
                      if isinstance(v, dict) and "class_name" in v and k != "dtype"]
            if nested:
                entry["config"][nested[0]] = lam
            else:
                entry.clear()
                entry.update(lam)

    for name, change in (("unknown class", unknown),
                         ("arbitrary callable", arbitrary_callable),
                         ("lambda", nested_lambda)):
        tampered = os.path.join(folder, "tampered.keras")
        _rewrite(path, tampered, change)
        try:
            keras.saving.load_model(tampered, safe_mode=True)
        except (TypeError, ValueError) as e:
            assert str(e).strip(), f"{class_name}, {name}: refused without a message"
        else:
            raise AssertionError(f"{class_name}: a .keras with a tampered config "
                                 f"({name}) loaded under safe_mode=True")
        assert not os.path.exists(sentinel), f"{class_name}, {name}: code ran"
