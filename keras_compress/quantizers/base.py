"""`Quantizer`: the base class of every keras-compress quantizer."""

import contextlib
import threading

import keras
from keras import ops

from keras_compress import _flags

# Largest int32: "never" for a step threshold.
NEVER = 2**31 - 1

_state_flags = threading.local()


def export_mode():
    """Traces quantizers as plain quantization ops, without their switches.

    The TFLite converter recognizes a `FakeQuant` op only where it feeds
    the op it quantizes; the in-graph `where(started, q, x)` switch would
    hide it. Exporters trace inside this context (after checking that
    quantization has started).
    """
    return _flags.switched_on("quantizers_exporting")


def exporting():
    """Whether quantizers are being traced for export."""
    return _flags.is_on("quantizers_exporting")


@contextlib.contextmanager
def recording(callback):
    """Makes every quantizer call `callback(quantizer, x)` and pass `x` through.

    Calibration runs the model eagerly inside this context to see the
    float tensor each quantizer would quantize.
    """
    previous = getattr(_state_flags, "recorder", None)
    _state_flags.recorder = callback
    try:
        yield
    finally:
        _state_flags.recorder = previous


def straight_through(x, q):
    """`q` in the forward pass, bit for bit, with the identity gradient of `x`.

    `(x - stop_gradient(x)) + stop_gradient(q)` is `0 + q`, so the forward
    value is exactly `q` (`x + stop_gradient(q - x)` can be off by an ulp,
    which turns one quantization level into several).
    """
    return (x - ops.stop_gradient(x)) + ops.stop_gradient(q)


class Quantizer:
    """Base class of quantizers: a function of a tensor with a surrogate gradient.

    A quantizer maps a float tensor to values on a small grid (binary,
    ternary, k-bit uniform, powers of two) in the forward pass and lets a
    straight-through gradient pass in the backward pass, so the float
    "latent" weights or activations behind it keep training. The math is
    pure `keras.ops`, so it runs on every Keras backend.

    Used alone, a quantizer is a plain function: `SteSign()(x)`. Inside a
    layer, the layer calls `quantizer.build(layer, shape, name)` once; this
    gives the quantizer its state as weights of that layer (so it is saved
    with the model), and three switches that a `QATSchedule` moves:

    - `steps`: how many training calls this quantizer has seen;
    - `start_step`: before it, the quantizer is the identity (float
      training first, then quantization);
    - `freeze_step`: from it on, range statistics stop updating.

    All three are variables read inside the compiled step, so switching
    quantization on costs no retracing and no per-batch Python.

    Subclasses implement `quantize(x, training)` and may override
    `build_state(layer, shape, name)` and `get_config()`.

    Args:
        name: Optional name, used in the names of the quantizer's weights.
    """

    # Whether `quantize` needs `build` (state such as tracked ranges).
    stateful = False

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"Expected `name` to be a string or None. Received: name={name!r}"
            )
        self.name = name
        self.built = False
        self.steps = None
        self.start_step = None
        self.freeze_step = None

    # -- state -----------------------------------------------------------

    def build(self, layer, shape, name=None):
        """Creates the quantizer's variables as weights of `layer`.

        Args:
            layer: The Keras layer that owns the quantizer.
            shape: Shape of the tensors the quantizer will see (for weights,
                the weight's shape; for activations, the input shape with
                the batch dimension).
            name: Prefix of the weights' names, default the quantizer's
                name or its class name.
        """
        if self.built:
            return
        prefix = name or self.name or _snake(type(self).__name__)
        self.steps = _state(layer, f"{prefix}_steps", (), "zeros", "int32")
        self.start_step = _state(layer, f"{prefix}_start_step", (), "zeros", "int32")
        self.freeze_step = _state(
            layer,
            f"{prefix}_freeze_step",
            (),
            keras.initializers.Constant(NEVER),
            "int32",
        )
        self.build_state(layer, tuple(shape), prefix)
        self.built = True

    def build_state(self, layer, shape, prefix):
        """Creates the subclass's own state (default: none)."""

    def add_state(self, layer, name, shape, initializer, dtype="float32",
                  trainable=False):
        """Adds one variable of quantizer state to `layer`."""
        return _state(layer, name, shape, initializer, dtype, trainable)

    # -- call ------------------------------------------------------------

    def quantize(self, x, training=False):
        """Returns the quantized `x` (with its surrogate gradient)."""
        raise NotImplementedError

    def updating(self, training):
        """Whether statistics may update in this call (in-graph boolean)."""
        if not training:
            return ops.convert_to_tensor(False)
        if not self.built:
            return ops.convert_to_tensor(True)
        return ops.less(read(self.steps), read(self.freeze_step))

    def __call__(self, x, training=False):
        # A variable (a kernel) is read first: some ops of the JAX backend
        # (`where`) do not read variables they are given.
        x = ops.convert_to_tensor(x)
        recorder = getattr(_state_flags, "recorder", None)
        if recorder is not None:
            recorder(self, x)
            return x
        if not self.built:
            if self.stateful:
                raise ValueError(
                    f"{type(self).__name__} keeps state (tracked ranges), so it "
                    "must be built by its layer before it is called: expected "
                    "`quantizer.build(layer, shape)` first, or use it through "
                    "a keras-compress layer (QuantDense(kernel_quantizer=...), "
                    "Quantize(...))."
                )
            return self.quantize(x, training=training)
        if exporting() and not training:
            return self.quantize(x, training=False)
        active = ops.greater_equal(read(self.steps), read(self.start_step))
        q = self.quantize(x, training=training)
        if training:
            self.steps.assign(self.steps + 1)
        return ops.where(active, q, x)

    def started(self):
        """Whether quantization is on (eagerly read; True when unbuilt)."""
        if not self.built:
            return True

        def as_int(v):
            # Variable.numpy(): NumPy 2 warns when Keras converts a
            # TensorFlow variable with convert_to_numpy.
            return int(v.numpy() if hasattr(v, "numpy") else ops.convert_to_numpy(v))

        return as_int(self.steps) >= as_int(self.start_step)

    # -- serialization ---------------------------------------------------

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def copy(self):
        """A fresh, unbuilt quantizer with the same configuration."""
        return type(self).from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_config().items() if k != "name"
        )
        return f"{type(self).__name__}({args})"


def read(variable):
    """The value of `variable` as a tensor (what every backend's ops take)."""
    return ops.convert_to_tensor(variable)


def _state(layer, name, shape, initializer, dtype, trainable=False):
    return layer.add_weight(
        name=name,
        shape=shape,
        initializer=initializer,
        dtype=dtype,
        trainable=trainable,
        autocast=False,
        aggregation="only_first_replica" if not trainable else "none",
    )


def _snake(name):
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(c.lower())
    return "".join(out)
