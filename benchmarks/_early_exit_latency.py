"""Early exits on the device: measured latency of the single file.

Per task and seed, a plain backbone and the same backbone with two early
exits (`add_early_exits` with its default heads, `EarlyExitHead(grid=4)`;
joint training on the sum of the exit losses with distillation from the
final exit, T=3, alpha=0.5, the better recipe of the `early_exit` section)
train from the same initialization with the same recipe (SGD momentum 0.9,
batch 64, cosine decay from 0.1) on the training set minus a validation
split. The threshold is picked on the
validation split (never the test set): the largest MAC reduction whose
validation accuracy is within 1 point of the plain model's. (The test
sets then lost 0.9-1.3 points on MNIST-1D; a half-point margin on
validation, tried once, cost digits most of its speedup: 1.3-1.5x in
LiteRT float32.)

At that threshold three artifacts are exported, each as float32 and as full
int8 (calibrated on 200 training samples), batch size 1:

- plain: the backbone (`to_tflite`);
- chain: one file per stage driven from Python (`export_early_exit`,
  `EarlyExitRunner.predict_one`; in TFLM the same loop over `MicroModel`s);
- single file: `export_early_exit_file`, which decides by itself.

Each runs in LiteRT (XNNPACK, 1 thread) and in TensorFlow Lite Micro (the
pip interpreter: host code, reference kernels). Latency is the time of one
sample's call (set the input, invoke; the chain's Python decisions
included), the three artifacts taking turns on every sample; a repeat's
figure is the mean over the timed samples, and the median over repeats is
reported, then the median over seeds. The speedup is plain / single file.
Accuracy is top-1 on the test set of each artifact in its runtime.

`quick=True` is a smoke test: 1 epoch, 30 timed samples, 1 repeat.
"""

import os
import tempfile
import time

import numpy as np

from _harness import interleaved_timing  # noqa: E402
from _harness import markdown_table  # noqa: E402
from _harness import median  # noqa: E402

BATCH_SIZE = 64
LR = 0.1
MOMENTUM = 0.9
HEAD = None  # add_early_exits's default head
DISTILLATION = {"temperature": 3.0, "alpha": 0.5}
MAX_DROP = 0.01
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
FORMATS = (None, "int8")
REPEATS = 5
TIMED = {"litert": 200, "micro": 60}
QUICK_TIMED = 30

TASKS = {
    "digits": {
        "title": "digits 32x32, MobileNet-style CNN",
        "epochs": 15,
        "validation": 287,
        "exit_points": ("block1", "block3"),
    },
    "mnist1d": {
        "title": "MNIST-1D, 1-D CNN",
        "epochs": 20,
        "validation": 800,
        "exit_points": ("block0", "block1"),
    },
}


def _load(name):
    from keras_compress.datasets import load_digits, load_mnist1d

    return load_mnist1d() if name == "mnist1d" else load_digits(upsample=4)


def _build(name, seed):
    """MobileNet-style (depthwise separable blocks) for digits; a 1-D CNN
    for MNIST-1D. Blocks end in a ReLU named `block<i>`."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if name == "digits":
        inputs = keras.Input((32, 32, 1))
        x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        blocks = ((32, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1))
        for i, (filters, stride) in enumerate(blocks, start=1):
            x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
            x = layers.Conv2D(filters, 1, use_bias=False)(x)
            x = layers.ReLU(name=f"block{i}")(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.GlobalAveragePooling2D()(x)
    else:
        inputs = keras.Input((40, 1))
        x = inputs
        for i, (filters, kernel, stride) in enumerate(
                ((64, 5, 1), (128, 3, 2), (128, 3, 2), (128, 3, 1))):
            x = layers.Conv1D(filters, kernel, strides=stride, padding="same",
                              use_bias=False)(x)
            x = layers.ReLU(name=f"block{i}")(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(10)(x), name=f"{name}_backbone")


def _fit(model, x, y, epochs, multi_exit):
    import keras

    from keras_compress.early_exit import compile_multi_exit

    steps = -(-len(x) // BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(LR, max(1, epochs * steps))
    optimizer = keras.optimizers.SGD(schedule, momentum=MOMENTUM)
    if multi_exit:
        trainer = compile_multi_exit(model, optimizer, distillation=dict(DISTILLATION),
                                     steps_per_execution=steps)
    else:
        trainer = model
        model.compile(optimizer=optimizer, steps_per_execution=steps,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    return model


def _pick_threshold(model, x_val, y_val, plain_val_acc):
    from keras_compress.early_exit import threshold_sweep

    sweep = threshold_sweep(model, x_val, y_val, list(THRESHOLDS))
    rows = [r for r in sweep.rows if r["accuracy"] >= plain_val_acc - MAX_DROP - 1e-12]
    if not rows:
        return THRESHOLDS[-1], None
    best = max(rows, key=lambda r: (r["mac_reduction"], r["accuracy"]))
    return best["threshold"], best


class _MicroChain:
    """The chain in TFLM, driven like `EarlyExitRunner.predict_one`."""

    def __init__(self, folder, threshold):
        import json

        from keras_compress import _exit_rule
        from keras_compress.runtime import MicroModel

        with open(os.path.join(folder, "chain.json")) as f:
            chain = json.load(f)
        self.stages = [MicroModel(os.path.join(folder, s["file"])) for s in chain["stages"]]
        self.probability = [s["exit"]["probabilities"] for s in chain["stages"]]
        self.threshold = threshold
        self.rule = _exit_rule

    def predict_one(self, sample):
        x = sample[None]
        rule = self.rule
        for j, stage in enumerate(self.stages):
            outs = stage._run([x], False)
            p = rule.to_probabilities(outs[0], self.probability[j])
            if len(outs) == 1 or rule.confident(
                    rule.confidence(p, "max_prob"), self.threshold, "max_prob")[0]:
                return int(p[0].argmax()), j
            x = outs[1]


def _call(model, runtime):
    """fn(sample): set the input, invoke (one plain or single-file call)."""
    from keras_compress.runtime import _common

    interpreter = model._interpreter
    info = model.inputs[0]
    if runtime == "litert":
        index = model._in[0]["index"]

        def call(sample):
            interpreter.set_tensor(index, _common.to_stored(sample[None], info))
            interpreter.invoke()
    else:
        def call(sample):
            interpreter.set_input(_common.to_stored(sample[None], info), 0)
            interpreter.invoke()
    return call


def _measure(plain, chain_dir, single, threshold, x, runtime, repeats):
    from keras_compress.runtime import EarlyExitRunner, LiteRTModel, MicroModel

    if runtime == "litert":
        models = {"plain": LiteRTModel(plain, num_threads=1),
                  "single": LiteRTModel(single, num_threads=1)}
        chain = EarlyExitRunner(chain_dir, num_threads=1)
    else:
        models = {"plain": MicroModel(plain), "single": MicroModel(single)}
        chain = _MicroChain(chain_dir, threshold)
    arms = {
        "plain": _call(models["plain"], runtime),
        "chain": chain.predict_one,
        "single": _call(models["single"], runtime),
    }
    x = np.asarray(x, dtype="float32")
    timing = interleaved_timing({k: (lambda i, f=f: f(x[i])) for k, f in arms.items()},
                                repeats, warmup=min(10, len(x)), rounds=len(x),
                                reverse=True)
    return {k: 1e3 * t["median_ms"] for k, t in timing.items()}


def _accuracy(plain, single, x, y, runtime):
    from keras_compress.runtime import EarlyExitRunner, LiteRTModel, MicroModel

    model = LiteRTModel(plain) if runtime == "litert" else MicroModel(plain)
    with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
        f.write(single)
    try:
        result = EarlyExitRunner(f.name, runtime=runtime).predict(x)
    finally:
        os.unlink(f.name)
    return model.evaluate(x, y), result.accuracy(y), result


def _delegation_check(model, x, quick):
    """Float32 single file with every sample sent to the last exit (a
    threshold no confidence passes), with XNNPACK and with LiteRT's builtin
    kernels, beside the plain model with both: if XNNPACK took only the
    main subgraph, the later stages (inside IF branches) would run at the
    builtin kernels' speed."""
    import keras

    from keras_compress.early_exit import export_early_exit_file
    from keras_compress.export import to_tflite
    from keras_compress.runtime import LiteRTModel

    data = export_early_exit_file(model, threshold=0.9, threshold_input=True,
                                  verify_data=x[:20])
    backbone = keras.Model(model.inputs, model.outputs[-1])
    plain = to_tflite(backbone, batch_size=1)
    samples = np.asarray(x[: 10 if quick else 50], dtype="float32")
    never = np.full((1, len(model.outputs) - 1), 2.0, np.float32)
    arms = {}
    for kernels in ("xnnpack", "builtin"):
        single = LiteRTModel(data, num_threads=1, kernels=kernels)
        flat = LiteRTModel(plain, num_threads=1, kernels=kernels)
        arms[f"single_last_exit_{kernels}"] = _call_with(single, never)
        arms[f"plain_{kernels}"] = _call(flat, "litert")
    timing = interleaved_timing({k: (lambda i, f=f: f(samples[i])) for k, f in arms.items()},
                                1 if quick else REPEATS, warmup=5, rounds=len(samples),
                                reverse=True)
    return {k: 1e3 * t["median_ms"] for k, t in timing.items()}


def _call_with(model, threshold):
    """fn(sample) for a LiteRT single file with a threshold input."""
    from keras_compress.runtime import _common

    interpreter = model._interpreter
    index, limit = model._in[0]["index"], model._in[1]["index"]
    info = model.inputs[0]

    def call(sample):
        interpreter.set_tensor(index, _common.to_stored(sample[None], info))
        interpreter.set_tensor(limit, threshold)
        interpreter.invoke()
    return call


def _run_seed(name, settings, seed, data, quick, log):
    from keras_compress.analysis import summarize
    from keras_compress.early_exit import (add_early_exits, exit_macs, export_early_exit,
                                           export_early_exit_file)
    from keras_compress.export import to_tflite

    (x, y), (x_test, y_test) = data
    n_val = settings["validation"]
    x_train, y_train, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    epochs = settings["epochs"]
    start = time.perf_counter()
    plain = _fit(_build(name, seed), x_train, y_train, epochs, False)
    model = add_early_exits(_build(name, seed), list(settings["exit_points"]),
                            head=HEAD)
    _fit(model, x_train, y_train, epochs, True)
    plain_val = float(np.mean(np.asarray(plain.predict(x_val, verbose=0)).argmax(-1) == y_val))
    threshold, point = _pick_threshold(model, x_val, y_val, plain_val)
    costs = exit_macs(model)
    out = {"seed": seed, "threshold": threshold, "validation_point": point,
           "plain_macs": int(summarize(plain).totals.macs),
           "exit_macs": costs["cumulative"], "formats": {}}
    calibration = x_train[:200]
    timed = QUICK_TIMED if quick else None
    for fmt in FORMATS:
        label = fmt or "float32"
        plain_bytes = to_tflite(plain, quantize=fmt, representative_data=calibration,
                                batch_size=1)
        single = export_early_exit_file(model, threshold=threshold, quantize=fmt,
                                        representative_data=calibration,
                                        verify_data=x_test[:100])
        entry = {"plain_bytes": len(plain_bytes), "single_bytes": len(single)}
        with tempfile.TemporaryDirectory(prefix="ee_latency_") as folder:
            chain_dir = os.path.join(folder, "chain")
            chain = export_early_exit(model, chain_dir, threshold=threshold, quantize=fmt,
                                      representative_data=calibration, batch_size=1)
            entry["chain_bytes"] = sum(s["size_bytes"] for s in chain["stages"])
            for runtime in ("litert", "micro"):
                count = timed or TIMED[runtime]
                plain_acc, single_acc, result = _accuracy(plain_bytes, single, x_test,
                                                          y_test, runtime)
                latency = _measure(plain_bytes, chain_dir, single, threshold,
                                   x_test[:count], runtime, 1 if quick else REPEATS)
                entry[runtime] = {
                    "plain_test_acc": plain_acc,
                    "single_test_acc": single_acc,
                    "accuracy_drop": plain_acc - single_acc,
                    "exit_fractions": result.exit_fractions(len(costs["cumulative"])),
                    "mean_macs": result.mean_macs,
                    "latency_us": latency,
                    "speedup_single": latency["plain"] / latency["single"],
                    "speedup_chain": latency["plain"] / latency["chain"],
                    "timed_samples": int(count),
                }
                log(f"  seed {seed} {label} {runtime}: acc {100 * plain_acc:.1f} -> "
                    f"{100 * single_acc:.1f}; us plain {latency['plain']:.0f}, chain "
                    f"{latency['chain']:.0f}, single {latency['single']:.0f} "
                    f"({latency['plain'] / latency['single']:.2f}x)")
        out["formats"][label] = entry
    if seed == 0:
        out["delegation_us"] = _delegation_check(model, x_test, quick)
        log("  seed 0 float32 LiteRT, every sample to the last exit: "
            + ", ".join(f"{k} {v:.0f} us" for k, v in out["delegation_us"].items()))
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def run(tasks, seeds, quick, log):
    """Runs the benchmark; returns a JSON-serializable dict."""
    start = time.perf_counter()
    results = {}
    for k, name in enumerate(tasks, start=1):
        settings = dict(TASKS[name])
        if quick:
            settings["epochs"] = 1
        log(f"[{k}/{len(tasks)}] {settings['title']}: E={settings['epochs']}, "
            f"{seeds} seed(s)")
        data = _load(name)
        per_seed = [_run_seed(name, settings, seed, data, quick, log) for seed in range(seeds)]
        results[name] = {"title": settings["title"],
                         "settings": {**settings, "exit_points": list(settings["exit_points"])},
                         "summary": _summary(per_seed), "seeds": per_seed}
    return {
        "benchmark": "early_exit_latency",
        "settings": {
            "seeds": seeds, "quick": quick, "head": "default (EarlyExitHead grid=4)",
            "distillation": dict(DISTILLATION), "thresholds": list(THRESHOLDS),
            "operating_point": f"largest MAC reduction with validation accuracy >= "
                               f"plain - {MAX_DROP}",
            "latency": "per sample (set input, invoke; the chain's Python included), "
                       "batch 1, LiteRT XNNPACK 1 thread and TFLM (host); mean over the "
                       "timed test samples, median of interleaved repeats, median over "
                       "seeds",
        },
        "elapsed_s": round(time.perf_counter() - start, 1),
        "tasks": results,
    }


def _summary(per_seed):
    summary = {"threshold": median(s["threshold"] for s in per_seed)}
    for fmt in per_seed[0]["formats"]:
        for runtime in ("litert", "micro"):
            rows = [s["formats"][fmt][runtime] for s in per_seed]
            summary[f"{fmt}_{runtime}"] = {
                "plain_test_acc": median(r["plain_test_acc"] for r in rows),
                "single_test_acc": median(r["single_test_acc"] for r in rows),
                "accuracy_drop": median(r["accuracy_drop"] for r in rows),
                "plain_us": median(r["latency_us"]["plain"] for r in rows),
                "chain_us": median(r["latency_us"]["chain"] for r in rows),
                "single_us": median(r["latency_us"]["single"] for r in rows),
                "speedup_single": median(r["speedup_single"] for r in rows),
                "speedup_chain": median(r["speedup_chain"] for r in rows),
                "speedup_single_per_seed": [r["speedup_single"] for r in rows],
                "accuracy_drop_per_seed": [r["accuracy_drop"] for r in rows],
            }
    return summary


def tables(result):
    """One markdown table per task: plain, chain and single file."""
    parts = []
    for task in result["tasks"].values():
        s = task["summary"]
        rows = []
        for key, r in s.items():
            if key == "threshold":
                continue
            fmt, runtime = key.rsplit("_", 1)
            rows.append([
                fmt, "LiteRT" if runtime == "litert" else "TFLM",
                f"{100 * r['plain_test_acc']:.1f}", f"{100 * r['single_test_acc']:.1f}",
                f"{r['plain_us']:.0f}", f"{r['chain_us']:.0f}", f"{r['single_us']:.0f}",
                f"{r['speedup_chain']:.2f}x", f"{r['speedup_single']:.2f}x",
            ])
        check = task["seeds"][0].get("delegation_us")
        if check:
            rows.append(["float32 (all to last exit)", "LiteRT builtin",
                         "", "", f"{check['plain_builtin']:.0f}", "",
                         f"{check['single_last_exit_builtin']:.0f}", "", ""])
            rows.append(["float32 (all to last exit)", "LiteRT XNNPACK",
                         "", "", f"{check['plain_xnnpack']:.0f}", "",
                         f"{check['single_last_exit_xnnpack']:.0f}", "", ""])
        parts.append(f"{task['title']} (threshold {s['threshold']:g}, median of "
                     f"{len(task['seeds'])} seed(s))\n\n" + markdown_table(
                         ["format", "runtime", "plain acc %", "single acc %", "plain us",
                          "chain us", "single us", "chain speedup", "single speedup"],
                         rows, left=2))
    return "\n\n".join(parts)
