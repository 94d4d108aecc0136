"""Proves a single-file early-exit model decides as the stage models do.

The reference is the rule of `early_exit_predict` (`_exit_rule.decide`)
applied to every exit's outputs, computed by the stage models in the same
runtime with the same kernels: the file must take the same exit and give
the same prediction on every sample. A float32 file is also compared with
`early_exit_predict` on the Keras model, where a sample whose confidence is
within `MARGIN` of a threshold may go either way (float32 against Keras's
arithmetic).
"""

import warnings

import numpy as np

from keras_compress import _exit_rule

MARGIN = 1e-5


def check(data, stage_files, model, kinds, criterion, thresholds, threshold_input,
          quantize, x):
    """Raises `RuntimeError` unless the file agrees with its stages."""
    from keras_compress import _inputs
    from keras_compress import _verify
    from keras_compress.runtime.litert import LiteRTModel

    if x is None:
        x = _verify.random_inputs(_inputs.tensor_specs(model, None), count=16, seed=0)[0]
    x = np.asarray(x, dtype="float32")
    extra = [np.tile(np.asarray(thresholds, np.float32), (len(x), 1))] if threshold_input else []
    stages = [LiteRTModel(f) for f in stage_files]
    want = staged_decisions(stages, x, kinds, criterion, thresholds)
    got = LiteRTModel(data).predict([x] + extra)
    compare(got, want, "LiteRT (XNNPACK)")
    if quantize is None:
        from keras_compress.early_exit.inference import early_exit_predict

        keras_result = early_exit_predict(model, x, thresholds, criterion, batch_size=64)
        near = near_threshold(keras_result, thresholds, criterion, kinds, model, x)
        compare(got, (keras_result.exits, keras_result.predictions),
                "Keras (early_exit_predict)", allowed=near)
        return
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        warnings.warn(
            "The single-file early-exit model was not checked in TensorFlow "
            "Lite Micro: the tflite-micro package is not installed.", stacklevel=4)
        return
    from keras_compress.runtime.micro import MicroModel

    micro_stages = [MicroModel(f) for f in stage_files]
    want = staged_decisions(micro_stages, x, kinds, criterion, thresholds)
    got = MicroModel(data).predict([x] + extra)
    compare(got, want, "TensorFlow Lite Micro")


def staged_decisions(stages, x, kinds, criterion, thresholds):
    """`(exits, predictions)` of the decision rule on every stage's outputs."""
    probabilities = []
    inputs = x
    for j, stage in enumerate(stages):
        outs = stage.predict(inputs)
        outs = outs if isinstance(outs, list) else [outs]
        probabilities.append(_exit_rule.to_probabilities(outs[0], kinds[j]))
        if len(outs) > 1:
            inputs = outs[1]
    exits, _ = _exit_rule.decide(probabilities, thresholds, criterion)
    chosen = np.stack(probabilities)[exits, np.arange(len(exits))]
    return exits, chosen.argmax(-1)


def near_threshold(result, thresholds, criterion, kinds, model, x):
    """Samples whose Keras confidence at some early exit is within MARGIN of
    its threshold."""
    outputs = model.predict(x, batch_size=64, verbose=0)
    near = np.zeros(len(x), dtype=bool)
    for j, t in enumerate(thresholds):
        p = _exit_rule.to_probabilities(outputs[j], kinds[j])
        near |= np.abs(_exit_rule.confidence(p, criterion) - t) < MARGIN
    return near


def compare(got, want, where, allowed=None):
    exits = np.asarray(got[1]).reshape(-1)
    predictions = np.asarray(got[2]).reshape(-1)
    want_exits, want_predictions = (np.asarray(w).reshape(-1) for w in want)
    wrong = (exits != want_exits) | (predictions != want_predictions)
    if allowed is not None:
        wrong &= ~allowed
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        raise RuntimeError(
            "The single-file early-exit model does not decide as its stages "
            f"do in {where}: {int(wrong.sum())} of {len(wrong)} samples "
            f"differ (sample {k}: exit {int(exits[k])}, class "
            f"{int(predictions[k])}; expected exit {int(want_exits[k])}, class "
            f"{int(want_predictions[k])}). Nothing was written."
        )
