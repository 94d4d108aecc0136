"""Early-exit networks (BranchyNet-style) on two small CNNs.

A backbone of three conv blocks (conv without bias, BatchNormalization,
ReLU; then global average pooling and Dense(10) logits) gets two early
exits, after block 0 and after block 1 (`add_early_exits`, heads
`EarlyExitHead(hidden_units=64)`: global average pooling, Dense(64, relu),
Dense(10)). Per task and seed, three models start from the same
initialization and train with the same recipe (SGD momentum 0.9, batch 64,
cosine decay of the learning rate from 0.1 to 0 over the run):

- baseline: the backbone alone (the full model);
- joint: the multi-exit model on the sum of the three exits' cross-entropies
  (`compile_multi_exit`, exit weights 1, 1, 1);
- joint + KD: the same plus distillation from the final exit to the early
  ones (temperature 3, alpha 0.5).

Each multi-exit model is swept over max-probability thresholds on the test
set (`threshold_sweep`); the operating point is the threshold with the
largest MAC reduction whose accuracy is within 1 point of the baseline's
(picked on the test set: there is no validation split, so it is an
optimistic choice, as in the sweep itself). MACs are exact per sample
(`keras_compress.analysis.summarize` on the stage models: the backbone up
to the exit plus every head evaluated), and the reduction is the
backbone's MACs over the mean MACs per sample.

Latency: the multi-exit model is exported as a chain of float32 stage
models with batch size 1 (`export_early_exit`) and run by
`EarlyExitRunner.predict_one` on every test sample (its decisions are those
of the Keras model); the baseline is its own float32 TFLite model (batch 1)
run on the same samples through the same interpreter calls (set input,
invoke, read output, argmax). Both run in LiteRT with XNNPACK (LiteRT's
default threads); the full model, the chain and the chain with every
sample sent to the final exit take turns on each sample (order
alternating), so they see the same machine load; a repeat's figure is the
mean per sample over the test set, and the median over repeats is
reported. "chain, every sample to the final exit" is the runner with
threshold 1.0 (every stage runs): the cost of staging itself.

Context (not a claim about this code): BranchyNet (Teerapittayanon et al.,
ICPR 2016) reports 5.4x faster inference on MNIST with a LeNet whose first
exit takes 94% of the samples.

`quick=True` is a smoke test: 2 epochs, 4 thresholds, 100 samples timed,
and only the "joint" variant.
"""

import os
import tempfile
import time

import numpy as np

import _early_exit_tables  # noqa: E402  (benchmarks/ is on sys.path)
from _harness import interleaved_timing  # noqa: E402

BATCH_SIZE = 64
LR = 0.1
MOMENTUM = 0.9
BN_MOMENTUM = 0.9
EXIT_POINTS = ("block0", "block1")
HEAD = {"hidden_units": 64}
EXIT_WEIGHTS = (1.0, 1.0, 1.0)
DISTILLATION = {"temperature": 3.0, "alpha": 0.5}
MAX_DROP = 0.01
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99,
              0.995, 0.999)
QUICK_THRESHOLDS = (0.5, 0.8, 0.9, 0.99)
REPEATS = 7
QUICK_REPEATS = 2
QUICK_TIMING_SAMPLES = 100

TASKS = {
    "mnist1d": {
        "title": "MNIST-1D 1-D CNN",
        "blocks": ((32, 5, 1), (64, 3, 2), (64, 3, 2)),
        "epochs": 30,
    },
    "digits": {
        "title": "digits 2-D CNN (8x8)",
        "blocks": ((32, 3, 1), (64, 3, 2), (64, 3, 1)),
        "epochs": 30,
    },
}
QUICK_EPOCHS = 2

VARIANTS = (
    ("joint", "joint (sum of exit losses)", None),
    ("joint_kd", "joint + KD (T=3, alpha=0.5)", DISTILLATION),
)

PAPER = {
    "source": "Teerapittayanon, McDanel and Kung, BranchyNet: Fast Inference "
              "via Early Exiting from Deep Neural Networks, ICPR 2016",
    "model": "LeNet on MNIST",
    "speedup": 5.4,
    "first_exit_fraction": 0.94,
}


def _load(name):
    from keras_compress.datasets import load_digits, load_mnist1d

    return load_mnist1d() if name == "mnist1d" else load_digits()


def _build(name, seed):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    blocks = TASKS[name]["blocks"]
    if name == "mnist1d":
        inputs, conv, pool = keras.Input((40, 1)), layers.Conv1D, layers.GlobalAveragePooling1D
    else:
        inputs, conv, pool = keras.Input((8, 8, 1)), layers.Conv2D, layers.GlobalAveragePooling2D
    x = inputs
    for i, (filters, kernel, stride) in enumerate(blocks):
        x = conv(filters, kernel, strides=stride, padding="same", use_bias=False,
                 name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"block{i}")(x)
    x = pool(name="pool")(x)
    return keras.Model(inputs, layers.Dense(10, name="out")(x), name=f"{name}_cnn")


def _optimizer(epochs, steps):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(LR, max(1, epochs * steps))
    return keras.optimizers.SGD(schedule, momentum=MOMENTUM)


def _train_baseline(name, seed, data, epochs):
    import keras

    (x, y), (x_test, y_test) = data
    steps = -(-len(x) // BATCH_SIZE)
    model = _build(name, seed)
    model.compile(optimizer=_optimizer(epochs, steps),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps)
    keras.utils.set_random_seed(seed)
    model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    logits = np.asarray(model(x_test, training=False))
    return model, float(np.mean(logits.argmax(-1) == y_test))


def _train_multi_exit(name, seed, data, epochs, distillation):
    import keras

    from keras_compress.early_exit import add_early_exits, compile_multi_exit

    (x, y), _ = data
    steps = -(-len(x) // BATCH_SIZE)
    model = add_early_exits(_build(name, seed), list(EXIT_POINTS), head=dict(HEAD))
    trainer = compile_multi_exit(model, _optimizer(epochs, steps),
                                 exit_weights=list(EXIT_WEIGHTS),
                                 distillation=distillation, steps_per_execution=steps)
    keras.utils.set_random_seed(seed)
    trainer.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    return model


def _operating_point(sweep, reference_accuracy):
    rows = [r for r in sweep.rows if r["accuracy"] >= reference_accuracy - MAX_DROP - 1e-12]
    if not rows:
        return None
    return max(rows, key=lambda r: (r["mac_reduction"], r["accuracy"]))


def _latency(baseline_bytes, folder, threshold, x, repeats):
    """Median over repeats of the mean microseconds per sample.

    The full model, the chain and the chain with every sample sent to the
    final exit run one after the other on each sample (order alternating),
    so all three see the same machine load.
    """
    from ai_edge_litert.interpreter import Interpreter

    from keras_compress.runtime import EarlyExitRunner

    full = Interpreter(model_content=baseline_bytes)
    full.allocate_tensors()
    inp = full.get_input_details()[0]["index"]
    out = full.get_output_details()[0]["index"]

    def full_one(sample):
        full.set_tensor(inp, sample[None])
        full.invoke()
        return int(full.get_tensor(out).argmax())

    runs = {
        "full": full_one,
        "chain": EarlyExitRunner(folder, threshold=threshold).predict_one,
        "chain_all_final": EarlyExitRunner(folder, threshold=1.0).predict_one,
    }
    x = np.asarray(x, dtype="float32")
    timings = interleaved_timing({key: lambda i, fn=fn: fn(x[i]) for key, fn in runs.items()},
                                 repeats, warmup=20, rounds=len(x), reverse=True)
    return {key: t["median_ms"] * 1e3 for key, t in timings.items()}


def _run_seed(name, settings, seed, data, quick, log):
    from keras_compress.analysis import summarize
    from keras_compress.early_exit import (
        early_exit_predict, exit_macs, export_early_exit, threshold_sweep)
    from keras_compress.export import to_tflite
    from keras_compress.runtime import EarlyExitRunner

    _, (x_test, y_test) = data
    epochs = settings["epochs"]
    thresholds = list(QUICK_THRESHOLDS if quick else THRESHOLDS)
    repeats = QUICK_REPEATS if quick else REPEATS
    timing_x = x_test[:QUICK_TIMING_SAMPLES] if quick else x_test
    start = time.perf_counter()

    baseline, baseline_acc = _train_baseline(name, seed, data, epochs)
    totals = summarize(baseline).totals
    baseline_bytes = to_tflite(baseline, batch_size=1)
    result = {
        "seed": seed,
        "baseline": {"test_acc": baseline_acc, "macs": int(totals.macs),
                     "params": int(totals.params)},
    }
    for key, _, distillation in _variants(quick):
        model = _train_multi_exit(name, seed, data, epochs, distillation)
        costs = exit_macs(model)
        sweep = threshold_sweep(model, x_test, y_test, thresholds)
        point = _operating_point(sweep, baseline_acc)
        threshold = point["threshold"] if point else thresholds[-1]
        with tempfile.TemporaryDirectory(prefix="early_exit_bench_") as folder:
            chain_dir = os.path.join(folder, "chain")
            export_early_exit(model, chain_dir, threshold=threshold, batch_size=1)
            runner = EarlyExitRunner(chain_dir)
            lite = runner.predict(x_test)
            keras_result = early_exit_predict(model, x_test, threshold)
            latency = _latency(baseline_bytes, chain_dir, threshold, timing_x, repeats)
        result[key] = {
            "exit_macs": costs["cumulative"],
            "head_macs": costs["head"][:-1],
            "model_macs": costs["model_total"],
            "exit_test_acc": sweep.exit_accuracies,
            "final_test_acc": sweep.full_accuracy,
            "sweep": sweep.rows,
            "operating_point": point,
            "latency_threshold": threshold,
            "litert_test_acc": lite.accuracy(y_test),
            "litert_same_exit": float(np.mean(lite.exits == keras_result.exits)),
            "litert_mean_macs": lite.mean_macs,
            "latency_us": latency,
            "speedup": latency["full"] / latency["chain"],
        }
        op = (f"t={point['threshold']:g}: acc {100 * point['accuracy']:.1f}%, "
              f"{point['mac_reduction']:.2f}x fewer MACs" if point else "no threshold within 1 pt")
        log(f"  seed {seed} {key}: exits acc "
            + "/".join(f"{100 * a:.1f}" for a in sweep.exit_accuracies)
            + f"; {op}; latency {latency['full']:.0f} -> {latency['chain']:.0f} us")
    result["seconds"] = round(time.perf_counter() - start, 1)
    log(f"  seed {seed}: baseline acc {100 * baseline_acc:.1f}% ({result['seconds']:.0f} s)")
    return result


def _variants(quick):
    """Quick runs train only the first variant (a smoke test)."""
    return VARIANTS[:1] if quick else VARIANTS


def _stat(values):
    kept = [v for v in values if v is not None]
    return {"median": float(np.median(kept)) if kept else None, "per_seed": list(values)}


def _stat_list(lists):
    """Element-wise median of equal-length lists (None entries skipped)."""
    kept = [v for v in lists if v is not None]
    median = [float(x) for x in np.median(np.asarray(kept), axis=0)] if kept else None
    return {"median": median, "per_seed": list(lists)}


def _aggregate(seeds, thresholds, quick):
    summary = {
        "baseline_test_acc": _stat([s["baseline"]["test_acc"] for s in seeds]),
        "baseline_macs": _stat([s["baseline"]["macs"] for s in seeds]),
        "baseline_params": _stat([s["baseline"]["params"] for s in seeds]),
    }
    for key, _, _ in _variants(quick):
        runs = [s[key] for s in seeds]
        points = [r["operating_point"] for r in runs]

        def at(field, points=points):
            return [p[field] if p else None for p in points]

        summary[key] = {
            "final_test_acc": _stat([r["final_test_acc"] for r in runs]),
            "exit_test_acc": _stat_list([r["exit_test_acc"] for r in runs]),
            "exit_macs": _stat_list([r["exit_macs"] for r in runs]),
            "model_macs": _stat([r["model_macs"] for r in runs]),
            "threshold": _stat(at("threshold")),
            "test_acc": _stat(at("accuracy")),
            "mean_macs": _stat(at("mean_macs")),
            "mac_reduction": _stat(at("mac_reduction")),
            "exit_fractions": _stat_list(at("exit_fractions")),
            "seeds_with_point": sum(p is not None for p in points),
            "litert_test_acc": _stat([r["litert_test_acc"] for r in runs]),
            "litert_same_exit": _stat([r["litert_same_exit"] for r in runs]),
            "latency_full_us": _stat([r["latency_us"]["full"] for r in runs]),
            "latency_chain_us": _stat([r["latency_us"]["chain"] for r in runs]),
            "latency_chain_all_final_us": _stat(
                [r["latency_us"]["chain_all_final"] for r in runs]),
            "speedup": _stat([r["speedup"] for r in runs]),
            "sweep": [
                {
                    "threshold": t,
                    "test_acc": _stat([r["sweep"][i]["accuracy"] for r in runs]),
                    "mac_reduction": _stat([r["sweep"][i]["mac_reduction"] for r in runs]),
                    "exit_fractions": _stat_list(
                        [r["sweep"][i]["exit_fractions"] for r in runs]),
                }
                for i, t in enumerate(thresholds)
            ],
        }
    return summary


def run(tasks, seeds, quick, log):
    """Runs the benchmark; returns a JSON-serializable dict."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.perf_counter()
    thresholds = list(QUICK_THRESHOLDS if quick else THRESHOLDS)
    results = {}
    for k, name in enumerate(tasks, start=1):
        if name not in TASKS:
            raise ValueError(f"Expected tasks among {sorted(TASKS)}. Received: {name!r}")
        settings = {"title": TASKS[name]["title"],
                    "blocks": [list(b) for b in TASKS[name]["blocks"]],
                    "epochs": QUICK_EPOCHS if quick else TASKS[name]["epochs"]}
        log(f"[{k}/{len(tasks)}] {settings['title']}: E={settings['epochs']}, "
            f"{seeds} seed(s)")
        data = _load(name)
        per_seed = [_run_seed(name, settings, seed, data, quick, log) for seed in range(seeds)]
        results[name] = {
            "title": settings["title"],
            "settings": settings,
            "train_samples": int(len(data[0][0])),
            "test_samples": int(len(data[1][0])),
            "summary": _aggregate(per_seed, thresholds, quick),
            "seeds": per_seed,
        }
    return {
        "benchmark": "early_exit",
        "settings": {
            "seeds": seeds,
            "quick": quick,
            "batch_size": BATCH_SIZE,
            "optimizer": f"SGD(momentum={MOMENTUM}), CosineDecay from {LR} to 0",
            "batchnorm_momentum": BN_MOMENTUM,
            "exit_points": list(EXIT_POINTS),
            "head": dict(HEAD),
            "exit_weights": list(EXIT_WEIGHTS),
            "distillation": dict(DISTILLATION),
            "variants": [key for key, _, _ in _variants(quick)],
            "criterion": "max_prob",
            "thresholds": thresholds,
            "operating_point": f"largest MAC reduction with test accuracy >= "
                               f"baseline - {MAX_DROP} (picked on the test set)",
            "macs": "summarize() of the stage models, per sample; reduction = "
                    "backbone MACs / mean MACs",
            "latency": "LiteRT float32, batch 1, XNNPACK; mean per sample over the "
                       f"test set ({QUICK_TIMING_SAMPLES} samples if quick), median of "
                       f"{QUICK_REPEATS if quick else REPEATS} interleaved repeats",
        },
        "paper": PAPER,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "tasks": results,
    }


def tables(result):
    """Markdown tables and summary lines from `run()`'s dict."""
    return _early_exit_tables.tables(result, VARIANTS)
