"""Gradual magnitude pruning: keras_compress against tfmot, side by side.

Three arms are trained in one process on two small tasks:

- `dense`: the unpruned Keras 3 model (the baseline);
- `ours`: the same Keras 3 model with `keras_compress.callbacks.
  MagnitudePruning(PolynomialDecay(0, s, 0, end_step, frequency))`, then
  `keras_compress.pruning.strip_pruning`;
- `tfmot`: the same network rebuilt in tf_keras, wrapped with
  `tfmot.sparsity.keras.prune_low_magnitude` (the same PolynomialDecay) and
  trained with `UpdatePruningStep`, then `tfmot.sparsity.keras.strip_pruning`.

A fourth, reference arm, `dense_tf_keras`, trains the unpruned tf_keras
model, so tfmot's overhead can also be read against its own framework.

Every arm of a repeat starts from the same initial weights (drawn in Keras 3
and copied into the tf_keras models), uses Adam with the same learning rate
and batch size, and sees the same batches in the same order: the per-epoch
permutations are drawn once per repeat with NumPy and fed to both frameworks
as one pre-shuffled `tf.data` stream. The repeats use different seeds, and
the arms are interleaved inside each repeat (in a rotating order) so machine
noise hits all of them alike.

Measured per run: test accuracy (of the stripped model), the exact share
of zeros in the pruned kernels, the size of the float32 TFLite file (pruned
arms with `Optimize.EXPERIMENTAL_SPARSITY`), of that file gzipped (level 9)
and of the constants it stores, and the training wall time: building the
model from the initial weights, compiling (and for tfmot wrapping), `fit`
including the tracing of the train step, and stripping the masks. Only data
loading, evaluation and export are outside the clock. One untimed warm-up
fit per framework runs first, so one-time process start-up costs (TensorFlow
kernels, imports) are charged to no arm.

Results are printed as markdown tables, the targets as PASS/FAIL, and written
to `benchmarks/results/pruning_vs_tfmot.json`. Needs the `bench` extra
(`pip install tensorflow-model-optimization tf_keras`).

Usage:

    python benchmarks/pruning_vs_tfmot.py               # defaults, ~12 min on 2 quiet cores
    python benchmarks/pruning_vs_tfmot.py --quick       # smoke test, < 90 s, temp output
    python benchmarks/pruning_vs_tfmot.py --repeats 5 --tasks mnist1d
"""

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import _harness  # noqa: E402  (benchmarks/ is on sys.path)
from _harness import log, markdown_table, median  # noqa: E402
from _pruning_arms import (  # noqa: E402
    batch_stream, build_net, check_peer, load_task_data, run_arm, warm_up)

SPARSITIES = (0.5, 0.75, 0.9, 0.95)
QUICK_SPARSITIES = (0.9,)

# Targets (evaluated on medians over repeats).
MAX_TIME_RATIO = 1.10          # our training time / unpruned training time
MAX_ACC_DEFICIT_VS_TFMOT = 0.3  # points: ours >= tfmot - this, every sparsity
MAX_ACC_DEFICIT_VS_DENSE = 1.0  # points: ours >= dense - this at 90% on MNIST-1D

# Per task: architecture, data and training settings. Batch sizes and epochs
# are chosen so that `end_step = epochs * steps_per_epoch` is a multiple of
# the mask update frequency: tfmot only prunes on that grid (its last update
# would otherwise fall short of `end_step` and of the final sparsity), while
# ours always updates at `end_step` as well.
TASKS = {
    "mnist1d": {
        "title": "MNIST-1D",
        "description": "keras_compress.datasets.load_mnist1d() (4000 train / 1000 "
                       "test sequences of length 40); Conv1D(32, 5, relu), "
                       "Conv1D(64, 3, stride 2, relu), Conv1D(64, 3, stride 2, "
                       "relu), Flatten, Dense(10) (logits)",
        "epochs": 40,
        "batch_size": 40,   # 100 steps per epoch
        "learning_rate": 3e-3,
        "frequency": 100,
    },
    "digits": {
        "title": "digits (8x8)",
        "description": "keras_compress.datasets.load_digits() (1437 train / 360 "
                       "test 8x8x1 images); Conv2D(32, 3, same, relu), "
                       "Conv2D(64, 3, stride 2, same, relu), Flatten, Dense(10) "
                       "(logits)",
        "epochs": 40,
        "batch_size": 48,   # 30 steps per epoch (the last batch has 45)
        "learning_rate": 3e-3,
        "frequency": 100,
    },
}

# --quick: one epoch on a subset, with a frequency that divides end_step
# (tfmot would never prune with frequency 100 in 20 steps).
QUICK = {
    "mnist1d": {"train_samples": 800, "batch_size": 40, "frequency": 5},
    "digits": {"train_samples": 480, "batch_size": 48, "frequency": 5},
}


def parse_args(argv=None):
    parser = _harness.arguments(
        "pruning_vs_tfmot",
        "Compare keras_compress MagnitudePruning with tfmot's "
        "prune_low_magnitude and unpruned training, side by side.",
        quick="1 epoch on a subset of the data, 1 repeat, sparsities "
        f"{list(QUICK_SPARSITIES)}", tasks=TASKS)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of every arm (different seeds); accuracy and "
                        "time are medians over repeats (default 3)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the training epochs of every task "
                        "(defaults: " + ", ".join(
                            f"{k} {v['epochs']}" for k, v in TASKS.items()) + ")")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first repeat; repeat r uses seed + r "
                        "(default 0)")
    args = _harness.parse(parser, argv, quick={"repeats": 1, "epochs": 1},
                          positive=("repeats", "epochs"))
    args.sparsities = QUICK_SPARSITIES if args.quick else SPARSITIES
    return args


def task_settings(task, args):
    """The task's settings for this run (quick and --epochs applied)."""
    settings = dict(TASKS[task])
    settings["train_samples"] = None
    if args.quick:
        settings.update(QUICK[task])
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    return settings


# ---------------------------------------------------------------------------
# Running a task


def run_task(task, args, log):
    import keras

    cfg = task_settings(task, args)
    data = load_task_data(task, cfg["train_samples"])
    (x_train, _), (x_test, _) = data
    n = len(x_train)
    cfg["train_samples"] = n
    cfg["steps_per_epoch"] = math.ceil(n / cfg["batch_size"])
    cfg["end_step"] = cfg["epochs"] * cfg["steps_per_epoch"]
    if cfg["end_step"] % cfg["frequency"]:
        log(f"  warning: end_step {cfg['end_step']} is not a multiple of the "
            f"frequency {cfg['frequency']}; tfmot's last mask update falls short")

    # The jobs of one repeat; the order rotates from repeat to repeat.
    jobs = [("dense", None), ("dense_tf_keras", None)]
    for s in args.sparsities:
        jobs += [("ours", s), ("tfmot", s)]
    runs = {job: [] for job in jobs}
    log(f"  {n} train / {len(x_test)} test samples, {cfg['epochs']} epochs x "
        f"{cfg['steps_per_epoch']} steps (end_step {cfg['end_step']}), batch "
        f"{cfg['batch_size']}, Adam {cfg['learning_rate']:g}, mask update every "
        f"{cfg['frequency']} steps; {len(jobs)} runs per repeat")
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        keras.utils.set_random_seed(seed)
        weights = build_net(keras, task, x_train.shape[1:]).get_weights()
        stream = batch_stream(*data[0], cfg["epochs"], cfg["batch_size"], seed)
        for arm, sparsity in _harness.arm_order(jobs, repeat, args.repeats):
            record = run_arm(arm, sparsity, task, data, weights, stream, cfg, seed)
            runs[(arm, sparsity)].append(record)
            label = arm if sparsity is None else f"{arm} @ {sparsity:g}"
            log(f"  repeat {repeat + 1}/{args.repeats}  {label:<17} "
                f"acc {100 * record['accuracy']:6.2f}%  sparsity "
                f"{100 * record['sparsity']:6.2f}%  {record['train_s']:6.1f} s  "
                f"{record['tflite_bytes']:>8,} B")

    model = build_net(keras, task, x_train.shape[1:])
    prunable = sum(int(np.prod(layer.kernel.shape)) for layer in model.layers
                   if hasattr(layer, "kernel"))
    return {
        "title": cfg.pop("title"),
        "description": cfg.pop("description"),
        "params": int(model.count_params()),
        "prunable_params": prunable,
        "input_shape": list(x_train.shape[1:]),
        "test_samples": int(len(x_test)),
        "settings": cfg,
        **summarize_runs(runs, args.sparsities),
    }


def summarize_arm(records):
    """Medians over repeats, and the per-repeat values."""
    summary = {}
    for key in ("accuracy", "train_s", "sparsity", "tflite_bytes", "gzip_bytes",
                "constant_bytes"):
        values = [r[key] for r in records]
        summary[key] = median(values)
        summary[f"{key}_per_repeat"] = values
    if "max_layer_zeros_off_target" in records[0]:
        summary["max_layer_zeros_off_target"] = max(
            r["max_layer_zeros_off_target"] for r in records)
    summary["seeds"] = [r["seed"] for r in records]
    summary["layers_first_repeat"] = records[0]["layers"]
    return summary


def summarize_runs(runs, sparsities):
    dense = summarize_arm(runs[("dense", None)])
    dense_tfk = summarize_arm(runs[("dense_tf_keras", None)])
    rows = []
    for s in sparsities:
        ours = summarize_arm(runs[("ours", s)])
        tfmot = summarize_arm(runs[("tfmot", s)])
        rows.append({
            "target_sparsity": s,
            "ours": ours,
            "tfmot": tfmot,
            "ratios": {
                "ours_time_vs_dense": ours["train_s"] / dense["train_s"],
                "tfmot_time_vs_dense": tfmot["train_s"] / dense["train_s"],
                "tfmot_time_vs_dense_tf_keras": tfmot["train_s"] / dense_tfk["train_s"],
                "ours_minus_tfmot_accuracy_points": 100 * (ours["accuracy"] - tfmot["accuracy"]),
                "ours_minus_dense_accuracy_points": 100 * (ours["accuracy"] - dense["accuracy"]),
                "tfmot_minus_dense_accuracy_points": 100 * (tfmot["accuracy"] - dense["accuracy"]),
                # Each pruned file against the dense file of the same converter path.
                "ours_size_vs_dense": dense["tflite_bytes"] / ours["tflite_bytes"],
                "tfmot_size_vs_dense_tf_keras": dense_tfk["tflite_bytes"] / tfmot["tflite_bytes"],
                "ours_gzip_vs_dense": dense["gzip_bytes"] / ours["gzip_bytes"],
                "tfmot_gzip_vs_dense_tf_keras": dense_tfk["gzip_bytes"] / tfmot["gzip_bytes"],
            },
        })
    return {"dense": dense, "dense_tf_keras": dense_tfk, "rows": rows}


def evaluate_targets(tasks):
    """PASS/FAIL of each target, from the medians."""
    targets = []
    for key, task in tasks.items():
        worst_time = max(task["rows"], key=lambda r: r["ratios"]["ours_time_vs_dense"])
        targets.append({
            "task": key,
            "target": f"our training time / unpruned <= {MAX_TIME_RATIO:.2f} "
                      "at every sparsity",
            "value": {f"{r['target_sparsity']:g}": r["ratios"]["ours_time_vs_dense"]
                      for r in task["rows"]},
            "worst": worst_time["ratios"]["ours_time_vs_dense"],
            "pass": worst_time["ratios"]["ours_time_vs_dense"] <= MAX_TIME_RATIO,
        })
        worst_acc = min(task["rows"],
                        key=lambda r: r["ratios"]["ours_minus_tfmot_accuracy_points"])
        targets.append({
            "task": key,
            "target": f"our accuracy >= tfmot's - {MAX_ACC_DEFICIT_VS_TFMOT} points "
                      "at every sparsity",
            "value": {f"{r['target_sparsity']:g}":
                      r["ratios"]["ours_minus_tfmot_accuracy_points"]
                      for r in task["rows"]},
            "worst": worst_acc["ratios"]["ours_minus_tfmot_accuracy_points"],
            "pass": worst_acc["ratios"]["ours_minus_tfmot_accuracy_points"]
                    >= -MAX_ACC_DEFICIT_VS_TFMOT,
        })
        if key == "mnist1d":
            row = next((r for r in task["rows"] if r["target_sparsity"] == 0.9), None)
            if row is not None:
                delta = row["ratios"]["ours_minus_dense_accuracy_points"]
                targets.append({
                    "task": key,
                    "target": f"at 90% sparsity our accuracy >= unpruned - "
                              f"{MAX_ACC_DEFICIT_VS_DENSE} point",
                    "value": {"0.9": delta},
                    "worst": delta,
                    "pass": delta >= -MAX_ACC_DEFICIT_VS_DENSE,
                })
    return targets


# ---------------------------------------------------------------------------
# Printing


def results_table(task):
    dense = task["dense"]
    header = ["arm", "target", "zeros", "accuracy", "acc per seed", "train s",
              "time / dense", "TFLite B", "gzip B", "constants B"]

    def line(name, target, arm):
        return [
            name, target, f"{100 * arm['sparsity']:.2f}%",
            f"{100 * arm['accuracy']:.2f}%",
            " ".join(f"{100 * a:.1f}" for a in arm["accuracy_per_repeat"]),
            f"{arm['train_s']:.1f}",
            f"{arm['train_s'] / dense['train_s']:.2f}x",
            f"{arm['tflite_bytes']:,.0f}", f"{arm['gzip_bytes']:,.0f}",
            f"{arm['constant_bytes']:,.0f}",
        ]

    rows = [line("unpruned (Keras 3)", "-", dense),
            line("unpruned (tf_keras)", "-", task["dense_tf_keras"])]
    for row in task["rows"]:
        target = f"{100 * row['target_sparsity']:g}%"
        rows.append(line("ours", target, row["ours"]))
        rows.append(line("tfmot", target, row["tfmot"]))
    return markdown_table(header, rows, left=2)


def ratio_table(task):
    header = ["sparsity", "ours time / dense", "tfmot time / dense",
              "tfmot time / tf_keras dense", "ours - tfmot acc (pt)",
              "ours - dense acc (pt)", "ours size / dense", "tfmot size / dense"]
    rows = []
    for row in task["rows"]:
        r = row["ratios"]
        rows.append([
            f"{100 * row['target_sparsity']:g}%",
            f"{r['ours_time_vs_dense']:.2f}", f"{r['tfmot_time_vs_dense']:.2f}",
            f"{r['tfmot_time_vs_dense_tf_keras']:.2f}",
            f"{r['ours_minus_tfmot_accuracy_points']:+.2f}",
            f"{r['ours_minus_dense_accuracy_points']:+.2f}",
            f"1/{r['ours_size_vs_dense']:.2f}", f"1/{r['tfmot_size_vs_dense_tf_keras']:.2f}",
        ])
    return markdown_table(header, rows)


def target_lines(targets):
    lines = []
    for t in targets:
        values = ", ".join(f"{k}: {v:+.2f}" if "points" in t["target"] or "accuracy" in t["target"]
                           else f"{k}: {v:.2f}" for k, v in t["value"].items())
        lines.append(f"- {'PASS' if t['pass'] else 'FAIL'}  [{t['task']}] "
                     f"{t['target']} ({values})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = _harness.machine_info("tf_keras", "tensorflow-model-optimization")
    check_peer()
    import tensorflow as tf

    # `to_tflite` verifies each export with `model.predict`, a new function
    # per model, which makes TensorFlow warn about retracing on every run.
    tf.get_logger().setLevel("ERROR")

    steps = len(args.tasks) + 2
    log(f"[1/{steps}] Warm-up (untimed)")
    warm_up()
    tasks = {}
    for k, task in enumerate(args.tasks):
        log(f"[{k + 2}/{steps}] {TASKS[task]['title']}: {args.repeats} repeat(s), "
            f"sparsities {list(args.sparsities)}")
        tasks[task] = run_task(task, args, log)

    targets = evaluate_targets(tasks)
    elapsed = time.perf_counter() - start
    # Other jobs on the machine skew the times; the load at both ends says how much.
    info["load_average_at_end"] = _harness.load_average()
    log(f"[{steps}/{steps}] Results (medians over {args.repeats} repeat(s))")
    for task in tasks.values():
        log(f"\n### {task['title']} ({task['params']:,} parameters, "
            f"{task['prunable_params']:,} in pruned kernels)\n")
        log(results_table(task))
        log("")
        log(ratio_table(task))
    log("\nTargets:")
    log(target_lines(targets))

    settings = {
        "repeats": args.repeats,
        "seeds": [args.seed + r for r in range(args.repeats)],
        "sparsities": list(args.sparsities),
        "quick": args.quick,
        "schedule": "PolynomialDecay(0.0, s, begin_step=0, end_step=epochs * "
                    "steps_per_epoch, power 3, frequency) in both toolkits",
        "pruned": "every Conv and Dense kernel (biases never), in both toolkits",
        "timing": "wall time of build + set initial weights + (tfmot: wrap) + "
                  "compile + fit (first-step tracing included) + strip; data "
                  "loading, evaluation and export excluded; one untimed "
                  "warm-up fit per framework first; medians over repeats; "
                  "arms interleaved in a rotating order per repeat",
        "accuracy": "test accuracy of the stripped Keras / tf_keras model "
                    "(model(x_test, training=False) + argmax); median over repeats",
        "sizes": "float32 TFLite: ours with keras_compress.export.to_tflite("
                 "model, sparse=True) (unpruned: sparse=False); tf_keras "
                 "models with TFLiteConverter.from_keras_model and "
                 "Optimize.EXPERIMENTAL_SPARSITY (unpruned: none); gzip "
                 "level 9; constant_bytes = summarize(bytes).totals.bytes_stored",
    }
    return _harness.write_report(args, _harness.report(
        args, argv, settings, info, elapsed, tasks=tasks, targets=targets))


if __name__ == "__main__":
    main()
