"""Cheaper architectures: low-rank dense layers and depthwise-separable convs.

A benchmark section module: `run(tasks, seeds, quick, log)` returns a
JSON-serializable dict, `tables(result)` renders it as markdown. Two parts:

1. Low-rank MLP (tasks "mnist1d" and "digits"). An MLP with two hidden
   layers of 256 units (ReLU) is trained in float (Adam 1e-3, batch 64,
   `E` epochs). `keras_compress.factorization.factorize(model, energy=e)`
   then replaces each Dense layer by an SVD-initialized `LowRankDense`
   keeping a fraction `e` of the squared singular values (layers whose
   factorization would not save parameters stay dense), and the result is
   fine-tuned `F` epochs (Adam 3e-4). Side by side, per energy: parameters
   (and ratio vs dense), test accuracy right after `factorize`, after
   fine-tuning, and of the same low-rank architecture (same ranks) trained
   from scratch for `E + F` epochs (Adam 1e-3). The dense model is also
   trained `F` more epochs (Adam 3e-4) so that every column saw `E + F`
   epochs.
2. Depthwise-separable vs standard convolution (task "digits", 8x8x1):
   a standard CNN Conv2D(32, 3) - Conv2D(64, 3, stride 2) - Conv2D(64, 3)
   (each without bias, BatchNormalization(momentum=0.9), ReLU), global
   average pooling, Dense(10); a separable CNN with the same first conv
   (a depthwise conv on one input channel is degenerate; MobileNets keep a
   standard first conv too) and `DepthwiseSeparableConv2D(batch_norm=True,
   depthwise_activation="relu", activation="relu")` blocks for the other
   two, both trained from scratch for `E` epochs; and the trained standard
   CNN converted by `to_depthwise_separable(model, x_train[:512],
   layers=["conv1", "conv2"])` (SVD initialization + least squares on the
   layers' real inputs), evaluated right away and after `F` epochs of
   fine-tuning (Adam 3e-4). Parameters and MACs come from
   `keras_compress.analysis.summarize`; latency from the float32 TFLite
   export (batch 1) in LiteRT with XNNPACK and 1 thread, all models of a
   seed timed alternately within each repeat (rotating order) with the
   timing loop of `_harness.litert_latency`: median over repeats
   of each repeat's median. The same architectures are also timed with a
   64x64x1 input (random weights, no training) to show where the MAC
   savings become time savings; at 8x8 a model runs in microseconds and
   the per-operator overhead dominates.

Every figure is stored per seed and as the median over seeds.
"""

import time

import numpy as np

BATCH_SIZE = 64
LR = 1e-3
FINETUNE_LR = 3e-4
MLP_HIDDEN = (256, 256)
ENERGIES = (0.5, 0.7, 0.9, 0.99)
QUICK_ENERGIES = (0.5,)
MLP_EPOCHS = {"mnist1d": (30, 5), "digits": (20, 5)}  # (E, F)
QUICK_EPOCHS = (2, 1)
BN_MOMENTUM = 0.9

# -- helpers -------------------------------------------------------------

def _stat(values):
    values = [float(v) for v in values]
    return {"median": float(np.median(values)), "per_seed": values}


def _load(task):
    from keras_compress.datasets import load_digits, load_mnist1d

    (x, y), (xt, yt) = load_mnist1d() if task == "mnist1d" else load_digits()
    return (x, y), (xt, yt)


def _train(model, lr, x, y, epochs, seed):
    """Compiles `model` (Adam(lr), fresh optimizer) and fits it `epochs`."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # One compiled call per epoch: the models are tiny and Python's
        # per-step overhead would dominate (same updates, same order).
        steps_per_execution=-(-len(x) // BATCH_SIZE),
    )
    if epochs > 0:
        keras.utils.set_random_seed(seed)
        model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    return model


def _accuracy(model, data):
    x, y = data
    logits = np.asarray(model.predict(x, batch_size=512, verbose=0))
    return float((logits.argmax(axis=1) == y).mean())


def _cost(model):
    from keras_compress.analysis import summarize

    totals = summarize(model).totals
    return int(totals.params), int(totals.macs or 0)


# -- part 1: low-rank MLP ------------------------------------------------

def _mlp(input_dim, ranks, seed):
    """The MLP; `ranks[i]` None keeps layer i dense, else LowRankDense."""
    import keras
    from keras import layers

    from keras_compress.layers.factorized import LowRankDense

    keras.utils.set_random_seed(seed)
    units = list(MLP_HIDDEN) + [10]
    out = [keras.Input((input_dim,))]
    for i, (n, rank) in enumerate(zip(units, ranks)):
        activation = "relu" if i < len(MLP_HIDDEN) else None
        name = f"fc{i}" if i < len(MLP_HIDDEN) else "out"
        if rank is None:
            out.append(layers.Dense(n, activation=activation, name=name))
        else:
            out.append(LowRankDense(n, rank, activation=activation, name=name))
    return keras.Sequential(out, name="mlp")


def _mlp_seed(task, data, seed, energies, epochs, finetune_epochs, log):
    from keras_compress.factorization import factorize

    (x, y), test = data
    x = x.reshape(len(x), -1)
    test = (test[0].reshape(len(test[0]), -1), test[1])
    start = time.perf_counter()
    dense = _train(_mlp(x.shape[1], [None] * 3, seed), LR, x, y, epochs, seed)
    dense_params, dense_macs = _cost(dense)
    result = {"dense": {"params": dense_params, "macs": dense_macs,
                        "test_acc": _accuracy(dense, test)}}
    rows = []
    for energy in energies:
        small, report = factorize(dense, energy=energy, return_report=True)
        params, macs = _cost(small)
        if params != report.params_after:
            raise RuntimeError(f"report params {report.params_after} != {params}")
        ranks = [r["rank"] if r["replaced"] else None for r in report.layers]
        row = {"energy": energy, "params": params, "macs": macs,
               "param_ratio": dense_params / params,
               "ranks": ranks,
               "kept_energy": [r["kept_energy"] for r in report.layers],
               "acc_factorized": _accuracy(small, test)}
        _train(small, FINETUNE_LR, x, y, finetune_epochs, seed)
        row["acc_finetuned"] = _accuracy(small, test)
        scratch = _mlp(x.shape[1], ranks, seed)
        if _cost(scratch)[0] != params:
            raise RuntimeError("the from-scratch architecture differs")
        _train(scratch, LR, x, y, epochs + finetune_epochs, seed)
        row["acc_scratch"] = _accuracy(scratch, test)
        rows.append(row)
    # The dense model, trained F more epochs like the fine-tuned ones.
    _train(dense, FINETUNE_LR, x, y, finetune_epochs, seed)
    result["dense"]["test_acc_plus_f"] = _accuracy(dense, test)
    result["rows"] = rows
    log(f"  {task} seed {seed}: dense {100 * result['dense']['test_acc']:.1f}%; "
        + ", ".join(f"e={r['energy']}: {r['param_ratio']:.2f}x, "
                    f"{100 * r['acc_finetuned']:.1f}%" for r in rows)
        + f" ({time.perf_counter() - start:.0f} s)")
    return result


def _mlp_task(task, seeds, quick, log):
    energies = QUICK_ENERGIES if quick else ENERGIES
    epochs, finetune = QUICK_EPOCHS if quick else MLP_EPOCHS[task]
    data = _load(task)
    runs = [_mlp_seed(task, data, s, energies, epochs, finetune, log)
            for s in range(seeds)]
    dense = runs[0]["dense"]
    out = {
        "settings": {"hidden": list(MLP_HIDDEN), "epochs": epochs,
                     "finetune_epochs": finetune, "energies": list(energies),
                     "input_dim": int(np.prod(data[0][0].shape[1:]))},
        "dense": {
            "params": dense["params"],
            "macs": dense["macs"],
            "test_acc": _stat([r["dense"]["test_acc"] for r in runs]),
            "test_acc_plus_f": _stat([r["dense"]["test_acc_plus_f"] for r in runs]),
        },
        "rows": [],
    }
    for i, energy in enumerate(energies):
        rows = [r["rows"][i] for r in runs]
        out["rows"].append({
            "energy": energy,
            "ranks_per_seed": [r["ranks"] for r in rows],
            "params": _stat([r["params"] for r in rows]),
            "macs": _stat([r["macs"] for r in rows]),
            "param_ratio": _stat([r["param_ratio"] for r in rows]),
            "acc_factorized": _stat([r["acc_factorized"] for r in rows]),
            "acc_finetuned": _stat([r["acc_finetuned"] for r in rows]),
            "acc_scratch": _stat([r["acc_scratch"] for r in rows]),
        })
    return out

# -- entry points ----------------------------------------------------------

def run(tasks, seeds, quick, log):
    """Runs both parts; returns the results dict (see the module doc).

    Args:
        tasks: Names among "mnist1d" and "digits". The low-rank MLP runs on
            each; the separable CNN on "digits".
        seeds: Number of seeds (0 .. seeds-1).
        quick: Smoke test: 2 + 1 epochs, one energy (0.5), one latency repeat,
            no 64x64 latency rows.
        log: A print-like function for progress lines.
    """
    import logging

    unknown = [t for t in tasks if t not in ("mnist1d", "digits")]
    if unknown:
        raise ValueError(
            f"Expected tasks among ['mnist1d', 'digits']. Received: tasks={tasks!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"Expected `seeds` to be an int >= 1. Received: seeds={seeds!r}")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.perf_counter()
    result = {
        "section": "architecture",
        "settings": {
            "seeds": seeds, "quick": bool(quick), "tasks": list(tasks),
            "batch_size": BATCH_SIZE,
            "optimizer": f"Adam({LR}) for training, Adam({FINETUNE_LR}) for "
                         "fine-tuning",
            "params_macs": "keras_compress.analysis.summarize(model).totals",
            "latency": "float32 TFLite (batch 1) in LiteRT, XNNPACK, 1 thread; "
                       "models of a seed timed alternately per repeat "
                       "(_harness.litert_latency); median over repeats",
            "accuracy": "Keras model on the test split after the last epoch",
        },
        "low_rank_mlp": {},
    }
    for task in tasks:
        log(f"[architecture] low-rank MLP on {task}")
        result["low_rank_mlp"][task] = _mlp_task(task, seeds, quick, log)
    if "digits" in tasks:
        log("[architecture] depthwise-separable vs standard CNN on digits")
        import _separable  # it imports this module's helpers
        result["separable_cnn"] = {"digits": _separable._cnn_task(seeds, quick, log)}
    result["elapsed_s"] = round(time.perf_counter() - start, 1)
    return result


def _pct(stat):
    values = stat["per_seed"]
    text = f"{100 * stat['median']:.1f}"
    if len(values) > 1:
        text += " (" + " / ".join(f"{100 * v:.1f}" for v in values) + ")"
    return text


def tables(result):
    """Markdown tables and a few summary lines from `run`'s result."""
    lines = []
    for task, t in result.get("low_rank_mlp", {}).items():
        s = t["settings"]
        lines.append(
            f"**Low-rank MLP, {task}** ({s['input_dim']}-{'-'.join(map(str, s['hidden']))}-10, "
            f"E={s['epochs']}, F={s['finetune_epochs']}; test accuracy %, median "
            "(per seed))\n")
        lines.append("| model | ranks (seed 0) | params | vs dense | after factorize "
                     "| + F epochs | same ranks from scratch (E+F) |")
        lines.append("|---|---|---:|---:|---:|---:|---:|")
        d = t["dense"]
        lines.append(f"| dense | - | {d['params']:,} | 1.00x | {_pct(d['test_acc'])} "
                     f"| {_pct(d['test_acc_plus_f'])} | - |")
        for r in t["rows"]:
            ranks = "/".join("-" if k is None else str(k) for k in r["ranks_per_seed"][0])
            lines.append(
                f"| energy {r['energy']} | {ranks} | {int(r['params']['median']):,} "
                f"| {r['param_ratio']['median']:.2f}x | {_pct(r['acc_factorized'])} "
                f"| {_pct(r['acc_finetuned'])} | {_pct(r['acc_scratch'])} |")
        lines.append("")
    cnn = result.get("separable_cnn", {}).get("digits")
    if cnn is not None:
        s = cnn["settings"]
        lines.append(
            f"**Depthwise-separable vs standard CNN, digits 8x8x1** (E={s['epochs']}, "
            f"F={s['finetune_epochs']}; LiteRT float32, XNNPACK, 1 thread, batch 1, "
            f"{s['latency']['repeats']} interleaved repeats)\n")
        lines.append("| model | params | vs std | MACs | vs std | latency ms | speedup "
                     "| test acc % |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        from _separable import CNN_VARIANTS

        for name, _ in CNN_VARIANTS:
            r = cnn["rows"][name]
            lines.append(
                f"| {r['label']} | {r['params']:,} | {r['param_ratio']:.2f}x "
                f"| {r['macs']:,} | {r['mac_ratio']:.2f}x "
                f"| {r['latency_ms']['median']:.4f} | {r['speedup']['median']:.2f}x "
                f"| {_pct(r['test_acc'])} |")
        errors = [layer for conv in cnn["conversion"] for layer in conv["layers"]]
        if errors:
            lines.append("")
            lines.append("to_depthwise_separable output error (relative, pre-activation, "
                         "seed 0): " + "; ".join(
                             f"{e['name']}: SVD {e['relative_error_init']:.3f} -> "
                             f"fitted {e['relative_error']:.3f}"
                             for e in cnn["conversion"][0]["layers"]))
        scaled = cnn.get("scaled")
        if scaled:
            std, sep = scaled["standard"], scaled["separable"]
            lines.append("")
            lines.append(
                f"Same architectures at {'x'.join(map(str, scaled['input_shape']))} "
                f"(random weights): MACs {std['macs']:,} vs {sep['macs']:,} "
                f"({scaled['mac_ratio']:.2f}x fewer), latency "
                f"{std['latency_ms']['median']:.3f} vs {sep['latency_ms']['median']:.3f} ms "
                f"({scaled['speedup']['median']:.2f}x faster).")
    if "elapsed_s" in result:
        lines.append("")
        lines.append(f"Elapsed: {result['elapsed_s']:.0f} s.")
    return "\n".join(lines)
