"""Pruning schedules: how sparse a weight should be after a given step."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_compress._checks import check_int
from keras_compress._checks import check_number


def _check_sparsity(name, value):
    return check_number(name, value, "a number in [0, 1)", lambda v: 0 <= v < 1)


class PruningSchedule:
    """Base class of pruning schedules.

    A schedule maps a training step to a target sparsity and says at which
    steps the masks are recomputed. Steps count optimizer updates: step `s`
    is the state right after the `s`-th update (`optimizer.iterations` once
    the update is done), so step 1 is the first batch.

    Masks are recomputed at the steps `begin_step + k * frequency` (k >= 0;
    step 0 never happens, so with `begin_step=0` the first update comes
    after `frequency` steps, as in tfmot) while `step <= end_step`, and
    always at `end_step`, so training for `end_step` steps reaches the final
    sparsity exactly.

    Subclasses implement `sparsity(step, xp)`, written once against the
    NumPy-compatible namespace `xp` (NumPy for Python numbers, `keras.ops`
    inside the compiled train step), `final_sparsity()` and `get_config()`.

    Args:
        begin_step: first step at which weights are pruned.
        end_step: last step at which masks change; `-1` means never stop.
        frequency: steps between two mask updates.
    """

    def __init__(self, begin_step=0, end_step=-1, frequency=100):
        self.begin_step = check_int("begin_step", begin_step, 0)
        self.end_step = check_int("end_step", end_step, -1)
        self.frequency = check_int("frequency", frequency, 1)
        if self.end_step != -1 and self.end_step < max(self.begin_step, 1):
            raise ValueError(
                "Expected `begin_step` <= `end_step` (and `end_step` >= 1, or "
                "-1 for no end). Received: "
                f"begin_step={begin_step}, end_step={end_step}"
            )

    def sparsity(self, step, xp):
        """Target sparsity at float `step` computed with `xp` (subclasses)."""
        raise NotImplementedError

    def final_sparsity(self):
        """Sparsity the schedule ends at (subclasses implement)."""
        raise NotImplementedError

    def __call__(self, step):
        """Returns the target sparsity at `step`.

        A float for a Python or NumPy number, a tensor for a tensor.
        """
        if isinstance(step, numbers.Number):
            return float(self.sparsity(np.float64(step), np))
        return self.sparsity(ops.cast(step, "float32"), ops)

    def due(self, step):
        """Whether masks are recomputed at `step` (bool, or bool tensor)."""
        begin = self.begin_step
        if isinstance(step, numbers.Number):
            step = int(step)
            end = self.end_step if self.end_step != -1 else step
            return 1 <= step and begin <= step <= end and (
                (step - begin) % self.frequency == 0 or step == self.end_step
            )
        step_t = ops.cast(step, "int32")
        on_grid = ops.equal(ops.mod(step_t - begin, self.frequency), 0)
        result = ops.greater_equal(step_t, max(begin, 1))
        if self.end_step == -1:
            result = ops.logical_and(result, on_grid)
        else:
            result = ops.logical_and(
                result,
                ops.logical_and(
                    ops.less_equal(step_t, self.end_step),
                    ops.logical_or(on_grid, ops.equal(step_t, self.end_step)),
                ),
            )
        return result

    def get_config(self):
        return {
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_compress")
class ConstantSparsity(PruningSchedule):
    """Prunes to one sparsity at every update from `begin_step` on.

    With the default `begin_step=0` the model is pruned after its first
    `frequency` steps and then trained with the mask held fixed (one-shot
    pruning plus fine-tuning).

    Args:
        target_sparsity: fraction of weights set to zero, in [0, 1).
        begin_step: first step at which weights are pruned. Defaults to 0.
        end_step: last step at which masks are recomputed; -1 (default)
            keeps recomputing every `frequency` steps.
        frequency: steps between two mask updates. Defaults to 100.

    Example:

    >>> schedule = ConstantSparsity(0.8, begin_step=200)
    >>> schedule(100), schedule(300)
    (0.0, 0.8)
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = _check_sparsity("target_sparsity", target_sparsity)

    def sparsity(self, step, xp):
        started = xp.greater_equal(step, float(max(self.begin_step, 1)))
        return xp.where(started, self.target_sparsity, 0.0)

    def final_sparsity(self):
        return self.target_sparsity

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_compress")
class PolynomialDecay(PruningSchedule):
    """Gradual pruning schedule of Zhu & Gupta (2017).

    Sparsity rises from `initial_sparsity` at `begin_step` to
    `final_sparsity` at `end_step` as

        s(t) = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0)) ** power

    quickly at first, while the network has many redundant weights, then
    more and more slowly. Before `begin_step` the target is 0; after
    `end_step` it stays at `final_sparsity`.

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity at and after `end_step`, in [0, 1), at
            least `initial_sparsity`.
        begin_step: step at which pruning starts.
        end_step: step at which `final_sparsity` is reached (> `begin_step`).
        power: exponent of the decay. Defaults to 3 (the paper's choice).
        frequency: steps between two mask updates. Defaults to 100.

    Example:

    >>> schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=1000)
    >>> round(schedule(500), 4)
    0.7875

    Reference:
        Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of
        pruning for model compression", 2017.
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        super().__init__(begin_step, end_step, frequency)
        if self.end_step == -1 or self.end_step <= self.begin_step:
            raise ValueError(
                "Expected `begin_step` < `end_step` for PolynomialDecay. "
                f"Received: begin_step={begin_step}, end_step={end_step}"
            )
        self.initial_sparsity = _check_sparsity("initial_sparsity", initial_sparsity)
        self.final_sparsity_value = _check_sparsity("final_sparsity", final_sparsity)
        if self.final_sparsity_value < self.initial_sparsity:
            raise ValueError(
                "Expected `final_sparsity` >= `initial_sparsity` (masks never "
                f"let pruned weights grow back). Received: initial_sparsity="
                f"{initial_sparsity}, final_sparsity={final_sparsity}"
            )
        self.power = check_number("power", power, "a positive number", lambda v: v > 0)

    def sparsity(self, step, xp):
        begin, end = float(self.begin_step), float(self.end_step)
        progress = xp.clip((step - begin) / (end - begin), 0.0, 1.0)
        value = self.final_sparsity_value + (
            self.initial_sparsity - self.final_sparsity_value
        ) * xp.power(1.0 - progress, self.power)
        started = xp.greater_equal(step, float(max(self.begin_step, 1)))
        return xp.where(started, value, 0.0)

    def final_sparsity(self):
        return self.final_sparsity_value

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity_value,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


def get(identifier):
    """Returns a schedule from a schedule, a sparsity, or a config dict."""
    if isinstance(identifier, PruningSchedule):
        return identifier
    if isinstance(identifier, numbers.Real) and not isinstance(identifier, bool):
        # A bare sparsity prunes at once (after the first step).
        return ConstantSparsity(identifier, begin_step=1)
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, PruningSchedule):
            return obj
    raise ValueError(
        "Expected `schedule` to be a PruningSchedule (ConstantSparsity, "
        "PolynomialDecay) or a sparsity in [0, 1). "
        f"Received: schedule={identifier!r}"
    )
