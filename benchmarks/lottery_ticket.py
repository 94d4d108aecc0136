"""The lottery ticket hypothesis on an MNIST-1D MLP, with `LotteryTicket`.

Reproduces the claim of Frankle & Carbin (ICLR 2019) on a small network:
winning tickets found by iterative magnitude pruning (IMP) with rewinding
to the original initialization, at 10-20% of the weights, learn faster
(reach their minimum validation loss in fewer iterations) than the
original network and match or beat its test accuracy; the same sparse
architectures randomly re-initialized learn slower and do worse.

Setup (per seed; every seed draws its own initialization theta_0):

- Data: MNIST-1D (`keras_compress.datasets.load_mnist1d`, the published
  4000/1000 split), flattened to 40 features. The last 500 training
  sequences are the validation set; the model trains on the first 3500.
- Model: MLP 40-100-100-10 (Dense layers `fc1`, `fc2`, `out`; ReLU;
  Glorot-uniform kernels, zero biases), Adam (lr 1e-3), batch 100 (35
  steps per epoch), cross-entropy on logits.
- Ticket search: one `fit` with `LotteryTicket(epochs_per_round=R,
  rounds=11, rate=0.2, rewind_step=0, scope="layer")` for `R * 12` epochs
  from theta_0. Every kernel, the output layer's included, loses 20% of its
  remaining weights per round (the paper prunes the LeNet output layer at
  half the rate; not done here). A second callback copies `get_masks` after
  rounds 3, 7 and 11: 51.2%, 21.0% and 8.6% of the weights remain.
- Retraining, for each of the three masks, from a fresh model:
  (a) winning ticket: theta_0 (kernels and biases), `set_masks(mask)`;
  (b) random re-init: a new random initialization (another seed),
      `set_masks(mask)`;
  plus (c) the dense network from theta_0. All runs train for the same
  number of epochs with the same minibatch order (the seed's), a fresh Adam
  optimizer, and the masks fixed.
- Measured every epoch (35 steps) and before the first step: validation
  loss and accuracy, test accuracy (1000 test sequences). The
  early-stopping iteration is the optimizer step at which the validation
  loss is lowest; "test acc at early stop" is the test accuracy there.

The claims are checked on the medians over seeds and printed as PASS/FAIL
with the numbers they rest on. Results go to
`benchmarks/results/lottery_ticket.json` (per-seed values and curves).

Usage:

    python benchmarks/lottery_ticket.py              # defaults, ~10 min on 2 cores
    python benchmarks/lottery_ticket.py --quick      # smoke test, < 1 min, temp output
    python benchmarks/lottery_ticket.py --seeds 3 --epochs 80 --round-epochs 40
"""

import argparse
import json
import os
import re
import shlex
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _harness import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "lottery_ticket.json")

HIDDEN = (100, 100)
NUM_CLASSES = 10
VALIDATION = 500
BATCH_SIZE = 100
RATE = 0.2
# Rounds of IMP after which the mask is kept: 0.8**r of the weights remain.
TICKET_ROUNDS = (3, 7, 11)
# Offset of the seeds of the random re-initializations (never a theta_0 seed).
REINIT_SEED_OFFSET = 10_000
# "Match" tolerance for test accuracy, in accuracy points (0.01 = 1 pp,
# 10 of the 1000 test sequences; the binomial standard error is ~1.6 pp).
MATCH_TOLERANCE = 0.01


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Lottery tickets vs. random re-initialization vs. the "
        "dense network on an MNIST-1D MLP (Frankle & Carbin 2019).",
    )
    parser.add_argument("--seeds", type=int, default=5,
                        help="number of initializations theta_0 (seeds 0..N-1; "
                        "default 5)")
    parser.add_argument("--epochs", type=int, default=150,
                        help="epochs of every retraining run (35 steps each; "
                        "default 150 = 5250 steps)")
    parser.add_argument("--round-epochs", type=int, default=50,
                        help="epochs per IMP round in the ticket search "
                        "(default 50; the search trains 12 rounds)")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="Adam learning rate (default 1e-3)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 seed, 2 epochs per round, 6 epochs "
                        "per run; writes to a temporary folder unless "
                        "--output is given")
    parser.add_argument("--output", default=None,
                        help=f"JSON output path (default {os.path.relpath(DEFAULT_OUTPUT)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.round_epochs = 1, 6, 2
    for name in ("seeds", "epochs", "round_epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive int, "
                         f"got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    if args.output is None:
        if args.quick:
            import tempfile

            args.output = os.path.join(tempfile.gettempdir(), "lottery_ticket_quick.json")
        else:
            args.output = DEFAULT_OUTPUT
    return args


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


def variants():
    """`(row key, label, round)` in table order."""
    rows = [("dense", "dense", 0)]
    rows += [(f"ticket_r{r}", f"ticket {100 * 0.8 ** r:.2g}%", r) for r in TICKET_ROUNDS]
    rows += [(f"random_r{r}", f"random {100 * 0.8 ** r:.2g}%", r) for r in TICKET_ROUNDS]
    return rows


METRICS = ("test_acc", "early_stop_step", "test_acc_at_early_stop", "best_val_loss")


def aggregate(seed_results):
    rows = []
    for key, label, r in variants():
        per_seed = {m: [s["runs"][key][m] for s in seed_results] for m in METRICS}
        remaining = [1.0 if r == 0 else s["masks"][str(r)]["remaining"] for s in seed_results]
        rows.append({
            "variant": key,
            "label": label,
            "round": r,
            "remaining": float(np.median(remaining)),
            "remaining_nominal": (1 - RATE) ** r,
            **{f"median_{m}": float(np.median(v)) for m, v in per_seed.items()},
            **{f"mean_{m}": float(np.mean(v)) for m, v in per_seed.items()},
            "per_seed": per_seed,
            "leaked_weights": sum(s["runs"][key]["leaked_weights"] for s in seed_results),
            # Runs whose validation loss was still falling at the last
            # evaluation: their early-stopping iteration is a lower bound.
            "early_stop_at_end": sum(
                s["runs"][key]["early_stop_step"] == s["runs"][key]["final_step"]
                for s in seed_results),
        })
    return rows


def claim_checks(rows, seed_results):
    by = {row["variant"]: row for row in rows}
    dense = by["dense"]
    checks = []

    def fraction(key_a, key_b, metric, better):
        pairs = [(s["runs"][key_a][metric], s["runs"][key_b][metric]) for s in seed_results]
        return sum(better(a, b) for a, b in pairs), len(pairs)

    def add(claim, passed, detail, wins=None):
        checks.append({"claim": claim, "passed": bool(passed), "detail": detail,
                       **({"seeds_agreeing": f"{wins[0]}/{wins[1]}"} if wins else {})})

    for r in (7, 11):
        t, rnd = by[f"ticket_r{r}"], by[f"random_r{r}"]
        pct = f"{100 * 0.8 ** r:.2g}%"
        add(f"ticket {pct} reaches its best validation loss earlier than dense",
            t["median_early_stop_step"] < dense["median_early_stop_step"],
            f"median early-stop step {t['median_early_stop_step']:.0f} vs dense "
            f"{dense['median_early_stop_step']:.0f}",
            fraction(f"ticket_r{r}", "dense", "early_stop_step", lambda a, b: a < b))
        diff = t["median_test_acc_at_early_stop"] - dense["median_test_acc_at_early_stop"]
        add(f"ticket {pct} matches dense test accuracy at early stop "
            f"(median >= dense - {100 * MATCH_TOLERANCE:.0f} pp)",
            diff >= -MATCH_TOLERANCE - 1e-12,
            f"{100 * t['median_test_acc_at_early_stop']:.1f}% vs dense "
            f"{100 * dense['median_test_acc_at_early_stop']:.1f}% ({100 * diff:+.1f} pp)",
            fraction(f"ticket_r{r}", "dense", "test_acc_at_early_stop",
                     lambda a, b: a >= b - MATCH_TOLERANCE))
        diff = t["median_test_acc"] - dense["median_test_acc"]
        add(f"ticket {pct} matches dense test accuracy at the end of training "
            f"(median >= dense - {100 * MATCH_TOLERANCE:.0f} pp)",
            diff >= -MATCH_TOLERANCE - 1e-12,
            f"{100 * t['median_test_acc']:.1f}% vs dense "
            f"{100 * dense['median_test_acc']:.1f}% ({100 * diff:+.1f} pp)",
            fraction(f"ticket_r{r}", "dense", "test_acc",
                     lambda a, b: a >= b - MATCH_TOLERANCE))
        add(f"random re-init {pct} learns slower than the ticket (later early stop)",
            rnd["median_early_stop_step"] > t["median_early_stop_step"],
            f"median early-stop step {rnd['median_early_stop_step']:.0f} vs ticket "
            f"{t['median_early_stop_step']:.0f}",
            fraction(f"random_r{r}", f"ticket_r{r}", "early_stop_step", lambda a, b: a > b))
        diff = rnd["median_test_acc_at_early_stop"] - t["median_test_acc_at_early_stop"]
        add(f"random re-init {pct} does worse than the ticket (test accuracy at "
            "early stop)",
            diff < 0,
            f"{100 * rnd['median_test_acc_at_early_stop']:.1f}% vs ticket "
            f"{100 * t['median_test_acc_at_early_stop']:.1f}% ({100 * diff:+.1f} pp)",
            fraction(f"random_r{r}", f"ticket_r{r}", "test_acc_at_early_stop",
                     lambda a, b: a < b))
    return checks


def markdown_table(rows):
    header = ["variant", "weights remaining", "test acc", "early-stop iteration",
              "test acc at early stop"]
    align = ["---", "--:", "--:", "--:", "--:"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join([
            row["label"],
            f"{100 * row['remaining']:.1f}%",
            f"{100 * row['median_test_acc']:.1f}%",
            f"{row['median_early_stop_step']:.0f}" + (
                f" ({row['early_stop_at_end']}/{len(row['per_seed']['test_acc'])} "
                "at end)" if row["early_stop_at_end"] else ""),
            f"{100 * row['median_test_acc_at_early_stop']:.1f}%",
        ]) + " |")
    return "\n".join(lines)


def per_seed_table(rows, seeds):
    header = ["variant"] + [f"seed {s}" for s in seeds]
    lines = ["| " + " | ".join(header) + " |",
             "|---" + "|--:" * len(seeds) + "|"]
    for row in rows:
        ps = row["per_seed"]
        cells = [
            f"{100 * a:.1f}% / {s} / {100 * b:.1f}%"
            for a, s, b in zip(ps["test_acc"], ps["early_stop_step"],
                               ps["test_acc_at_early_stop"])
        ]
        lines.append("| " + " | ".join([row["label"]] + cells) + " |")
    return "\n".join(lines)


def to_json(result):
    """Indented JSON with every list of numbers on one line (the curves)."""
    text = json.dumps(result, indent=2)
    return re.sub(
        r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
        lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
        text,
    ) + "\n"


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = machine_info("mnist1d")

    def log(text):
        print(text, flush=True)

    import keras

    from keras_compress import _io

    if keras.backend.backend() == "jax":
        raise SystemExit("LotteryTicket needs the tensorflow or torch backend "
                         "(KERAS_BACKEND); got jax")
    _io.check_output_path(args.output, "--output")
    data = load_data()
    steps = steps_per_epoch(data[0])
    log(f"MNIST-1D MLP 40-{'-'.join(map(str, HIDDEN))}-{NUM_CLASSES}: "
        f"{len(data[0][0])} train / {len(data[1][0])} validation / "
        f"{len(data[2][0])} test, batch {BATCH_SIZE} ({steps} steps/epoch), "
        f"Adam {args.lr:g}; backend {keras.backend.backend()}")
    log(f"{args.seeds} seed(s); search {args.round_epochs} epochs/round x "
        f"{max(TICKET_ROUNDS) + 1} rounds; every run {args.epochs} epochs "
        f"({args.epochs * steps} steps)")

    seed_results = []
    for seed in range(args.seeds):
        log(f"[{seed + 1}/{args.seeds}] seed {seed}")
        seed_results.append(run_seed(seed, data, args, log))

    rows = aggregate(seed_results)
    checks = claim_checks(rows, seed_results)
    elapsed = time.perf_counter() - start

    log(f"\nMedians over {args.seeds} seed(s); iterations are optimizer steps "
        f"(batch {BATCH_SIZE}), validation every {steps} steps; "
        f"training {args.epochs * steps} steps per run.\n")
    log(markdown_table(rows))
    if any(row["early_stop_at_end"] for row in rows):
        log("\n\"(k/n at end)\": k of n runs had their lowest validation loss at "
            "the last evaluation, so their early-stopping iteration is a lower bound.")
    log("\nPer seed: test acc / early-stop iteration / test acc at early stop\n")
    log(per_seed_table(rows, [s["seed"] for s in seed_results]))
    log("\nClaim checks (medians over seeds):\n")
    for c in checks:
        agree = f" [{c['seeds_agreeing']} seeds]" if "seeds_agreeing" in c else ""
        log(f"- {'PASS' if c['passed'] else 'FAIL'}: {c['claim']}: {c['detail']}{agree}")

    sanity = {
        "leaked_weights_total": sum(row["leaked_weights"] for row in rows),
        "masks_nested_all_seeds": all(s["masks_nested"] for s in seed_results),
        "max_remaining_error_weights": max(
            abs(kept - size * 0.8 ** int(r))
            for s in seed_results for r, m in s["masks"].items()
            for kept, size in zip(m["per_layer_kept"].values(),
                                  m["per_layer_size"].values())
        ),
    }
    log(f"\nSanity: {sanity['leaked_weights_total']} pruned weights nonzero after "
        f"training; masks nested across rounds: {sanity['masks_nested_all_seeds']}; "
        f"largest per-layer deviation from 0.8**r of the weights: "
        f"{sanity['max_remaining_error_weights']:.2f} weights")

    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/lottery_ticket.py", *given])
    result = {
        "benchmark": "lottery_ticket",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": {
            "seeds": args.seeds,
            "epochs": args.epochs,
            "round_epochs": args.round_epochs,
            "lr": args.lr,
            "quick": args.quick,
            "optimizer": "Adam",
            "batch_size": BATCH_SIZE,
            "steps_per_epoch": steps,
            "steps_per_run": args.epochs * steps,
            "model": f"MLP 40-{'-'.join(map(str, HIDDEN))}-{NUM_CLASSES}, ReLU, "
                     "Dense layers fc1, fc2, out (Glorot-uniform kernels, zero biases)",
            "data": "MNIST-1D (load_mnist1d(seed=42)), flattened; train = first "
                    f"{len(data[0][0])} of 4000, validation = last {VALIDATION}, "
                    f"test = {len(data[2][0])}",
            "pruning": "LotteryTicket(epochs_per_round=round_epochs, rounds="
                       f"{max(TICKET_ROUNDS)}, rate={RATE}, rewind_step=0, "
                       "scope='layer'), fit for round_epochs * "
                       f"{max(TICKET_ROUNDS) + 1} epochs; every kernel pruned at "
                       "20%/round, the output layer included (not at half rate)",
            "ticket_rounds": list(TICKET_ROUNDS),
            "ticket": "fresh model, theta_0 kernels and biases, set_masks(mask)",
            "random_reinit": "fresh model, Glorot init with seed "
                             f"{REINIT_SEED_OFFSET} + 100 * seed + round, set_masks(mask)",
            "evaluation": "validation loss/accuracy and test accuracy before "
                          "training and after every epoch; early-stopping "
                          "iteration = step of the lowest validation loss",
            "match_tolerance": MATCH_TOLERANCE,
        },
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "rows": rows,
        "claims": checks,
        "sanity": sanity,
        "seeds": seed_results,
    }
    _io.write_atomic(args.output, to_json(result))
    log(f"\nWrote {args.output} ({elapsed:.0f} s)")
    return result


if __name__ == "__main__":
    main()
