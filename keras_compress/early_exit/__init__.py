"""Early-exit (multi-exit) networks: build, train, infer, sweep, export.

`add_early_exits` attaches `EarlyExitHead` classifiers to a backbone;
`compile_multi_exit` (a `MultiExitTrainer`) trains every exit at once, with
optional distillation from the final exit; `early_exit_predict` stops each
sample at its first confident exit and reports the MACs of staged
execution (`exit_macs`); `threshold_sweep` trades accuracy for MACs;
`export_early_exit` writes one TFLite model per stage plus `chain.json`,
which `keras_compress.runtime.EarlyExitRunner` runs in LiteRT;
`export_early_exit_file` writes one TFLite file that exits early by itself
(control flow: an `IF` per early exit), for LiteRT and TensorFlow Lite
Micro.

Names load on first use: the LiteRT runner shares the NumPy-only decision
code of this package without importing Keras or TensorFlow.

Reference:
    Teerapittayanon, McDanel and Kung, "BranchyNet: Fast Inference via Early
    Exiting from Deep Neural Networks", ICPR 2016.
"""

import importlib

_EXPORTS = {
    "add_early_exits": "build",
    "compile_multi_exit": "multi_exit_trainer",
    "multi_exit_loss": "training",
    "MultiExitTrainer": "multi_exit_trainer",
    "early_exit_predict": "inference",
    "exit_macs": "inference",
    "EarlyExitResult": "result",
    "threshold_sweep": "sweep",
    "ThresholdSweep": "sweep",
    "export_early_exit": "export",
    "export_early_exit_file": "export_file",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(
            f"module 'keras_compress.early_exit' has no attribute {name!r}"
        )
    value = getattr(importlib.import_module(f"keras_compress.early_exit.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
