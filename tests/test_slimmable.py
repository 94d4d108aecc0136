"""Slimmable layers, width switching, sandwich training and `export_width`."""

import inspect
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_compress import export
from keras_compress.analysis import summarize
from keras_compress.layers.slimmable import SlimmableConv2D
from keras_compress.layers.slimmable import SlimmableDense
from keras_compress.layers.slimmable import SwitchableBatchNormalization
from keras_compress.layers.slimmable import active_channels
from keras_compress.runtime import LiteRTModel
from keras_compress.slimmable import SandwichModel
from keras_compress.slimmable import calibrate_batchnorm
from keras_compress.slimmable import export_width
from keras_compress.slimmable import get_width
from keras_compress.slimmable import model_widths
from keras_compress.slimmable import set_width
from keras_compress.slimmable import width
from layer_test import run_layer_test

WIDTHS = (0.25, 0.5, 0.75, 1.0)
C1, C2, CLASSES = 8, 16, 10


def build_cnn(seed=0, widths=WIDTHS, c1=C1, c2=C2):
    """Conv(c1) - SBN - ReLU - Conv(c2, stride 2) - SBN - ReLU - GAP - Dense(10)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = SlimmableConv2D(c1, 3, padding="same", slim_input=False,
                        width_multipliers=widths, name="conv1")(inputs)
    x = SwitchableBatchNormalization(momentum=0.9, width_multipliers=widths,
                                     name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = SlimmableConv2D(c2, 3, strides=2, padding="same", use_bias=False,
                        width_multipliers=widths, name="conv2")(x)
    x = SwitchableBatchNormalization(momentum=0.9, width_multipliers=widths,
                                     name="bn2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = SlimmableDense(CLASSES, slim_output=False, width_multipliers=widths,
                             name="out")(x)
    return keras.Model(inputs, outputs, name="slim_cnn")


def randomize_batchnorm(model, seed=0):
    """Different BatchNorm parameters and statistics in every width's row."""
    rng = np.random.default_rng(seed)
    for name in ("bn1", "bn2"):
        bn = model.get_layer(name)
        for variable, low, high in ((bn.gamma, 0.5, 1.5), (bn.beta, -0.5, 0.5),
                                    (bn.moving_mean, -0.3, 0.3),
                                    (bn.moving_variance, 0.5, 2.0)):
            variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))
    return model


def expected_params(w):
    """Exact parameters of `export_width(build_cnn(), w)`."""
    a, b = active_channels(C1, w), active_channels(C2, w)
    conv1 = 3 * 3 * 1 * a + a
    bn1 = 4 * a
    conv2 = 3 * 3 * a * b
    bn2 = 4 * b
    dense = b * CLASSES + CLASSES
    return conv1 + bn1 + conv2 + bn2 + dense


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype("float32")


# --- the channel rule and the layers ----------------------------------------


def test_active_channels_rule():
    # Half rounds up, at least one channel, never more than all.
    assert active_channels(10, 0.25) == 3  # 2.5 -> 3
    assert active_channels(8, 0.25) == 2
    assert active_channels(6, 0.75) == 5  # 4.5 -> 5
    assert active_channels(10, 0.35) == 4  # 3.5 -> 4 despite float error
    assert active_channels(3, 0.1) == 1
    assert active_channels(7, 1.0) == 7


@pytest.mark.parametrize(
    "cls,kwargs,input_shape,output_shape",
    [
        (SlimmableConv2D, {"filters": 4, "kernel_size": 3, "padding": "same",
                           "width_multipliers": (0.5, 1.0)}, (5, 5, 3), (5, 5, 4)),
        (SlimmableDense, {"units": 5, "activation": "relu",
                          "width_multipliers": (0.5, 1.0)}, (6,), (5,)),
        (SwitchableBatchNormalization, {"width_multipliers": (0.5, 1.0)},
         (4, 4, 6), (4, 4, 6)),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_layer_helper(cls, kwargs, input_shape, output_shape):
    run_layer_test(cls, kwargs, input_shape, expected_output_shape=output_shape)


@pytest.mark.parametrize(
    "cls,parent,extra",
    [
        (SlimmableConv2D, keras.layers.Conv2D,
         ["width_multipliers", "slim_input", "slim_output"]),
        (SlimmableDense, keras.layers.Dense,
         ["width_multipliers", "slim_input", "slim_output"]),
        (SwitchableBatchNormalization, keras.layers.BatchNormalization,
         ["width_multipliers"]),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_signature_parity(cls, parent, extra):
    theirs = inspect.signature(parent.__init__).parameters
    ours = inspect.signature(cls.__init__).parameters
    for name, param in theirs.items():
        assert name in ours, f"{cls.__name__} lacks Keras argument {name!r}"
        assert ours[name].default == param.default, (cls.__name__, name)
    names = [n for n in ours if n != "kwargs"]
    assert names == [n for n in theirs if n != "kwargs"] + extra


def test_dense_at_a_width_uses_the_first_channels():
    layer = SlimmableDense(6, width_multipliers=(0.5, 1.0))
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    full = np.asarray(layer(x))
    kernel, bias = (np.asarray(w) for w in layer.get_weights()[:2])
    np.testing.assert_allclose(full, x @ kernel + bias, atol=1e-6)
    layer.set_width(0.5)
    half = np.asarray(layer(x))
    np.testing.assert_allclose(half[:, :3], x[:, :2] @ kernel[:2, :3] + bias[:3],
                               atol=1e-6)
    assert np.all(half[:, 3:] == 0)


def test_switchable_batchnorm_keeps_private_statistics():
    bn = SwitchableBatchNormalization(momentum=0.5, width_multipliers=(0.25, 0.5, 1.0))
    x = np.random.default_rng(2).normal(3.0, 2.0, (32, 4, 4, 8)).astype("float32")
    bn(x)  # build
    bn.set_width(0.5)
    y = np.asarray(bn(x, training=True))
    mean = np.asarray(bn.moving_mean)
    np.testing.assert_array_equal(mean[[0, 2]], 0.0)  # other widths untouched
    np.testing.assert_allclose(mean[1], 0.5 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    assert np.all(y[..., 4:] == 0) and np.abs(y[..., :4]).max() > 0.5
    # Inference reads the row of the active width.
    bn.set_width(1.0)
    np.testing.assert_allclose(np.asarray(bn(x)), x / np.sqrt(1 + 1e-3), rtol=1e-5)


# --- switching the width ------------------------------------------------------


def test_set_width_switches_compiled_function_without_retracing(images):
    model = randomize_batchnorm(build_cnn())
    assert model_widths(model) == WIDTHS
    f = tf.function(lambda x: model(x, training=False))
    full = np.asarray(f(images))
    set_width(model, 0.5)
    assert get_width(model) == 0.5
    half = np.asarray(f(images))
    assert f.experimental_get_tracing_count() == 1
    assert np.abs(full - half).max() > 1e-2
    np.testing.assert_allclose(half, np.asarray(model(images)), atol=1e-6)
    # The context manager restores the width, also after an error.
    with pytest.raises(RuntimeError):
        with width(model, 0.25):
            assert get_width(model) == 0.25
            raise RuntimeError("inside")
    assert get_width(model) == 0.5


def test_slimmable_model_saves_with_its_width(tmp_path, images):
    model = randomize_batchnorm(build_cnn())
    set_width(model, 0.75)
    path = os.path.join(tmp_path, "slim.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert get_width(loaded) == 0.75
    np.testing.assert_array_equal(loaded.predict(images, verbose=0),
                                  model.predict(images, verbose=0))


# --- export_width -------------------------------------------------------------


def test_export_width_matches_and_is_smaller(images):
    model = randomize_batchnorm(build_cnn())
    set_width(model, 0.75)
    before = [np.array(w) for w in model.get_weights()]
    sizes = {}
    for w in WIDTHS:
        plain = export_width(model, w)
        assert not any(type(layer).__module__.startswith("keras_compress")
                       for layer in plain.layers)
        assert plain.get_layer("conv2").filters == active_channels(C2, w)
        stats = summarize(plain).totals
        assert stats.params == plain.count_params() == expected_params(w)
        sizes[w] = (stats.params, stats.macs)
        with width(model, w):
            slim_out = model.predict(images, verbose=0)
        np.testing.assert_allclose(plain.predict(images, verbose=0), slim_out,
                                   rtol=0, atol=1e-5)
    # Every narrower width is really smaller, in parameters and MACs.
    for narrow, wide in zip(WIDTHS, WIDTHS[1:]):
        assert sizes[narrow][0] < sizes[wide][0]
        assert sizes[narrow][1] < sizes[wide][1]
    assert sizes[0.25][1] < 0.15 * sizes[1.0][1]
    # The input model is untouched, its width included.
    assert get_width(model) == 0.75
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_exported_width_to_tflite_matches_keras(tmp_path, images):
    model = randomize_batchnorm(build_cnn(seed=3), seed=3)
    plain = export_width(model, 0.5)
    path = os.path.join(tmp_path, "half.tflite")
    data = export.to_tflite(plain, path=path)
    assert os.path.getsize(path) == len(data)
    runner = LiteRTModel(data)
    with width(model, 0.5):
        expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(runner.predict(images), expected, rtol=0, atol=1e-5)
    full = export.to_tflite(export_width(model, 1.0))
    assert len(data) < len(full)


# --- training -----------------------------------------------------------------


@pytest.mark.slow
def test_sandwich_training_on_digits_reaches_floor_at_every_width(digits):
    (x_train, y_train), (x_test, y_test) = digits
    model = build_cnn(seed=0, c1=16, c2=32)
    set_width(model, 0.5)  # fit must leave the width as it found it
    trainer = SandwichModel(model, num_random=1, seed=0)
    epochs = 10
    steps = -(-len(x_train) // 64)
    trainer.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(5e-3, epochs * steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert get_width(model) == 0.5
    # Measured on seed 0: 0.69, 0.79, 0.91, 0.94.
    floors = {0.25: 0.5, 0.5: 0.65, 0.75: 0.8, 1.0: 0.88}
    accuracy = {}
    for w in WIDTHS:
        plain = export_width(model, w)
        accuracy[w] = float((plain.predict(x_test, verbose=0).argmax(1) == y_test).mean())
        with width(model, w):
            slim = model.predict(x_test, verbose=0).argmax(1)
        assert float((slim == y_test).mean()) == accuracy[w]
    assert all(accuracy[w] >= floors[w] for w in WIDTHS), accuracy
    # Every width trained its own BatchNorm statistics (bn2's input depends
    # on the width; bn1's first channels see the same image at every width).
    mean = np.asarray(model.get_layer("bn2").moving_mean)[:, :2]
    assert np.abs(mean[0] - mean[3]).max() > 1e-3
    assert np.abs(mean[1] - mean[3]).max() > 1e-3
    # Exact re-estimated statistics keep every width working.
    calibrate_batchnorm(model, x_train, batch_size=256)
    assert get_width(model) == 0.5
    for w in WIDTHS:
        with width(model, w):
            acc = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
        assert acc >= floors[w] - 0.05, (w, acc)


@pytest.mark.parametrize("distillation,num_random", [(False, 0), (True, 5)])
def test_sandwich_variants_take_steps(distillation, num_random, images):
    model = build_cnn(seed=4)
    trainer = SandwichModel(model, num_random=num_random, distillation=distillation)
    trainer.compile(keras.optimizers.SGD(0.1),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.arange(len(images)) % CLASSES
    before = np.array(model.get_layer("bn2").moving_mean)
    trainer.fit(images, labels, epochs=1, batch_size=8, verbose=0)
    after = np.asarray(model.get_layer("bn2").moving_mean)
    changed = np.abs(after - before).max(axis=1) > 0
    # Widest and smallest always; all four when num_random covers the middle.
    assert changed.tolist() == ([True, False, False, True] if num_random == 0
                                else [True] * 4)
    config = trainer.get_config()
    clone = SandwichModel.from_config(config)
    assert (clone.num_random, clone.distillation) == (num_random, distillation)


def test_calibrate_batchnorm_gives_exact_statistics():
    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((6,)),
        SlimmableDense(8, slim_input=False, width_multipliers=(0.5, 1.0)),
        SwitchableBatchNormalization(width_multipliers=(0.5, 1.0)),
        keras.layers.Dropout(0.5),
    ])
    x = np.random.default_rng(5).normal(2.0, 3.0, (100, 6)).astype("float32")
    calibrate_batchnorm(model, x, batch_size=32)
    dense, bn = model.layers[0], model.layers[1]
    kernel, bias = (np.asarray(w, "float64") for w in dense.get_weights()[:2])
    pre = x.astype("float64") @ kernel + bias
    mean, variance = np.asarray(bn.moving_mean), np.asarray(bn.moving_variance)
    np.testing.assert_allclose(mean[1], pre.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance[1], pre.var(axis=0), rtol=1e-5)
    np.testing.assert_allclose(mean[0, :4], pre[:, :4].mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mean[0, 4:], 0.0)  # inactive channels kept
    assert get_width(model) == 1.0


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "widths,match",
    [
        ((0.5, 1.5), r"1\.5 is outside \(0, 1\]"),
        ((0.0, 1.0), r"0\.0 is outside \(0, 1\]"),
        ((0.25, 0.5), r"1\.0 is missing"),
        ((0.5, 0.5, 1.0), r"0\.5 appears twice"),
        ((), r"non-empty"),
    ],
)
def test_bad_widths(widths, match):
    for cls, args in ((SlimmableDense, (4,)), (SlimmableConv2D, (4, 3)),
                      (SwitchableBatchNormalization, ())):
        with pytest.raises(ValueError, match=r"Expected `width_multipliers`.*" + match):
            cls(*args, width_multipliers=widths)


def test_widths_are_sorted_and_typed():
    assert SwitchableBatchNormalization(width_multipliers=[1, 0.5]).width_multipliers == (0.5, 1.0)
    with pytest.raises(TypeError, match="Received: width_multipliers='0.5'"):
        SlimmableDense(4, width_multipliers="0.5")
    with pytest.raises(TypeError, match="Received: slim_input='no'"):
        SlimmableDense(4, slim_input="no")
    with pytest.raises(ValueError, match="Expected groups=1"):
        SlimmableConv2D(4, 3, groups=2)
    with pytest.raises(ValueError, match="Expected renorm=False"):
        SwitchableBatchNormalization(renorm=True)


def test_bad_width_leaves_the_model_unchanged(images):
    model = build_cnn()
    set_width(model, 0.75)
    message = r"Expected `width` to be one of the widths of model 'slim_cnn'.*Received: width=0\.3"
    with pytest.raises(ValueError, match=message):
        set_width(model, 0.3)
    with pytest.raises(ValueError, match=message):
        export_width(model, 0.3)
    with pytest.raises(ValueError, match="one of the width_multipliers"):
        model.get_layer("conv1").set_width(2)
    assert get_width(model) == 0.75
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="plain")
    with pytest.raises(ValueError, match="Expected a model with slimmable layers.*'plain'"):
        set_width(plain, 1.0)
    with pytest.raises(ValueError, match="num_random"):
        SandwichModel(model, num_random=-1)


def test_export_width_explains_channels_that_cannot_line_up():
    inputs = keras.Input((4, 4, 3))
    x = SlimmableConv2D(8, 1, width_multipliers=(0.5, 1.0), name="c")(inputs)
    first_slims_input = keras.Model(inputs, x)
    with pytest.raises(ValueError, match=r"expected layer 'c'.*to receive 2 channels.*"
                                         r"Received: 3 channels.*slim_input=False"):
        export_width(first_slims_input, 0.5)
    inputs = keras.Input((4, 4, 3))
    x = SlimmableConv2D(8, 1, slim_input=False, width_multipliers=(0.5, 1.0))(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    y = keras.layers.Dense(2, name="plain_dense")(x)
    plain_after_slim = keras.Model(inputs, y)
    with pytest.raises(ValueError, match="layer 'plain_dense'.*is not slimmable"):
        export_width(plain_after_slim, 0.5)
    assert export_width(plain_after_slim, 1.0).count_params() == plain_after_slim.count_params() - 1
