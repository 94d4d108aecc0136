"""Early-exit layers: side classifiers for multi-exit networks."""

from keras_compress.layers.early_exit.early_exit_head import EarlyExitHead

__all__ = ["EarlyExitHead"]
