"""Part 2 of `_architecture.py`: depthwise-separable vs standard
convolution on digits (8x8x1), and the same architectures' latency at a
larger input. See `_architecture.py` for the setup.
"""

import time

from _architecture import (  # noqa: E402  (benchmarks/ is on sys.path)
    BN_MOMENTUM, FINETUNE_LR, LR, QUICK_EPOCHS, _accuracy, _cost, _load, _stat, _train)
from _harness import litert_latency  # noqa: E402

CNN_EPOCHS = (20, 5)
CNN_BLOCKS = ((32, 1), (64, 2), (64, 1))  # (filters, stride), 3x3 kernels
FIT_SAMPLES = 512
LATENCY = {"repeats": 7, "runs": 30, "min_time": 0.2, "warmup": 10}
QUICK_LATENCY = {"repeats": 1, "runs": 10, "min_time": 0.0, "warmup": 2}
SCALED_INPUT = (64, 64, 1)
CNN_VARIANTS = (
    ("standard", "standard convs (E epochs)"),
    ("separable", "depthwise-separable, from scratch (E epochs)"),
    ("converted", "to_depthwise_separable(standard), no fine-tuning"),
    ("converted_finetuned", "to_depthwise_separable(standard) + F epochs"),
)


def _cnn(separable, seed, input_shape=(8, 8, 1)):
    import keras
    from keras import layers

    from keras_compress.layers.factorized import DepthwiseSeparableConv2D

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    h = inputs
    for i, (filters, stride) in enumerate(CNN_BLOCKS):
        if separable and i > 0:
            h = DepthwiseSeparableConv2D(
                filters, 3, strides=stride, padding="same", use_bias=False,
                batch_norm={"momentum": BN_MOMENTUM},
                depthwise_activation="relu", activation="relu",
                name=f"conv{i}")(h)
            continue
        h = layers.Conv2D(filters, 3, strides=stride, padding="same",
                          use_bias=False, name=f"conv{i}")(h)
        h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(h)
        h = layers.ReLU(name=f"relu{i}")(h)
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    outputs = layers.Dense(10, name="out")(h)
    return keras.Model(inputs, outputs,
                       name="separable_cnn" if separable else "standard_cnn")


def _measure(models, latency, log):
    """Float32 LiteRT latency (1 thread, batch 1) of `{name: model}`, the
    models timed alternately; returns `{name: median ms}` and details."""
    from keras_compress.export import to_tflite
    from keras_compress.runtime import LiteRTModel

    runners = {name: LiteRTModel(to_tflite(m, batch_size=1), num_threads=1)
               for name, m in models.items()}
    start = time.perf_counter()
    timings = litert_latency(runners, latency["repeats"], latency["runs"],
                             latency["warmup"], min_time=latency["min_time"])
    log(f"  1 thread(s): {len(runners)} runners x {latency['repeats']} repeats "
        f"({time.perf_counter() - start:.0f} s)")
    return timings


def _cnn_seed(data, seed, epochs, finetune, latency, log):
    from keras_compress.factorization import to_depthwise_separable

    (x, y), test = data
    start = time.perf_counter()
    standard = _train(_cnn(False, seed), LR, x, y, epochs, seed)
    separable = _train(_cnn(True, seed), LR, x, y, epochs, seed)
    fit_start = time.perf_counter()
    converted, report = to_depthwise_separable(
        standard, x[:FIT_SAMPLES], layers=["conv1", "conv2"], return_report=True)
    convert_s = time.perf_counter() - fit_start
    acc = {"standard": _accuracy(standard, test),
           "separable": _accuracy(separable, test),
           "converted": _accuracy(converted, test)}
    timed = _measure({"standard": standard, "separable": separable,
                      "converted": converted}, latency, log)
    _train(converted, FINETUNE_LR, x, y, finetune, seed)
    acc["converted_finetuned"] = _accuracy(converted, test)
    rows = {}
    for name, model in (("standard", standard), ("separable", separable),
                        ("converted", converted),
                        ("converted_finetuned", converted)):
        params, macs = _cost(model)
        key = "converted" if name == "converted_finetuned" else name
        rows[name] = {"params": params, "macs": macs, "test_acc": acc[name],
                      "latency_ms": timed[key]["median_ms"],
                      "latency_ms_per_repeat": timed[key]["median_ms_per_repeat"]}
    result = {
        "rows": rows,
        "conversion": {"seconds": convert_s,
                       "layers": [{k: r[k] for k in ("name", "params_before",
                                                     "params_after", "kernel_error",
                                                     "relative_error_init",
                                                     "relative_error")}
                                  for r in report.layers]},
    }
    log(f"  digits seed {seed}: acc " + ", ".join(
        f"{k} {100 * v:.1f}" for k, v in acc.items())
        + "; ms " + ", ".join(f"{k} {v['median_ms']:.4f}" for k, v in timed.items())
        + f" ({time.perf_counter() - start:.0f} s)")
    return result


def _cnn_task(seeds, quick, log):
    epochs, finetune = QUICK_EPOCHS if quick else CNN_EPOCHS
    latency = QUICK_LATENCY if quick else LATENCY
    data = _load("digits")
    runs = [_cnn_seed(data, s, epochs, finetune, latency, log) for s in range(seeds)]
    standard = runs[0]["rows"]["standard"]
    out = {"settings": {"blocks": [list(b) for b in CNN_BLOCKS],
                        "epochs": epochs, "finetune_epochs": finetune,
                        "fit_samples": FIT_SAMPLES, "latency": dict(latency)},
           "rows": {}}
    for name, label in CNN_VARIANTS:
        rows = [r["rows"][name] for r in runs]
        out["rows"][name] = {
            "label": label,
            "params": rows[0]["params"],
            "macs": rows[0]["macs"],
            "param_ratio": standard["params"] / rows[0]["params"],
            "mac_ratio": standard["macs"] / rows[0]["macs"],
            "test_acc": _stat([r["test_acc"] for r in rows]),
            "latency_ms": _stat([r["latency_ms"] for r in rows]),
            "speedup": _stat([r["rows"]["standard"]["latency_ms"] / r["rows"][name]["latency_ms"]
                              for r in runs]),
        }
    out["conversion"] = [r["conversion"] for r in runs]
    if not quick:
        # Latency only, at a larger input: same layers, random weights.
        log(f"  latency at {SCALED_INPUT}:")
        models = {"standard": _cnn(False, 0, SCALED_INPUT),
                  "separable": _cnn(True, 0, SCALED_INPUT)}
        per_seed = [_measure(models, latency, log) for _ in range(seeds)]
        out["scaled"] = {"input_shape": list(SCALED_INPUT)}
        for name, model in models.items():
            params, macs = _cost(model)
            out["scaled"][name] = {
                "params": params, "macs": macs,
                "latency_ms": _stat([t[name]["median_ms"] for t in per_seed]),
            }
        std = out["scaled"]["standard"]
        sep = out["scaled"]["separable"]
        out["scaled"]["mac_ratio"] = std["macs"] / sep["macs"]
        out["scaled"]["speedup"] = _stat([
            t["standard"]["median_ms"] / t["separable"]["median_ms"] for t in per_seed])
    return out
