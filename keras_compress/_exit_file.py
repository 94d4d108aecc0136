"""What a single-file early-exit model declares about itself.

`keras_compress.early_exit.export_early_exit_file` stores a JSON
description in the model's metadata (under `METADATA_NAME`); the runtime
wrappers and `to_micro` read it back here without importing Keras.
"""

import json
import numbers

from keras_compress._exit_rule import CRITERIA

METADATA_NAME = "keras_compress.early_exit"
OUTPUT_NAMES = ("probabilities", "exit", "prediction")
INPUT_NAMES = ("input", "threshold")
# The float32 operators that decide whether a sample leaves: a full-int8
# early-exit file computes its confidences with them.
DECISION_OPS = frozenset({
    "SOFTMAX", "REDUCE_MAX", "MAXIMUM", "LOG", "MUL", "SUM", "STRIDED_SLICE",
    "GREATER_EQUAL", "LESS_EQUAL", "IF", "ARG_MAX",
})


def read_metadata(model):
    """The early-exit description of a parsed model (`schema.ModelT`), or
    None for any other model.

    Raises:
        ValueError: the description is there but malformed (the readers
            trust its fields).
    """
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name != METADATA_NAME:
            continue
        if not 0 <= entry.buffer < len(model.buffers or []):
            return None
        data = model.buffers[entry.buffer].data
        if data is None:
            return None
        try:
            info = json.loads(bytes(bytearray(data)).decode())
        except (ValueError, TypeError):
            return None
        if not isinstance(info, dict):
            return None
        _check(info)
        return info
    return None


def _check(info):
    def count(key, low):
        value = info.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            _malformed(f"{key}={value!r}, expected an integer >= {low}")
        return value

    exits = count("num_exits", 2)
    count("num_classes", 1)
    if info.get("criterion") not in CRITERIA:
        _malformed(f"criterion={info.get('criterion')!r}, expected one of {CRITERIA}")
    for key, length in (("threshold", exits - 1), ("cumulative_macs", exits)):
        value = info.get(key)
        if not isinstance(value, list) or len(value) != length or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
            _malformed(f"{key}={value!r}, expected {length} numbers")
    if not isinstance(info.get("threshold_input", False), bool):
        _malformed(f"threshold_input={info['threshold_input']!r}, expected a bool")


def _malformed(what):
    raise ValueError(f"The early-exit metadata ({METADATA_NAME!r}) of this model is "
                     f"malformed: {what}")
