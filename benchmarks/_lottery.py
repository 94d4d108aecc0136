"""The lottery ticket runs of `lottery_ticket.py`: data, the MLP, the
ticket search with `LotteryTicket` and the retraining runs of one seed,
each recorded every epoch (validation loss and accuracy, test accuracy).
"""

import time

import numpy as np

HIDDEN = (100, 100)
NUM_CLASSES = 10
VALIDATION = 500
BATCH_SIZE = 100
RATE = 0.2
# Rounds of IMP after which the mask is kept: 0.8**r of the weights remain.
TICKET_ROUNDS = (3, 7, 11)
# Offset of the seeds of the random re-initializations (never a theta_0 seed).
REINIT_SEED_OFFSET = 10_000

def load_data():
    """`(train, validation, test)` pairs of flattened MNIST-1D."""
    from keras_compress.datasets import load_mnist1d

    (x, y), (x_test, y_test) = load_mnist1d()
    x = x.reshape(len(x), -1)
    x_test = x_test.reshape(len(x_test), -1)
    split = len(x) - VALIDATION
    return (x[:split], y[:split]), (x[split:], y[split:]), (x_test, y_test)


def steps_per_epoch(train):
    return -(-len(train[0]) // BATCH_SIZE)


def build_mlp(seed, input_dim=40):
    """MLP 40-100-100-10 with explicit layer names (mask keys), seeded init."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_dim,), name="x")
    x = inputs
    for k, units in enumerate(HIDDEN, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{k}")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, name="out")(x)
    return keras.Model(inputs, outputs, name="mlp")


def compile_model(model, lr, steps_per_execution):
    import keras

    # One compiled call per epoch (the model is tiny, so Python's per-step
    # overhead would dominate); the mask constraints still run every step.
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )
    return model


def make_tracker(validation, test):
    """A callback that records validation loss/accuracy and test accuracy
    before training and after every epoch, keyed by optimizer step."""
    import keras

    (x_val, y_val), (x_test, y_test) = validation, test
    x_all = np.concatenate([x_val, x_test])
    n_val = len(x_val)

    class Tracker(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve = []

        def _record(self):
            logits = np.asarray(self.model(x_all, training=False), dtype="float64")
            val, tst = logits[:n_val], logits[n_val:]
            shifted = val - val.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            self.curve.append({
                "step": int(self.model.optimizer.iterations),
                "val_loss": float(-log_probs[np.arange(n_val), y_val].mean()),
                "val_acc": float((val.argmax(axis=1) == y_val).mean()),
                "test_acc": float((tst.argmax(axis=1) == y_test).mean()),
            })

        def on_train_begin(self, logs=None):
            self._record()

        def on_epoch_end(self, epoch, logs=None):
            self._record()

    return Tracker()


def summarize_curve(curve):
    best = min(range(len(curve)), key=lambda i: curve[i]["val_loss"])
    return {
        "test_acc": curve[-1]["test_acc"],
        "val_acc": curve[-1]["val_acc"],
        "best_val_loss": curve[best]["val_loss"],
        "early_stop_step": curve[best]["step"],
        "test_acc_at_early_stop": curve[best]["test_acc"],
        "val_acc_at_early_stop": curve[best]["val_acc"],
        "final_step": curve[-1]["step"],
    }


def compact_curve(curve):
    """Curve as parallel lists, rounded, for the JSON file."""
    return {
        "step": [c["step"] for c in curve],
        "val_loss": [round(c["val_loss"], 4) for c in curve],
        "test_acc": [round(c["test_acc"], 3) for c in curve],
    }


def find_tickets(theta0, seed, data, args, log):
    """Runs IMP with `LotteryTicket`; returns masks after TICKET_ROUNDS and
    what the search itself measured in each round."""
    import keras

    from keras_compress.callbacks import LotteryTicket
    from keras_compress.pruning import get_masks

    train, validation, test = data
    rounds = max(TICKET_ROUNDS)
    model = build_mlp(seed)
    model.set_weights(theta0)
    compile_model(model, args.lr, steps_per_epoch(train))
    ticket = LotteryTicket(epochs_per_round=args.round_epochs, rounds=rounds,
                           rate=RATE, rewind_step=0, scope="layer")
    masks, logged_sparsity = {}, {}

    class KeepMasks(keras.callbacks.Callback):
        # After `ticket` in the callback list: sees the round's new mask.
        def on_epoch_end(self, epoch, logs=None):
            finished = epoch + 1
            if finished % args.round_epochs == 0:
                r = finished // args.round_epochs
                if r in TICKET_ROUNDS:
                    masks[r] = get_masks(self.model)
                    logged_sparsity[r] = float(logs["sparsity"])

    # Before `ticket`: measures the trained weights before pruning/rewinding.
    tracker = make_tracker(validation, test)
    keras.utils.set_random_seed(seed)
    model.fit(*train, batch_size=BATCH_SIZE, epochs=args.round_epochs * (rounds + 1),
              verbose=0, shuffle=True, callbacks=[tracker, ticket, KeepMasks()])
    per_round = []
    for r in range(rounds + 1):
        # Round r trains the network pruned r times (r = 0: dense).
        start = r * args.round_epochs
        curve = tracker.curve[start:start + args.round_epochs + 1]
        per_round.append({
            "round": r,
            "remaining_nominal": (1 - RATE) ** r,
            "best_val_loss": min(c["val_loss"] for c in curve[1:]),
            "test_acc_end_of_round": curve[-1]["test_acc"],
        })
    return masks, logged_sparsity, per_round


def train_run(model, seed, data, args):
    import keras

    train, validation, test = data
    compile_model(model, args.lr, steps_per_epoch(train))
    tracker = make_tracker(validation, test)
    # Same minibatch order for every variant of a seed.
    keras.utils.set_random_seed(seed)
    model.fit(*train, batch_size=BATCH_SIZE, epochs=args.epochs, verbose=0,
              shuffle=True, callbacks=[tracker])
    return tracker.curve


def mask_stats(masks):
    kept = sum(int(np.count_nonzero(m)) for m in masks.values())
    total = sum(int(m.size) for m in masks.values())
    return {
        "remaining": kept / total,
        "kept_weights": kept,
        "total_weights": total,
        "per_layer": {k: float(np.count_nonzero(m) / m.size) for k, m in masks.items()},
        "per_layer_kept": {k: int(np.count_nonzero(m)) for k, m in masks.items()},
        "per_layer_size": {k: int(m.size) for k, m in masks.items()},
    }


def leaked_weights(model, masks):
    """Nonzero weights where the mask is zero (must be 0 after training)."""
    from keras_compress.pruning import prunable_weights
    from keras_compress.weights import weight_key

    leaked = 0
    for item in prunable_weights(model):
        key = weight_key(item)
        if key in masks:
            w = np.asarray(item.variable.numpy())
            leaked += int(np.count_nonzero(w[masks[key] == 0]))
    return leaked


def run_seed(seed, data, args, log):
    from keras_compress.pruning import set_masks

    t0 = time.perf_counter()
    theta0 = build_mlp(seed).get_weights()
    masks, logged_sparsity, search_rounds = find_tickets(theta0, seed, data, args, log)
    log(f"  seed {seed}: ticket search {args.round_epochs} x {max(TICKET_ROUNDS) + 1} "
        f"epochs ({time.perf_counter() - t0:.0f} s)")
    nested = all(
        np.all(masks[b][k] <= masks[a][k])
        for a, b in zip(TICKET_ROUNDS, TICKET_ROUNDS[1:]) for k in masks[a]
    )
    runs = {}

    def record(name, model, r, curve, masks_r=None):
        summary = summarize_curve(curve)
        runs[name] = {
            **summary,
            "round": r,
            "leaked_weights": leaked_weights(model, masks_r) if masks_r else 0,
            "curve": compact_curve(curve),
        }
        log(f"    {name:<12} test {100 * summary['test_acc']:.1f}%  "
            f"early stop @ {summary['early_stop_step']:>5} "
            f"(test {100 * summary['test_acc_at_early_stop']:.1f}%)")

    model = build_mlp(seed)
    model.set_weights(theta0)
    record("dense", model, 0, train_run(model, seed, data, args))
    for r in TICKET_ROUNDS:
        model = build_mlp(seed)
        model.set_weights(theta0)
        set_masks(model, masks[r])
        record(f"ticket_r{r}", model, r, train_run(model, seed, data, args), masks[r])
    for r in TICKET_ROUNDS:
        model = build_mlp(REINIT_SEED_OFFSET + 100 * seed + r)
        set_masks(model, masks[r])
        record(f"random_r{r}", model, r, train_run(model, seed, data, args), masks[r])
    log(f"  seed {seed} done ({time.perf_counter() - t0:.0f} s)")
    return {
        "seed": seed,
        "masks": {str(r): {**mask_stats(masks[r]),
                           "nominal_remaining": (1 - RATE) ** r,
                           "callback_logged_sparsity": logged_sparsity[r]}
                  for r in TICKET_ROUNDS},
        "masks_nested": bool(nested),
        "search_rounds": search_rounds,
        "runs": runs,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
