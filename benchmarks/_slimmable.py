"""Slimmable networks: one network trained at four widths vs four networks.

A slimmable CNN (`keras_compress.layers.slimmable`) is trained once with the
sandwich rule and in-place distillation (`SandwichModel`, Yu & Huang, ICCV
2019): each step trains the widest width (1.0) on the labels and the
smallest (0.25) plus one random width between them (`num_random=1`: 0.5 or
0.75) on the widest width's soft predictions, summing their gradients into
one update. Each width is then exported as a plain, really smaller model
(`export_width`) and compared with a plain model of exactly that
architecture trained on its own from scratch ("individual").

Tasks (the architectures of benchmarks/slimming.py, as 2-D convolutions):

- mnist1d: MNIST-1D (4000 train / 1000 test sequences of length 40) seen as
  (40, 1, 1) images: convs (64, 5x1), (64, 3x1, stride 2x1),
  (128, 3x1, stride 2x1);
- digits: scikit-learn's 8x8 digits (1437 / 360): convs (32, 3x3),
  (64, 3x3, stride 2), (64, 3x3).

Each conv has no bias and is followed by (switchable) BatchNormalization
(momentum 0.9) and ReLU; then global average pooling and a Dense(10)
classifier, whose outputs are never narrowed. The first conv keeps its full
input. At width w every conv keeps `active_channels(n, w) = max(1,
floor(w * n + 0.5))` filters.

Training: SGD (momentum 0.9, batch 64, cosine decay of the learning rate
from 0.1 to 0 over the run) for E epochs, the same per-model epochs for the
slimmable network (each of its steps runs 3 widths) and for each of the 4
individual models. Evaluation: test accuracy after the last epoch (no model
selection on the test set). "slimmable" uses the BatchNorm statistics
accumulated during training (private per width); "calibrated" re-estimates
them exactly on the training set afterwards (`calibrate_batchnorm`).
Parameters and MACs (per sample) are those of the exported plain model
(`keras_compress.analysis.summarize`), identical to the individual model's.
"""

import time

import numpy as np

import _slimming  # noqa: E402  (benchmarks/ is on sys.path)
from _slimming import accuracy, cost, load  # noqa: E402

WIDTHS = (0.25, 0.5, 0.75, 1.0)
NUM_RANDOM = 1
BATCH_SIZE = 64
MOMENTUM = 0.9
LR = 0.1
BN_MOMENTUM = 0.9
CALIBRATION_BATCH = 256

TASKS = {
    "mnist1d": {
        "title": "MNIST-1D CNN, (40, 1, 1) images",
        "input_shape": [40, 1],
        "blocks": [[64, [5, 1], [1, 1]], [64, [3, 1], [2, 1]], [128, [3, 1], [2, 1]]],
        "epochs": 30,
    },
    "digits": {
        "title": "digits CNN (8x8)",
        "input_shape": [8, 8, 1],
        "blocks": [[32, [3, 3], [1, 1]], [64, [3, 3], [2, 2]], [64, [3, 3], [1, 1]]],
        "epochs": 40,
    },
}
QUICK_EPOCHS = 2

PAPER = (
    "Context (reported by the papers, not measured here): Slimmable Networks "
    "(Yu et al., ICLR 2019) and US-Nets (Yu & Huang, ICCV 2019) report each "
    "width of one slimmable MobileNet/ResNet on ImageNet within about 1 point "
    "of (or better than) the individually trained model of that width."
)


def task_settings(name, quick):
    settings = {k: v for k, v in TASKS[name].items()}
    if quick:
        settings["epochs"] = QUICK_EPOCHS
    return settings


def build(name, seed, width=None):
    """The task's CNN: slimmable (`width=None`) or plain at `width`."""
    import keras
    from keras import layers

    from keras_compress.layers.slimmable import (
        SlimmableConv2D, SlimmableDense, SwitchableBatchNormalization,
        active_channels)

    keras.utils.set_random_seed(seed)
    spec = TASKS[name]
    inputs = keras.Input(tuple(spec["input_shape"]))
    x = inputs
    if name == "mnist1d":
        x = layers.Reshape((40, 1, 1), name="as_image")(x)
    for i, (filters, kernel, stride) in enumerate(spec["blocks"]):
        common = dict(strides=tuple(stride), padding="same", use_bias=False,
                      name=f"conv{i}")
        if width is None:
            x = SlimmableConv2D(filters, tuple(kernel), slim_input=i > 0,
                                width_multipliers=WIDTHS, **common)(x)
            x = SwitchableBatchNormalization(momentum=BN_MOMENTUM,
                                             width_multipliers=WIDTHS,
                                             name=f"bn{i}")(x)
        else:
            x = layers.Conv2D(active_channels(filters, width), tuple(kernel),
                              **common)(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if width is None:
        outputs = SlimmableDense(10, slim_output=False, width_multipliers=WIDTHS,
                                 name="out")(x)
    else:
        outputs = layers.Dense(10, name="out")(x)
    suffix = "slimmable" if width is None else f"w{width}"
    return keras.Model(inputs, outputs, name=f"{name}_{suffix}")


def compile_model(model, epochs, steps):
    """SGD with momentum, a cosine decay from `LR` (`_slimming`'s recipe)."""
    return _slimming.compile_model(model, LR, epochs, steps)


def run_seed(name, settings, seed, data, log):
    import keras

    from keras_compress.slimmable import (
        SandwichModel, calibrate_batchnorm, export_width, width)

    (x, y), test = data
    steps = -(-len(x) // BATCH_SIZE)
    epochs = settings["epochs"]
    fit = dict(batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
    key = {w: str(w) for w in WIDTHS}

    slim = build(name, seed)
    trainer = compile_model(SandwichModel(slim, num_random=NUM_RANDOM, seed=seed),
                            epochs, steps)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    trainer.fit(x, y, **fit)
    slim_seconds = time.perf_counter() - start

    result = {"seed": seed, "widths": {}}
    for w in WIDTHS:
        plain = export_width(slim, w)
        with width(slim, w):
            slim_logits = np.asarray(slim(test[0], training=False))
        diff = float(np.abs(np.asarray(plain(test[0], training=False)) - slim_logits).max())
        params, macs = cost(plain)
        result["widths"][key[w]] = {
            "channels": [int(plain.get_layer(f"conv{i}").filters)
                         for i in range(len(settings["blocks"]))],
            "params": params,
            "macs": macs,
            "slimmable_acc": accuracy(plain, test),
            "export_max_abs_diff": diff,
        }
    calibrate_batchnorm(slim, x, batch_size=CALIBRATION_BATCH)
    for w in WIDTHS:
        result["widths"][key[w]]["calibrated_acc"] = accuracy(export_width(slim, w), test)

    individual_seconds = 0.0
    for w in WIDTHS:
        row = result["widths"][key[w]]
        model = build(name, seed, width=w)
        if cost(model) != (row["params"], row["macs"]):
            raise RuntimeError(
                f"{name} width {w}: the individual model {cost(model)} differs "
                f"from export_width {(row['params'], row['macs'])}")
        compile_model(model, epochs, steps)
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model.fit(x, y, **fit)
        individual_seconds += time.perf_counter() - start
        row["individual_acc"] = accuracy(model, test)
        row["diff_points"] = 100 * (row["slimmable_acc"] - row["individual_acc"])
        row["calibrated_diff_points"] = 100 * (row["calibrated_acc"] - row["individual_acc"])
    result["fit_seconds"] = {"slimmable": round(slim_seconds, 1),
                             "individual_total": round(individual_seconds, 1)}
    log(f"  seed {seed}: " + "; ".join(
        f"w{w} slim {100 * r['slimmable_acc']:.1f} / cal {100 * r['calibrated_acc']:.1f}"
        f" / indiv {100 * r['individual_acc']:.1f}"
        for w, r in result["widths"].items())
        + f" (fit {slim_seconds:.0f} s + {individual_seconds:.0f} s)")
    return result


def _stat(values):
    values = [float(v) for v in values]
    return {"median": float(np.median(values)), "per_seed": values}


def aggregate(seeds):
    summary = {}
    figures = ("slimmable_acc", "calibrated_acc", "individual_acc", "diff_points",
               "calibrated_diff_points", "export_max_abs_diff")
    for w in seeds[0]["widths"]:
        first = seeds[0]["widths"][w]
        summary[w] = {
            "channels": first["channels"],
            "params": first["params"],
            "macs": first["macs"],
            **{f: _stat([s["widths"][w][f] for s in seeds]) for f in figures},
        }
    summary["fit_seconds"] = {
        k: _stat([s["fit_seconds"][k] for s in seeds])
        for k in ("slimmable", "individual_total")
    }
    return summary


def run(tasks, seeds, quick, log):
    """Runs the benchmark; returns a JSON-serializable dict (see `tables`)."""
    import logging

    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(
            f"Expected tasks among {sorted(TASKS)}. Received: tasks={list(tasks)!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"Expected `seeds` to be an int >= 1. Received: seeds={seeds!r}")
    # Every model is new, so its first fit traces; silence retracing notes.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.perf_counter()
    results = {}
    for k, name in enumerate(tasks, start=1):
        settings = task_settings(name, quick)
        log(f"[slimmable {k}/{len(tasks)}] {settings['title']}: widths {list(WIDTHS)}, "
            f"E={settings['epochs']}, {seeds} seed(s)")
        data = load(name)
        per_seed = [run_seed(name, settings, seed, data, log) for seed in range(seeds)]
        results[name] = {
            "title": settings["title"],
            "settings": settings,
            "train_samples": int(len(data[0][0])),
            "test_samples": int(len(data[1][0])),
            "summary": aggregate(per_seed),
            "seeds": per_seed,
        }
    return {
        "benchmark": "slimmable",
        "settings": {
            "seeds": seeds,
            "quick": quick,
            "widths": list(WIDTHS),
            "channel_rule": "max(1, floor(w * n + 0.5)) filters per conv at width w",
            "training": f"SandwichModel(num_random={NUM_RANDOM}, distillation=True): "
                        "widths 1.0 (labels), 0.25 and one random of 0.5/0.75 "
                        "(soft predictions of 1.0) per step, gradients summed",
            "individual": "plain model of the exported architecture, trained alone",
            "epochs": "same per-model epochs E for the slimmable network and "
                      "each individual model",
            "batch_size": BATCH_SIZE,
            "optimizer": f"SGD(momentum={MOMENTUM}), CosineDecay from {LR} to 0",
            "batchnorm_momentum": BN_MOMENTUM,
            "calibration": "calibrate_batchnorm on the training set "
                           f"(batch {CALIBRATION_BATCH}), exact mean/variance",
            "macs": "keras_compress.analysis.summarize(export_width(model, w))"
                    ".totals.macs, per sample",
            "accuracy": "test accuracy after the last epoch",
        },
        "paper": PAPER,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "tasks": results,
    }


def _pct(x):
    return f"{100 * x:.1f}"


def _cell(entry, fmt):
    text = fmt(entry["median"])
    if len(entry["per_seed"]) > 1:
        text += " (" + " / ".join(fmt(v) for v in entry["per_seed"]) + ")"
    return text


def tables(result):
    """Markdown tables and summary lines of a `run` result."""
    def points(v):
        return f"{v:+.1f}"

    out = []
    for name, task in result["tasks"].items():
        s = task["summary"]
        widths = [w for w in s if w != "fit_seconds"]
        full = s["1.0"]
        out.append(f"### {task['title']} ({task['settings']['epochs']} epochs, "
                   f"medians over {len(task['seeds'])} seed(s), per-seed values "
                   "in brackets; a difference column is the median of the "
                   "per-seed differences)\n")
        out.append("| width | conv channels | params | MACs | slimmable acc % | "
                   "slimmable + BN calibrated acc % | individual acc % | "
                   "slimmable - individual (points) | calibrated - individual (points) |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for w in widths:
            r = s[w]
            out.append(
                f"| {w} | {r['channels']} | {r['params']:,} "
                f"({r['params'] / full['params']:.2f}x) | {r['macs']:,} "
                f"({r['macs'] / full['macs']:.2f}x) | {_cell(r['slimmable_acc'], _pct)} | "
                f"{_cell(r['calibrated_acc'], _pct)} | {_cell(r['individual_acc'], _pct)} | "
                f"{_cell(r['diff_points'], points)} | "
                f"{_cell(r['calibrated_diff_points'], points)} |")
        diffs = [s[w]["diff_points"]["median"] for w in widths]
        cal = [s[w]["calibrated_diff_points"]["median"] for w in widths]
        export_diff = max(max(s[w]["export_max_abs_diff"]["per_seed"]) for w in widths)
        secs = s["fit_seconds"]
        out.append("")
        out.append(
            f"{name}: slimmable - individual, median per width: "
            + ", ".join(f"{w}: {points(d)}" for w, d in zip(widths, diffs))
            + f" (worst {points(min(diffs))}); with calibrated BatchNorm: "
            + ", ".join(f"{w}: {points(d)}" for w, d in zip(widths, cal))
            + f". One slimmable network trained in {secs['slimmable']['median']:.0f} s "
            f"vs {secs['individual_total']['median']:.0f} s for the "
            f"{len(widths)} individual models (medians). Largest |export_width - "
            f"slimmable| logit difference: {export_diff:.1e}.")
        out.append("")
    out.append(result["paper"])
    return "\n".join(out)
