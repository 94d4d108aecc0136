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
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402  (benchmarks/ is on sys.path)
from _harness import log, markdown_table, median  # noqa: E402
from _quant_models import BATCH_SIZE, LR, QAT_LR, TASKS, load  # noqa: E402
from _quant_sections import (  # noqa: E402
    CALIBRATION_SAMPLES, INT8_PATHS, LOWBIT_MODELS, LOWBIT_VARIANTS, PERCENTILE,
    aggregate_int8, aggregate_lowbit, run_int8_seed, run_lowbit_seed)

QUICK_EPOCHS = {"epochs": 2, "qat_epochs": 1, "lowbit_epochs": 1}
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
    parser = _harness.arguments(
        "quantization",
        "Int8 PTQ (converter vs. our calibration) vs. QAT in LiteRT, and "
        "low-bit weights (DoReFa, ternary, binary), on MNIST-1D and digits.",
        quick="1 seed, a few epochs", seeds=3, tasks=TASKS)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS,
                        default=list(SECTIONS),
                        help="int8 (section A) and/or lowbit (section B); default both")
    return _harness.parse(parser, argv)


def task_settings(name, quick):
    settings = dict(TASKS[name])
    settings["blocks"] = [list(b) for b in settings["blocks"]]
    if quick:
        settings.update(QUICK_EPOCHS)
    qe = settings["qat_epochs"]
    settings["qat_freeze_batchnorm"] = max(0, qe - 2)
    settings["qat_freeze_ranges"] = max(0, qe - 1)
    return settings

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
    header = ["path", "LiteRT test acc %", "Keras test acc %",
              "abs(Keras - LiteRT), points", "Keras/LiteRT top-1 agreement %",
              "file bytes"]
    rows = []
    for key, label in INT8_PATHS:
        row = s[key]

        def get(field, fmt=pct):
            return cell(row[field], fmt) if field in row else "-"

        rows.append([
            label, get("litert_test_acc"), get("keras_test_acc"),
            get("abs_gap_points", lambda v: f"{v:.1f}"), get("agreement"),
            f"{int(row['size_bytes']['median']):,}",
        ])
    return markdown_table(header, rows)


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
    rows = [[label] + [cell(task_results[t]["lowbit"]["summary"][m][variant])
                       for t, m, _ in columns]
            for variant, label in LOWBIT_VARIANTS]
    return markdown_table(["weights (middle layers)"] + [c[2] for c in columns], rows)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = _harness.machine_info("ai-edge-litert")

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

    settings = {
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
    }
    return _harness.write_report(args, _harness.report(
        args, argv, settings, info, elapsed, context=CONTEXT, tasks=task_results))


if __name__ == "__main__":
    main()
