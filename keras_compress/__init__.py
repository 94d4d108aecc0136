"""keras-compress: model compression for Keras 3.

Subpackages:
  datasets: offline demo data (`load_digits`, `load_mnist1d`).
  graph: the layer graph of Functional/Sequential models and the rewriter
    every transform uses (`graph_of`, `nodes`, `rebuild`).
  weights: which weights can be compressed (`prunable_weights`,
    `select_weights`) and how their stateful constraints are copied.
  pruning: schedules, masks, `strip_pruning`.
  callbacks: `model.fit` callbacks (`MagnitudePruning`, `QATSchedule`, ...).
  layers: drop-in layers (`QuantConv2D`, `BinaryDense`, `Quantize`, ...).
  quantizers: `FakeQuant`, `SteSign`, `Ternary`, `DoReFa`, ...
  quantization: `quantize_model`, `fold_batchnorm`, `calibrate`.
  clustering: weight sharing (`cluster_weights`, `strip_clustering`).
  factorization: `factorize` (SVD low-rank Dense), `to_depthwise_separable`.
  distillation: `Distiller`, `Hint` (temperature, teacher ensembles, FitNets
    hints).
  early_exit: multi-exit networks (`add_early_exits`, `threshold_sweep`,
    `export_early_exit`).
  slimmable: one network, several widths (`set_width`, `SandwichModel`,
    `export_width`).
  analysis: parameters, non-zeros, MACs and bytes of a model (`summarize`).
  export: verified writers for LiteRT/TFLite, TFLite Micro and ONNX.
  runtime: run and time an exported artifact (`LiteRTModel`, `MicroModel`,
    `ONNXModel`).
"""

import os

# TensorFlow's C++ logging is noise for our users; respect an explicit choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_SUBPACKAGES = (
    "analysis",
    "callbacks",
    "clustering",
    "datasets",
    "distillation",
    "early_exit",
    "export",
    "factorization",
    "graph",
    "layers",
    "pruning",
    "quantization",
    "quantizers",
    "runtime",
    "slimmable",
    "weights",
)


def __getattr__(name):
    # Subpackages load on first use, so `keras-compress bench` and the
    # runtimes do not pay for importing TensorFlow.
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"keras_compress.{name}")
    raise AttributeError(f"module 'keras_compress' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES))
