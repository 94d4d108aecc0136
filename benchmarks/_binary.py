"""The binary section of `deep_compression.py`: a BinaryDense MLP (BWN
scales, float inputs) trained and written as a TFLite Micro bundle with
1-bit look-up tables, against the float32 MLP's `.tflite` file.
"""

from _deep_compression_arms import (  # noqa: E402  (benchmarks/ is on sys.path)
    LEARNING_RATES, _compile, _fit, build, keras_accuracy, litert_accuracy, load,
    micro_accuracy, micro_bundle)
from _deep_compression import EPOCHS, QUICK_EPOCHS  # noqa: E402
from _harness import markdown_table, median  # noqa: E402

MIN_BINARY_VS_FLOAT = 25.0  # float32 .tflite / binary MLP's TFLM flash



# ---------------------------------------------------------------------------
# Binary MLP: 1-bit weights to a TFLM bundle with 1-bit look-up tables.


def run(tasks, seeds, quick, log):
    import keras

    from keras_compress.export import to_tflite
    from keras_compress.quantization import quantize_model

    epochs = 2 if quick else EPOCHS["float"]
    results = {}
    for task in tasks:
        (x, y), (xt, yt) = data = load(task)
        if quick:
            x, y = x[:400], y[:400]
        runs = []
        for seed in range(seeds):
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            float_model = _compile(keras, build(keras, "mlp", task, x.shape[1:]),
                                   LEARNING_RATES["float"])
            _fit(float_model, x, y, epochs, seed)
            float_data = to_tflite(float_model)
            record = {"seed": seed, "float_accuracy": litert_accuracy(float_data, xt, yt),
                      "float32_bytes": len(float_data)}
            for bias in (False, True):
                keras.backend.clear_session()
                keras.utils.set_random_seed(seed)
                model = _binary_mlp(keras, task, x.shape[1:], bias)
                _compile(keras, model, LEARNING_RATES["float"])
                _fit(model, x, y, epochs, seed)
                qat = _compile(keras, quantize_model(model), LEARNING_RATES["qat"])
                _fit(qat, x, y, QUICK_EPOCHS["qat"] if quick else EPOCHS["qat"], seed + 2)
                report, bundle = micro_bundle(qat, "auto")
                tag = "bias" if bias else "no_bias"
                record[f"{tag}_keras_accuracy"] = keras_accuracy(qat, xt, yt)
                record[f"{tag}_micro_accuracy"] = micro_accuracy(bundle, xt, yt)
                record[f"{tag}_micro_flash_bytes"] = report["flash_bytes"]
                record[f"{tag}_micro_flash_bytes_uncompressed"] = (
                    report["compression"]["flash_bytes_uncompressed"])
                record[f"{tag}_micro_arena_bytes"] = report["arena_bytes"]
                log(f"  {task} binary MLP ({tag}) seed {seed}: float "
                    f"{100 * record['float_accuracy']:.1f}% {len(float_data):,} B | "
                    f"TFLM {100 * record[f'{tag}_micro_accuracy']:.1f}% "
                    f"{report['flash_bytes']:,} B (int8 "
                    f"{record[f'{tag}_micro_flash_bytes_uncompressed']:,} B)")
            runs.append(record)
        medians = {k: median([r[k] for r in runs]) for k in runs[0] if k != "seed"}
        ratio = medians["float32_bytes"] / medians["no_bias_micro_flash_bytes"]
        results[task] = {"runs": runs, "medians": medians, "ratio": ratio,
                         "target": f"float32 .tflite / binary TFLM flash >= "
                                   f"{MIN_BINARY_VS_FLOAT:g}",
                         "pass": ratio >= MIN_BINARY_VS_FLOAT}
    return results


def _binary_mlp(keras, task, input_shape, bias):
    """64-300-100-10 with BinaryDense layers: +-alpha per tensor (one int8
    scale per tensor, two int8 values), optionally biases."""
    from keras_compress.layers import BinaryDense

    L = keras.layers
    kwargs = {"scale": "tensor", "use_bias": bias}
    return keras.Sequential([
        keras.Input(input_shape), L.Flatten(),
        BinaryDense(300, activation="relu", name="fc1", **kwargs),
        BinaryDense(100, activation="relu", name="fc2", **kwargs),
        BinaryDense(10, name="logits", **kwargs),
    ], name=f"{task}_binary_mlp")


def tables(result):
    rows = []
    for task, r in result.items():
        m = r["medians"]
        for tag in ("no_bias", "bias"):
            rows.append([task, tag.replace("_", " "), f"{100 * m['float_accuracy']:.1f}",
                         f"{m['float32_bytes']:,.0f}",
                         f"{100 * m[f'{tag}_micro_accuracy']:.1f}",
                         f"{m[f'{tag}_micro_flash_bytes_uncompressed']:,.0f}",
                         f"{m[f'{tag}_micro_flash_bytes']:,.0f}",
                         f"{m[f'{tag}_micro_arena_bytes']:,.0f}",
                         f"{m['float32_bytes'] / m[f'{tag}_micro_flash_bytes']:.1f}x"])
    targets = [[task, r["target"] + " (no bias)", f"{r['ratio']:.1f}",
                "PASS" if r["pass"] else "FAIL"] for task, r in result.items()]
    return (markdown_table(["task", "binary MLP", "float acc %", "float32 B",
                    "TFLM acc %", "int8 bundle B", "DECODE bundle B", "arena B",
                    "vs float32"], rows)
            + "\n\n" + markdown_table(["task", "target", "value", ""], targets))
