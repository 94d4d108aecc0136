"""`export_early_exit_file`: an early-exit model as one TFLite file."""

import numbers

import numpy as np

from keras_compress import _exit_rule
from keras_compress import _io
from keras_compress._exit_file import METADATA_NAME
from keras_compress.early_exit import _graph
from keras_compress.early_exit import _stitch
from keras_compress.early_exit import export as _chain

FORMAT_VERSION = 1


def export_early_exit_file(
    model,
    path=None,
    threshold=0.9,
    criterion="max_prob",
    threshold_input=False,
    quantize=None,
    representative_data=None,
    from_logits=None,
    verify=True,
    verify_data=None,
):
    """Exports a multi-exit model as one TFLite file that exits early by itself.

    The file needs no runner: after each early exit it computes the exit's
    confidence and an `IF` operator either returns that exit's result or
    runs the next stage, so only the stages a sample needs are run, in
    LiteRT and in TensorFlow Lite Micro alike. Inputs: the model's input
    with batch size 1 (one sample per call: the decision is per sample),
    and, with `threshold_input=True`, `threshold` of shape
    `(1, num_early_exits)`. Outputs, in this order: `probabilities`
    (float32, `(1, num_classes)`, the chosen exit's class probabilities),
    `exit` (int32, `(1,)`, the index of the exit taken) and `prediction`
    (int32, `(1,)`, the predicted class).

    The stages are those of `export_early_exit` (the same operators,
    weights and, for `quantize="int8"`, the same quantization parameters),
    copied into one flatbuffer; the decision runs in float32 on the exit's
    dequantized scores (SOFTMAX for logits, then REDUCE_MAX, or the
    normalized entropy from LOG, MUL and SUM). Where a stage dequantizes its
    feature map and the next quantizes it back with the same parameters,
    the int8 map is handed over directly.

    Unless `verify=False`, the file is run in LiteRT (XNNPACK) on
    `verify_data` (default: `representative_data`, else random inputs)
    before anything is returned or written, and must take the same exit
    and give the same prediction on every sample as the stage models
    decided by the rule of `early_exit_predict` (for float32, also as
    `early_exit_predict` on the Keras model, up to samples whose confidence
    is within 1e-5 of a threshold); a quantized file is also checked that
    way in TensorFlow Lite Micro when `tflite_micro` is installed.

    Args:
        model: A multi-exit model (see `add_early_exits`).
        path: Optional file path to write (atomically); its folder must
            exist. Default None (return the bytes only).
        threshold: A float in (0, 1], or one per early exit: the baked-in
            thresholds, or the default values documented in the metadata
            with `threshold_input=True`. Default 0.9.
        criterion: `"max_prob"` (default) or `"entropy"`, as in
            `early_exit_predict`.
        threshold_input: Read the thresholds from a second input at run
            time instead of baking them in. Default False.
        quantize: `None` (float32, default), `"float16"`, `"dynamic"` or
            `"int8"`, as in `to_tflite`.
        representative_data: Model inputs (an array); required for
            `quantize="int8"` (calibration, as in `export_early_exit`).
        from_logits: Whether the outputs are logits. Default None (read from
            the model).
        verify: Check the file before returning it (see above). Default
            True.
        verify_data: Inputs (an array) to verify on. Default None.

    Returns:
        The flatbuffer as `bytes`.

    Example:

    >>> data = export_early_exit_file(model, "model.tflite", threshold=0.9,
    ...                               quantize="int8",
    ...                               representative_data=x_train[:200])  # doctest: +SKIP
    >>> runner = keras_compress.runtime.EarlyExitRunner("model.tflite")  # doctest: +SKIP
    >>> runner.predict(x_test).accuracy(y_test)  # doctest: +SKIP
    """
    from keras_compress.export.tflite import QUANTIZE_MODES

    exits = _graph.Exits(model)
    thresholds = _check_thresholds(threshold, exits.num_exits - 1, criterion)
    kinds = _graph.output_kinds(exits, from_logits)
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Expected `quantize` to be one of {list(QUANTIZE_MODES)}. "
            f"Received: quantize={quantize!r}"
        )
    for name, value in (("threshold_input", threshold_input), ("verify", verify)):
        if not isinstance(value, bool):
            raise TypeError(f"Expected `{name}` to be a bool. Received: {name}={value!r}")
    if quantize == "int8" and not hasattr(representative_data, "shape"):
        raise ValueError(
            "quantize='int8' calibrates every stage on data: expected "
            "`representative_data` to be an array of model inputs. Received: "
            f"representative_data of type {type(representative_data).__name__}"
        )
    if verify_data is not None:
        verify_data = _check_samples(model, verify_data)
    if path is not None:
        path = _io.check_output_path(path)

    stages, _ = _graph.stage_models(model)
    costs = _graph.exit_costs(model)
    samples = (_chain._stage_inputs(stages, representative_data)
               if quantize == "int8" else [None] * len(stages))
    files = [_chain._to_tflite(stage, quantize, samples[j], 1)
             for j, stage in enumerate(stages)]
    info = {
        "format": METADATA_NAME,
        "version": FORMAT_VERSION,
        "model": model.name,
        "num_exits": exits.num_exits,
        "num_classes": exits.num_classes,
        "criterion": criterion,
        "threshold": thresholds,
        "threshold_input": threshold_input,
        "quantize": quantize,
        "cumulative_macs": costs["cumulative"],
        "stage_macs": costs["stage"],
        "backbone_macs": costs["backbone_total"],
        "model_macs": costs["model_total"],
    }
    data = _stitch.stitch(files, kinds, criterion, thresholds, threshold_input, info)
    if verify:
        if verify_data is None and representative_data is not None:
            verify_data = _check_samples(model, representative_data)[:200]
        from keras_compress.early_exit import _verify_file

        _verify_file.check(data, files, model, kinds, criterion, thresholds,
                           threshold_input, quantize, verify_data)
    if path is not None:
        _io.write_atomic(path, data)
    return data


def _check_thresholds(threshold, num_early, criterion):
    values = threshold if isinstance(threshold, (list, tuple, np.ndarray)) else [threshold]
    for v in values:
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v) == 0.0:
            raise ValueError(
                "Expected `threshold` in (0, 1]: with a threshold of 0, "
                "every sample leaves at the first exit (max_prob) or "
                "almost none leaves early (entropy), so the file's later "
                f"stages or its exits would be dead weight. Received: "
                f"threshold={threshold!r}"
            )
    return _exit_rule.check_thresholds(threshold, num_early, criterion)


def _check_samples(model, x):
    x = np.asarray(x, dtype="float32")
    want = tuple(model.inputs[0].shape[1:])
    if x.ndim != len(want) + 1 or any(w is not None and w != g
                                      for w, g in zip(want, x.shape[1:])):
        raise ValueError(
            f"Expected samples of shape {(None,) + want}. Received: an array "
            f"of shape {x.shape}"
        )
    if not len(x):
        raise ValueError("Expected at least one sample to verify on. Received: 0")
    return x
