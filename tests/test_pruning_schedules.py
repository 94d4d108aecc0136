"""Pruning schedules: values against the formula, update steps, configs."""

import keras
import numpy as np
import pytest

from keras_compress.pruning import ConstantSparsity, PolynomialDecay


def test_polynomial_decay_equals_formula():
    schedule = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=1100, power=3)
    for step in (100, 101, 350, 600, 1099, 1100, 5000):
        progress = min(max((step - 100) / 1000, 0.0), 1.0)
        expected = 0.9 + (0.1 - 0.9) * (1 - progress) ** 3
        assert schedule(step) == pytest.approx(expected, abs=1e-12)
        tensor = schedule(keras.ops.convert_to_tensor(step))
        assert float(tensor) == pytest.approx(expected, abs=1e-6)
    assert schedule(99) == 0.0


def test_constant_sparsity_values_and_update_steps():
    schedule = ConstantSparsity(0.75, begin_step=10, end_step=40, frequency=7)
    assert schedule(9) == 0.0 and schedule(10) == 0.75 and schedule(1000) == 0.75
    due = [s for s in range(0, 60) if schedule.due(s)]
    assert due == [10, 17, 24, 31, 38, 40]
    tensor_due = [
        s for s in range(0, 60) if bool(schedule.due(keras.ops.convert_to_tensor(s)))
    ]
    assert tensor_due == due
    # The grid starts at begin_step (step 0 never happens, as in tfmot);
    # no end means forever.
    forever = ConstantSparsity(0.5, frequency=100)
    assert [s for s in range(0, 302) if forever.due(s)] == [100, 200, 300]
    gradual = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=250, frequency=100)
    assert [s for s in range(0, 400) if gradual.due(s)] == [100, 200, 250]


@pytest.mark.parametrize(
    "schedule",
    [
        ConstantSparsity(0.5, begin_step=3, end_step=9, frequency=2),
        PolynomialDecay(0.0, 0.95, begin_step=0, end_step=500, power=2, frequency=5),
    ],
)
def test_schedule_config_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    steps = np.arange(0, 600, 37)
    assert [restored(int(s)) for s in steps] == [schedule(int(s)) for s in steps]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ConstantSparsity(1.0), r"target_sparsity=1\.0"),
        (lambda: ConstantSparsity(-0.1), r"target_sparsity=-0\.1"),
        (lambda: ConstantSparsity(0.5, begin_step=10, end_step=5), "begin_step"),
        (lambda: ConstantSparsity(0.5, frequency=0), "frequency=0"),
        (lambda: PolynomialDecay(0.0, 1.2, 0, 10), r"final_sparsity=1\.2"),
        (lambda: PolynomialDecay(0.0, 0.5, 10, 10), "begin_step=10, end_step=10"),
        (lambda: PolynomialDecay(0.6, 0.5, 0, 10), "final_sparsity"),
        (lambda: PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power=0"),
    ],
)
def test_schedule_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
