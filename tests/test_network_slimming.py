"""NetworkSlimming and network_slimming: sparse gammas, then real removal."""

import keras
import numpy as np
import pytest

from keras_compress.callbacks import NetworkSlimming
from keras_compress.pruning import BatchNormScale, network_slimming, prune_channels

L = keras.layers


def bn_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i, width in enumerate((16, 32)):
        x = L.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(10, name="out")(x))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def gammas(model):
    return np.concatenate([np.abs(model.get_layer(f"bn{i}").gamma.numpy())
                           for i in range(2)])


def test_penalty_shrinks_gammas_and_goes_away(digits):
    (x, y), _ = digits
    plain = bn_cnn()
    plain.fit(x, y, epochs=4, batch_size=64, verbose=0)
    slim = bn_cnn()
    config = slim.get_config()
    history = slim.fit(x, y, epochs=4, batch_size=64, verbose=0,
                       callbacks=[NetworkSlimming(5e-2)])
    assert gammas(slim).mean() < 0.8 * gammas(plain).mean()
    assert history.history["slimming/mean_abs_gamma"][-1] == pytest.approx(
        gammas(slim).mean(), rel=1e-5)
    # Removed after training: config and variables as before.
    assert slim.get_config() == config
    assert all(slim.get_layer(f"bn{i}").gamma.regularizer is None for i in range(2))
    assert not slim.losses


def test_proximal_step_sets_gammas_to_exact_zero(digits):
    (x, y), _ = digits
    model = bn_cnn()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),  # as in the paper
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=4, batch_size=64, verbose=0,
                        callbacks=[NetworkSlimming(1.0, proximal=True, layers=["bn0"])])
    assert (model.get_layer("bn0").gamma.numpy() == 0).mean() > 0.25
    assert (model.get_layer("bn1").gamma.numpy() == 0).sum() == 0  # not selected
    assert history.history["slimming/near_zero"][-1] > 0.2
    assert model.get_layer("bn0").gamma.constraint is None
    pruned, report = prune_channels(model, threshold=1e-12, criterion=BatchNormScale(),
                                    min_channels=1)
    zeroed = int((model.get_layer("bn0").gamma.numpy() == 0).sum())
    assert report.layers[0]["channels_after"] == max(16 - zeroed, 1)


def test_network_slimming_passes(digits):
    (x, y), (x_test, y_test) = digits
    model = bn_cnn()
    slim, reports = network_slimming(
        model, x, y, ratio=0.3, passes=2, epochs=4, finetune_epochs=4,
        penalty=1e-2, min_channels=2, batch_size=64, verbose=0,
    )
    assert len(reports) == 2
    assert reports[1].params_before == reports[0].params_after
    assert slim.count_params() == reports[1].params_after < model.count_params()
    assert reports[1].macs_after < reports[0].macs_after < reports[0].macs_before
    assert slim.evaluate(x_test, y_test, verbose=0)[1] > 0.6


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(penalty=0), "penalty=0"), (dict(penalty=-1.0), r"penalty=-1\.0")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetworkSlimming(**kwargs)


def test_bad_selection(digits):
    (x, y), _ = digits
    with pytest.raises(ValueError, match=r"not found \['bn9'\]"):
        bn_cnn().fit(x[:64], y[:64], verbose=0,
                     callbacks=[NetworkSlimming(layers=["bn9"])])
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="BatchNormalization"):
        model.fit(np.zeros((4, 4)), np.zeros((4, 2)), verbose=0,
                  callbacks=[NetworkSlimming()])
