"""`export_early_exit`: one TFLite model per stage plus `chain.json`."""

import json
import os

import numpy as np

from keras_compress import _io
from keras_compress._checks import check_optional_int
from keras_compress import _exit_rule
from keras_compress import _verify
from keras_compress.early_exit import _graph

CHAIN_FILE = "chain.json"
CHAIN_FORMAT = "keras_compress.early_exit"
CHAIN_VERSION = 1


def export_early_exit(
    model,
    out_dir,
    threshold=0.9,
    criterion="max_prob",
    quantize=None,
    representative_data=None,
    batch_size=None,
    from_logits=None,
    overwrite=False,
):
    """Exports a multi-exit model as a chain of LiteRT (TFLite) stage models.

    Stage j (`stage_j.tflite`) takes the feature map of exit j-1 (the model
    input for j = 0) and gives exit j's scores and the feature map the next
    stage takes; the last stage gives only the final classifier's scores.
    Each file is written by `keras_compress.export.to_tflite` and verified in
    LiteRT against its Keras stage model. `chain.json` describes the chain:
    files, which output index (and tensor name) holds the scores and which
    the feature map, whether the scores are probabilities, the criterion,
    the thresholds and the MACs of every stage. `EarlyExitRunner` runs it.

    Everything is written into a temporary folder next to `out_dir` and
    moved into place at the end: a failed export leaves no partial folder
    (and an existing `out_dir` untouched), and on Linux the old and the new
    folder are swapped in one step, so even a killed process leaves one
    complete chain (`keras_compress._io.replace_dir`).

    Args:
        model: A multi-exit model (see `add_early_exits`).
        out_dir: Folder to write; its parent must exist. It must not exist
            or be empty, unless `overwrite=True`.
        threshold: Exit threshold stored in `chain.json` (the runner's
            default): a float in [0, 1] or one per early exit. Default 0.9.
        criterion: `"max_prob"` (default) or `"entropy"`, as in
            `early_exit_predict`.
        quantize: `None` (float32, default), `"float16"`, `"dynamic"` or
            `"int8"`, as in `to_tflite`.
        representative_data: Model inputs (an array) for `quantize="int8"`;
            the later stages are calibrated on the feature maps the Keras
            model computes from them.
        batch_size: Batch dimension of every stage: None (default, dynamic)
            or a positive int (1 for a device).
        from_logits: Whether the outputs are logits. Default None (read from
            the model).
        overwrite: Replace an existing non-empty `out_dir`. Default False.

    Returns:
        The chain description (the content of `chain.json`) as a dict.

    Example:

    >>> chain = export_early_exit(model, "exits/", threshold=0.9)  # doctest: +SKIP
    >>> runner = keras_compress.runtime.EarlyExitRunner("exits/")  # doctest: +SKIP
    """
    from keras_compress.export.tflite import QUANTIZE_MODES

    exits = _graph.Exits(model)
    thresholds = _exit_rule.check_thresholds(threshold, exits.num_exits - 1, criterion)
    kinds = _graph.output_kinds(exits, from_logits)
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Expected `quantize` to be one of {list(QUANTIZE_MODES)}. "
            f"Received: quantize={quantize!r}"
        )
    if quantize == "int8":
        if representative_data is None or not hasattr(representative_data, "shape"):
            raise ValueError(
                "quantize='int8' calibrates every stage on data: expected "
                "`representative_data` to be an array of model inputs. "
                f"Received: representative_data of type "
                f"{type(representative_data).__name__}"
            )
    batch_size = check_optional_int("batch_size", batch_size, " (dynamic)")
    if not isinstance(overwrite, bool):
        raise TypeError(f"Expected `overwrite` to be a bool. Received: overwrite={overwrite!r}")
    out_dir = _io.check_output_dir(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ValueError(
            "Expected `out_dir` to not exist or be empty (or overwrite=True). "
            f"Received: out_dir={out_dir!r} (a folder with files)"
        )

    stages, _ = _graph.stage_models(model)
    costs = _graph.exit_costs(model)
    samples = _stage_inputs(stages, representative_data) if quantize == "int8" else None
    with _io.staged_dir(out_dir) as temp:
        described = []
        for j, stage in enumerate(stages):
            file = f"stage_{j}.tflite"
            data = _to_tflite(stage, quantize,
                              None if samples is None else samples[j], batch_size)
            described.append(_describe_stage(
                j, stage, data, file, kinds[j], costs, quantize,
                None if samples is None else samples[j][:8],
            ))
            _io.write_atomic(os.path.join(temp, file), data)
        chain = {
            "format": CHAIN_FORMAT,
            "version": CHAIN_VERSION,
            "model": model.name,
            "num_exits": exits.num_exits,
            "num_classes": exits.num_classes,
            "criterion": criterion,
            "threshold": thresholds,
            "quantize": quantize,
            "batch_size": batch_size,
            "backbone_macs": costs["backbone_total"],
            "model_macs": costs["model_total"],
            "stages": described,
        }
        _io.write_atomic(os.path.join(temp, CHAIN_FILE), json.dumps(chain, indent=2) + "\n")
    return chain


def _to_tflite(stage, quantize, samples, batch_size):
    """Converts one stage; `_check_stage` then compares it with Keras on
    the stage's real inputs (feature maps of the previous stages)."""
    from keras_compress.export.tflite import to_tflite

    data = to_tflite(
        stage, quantize=quantize, representative_data=samples,
        batch_size=batch_size, verify=False,
        calibration_samples=200 if samples is None else min(200, len(samples)),
    )
    return data


def _check_stage(j, stage, runner, order, feed, quantize):
    """Raises unless the LiteRT stage computes what the Keras stage does."""
    want = _keras_outputs(stage, feed)
    got = runner.predict(feed)
    got = got if isinstance(got, list) else [got]
    _verify.compare([got[order[k]] for k in range(len(want))], want,
                    f"Stage {j} of the early-exit export",
                    1e-3 if quantize is None else None)


def _stage_inputs(stages, x):
    """Per stage, the inputs it sees when the model runs on `x`."""
    x = np.asarray(x, dtype="float32")[:200]
    inputs = [x]
    for stage in stages[:-1]:
        _, features = _keras_outputs(stage, inputs[-1])
        inputs.append(features.astype("float32"))
    return inputs


def _keras_outputs(stage, x):
    """The stage's outputs as a list of arrays (inference mode)."""
    import keras

    out = stage(keras.ops.convert_to_tensor(x), training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in out]


def _describe_stage(j, stage, data, file, is_probability, costs, quantize, sample):
    """The stage's entry of chain.json, after checking it in LiteRT."""
    from keras_compress import _inputs
    from keras_compress.runtime.litert import LiteRTModel

    runner = LiteRTModel(data)
    order = list(range(len(stage.outputs)))  # LiteRTModel keeps Keras's order
    if sample is None:
        sample = _verify.random_inputs(_inputs.tensor_specs(stage, None), count=4, seed=j)
    _check_stage(j, stage, runner, order, sample, quantize)
    info = runner.outputs
    entry = {
        "file": file,
        "input": {"name": runner.inputs[0].name, "shape": list(runner.inputs[0].shape)},
        "exit": {"output_index": order[0], "name": info[order[0]].name,
                 "probabilities": bool(is_probability)},
        "feature": None,
        "macs": costs["stage"][j],
        "head_macs": costs["head"][j],
        "backbone_macs": costs["backbone"][j],
        "cumulative_macs": costs["cumulative"][j],
        "size_bytes": len(data),
    }
    if len(order) > 1:
        entry["feature"] = {
            "output_index": order[1], "name": info[order[1]].name,
            "shape": list(info[order[1]].shape),
        }
    return entry

