"""The `serving_default` signature def of a converted model.

The converter writes no signature def when it converts a frozen concrete
function; `add_signature` writes the one Keras's export archive would have
written (inputs named as the input specs, outputs `output_<k>` or, for a
model returning a dict, the dict's keys), so LiteRT's signature runner and
the input/output order of `LiteRTModel` are those of the archive path.
"""

from keras_compress import _tflite
from keras_compress import _tflite_edit

SIGNATURE_KEY = "serving_default"


def output_names(structured_outputs):
    """Signature names of a function's outputs, in `tf.nest.flatten` order."""
    if isinstance(structured_outputs, dict) and all(
        not isinstance(v, (dict, list, tuple)) for v in structured_outputs.values()
    ):
        return [str(k) for k in sorted(structured_outputs)]
    import tensorflow as tf

    count = len(tf.nest.flatten(structured_outputs))
    return [f"output_{k}" for k in range(count)]


def add_signature(data, input_names, output_names):
    """Returns `data` with one signature def naming subgraph 0's inputs and
    outputs (in their order) `input_names` and `output_names`."""
    model = _tflite.parse(data)
    graph = model.subgraphs[0]
    inputs, outputs = list(graph.inputs), list(graph.outputs)
    if len(inputs) != len(input_names) or len(outputs) != len(output_names):
        raise RuntimeError(
            f"The converter wrote {len(inputs)} input(s) and {len(outputs)} "
            f"output(s); the model has {len(input_names)} and "
            f"{len(output_names)}."
        )
    _tflite_edit.set_signature(model, input_names, output_names, SIGNATURE_KEY)
    return _tflite.serialize(model)
