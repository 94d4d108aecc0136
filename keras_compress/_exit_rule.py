"""When a sample leaves: confidences and thresholds (NumPy only).

Shared by the Keras side (`early_exit_predict`, `threshold_sweep`) and the
LiteRT runner, so both take the same decisions on the same scores.
"""

import numbers

import numpy as np

from keras_compress._checks import check_choice

CRITERIA = ("max_prob", "entropy")


def check_criterion(criterion):
    return check_choice("criterion", criterion, CRITERIA)


def check_thresholds(threshold, num_early, criterion):
    """One threshold per early exit, each a float in [0, 1].

    `threshold` is a number (the same at every early exit) or a sequence of
    `num_early` numbers.
    """
    check_criterion(criterion)
    meaning = (
        "the smallest max softmax probability that exits"
        if criterion == "max_prob"
        else "the largest normalized entropy that exits"
    )
    values = threshold if isinstance(threshold, (list, tuple, np.ndarray)) else [threshold]
    if isinstance(threshold, (list, tuple, np.ndarray)) and len(values) != num_early:
        raise ValueError(
            f"Expected `threshold` to be a number or {num_early} numbers (one "
            f"per early exit). Received: threshold={list(threshold)!r}"
        )
    out = []
    for v in values:
        ok = (
            isinstance(v, (numbers.Real, np.floating, np.integer))
            and not isinstance(v, bool)
            and np.isfinite(v)
            and 0.0 <= float(v) <= 1.0
        )
        if not ok:
            raise ValueError(
                f"Expected `threshold` in [0, 1] ({meaning}, criterion="
                f"{criterion!r}). Received: threshold={threshold!r}"
            )
        out.append(float(v))
    return out * num_early if len(out) == 1 else out


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def to_probabilities(scores, is_probability):
    """Class probabilities (float64) of an exit's scores."""
    if is_probability:
        return np.asarray(scores, dtype=np.float64)
    return softmax(scores)


def confidence(probabilities, criterion):
    """Max probability, or entropy divided by log(num_classes)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if criterion == "max_prob":
        return p.max(axis=-1)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=-1) / np.log(p.shape[-1])


def confident(conf, threshold, criterion):
    """Which samples pass the threshold at one exit."""
    if criterion == "max_prob":
        return conf >= threshold
    return conf <= threshold


def decide(probabilities, thresholds, criterion):
    """The exit each sample takes when all exits' probabilities are known.

    Args:
        probabilities: A list, one `(n, classes)` array per exit.
        thresholds: One threshold per early exit.
        criterion: `"max_prob"` or `"entropy"`.

    Returns:
        `(exits, confidences)`: the index of the exit taken and the
        confidence there (by `criterion`), per sample.
    """
    n = len(probabilities[0])
    exits = np.full(n, len(probabilities) - 1, dtype=np.int64)
    undecided = np.ones(n, dtype=bool)
    confidences = np.zeros(n, dtype=np.float64)
    for j, p in enumerate(probabilities):
        conf = confidence(p, criterion)
        if j < len(probabilities) - 1:
            leave = undecided & confident(conf, thresholds[j], criterion)
        else:
            leave = undecided
        exits[leave] = j
        confidences[leave] = conf[leave]
        undecided &= ~leave
    return exits, confidences
