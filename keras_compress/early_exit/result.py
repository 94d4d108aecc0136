"""`EarlyExitResult`: what an early-exit prediction returns (NumPy only)."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class EarlyExitResult:
    """Per-sample outcome of early-exit inference.

    Returned by `early_exit_predict` (Keras) and
    `keras_compress.runtime.EarlyExitRunner.predict` (LiteRT), so the two can
    be compared field by field.

    Attributes:
        predictions: Predicted class per sample, int64 `(n,)`.
        exits: Index of the exit each sample left at, int64 `(n,)`
            (0 = first early exit, `num_exits - 1` = the final classifier).
        macs: MACs each sample cost in staged execution, int64 `(n,)`: the
            backbone up to its exit plus every head evaluated on the way.
        confidences: Confidence at the exit taken, float64 `(n,)` (max
            probability or normalized entropy, by criterion).
        probabilities: Class probabilities at the exit taken, float64
            `(n, num_classes)`.

    Example:

    >>> result = early_exit_predict(model, x, threshold=0.9)  # doctest: +SKIP
    >>> result.mean_macs, result.exit_fractions  # doctest: +SKIP
    """

    predictions: np.ndarray
    exits: np.ndarray
    macs: np.ndarray
    confidences: np.ndarray
    probabilities: np.ndarray

    @property
    def mean_macs(self):
        """Average MACs per sample."""
        return float(np.mean(self.macs))

    def exit_fractions(self, num_exits):
        """Fraction of the samples leaving at each of `num_exits` exits."""
        counts = np.bincount(self.exits, minlength=num_exits)
        return (counts / max(1, len(self.exits))).tolist()

    def accuracy(self, y):
        """Top-1 accuracy against integer or one-hot labels."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[-1] == self.probabilities.shape[-1]:
            y = y.argmax(-1)
        y = y.reshape(-1)
        if len(y) != len(self.predictions):
            raise ValueError(
                "Expected one label per sample "
                f"({len(self.predictions)}). Received: {len(y)} labels"
            )
        return float(np.mean(self.predictions == y))
