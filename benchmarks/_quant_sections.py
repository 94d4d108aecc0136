"""The two sections of `quantization.py`, one seed at a time: A, the
int8 export paths (`run_int8_seed`), and B, low-bit weights
(`run_lowbit_seed`), with their medians over seeds.
"""

import time

import numpy as np

from _harness import interleave, median  # noqa: E402  (benchmarks/ is on sys.path)
from _quant_models import (  # noqa: E402
    BATCH_SIZE, QAT_LR, _epoch_timer, _test_accuracy_log, accuracy, build_cnn,
    build_lowbit, compile_model, copy_float, predictions)

CALIBRATION_SAMPLES = 500
PERCENTILE = 99.99
INT8_PATHS = (
    ("float32", "float32 (no quantization)"),
    ("ptq_converter", "int8 PTQ, converter min/max"),
    ("ptq_minmax", "int8 PTQ, calibrate minmax"),
    ("ptq_percentile", f"int8 PTQ, calibrate percentile {PERCENTILE}"),
    ("ptq_kl", "int8 PTQ, calibrate KL"),
    ("qat", "int8 QAT (BN frozen near the end)"),
    ("qat_bn_frozen", "int8 QAT (BN frozen from the start)"),
)
LOWBIT_MODELS = (("mlp", "MLP"), ("cnn", "CNN"))
LOWBIT_VARIANTS = (
    ("float", "float32"),
    ("dorefa4", "DoReFa 4-bit"),
    ("dorefa2", "DoReFa 2-bit"),
    ("ternary", "ternary (TWN)"),
    ("binary", "binary (scale=channel)"),
)


def run_int8_seed(name, settings, seed, data, log):
    import keras

    from keras_compress.callbacks import QATSchedule
    from keras_compress.export import to_tflite
    from keras_compress.quantization import calibrate, quantize_model
    from keras_compress.runtime import LiteRTModel

    (x, y), test = data
    x_test, y_test = test
    steps = -(-len(x) // BATCH_SIZE)
    calib = x[:CALIBRATION_SAMPLES]
    fit = dict(batch_size=BATCH_SIZE, verbose=0)
    seconds = {}
    paths = {}

    start = time.perf_counter()
    model = compile_model(build_cnn(name, seed), steps, epochs=settings["epochs"])
    keras.utils.set_random_seed(seed)
    model.fit(x, y, epochs=settings["epochs"], **fit)
    seconds["float_training"] = round(time.perf_counter() - start, 1)
    float_acc = accuracy(model, test)

    def measure(label, data_bytes, keras_model=None, **extra):
        runner = LiteRTModel(data_bytes)
        lite = np.asarray(runner.predict(x_test)).argmax(axis=1)
        row = {"size_bytes": len(data_bytes),
               "litert_test_acc": float((lite == y_test).mean())}
        if keras_model is not None:
            ours = predictions(keras_model, x_test)
            row["keras_test_acc"] = float((ours == y_test).mean())
            row["agreement"] = float((ours == lite).mean())
            row["abs_gap_points"] = 100 * abs(row["keras_test_acc"] - row["litert_test_acc"])
        row.update(extra)
        paths[label] = row

    start = time.perf_counter()
    # verify=False: every file is run in LiteRT on the whole test set below.
    measure("float32", to_tflite(model, verify=False), model)
    measure("ptq_converter", to_tflite(
        model, quantize="int8", representative_data=calib,
        calibration_samples=CALIBRATION_SAMPLES, verify=False))
    for method in ("minmax", "percentile", "kl"):
        q = quantize_model(model)
        calibrate(q, calib, method=method, percentile=PERCENTILE,
                  num_samples=CALIBRATION_SAMPLES, verbose=0)
        measure(f"ptq_{method}", to_tflite(q, quantize="int8", verify=False), q)
    seconds["ptq"] = round(time.perf_counter() - start, 1)

    qe = settings["qat_epochs"]
    for label, freeze_bn in (("qat", settings["qat_freeze_batchnorm"]),
                             ("qat_bn_frozen", 0)):
        start = time.perf_counter()
        q = compile_model(quantize_model(model), steps, lr=QAT_LR)
        log_acc = _test_accuracy_log(test)
        schedule = QATSchedule(freeze_batchnorm=freeze_bn,
                               freeze_ranges=settings["qat_freeze_ranges"])
        keras.utils.set_random_seed(seed)
        q.fit(x, y, epochs=qe, callbacks=[schedule, log_acc], **fit)
        measure(label, to_tflite(q, quantize="int8", verify=False), q,
                keras_test_acc_per_epoch=log_acc.values,
                freeze_batchnorm=freeze_bn,
                freeze_ranges=settings["qat_freeze_ranges"])
        seconds[label] = round(time.perf_counter() - start, 1)

    # Control: the float CNN fine-tuned with the QAT optimizer, same epochs.
    control = compile_model(copy_float(model), steps, lr=QAT_LR)
    log_acc = _test_accuracy_log(test)
    keras.utils.set_random_seed(seed)
    control.fit(x, y, epochs=qe, callbacks=[log_acc], **fit)
    float_finetuned = {"keras_test_acc": log_acc.values[-1],
                       "keras_test_acc_per_epoch": log_acc.values}

    # QAT overhead: float vs QAT fine-tuning epochs, interleaved.
    start = time.perf_counter()
    runs = {
        "float": compile_model(copy_float(model), steps, lr=QAT_LR),
        "qat": compile_model(quantize_model(model), steps, lr=QAT_LR),
    }
    timers = {key: _epoch_timer() for key in runs}
    for key, m in runs.items():  # Warm-up: tracing and the first epoch.
        m.fit(x, y, epochs=1, **fit)
    # Rounds of one epoch each, the order swapped every round.
    interleave({key: lambda _, key=key: runs[key].fit(
        x, y, epochs=1, callbacks=[timers[key]], **fit) for key in runs}, qe)
    timing = {f"{key}_s_per_epoch": median(t.seconds) for key, t in timers.items()}
    timing["qat_over_float"] = timing["qat_s_per_epoch"] / timing["float_s_per_epoch"]
    timing.update({f"{key}_s_per_round": [round(s, 4) for s in t.seconds]
                   for key, t in timers.items()})
    seconds["timing"] = round(time.perf_counter() - start, 1)

    log(f"  seed {seed}: float {100 * float_acc:.1f}; int8 "
        + ", ".join(f"{k} {100 * v['litert_test_acc']:.1f}" for k, v in paths.items()
                    if k != "float32")
        + f"; QAT/float s per epoch {timing['qat_over_float']:.2f}x "
        f"({sum(seconds.values()):.0f} s)")
    return {
        "seed": seed,
        "float_keras_test_acc": float_acc,
        "float_finetuned": float_finetuned,
        "params": int(model.count_params()),
        "paths": paths,
        "timing": timing,
        "seconds": seconds,
    }


def _entry(values):
    return {"median": median(values), "per_seed": values}


def aggregate_int8(seeds):
    summary = {
        "float_keras_test_acc": _entry([s["float_keras_test_acc"] for s in seeds]),
        "float_finetuned_keras_test_acc": _entry(
            [s["float_finetuned"]["keras_test_acc"] for s in seeds]),
    }
    for key, _ in INT8_PATHS:
        rows = [s["paths"][key] for s in seeds]
        summary[key] = {
            field: _entry([r[field] for r in rows])
            for field in ("litert_test_acc", "size_bytes", "keras_test_acc",
                          "agreement", "abs_gap_points")
            if field in rows[0]
        }
        summary[key]["drop_vs_float_keras_points"] = _entry(
            [100 * (s["float_keras_test_acc"] - s["paths"][key]["litert_test_acc"])
             for s in seeds])
    summary["timing"] = {
        key: _entry([s["timing"][key] for s in seeds])
        for key in ("float_s_per_epoch", "qat_s_per_epoch", "qat_over_float")
    }
    return summary


def run_lowbit_seed(name, settings, seed, data, log):
    import keras

    (x, y), test = data
    steps = -(-len(x) // BATCH_SIZE)
    epochs = settings["lowbit_epochs"]
    acc, seconds, params = {}, {}, {}
    for model_key, _ in LOWBIT_MODELS:
        acc[model_key], seconds[model_key] = {}, {}
        for variant, _ in LOWBIT_VARIANTS:
            model = compile_model(build_lowbit(name, model_key, variant, seed), steps,
                                  epochs=epochs)
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
            seconds[model_key][variant] = round(time.perf_counter() - start, 1)
            acc[model_key][variant] = accuracy(model, test)
            params[model_key] = int(model.count_params())
    log(f"  seed {seed}: " + "; ".join(
        f"{m} " + ", ".join(f"{v} {100 * a:.1f}" for v, a in acc[m].items())
        for m in acc))
    return {"seed": seed, "test_acc": acc, "params": params, "fit_seconds": seconds}


def aggregate_lowbit(seeds):
    return {
        m: {v: _entry([s["test_acc"][m][v] for s in seeds]) for v, _ in LOWBIT_VARIANTS}
        for m, _ in LOWBIT_MODELS
    }
