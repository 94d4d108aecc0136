"""Tampered configs of every public serializable class are refused.

Layers are covered in `layer_test.run_layer_test`. This file covers the
other public classes on their own: quantizers, constraints, pruning
schedules and `Hint` (deserialized with `safe_mode=True`, as Keras does
for every nested object of a `.keras` file), and the `keras.Model`
subclasses `Distiller`, `SandwichModel` and `MultiExitTrainer` (saved as
`.keras` and loaded with `safe_mode=True`). Each tampering (an unknown
class, a path to `os.system`, a lambda in place of the object or of an
object in its config) must raise a `TypeError` or `ValueError` with a
message, and run nothing.
"""

import copy
import os

import keras
import numpy as np
import pytest

from keras_compress import quantizers
from keras_compress.clustering import ClusterWeights
from keras_compress.distillation import Distiller
from keras_compress.distillation import Hint
from keras_compress.early_exit import MultiExitTrainer
from keras_compress.early_exit import add_early_exits
from keras_compress.layers import WeightClip
from keras_compress.pruning import ConstantSparsity
from keras_compress.pruning import PolynomialDecay
from keras_compress.pruning import PruningMask
from keras_compress.slimmable import SandwichModel
from layer_test import check_tampered_configs_are_refused

OBJECTS = {
    "FakeQuant": lambda: quantizers.FakeQuant(bits=4, narrow_range=True),
    "SteSign": lambda: quantizers.SteSign(),
    "StochasticSign": lambda: quantizers.StochasticSign(),
    "Ternary": lambda: quantizers.Ternary(),
    "DoReFa": lambda: quantizers.DoReFa(),
    "PowerOfTwo": lambda: quantizers.PowerOfTwo(),
    "PruningMask": lambda: PruningMask(keras.constraints.MaxNorm(2.0)),
    "ClusterWeights": lambda: ClusterWeights(8, constraint=keras.constraints.NonNeg()),
    "WeightClip": lambda: WeightClip(0.5, constraint=keras.constraints.MaxNorm(3.0)),
    "ConstantSparsity": lambda: ConstantSparsity(0.5, begin_step=10, frequency=5),
    "PolynomialDecay": lambda: PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100),
    "Hint": lambda: Hint("conv1", "conv2", weight=2.0, teacher=1),
}


def _tamperings(config, sentinel):
    """(name, tampered config) pairs for one serialized object."""
    lam = {"module": "builtins", "class_name": "__lambda__", "registered_name": None,
           "config": {"code": f"lambda *a: __import__('os').system('touch {sentinel}')",
                      "defaults": None, "closure": None}}
    unknown = copy.deepcopy(config)
    unknown.update(class_name="NoSuchThing", registered_name="keras_compress>NoSuchThing")
    out = [("unknown class", unknown),
           ("arbitrary callable", {"module": "os", "class_name": "system",
                                   "registered_name": None, "config": f"touch {sentinel}"}),
           ("lambda", lam)]
    for key, value in config["config"].items():
        if isinstance(value, dict) and "class_name" in value:
            nested = copy.deepcopy(config)
            nested["config"][key] = lam
            out.append((f"lambda as {key}", nested))
    return out


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_tampered_object_configs_are_refused(name, tmp_path):
    obj = OBJECTS[name]()
    config = keras.saving.serialize_keras_object(obj)
    # The untampered config round-trips exactly.
    clone = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(clone) is type(obj)
    assert keras.saving.serialize_keras_object(clone) == config
    sentinel = os.path.join(tmp_path, "ran")
    tamperings = _tamperings(config, sentinel)
    if name in ("PruningMask", "ClusterWeights", "WeightClip"):
        assert any(t.startswith("lambda as") for t, _ in tamperings)  # nested constraint
    for tampering, tampered in tamperings:
        loaders = [lambda c: keras.saving.deserialize_keras_object(c, safe_mode=True)]
        if isinstance(obj, quantizers.Quantizer):
            loaders.append(quantizers.get)  # the layers' own path
        for load in loaders:
            try:
                load(tampered)
            except (TypeError, ValueError) as e:
                assert str(e).strip(), f"{name}, {tampering}: refused without a message"
            else:
                raise AssertionError(f"{name}: config with {tampering} was loaded")
            assert not os.path.exists(sentinel), f"{name}, {tampering}: code ran"


def _cnn(name, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name=f"{name}_conv1")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(10, name=f"{name}_out")(h), name=name)


def _distiller():
    return Distiller(_cnn("student", 0), [_cnn("teacher", 1)], temperature=2.0,
                     hints=[Hint("student_conv1", "teacher_conv1")])


def _sandwich():
    from keras_compress.layers.slimmable import SlimmableDense

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = SlimmableDense(16, slim_input=False, width_multipliers=(0.5, 1.0),
                       activation="relu")(inputs)
    outputs = SlimmableDense(10, slim_output=False, width_multipliers=(0.5, 1.0))(h)
    return SandwichModel(keras.Model(inputs, outputs), num_random=1, seed=0)


def _multi_exit():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="b0")(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="b1")(h)
    backbone = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(h)))
    return MultiExitTrainer(add_early_exits(backbone, ["b0"]))


@pytest.mark.parametrize("name,build,shape", [
    ("Distiller", _distiller, (8, 8, 1)),
    ("SandwichModel", _sandwich, (8,)),
    ("MultiExitTrainer", _multi_exit, (8, 8, 1)),
])
def test_tampered_model_subclass_files_are_refused(name, build, shape, tmp_path):
    model = build()
    x = np.random.default_rng(0).normal(size=(4,) + shape).astype("float32")
    model(x)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    check_tampered_configs_are_refused(path, name)
