"""The markdown tables of the early-exit section (`_early_exit.py`)."""


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}"


def _cell(entry, fmt):
    if entry["median"] is None:
        return "-"
    cell = fmt(entry["median"])
    if len(entry["per_seed"]) > 1:
        cell += " (" + " / ".join("-" if v is None else fmt(v) for v in entry["per_seed"]) + ")"
    return cell


def tables(result, all_variants):
    """Markdown tables and summary lines from `run()`'s dict; `all_variants`
    is `_early_exit.VARIANTS`, (key, label, distillation)."""
    tasks = result["tasks"]
    variants = [v for v in all_variants if v[0] in result["settings"]["variants"]]
    header = ["", *[t["title"] for t in tasks.values()]]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(tasks)) + "|"]

    def row(label, fn):
        cells = [fn(t["summary"]) for t in tasks.values()]
        lines.append("| " + " | ".join([label] + cells) + " |")

    def fractions(entry):
        if entry["median"] is None:
            return "-"
        return " / ".join(_pct(f) for f in entry["median"])

    row("full model (backbone alone): test acc %",
        lambda s: _cell(s["baseline_test_acc"], _pct))
    row("full model: MACs per sample", lambda s: f"{s['baseline_macs']['median']:.0f}")
    for key, label, _ in variants:
        row(f"**{label}**: exit 0 / exit 1 / final acc % (every sample at that exit)",
            lambda s, key=key: fractions(s[key]["exit_test_acc"]))
        row(f"{label}: MACs to leave at exit 0 / 1 / final",
            lambda s, key=key: " / ".join(f"{m:.0f}" for m in s[key]["exit_macs"]["median"]))
        row(f"{label}: threshold (largest reduction within 1 pt of the full model)",
            lambda s, key=key: _cell(s[key]["threshold"], lambda v: f"{v:g}"))
        row(f"{label}: test acc % at that threshold",
            lambda s, key=key: _cell(s[key]["test_acc"], _pct))
        row(f"{label}: mean MACs per sample",
            lambda s, key=key: _cell(s[key]["mean_macs"], lambda v: f"{v:.0f}"))
        row(f"{label}: MAC reduction vs the full model",
            lambda s, key=key: _cell(s[key]["mac_reduction"], lambda v: f"{v:.2f}x"))
        row(f"{label}: samples leaving at exit 0 / 1 / final %",
            lambda s, key=key: fractions(s[key]["exit_fractions"]))
        row(f"{label}: LiteRT chain test acc % (same exit as Keras %)",
            lambda s, key=key: f"{_pct(s[key]['litert_test_acc']['median'])} "
                               f"({_pct(s[key]['litert_same_exit']['median'])})")
        row(f"{label}: latency per sample, full model TFLite (us)",
            lambda s, key=key: _cell(s[key]["latency_full_us"], lambda v: f"{v:.1f}"))
        row(f"{label}: latency per sample, early-exit chain (us)",
            lambda s, key=key: _cell(s[key]["latency_chain_us"], lambda v: f"{v:.1f}"))
        row(f"{label}: latency speedup (full / chain)",
            lambda s, key=key: _cell(s[key]["speedup"], lambda v: f"{v:.2f}x"))
        row(f"{label}: latency, chain with every sample to the final exit (us)",
            lambda s, key=key: _cell(s[key]["latency_chain_all_final_us"],
                                     lambda v: f"{v:.1f}"))
    out = ["Early exits, medians over seeds (per-seed values in brackets)", "",
           *lines]
    for t in tasks.values():
        for key, label, _ in variants:
            sweep = t["summary"][key]["sweep"]
            out += ["", f"{t['title']}, {label}: threshold sweep on the test set "
                        "(max softmax probability; medians)", "",
                    "| threshold | test acc % | MAC reduction | exit 0 / 1 / final % |",
                    "|---:|---:|---:|---:|"]
            for r in sweep:
                out.append(f"| {r['threshold']:g} | {_pct(r['test_acc']['median'])} | "
                           f"{r['mac_reduction']['median']:.2f}x | "
                           f"{fractions(r['exit_fractions'])} |")
    out.append("")
    for t in tasks.values():
        s = t["summary"]
        parts = []
        for key, label, _ in variants:
            v = s[key]
            if v["mac_reduction"]["median"] is None:
                parts.append(f"{label}: no threshold within 1 point")
                continue
            parts.append(
                f"{label}: {v['mac_reduction']['median']:.2f}x fewer MACs at "
                f"{_pct(v['test_acc']['median'])}% ({v['seeds_with_point']}/"
                f"{len(v['test_acc']['per_seed'])} seeds with such a threshold), "
                f"measured LiteRT latency x{v['speedup']['median']:.2f} speedup")
        out.append(f"- {t['title']} (full model {_pct(s['baseline_test_acc']['median'])}%): "
                   + "; ".join(parts) + ".")
    paper = result["paper"]
    out += ["", f"Context, not comparable: {paper['source']}: {paper['speedup']}x "
                f"faster on {paper['model']}, {100 * paper['first_exit_fraction']:.0f}% "
                "of the samples leaving at the first exit.",
            "Thresholds are picked on the test set (no validation split); MACs are "
            "exact per sample for staged execution (backbone up to the exit plus "
            "every head evaluated); latency is Python + LiteRT per sample at batch 1.",
            f"Elapsed: {result['elapsed_s']:.0f} s."]
    return "\n".join(out)
