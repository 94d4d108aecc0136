"""The losses of distillation: hard (labels), soft (Hinton's KL at a
temperature, to one teacher or the mean of several) and argument checks."""

import math

import keras
from keras import ops

from keras_compress._checks import check_number


def weighted_mean(values, sample_weight):
    if sample_weight is None:
        return ops.mean(values)
    weight = ops.cast(sample_weight, values.dtype)
    while len(weight.shape) < len(values.shape):
        weight = ops.expand_dims(weight, -1)
    while len(weight.shape) > len(values.shape) and weight.shape[-1] == 1:
        weight = ops.squeeze(weight, -1)
    return ops.mean(values * weight)



def check_temperature(temperature):
    return check_number("temperature", temperature, "a finite number > 0",
                        lambda v: math.isfinite(v) and v > 0)



def check_alpha(alpha):
    return check_number("alpha", alpha, "a number in [0, 1]", lambda v: 0 <= v <= 1)



class FunctionLoss(keras.losses.Loss):
    """A loss function as a `Loss`: sample weights and the batch mean."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)



def hard_loss(loss):
    if loss is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(loss, str) and "crossentropy" in loss:
        raise ValueError(
            "Expected a loss on logits (the student outputs logits), e.g. "
            "keras.losses.SparseCategoricalCrossentropy(from_logits=True) or "
            f"None. Received: loss={loss!r} (expects probabilities)"
        )
    resolved = keras.losses.get(loss)
    if resolved is None or not callable(resolved):
        raise ValueError(
            f"Expected `loss` to be None, a loss object or a function. "
            f"Received: loss={loss!r}"
        )
    if not isinstance(resolved, keras.losses.Loss):
        resolved = FunctionLoss(resolved)
    config = resolved.get_config()
    if isinstance(config, dict) and config.get("from_logits") is False:
        raise ValueError(
            "Expected a loss on logits (the student outputs logits): set "
            f"from_logits=True. Received: loss={loss!r}"
        )
    return resolved
