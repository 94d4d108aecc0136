"""`export_width`: one width of a slimmable model as a plain, smaller model."""

import keras
import numpy as np
from keras import ops

from keras_compress.layers.slimmable.base_slimmable import SlimmableLayer
from keras_compress.layers.slimmable.base_slimmable import active_channels
from keras_compress.layers.slimmable.base_slimmable import width_index
from keras_compress.layers.slimmable.slimmable_conv2d import SlimmableConv2D
from keras_compress.layers.slimmable.slimmable_dense import SlimmableDense
from keras_compress.layers.slimmable.switchable_batch_normalization import (
    SwitchableBatchNormalization,
)
from keras_compress.graph import check_graph_model
from keras_compress.graph import rebuild
from keras_compress.slimmable import switch as width_lib

_SLIM_KEYS = ("width_multipliers", "slim_input", "slim_output")
_LORA_KEYS = ("lora_rank", "lora_alpha")


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable))


def _plain_config(layer, drop=()):
    config = layer.get_config()
    for key in _SLIM_KEYS + _LORA_KEYS + tuple(drop):
        config.pop(key, None)
    return config


class _Narrower:
    """The `replace_layer` / `after_tensor` pair that narrows a model."""

    def __init__(self, width):
        self.width = width
        self.new = {}  # id(old layer) -> new layer, filled after its call
        self.done = set()

    # -- replace_layer -------------------------------------------------------

    def replace(self, layer):
        if isinstance(layer, keras.Model):
            return None  # Functional/Sequential: rebuilt recursively.
        if isinstance(layer, SlimmableConv2D):
            config = _plain_config(layer)
            config["filters"] = self.out_channels(layer, layer.filters)
            new = keras.layers.Conv2D.from_config(config)
        elif isinstance(layer, SlimmableDense):
            config = _plain_config(layer)
            config["units"] = self.out_channels(layer, layer.units)
            config["quantization_config"] = None
            new = keras.layers.Dense.from_config(config)
        elif isinstance(layer, SwitchableBatchNormalization):
            new = keras.layers.BatchNormalization.from_config(_plain_config(layer))
        elif isinstance(layer, SlimmableLayer):
            raise ValueError(
                f"Expected slimmable layers that export_width knows "
                "(SlimmableConv2D, SlimmableDense, SwitchableBatchNormalization)."
                f" Received: layer '{layer.name}' of class {type(layer).__name__}"
            )
        elif layer.weights:
            # Copied unbuilt: its weights are set (and their shapes checked)
            # once it has been called on the narrowed tensor.
            new = layer.__class__.from_config(layer.get_config())
        else:
            return None
        self.new[id(layer)] = new
        return new

    def out_channels(self, layer, channels):
        return active_channels(channels, self.width) if layer.slim_output else channels

    def in_channels(self, layer, channels):
        return active_channels(channels, self.width) if layer.slim_input else channels

    # -- after_tensor --------------------------------------------------------

    def after(self, tensor, layer):
        if layer is None or id(layer) in self.done or id(layer) not in self.new:
            return None
        self.done.add(id(layer))
        new = self.new[id(layer)]
        if isinstance(layer, SlimmableConv2D):
            self.fill_conv_or_dense(layer, new, _numpy(layer.kernel), axis=-2)
        elif isinstance(layer, SlimmableDense):
            self.fill_conv_or_dense(layer, new, _numpy(layer.kernel), axis=0)
        elif isinstance(layer, SwitchableBatchNormalization):
            self.fill_batchnorm(layer, new)
        else:
            self.fill_plain(layer, new)
        return None

    def mismatch(self, layer, expected, received, hint):
        raise ValueError(
            f"export_width(width={self.width}): expected layer '{layer.name}' "
            f"({type(layer).__name__}) to receive {expected} channels at this "
            f"width. Received: {received} channels. {hint}"
        )

    def fill_conv_or_dense(self, layer, new, kernel, axis):
        full_in = kernel.shape[axis]
        k_in = self.in_channels(layer, full_in)
        got = int(new.kernel.shape[axis])
        if got != k_in:
            hint = (
                "Set slim_input=False on a layer whose input keeps all its "
                "channels (e.g. the first layer), and connect slimmable "
                "layers through layers that keep the channel axis "
                "(activations, pooling, Dropout, Add of equal widths)."
                if layer.slim_input else
                "The layer before it narrows its output: make this layer "
                "slim_input=True or the one before slim_output=False."
            )
            self.mismatch(layer, k_in, got, hint)
        k_out = int(new.kernel.shape[-1])
        index = [slice(None)] * kernel.ndim
        index[axis] = slice(0, k_in)
        index[-1] = slice(0, k_out)
        new.kernel.assign(kernel[tuple(index)])
        if layer.use_bias:
            new.bias.assign(_numpy(layer.bias)[:k_out])

    def fill_batchnorm(self, layer, new):
        row = width_index(layer.width_multipliers, self.width)
        k = active_channels(layer.channels, self.width)
        got = int(new.moving_mean.shape[0])
        if got != k:
            self.mismatch(
                layer, k, got,
                "A SwitchableBatchNormalization must follow the slimmable "
                "layer whose channels it normalizes.",
            )
        pairs = [("moving_mean", new.moving_mean), ("moving_variance", new.moving_variance)]
        if layer.scale:
            pairs.append(("gamma", new.gamma))
        if layer.center:
            pairs.append(("beta", new.beta))
        for name, variable in pairs:
            variable.assign(_numpy(getattr(layer, name))[row, :k])

    def fill_plain(self, layer, new):
        old = layer.get_weights()
        shapes = [tuple(w.shape) for w in new.weights]
        if shapes != [tuple(w.shape) for w in old]:
            raise ValueError(
                f"export_width(width={self.width}): layer '{layer.name}' "
                f"({type(layer).__name__}) is not slimmable, so expected it "
                "to receive the same tensor shape at every width. Received: "
                "a narrowed input, for which its weights would need shapes "
                f"{shapes} instead of {[tuple(w.shape) for w in old]}. Replace "
                "it with a slimmable layer (SlimmableDense, SlimmableConv2D, "
                "SwitchableBatchNormalization) or set slim_output=False on "
                "the slimmable layer before it."
            )
        new.set_weights(old)


def export_width(model, width):
    """Returns one width of a slimmable model as a plain, smaller Keras model.

    Every `SlimmableConv2D`, `SlimmableDense` and
    `SwitchableBatchNormalization` becomes a standard `Conv2D`, `Dense` or
    `BatchNormalization` with exactly the channels of `width`
    (`active_channels(n, width)` for each narrowed dimension, the first
    ones), holding the slices of the full-width weights and that width's own
    BatchNorm row. Other layers are copied with their weights. The result
    computes what the slimmable model computes at `width` (the zero
    channels are simply absent), saves as `.keras` without keras-compress
    and converts to LiteRT with `keras_compress.export.to_tflite`.

    `model` is never changed (its active width included), whatever width it
    is at.

    Args:
        model: A built Functional or Sequential `keras.Model` with slimmable
            layers (or a `SandwichModel` wrapping one).
        width: One of the model's widths (`model_widths(model)`).

    Returns:
        A new, uncompiled Functional or Sequential `keras.Model` with the
        name and inputs of `model`.

    Raises:
        ValueError: if `model` has no slimmable layers, `width` is not one of
            its widths, `model` is subclassed, or slimmable layers are wired
            so that the narrowed channels cannot line up (e.g. a plain
            `Dense` or `Flatten` + `SlimmableDense` after a narrowed
            convolution); the message names the layer.

    Example:

    >>> import keras
    >>> from keras_compress.layers.slimmable import SlimmableDense
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     SlimmableDense(8, activation="relu", slim_input=False),
    ...     SlimmableDense(3, slim_output=False),
    ... ])
    >>> small = export_width(model, 0.5)
    >>> small.layers[0].units
    4

    Reference:
        - [Yu et al., Slimmable Neural Networks, ICLR 2019](
          https://arxiv.org/abs/1812.08928)
    """
    from keras_compress.slimmable.sandwich_model import SandwichModel

    if isinstance(model, SandwichModel):
        model = model.model
    layers = width_lib._layers_or_raise(model)
    width = width_lib._check_width(model, width, layers)
    check_graph_model(model, "export_width reads the layer graph.")
    narrower = _Narrower(width)
    return rebuild(model, narrower.replace, narrower.after)
