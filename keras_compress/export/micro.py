"""A microcontroller bundle: int8 `.tflite`, C array, and a report."""

import collections
import json
import os

from keras_compress import _io
from keras_compress import _tflite
from keras_compress.export import c_array
from keras_compress.export.tflite import to_tflite

_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")
_TYPE_NAMES = {
    v: k
    for k, v in vars(_tflite.schema.TensorType).items()
    if not k.startswith("_")
}


def to_micro(model_or_tflite, out_dir, name, representative_data=None,
             calibration_samples=200):
    """Writes a TensorFlow Lite Micro bundle for a full-int8 model.

    A Keras model is first converted with `to_tflite(quantize="int8",
    int8_io=True, batch_size=1)`, calibrated on `representative_data`. A
    given `.tflite` must already be full-integer (int8 weights and
    activations): float, float16 and dynamic-range models are refused,
    since microcontroller kernels are integer kernels. The model is then
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

    Args:
        model_or_tflite: A built `keras.Model`, or `.tflite` bytes or path.
        out_dir: Folder for the bundle; created if missing (its parent must
            exist).
        name: A C identifier, used for file and variable names.
        representative_data: Calibration inputs, needed for a Keras model
            (see `to_tflite`).
        calibration_samples: Samples used for calibration, default 200.

    Returns:
        The report as a dict (also written as `name_report.json`).

    Example:

    >>> report = to_micro(model, "bundle", "digits",
    ...                   representative_data=x_train[:200])
    >>> report["arena_bytes"], report["ops"]
    (3632, ['QUANTIZE', 'CONV_2D', ...])
    """
    import keras

    from keras_compress.runtime.micro import MicroModel

    c_array.check_identifier(name)
    out_dir = _io.check_output_dir(out_dir)
    if isinstance(model_or_tflite, keras.Model):
        data = to_tflite(
            model_or_tflite,
            quantize="int8",
            representative_data=representative_data,
            int8_io=True,
            batch_size=1,
            calibration_samples=calibration_samples,
        )
    else:
        data = _tflite.read_bytes(model_or_tflite, "model_or_tflite")
    flatbuffer = _tflite.parse(data, "model_or_tflite")
    check_full_int8(flatbuffer)
    micro = MicroModel(data)
    ops = micro.ops
    counts = _op_counts(flatbuffer)
    report = {
        "name": name,
        "flash_bytes": len(data),
        "arena_bytes": micro.arena_bytes,
        "ops": ops,
        "op_counts": counts,
        "resolver": [
            c_array.resolver_method(op) for op in ops if not op.startswith("CUSTOM:")
        ],
        "inputs": [_tensor_report(t) for t in micro.inputs],
        "outputs": [_tensor_report(t) for t in micro.outputs],
        "files": {
            "tflite": f"{name}.tflite",
            "header": f"{name}.h",
            "source": f"{name}.c",
            "report": f"{name}_report.json",
        },
    }
    contents = {
        f"{name}.tflite": data,
        f"{name}.h": c_array.header(name, len(data), micro.arena_bytes, ops),
        f"{name}.c": c_array.source(name, data),
        f"{name}_report.json": json.dumps(report, indent=2) + "\n",
    }
    created = not os.path.isdir(out_dir)
    if created:
        os.mkdir(out_dir)
    paths = {os.path.join(out_dir, f): content for f, content in contents.items()}
    try:
        with _io.staged_files(list(paths)) as temps:
            for path, content in paths.items():
                mode = "wb" if isinstance(content, bytes) else "w"
                with open(temps[path], mode) as f:
                    f.write(content)
    except BaseException:
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
    return report


def check_full_int8(flatbuffer, arg_name="model_or_tflite"):
    """Raises unless every operator of the model computes in integers.

    Float tensors are allowed only where a model converts at its edges: the
    input of `QUANTIZE` and the output of `DEQUANTIZE`.
    """
    codes = flatbuffer.operatorCodes or []
    for graph in flatbuffer.subgraphs:
        for op in graph.operators or []:
            op_name = _tflite.builtin_op_name(codes[op.opcodeIndex])
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
