"""Quantization: BatchNorm folding, `quantize_model` for QAT, PTQ calibration."""

from keras_compress.quantization.calibrate import calibrate
from keras_compress.quantization.quantize_model import quantize_model

__all__ = ["calibrate", "quantize_model"]

try:
    from keras_compress.quantization.fold_batchnorm import fold_batchnorm  # noqa: F401

    __all__.append("fold_batchnorm")
except ImportError:  # pragma: no cover
    pass
