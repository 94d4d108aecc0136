"""A microcontroller bundle: int8 `.tflite`, C array, and a report."""

import collections
import json
import os

import numpy as np

from keras_compress import _io
from keras_compress import _exit_file
from keras_compress import _tflite
from keras_compress import _decode
from keras_compress import _inputs
from keras_compress import custom_ops
from keras_compress.export import _micro_compress
from keras_compress.export import c_array
from keras_compress.export.lean import lean_with_check
from keras_compress.export.tflite import to_tflite

_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")
_TYPE_NAMES = {
    v: k
    for k, v in vars(_tflite.schema.TensorType).items()
    if not k.startswith("_")
}


def to_micro(model_or_tflite, out_dir, name, representative_data=None,
             calibration_samples=200, compression=None, lean=True, binary=None):
    """Writes a TensorFlow Lite Micro bundle for a full-int8 model.

    A Keras model is first converted with `to_tflite(quantize="int8",
    int8_io=True, batch_size=1)`, calibrated on `representative_data`. A
    given `.tflite` must already be full-integer (int8 weights and
    activations): float, float16 and dynamic-range models are refused,
    since microcontroller kernels are integer kernels. A full-int8
    early-exit file (`export_early_exit_file(..., quantize="int8")`) is
    accepted with its few float32 decision operators; the resolver then
    lists `IF`, and the report gains an `early_exit` entry (TFLM plans
    every subgraph's tensors at allocation, so the arena does not depend
    on the exit taken; with a threshold input, the deepest path is run in
    the measured arena to prove it). Unless `lean=False`,
    what the runtimes never read is removed (see
    `keras_compress.export.lean_tflite`: the demo CNN on 8x8 digits 70,256
    -> 67,296 bytes, a 3,274-parameter Conv1D net 9,760 -> 7,648), and the
    lean file is proven to give bit-identical outputs to the original in
    TFLite Micro and in LiteRT's reference kernels. The model is then
    loaded in TFLite Micro's interpreter, which measures the smallest arena
    it runs in and proves it runs. Only then are the files written, all or
    none:

    - `name.tflite`: the model;
    - `name.h` and `name.c`: the model as a 16-byte aligned
      `const unsigned char name_tflite[]` with `name_tflite_len`, the arena
      size as `NAME_ARENA_SIZE`, and the `MicroMutableOpResolver` calls to
      register its operators;
    - `name_report.json`: flash bytes, arena bytes, operators (with counts
      and resolver calls), input and output tensors.

    With `compression`, constant weights are stored encoded and decoded at
    run time by TFLM's `TFLM_DECODE` operator (one before each operator
    that reads compressed constants; register it with
    `resolver.AddDecode()`). Every quantized constant of `CONV_2D`,
    `DEPTHWISE_CONV_2D`, `FULLY_CONNECTED` and `TRANSPOSE_CONV` (int8
    weights, int32 biases) is encoded and compressed only where the
    encoded bytes plus the flatbuffer cost of the DECODE operator and its
    tensors (measured once per model) are smaller than the tensor:

    - `"lut"`: value tables + packed 1-7 bit indices, one table per
      channel on per-channel quantized tensors (more than 128 distinct
      values per channel: left as is). Binary and ternary weights get 1-
      and 2-bit indices; clustered weights `ceil(log2(clusters))` bits
      (plus one table of `clusters` values per channel).
    - `"prune"`: a bitmask of the non-zero (non-zero-point) positions +
      the non-zero values.
    - `"huffman"`: one Huffman code for the whole tensor (int8), decoded
      with multi-level tables.
    - `"auto"`: per tensor, the smallest of these (or none).

    Which wins, measured on a 64 x 576 int8 tensor: when each channel has
    its own few int8 levels (clustered weights: per-channel scales give
    each channel other levels), LUT while the tensor is dense enough (16
    levels: up to 50% zeros, pruning from 80%; 4 levels: up to 80% zeros,
    Huffman at 90%, pruning at 95%; 64 levels: dense only, pruning from
    50%). When every channel has the same int8 levels (binary or ternary
    weights scaled per channel: {-127, 0, 127}), Huffman at any sparsity.

    Before anything is written, every compressed tensor is decoded in
    Python (following the kernels) and must equal the original, and the
    compressed model must give bit-identical raw int8 outputs in TFLM's
    interpreter to the uncompressed model, on the calibration samples (a
    Keras model) plus random int8 inputs, both when the weights are
    decoded into the arena and into alternate decompression memory;
    otherwise `RuntimeError` and nothing is written. Decoded weights take
    arena RAM: the report gives the arena with decoding into the arena,
    and the smallest alternate decompression memory that keeps them out
    of it (measured) with the arena that then remains; the header defines
    both and shows `MicroInterpreter::SetDecompressionMemory`. When no
    tensor gets smaller, a warning is issued and the uncompressed bundle
    is written (the report says why for every tensor). Standard LiteRT
    cannot run the compressed `.tflite`; TFLM can. All three decode types
    were verified with the reference kernels of the `tflite-micro` wheel
    (0.dev20261023); optimized kernel ports (CMSIS-NN, Xtensa) are not
    run here.

    Args:
        model_or_tflite: A built `keras.Model`, or `.tflite` bytes or path.
        out_dir: Folder for the bundle; created if missing (its parent must
            exist). If it holds only files (no subfolders), the bundle is
            swapped in with the folder in one step (on Linux): a kill
            leaves the previous or the new complete bundle, and the other
            files stay. In a folder with subfolders the files are renamed in
            one by one, so a kill between two renames can mix two bundles.
        name: A C identifier, used for file and variable names.
        representative_data: Calibration inputs, needed for a Keras model
            (see `to_tflite`).
        calibration_samples: Samples used for calibration, default 200.
        compression: None (default), `"lut"`, `"prune"`, `"huffman"` or
            `"auto"`: DECODE compression of the constant weights (see
            above).
        lean: `True` (default: the lean file runs in TFLite Micro and
            LiteRT), `False` (the converter's or the given file unchanged),
            or `"micro"`: also store one zero point, instead of one per
            channel, for per-channel quantized weights and biases (TFLite
            Micro's allocator expands it; 8 bytes per channel: the Conv1D
            net above 7,648 -> 6,528 bytes). LiteRT refuses such a file
            ("QuantizationParam has 1 zero_point values and 16 scale
            values"), so the shared zero points are verified in TFLite
            Micro only. The lean pass
            runs before `compression`.
        binary: None (default) or `"packed"`: `BinaryDense` / `BinaryConv2D`
            become the bit-packed custom operators `KC_BINARY_FC` /
            `KC_BINARY_CONV2D` (see `to_tflite`; proven bit-identical to the
            builtin int8 bundle in TFLite Micro). The bundle then also holds
            their C sources (`kc_binary.h`, `kc_binary.c`, C99, no
            allocation, and `kc_tflm_ops.h`, a header-only TFLM adapter) and
            the header names the one call that registers them,
            `KcAddBinaryOps(resolver)`. A given `.tflite` with these
            operators gets the sources too.

    Returns:
        The report as a dict (also written as `name_report.json`).

    Example:

    >>> report = to_micro(model, "bundle", "digits",
    ...                   representative_data=x_train[:200])
    >>> report["arena_bytes"], report["ops"]
    (3632, ['QUANTIZE', 'CONV_2D', ...])
    >>> report = to_micro(clustered_model, "small", "digits",
    ...                   representative_data=x_train[:200],
    ...                   compression="auto")
    >>> c = report["compression"]
    >>> c["flash_bytes_uncompressed"], report["flash_bytes"]
    (19984, 11312)
    >>> c["arena_bytes"], c["alt_decompression_memory_bytes"], \
    ...     c["arena_bytes_with_alt_memory"]
    (16768, 9216, 7568)
    """
    import keras

    from keras_compress.runtime.micro import MicroModel
    from keras_compress.runtime.micro import op_names

    c_array.check_identifier(name)
    out_dir = _io.check_output_dir(out_dir)
    if compression is not None and compression not in _decode.METHODS:
        raise ValueError(
            "Expected `compression` to be None or one of "
            f"{', '.join(repr(m) for m in _decode.METHODS)}. "
            f"Received: compression={compression!r}"
        )
    if not (isinstance(lean, bool) or (isinstance(lean, str) and lean == "micro")):
        raise ValueError(
            "Expected `lean` to be True, False or 'micro'. "
            f"Received: lean={lean!r}"
        )
    samples = None
    is_keras = isinstance(model_or_tflite, keras.Model)
    if is_keras:
        data = to_tflite(
            model_or_tflite,
            quantize="int8",
            representative_data=representative_data,
            int8_io=True,
            batch_size=1,
            calibration_samples=calibration_samples,
            binary=binary,
        )
        specs = _inputs.tensor_specs(model_or_tflite, 1)
        try:
            if representative_data is not None:
                samples = _inputs.take_samples(representative_data, specs, 8)
        except ValueError:
            samples = None  # A generator the calibration used up.
    else:
        if binary is not None:
            raise ValueError(
                "`binary` packs the binary layers of a Keras model; a given "
                ".tflite is written as it is. Expected binary=None. Received: "
                f"binary={binary!r}"
            )
        data = _tflite.read_bytes(model_or_tflite, "model_or_tflite")
    flatbuffer = _tflite.parse(data, "model_or_tflite")
    check_full_int8(flatbuffer)
    early_exit = _exit_file.read_metadata(flatbuffer)
    if lean:
        feed = None
        if samples:
            feed = [np.concatenate(parts) for parts in zip(*samples)]
            feed = feed[0] if len(feed) == 1 else feed
        # LiteRT proves the reordered inputs/outputs, unless the model has
        # custom operators (TFLM_DECODE) it cannot run.
        custom = any(op.startswith("CUSTOM:") for op in op_names(flatbuffer))
        data = lean_with_check(
            data, micro=lean == "micro", sample_inputs=feed,
            litert_kernels=() if custom else ("reference",), tflm=True,
        )
        flatbuffer = _tflite.parse(data)
    micro = MicroModel(data)
    arena_bytes = micro.arena_bytes
    if early_exit is not None:
        early_exit = _early_exit_report(micro, early_exit)
    compressed = None
    if compression is not None:
        feeds = _micro_compress.verification_inputs(
            model_or_tflite if is_keras else None, micro, representative_data,
            calibration_samples,
        )
        data, flatbuffer, compressed = _micro_compress.compress(
            data, flatbuffer, compression, micro, feeds
        )
        arena_bytes = compressed["arena_bytes"]
    ops = op_names(flatbuffer)
    counts = _op_counts(flatbuffer)
    report = {
        "name": name,
        "flash_bytes": len(data),
        "lean": lean,
        "arena_bytes": arena_bytes,
        "ops": ops,
        "op_counts": counts,
        "resolver": [c_array.resolver_method(op) for op in c_array.registered(ops)],
        "inputs": [_tensor_report(t) for t in micro.inputs],
        "outputs": [_tensor_report(t) for t in micro.outputs],
        "files": {
            "tflite": f"{name}.tflite",
            "header": f"{name}.h",
            "source": f"{name}.c",
            "report": f"{name}_report.json",
        },
        "compression": compressed,
    }
    if early_exit is not None:
        report["early_exit"] = early_exit
    sources = _custom_op_sources(ops)
    if sources:
        report["custom_ops"] = {
            "ops": [op for op in ops if op in custom_ops.CUSTOM_OP_NAMES],
            "sources": sorted(sources),
            "registration": "KcAddBinaryOps(resolver)",
        }
        report["files"]["custom_op_sources"] = sorted(sources)
    alt = None
    if compressed is not None and compressed["compressed_tensors"]:
        alt = (compressed["alt_decompression_memory_bytes"],
               compressed["arena_bytes_with_alt_memory"])
    contents = {
        f"{name}.tflite": data,
        f"{name}.h": c_array.header(name, len(data), arena_bytes, ops, alt_memory=alt),
        f"{name}.c": c_array.source(name, data),
        f"{name}_report.json": json.dumps(report, indent=2) + "\n",
        **sources,
    }
    _io.write_bundle(out_dir, contents)
    return report


def _early_exit_report(micro, info):
    """The early-exit part of the report; with a threshold input, proves the
    measured arena runs the deepest path (every stage).

    TFLite Micro plans the tensors of every subgraph when it allocates, so
    the arena does not depend on the exit a sample takes; with thresholds
    no confidence passes, the last exit must be reached in that arena.
    """
    last = int(info["num_exits"]) - 1
    if info.get("threshold_input"):
        never = 2.0 if info["criterion"] == "max_prob" else -1.0
        x = np.zeros((1,) + tuple(micro.inputs[0].shape[1:]), np.float32)
        taken = micro.predict([x, np.full((1, last), never, np.float32)])[1]
        if int(np.asarray(taken).reshape(-1)[0]) != last:
            raise RuntimeError(
                "The early-exit model did not reach its last exit with "
                "thresholds no sample passes.")
    keys = ("num_exits", "num_classes", "criterion", "threshold", "threshold_input",
            "cumulative_macs")
    return {k: info[k] for k in keys if k in info}


def _custom_op_sources(ops):
    """`{file name: text}` of the custom operators' C sources `ops` need."""
    if not any(op in custom_ops.CUSTOM_OP_NAMES for op in ops):
        return {}
    folder = custom_ops.source_dir()
    sources = {}
    for file_name in custom_ops.FIRMWARE_SOURCES:
        with open(os.path.join(folder, file_name)) as f:
            sources[file_name] = f.read()
    return sources


def check_full_int8(flatbuffer, arg_name="model_or_tflite"):
    """Raises unless every operator of the model computes in integers.

    Float tensors are allowed only where a model converts at its edges: the
    input of `QUANTIZE` and the output of `DEQUANTIZE`; and, in a full-int8
    single-file early-exit model (`export_early_exit_file`), at the few
    float32 operators that compute an exit's confidence and choose the
    branch.
    """
    codes = flatbuffer.operatorCodes or []
    early_exit = _exit_file.read_metadata(flatbuffer) or {}
    decision = _exit_file.DECISION_OPS if early_exit.get("quantize") == "int8" else ()
    for graph in flatbuffer.subgraphs:
        for op in graph.operators or []:
            op_name = _tflite.builtin_op_name(codes[op.opcodeIndex])
            if op_name in decision:
                continue
            ids = []
            if op_name != "QUANTIZE":
                ids += [i for i in op.inputs if i >= 0]
            if op_name != "DEQUANTIZE":
                ids += [i for i in op.outputs if i >= 0]
            for i in ids:
                type_name = _TYPE_NAMES.get(graph.tensors[i].type, "?")
                if type_name in _FLOAT_TYPES:
                    raise ValueError(
                        "Expected a full-int8 model (int8 weights and "
                        "activations, as to_tflite(quantize='int8') makes) "
                        "for a microcontroller. Received: "
                        f"`{arg_name}` with a {type_name} tensor at operator "
                        f"{op_name} (a float, float16 or dynamic-range model)"
                    )


def _op_counts(flatbuffer):
    codes = flatbuffer.operatorCodes or []
    counts = collections.Counter(
        _tflite.builtin_op_name(codes[op.opcodeIndex])
        for graph in flatbuffer.subgraphs
        for op in graph.operators or []
    )
    return dict(counts)


def _tensor_report(info):
    return {
        "name": info.name,
        "shape": list(info.shape),
        "dtype": info.dtype.name,
        "scale": info.scale,
        "zero_point": info.zero_point,
    }
