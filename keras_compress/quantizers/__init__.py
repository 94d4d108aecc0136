"""Quantizers: pure `keras.ops` functions with straight-through gradients.

Each is a small serializable object, usable by name in the keras-compress
layers (`kernel_quantizer="ste_sign"`):

- `FakeQuant` ("fake_quant"): k-bit uniform affine, per tensor or per
  channel, with tracked or learned ranges; what TFLite int8 runs.
- `SteSign` ("ste_sign"): deterministic BinaryConnect sign.
- `StochasticSign` ("stochastic_sign"): stochastic BinaryConnect sign.
- `Ternary` ("ternary"): ternary weight networks (TWN) threshold.
- `DoReFa` ("dorefa"): DoReFa-Net k-bit weights or activations.
- `PowerOfTwo` ("power_of_two"): logarithmic (shift) quantization.
"""

import keras

from keras_compress.quantizers.base import Quantizer
from keras_compress.quantizers.fake_quant import FakeQuant

_NAMES = {"fake_quant": FakeQuant}

try:  # The rest of the family, where present.
    from keras_compress.quantizers.dorefa import DoReFa
    from keras_compress.quantizers.power_of_two import PowerOfTwo
    from keras_compress.quantizers.ste_sign import SteSign
    from keras_compress.quantizers.stochastic_sign import StochasticSign
    from keras_compress.quantizers.ternary import Ternary

    _NAMES.update(
        ste_sign=SteSign,
        stochastic_sign=StochasticSign,
        ternary=Ternary,
        dorefa=DoReFa,
        power_of_two=PowerOfTwo,
    )
except ImportError:  # pragma: no cover
    pass


def serialize(quantizer):
    """Returns the config dict of a quantizer (or None)."""
    if quantizer is None:
        return None
    return keras.saving.serialize_keras_object(quantizer)


def get(identifier):
    """Returns a new, unbuilt quantizer from a name, config, class or object.

    Objects are copied (each layer owns its quantizer's state), so one
    quantizer object can be passed to many layers.

    Args:
        identifier: `None`, a name (`"fake_quant"`, `"ste_sign"`,
            `"stochastic_sign"`, `"ternary"`, `"dorefa"`, `"power_of_two"`),
            a serialized config dict, a `Quantizer` subclass or instance.

    Returns:
        A `Quantizer`, or None for None.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Quantizer):
        return identifier.copy()
    if isinstance(identifier, type) and issubclass(identifier, Quantizer):
        return identifier()
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise ValueError(
                f"Unknown quantizer name. Expected one of {sorted(_NAMES)}. "
                f"Received: quantizer={identifier!r}"
            )
        return _NAMES[identifier]()
    if isinstance(identifier, dict):
        quantizer = keras.saving.deserialize_keras_object(identifier)
        if isinstance(quantizer, Quantizer):
            return quantizer
    raise ValueError(
        "Expected a quantizer: None, a name, a config dict or a "
        f"keras_compress.quantizers.Quantizer. Received: {identifier!r}"
    )


__all__ = ["Quantizer", "FakeQuant", "get", "serialize"] + [
    cls.__name__ for name, cls in _NAMES.items() if name != "fake_quant"
]
