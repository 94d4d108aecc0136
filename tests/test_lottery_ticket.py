"""LotteryTicket: round sparsities, rewinding, resume."""

import keras
import numpy as np
import pytest

from keras_compress.callbacks import LotteryTicket
from keras_compress.pruning import get_masks


def mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(48, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="logits"),
    ])
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def kernels(model):
    return {f"{layer.name}/kernel": layer.kernel.numpy().copy()
            for layer in model.layers if hasattr(layer, "kernel")}


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_rounds_prune_rate_of_remaining_and_rewind_to_init(digits, scope):
    (x, y), _ = digits
    model = mlp()
    initial = kernels(model)
    ticket = LotteryTicket(epochs_per_round=1, rounds=3, scope=scope)
    # Three epochs: the third pruning happens at the last epoch's end, so
    # the model ends rewound, as a ticket ready to train.
    history = model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[ticket])
    expected = [1 - 0.8 ** r for r in (1, 2, 3)]
    np.testing.assert_allclose(history.history["sparsity"], expected, atol=2e-3)
    masks = get_masks(model)
    sizes = {key: mask.size for key, mask in masks.items()}
    if scope == "layer":
        for key, mask in masks.items():
            assert (mask == 0).sum() == round(expected[-1] * sizes[key])
    else:
        pruned = sum(int((m == 0).sum()) for m in masks.values())
        assert abs(pruned - round(expected[-1] * sum(sizes.values()))) <= 1
    for key, value in kernels(model).items():
        np.testing.assert_array_equal(value, initial[key] * masks[key])


def test_late_rewinding_returns_to_step_k(digits):
    (x, y), _ = digits
    x, y = x[:320], y[:320]  # 5 steps per epoch
    reference = mlp()
    reference.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0)
    after_5 = kernels(reference)
    model = mlp()
    ticket = LotteryTicket(epochs_per_round=2, rounds=1, rewind_step=5)
    model.fit(x, y, epochs=2, batch_size=64, shuffle=False, verbose=0,
              callbacks=[ticket])
    masks = get_masks(model)
    for key, value in kernels(model).items():
        np.testing.assert_allclose(value, after_5[key] * masks[key], atol=1e-7)
    # The optimizer restarts as at step 5: momenta zero, step count 5.
    slots = [v for v in model.optimizer.variables
             if v is not model.optimizer.iterations and "learning_rate" not in v.name]
    assert all(not np.any(v.numpy()) for v in slots)
    assert int(model.optimizer.iterations) == 5


def test_rewind_to_init_restarts_the_optimizer(digits):
    """After a rewind to step 0, the next update equals a fresh optimizer's
    first update from the same weights (Adam's bias correction included)."""
    from keras_compress.pruning import set_masks

    (x, y), _ = digits
    x, y = x[:128], y[:128]  # 2 steps per epoch
    model = mlp()
    model.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0,
              callbacks=[LotteryTicket(epochs_per_round=1, rounds=1)])
    assert int(model.optimizer.iterations) == 0
    fresh = mlp()
    fresh.set_weights(model.get_weights())
    set_masks(fresh, get_masks(model))
    for m in (model, fresh):
        m.fit(x[:64], y[:64], epochs=1, batch_size=64, verbose=0)
    for key, value in kernels(model).items():
        np.testing.assert_allclose(value, kernels(fresh)[key], atol=1e-6)


def test_ticket_trains_after_last_round(digits):
    (x, y), (x_test, y_test) = digits
    model = mlp()
    ticket = LotteryTicket(epochs_per_round=3, rounds=2)
    history = model.fit(x, y, epochs=9, batch_size=64, verbose=0, callbacks=[ticket])
    assert history.history["sparsity"][-1] == pytest.approx(0.36, abs=2e-3)
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.9
    for key, mask in get_masks(model).items():  # pruned weights stayed zero
        layer = model.get_layer(key.split("/")[0])
        assert np.all(layer.kernel.numpy()[mask == 0] == 0)


def test_round_sparsity_formula():
    ticket = LotteryTicket(epochs_per_round=1, rounds=11)
    assert [round(ticket.round_sparsity(r), 4) for r in (3, 7, 11, 20)] == [
        0.488, 0.7903, 0.9141, 0.9141]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs_per_round=0, rounds=1), "epochs_per_round=0"),
        (dict(epochs_per_round=1, rounds=1.5), "rounds=1.5"),
        (dict(epochs_per_round=1, rounds=2, rate=1.0), r"rate=1\.0"),
        (dict(epochs_per_round=1, rounds=2, rewind_step=None), "rewind_step=None"),
        (dict(epochs_per_round=1, rounds=2, scope="net"), "scope='net'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LotteryTicket(**kwargs)


def test_rewind_step_beyond_first_round(digits):
    (x, y), _ = digits
    model = mlp()
    ticket = LotteryTicket(epochs_per_round=1, rounds=1, rewind_step=10_000)
    with pytest.raises(ValueError, match="rewind_step=10000"):
        model.fit(x[:128], y[:128], epochs=1, verbose=0, callbacks=[ticket])
