"""`QuantLayer`: what every quantization-aware keras-compress layer shares."""

import keras
from keras import ops

from keras_compress import quantizers as quantizers_lib
from keras_compress.quantizers.base import NEVER
from keras_compress.quantizers.base import read

BATCH_NORM_KEYS = ("momentum", "epsilon")


def int8_weight_quantizer(per_channel=True):
    """TFLite's int8 weight format: symmetric, narrow range, current min/max."""
    return quantizers_lib.FakeQuant(
        bits=8,
        axis=-1 if per_channel else None,
        symmetric=True,
        narrow_range=True,
        range_mode="last",
    )


def check_batch_norm(batch_norm):
    """Returns the fused batch-norm settings as a dict, or None."""
    if batch_norm is None or batch_norm is False:
        return None
    if batch_norm is True:
        batch_norm = {}
    if not isinstance(batch_norm, dict) or set(batch_norm) - set(BATCH_NORM_KEYS):
        raise ValueError(
            "Expected `batch_norm` to be None, True or a dict with keys "
            f"{list(BATCH_NORM_KEYS)}. Received: batch_norm={batch_norm!r}"
        )
    settings = {"momentum": 0.99, "epsilon": 1e-3, **batch_norm}
    if not 0.0 <= settings["momentum"] < 1.0 or settings["epsilon"] <= 0:
        raise ValueError(
            "Expected batch_norm momentum in [0, 1) and epsilon > 0. "
            f"Received: batch_norm={batch_norm!r}"
        )
    return {k: float(v) for k, v in settings.items()}


class QuantLayer:
    """Mixin for layers with a kernel, giving them quantizers and fused batch norm.

    The layer's own math runs on quantized tensors: the kernel through
    `kernel_quantizer`, the input through `input_quantizer`, the output
    (after the activation) through `output_quantizer`. The kernel quantizer
    always sees the kernel with output channels last (a depthwise kernel is
    viewed as `(h, w, 1, in * multiplier)`).

    A kernel quantizer that is not a `FakeQuant` (binary, ternary, DoReFa,
    powers of two) is followed by TFLite's int8 weight grid, so the model
    trains on exactly the weights the int8 export will hold; binary and
    ternary weights stay exact on that grid.

    With `batch_norm`, the layer also owns a BatchNormalization of its
    output and folds it into the kernel before quantizing, as the int8
    model will (Jacob et al., 2018, section 3.2): in training the kernel is
    folded with the moving variance and the output is corrected to batch
    statistics until `batch_norm_freeze_step`, from which on the moving
    statistics are used and stop updating.

    Subclasses set `_channels_axis_kernel_view()` and `_apply(x, kernel)`.
    """

    _default_per_channel = True

    def _init_quant(self, kernel_quantizer, input_quantizer, output_quantizer,
                    batch_norm):
        if kernel_quantizer == "default":
            kernel_quantizer = int8_weight_quantizer(self._default_per_channel)
        self.kernel_quantizer = quantizers_lib.get(kernel_quantizer)
        self.input_quantizer = quantizers_lib.get(input_quantizer)
        self.output_quantizer = quantizers_lib.get(output_quantizer)
        self.batch_norm = check_batch_norm(batch_norm)
        self._weight_grid = None
        if self.kernel_quantizer is not None and not isinstance(
            self.kernel_quantizer, quantizers_lib.FakeQuant
        ):
            self._weight_grid = int8_weight_quantizer(self._default_per_channel)

    # Subclass hooks --------------------------------------------------------

    def _kernel_view(self, kernel):
        """The kernel with output channels on the last axis."""
        return kernel

    def _kernel_unview(self, kernel):
        return kernel

    def _apply(self, x, kernel):
        """The layer's linear op (no bias, no activation)."""
        raise NotImplementedError

    # Build -----------------------------------------------------------------

    def build(self, input_shape):
        # Keras's Dense enables LoRA at the end of its build and locks the
        # layer's variables: the quantizers' state comes first.
        lora_rank = getattr(self, "lora_rank", None)
        if lora_rank:
            self.lora_rank = None
        try:
            super().build(input_shape)
        finally:
            if lora_rank:
                self.lora_rank = lora_rank
        self._build_quant(input_shape)
        if lora_rank:
            self.enable_lora(lora_rank, lora_alpha=self.lora_alpha)

    def call(self, inputs, training=None):
        return self._quant_call(inputs, training)

    def get_config(self):
        return {**super().get_config(), **self._quant_config()}

    def _build_quant(self, input_shape):
        kernel_shape = tuple(self._kernel_view(self.kernel).shape)
        if self.input_quantizer is not None:
            self.input_quantizer.build(self, input_shape, "input_quantizer")
        if self.kernel_quantizer is not None:
            self.kernel_quantizer.build(self, kernel_shape, "kernel_quantizer")
        if self._weight_grid is not None:
            self._weight_grid.build(self, kernel_shape, "kernel_int8")
        channels = kernel_shape[-1]
        if self.batch_norm is not None:
            if getattr(self, "data_format", "channels_last") != "channels_last":
                raise ValueError(
                    f"Layer {self.name!r}: a fused `batch_norm` needs "
                    "data_format='channels_last'. Received: "
                    f"data_format={self.data_format!r}"
                )
            add = self.add_weight
            self.gamma = add(name="gamma", shape=(channels,), initializer="ones")
            self.beta = add(name="beta", shape=(channels,), initializer="zeros")
            # Averaged over replicas at every update (under a
            # tf.distribute strategy): frozen batch norm then reads the
            # same statistics on every replica, and a checkpoint (which
            # saves one copy) holds them exactly.
            self.moving_mean = add(
                name="moving_mean", shape=(channels,), initializer="zeros",
                trainable=False, aggregation="mean",
            )
            self.moving_variance = add(
                name="moving_variance", shape=(channels,), initializer="ones",
                trainable=False, aggregation="mean",
            )
            self.batch_norm_steps = add(
                name="batch_norm_steps", shape=(), initializer="zeros",
                dtype="int32", trainable=False,
            )
            self.batch_norm_freeze_step = add(
                name="batch_norm_freeze_step", shape=(), dtype="int32",
                initializer=keras.initializers.Constant(NEVER), trainable=False,
            )
        if self.output_quantizer is not None:
            out_shape = self.compute_output_shape(input_shape)
            self.output_quantizer.build(self, out_shape, "output_quantizer")

    # Call ------------------------------------------------------------------

    def quantized_kernel(self, kernel=None, training=False):
        """The kernel the layer computes with (folded and quantized)."""
        view = self._kernel_view(self.kernel if kernel is None else kernel)
        if self.kernel_quantizer is not None:
            view = self.kernel_quantizer(view, training=training)
        if self._weight_grid is not None:
            view = self._weight_grid(view, training=training)
        return self._kernel_unview(view)

    def _bias_value(self):
        return self.bias if self.use_bias else None

    def _quant_call(self, inputs, training=None):
        training = bool(training)
        x = inputs
        if self.input_quantizer is not None:
            x = self.input_quantizer(x, training=training)
        if self.batch_norm is None:
            y = self._apply(x, self.quantized_kernel(training=training))
            bias = self._bias_value()
            if bias is not None:
                y = ops.add(y, bias)
        else:
            y = self._batch_norm_call(x, training)
        if self.activation is not None:
            y = self.activation(y)
        if self.output_quantizer is not None:
            y = self.output_quantizer(y, training=training)
        return y

    def _batch_norm_call(self, x, training):
        eps = self.batch_norm["epsilon"]
        std = ops.sqrt(self.moving_variance + eps)
        folded = self._kernel_unview(self._kernel_view(self.kernel) * (self.gamma / std))
        y = self._apply(x, self.quantized_kernel(folded, training=training))
        bias = self._bias_value()
        bias = 0.0 if bias is None else bias
        frozen_bias = self.beta + self.gamma * (bias - self.moving_mean) / std
        if not training:
            return ops.add(y, frozen_bias)
        # Batch statistics of the float pre-activation (the BN's input). The
        # gradient flows through them, as through a BatchNormalization:
        # without that path the kernel's scale is free to drift, and QAT of
        # a trained CNN diverged within two epochs (digits, Adam 5e-4).
        raw = self._apply(x, self.kernel)
        axes = tuple(range(len(raw.shape) - 1))
        mean, variance = ops.moments(raw, axes=axes)
        batch_std = ops.sqrt(variance + eps)
        # Variables are read first: JAX's `where` does not read them.
        live = ops.less(read(self.batch_norm_steps), read(self.batch_norm_freeze_step))
        m = self.batch_norm["momentum"]
        moving_mean, moving_variance = read(self.moving_mean), read(self.moving_variance)
        new_mean = m * moving_mean + (1.0 - m) * (mean + bias)
        new_var = m * moving_variance + (1.0 - m) * variance
        self.moving_mean.assign(ops.where(live, new_mean, moving_mean))
        self.moving_variance.assign(ops.where(live, new_var, moving_variance))
        self.batch_norm_steps.assign(self.batch_norm_steps + 1)
        # Before the freeze: rescale to batch statistics (the gradient sees
        # the BN's normalization); after it, the inference form.
        scale = ops.where(live, std / batch_std, ops.ones_like(std))
        shift = ops.where(
            live, read(self.beta) - read(self.gamma) * mean / batch_std, frozen_bias
        )
        return ops.add(ops.multiply(y, scale), shift)

    # Saving ----------------------------------------------------------------

    # Dense and Conv save only their kernel and bias (plus Keras's own
    # quantization state); the quantizers' and batch norm's weights must be
    # saved too, so these layers save every variable as a plain layer does.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    # Config ----------------------------------------------------------------

    def _quant_config(self):
        return {
            "kernel_quantizer": quantizers_lib.serialize(self.kernel_quantizer),
            "input_quantizer": quantizers_lib.serialize(self.input_quantizer),
            "output_quantizer": quantizers_lib.serialize(self.output_quantizer),
            "batch_norm": self.batch_norm,
        }

    def quantizers(self):
        """The layer's quantizers that are set, by role."""
        roles = {
            "input": self.input_quantizer,
            "kernel": self.kernel_quantizer,
            "kernel_int8": self._weight_grid,
            "output": self.output_quantizer,
        }
        return {k: v for k, v in roles.items() if v is not None}


def model_quantizers(model):
    """Yields `(layer, quantizer)` for every quantizer in `model`."""
    from keras_compress.layers.quantized.quantize import Quantize

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, Quantize):
            yield layer, layer.quantizer
        elif isinstance(layer, QuantLayer):
            for quantizer in layer.quantizers().values():
                yield layer, quantizer
