"""`FakeQuant`: k-bit uniform affine quantization with tracked or learned ranges."""

import keras
from keras import ops

from keras_compress._checks import check_int
from keras_compress.quantizers import _fake_quant_op
from keras_compress.quantizers.base import Quantizer
from keras_compress.quantizers.base import read

RANGE_MODES = ("ema", "minmax", "last", "learned")


@keras.saving.register_keras_serializable(package="keras_compress")
class FakeQuant(Quantizer):
    """k-bit uniform affine ("fake") quantization, per tensor or per channel.

    The forward pass rounds `x` onto `2**bits` evenly spaced levels between
    a minimum and a maximum (nudged so that zero is exactly representable),
    and clips outside them; the gradient passes straight through inside the
    range and is zero outside it. This is the simulation of TFLite's int8
    arithmetic (Jacob et al., 2018): on the TensorFlow backend it runs as
    TensorFlow's `FakeQuantWithMinMaxVars*` ops, which the TFLite converter
    reads, so a model quantized this way converts to a full-int8 model with
    these exact ranges and no calibration data.

    Ranges (`range_mode`):

    - `"ema"` (default): exponential moving average of each training
      batch's min and max, started from the first batch (activations);
    - `"minmax"`: the running min and max of everything seen in training;
    - `"last"`: the min and max of the tensor itself at every call, no
      state (weights: TFLite quantizes weights this way);
    - `"learned"`: the min and max are trainable weights, learned with the
      clipping gradient of the FakeQuant op (as PACT learns its clip value;
      LSQ learns a step size the same way).

    Args:
        bits: Bits per value, 2 to 16. Default 8.
        axis: `None` (one range per tensor, the default) or the channel axis
            (one range per channel: use -1 for a conv kernel's output
            channels). TFLite supports per-channel ranges for weights only.
        symmetric: Make each range symmetric around zero, `[-m, m]`. Default
            False. TFLite wants symmetric weights.
        narrow_range: Leave out the lowest level (int8: -127..127 instead of
            -128..127), as TFLite's int8 weights are. Default False.
        range_mode: One of `"ema"`, `"minmax"`, `"last"`, `"learned"`.
            Default `"ema"`.
        ema_decay: Decay of the moving average, in [0, 1). Default 0.99.
        init_min: Starting minimum of `"learned"` ranges, and the range
            used before any data is seen. Default -6.0.
        init_max: Starting maximum, default 6.0.
        name: Optional name for the quantizer's weights.

    Example:

    >>> import numpy as np
    >>> q = FakeQuant(bits=4, range_mode="last")
    >>> y = q(np.linspace(-1.0, 1.0, 5).astype("float32"))

    Reference:
        Jacob et al., "Quantization and Training of Neural Networks for
        Efficient Integer-Arithmetic-Only Inference", CVPR 2018.
    """

    def __init__(
        self,
        bits=8,
        axis=None,
        symmetric=False,
        narrow_range=False,
        range_mode="ema",
        ema_decay=0.99,
        init_min=-6.0,
        init_max=6.0,
        name=None,
    ):
        super().__init__(name=name)
        self.bits = check_int("bits", bits, 2)
        if self.bits > 16:
            raise ValueError(
                "Expected `bits` to be an integer from 2 to 16 (what "
                f"FakeQuant supports). Received: bits={bits!r}"
            )
        if axis is not None:
            axis = check_int("axis", axis, -(2**31))
        self.axis = axis
        self.symmetric = bool(symmetric)
        self.narrow_range = bool(narrow_range)
        if range_mode not in RANGE_MODES:
            raise ValueError(
                f"Expected `range_mode` to be one of {list(RANGE_MODES)}. "
                f"Received: range_mode={range_mode!r}"
            )
        self.range_mode = range_mode
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(
                "Expected `ema_decay` to be in [0, 1). "
                f"Received: ema_decay={ema_decay!r}"
            )
        self.ema_decay = float(ema_decay)
        if not float(init_min) <= 0.0 <= float(init_max) or init_min == init_max:
            raise ValueError(
                "Expected init_min <= 0 <= init_max with init_min < init_max "
                "(the range must hold zero). Received: "
                f"init_min={init_min!r}, init_max={init_max!r}"
            )
        self.init_min = float(init_min)
        self.init_max = float(init_max)
        self.stateful = range_mode != "last"
        self.min = None
        self.max = None
        self.initialized = None

    # -- state -----------------------------------------------------------

    def check_shape(self, shape):
        """Raises if `axis` is not an axis of tensors of this shape."""
        if self.axis is None:
            return
        rank = len(shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"Expected `axis` to be an axis of a rank-{rank} tensor (from "
                f"{-rank} to {rank - 1}; the quantized tensor has shape "
                f"{tuple(shape)}). Received: axis={self.axis}"
            )
        if shape[self.axis] is None:
            raise ValueError(
                "Per-channel quantization needs a known size on its axis. "
                f"Received: axis={self.axis} on shape {tuple(shape)}"
            )

    def build_state(self, layer, shape, prefix):
        self.check_shape(shape)
        if self.range_mode == "last":
            return
        range_shape = () if self.axis is None else (shape[self.axis],)
        trainable = self.range_mode == "learned"
        self.min = self.add_state(
            layer, f"{prefix}_min", range_shape,
            keras.initializers.Constant(self.init_min), trainable=trainable,
        )
        self.max = self.add_state(
            layer, f"{prefix}_max", range_shape,
            keras.initializers.Constant(self.init_max), trainable=trainable,
        )
        if not trainable:
            self.initialized = self.add_state(
                layer, f"{prefix}_initialized", (), "zeros"
            )

    def set_range(self, minimum, maximum):
        """Sets the tracked range (what `calibrate` does) and marks it seen."""
        if self.min is None:
            raise ValueError(
                f"This FakeQuant (range_mode={self.range_mode!r}) has no "
                "stored range to set: expected a built quantizer whose "
                "range_mode is 'ema', 'minmax' or 'learned'."
            )
        self.min.assign(ops.cast(ops.broadcast_to(minimum, self.min.shape), "float32"))
        self.max.assign(ops.cast(ops.broadcast_to(maximum, self.max.shape), "float32"))
        if self.initialized is not None:
            self.initialized.assign(1.0)

    # -- math ------------------------------------------------------------

    def _reduce_axes(self, x):
        if self.axis is None:
            return None
        axis = self.axis % len(x.shape)
        return tuple(i for i in range(len(x.shape)) if i != axis)

    def batch_range(self, x):
        """Min and max of `x` (per channel if `axis` is set)."""
        axes = self._reduce_axes(x)
        x = ops.stop_gradient(ops.cast(x, "float32"))
        return ops.min(x, axis=axes), ops.max(x, axis=axes)

    def current_range(self, x, training):
        """The range this call quantizes with (updating tracked ranges)."""
        if self.range_mode == "last":
            return self.batch_range(x)
        old_lo, old_hi = read(self.min), read(self.max)
        if self.range_mode == "learned" or not training:
            return old_lo, old_hi
        lo, hi = self.batch_range(x)
        initialized = read(self.initialized)
        seen = ops.greater(initialized, 0.0)
        if self.range_mode == "ema":
            d = self.ema_decay
            new_lo = ops.where(seen, d * old_lo + (1.0 - d) * lo, lo)
            new_hi = ops.where(seen, d * old_hi + (1.0 - d) * hi, hi)
        else:
            new_lo = ops.where(seen, ops.minimum(old_lo, lo), lo)
            new_hi = ops.where(seen, ops.maximum(old_hi, hi), hi)
        update = self.updating(training)
        new_lo = ops.where(update, new_lo, old_lo)
        new_hi = ops.where(update, new_hi, old_hi)
        self.min.assign(new_lo)
        self.max.assign(new_hi)
        self.initialized.assign(ops.where(update, 1.0, initialized))
        return new_lo, new_hi

    def quantize(self, x, training=False):
        lo, hi = self.current_range(x, training)
        # Keep zero inside the range (TFLite needs an exact zero) and the
        # range non-empty.
        lo = ops.minimum(lo, 0.0)
        hi = ops.maximum(hi, 0.0)
        if self.symmetric:
            m = ops.maximum(-lo, hi)
            lo, hi = -m, m
        hi = ops.maximum(hi, lo + 1e-8)
        if keras.backend.backend() == "tensorflow":
            # TensorFlow's op: the TFLite converter reads it in QAT exports.
            return keras.quantizers.fake_quant_with_min_max_vars(
                x, lo, hi, num_bits=self.bits, narrow_range=self.narrow_range,
                axis=self.axis,
            )
        axis = None if self.axis is None else self.axis % len(x.shape)
        return _fake_quant_op.fake_quant(x, lo, hi, self.bits, self.narrow_range, axis)

    def get_config(self):
        return {
            **super().get_config(),
            "bits": self.bits,
            "axis": self.axis,
            "symmetric": self.symmetric,
            "narrow_range": self.narrow_range,
            "range_mode": self.range_mode,
            "ema_decay": self.ema_decay,
            "init_min": self.init_min,
            "init_max": self.init_max,
        }
