"""Training a multi-exit model: the weighted exit loss, with distillation."""

import keras
from keras import ops


def check_exit_weights(exit_weights, num_exits):
    """One non-negative float per exit (default: 1.0 each)."""
    if exit_weights is None:
        return [1.0] * num_exits
    if isinstance(exit_weights, (str, bytes)) or not hasattr(exit_weights, "__len__"):
        raise TypeError(
            f"Expected `exit_weights` to be a list of {num_exits} floats. "
            f"Received: exit_weights={exit_weights!r}"
        )
    weights = list(exit_weights)
    if len(weights) != num_exits or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
        for w in weights
    ):
        raise ValueError(
            f"Expected `exit_weights` to be {num_exits} non-negative floats "
            f"(one per exit, the final last). Received: exit_weights={exit_weights!r}"
        )
    return [float(w) for w in weights]


def check_distillation(distillation):
    """`None` or `{"temperature": T > 0, "alpha": a in [0, 1]}`."""
    if distillation is None:
        return None
    if not isinstance(distillation, dict) or set(distillation) - {"temperature", "alpha"}:
        raise ValueError(
            "Expected `distillation` to be None or a dict with keys "
            "'temperature' (> 0) and 'alpha' (in [0, 1]). Received: "
            f"distillation={distillation!r}"
        )
    t = distillation.get("temperature", 1.0)
    a = distillation.get("alpha", 0.5)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
        raise ValueError(
            "Expected distillation['temperature'] > 0. Received: "
            f"distillation={distillation!r}"
        )
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a <= 1:
        raise ValueError(
            "Expected distillation['alpha'] in [0, 1]. Received: "
            f"distillation={distillation!r}"
        )
    return {"temperature": float(t), "alpha": float(a)}


def _log_probabilities(scores, is_probability, temperature=1.0):
    """log softmax(z / T), with z the logits or log of the probabilities."""
    if is_probability:
        scores = ops.log(ops.clip(scores, keras.backend.epsilon(), 1.0))
    return ops.log_softmax(scores / temperature, axis=-1)


def multi_exit_loss(y, outputs, exit_weights, probabilities, distillation=None,
                    sample_weight=None):
    """The training loss of a multi-exit model.

    With labels `y`, exit scores `z_0..z_K` (`z_K` the final classifier),
    weights `w_j`, cross-entropy `CE` and, with distillation, temperature
    `T` and mixing `alpha`:

        L = sum_{j<K} w_j [(1 - alpha) CE(y, z_j)
                           + alpha T^2 KL(softmax(sg(z_K) / T) || softmax(z_j / T))]
            + w_K CE(y, z_K)

    where `sg` stops the gradient (the final exit teaches, it is not
    pulled towards the early ones). Without distillation,
    `L = sum_j w_j CE(y, z_j)`. Every term is a mean over the batch (sum of
    sample-weighted terms divided by the batch size, as Keras losses do).
    For an exit giving probabilities, `z` is their logarithm.

    Args:
        y: Integer labels `(batch,)` or one-hot labels `(batch, classes)`.
        outputs: The model outputs, early exits first.
        exit_weights: One weight per output.
        probabilities: Per output, True if it gives probabilities.
        distillation: None or `{"temperature": T, "alpha": a}`.
        sample_weight: Optional `(batch,)` weights.

    Returns:
        The scalar loss.
    """
    num_classes = outputs[-1].shape[-1]
    y = ops.convert_to_tensor(y)
    if len(y.shape) == 2 and y.shape[-1] == num_classes and num_classes != 1:
        one_hot = ops.cast(y, outputs[-1].dtype)
    else:
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")
        one_hot = ops.one_hot(labels, num_classes, dtype=outputs[-1].dtype)

    def batch_mean(per_sample):
        if sample_weight is not None:
            per_sample = per_sample * ops.cast(
                ops.reshape(sample_weight, (-1,)), per_sample.dtype)
        return ops.mean(per_sample)

    log_teacher = None
    if distillation is not None:
        t = distillation["temperature"]
        log_teacher = _log_probabilities(
            ops.stop_gradient(outputs[-1]), probabilities[-1], t)
    total = 0.0
    last = len(outputs) - 1
    for j, (z, w, is_p) in enumerate(zip(outputs, exit_weights, probabilities)):
        ce = batch_mean(-ops.sum(one_hot * _log_probabilities(z, is_p), axis=-1))
        if distillation is None or j == last:
            total = total + w * ce
            continue
        t, alpha = distillation["temperature"], distillation["alpha"]
        log_student = _log_probabilities(z, is_p, t)
        kl = ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)
        total = total + w * ((1.0 - alpha) * ce + alpha * t * t * batch_mean(kl))
    return total
