"""Network slimming (Liu et al., ICCV 2017) on two small CNNs.

Network slimming trains with an L1 penalty on the BatchNormalization
scales (gamma), removes the channels whose |gamma| fall below one global
threshold and fine-tunes the smaller network. The paper reports, for VGGNet
on CIFAR-10, 70% of the channels removed, 88.5% fewer parameters and 51%
fewer FLOPs with no loss in test accuracy (93.66% -> 93.80%). This script
measures what `keras_compress` does on two tasks small enough for a CPU:

- MNIST-1D (`keras_compress.datasets.load_mnist1d`, 4000 train / 1000 test
  sequences of length 40): Conv1D(64, 5) - Conv1D(64, 3, stride 2) -
  Conv1D(128, 3, stride 2), each without bias and followed by
  BatchNormalization(momentum=0.9) and ReLU, then global average pooling
  and Dense(10). (The published MNIST-1D CNN reaches ~94%; this wider one
  with BatchNorm does better.)
- digits (`keras_compress.datasets.load_digits`, scikit-learn's 8x8 digits,
  1437 train / 360 test): Conv2D(32, 3) - Conv2D(64, 3, stride 2) -
  Conv2D(64, 3), same blocks, global average pooling, Dense(10).

Per task and seed, every model trains with SGD (momentum 0.9, batch 64, a
cosine learning-rate decay from 0.1 to 0 over the run; the paper used SGD
with momentum too, plus weight decay 1e-4, not used here) and is evaluated once, after its last epoch, on the test
set (no model selection on the test set):

(a) baseline: trained normally for `E` epochs;
(b) slimmed: trained for `E` epochs with the L1 penalty on every gamma
    (`network_slimming(..., epochs=E, finetune_epochs=0)`, which uses
    `NetworkSlimming(penalty)`, the subgradient form), before pruning;
(c) pruned: `ratio` of the BatchNorm channels removed by one global |gamma|
    threshold (`prune_channels(scope="global", criterion=BatchNormScale(),
    min_channels=4)`), no fine-tuning;
(d) fine-tuned: (c) trained `F` more epochs without the penalty (fresh SGD,
    cosine decay from 0.01);
(e) scratch: the architecture of (c) built anew and trained from a random
    initialization for `E + F` epochs (the epochs of (b) + (d));
(f) uniform: every width of the original network scaled by one factor,
    chosen so that its MACs are closest to those of (c), trained from
    scratch for `E + F` epochs.

Parameters and MACs come from `keras_compress.analysis.summarize` (MACs per
sample; a BatchNormalization costs one per output element). "channels
removed" counts the channels of the three BatchNorm'd convolutions. Besides
the main ratio, the slimmed model (b) and the baseline (a) are also pruned
at several other ratios without fine-tuning ("ratio sweep"), to show how
much the penalty concentrates the information in a few channels.

Results (per-seed values and medians over seeds) go to
`benchmarks/results/slimming.json`; a markdown table is printed.

Usage:

    python benchmarks/slimming.py              # defaults: 5 seeds, ~8 min on 2 shared cores
    python benchmarks/slimming.py --quick      # smoke test, < 1 min, temp output
    python benchmarks/slimming.py --seeds 1 --tasks digits
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _harness  # noqa: E402  (benchmarks/ is on sys.path)
from _harness import log, markdown_table, median  # noqa: E402
from _slimming import (  # noqa: E402
    BATCH_SIZE, BN_MOMENTUM, FINETUNE_LR, LR, MIN_CHANNELS, MOMENTUM, TASKS,
    accuracy, build, compile_model, cost, gamma_stats, load, masked_accuracy,
    sweep, uniform_widths, widths_of)

SWEEP_RATIOS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
QUICK_EPOCHS = {"mnist1d": (2, 1), "digits": (2, 1)}
QUICK_SWEEP_RATIOS = (0.5,)

VARIANTS = (
    ("baseline", "(a) baseline"),
    ("slimmed", "(b) slimmed, before pruning"),
    ("pruned", "(c) pruned, no fine-tuning"),
    ("finetuned", "(d) pruned + fine-tuned"),
    ("scratch", "(e) pruned architecture, from scratch"),
    ("uniform", "(f) uniformly narrowed, from scratch"),
)

PAPER = {
    "source": "Liu et al., Learning Efficient Convolutional Networks through "
              "Network Slimming, ICCV 2017, Table 1",
    "model": "VGGNet on CIFAR-10",
    "channels_removed": 0.70,
    "params_reduction": 0.885,
    "flops_reduction": 0.51,
    "baseline_error": 0.0634,
    "pruned_error": 0.0620,
}


def parse_args(argv=None):
    parser = _harness.arguments(
        "slimming",
        "Network slimming (L1 on BatchNorm gammas, prune, fine-tune) vs. "
        "training the same and a uniformly narrowed architecture from "
        "scratch, on MNIST-1D and digits CNNs.",
        quick="1 seed, a few epochs per stage", seeds=5, tasks=TASKS)
    return _harness.parse(parser, argv)


def task_settings(name, quick):
    settings = dict(TASKS[name])
    settings["blocks"] = [list(b) for b in settings["blocks"]]
    if quick:
        settings["epochs"], settings["finetune_epochs"] = QUICK_EPOCHS[name]
    return settings

def run_seed(name, settings, seed, data, sweep_ratios, log):
    import keras

    from keras_compress.pruning import network_slimming

    (x, y), test = data
    steps = -(-len(x) // BATCH_SIZE)
    epochs, finetune_epochs = settings["epochs"], settings["finetune_epochs"]
    full = [b[0] for b in settings["blocks"]]
    n = len(full)
    fit = dict(batch_size=BATCH_SIZE, verbose=0)
    acc, timing = {}, {}

    def timed(key, fn):
        start = time.perf_counter()
        result = fn()
        timing[key] = round(time.perf_counter() - start, 1)
        return result

    # (a) baseline
    baseline = compile_model(build(name, full, seed), LR, epochs, steps)
    keras.utils.set_random_seed(seed)
    timed("baseline", lambda: baseline.fit(x, y, epochs=epochs, **fit))
    acc["baseline"] = accuracy(baseline, test)
    params_before, macs_before = cost(baseline)

    # (b), (c): slimming, then pruning without fine-tuning
    model = compile_model(build(name, full, seed), LR, epochs, steps)
    keras.utils.set_random_seed(seed)
    # No History of our own: `network_slimming` puts its NetworkSlimming
    # callback after the user's callbacks, so a user History would miss the
    # slimming/* logs; the History Keras appends itself (model.history) sees them.
    pruned, (report,) = timed("slimming", lambda: network_slimming(
        model, x, y, settings["ratio"], passes=1, epochs=epochs,
        finetune_epochs=0, penalty=settings["penalty"],
        min_channels=MIN_CHANNELS, **fit))
    logged = model.history.history.get("slimming/near_zero", [None])[-1]
    acc["slimmed"] = accuracy(model, test)
    acc["pruned"] = accuracy(pruned, test)
    pruned_betas_kept = masked_accuracy(model, pruned, test, n)

    # (d) fine-tuning, fresh optimizer at a 10x lower learning rate
    compile_model(pruned, FINETUNE_LR, finetune_epochs, steps)
    keras.utils.set_random_seed(seed)
    timed("finetune", lambda: pruned.fit(x, y, epochs=finetune_epochs, **fit))
    acc["finetuned"] = accuracy(pruned, test)
    widths = widths_of(pruned, n)
    params_after, macs_after = cost(pruned)

    # (e) the pruned architecture from scratch, E + F epochs
    scratch = compile_model(build(name, widths, seed), LR, epochs + finetune_epochs, steps)
    if cost(scratch) != (params_after, macs_after):
        raise RuntimeError(
            f"rebuilt architecture {widths} differs from the pruned model: "
            f"{cost(scratch)} vs {(params_after, macs_after)}")
    keras.utils.set_random_seed(seed)
    timed("scratch", lambda: scratch.fit(x, y, epochs=epochs + finetune_epochs, **fit))
    acc["scratch"] = accuracy(scratch, test)

    # (f) uniformly narrowed to about the same MACs, from scratch
    narrow, factor = uniform_widths(name, macs_after)
    uniform = compile_model(build(name, narrow, seed), LR, epochs + finetune_epochs, steps)
    uniform_params, uniform_macs = cost(uniform)
    keras.utils.set_random_seed(seed)
    timed("uniform", lambda: uniform.fit(x, y, epochs=epochs + finetune_epochs, **fit))
    acc["uniform"] = accuracy(uniform, test)

    conv_rows = [r for r in report.layers if r["name"].startswith("conv")]
    channels_before = sum(r["channels_before"] for r in conv_rows)
    channels_after = sum(r["channels_after"] for r in conv_rows)
    result = {
        "seed": seed,
        "test_acc": acc,
        "widths_before": full,
        "widths_after": widths,
        "channels_before": channels_before,
        "channels_after": channels_after,
        "channels_removed": 1 - channels_after / channels_before,
        "params_before": params_before,
        "params_after": params_after,
        "params_reduction": 1 - params_after / params_before,
        "macs_before": macs_before,
        "macs_after": macs_after,
        "macs_reduction": 1 - macs_after / macs_before,
        "report_params": [int(report.params_before), int(report.params_after)],
        "report_macs": [int(report.macs_before), int(report.macs_after)],
        "uniform": {
            "widths": narrow,
            "factor": factor,
            "params": uniform_params,
            "macs": uniform_macs,
        },
        "pruned_betas_kept_test_acc": pruned_betas_kept,
        "gammas_slimmed": {**gamma_stats(model, n), "callback_logged_near_zero": logged},
        "gammas_baseline": gamma_stats(baseline, n),
        "sweep_slimmed": sweep(model, test, sweep_ratios, n),
        "sweep_baseline": sweep(baseline, test, sweep_ratios, n),
        "fit_seconds": timing,
    }
    log(f"  seed {seed}: widths {full} -> {widths}, uniform {narrow}; acc "
        + ", ".join(f"{k} {100 * v:.1f}" for k, v in acc.items())
        + f" ({sum(timing.values()):.0f} s)")
    return result


def aggregate(seeds):
    keys = ("channels_removed", "params_reduction", "macs_reduction")
    summary = {k: median([s[k] for s in seeds]) for k in keys}
    summary["test_acc"] = {
        v: {"median": median([s["test_acc"][v] for s in seeds]),
            "per_seed": [s["test_acc"][v] for s in seeds]}
        for v, _ in VARIANTS
    }
    summary["pruned_betas_kept_test_acc"] = {
        "median": median([s["pruned_betas_kept_test_acc"] for s in seeds]),
        "per_seed": [s["pruned_betas_kept_test_acc"] for s in seeds],
    }
    summary["uniform_macs_over_pruned"] = median(
        [s["uniform"]["macs"] / s["macs_after"] for s in seeds])
    summary["finetuned_minus_baseline"] = median(
        [s["test_acc"]["finetuned"] - s["test_acc"]["baseline"] for s in seeds])
    summary["finetuned_minus_scratch"] = median(
        [s["test_acc"]["finetuned"] - s["test_acc"]["scratch"] for s in seeds])
    summary["finetuned_minus_uniform"] = median(
        [s["test_acc"]["finetuned"] - s["test_acc"]["uniform"] for s in seeds])
    return summary


def pct(value):
    return f"{100 * value:.1f}"


def table(task_results):
    header = ["variant"] + [t["title"] for t in task_results.values()]
    lines = []

    def row(label, fn):
        lines.append([label] + [fn(t) for t in task_results.values()])

    def widths(t):
        return "; ".join(
            f"{s['widths_before']}->{s['widths_after']}" for s in t["seeds"])

    row("conv widths (per seed)", widths)
    row("channels removed", lambda t: f"{pct(t['summary']['channels_removed'])}%")
    row("parameters removed", lambda t: f"{pct(t['summary']['params_reduction'])}%")
    row("MACs removed", lambda t: f"{pct(t['summary']['macs_reduction'])}%")
    row("uniform widths (per seed)",
        lambda t: "; ".join(f"{s['uniform']['widths']} (x{s['uniform']['factor']:.2f})"
                            for s in t["seeds"]))

    def cell(entry):
        seeds = " / ".join(pct(v) for v in entry["per_seed"])
        return f"{pct(entry['median'])}" + (f" ({seeds})" if len(entry["per_seed"]) > 1 else "")

    for key, label in VARIANTS:
        row(f"{label}, test acc %", lambda t, key=key: cell(t["summary"]["test_acc"][key]))
        if key == "pruned":
            row("(c') = (b) with the removed gammas set to 0, betas kept, test acc %",
                lambda t: cell(t["summary"]["pruned_betas_kept_test_acc"]))
    return markdown_table(header, lines)


def sweep_table(t):
    ratios = [r["ratio"] for r in t["seeds"][0]["sweep_slimmed"]]
    rows = []
    for key, field, label in (
        ("sweep_slimmed", "test_acc", "slimmed (b) pruned, acc %"),
        ("sweep_slimmed", "test_acc_betas_kept", "slimmed (b), gammas zeroed, betas kept, acc %"),
        ("sweep_baseline", "test_acc", "baseline (a) pruned, acc %"),
        ("sweep_slimmed", "macs", "slimmed, MACs removed %"),
    ):
        cells = []
        for k in range(len(ratios)):
            if field == "macs":
                values = [1 - s[key][k]["macs_after"] / s["macs_before"] for s in t["seeds"]]
            else:
                values = [s[key][k][field] for s in t["seeds"]]
            cells.append(pct(median(values)))
        rows.append([label] + cells)
    return markdown_table(["pruned at ratio"] + [f"{r:.1f}" for r in ratios], rows)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = _harness.machine_info()

    import logging

    # Every model is new, so its first fit traces; silence TF's retracing notes.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    task_results = {}
    for k, name in enumerate(args.tasks, start=1):
        settings = task_settings(name, args.quick)
        log(f"[{k}/{len(args.tasks)}] {settings['title']}: penalty {settings['penalty']}, "
            f"ratio {settings['ratio']}, E={settings['epochs']}, "
            f"F={settings['finetune_epochs']}, {args.seeds} seed(s)")
        data = load(name)
        ratios = QUICK_SWEEP_RATIOS if args.quick else SWEEP_RATIOS
        seeds = [run_seed(name, settings, seed, data, ratios, log)
                 for seed in range(args.seeds)]
        task_results[name] = {
            "title": settings["title"],
            "settings": settings,
            "train_samples": int(len(data[0][0])),
            "test_samples": int(len(data[1][0])),
            "summary": aggregate(seeds),
            "seeds": seeds,
        }

    elapsed = time.perf_counter() - start
    log("\nNetwork slimming, medians over seeds (per-seed values in brackets)\n")
    log(table(task_results))
    for t in task_results.values():
        log(f"\n{t['title']}: accuracy right after pruning at other ratios "
            "(no fine-tuning), medians\n")
        log(sweep_table(t))
    log(f"\nPaper ({PAPER['model']}): {pct(PAPER['channels_removed'])}% channels, "
        f"{pct(PAPER['params_reduction'])}% parameters, {pct(PAPER['flops_reduction'])}% "
        f"FLOPs removed; test error {pct(PAPER['baseline_error'])}% -> "
        f"{pct(PAPER['pruned_error'])}%")

    settings = {
        "seeds": args.seeds,
        "quick": args.quick,
        "batch_size": BATCH_SIZE,
        "optimizer": f"SGD(momentum={MOMENTUM}), CosineDecay from lr to 0 over each run",
        "lr": LR,
        "finetune_lr": FINETUNE_LR,
        "batchnorm_momentum": BN_MOMENTUM,
        "min_channels": MIN_CHANNELS,
        "slimming": "network_slimming(passes=1, finetune_epochs=0, proximal=False), "
                    "then fine-tuning with a fresh optimizer",
        "macs": "keras_compress.analysis.summarize(model).totals.macs, per sample",
        "accuracy": "test accuracy after the last epoch of each run",
    }
    return _harness.write_report(args, _harness.report(
        args, argv, settings, info, elapsed, paper=PAPER, tasks=task_results))


if __name__ == "__main__":
    main()
