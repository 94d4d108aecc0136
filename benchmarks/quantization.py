"""Int8 export paths and low-bit weights, side by side, on MNIST-1D and digits.

Two tasks small enough for a CPU: MNIST-1D (`keras_compress.datasets.
load_mnist1d`, 4000 train / 1000 test sequences of length 40) and digits
(`keras_compress.datasets.load_digits`, scikit-learn's 8x8 digits, 1437
train / 360 test). Every number is a test accuracy measured once, after the
last epoch (no model selection on the test set); medians over seeds.

Section A, int8 paths. A small CNN with three Conv-BN-ReLU blocks
(MNIST-1D: Conv1D 32/5, MaxPool 2, Conv1D 64/3, MaxPool 2, Conv1D 64/3;
digits: the same with Conv2D 3x3 and 2x2 pools), Flatten, Dense(10) logits,
trained in float, then exported to LiteRT (TFLite) five ways:

1. float32: `to_tflite(model)`;
2. int8 PTQ, converter min/max: `to_tflite(model, quantize="int8",
   representative_data=x_train[:500], calibration_samples=500)`;
3. int8 PTQ, our calibration: `q = quantize_model(model)`, `calibrate(q,
   x_train[:500], method=...)` with `"minmax"`, `"percentile"` (99.99) and
   `"kl"`, then `to_tflite(q, quantize="int8")` (no representative data:
   the ranges come from the model);
4. int8 QAT: `q = quantize_model(model)` fine-tuned for a few epochs
   (Adam 5e-4, constant) with `QATSchedule(freeze_batchnorm=F-2,
   freeze_ranges=F-1)`, then `to_tflite(q, quantize="int8")`;
5. int8 QAT with the batch norms frozen from the start
   (`QATSchedule(freeze_batchnorm=0, freeze_ranges=F-1)`), otherwise as 4.

Each file runs in LiteRT (`LiteRTModel`, XNNPACK) on the test set: its
accuracy, its size and, for the `quantize_model` paths, the accuracy of the
Keras (simulated) model and the top-1 agreement between Keras and LiteRT.
For QAT the Keras test accuracy is also logged after every fine-tuning
epoch. The QAT training-time overhead is measured on copies of the trained
float model: one epoch of float fine-tuning and one of QAT fine-tuning (same
optimizer, same batches), alternated for F rounds (order swapped every
round) after one untimed warm-up epoch each; seconds per epoch are medians
over the rounds, timed from `on_epoch_begin` to `on_epoch_end`.

Section B, low-bit weights (Keras simulated accuracy, no export). An MLP
(Dense 256 - 256 - 256, each + BN + ReLU, Dense 10) and a CNN (the blocks of
section A; MNIST-1D as (40, 1, 1) images with (k, 1) kernels, so that every
variant, binary included, uses the same Conv2D layers) trained from scratch
for the same epochs with kernels: float, 4-bit DoReFa, 2-bit DoReFa,
ternary (TWN, one threshold per layer) and binary (`BinaryDense` /
`BinaryConv2D`, `scale="channel"`, latent weights clipped to [-1, 1]). The
first and last layers of the quantized variants keep int8 weights (the
`Quant*` layers' default kernel quantizer), as is customary; activations
stay float (weights-only quantization, as in BinaryConnect).

BinaryConnect's MNIST test error (1.29%, Courbariaux et al., NeurIPS 2015,
a 3x1024 MLP on 28x28 MNIST) is printed as context only: different data.

Results (per-seed values and medians) go to
`benchmarks/results/quantization.json`; markdown tables are printed.

Usage:

    python benchmarks/quantization.py              # defaults: 3 seeds, ~10 min on 2 shared cores
    python benchmarks/quantization.py --quick      # smoke test, about a minute, temp output
    python benchmarks/quantization.py --seeds 1 --tasks digits --sections int8
"""

import argparse
import os
import shlex
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _harness import machine_info, median, write_results  # noqa: E402  (benchmarks/ is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "quantization.json")

BATCH_SIZE = 64
LR = 3e-3  # Adam, cosine decay to 0 over each from-scratch run
QAT_LR = 5e-4  # Adam, constant, for QAT and the float fine-tuning it is timed against
CALIBRATION_SAMPLES = 500
PERCENTILE = 99.99
HIDDEN_UNITS = 256

# Per task: the three conv blocks (filters, kernel) of both sections' CNN,
# the float epochs (section A), the QAT epochs F and the epochs of every
# section B model (from scratch).
TASKS = {
    "mnist1d": {
        "title": "MNIST-1D",
        "blocks": ((32, 5), (64, 3), (64, 3)),
        "epochs": 30,
        "qat_epochs": 5,
        "lowbit_epochs": 20,
    },
    "digits": {
        "title": "digits (8x8)",
        "blocks": ((32, 3), (64, 3), (64, 3)),
        "epochs": 30,
        "qat_epochs": 5,
        "lowbit_epochs": 30,
    },
}
QUICK_EPOCHS = {"epochs": 2, "qat_epochs": 1, "lowbit_epochs": 1}

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
SECTIONS = ("int8", "lowbit")

CONTEXT = {
    "binaryconnect": {
        "source": "Courbariaux et al., BinaryConnect: Training Deep Neural "
                  "Networks with binary weights during propagations, NeurIPS "
                  "2015, Table 2",
        "model": "MLP 3x1024 with BatchNorm on permutation-invariant MNIST "
                 "(28x28), deterministic binarization",
        "test_error": 0.0129,
        "note": "context only: a different data set and model",
    },
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Int8 PTQ (converter vs. our calibration) vs. QAT in "
        "LiteRT, and low-bit weights (DoReFa, ternary, binary), on MNIST-1D "
        "and digits.",
    )
    parser.add_argument("--seeds", type=int, default=3,
                        help="number of seeds (0..N-1; default 3)")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS),
                        default=list(TASKS), help="tasks to run (default: all)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS,
                        default=list(SECTIONS),
                        help="int8 (section A) and/or lowbit (section B); default both")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 seed, a few epochs; writes to a "
                        "temporary folder unless --output is given")
    parser.add_argument("--output", default=None,
                        help=f"JSON output path (default {os.path.relpath(DEFAULT_OUTPUT)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    if args.seeds < 1:
        parser.error(f"--seeds must be a positive int, got {args.seeds}")
    if args.output is None:
        if args.quick:
            import tempfile

            args.output = os.path.join(tempfile.gettempdir(), "quantization_quick.json")
        else:
            args.output = DEFAULT_OUTPUT
    return args


def task_settings(name, quick):
    settings = dict(TASKS[name])
    settings["blocks"] = [list(b) for b in settings["blocks"]]
    if quick:
        settings.update(QUICK_EPOCHS)
    qe = settings["qat_epochs"]
    settings["qat_freeze_batchnorm"] = max(0, qe - 2)
    settings["qat_freeze_ranges"] = max(0, qe - 1)
    return settings


def load(name):
    from keras_compress.datasets import load_digits, load_mnist1d

    return load_mnist1d() if name == "mnist1d" else load_digits()


# Models ----------------------------------------------------------------------


def build_cnn(name, seed):
    """Section A's float CNN: three Conv-BN-ReLU blocks, Flatten, Dense(10)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if name == "mnist1d":
        inputs, conv, pool = keras.Input((40, 1)), layers.Conv1D, layers.MaxPooling1D
    else:
        inputs, conv, pool = keras.Input((8, 8, 1)), layers.Conv2D, layers.MaxPooling2D
    x = inputs
    blocks = TASKS[name]["blocks"]
    for i, (filters, kernel) in enumerate(blocks):
        x = conv(filters, kernel, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < len(blocks) - 1:
            x = pool(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"{name}_cnn")


def _kernel_layer(kind, variant, position, units, kernel=None, name=None):
    """A Dense (kind "dense") or Conv2D layer for a section B variant.

    `position` is "first", "middle" or "last"; the first and last layers of
    quantized variants keep int8 weights.
    """
    from keras import layers

    from keras_compress.layers import BinaryConv2D, BinaryDense, QuantConv2D, QuantDense
    from keras_compress.quantizers import DoReFa, Ternary

    dense = kind == "dense"
    args = (units,) if dense else (units, kernel)
    kwargs = {"name": name} if dense else {"name": name, "padding": "same"}
    if position != "last":
        kwargs["use_bias"] = False  # BatchNorm follows
    if variant == "float":
        return (layers.Dense if dense else layers.Conv2D)(*args, **kwargs)
    if position != "middle":
        quantizer = "default"  # int8 weights
    elif variant == "binary":
        return (BinaryDense if dense else BinaryConv2D)(*args, scale="channel", **kwargs)
    else:
        quantizer = {"dorefa4": DoReFa(4), "dorefa2": DoReFa(2),
                     "ternary": Ternary()}[variant]
    return (QuantDense if dense else QuantConv2D)(*args, kernel_quantizer=quantizer, **kwargs)


def build_lowbit(name, model, variant, seed):
    """Section B's MLP or CNN with `variant` kernels."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if name == "mnist1d":
        inputs = keras.Input((40, 1))
    else:
        inputs = keras.Input((8, 8, 1))
    x = inputs
    if model == "mlp":
        x = layers.Flatten(name="flatten_in")(x)
        for i in range(3):
            position = "first" if i == 0 else "middle"
            x = _kernel_layer("dense", variant, position, HIDDEN_UNITS, name=f"dense{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
    else:
        one_d = name == "mnist1d"
        if one_d:  # (40, 1) sequences as (40, 1, 1) images, (k, 1) kernels
            x = layers.Reshape((40, 1, 1), name="as_image")(x)
        blocks = TASKS[name]["blocks"]
        for i, (filters, kernel) in enumerate(blocks):
            position = "first" if i == 0 else "middle"
            size = (kernel, 1) if one_d else (kernel, kernel)
            x = _kernel_layer("conv", variant, position, filters, size, name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
            if i < len(blocks) - 1:
                x = layers.MaxPooling2D((2, 1) if one_d else (2, 2), name=f"pool{i}")(x)
        x = layers.Flatten(name="flatten")(x)
    outputs = _kernel_layer("dense", variant, "last", 10, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"{name}_{model}_{variant}")


def compile_model(model, steps, lr=LR, epochs=None):
    """Adam; a cosine decay to 0 over `epochs` if given, else a constant lr."""
    import keras

    if epochs is not None:
        lr = keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps))
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # One compiled call per epoch: the models are tiny and Python's
        # per-step overhead would dominate (and blur the QAT overhead).
        steps_per_execution=steps,
    )
    return model


def predictions(model, x):
    return np.asarray(model(x, training=False)).argmax(axis=1)


def accuracy(model, data):
    x, y = data
    return float((predictions(model, x) == y).mean())


def copy_float(model):
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def _test_accuracy_log(test):
    import keras

    class TestAccuracy(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_epoch_end(self, epoch, logs=None):
            self.values.append(accuracy(self.model, test))

    return TestAccuracy()


# Section A -------------------------------------------------------------------


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
    for r in range(qe):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        for key in order:
            runs[key].fit(x, y, epochs=1, callbacks=[timers[key]], **fit)
    timing = {f"{key}_s_per_epoch": float(np.median(t.seconds)) for key, t in timers.items()}
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


# Section B -------------------------------------------------------------------


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


# Printing --------------------------------------------------------------------


def pct(value):
    return f"{100 * value:.1f}"


def cell(entry, fmt=pct):
    text = fmt(entry["median"])
    if len(entry["per_seed"]) > 1:
        text += " (" + " / ".join(fmt(v) for v in entry["per_seed"]) + ")"
    return text


def int8_table(task):
    s = task["int8"]["summary"]
    lines = [
        "| path | LiteRT test acc % | Keras test acc % | abs(Keras - LiteRT), points "
        "| Keras/LiteRT top-1 agreement % | file bytes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in INT8_PATHS:
        row = s[key]

        def get(field, fmt=pct):
            return cell(row[field], fmt) if field in row else "-"

        lines.append("| " + " | ".join([
            label, get("litert_test_acc"), get("keras_test_acc"),
            get("abs_gap_points", lambda v: f"{v:.1f}"), get("agreement"),
            f"{int(row['size_bytes']['median']):,}",
        ]) + " |")
    return "\n".join(lines)


def qat_curve(task):
    lines = []
    seeds = task["int8"]["seeds"]
    for key, label in INT8_PATHS[-2:] + (("float_finetuned", "float32 fine-tuned alike (control)"),):
        per_seed = [(s["paths"] if key in s["paths"] else s)[key]["keras_test_acc_per_epoch"]
                    for s in seeds]
        curve = [median(v) for v in zip(*per_seed)]
        lines.append(f"  {label}: " + " -> ".join(pct(v) for v in curve))
    return "\n".join(lines)


def lowbit_table(task_results):
    columns = [(t, m, f"{task['title']} {label}")
               for t, task in task_results.items() if "lowbit" in task
               for m, label in LOWBIT_MODELS]
    lines = ["| weights (middle layers) | " + " | ".join(c[2] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for variant, label in LOWBIT_VARIANTS:
        lines.append(f"| {label} | " + " | ".join(
            cell(task_results[t]["lowbit"]["summary"][m][variant]) for t, m, _ in columns
        ) + " |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = machine_info("ai-edge-litert")

    def log(text):
        print(text, flush=True)

    import logging


    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    task_results = {}
    for k, name in enumerate(args.tasks, start=1):
        settings = task_settings(name, args.quick)
        data = load(name)
        task = task_results[name] = {
            "title": settings["title"],
            "settings": settings,
            "train_samples": int(len(data[0][0])),
            "test_samples": int(len(data[1][0])),
        }
        if "int8" in args.sections:
            log(f"[{k}/{len(args.tasks)}] {settings['title']}, int8 paths: "
                f"{settings['epochs']} float epochs, {settings['qat_epochs']} QAT "
                f"epochs, {args.seeds} seed(s)")
            seeds = [run_int8_seed(name, settings, seed, data, log)
                     for seed in range(args.seeds)]
            task["int8"] = {"summary": aggregate_int8(seeds), "seeds": seeds}
        if "lowbit" in args.sections:
            log(f"[{k}/{len(args.tasks)}] {settings['title']}, low-bit weights: "
                f"{settings['lowbit_epochs']} epochs from scratch, {args.seeds} seed(s)")
            seeds = [run_lowbit_seed(name, settings, seed, data, log)
                     for seed in range(args.seeds)]
            task["lowbit"] = {"summary": aggregate_lowbit(seeds), "seeds": seeds}

    elapsed = time.perf_counter() - start
    for task in task_results.values():
        if "int8" not in task:
            continue
        s = task["int8"]["summary"]
        log(f"\nA. {task['title']}: int8 paths in LiteRT (XNNPACK), "
            f"{task['test_samples']} test samples, medians over seeds (per seed in brackets); "
            f"float Keras test acc {cell(s['float_keras_test_acc'])}%\n")
        log(int8_table(task))
        qat = s["qat"]
        log(f"\nQAT fidelity (Keras simulated vs int8 LiteRT): |acc gap| "
            f"{qat['abs_gap_points']['median']:.2f} points, top-1 agreement "
            f"{pct(qat['agreement']['median'])}% (BN frozen from the start: "
            f"{s['qat_bn_frozen']['abs_gap_points']['median']:.2f} points, "
            f"{pct(s['qat_bn_frozen']['agreement']['median'])}%)")
        t = s["timing"]
        log(f"QAT training-time overhead: {t['qat_s_per_epoch']['median']:.3f} s vs "
            f"{t['float_s_per_epoch']['median']:.3f} s per epoch of float fine-tuning, "
            f"{t['qat_over_float']['median']:.2f}x (per seed: "
            + " / ".join(f"{v:.2f}x" for v in t["qat_over_float"]["per_seed"]) + ")")
        log(f"Control, the float CNN fine-tuned with the QAT optimizer for the same "
            f"epochs: Keras test acc {cell(s['float_finetuned_keras_test_acc'])}%")
        log("Keras test acc % after each fine-tuning epoch (medians over seeds):")
        log(qat_curve(task))
    if any("lowbit" in t for t in task_results.values()):
        log("\nB. Low-bit weights, Keras (simulated) test acc %, trained from "
            "scratch, medians over seeds (per seed in brackets)\n")
        log(lowbit_table(task_results))
        log("\nQuantized variants: the middle layers get the listed weights; the "
            "first and last layers keep int8 weights; activations stay float.")
        bc = CONTEXT["binaryconnect"]
        log(f"Context only (different data): BinaryConnect's MNIST test error "
            f"{pct(bc['test_error'])}% ({bc['model']}).")

    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/quantization.py", *given])
    result = {
        "benchmark": "quantization",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": {
            "seeds": args.seeds,
            "quick": args.quick,
            "sections": list(args.sections),
            "batch_size": BATCH_SIZE,
            "optimizer": f"Adam, lr {LR} with CosineDecay to 0 over each "
                         "from-scratch run (float CNN, low-bit models)",
            "qat": f"quantize_model(float CNN), Adam lr {QAT_LR} constant, "
                   "QATSchedule(freeze_batchnorm=qat_freeze_batchnorm, "
                   "freeze_ranges=qat_freeze_ranges) (epochs, per task settings); "
                   "qat_bn_frozen: freeze_batchnorm=0",
            "calibration_samples": CALIBRATION_SAMPLES,
            "calibration": f"x_train[:{CALIBRATION_SAMPLES}] for the converter "
                           "(representative_data, calibration_samples="
                           f"{CALIBRATION_SAMPLES}) and for calibrate(); "
                           f"percentile {PERCENTILE}",
            "steps_per_execution": "one compiled call per epoch (all fits)",
            "timing": "QAT overhead: copies of the trained float CNN (float, "
                      "quantize_model) fine-tuned with the QAT optimizer; one "
                      "untimed warm-up epoch each, then qat_epochs rounds of one "
                      "epoch each, order swapped every round; medians of "
                      "on_epoch_begin..on_epoch_end seconds",
            "lowbit": "weights only; middle layers with the variant's kernels "
                      "(DoReFa(4), DoReFa(2), Ternary() per tensor, "
                      "BinaryDense/BinaryConv2D(scale='channel')); first and "
                      "last layers QuantDense/QuantConv2D with int8 kernels "
                      "(kernel_quantizer='default'); float variant: plain Keras "
                      "layers; MNIST-1D CNN as (40, 1, 1) images with (k, 1) "
                      "Conv2D kernels; activations float",
            "accuracy": "test accuracy after the last epoch of each run",
            "agreement": "fraction of test samples whose Keras (simulated) and "
                         "LiteRT argmax agree",
        },
        "context": CONTEXT,
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "tasks": task_results,
    }
    write_results(args.output, result)
    log(f"\nWrote {args.output} ({elapsed:.0f} s)")
    return result


if __name__ == "__main__":
    main()
