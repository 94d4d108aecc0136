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
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import _harness  # noqa: E402  (benchmarks/ is on sys.path)
from _harness import log, markdown_table  # noqa: E402
from _lottery import (  # noqa: E402
    BATCH_SIZE, HIDDEN, NUM_CLASSES, RATE, REINIT_SEED_OFFSET, TICKET_ROUNDS,
    VALIDATION, load_data, run_seed, steps_per_epoch)

# "Match" tolerance for test accuracy, in accuracy points (0.01 = 1 pp,
# 10 of the 1000 test sequences; the binomial standard error is ~1.6 pp).
MATCH_TOLERANCE = 0.01


def parse_args(argv=None):
    parser = _harness.arguments(
        "lottery_ticket",
        "Lottery tickets vs. random re-initialization vs. the dense network "
        "on an MNIST-1D MLP (Frankle & Carbin 2019).",
        quick="1 seed, 2 epochs per round, 6 epochs per run", seeds=5)
    parser.add_argument("--epochs", type=int, default=150,
                        help="epochs of every retraining run (35 steps each; "
                        "default 150 = 5250 steps)")
    parser.add_argument("--round-epochs", type=int, default=50,
                        help="epochs per IMP round in the ticket search "
                        "(default 50; the search trains 12 rounds)")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="Adam learning rate (default 1e-3)")
    args = _harness.parse(parser, argv, quick={"epochs": 6, "round_epochs": 2},
                          positive=("epochs", "round_epochs"))
    if not args.lr > 0:
        parser.error(f"Expected --lr > 0. Received: --lr={args.lr}")
    return args


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


def results_table(rows):
    header = ["variant", "weights remaining", "test acc", "early-stop iteration",
              "test acc at early stop"]
    return markdown_table(header, [[
        row["label"],
        f"{100 * row['remaining']:.1f}%",
        f"{100 * row['median_test_acc']:.1f}%",
        f"{row['median_early_stop_step']:.0f}" + (
            f" ({row['early_stop_at_end']}/{len(row['per_seed']['test_acc'])} "
            "at end)" if row["early_stop_at_end"] else ""),
        f"{100 * row['median_test_acc_at_early_stop']:.1f}%",
    ] for row in rows])


def per_seed_table(rows, seeds):
    header = ["variant"] + [f"seed {s}" for s in seeds]
    return markdown_table(header, [[row["label"]] + [
        f"{100 * a:.1f}% / {s} / {100 * b:.1f}%"
        for a, s, b in zip(row["per_seed"]["test_acc"], row["per_seed"]["early_stop_step"],
                           row["per_seed"]["test_acc_at_early_stop"])
    ] for row in rows])


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = _harness.machine_info("mnist1d")

    import keras

    if keras.backend.backend() == "jax":
        raise SystemExit("LotteryTicket needs the tensorflow or torch backend "
                         "(KERAS_BACKEND); got jax")
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
    log(results_table(rows))
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

    settings = {
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
    }
    result = _harness.report(args, argv, settings, info, elapsed, rows=rows,
                             claims=checks, sanity=sanity, seeds=seed_results)
    # The curves: every list of numbers on one line.
    return _harness.write_report(args, result, compact_lists=True)


if __name__ == "__main__":
    main()
