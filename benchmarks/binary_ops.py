"""Bit-packed binary operators against int8 builtins and float32, side by side.

Section A, files and accuracy (digits, 1437 train / 360 test). Two binary
networks, trained in float (latent weights, `BinaryDense`/`BinaryConv2D`
with +-alpha per output channel), then fine-tuned with QAT
(`quantize_model`):

- MLP: Flatten, BinaryDense(1024) (int8 inputs: binary weights only),
  BatchNorm, BinaryDense(1024, binarize_inputs=True) (XNOR), BatchNorm,
  BinaryDense(10, binarize_inputs=True), BatchNorm;
- CNN: BinaryConv2D(32, 3) on the 1-channel image (its bits would not be
  smaller: it stays an int8 CONV_2D), BatchNorm, BinaryConv2D(64, 3,
  binarize_inputs=True), BatchNorm, MaxPool 2, BinaryConv2D(64, 3,
  binarize_inputs=True), BatchNorm, Flatten, BinaryDense(10,
  binarize_inputs=True), BatchNorm.

Each is written three ways: float32 `.tflite` (`to_tflite(model)`), full
int8 with builtin operators (`to_tflite(qat, quantize="int8", ...)`, and
its TFLite Micro bundle) and packed (`binary="packed"`: the same file with
`KC_BINARY_FC`/`KC_BINARY_CONV2D`, bits for weights). Reported: file bytes
(LiteRT file and TFLM flash), TFLM arena, the binary layers' weight bytes
(float32 vs bits), and test accuracy of the Keras QAT model, the builtin
file and the packed file (in LiteRT with the keras-compress delegate and
XNNPACK, and in TFLite Micro).

Section B, operator latency at equal shapes (random weights, int8 inputs
and outputs, batch 1, LiteRT with 1 thread): a 1024 -> 1024 fully connected
layer and a 3x3 convolution 64 -> 64 on 16x16, four ways each:

- `int8`: the builtin int8 operator (a binary layer with int8 inputs:
  FULLY_CONNECTED / CONV_2D, XNNPACK in LiteRT);
- `int8 + sign`: the same layer binarizing its inputs, as the default export
  writes it (GREATER_EQUAL, BROADCAST_TO, SELECT_V2, then the operator);
- `packed, int8 input`: KC_BINARY_* on int8 inputs (add/subtract);
- `packed, XNOR`: KC_BINARY_* binarizing its inputs (XOR and popcount).

Each arm runs in LiteRT (`LiteRTModel.benchmark`) and TFLite Micro's host
interpreter (`MicroModel.benchmark`; host code: TFLM's reference int8
kernels, not a Cortex-M with CMSIS-NN), the arms in turns; medians of the
repeats' medians. The packed kernels are built with this machine's C
compiler (`-O3 -march=native`).

Targets (issue 15): the binary layers' weights at least 28x smaller than
float32, the MLP's whole file at least 20x; the packed FC at least 2x
faster than the int8 FULLY_CONNECTED at 1024x1024 in LiteRT and TFLM; the
packed file as accurate as the Keras model.

Usage:

    python benchmarks/binary_ops.py              # 3 seeds, ~8 min on 2 shared cores
    python benchmarks/binary_ops.py --quick      # smoke test, temp output
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import _harness  # noqa: E402  (benchmarks/ is on sys.path)
from _harness import log, markdown_table, median  # noqa: E402

EPOCHS = {"float": 20, "qat": 2}
QUICK_EPOCHS = {"float": 1, "qat": 1}
LATENCY = {"repeats": 5, "runs": 50, "warmup": 10}
QUICK_LATENCY = {"repeats": 1, "runs": 5, "warmup": 1}
SHAPES = {"fc_1024": (1024,), "conv_3x3_64": (16, 16, 64)}
WIDTH = 1024  # the MLP's hidden units
# --quick: a 256-unit MLP and smaller operators (the same code, less time).
QUICK_SHAPES = {"fc_1024": (256,), "conv_3x3_64": (8, 8, 32)}
QUICK_WIDTH = 256
TARGETS = {"weights_vs_float32": 28.0, "mlp_file_vs_float32": 20.0,
           "fc_speedup": 2.0}


def parse_args(argv=None):
    parser = _harness.arguments(
        "binary_ops",
        "Bit-packed binary operators vs int8 builtins and float32: sizes, "
        "accuracy (digits) and operator latency in LiteRT and TFLite Micro.",
        quick="1 seed, 1+1 epochs, 400 training samples, a 256-unit MLP "
              "only, smaller operators, 1 latency repeat",
        seeds=3)
    return _harness.parse(parser, argv)


# -- models ----------------------------------------------------------------

def build(kind, width=WIDTH):
    import keras

    from keras_compress.layers import BinaryConv2D, BinaryDense

    L = keras.layers
    inputs = keras.Input((8, 8, 1))
    if kind == "mlp":
        h = L.Flatten()(inputs)
        h = L.BatchNormalization()(BinaryDense(width)(h))
        h = L.BatchNormalization()(BinaryDense(width, binarize_inputs=True)(h))
    else:
        h = L.BatchNormalization()(BinaryConv2D(32, 3, padding="same")(inputs))
        h = L.BatchNormalization()(
            BinaryConv2D(64, 3, padding="same", binarize_inputs=True)(h))
        h = L.MaxPooling2D(2)(h)
        h = L.BatchNormalization()(
            BinaryConv2D(64, 3, padding="same", binarize_inputs=True)(h))
        h = L.Flatten()(h)
    outputs = L.BatchNormalization()(BinaryDense(10, binarize_inputs=True)(h))
    return keras.Model(inputs, outputs, name=f"binary_{kind}")


def _compile(model, rate):
    import keras

    model.compile(keras.optimizers.Adam(rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _accuracy(outputs, y):
    return float(np.mean(np.argmax(outputs, 1) == y))


def _packed_weights(data):
    """`(weights, bytes)` of the packed operators: how many binary weights
    they hold and the bytes of their bits."""
    from keras_compress import _tflite
    from keras_compress.custom_ops import options

    model = _tflite.parse(data)
    weights = nbytes = 0
    for op in model.subgraphs[0].operators:
        if _tflite.builtin_op_name(model.operatorCodes[op.opcodeIndex]).startswith("CUSTOM:KC_"):
            o = options.parse(bytes(bytearray(op.customOptions)))
            weights += o["out_c"] * o["k_h"] * o["k_w"] * o["in_c"]
            nbytes += o["out_c"] * options.row_bytes(o)
    return weights, nbytes


def _binary_weights(model):
    from keras_compress.layers import BinaryConv2D, BinaryDense

    return sum(int(np.prod(layer.kernel.shape)) for layer in model.layers
               if isinstance(layer, (BinaryDense, BinaryConv2D)))


def run_files(kind, seed, epochs, train, test, width=WIDTH):
    import keras

    from keras_compress import quantization
    from keras_compress.export import to_micro, to_tflite
    from keras_compress.runtime import LiteRTModel, MicroModel

    (x, y), (xt, yt) = train, test
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = _compile(build(kind, width), 3e-3)
    model.fit(x, y, epochs=epochs["float"], batch_size=64, verbose=0)
    qat = _compile(quantization.quantize_model(model), 1e-3)
    qat.fit(x, y, epochs=epochs["qat"], batch_size=64, verbose=0)
    float32 = to_tflite(model)
    kwargs = dict(quantize="int8", representative_data=x[:200], int8_io=True,
                  batch_size=1)
    builtin = to_tflite(qat, **kwargs)
    packed = to_tflite(qat, binary="packed", **kwargs)
    with tempfile.TemporaryDirectory() as folder:
        micro_builtin = to_micro(qat, os.path.join(folder, "b"), "net",
                                 representative_data=x[:200])
        micro_packed = to_micro(qat, os.path.join(folder, "p"), "net",
                                representative_data=x[:200], binary="packed")
    packed_weights, packed_weight_bytes = _packed_weights(packed)
    row = {
        "seed": seed,
        "keras_qat_accuracy": _accuracy(qat.predict(xt, verbose=0), yt),
        "float32_accuracy": LiteRTModel(float32).evaluate(xt, yt),
        "builtin_accuracy": LiteRTModel(builtin).evaluate(xt, yt),
        "packed_litert_accuracy": LiteRTModel(packed).evaluate(xt, yt),
        "packed_tflm_accuracy": MicroModel(packed).evaluate(xt, yt),
        "builtin_tflm_accuracy": MicroModel(builtin).evaluate(xt, yt),
        "float32_bytes": len(float32),
        "builtin_bytes": len(builtin),
        "packed_bytes": len(packed),
        "builtin_flash_bytes": micro_builtin["flash_bytes"],
        "packed_flash_bytes": micro_packed["flash_bytes"],
        "builtin_arena_bytes": micro_builtin["arena_bytes"],
        "packed_arena_bytes": micro_packed["arena_bytes"],
        "binary_weights": _binary_weights(model),
        "packed_weights": packed_weights,
        "packed_weight_bytes": packed_weight_bytes,
    }
    return row


def summarize_files(rows):
    keys = [k for k in rows[0] if k != "seed"]
    out = {k: median([r[k] for r in rows]) for k in keys}
    out["file_vs_float32"] = out["float32_bytes"] / out["packed_bytes"]
    out["file_vs_builtin"] = out["builtin_bytes"] / out["packed_bytes"]
    out["flash_vs_builtin"] = out["builtin_flash_bytes"] / out["packed_flash_bytes"]
    out["flash_vs_float32"] = out["float32_bytes"] / out["packed_flash_bytes"]
    # The layers that became packed operators: their weights as float32
    # (4 bytes each) against their bits.
    out["packed_weights_vs_float32"] = 4.0 * out["packed_weights"] / out["packed_weight_bytes"]
    return out


# -- latency ---------------------------------------------------------------

def _single_layer(shape, binarize, seed):
    import keras

    from keras_compress import quantization
    from keras_compress.layers import BinaryConv2D, BinaryDense

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    if len(shape) == 1:
        outputs = BinaryDense(shape[0], binarize_inputs=binarize)(inputs)
    else:
        outputs = BinaryConv2D(shape[-1], 3, padding="same", binarize_inputs=binarize)(inputs)
    model = keras.Model(inputs, outputs)
    return quantization.quantize_model(model)


def latency_arms(shape, seed):
    """{arm: .tflite bytes} for one shape."""
    from keras_compress.export import to_tflite

    rng = np.random.default_rng(seed)
    data = rng.normal(size=(64,) + shape).astype("float32")
    kwargs = dict(quantize="int8", representative_data=data, int8_io=True, batch_size=1)
    plain, signed = _single_layer(shape, False, seed), _single_layer(shape, True, seed)
    return {
        "int8": to_tflite(plain, **kwargs),
        "int8 + sign": to_tflite(signed, **kwargs),
        "packed, int8 input": to_tflite(plain, binary="packed", **kwargs),
        "packed, XNOR": to_tflite(signed, binary="packed", **kwargs),
    }


def run_latency(shape, settings, seed=0):
    from keras_compress.runtime import LiteRTModel, MicroModel

    arms = latency_arms(shape, seed)
    litert = _harness.litert_latency(
        {k: LiteRTModel(v, num_threads=1) for k, v in arms.items()},
        settings["repeats"], settings["runs"], settings["warmup"])
    micro_runners = {k: MicroModel(v) for k, v in arms.items()}
    micro = _harness.interleave(
        {k: (lambda _, m=m: m.benchmark(num_runs=settings["runs"],
                                        warmup=settings["warmup"])["median_ms"])
         for k, m in micro_runners.items()}, settings["repeats"])
    out = {}
    for arm in arms:
        out[arm] = {"litert_ms": litert[arm]["median_ms"],
                    "litert_ms_per_repeat": litert[arm]["median_ms_per_repeat"],
                    "tflm_ms": median(micro[arm]), "tflm_ms_per_repeat": micro[arm],
                    "file_bytes": len(arms[arm])}
    for runtime in ("litert", "tflm"):
        base = out["int8"][f"{runtime}_ms"]
        for arm in arms:
            out[arm][f"{runtime}_speedup_vs_int8"] = base / out[arm][f"{runtime}_ms"]
    return out


# -- report ----------------------------------------------------------------

def _pct(v):
    return f"{100 * v:.1f}"


def tables(result):
    lines = []
    for kind, f in result["files"].items():
        s = f["summary"]
        lines.append(f"\n{kind.upper()} (medians of {len(f['seeds'])} seed(s))\n")
        lines.append(markdown_table(
            ["file", "bytes", "x smaller than float32", "accuracy % (LiteRT)",
             "TFLM flash", "TFLM arena", "accuracy % (TFLM)"],
            [["float32", f"{int(s['float32_bytes']):,}", "1.0",
              _pct(s["float32_accuracy"]), "-", "-", "-"],
             ["int8 builtin", f"{int(s['builtin_bytes']):,}",
              f"{s['float32_bytes'] / s['builtin_bytes']:.1f}", _pct(s["builtin_accuracy"]),
              f"{int(s['builtin_flash_bytes']):,}", f"{int(s['builtin_arena_bytes']):,}",
              _pct(s["builtin_tflm_accuracy"])],
             ["packed", f"{int(s['packed_bytes']):,}", f"{s['file_vs_float32']:.1f}",
              _pct(s["packed_litert_accuracy"]), f"{int(s['packed_flash_bytes']):,}",
              f"{int(s['packed_arena_bytes']):,}", _pct(s["packed_tflm_accuracy"])]]))
        lines.append(
            f"\nKeras QAT accuracy {_pct(s['keras_qat_accuracy'])}%; binary weights "
            f"{int(s['binary_weights']):,}, of which {int(s['packed_weights']):,} in "
            f"packed operators: {4 * int(s['packed_weights']):,} B as float32, "
            f"{int(s['packed_weight_bytes']):,} B as bits "
            f"({s['packed_weights_vs_float32']:.1f}x)")
    for shape, arms in result["latency"].items():
        lines.append(f"\n{shape}: latency (ms, median of repeats' medians)\n")
        lines.append(markdown_table(
            ["arm", "LiteRT ms", "LiteRT speed-up vs int8", "TFLM ms",
             "TFLM speed-up vs int8", "file bytes"],
            [[arm, f"{a['litert_ms']:.4f}", f"{a['litert_speedup_vs_int8']:.2f}x",
              f"{a['tflm_ms']:.4f}", f"{a['tflm_speedup_vs_int8']:.2f}x",
              f"{a['file_bytes']:,}"] for arm, a in arms.items()]))
    lines.append("\nTargets:")
    for name, t in result["targets"].items():
        lines.append(f"- {name}: {t['value']:.2f} (target >= {t['target']:g}): "
                     f"{'PASS' if t['pass'] else 'FAIL'}")
    return "\n".join(lines)


def main(argv=None):
    import logging

    from keras_compress import datasets

    args = parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    info = _harness.machine_info("ai-edge-litert", "tflite-micro")
    start = time.perf_counter()
    epochs = QUICK_EPOCHS if args.quick else EPOCHS
    latency = QUICK_LATENCY if args.quick else LATENCY
    shapes = QUICK_SHAPES if args.quick else SHAPES
    width = QUICK_WIDTH if args.quick else WIDTH
    (x, y), test = datasets.load_digits()
    if args.quick:
        x, y = x[:400], y[:400]
    files = {}
    for kind in ("mlp",) if args.quick else ("mlp", "cnn"):
        rows = []
        for seed in range(args.seeds):
            rows.append(run_files(kind, seed, epochs, (x, y), test, width))
            r = rows[-1]
            log(f"{kind} seed {seed}: float32 {r['float32_bytes']:,} B, int8 "
                f"{r['builtin_bytes']:,} B, packed {r['packed_bytes']:,} B; accuracy "
                f"Keras {_pct(r['keras_qat_accuracy'])}, packed LiteRT "
                f"{_pct(r['packed_litert_accuracy'])} / TFLM {_pct(r['packed_tflm_accuracy'])}")
        files[kind] = {"seeds": rows, "summary": summarize_files(rows)}
    timing = {}
    for name, shape in shapes.items():
        timing[name] = run_latency(shape, latency)
        log(f"{name}: " + ", ".join(
            f"{arm} {a['litert_ms']:.3f}/{a['tflm_ms']:.3f} ms"
            for arm, a in timing[name].items()))
    mlp = files["mlp"]["summary"]
    values = {
        "weights_vs_float32": min(f["summary"]["packed_weights_vs_float32"]
                                  for f in files.values()),
        "mlp_file_vs_float32": mlp["file_vs_float32"],
        "fc_speedup_litert": timing["fc_1024"]["packed, XNOR"]["litert_speedup_vs_int8"],
        "fc_speedup_tflm": timing["fc_1024"]["packed, XNOR"]["tflm_speedup_vs_int8"],
    }
    targets = {
        name: {"value": value, "target": TARGETS[name if "speedup" not in name else "fc_speedup"],
               "pass": value >= TARGETS[name if "speedup" not in name else "fc_speedup"]}
        for name, value in values.items()}
    elapsed = time.perf_counter() - start
    result = _harness.report(
        args, argv, {"seeds": args.seeds, "quick": args.quick, "epochs": epochs,
                     "latency": latency, "mlp_width": width,
                     "shapes": {k: list(v) for k, v in shapes.items()}}, info, elapsed,
        files=files, latency=timing, targets=targets)
    log(tables(result))
    return _harness.write_report(args, result)


if __name__ == "__main__":
    main()
