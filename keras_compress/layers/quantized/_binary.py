"""What `BinaryDense` and `BinaryConv2D` share: their quantizers and clip."""

import warnings

import keras

from keras_compress.layers.quantized.weight_clip import WeightClip

SCALES = ("channel", "tensor", None)


def binary_arguments(layer_name, scale, binarize_inputs, latent_clip,
                     kernel_constraint):
    """Returns (kernel_quantizer, input_quantizer, kernel_constraint)."""
    from keras_compress.quantizers import SteSign

    if scale not in SCALES:
        raise ValueError(
            f"Expected `scale` to be one of {list(SCALES)} (alpha per output "
            "channel, one alpha, or plain +-1). "
            f"Received: scale={scale!r}"
        )
    constraint = keras.constraints.get(kernel_constraint)
    if latent_clip is None:
        warnings.warn(
            f"{layer_name}: latent_clip=None leaves the real-valued weights "
            "unclipped; BinaryConnect clips them to [-1, 1] so their signs "
            "can still flip (and the straight-through gradient is zero "
            "outside the clip anyway).",
            stacklevel=3,
        )
    elif not isinstance(constraint, WeightClip):
        constraint = WeightClip(latent_clip, constraint)
    kernel_quantizer = SteSign(scale=scale)
    input_quantizer = SteSign() if binarize_inputs else None
    return kernel_quantizer, input_quantizer, constraint


def binary_config(config, scale, binarize_inputs, latent_clip):
    for key in ("kernel_quantizer", "input_quantizer", "lora_rank",
                "lora_alpha", "quantization_config"):
        config.pop(key, None)
    config.update(
        scale=scale, binarize_inputs=binarize_inputs, latent_clip=latent_clip
    )
    return config
