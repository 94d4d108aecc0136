"""Deep Compression on the device: keras_compress against tfmot, stage by stage.

Benchmark section for `benchmarks/deep_compression.py`: `run(tasks, seeds,
quick, log)` returns a JSON-serializable dict, `tables(result)` renders it.

Per task, net and seed, one float model is trained in Keras 3 (Adam, the
same batches for every arm) and its weights are copied into a tf_keras
twin, so both toolkits start the same compression pipeline from the same
trained network and spend the same epochs in each stage:

- ours: `MagnitudePruning(PolynomialDecay(0, s), scope="global")` ->
  `strip_pruning` -> `cluster_weights(16, preserve_sparsity=True)` and
  fine-tuning -> `quantize_model` (masks and clusters carried, PCQAT) and
  QAT -> full int8, lean (`to_tflite(quantize="int8", lean=True)`) and the
  TFLite Micro bundle `to_micro(compression="auto")` (LUT / pruning /
  Huffman DECODE tensors, whichever is smallest per tensor);
- tfmot: `prune_low_magnitude` (the same schedule; per layer, tfmot has no
  global scope) -> `strip_pruning` -> `cluster_weights(16, KMEANS_PLUS_PLUS,
  preserve_sparsity=True)` and fine-tuning -> `strip_clustering` -> (a) the
  dynamic-range TFLite file of the clustered model, (b) PCQAT
  (`Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)`) and
  QAT -> full int8 TFLite; its microcontroller bundle is that int8 file
  (tfmot has no compressed TFLM format).

Sizes are of real artifacts: `.tflite` bytes, the file gzipped (level 9),
TFLM flash (the bundle's `.tflite`) and TFLM arena; accuracies are measured
in the runtime that runs the artifact (LiteRT's builtin kernels for LiteRT
files, TFLM's interpreter for bundles) on the whole test set. The
Deep Compression table of our stages (bits per weight of the best
encoding, real Huffman codes) comes from `analysis.deep_compression_table`.
The binary section trains a `BinaryDense` MLP (BWN scales, float inputs)
and writes its TFLM bundle with 1-bit look-up tables.
"""

from _deep_compression_arms import (  # noqa: E402  (benchmarks/ is on sys.path)
    BATCH, CLUSTERS, LEARNING_RATES, load, ours, tfmot_arm, train_float)
from _harness import arm_order, markdown_table, median  # noqa: E402

NETS = ("mlp", "cnn")
QUICK_EPOCHS = {"float": 2, "prune": 2, "prune_end": 1, "cluster": 1, "qat": 1}
EPOCHS = {"float": 30, "prune": 15, "prune_end": 10, "cluster": 5, "qat": 3}
TFMOT_SPARSITY = 0.9       # the setting: tfmot's reference point
SWEEP = (0.9, 0.93, 0.95)  # ours (global scope); the smallest at equal
QUICK_SWEEP = (0.9,)       # accuracy is compared

# Targets, checked on medians over seeds.
MIN_VS_TFMOT = 1.2          # tfmot's best artifact / ours, same kind
MAX_POINTS_BEHIND_TFMOT = 0.3
MIN_VS_FLOAT = 50.0         # float32 .tflite / our smallest artifact
MAX_POINTS_LOST = 1.0
MIN_INT8_VS_FLOAT = 3.9     # float32 .tflite / int8 .tflite, >= 50k params


def _summarize(records, path):
    """Median over seeds of `record[path[0]][path[1]]...`."""
    def get(r):
        for key in path:
            r = r[key]
        return r

    return median([get(r) for r in records])


def run(tasks, seeds, quick, log):
    import keras
    import tf_keras

    cfg = {"epochs": QUICK_EPOCHS if quick else EPOCHS}
    sweep = QUICK_SWEEP if quick else SWEEP
    results = {}
    for task in tasks:
        data = load(task)
        if quick:
            (x, y), test = data
            data = (x[:400], y[:400]), test
        for net in NETS[:1] if quick else NETS:
            runs = []
            for seed in range(seeds):
                keras.backend.clear_session()
                tf_keras.backend.clear_session()
                weights, base = train_float(net, task, data, cfg, seed)
                record = {"seed": seed, "float": base, "ours": {}}
                # Interleaved: the arms' order rotates with the seed.
                jobs = [("tfmot", TFMOT_SPARSITY)] + [("ours", s) for s in sweep]
                for arm, sparsity in arm_order(jobs, seed):
                    if arm == "tfmot":
                        record["tfmot"] = t = tfmot_arm(net, task, weights, data,
                                                        cfg, seed, sparsity)
                        log(f"  {task} {net} seed {seed} tfmot @{sparsity:g}: "
                            f"{t['litert']['artifact']} {100 * t['litert']['accuracy']:.1f}% "
                            f"gz {t['litert']['gzip_bytes']:,} B, TFLM "
                            f"{100 * t['micro']['accuracy']:.1f}% "
                            f"{t['micro']['flash_bytes']:,} B")
                    else:
                        record["ours"][str(sparsity)] = o = ours(
                            net, task, weights, data, cfg, seed, sparsity)
                        log(f"  {task} {net} seed {seed} ours @{sparsity:g}: int8 "
                            f"{100 * o['litert']['accuracy']:.1f}% gz "
                            f"{o['litert']['gzip_bytes']:,} B, TFLM "
                            f"{100 * o['micro']['accuracy']:.1f}% "
                            f"{o['micro']['flash_bytes']:,} B")
                log(f"  {task} {net} seed {seed} float: "
                    f"{100 * base['float32_accuracy']:.1f}% {base['float32_bytes']:,} B")
                runs.append(record)
            results[f"{task}/{net}"] = {"runs": runs,
                                        "medians": _medians(runs, sweep)}
    return {"settings": {"epochs": cfg["epochs"], "learning_rates": LEARNING_RATES,
                         "clusters": CLUSTERS, "batch_size": BATCH,
                         "tfmot_sparsity": TFMOT_SPARSITY, "ours_sparsities": sweep},
            "nets": results, "targets": _targets(results)}


_OURS = {
    "litert_accuracy": ("litert", "accuracy"),
    "litert_gzip_bytes": ("litert", "gzip_bytes"),
    "litert_bytes": ("litert", "bytes"),
    "micro_accuracy": ("micro", "accuracy"),
    "micro_flash_bytes": ("micro", "flash_bytes"),
    "micro_arena_bytes": ("micro", "arena_bytes"),
    "train_s": ("train_s",),
    "pruned_accuracy": ("accuracy", "pruned"),
    "clustered_accuracy": ("accuracy", "clustered"),
    "qat_accuracy": ("accuracy", "qat"),
}


def _medians(runs, sweep):
    m = {"float": {}, "tfmot": {}, "ours": {}}
    for key in ("float32_accuracy", "float32_bytes", "float32_gzip_bytes",
                "float32_lean_bytes", "int8_bytes", "int8_lean_bytes", "params"):
        m["float"][key] = _summarize(runs, ("float", key))
    for key, path in _OURS.items():
        m["tfmot"][key] = _summarize(runs, ("tfmot",) + path)
    alt = {"micro_alt_memory_bytes": ("micro", "compression",
                                      "alt_decompression_memory_bytes"),
           "micro_arena_with_alt_memory_bytes": ("micro", "compression",
                                                 "arena_bytes_with_alt_memory")}
    for s in sweep:
        m["ours"][str(s)] = {key: _summarize(runs, ("ours", str(s)) + path)
                             for key, path in {**_OURS, **alt}.items()}
    return m


def _equal_accuracy(m, kind, size):
    """Our smallest `kind` artifact (over the sweep) whose median accuracy is
    within `MAX_POINTS_BEHIND_TFMOT` of tfmot's; else the 0.9 point."""
    floor = m["tfmot"][f"{kind}_accuracy"] - MAX_POINTS_BEHIND_TFMOT / 100
    fits = [s for s, o in m["ours"].items() if o[f"{kind}_accuracy"] >= floor - 1e-9]
    pool = fits or [min(m["ours"], key=float)]
    return min(pool, key=lambda s: m["ours"][s][f"{kind}_{size}"])


def _targets(results):
    targets = []
    for key, result in results.items():
        m = result["medians"]
        f = m["float"]
        for kind, size in (("litert", "gzip_bytes"), ("micro", "flash_bytes")):
            s = _equal_accuracy(m, kind, size)
            o, t = m["ours"][s], m["tfmot"]
            ratio = t[f"{kind}_{size}"] / o[f"{kind}_{size}"]
            behind = 100 * (t[f"{kind}_accuracy"] - o[f"{kind}_accuracy"])
            targets.append({
                "net": key, "target": f"{kind} {size}: tfmot / ours >= "
                f"{MIN_VS_TFMOT} within {MAX_POINTS_BEHIND_TFMOT} points "
                f"(ours @{s})", "ratio": ratio, "points_behind": behind,
                "pass": ratio >= MIN_VS_TFMOT and behind <= MAX_POINTS_BEHIND_TFMOT,
            })
        best = None
        for s, o in m["ours"].items():
            for kind, size in (("litert", "gzip_bytes"), ("micro", "flash_bytes")):
                lost = 100 * (f["float32_accuracy"] - o[f"{kind}_accuracy"])
                if lost <= MAX_POINTS_LOST and (best is None or o[f"{kind}_{size}"] < best[0]):
                    best = (o[f"{kind}_{size}"], s, kind, lost)
        ratio = f["float32_bytes"] / best[0] if best else 0.0
        targets.append({
            "net": key, "target": f"float32 .tflite / our smallest artifact with "
            f"<= {MAX_POINTS_LOST:g} point lost >= {MIN_VS_FLOAT:g}x"
            + (f" ({best[2]} @{best[1]})" if best else ""),
            "ratio": ratio, "points_lost": best[3] if best else None,
            "pass": ratio >= MIN_VS_FLOAT,
        })
        if f["params"] >= 50_000:
            ratio = f["float32_lean_bytes"] / f["int8_lean_bytes"]
            targets.append({
                "net": key, "target": f"float32 / int8 .tflite, both lean, >= "
                f"{MIN_INT8_VS_FLOAT} (>= 50k params; converter files: "
                f"{f['float32_bytes'] / f['int8_bytes']:.2f}x)",
                "ratio": ratio, "before_lean": f["float32_bytes"] / f["int8_bytes"],
                "pass": ratio >= MIN_INT8_VS_FLOAT,
            })
    return targets

def tables(result):
    lines = []
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    num = lambda v: f"{v:,.0f}"  # noqa: E731
    for key, r in result["nets"].items():
        m = r["medians"]
        f, t = m["float"], m["tfmot"]
        base = f["float32_bytes"]
        rows = [["float32 .tflite", "", pct(f["float32_accuracy"]), num(base),
                 num(f["float32_gzip_bytes"]), "", "1.0x"],
                ["tfmot: best LiteRT file, gzip", f"{r['runs'][0]['tfmot']['sparsity']:g}",
                 pct(t["litert_accuracy"]), "", num(t["litert_gzip_bytes"]), "",
                 f"{base / t['litert_gzip_bytes']:.1f}x"],
                ["tfmot: TFLM bundle (int8)", f"{r['runs'][0]['tfmot']['sparsity']:g}",
                 pct(t["micro_accuracy"]), num(t["micro_flash_bytes"]), "",
                 num(t["micro_arena_bytes"]), f"{base / t['micro_flash_bytes']:.1f}x"]]
        for s, o in m["ours"].items():
            rows += [["ours: lean int8 LiteRT file, gzip", s, pct(o["litert_accuracy"]),
                      num(o["litert_bytes"]), num(o["litert_gzip_bytes"]), "",
                      f"{base / o['litert_gzip_bytes']:.1f}x"],
                     ["ours: TFLM bundle, DECODE auto", s, pct(o["micro_accuracy"]),
                      num(o["micro_flash_bytes"]), "",
                      f"{num(o['micro_arena_bytes'])} ({num(o['micro_arena_with_alt_memory_bytes'])}"
                      f" + {num(o['micro_alt_memory_bytes'])} alt)",
                      f"{base / o['micro_flash_bytes']:.1f}x"]]
        lines += [f"### {key} ({f['params']:,.0f} params, medians of "
                  f"{len(r['runs'])} seeds)", "",
                  markdown_table(["artifact", "sparsity", "acc %", "bytes", "gzip B",
                          "arena B", "vs float32"], rows), ""]
        stages = [["tfmot", pct(t["pruned_accuracy"]), pct(t["clustered_accuracy"]),
                   pct(t["qat_accuracy"])]]
        stages += [[f"ours @{s}", pct(o["pruned_accuracy"]), pct(o["clustered_accuracy"]),
                    pct(o["qat_accuracy"])] for s, o in m["ours"].items()]
        lines += [markdown_table(["Keras accuracy %", "pruned", "clustered", "QAT"], stages), ""]
        first = next(iter(r["runs"][0]["ours"]))
        dc = r["runs"][0]["ours"][first]["deep_compression"]
        rows = [[d["stage"], f"{d['nonzeros']:,}", d["clusters"], d["representation"],
                 f"{d['bits_per_weight']:.3f}", f"{d['bytes']:,}", f"{d['ratio']:.1f}x"]
                for d in dc]
        lines += [f"Deep Compression table (weights only), ours @{first}, seed 0:", "",
                  markdown_table(["stage", "non-zeros", "K", "best encoding", "bits/weight",
                          "bytes", "ratio"], rows), ""]
    rows = [[t["net"], t["target"], f"{t['ratio']:.2f}",
             "PASS" if t["pass"] else "FAIL"] for t in result["targets"]]
    lines += ["Targets:", "", markdown_table(["net", "target", "value", ""], rows)]
    return "\n".join(lines)
