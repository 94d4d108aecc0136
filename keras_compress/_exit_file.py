"""What a single-file early-exit model declares about itself.

`keras_compress.early_exit.export_early_exit_file` stores a JSON
description in the model's metadata (under `METADATA_NAME`); the runtime
wrappers and `to_micro` read it back here without importing Keras.
"""

import json

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
    None for any other model."""
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
        return info if isinstance(info, dict) else None
    return None
