"""Which early-exit head classifies shallow features best per MAC.

Per task and seed, the plain backbone of `_early_exit_latency` (a
MobileNet-style CNN on 32x32 digits, a 1-D CNN on MNIST-1D) is trained
with that benchmark's recipe; its feature maps at the two exit points are
computed once, and every candidate head (an `EarlyExitHead` configuration)
is trained on them alone (Adam 3e-3, 15 epochs, batch 64, the backbone
frozen: the question is what a head makes of the features a backbone has
at that depth). Reported: each head's test accuracy at each exit, its
parameters and MACs (`summarize`), and its MACs as a fraction of the
backbone's MACs up to the exit.

The default head is the one with the most accuracy per MAC at the exit:
per task and exit, each head's test accuracy divided by what a sample
leaving there costs (the backbone's MACs up to the exit plus the head's),
relative to the best head's; the head with the highest mean of that ratio
over tasks and exits wins. A head that costs as much as a block defeats the
exit; one that is cheap but guesses does too.

`quick=True` is a smoke test: 1 backbone epoch, 1 head epoch, 3 heads.
"""

import time

import numpy as np

import _early_exit_latency as latency  # noqa: E402
from _harness import markdown_table  # noqa: E402
from _harness import median  # noqa: E402

HEADS = {
    "gap": {},
    "gap_hidden64": {"hidden_units": 64},
    "conv32_gap": {"filters": 32},
    "grid2": {"grid": 2},
    "grid2_hidden64": {"grid": 2, "hidden_units": 64},
    "grid4": {"grid": 4},
}
QUICK_HEADS = ("gap", "grid2", "grid4")
HEAD_EPOCHS = 15
TASKS = latency.TASKS


def _features(backbone, names, x):
    import keras

    outputs = [backbone.get_layer(n).output for n in names]
    return [np.asarray(f) for f in keras.Model(backbone.inputs, outputs).predict(
        x, batch_size=256, verbose=0)]


def _train_head(config, f_train, y_train, f_test, y_test, epochs, seed):
    import keras

    from keras_compress.analysis import summarize
    from keras_compress.layers.early_exit import EarlyExitHead

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(f_train.shape[1:])
    model = keras.Model(inputs, EarlyExitHead(10, **config)(inputs))
    model.compile(keras.optimizers.Adam(3e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(f_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    totals = summarize(model).totals
    accuracy = float(np.mean(np.asarray(model.predict(f_test, verbose=0)).argmax(-1) == y_test))
    return {"accuracy": accuracy, "macs": int(totals.macs), "params": int(totals.params)}


def _up_to(backbone, name):
    """MACs of the backbone from its input to layer `name`."""
    import keras

    from keras_compress.analysis import summarize

    return int(summarize(keras.Model(backbone.inputs,
                                     backbone.get_layer(name).output)).totals.macs)


def run(tasks, seeds, quick, log):
    start = time.perf_counter()
    heads = {k: HEADS[k] for k in (QUICK_HEADS if quick else HEADS)}
    epochs = 1 if quick else HEAD_EPOCHS
    results = {}
    for name in tasks:
        settings = TASKS[name]
        (x, y), (x_test, y_test) = latency._load(name)
        n_val = settings["validation"]
        x, y = x[:-n_val], y[:-n_val]
        points = list(settings["exit_points"])
        per_seed = []
        for seed in range(seeds):
            backbone = latency._fit(latency._build(name, seed), x, y,
                                    1 if quick else settings["epochs"], False)
            train, test = _features(backbone, points, x), _features(backbone, points, x_test)
            budget = [_up_to(backbone, p) for p in points]
            rows = {}
            for key, config in heads.items():
                rows[key] = [_train_head(config, train[j], y, test[j], y_test, epochs, seed)
                             for j in range(len(points))]
                log(f"  {name} seed {seed} {key}: acc "
                    + " / ".join(f"{100 * r['accuracy']:.1f}" for r in rows[key])
                    + "; MACs " + " / ".join(f"{r['macs']:,}" for r in rows[key]))
            per_seed.append({"seed": seed, "backbone_macs_to_exit": budget, "heads": rows})
        results[name] = {"title": settings["title"], "exit_points": points,
                         "seeds": per_seed, "summary": _summary(per_seed, heads)}
    choice = _choose(results, heads)
    log(f"  default head: {choice}")
    return {"benchmark": "early_exit_heads",
            "settings": {"heads": heads, "head_epochs": epochs,
                         "training": "heads alone on the frozen backbone's features, "
                                     "Adam 3e-3, batch 64"},
            "elapsed_s": round(time.perf_counter() - start, 1),
            "tasks": results, "choice": choice}


def _summary(per_seed, heads):
    out = {}
    for key in heads:
        exits = len(per_seed[0]["heads"][key])
        out[key] = {
            "accuracy": [median(s["heads"][key][j]["accuracy"] for s in per_seed)
                         for j in range(exits)],
            "macs": [per_seed[0]["heads"][key][j]["macs"] for j in range(exits)],
            "params": [per_seed[0]["heads"][key][j]["params"] for j in range(exits)],
            "macs_fraction": [per_seed[0]["heads"][key][j]["macs"]
                              / per_seed[0]["backbone_macs_to_exit"][j]
                              for j in range(exits)],
        }
    return out


def _choose(results, heads):
    """The head with the most accuracy per MAC at the exit (see above)."""
    scores = {key: [] for key in heads}
    for task in results.values():
        budget = task["seeds"][0]["backbone_macs_to_exit"]
        for j, macs in enumerate(budget):
            value = {key: task["summary"][key]["accuracy"][j]
                     / (macs + task["summary"][key]["macs"][j]) for key in heads}
            best = max(value.values())
            for key in heads:
                scores[key].append(value[key] / best if best > 0 else 0.0)
    means = {key: float(np.mean(v)) for key, v in scores.items()}
    head = max(means, key=means.get)
    return {"head": head, "config": heads[head], "relative_accuracy_per_mac": means}


def tables(result):
    parts = []
    for task in result["tasks"].values():
        rows = []
        for key, s in task["summary"].items():
            rows.append([key] + [f"{100 * a:.1f}" for a in s["accuracy"]]
                        + [f"{m:,}" for m in s["macs"]]
                        + [f"{100 * f:.1f}" for f in s["macs_fraction"]])
        exits = len(task["exit_points"])
        header = (["head"] + [f"exit {j} acc %" for j in range(exits)]
                  + [f"exit {j} MACs" for j in range(exits)]
                  + [f"exit {j} MACs % of backbone" for j in range(exits)])
        parts.append(f"{task['title']} (median of {len(task['seeds'])} seed(s))\n\n"
                     + markdown_table(header, rows))
    choice = result["choice"]
    parts.append("Accuracy per MAC at the exit, relative to the best head (mean over "
                 "tasks and exits): " + ", ".join(
                     f"{k} {v:.3f}" for k, v in choice["relative_accuracy_per_mac"].items())
                 + f". Default head: {choice['head']} {choice['config']}")
    return "\n\n".join(parts)
