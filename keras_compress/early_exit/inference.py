"""Early-exit inference with a Keras multi-exit model, and its MAC cost."""

import numpy as np

from keras_compress import _exit_rule
from keras_compress.early_exit import _graph
from keras_compress.early_exit.result import EarlyExitResult


def exit_macs(model):
    """Exact MACs per sample of each stage of a multi-exit model.

    Stage j runs the backbone from exit j-1's feature map (the input for
    j = 0) to exit j's, then head j; the last stage runs the rest of the
    backbone. MACs are `keras_compress.analysis.summarize` totals of these
    stage models (one MAC per multiply-accumulate, batch size 1).

    Args:
        model: A multi-exit model (see `add_early_exits`).

    Returns:
        A dict: `stage`, `head`, `backbone` and `cumulative` (lists, one int
        per exit: `cumulative[j]` is the cost of a sample leaving at exit
        j), `backbone_total` (the backbone alone, without heads) and
        `model_total` (everything, = `cumulative[-1]`).

    Example:

    >>> costs = exit_macs(model)  # doctest: +SKIP
    >>> costs["cumulative"][-1] == summarize(model).totals.macs  # doctest: +SKIP
    True
    """
    return _graph.exit_costs(model)


def result_from_probabilities(probabilities, thresholds, criterion, cumulative):
    """The `EarlyExitResult` of staged execution given every exit's outputs."""
    exits, confidences = _exit_rule.decide(probabilities, thresholds, criterion)
    stacked = np.stack(probabilities)  # (exits, n, classes)
    chosen = stacked[exits, np.arange(len(exits))]
    return EarlyExitResult(
        predictions=chosen.argmax(axis=-1).astype(np.int64),
        exits=exits,
        macs=np.asarray(cumulative, dtype=np.int64)[exits],
        confidences=confidences,
        probabilities=chosen,
    )


def early_exit_predict(
    model, x, threshold, criterion="max_prob", from_logits=None, batch_size=256
):
    """Predicts with early exits: each sample stops at its first confident exit.

    A sample leaves at early exit j if its confidence there passes the
    threshold: max softmax probability `>= threshold` (`"max_prob"`), or
    entropy / log(num_classes) `<= threshold` (`"entropy"`); otherwise it
    goes on, and the final classifier takes whatever is left. Keras runs
    every exit on every sample to decide (the result is the same), but the
    MACs reported are those of staged execution (see `exit_macs`): a
    sample leaving at exit j costs `exit_macs(model)["cumulative"][j]`.

    Args:
        model: A multi-exit model (see `add_early_exits`).
        x: Input samples, an array.
        threshold: A float in [0, 1], or one per early exit.
        criterion: `"max_prob"` (default) or `"entropy"`.
        from_logits: Whether the outputs are logits. Default None: read from
            the model (an output whose last layer ends in a softmax gives
            probabilities, any other gives logits).
        batch_size: Batch size of `model.predict`, default 256.

    Returns:
        An `EarlyExitResult` (`predictions`, `exits`, `macs`, `confidences`,
        `probabilities`, per sample).

    Example:

    >>> result = early_exit_predict(model, x_test, threshold=0.9)  # doctest: +SKIP
    >>> result.accuracy(y_test), result.mean_macs  # doctest: +SKIP
    """
    exits = _graph.Exits(model)
    thresholds = _exit_rule.check_thresholds(threshold, exits.num_exits - 1, criterion)
    kinds = _graph.output_kinds(exits, from_logits)
    cumulative = _graph.exit_costs(model)["cumulative"]
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    probabilities = [_exit_rule.to_probabilities(o, p) for o, p in zip(outputs, kinds)]
    return result_from_probabilities(probabilities, thresholds, criterion, cumulative)
