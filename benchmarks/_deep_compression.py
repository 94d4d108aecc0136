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

import gzip
import os
import tempfile
import time

import numpy as np

from _harness import median  # noqa: E402  (benchmarks/ is on sys.path)

CLUSTERS = 16
BATCH = 32
NETS = ("mlp", "cnn")
QUICK_EPOCHS = {"float": 2, "prune": 2, "prune_end": 1, "cluster": 1, "qat": 1}
EPOCHS = {"float": 30, "prune": 15, "prune_end": 10, "cluster": 5, "qat": 3}
LEARNING_RATES = {"float": 1e-3, "prune": 1e-3, "cluster": 1e-4, "qat": 1e-4}
TFMOT_SPARSITY = 0.9       # the setting: tfmot's reference point
SWEEP = (0.9, 0.93, 0.95)  # ours (global scope); the smallest at equal
QUICK_SWEEP = (0.9,)       # accuracy is compared

# Targets, checked on medians over seeds.
MIN_VS_TFMOT = 1.2          # tfmot's best artifact / ours, same kind
MAX_POINTS_BEHIND_TFMOT = 0.3
MIN_VS_FLOAT = 50.0         # float32 .tflite / our smallest artifact
MAX_POINTS_LOST = 1.0
MIN_BINARY_VS_FLOAT = 25.0  # float32 .tflite / binary MLP's TFLM flash
MIN_INT8_VS_FLOAT = 3.9     # float32 .tflite / int8 .tflite, >= 50k params


def build(K, net, task, input_shape):
    """The net in Keras 3 (`K=keras`) or tf_keras, with fixed layer names."""
    L = K.layers
    if net == "mlp":  # LeNet-300-100's shape on the task's inputs.
        body = [L.Flatten(name="flatten"),
                L.Dense(300, activation="relu", name="fc1"),
                L.Dense(100, activation="relu", name="fc2")]
    elif task == "mnist1d":
        body = [L.Conv1D(32, 5, activation="relu", name="conv1"),
                L.Conv1D(64, 3, strides=2, activation="relu", name="conv2"),
                L.Conv1D(64, 3, strides=2, activation="relu", name="conv3"),
                L.Flatten(name="flatten")]
    else:
        body = [L.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
                L.Conv2D(64, 3, strides=2, padding="same", activation="relu",
                         name="conv2"),
                L.Flatten(name="flatten")]
    return K.Sequential([K.Input(input_shape), *body, L.Dense(10, name="logits")],
                        name=f"{task}_{net}")


def load(task):
    from keras_compress import datasets

    return (datasets.load_digits if task == "digits" else datasets.load_mnist1d)()


def _compile(K, model, lr):
    model.compile(optimizer=K.optimizers.Adam(lr),
                  loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit(model, x, y, epochs, seed, callbacks=()):
    # Same shuffles for every arm: NumPy permutations, fed without shuffling.
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        model.fit(x[order], y[order], batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=list(callbacks))


def _keras_accuracy(model, x, y):
    return float(np.mean(np.argmax(np.asarray(model(x, training=False)), -1) == y))


def gzip_size(data):
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def litert_accuracy(data, x, y):
    from keras_compress.runtime import LiteRTModel

    return LiteRTModel(data, kernels="builtin").evaluate(x, y)


def micro_bundle(model_or_tflite, compression):
    """`(report, .tflite bytes)` of a TFLM bundle written to a temp folder.

    QAT models and `.tflite` files need no calibration data: the int8
    ranges are the learned ones, as in the LiteRT file.
    """
    from keras_compress.export import to_micro

    with tempfile.TemporaryDirectory() as folder:
        report = to_micro(model_or_tflite, folder, "model", compression=compression)
        with open(os.path.join(folder, "model.tflite"), "rb") as f:
            data = f.read()
    return report, data


def micro_accuracy(data, x, y):
    from keras_compress.runtime import MicroModel

    return MicroModel(data).evaluate(x, y)


def ours(net, task, weights, data, cfg, seed, sparsity):
    import keras

    from keras_compress.analysis import deep_compression_table
    from keras_compress.callbacks import MagnitudePruning
    from keras_compress.clustering import cluster_weights
    from keras_compress.export import to_tflite
    from keras_compress.pruning import PolynomialDecay, strip_pruning
    from keras_compress.quantization import quantize_model

    (x, y), (xt, yt) = data
    epochs = cfg["epochs"]
    steps = -(-len(x) // BATCH)
    model = _compile(keras, build(keras, net, task, x.shape[1:]), LEARNING_RATES["prune"])
    model.set_weights(weights)
    float_model = build(keras, net, task, x.shape[1:])
    float_model.set_weights(weights)
    start = time.perf_counter()
    schedule = PolynomialDecay(0.0, sparsity, begin_step=0,
                               end_step=epochs["prune_end"] * steps, frequency=steps)
    _fit(model, x, y, epochs["prune"], seed,
         [MagnitudePruning(schedule, scope="global", log_sparsity=False)])
    strip_pruning(model)
    stages = {"float32": float_model, "pruned": build(keras, net, task, x.shape[1:])}
    stages["pruned"].set_weights(model.get_weights())
    accuracy = {"float32": _keras_accuracy(float_model, xt, yt),
                "pruned": _keras_accuracy(model, xt, yt)}
    cluster_weights(model, clusters=CLUSTERS, preserve_sparsity=True, seed=seed)
    _compile(keras, model, LEARNING_RATES["cluster"])
    _fit(model, x, y, epochs["cluster"], seed + 1)
    accuracy["clustered"] = _keras_accuracy(model, xt, yt)
    stages["clustered"] = model
    qat = _compile(keras, quantize_model(model), LEARNING_RATES["qat"])
    _fit(qat, x, y, epochs["qat"], seed + 2)
    accuracy["qat"] = _keras_accuracy(qat, xt, yt)
    train_s = time.perf_counter() - start
    int8 = to_tflite(qat, quantize="int8", lean=True)
    report, bundle = micro_bundle(qat, "auto")
    stages["int8"] = int8
    accuracy["int8"] = litert_accuracy(int8, xt, yt)
    table = deep_compression_table(
        stages, accuracy={k: accuracy[k] for k in stages})
    return {
        "sparsity": sparsity,
        "train_s": train_s,
        "accuracy": accuracy,
        "litert": {"bytes": len(int8), "gzip_bytes": gzip_size(int8),
                   "accuracy": accuracy["int8"]},
        "micro": {"flash_bytes": report["flash_bytes"],
                  "arena_bytes": report["arena_bytes"],
                  "compression": _compression_summary(report),
                  "accuracy": micro_accuracy(bundle, xt, yt)},
        "deep_compression": table.to_dict()["rows"],
    }


def _compression_summary(report):
    c = report.get("compression") or {}
    keep = ("flash_bytes_uncompressed", "arena_bytes",
            "alt_decompression_memory_bytes", "arena_bytes_with_alt_memory")
    summary = {k: c[k] for k in keep if k in c}
    methods = {}
    for row in c.get("tensors", []):
        method = row.get("method") or "none"
        methods[method] = methods.get(method, 0) + 1
    summary["tensors_by_method"] = methods
    return summary


def tfmot_arm(net, task, weights, data, cfg, seed, sparsity):
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (  # noqa: E501
        default_8bit_cluster_preserve_quantize_scheme as cluster_preserve,
    )

    (x, y), (xt, yt) = data
    epochs = cfg["epochs"]
    steps = -(-len(x) // BATCH)
    base = build(tf_keras, net, task, x.shape[1:])
    base.set_weights(weights)
    start = time.perf_counter()
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, sparsity, 0, epochs["prune_end"] * steps, frequency=steps)
    model = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    _compile(tf_keras, model, LEARNING_RATES["prune"])
    _fit(model, x, y, epochs["prune"], seed,
         [tfmot.sparsity.keras.UpdatePruningStep()])
    model = tfmot.sparsity.keras.strip_pruning(model)
    accuracy = {"pruned": _keras_accuracy(model, xt, yt)}
    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    model = tfmot.clustering.keras.cluster_weights(
        model, number_of_clusters=CLUSTERS, cluster_centroids_init=init,
        preserve_sparsity=True)
    _compile(tf_keras, model, LEARNING_RATES["cluster"])
    _fit(model, x, y, epochs["cluster"], seed + 1)
    model = tfmot.clustering.keras.strip_clustering(model)
    accuracy["clustered"] = _keras_accuracy(model, xt, yt)
    try:
        qat = tfmot.quantization.keras.quantize_apply(
            tfmot.quantization.keras.quantize_annotate_model(model),
            cluster_preserve.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=True))
    except RuntimeError as e:  # tfmot's QAT has no Conv1D.
        qat, int8_note = None, f"no PCQAT ({e}); int8 by post-training calibration"
    else:
        int8_note = "PCQAT"
        _compile(tf_keras, qat, LEARNING_RATES["qat"])
        _fit(qat, x, y, epochs["qat"], seed + 2)
        accuracy["qat"] = _keras_accuracy(qat, xt, yt)
    train_s = time.perf_counter() - start

    def convert(m):
        converter = tf.lite.TFLiteConverter.from_keras_model(m)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()

    dynamic = convert(model)
    if qat is None:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s[None]] for s in x[:200])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        int8 = converter.convert()
        accuracy["qat"] = accuracy["clustered"]
    else:
        int8 = convert(qat)
    report, bundle = micro_bundle(int8, None)
    artifacts = {
        "dynamic": {"bytes": len(dynamic), "gzip_bytes": gzip_size(dynamic),
                    "accuracy": litert_accuracy(dynamic, xt, yt)},
        "int8": {"bytes": len(int8), "gzip_bytes": gzip_size(int8),
                 "accuracy": litert_accuracy(int8, xt, yt), "note": int8_note},
    }
    best = min(artifacts, key=lambda k: artifacts[k]["gzip_bytes"])
    return {
        "sparsity": sparsity,
        "train_s": train_s,
        "accuracy": accuracy,
        "litert_artifacts": artifacts,
        "litert": {**artifacts[best], "artifact": best},
        "micro": {"flash_bytes": report["flash_bytes"],
                  "arena_bytes": report["arena_bytes"],
                  "accuracy": micro_accuracy(bundle, xt, yt)},
    }


def train_float(net, task, data, cfg, seed):
    import keras

    from keras_compress.export import to_tflite

    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    model = _compile(keras, build(keras, net, task, x.shape[1:]), LEARNING_RATES["float"])
    _fit(model, x, y, cfg["epochs"]["float"], seed)
    data32 = to_tflite(model)
    data32_lean = to_tflite(model, lean=True)
    int8 = to_tflite(model, quantize="int8", representative_data=x[:200])
    # Our int8 path: quantize_model + calibration (per-tensor Dense weights,
    # as QAT trains them), against the converter's own PTQ (per-channel).
    from keras_compress.quantization import calibrate, quantize_model

    ptq = quantize_model(model)
    calibrate(ptq, x[:200], verbose=0)
    int8_lean = to_tflite(ptq, quantize="int8", lean=True)
    return model.get_weights(), {
        "params": int(model.count_params()),
        "accuracy": _keras_accuracy(model, xt, yt),
        "float32_bytes": len(data32),
        "float32_gzip_bytes": gzip_size(data32),
        "float32_lean_bytes": len(data32_lean),
        "float32_accuracy": litert_accuracy(data32, xt, yt),
        "int8_bytes": len(int8),
        "int8_lean_bytes": len(int8_lean),
    }


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
                shift = seed % len(jobs)
                for arm, sparsity in jobs[shift:] + jobs[:shift]:
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


def _table(header, rows):
    from _harness import markdown_table

    return markdown_table(header, rows)


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
                  _table(["artifact", "sparsity", "acc %", "bytes", "gzip B",
                          "arena B", "vs float32"], rows), ""]
        stages = [["tfmot", pct(t["pruned_accuracy"]), pct(t["clustered_accuracy"]),
                   pct(t["qat_accuracy"])]]
        stages += [[f"ours @{s}", pct(o["pruned_accuracy"]), pct(o["clustered_accuracy"]),
                    pct(o["qat_accuracy"])] for s, o in m["ours"].items()]
        lines += [_table(["Keras accuracy %", "pruned", "clustered", "QAT"], stages), ""]
        first = next(iter(r["runs"][0]["ours"]))
        dc = r["runs"][0]["ours"][first]["deep_compression"]
        rows = [[d["stage"], f"{d['nonzeros']:,}", d["clusters"], d["representation"],
                 f"{d['bits_per_weight']:.3f}", f"{d['bytes']:,}", f"{d['ratio']:.1f}x"]
                for d in dc]
        lines += [f"Deep Compression table (weights only), ours @{first}, seed 0:", "",
                  _table(["stage", "non-zeros", "K", "best encoding", "bits/weight",
                          "bytes", "ratio"], rows), ""]
    rows = [[t["net"], t["target"], f"{t['ratio']:.2f}",
             "PASS" if t["pass"] else "FAIL"] for t in result["targets"]]
    lines += ["Targets:", "", _table(["net", "target", "value", ""], rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Binary MLP: 1-bit weights to a TFLM bundle with 1-bit look-up tables.


def run_binary(tasks, seeds, quick, log):
    import keras

    from keras_compress.export import to_tflite
    from keras_compress.quantization import quantize_model

    epochs = 2 if quick else EPOCHS["float"]
    results = {}
    for task in tasks:
        (x, y), (xt, yt) = data = load(task)
        if quick:
            x, y = x[:400], y[:400]
        runs = []
        for seed in range(seeds):
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            float_model = _compile(keras, build(keras, "mlp", task, x.shape[1:]),
                                   LEARNING_RATES["float"])
            _fit(float_model, x, y, epochs, seed)
            float_data = to_tflite(float_model)
            record = {"seed": seed, "float_accuracy": litert_accuracy(float_data, xt, yt),
                      "float32_bytes": len(float_data)}
            for bias in (False, True):
                keras.backend.clear_session()
                keras.utils.set_random_seed(seed)
                model = _binary_mlp(keras, task, x.shape[1:], bias)
                _compile(keras, model, LEARNING_RATES["float"])
                _fit(model, x, y, epochs, seed)
                qat = _compile(keras, quantize_model(model), LEARNING_RATES["qat"])
                _fit(qat, x, y, QUICK_EPOCHS["qat"] if quick else EPOCHS["qat"], seed + 2)
                report, bundle = micro_bundle(qat, "auto")
                tag = "bias" if bias else "no_bias"
                record[f"{tag}_keras_accuracy"] = _keras_accuracy(qat, xt, yt)
                record[f"{tag}_micro_accuracy"] = micro_accuracy(bundle, xt, yt)
                record[f"{tag}_micro_flash_bytes"] = report["flash_bytes"]
                record[f"{tag}_micro_flash_bytes_uncompressed"] = (
                    report["compression"]["flash_bytes_uncompressed"])
                record[f"{tag}_micro_arena_bytes"] = report["arena_bytes"]
                log(f"  {task} binary MLP ({tag}) seed {seed}: float "
                    f"{100 * record['float_accuracy']:.1f}% {len(float_data):,} B | "
                    f"TFLM {100 * record[f'{tag}_micro_accuracy']:.1f}% "
                    f"{report['flash_bytes']:,} B (int8 "
                    f"{record[f'{tag}_micro_flash_bytes_uncompressed']:,} B)")
            runs.append(record)
        medians = {k: median([r[k] for r in runs]) for k in runs[0] if k != "seed"}
        ratio = medians["float32_bytes"] / medians["no_bias_micro_flash_bytes"]
        results[task] = {"runs": runs, "medians": medians, "ratio": ratio,
                         "target": f"float32 .tflite / binary TFLM flash >= "
                                   f"{MIN_BINARY_VS_FLOAT:g}",
                         "pass": ratio >= MIN_BINARY_VS_FLOAT}
    return results


def _binary_mlp(keras, task, input_shape, bias):
    """64-300-100-10 with BinaryDense layers: +-alpha per tensor (one int8
    scale per tensor, two int8 values), optionally biases."""
    from keras_compress.layers import BinaryDense

    L = keras.layers
    kwargs = {"scale": "tensor", "use_bias": bias}
    return keras.Sequential([
        keras.Input(input_shape), L.Flatten(),
        BinaryDense(300, activation="relu", name="fc1", **kwargs),
        BinaryDense(100, activation="relu", name="fc2", **kwargs),
        BinaryDense(10, name="logits", **kwargs),
    ], name=f"{task}_binary_mlp")


def binary_tables(result):
    rows = []
    for task, r in result.items():
        m = r["medians"]
        for tag in ("no_bias", "bias"):
            rows.append([task, tag.replace("_", " "), f"{100 * m['float_accuracy']:.1f}",
                         f"{m['float32_bytes']:,.0f}",
                         f"{100 * m[f'{tag}_micro_accuracy']:.1f}",
                         f"{m[f'{tag}_micro_flash_bytes_uncompressed']:,.0f}",
                         f"{m[f'{tag}_micro_flash_bytes']:,.0f}",
                         f"{m[f'{tag}_micro_arena_bytes']:,.0f}",
                         f"{m['float32_bytes'] / m[f'{tag}_micro_flash_bytes']:.1f}x"])
    targets = [[task, r["target"] + " (no bias)", f"{r['ratio']:.1f}",
                "PASS" if r["pass"] else "FAIL"] for task, r in result.items()]
    return (_table(["task", "binary MLP", "float acc %", "float32 B",
                    "TFLM acc %", "int8 bundle B", "DECODE bundle B", "arena B",
                    "vs float32"], rows)
            + "\n\n" + _table(["task", "target", "value", ""], targets))
