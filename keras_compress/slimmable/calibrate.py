"""`calibrate_batchnorm`: exact BatchNorm statistics for every width."""

import numpy as np
from keras import ops

from keras_compress._checks import check_int
from keras_compress.layers.slimmable.base_slimmable import active_channels
from keras_compress.layers.slimmable.base_slimmable import width_index
from keras_compress.layers.slimmable.switchable_batch_normalization import (
    SwitchableBatchNormalization,
)
from keras_compress.slimmable import switch as width_lib


def _batches(data, batch_size):
    """The input batches of `data` as a list."""
    if isinstance(data, dict):
        raise TypeError(
            "Expected `data` to be an array of model inputs or an iterable of "
            "batches. Received: data of type dict"
        )
    if hasattr(data, "shape") and hasattr(data, "__len__"):
        n = len(data)
        return [data[i: i + batch_size] for i in range(0, n, batch_size)]
    try:
        iterator = iter(data)
    except TypeError:
        raise TypeError(
            "Expected `data` to be an array of model inputs, a batched "
            "tf.data.Dataset or an iterable of batches (x or (x, y, ...)). "
            f"Received: data of type {type(data).__name__}"
        ) from None
    batches = []
    for element in iterator:
        if isinstance(element, (tuple, list)):
            element = element[0]
        batches.append(element)
    return batches


def calibrate_batchnorm(model, data, batch_size=64, widths=None):
    """Recomputes every width's BatchNorm statistics exactly on `data`.

    For each width, the model runs once over `data` (eagerly, in inference
    mode except that every `SwitchableBatchNormalization` normalizes with
    the batch statistics, as in training), and each
    `SwitchableBatchNormalization` replaces that width's moving mean and
    variance (of its active channels) by the mean and variance of its input
    over all of `data` (population variance, as BatchNorm's own). This is
    the "post-statistics" of Yu & Huang (2019), with an exact average
    instead of a moving one. Dropout and other training-only layers stay
    off.

    The model's active width comes back afterwards; if anything fails, the
    statistics are restored too.

    Args:
        model: A built `keras.Model` with `SwitchableBatchNormalization`
            layers.
        data: Model inputs: an array (split into batches of `batch_size`),
            or a batched `tf.data.Dataset` / iterable of batches, whose
            elements are `x` or `(x, y, ...)` (labels are ignored).
        batch_size: Batch size for an array, an int >= 1, default 64.
        widths: The widths to calibrate, default None (all of
            `model_widths(model)`).

    Returns:
        `model` (its statistics updated).

    Example:

    ```python
    calibrate_batchnorm(model, x_train[:1000])
    ```

    Reference:
        - [Yu & Huang, Universally Slimmable Networks and Improved Training
          Techniques, ICCV 2019](https://arxiv.org/abs/1903.05134)
    """
    layers = width_lib._layers_or_raise(model)
    batch_norms = [layer for layer in layers
                   if isinstance(layer, SwitchableBatchNormalization)]
    if not batch_norms:
        raise ValueError(
            "Expected a model with SwitchableBatchNormalization layers. "
            f"Received: model '{model.name}' without any"
        )
    batch_size = check_int("batch_size", batch_size, 1)
    all_widths = width_lib.model_widths(model)
    if widths is None:
        widths = all_widths
    elif not isinstance(widths, (list, tuple)) or not widths:
        raise TypeError(
            "Expected `widths` to be None or a non-empty list of the model's "
            f"widths {list(all_widths)}. Received: widths={widths!r}"
        )
    checked = [width_lib._check_width(model, w, layers) for w in widths]
    batches = _batches(data, batch_size)
    if not batches:
        raise ValueError("Expected `data` with at least one batch. Received: no data")

    saved_widths = width_lib._snapshot(layers)
    saved_stats = [
        (bn, np.array(ops.convert_to_numpy(bn.moving_mean)),
         np.array(ops.convert_to_numpy(bn.moving_variance)))
        for bn in batch_norms
    ]
    try:
        for w in checked:
            width_lib.set_width(model, w)
            for bn in batch_norms:
                bn._calibration = {
                    "count": 0,
                    "sum": np.zeros(bn.channels),
                    "sum_squares": np.zeros(bn.channels),
                }
            for x in batches:
                model(x, training=False)
            for bn in batch_norms:
                state = bn._calibration
                if state["count"] == 0:
                    raise ValueError(
                        f"Expected layer '{bn.name}' to run on `data`. "
                        "Received: a model that never called it"
                    )
                k = active_channels(bn.channels, w)
                row = width_index(bn.width_multipliers, w)
                mean = state["sum"] / state["count"]
                variance = np.maximum(state["sum_squares"] / state["count"] - mean**2, 0.0)
                for variable, value in ((bn.moving_mean, mean),
                                        (bn.moving_variance, variance)):
                    stats = np.array(ops.convert_to_numpy(variable))
                    stats[row, :k] = value[:k]
                    variable.assign(stats)
                bn._calibration = None
    except BaseException:
        for bn, mean, variance in saved_stats:
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(variance)
        raise
    finally:
        for bn in batch_norms:
            bn._calibration = None
        width_lib._restore(saved_widths)
    return model
