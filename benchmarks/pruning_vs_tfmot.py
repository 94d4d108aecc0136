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

import argparse
import gc
import gzip
import math
import os
import shlex
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _harness import machine_info, markdown_table, median, write_results  # noqa: E402  (benchmarks/ is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "pruning_vs_tfmot.json")

SPARSITIES = (0.5, 0.75, 0.9, 0.95)
QUICK_SPARSITIES = (0.5, 0.9)

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


def build_model(K, task, input_shape):
    """The task's network in Keras 3 (`K=keras`) or tf_keras (`K=tf_keras`).

    Layers and models get fixed names, so the TFLite files (whose tensor
    names come from them) do not grow as Keras numbers new layers.
    """
    L = K.layers
    if task == "mnist1d":
        body = [
            L.Conv1D(32, 5, activation="relu", name="conv1"),
            L.Conv1D(64, 3, strides=2, activation="relu", name="conv2"),
            L.Conv1D(64, 3, strides=2, activation="relu", name="conv3"),
        ]
    elif task == "digits":
        body = [
            L.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            L.Conv2D(64, 3, strides=2, padding="same", activation="relu",
                     name="conv2"),
        ]
    else:
        raise ValueError(f"Unknown task {task!r}")
    return K.Sequential(
        [K.Input(input_shape), *body, L.Flatten(name="flatten"),
         L.Dense(10, name="logits")],
        name=task,
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare keras_compress MagnitudePruning with tfmot's "
        "prune_low_magnitude and unpruned training, side by side.",
    )
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of every arm (different seeds); accuracy and "
                        "time are medians over repeats (default 3)")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS),
                        default=list(TASKS), help="tasks to run (default: all)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the training epochs of every task "
                        "(defaults: " + ", ".join(
                            f"{k} {v['epochs']}" for k, v in TASKS.items()) + ")")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first repeat; repeat r uses seed + r "
                        "(default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 epoch on a subset of the data, 1 "
                        f"repeat, sparsities {list(QUICK_SPARSITIES)}; writes to "
                        "a temporary folder unless --output is given")
    parser.add_argument("--output", default=None,
                        help=f"JSON output path (default {os.path.relpath(DEFAULT_OUTPUT)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
        args.epochs = 1
    for name in ("repeats", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive int, got {value}")
    args.sparsities = QUICK_SPARSITIES if args.quick else SPARSITIES
    if args.output is None:
        if args.quick:
            import tempfile

            args.output = os.path.join(tempfile.gettempdir(), "pruning_vs_tfmot_quick.json")
        else:
            args.output = DEFAULT_OUTPUT
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
# Data


def load_task_data(task, train_samples=None):
    from keras_compress.datasets import load_digits, load_mnist1d

    loader = {"mnist1d": load_mnist1d, "digits": load_digits}[task]
    (x_train, y_train), (x_test, y_test) = loader()
    if train_samples is not None:
        x_train, y_train = x_train[:train_samples], y_train[:train_samples]
    return (x_train, y_train), (x_test, y_test)


def batch_stream(x, y, epochs, batch_size, seed):
    """`epochs` shuffled passes over `(x, y)` as one `tf.data` stream.

    The permutations come from NumPy (`default_rng(seed)`), not from either
    framework's shuffling, so Keras 3 and tf_keras see identical batches in
    identical order. Each epoch ends with its own partial batch, as in
    `fit(shuffle=True)`. Fed with `steps_per_epoch`, both frameworks keep one
    iterator across epochs (the stream is repeated so neither ever runs dry).
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(len(x)) for _ in range(epochs)])
    xs, ys = tf.constant(x[order]), tf.constant(y[order])
    stream = tf.data.Dataset.from_tensor_slices((xs, ys)).flat_map(
        lambda a, b: tf.data.Dataset.from_tensor_slices((a, b)).batch(batch_size)
    )
    return stream.repeat().prefetch(2)


# ---------------------------------------------------------------------------
# The arms. Each returns the trained (and stripped) model; the caller times it.


def train_dense(K, task, input_shape, weights, stream, cfg):
    """Unpruned training, Keras 3 (`K=keras`) or tf_keras (`K=tf_keras`)."""
    model = build_model(K, task, input_shape)
    model.set_weights(weights)
    model.compile(
        optimizer=K.optimizers.Adam(cfg["learning_rate"]),
        loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(stream, epochs=cfg["epochs"], steps_per_epoch=cfg["steps_per_epoch"],
              shuffle=False, verbose=0)
    return model


def train_ours(task, input_shape, weights, stream, cfg, sparsity):
    import keras

    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.pruning import PolynomialDecay, strip_pruning

    model = build_model(keras, task, input_shape)
    model.set_weights(weights)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    schedule = PolynomialDecay(0.0, sparsity, begin_step=0,
                               end_step=cfg["end_step"], frequency=cfg["frequency"])
    model.fit(stream, epochs=cfg["epochs"], steps_per_epoch=cfg["steps_per_epoch"],
              shuffle=False, verbose=0, callbacks=[MagnitudePruning(schedule)])
    return strip_pruning(model)


def train_tfmot(task, input_shape, weights, stream, cfg, sparsity):
    import tensorflow_model_optimization as tfmot
    import tf_keras

    base = build_model(tf_keras, task, input_shape)
    base.set_weights(weights)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
        end_step=cfg["end_step"], frequency=cfg["frequency"])
    # prune_low_magnitude clones the model and keeps its weights.
    model = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(cfg["learning_rate"]),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(stream, epochs=cfg["epochs"], steps_per_epoch=cfg["steps_per_epoch"],
              shuffle=False, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(model)


# ---------------------------------------------------------------------------
# Measurements (outside the clock)


def accuracy(model, x, y):
    # A direct call: `predict` would trace a new function for every model.
    logits = np.asarray(model(x, training=False))
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def kernel_zeros(model):
    """Zeros of every kernel (the weights both toolkits prune), per layer."""
    layers = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        values = np.asarray(kernel)
        layers.append({"layer": layer.name, "size": int(values.size),
                       "zeros": int(np.count_nonzero(values == 0))})
    return layers


def tflite_ours(model, sparse):
    from keras_compress.export import to_tflite

    return to_tflite(model, sparse=sparse)


def tflite_tf_keras(model, sparse):
    """tf_keras model -> float32 TFLite with the converter options that
    `keras_compress.export.to_tflite(..., sparse=...)` sets (no quantization,
    `EXPERIMENTAL_SPARSITY` when sparse, dynamic batch)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    return converter.convert()


def file_stats(data):
    from keras_compress.analysis import summarize

    return {
        "tflite_bytes": len(data),
        "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
        # Bytes of the constant tensors (weights, biases, sparse indices)
        # the file stores: the part pruning can shrink, without the graph.
        "constant_bytes": int(summarize(data).totals.bytes_stored),
    }


def clear_sessions():
    """Frees the previous run's models and graphs in both frameworks."""
    import keras
    import tf_keras

    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    gc.collect()


def run_arm(arm, sparsity, task, data, weights, stream, cfg, seed):
    """Trains one arm once (timed) and measures the result (untimed)."""
    import keras
    import tf_keras

    (x_train, _), (x_test, y_test) = data
    input_shape = x_train.shape[1:]
    clear_sessions()
    start = time.perf_counter()
    if arm == "dense":
        model = train_dense(keras, task, input_shape, weights, stream, cfg)
    elif arm == "dense_tf_keras":
        model = train_dense(tf_keras, task, input_shape, weights, stream, cfg)
    elif arm == "ours":
        model = train_ours(task, input_shape, weights, stream, cfg, sparsity)
    elif arm == "tfmot":
        model = train_tfmot(task, input_shape, weights, stream, cfg, sparsity)
    else:
        raise ValueError(arm)
    train_s = time.perf_counter() - start

    layers = kernel_zeros(model)
    zeros = sum(layer["zeros"] for layer in layers)
    size = sum(layer["size"] for layer in layers)
    export = tflite_tf_keras if arm in ("tfmot", "dense_tf_keras") else tflite_ours
    record = {
        "seed": seed,
        "accuracy": accuracy(model, x_test, y_test),
        "train_s": train_s,
        "sparsity": zeros / size,
        **file_stats(export(model, sparse=sparsity is not None)),
        "layers": layers,
    }
    if sparsity is not None:
        # The most zeros any layer is away from round(sparsity * size).
        record["max_layer_zeros_off_target"] = max(
            abs(layer["zeros"] - round(sparsity * layer["size"])) for layer in layers
        )
    return record


def warm_up():
    """One untimed mini-fit per framework and pruning toolkit, so process-wide
    first-use costs are not charged to whichever arm happens to run first."""
    import keras
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(16, 40, 1)).astype("float32")
    y = np.arange(16, dtype="int32") % 10
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    cfg = {"learning_rate": 3e-3, "epochs": 1, "steps_per_epoch": 2,
           "end_step": 2, "frequency": 1}
    weights = build_model(keras, "mnist1d", (40, 1)).get_weights()
    train_ours("mnist1d", (40, 1), weights, stream, cfg, 0.5)
    train_tfmot("mnist1d", (40, 1), weights, stream, cfg, 0.5)
    clear_sessions()


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
        weights = build_model(keras, task, x_train.shape[1:]).get_weights()
        stream = batch_stream(*data[0], cfg["epochs"], cfg["batch_size"], seed)
        shift = (repeat * len(jobs)) // args.repeats
        for arm, sparsity in jobs[shift:] + jobs[:shift]:
            record = run_arm(arm, sparsity, task, data, weights, stream, cfg, seed)
            runs[(arm, sparsity)].append(record)
            label = arm if sparsity is None else f"{arm} @ {sparsity:g}"
            log(f"  repeat {repeat + 1}/{args.repeats}  {label:<17} "
                f"acc {100 * record['accuracy']:6.2f}%  sparsity "
                f"{100 * record['sparsity']:6.2f}%  {record['train_s']:6.1f} s  "
                f"{record['tflite_bytes']:>8,} B")

    model = build_model(keras, task, x_train.shape[1:])
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


def check_peer():
    """Imports tf_keras and tfmot, or exits with a clear message."""
    try:
        import tensorflow_model_optimization  # noqa: F401
        import tf_keras  # noqa: F401
    except ImportError as e:
        sys.exit(f"This benchmark needs tfmot and tf_keras (the `bench` extra: "
                 f"pip install tensorflow-model-optimization tf_keras): {e}")


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = machine_info("tf_keras", "tensorflow-model-optimization")

    def log(text):
        print(text, flush=True)

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
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = list(os.getloadavg())
    log(f"[{steps}/{steps}] Results (medians over {args.repeats} repeat(s))")
    for task in tasks.values():
        log(f"\n### {task['title']} ({task['params']:,} parameters, "
            f"{task['prunable_params']:,} in pruned kernels)\n")
        log(results_table(task))
        log("")
        log(ratio_table(task))
    log("\nTargets:")
    log(target_lines(targets))

    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/pruning_vs_tfmot.py", *given])
    result = {
        "benchmark": "pruning_vs_tfmot",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": {
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
        },
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "tasks": tasks,
        "targets": targets,
    }
    write_results(args.output, result)
    log(f"\nWrote {args.output} ({elapsed:.0f} s)")
    return result


if __name__ == "__main__":
    main()
