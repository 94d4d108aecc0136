"""`QATSchedule`: when quantization starts, and when BatchNorm and ranges freeze."""

import keras

from keras_compress._checks import check_int

UNITS = ("epoch", "step")


@keras.saving.register_keras_serializable(package="keras_compress")
class QATSchedule(keras.callbacks.Callback):
    """Schedules quantization-aware training inside `fit`.

    Quantization-aware training works best from a trained float model, and
    the last epochs work best with BatchNorm statistics and quantization
    ranges held still (Jacob et al., 2018; Krishnamoorthi, 2018). This
    callback sets, once at the start of `fit`, the switches every
    keras-compress quantizer and fused batch norm carries as variables:

    - until `quantize_start`, every quantizer is the identity (float
      training; ranges are still tracked, so they are warm at the switch);
    - from `freeze_batchnorm` on, fused batch norms (`Quant*` layers with
      `batch_norm`) use and keep their moving statistics;
    - from `freeze_ranges` on, tracked quantization ranges stop updating.

    When fine-tuning an already trained float model for a few epochs,
    freeze the batch norms from the start (`freeze_batchnorm=0`): in
    `benchmarks/quantization.py` live batch statistics for 3 of 5 epochs
    cost digits 2 points (96.9% against 98.9%).

    The switches are compared with each quantizer's own count of training
    calls inside the compiled step: no retracing, no per-batch Python.
    Points count from the start of this `fit` call.

    Args:
        quantize_start: When quantization starts, default 0 (at once).
        freeze_batchnorm: When batch norm statistics freeze, default None
            (never).
        freeze_ranges: When ranges freeze, default None (never); not before
            `quantize_start`.
        unit: `"epoch"` (default) or `"step"`: the unit of the three points.

    Example:

    >>> qat = quantize_model(model)  # doctest: +SKIP
    >>> qat.fit(x, y, epochs=10, callbacks=[QATSchedule(
    ...     quantize_start=2, freeze_batchnorm=6, freeze_ranges=8)])  # doctest: +SKIP
    """

    def __init__(self, quantize_start=0, freeze_batchnorm=None,
                 freeze_ranges=None, unit="epoch"):
        super().__init__()
        if unit not in UNITS:
            raise ValueError(
                f"Expected `unit` to be one of {list(UNITS)}. "
                f"Received: unit={unit!r}"
            )
        self.quantize_start = check_int("quantize_start", quantize_start, 0)
        self.freeze_batchnorm = (
            None if freeze_batchnorm is None
            else check_int("freeze_batchnorm", freeze_batchnorm, 0)
        )
        self.freeze_ranges = (
            None if freeze_ranges is None
            else check_int("freeze_ranges", freeze_ranges, 0)
        )
        if self.freeze_ranges is not None and self.freeze_ranges < self.quantize_start:
            raise ValueError(
                "Expected freeze_ranges >= quantize_start (ranges freeze after "
                f"quantization starts). Received: freeze_ranges={freeze_ranges}, "
                f"quantize_start={quantize_start}"
            )
        self.unit = unit

    def _steps(self, point):
        if self.unit == "step":
            return point
        per_epoch = (self.params or {}).get("steps")
        if not per_epoch:
            raise ValueError(
                "QATSchedule(unit='epoch') needs the number of steps per "
                "epoch, which fit does not know for this data (a dataset "
                "of unknown length, e.g. endless or sharded between "
                "workers, without steps_per_epoch). Expected unit='step' or "
                "fit(..., steps_per_epoch=N)."
            )
        return point * int(per_epoch)

    def on_train_begin(self, logs=None):
        from keras_compress.layers.quantized.base_quant import (
            QuantLayer,
            model_quantizers,
        )

        found = list(model_quantizers(self.model))
        fused = [
            layer for layer in self.model._flatten_layers(include_self=False)
            if isinstance(layer, QuantLayer) and layer.batch_norm is not None
        ]
        if not found and not fused:
            raise ValueError(
                f"QATSchedule found no keras-compress quantizer in model "
                f"{self.model.name!r}. Expected a model from quantize_model or "
                "built from Quant*/Binary*/Quantize layers."
            )
        start = self._steps(self.quantize_start)
        # A fit resumed by keras.callbacks.BackupAndRestore (which restored
        # the counters and set the model's initial epoch) continues the run
        # that began `skipped` steps ago: the switches stay where that run
        # put them.
        skipped = self._resumed_steps()
        for _, quantizer in found:
            now = int(keras.ops.convert_to_numpy(quantizer.steps)) - skipped
            quantizer.start_step.assign(now + start)
            if self.freeze_ranges is not None:
                quantizer.freeze_step.assign(now + self._steps(self.freeze_ranges))
        if self.freeze_batchnorm is not None:
            for layer in fused:
                now = int(keras.ops.convert_to_numpy(layer.batch_norm_steps)) - skipped
                layer.batch_norm_freeze_step.assign(
                    now + self._steps(self.freeze_batchnorm)
                )

    def _resumed_steps(self):
        """Steps of the epochs a restored fit skips (0 for a fresh fit)."""
        epochs = int(getattr(self.model, "_initial_epoch", None) or 0)
        if not epochs:
            return 0
        per_epoch = (self.params or {}).get("steps")
        if not per_epoch:
            raise ValueError(
                "QATSchedule cannot place its switches in a fit resumed at "
                f"epoch {epochs} without the number of steps per epoch. "
                "Expected fit(..., steps_per_epoch=N).")
        return epochs * int(per_epoch)

    def get_config(self):
        return {
            "quantize_start": self.quantize_start,
            "freeze_batchnorm": self.freeze_batchnorm,
            "freeze_ranges": self.freeze_ranges,
            "unit": self.unit,
        }
