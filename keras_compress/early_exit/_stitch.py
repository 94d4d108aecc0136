"""One TFLite model from the stage models of an early-exit chain.

The stages (what `export_early_exit` writes, one file each) are copied
unchanged into one flatbuffer, so their operators, weights and quantization
parameters are the chain's. Stage 0 is the main subgraph; after each early
exit a few float32 operators compute its confidence and an `IF` operator
either returns that exit's probabilities (the "then" subgraph, a few
tensors) or runs the next stage (the "else" subgraph), which decides in
turn:

    main:      x -> stage 0 -> p_0, c_0; IF(confident(p_0), exit 0, stage 1)
    stage j:   c_{j-1} -> stage j -> p_j, c_j; IF(confident(p_j), exit j,
               stage j+1)
    stage K:   c_{K-1} -> stage K -> p_K

The model's outputs are the chosen exit's class probabilities (float32,
`(1, classes)`), the index of that exit (int32, `(1,)`) and the predicted
class (int32, `(1,)`). The decision is made in float32 on the exit's
dequantized scores, the rule of `keras_compress._exit_rule`.

When stage j ends by dequantizing its feature map and stage j+1 starts by
quantizing it again with parameters that give back every int8 value (the
same zero point and a scale equal to the last bits), both operators are
dropped and the int8 feature map is handed over as it is.
"""

import copy
import json

import numpy as np

from keras_compress import _tflite
from keras_compress._exit_file import INPUT_NAMES
from keras_compress._exit_file import METADATA_NAME
from keras_compress._exit_file import OUTPUT_NAMES
from keras_compress import _tflite_edit
from keras_compress.early_exit import _decision

_S = _tflite.schema
_OPS = _S.BuiltinOperator
_T = _S.TensorType

def stitch(stages, is_probability, criterion, thresholds, threshold_input, info):
    """Builds the single-file model.

    Args:
        stages: The stage flatbuffers (bytes), batch size 1, float
            interface; stage j < K has outputs `[exit_j, c_j]`, the last
            only its scores.
        is_probability: Per stage, whether the exit gives probabilities.
        criterion: `"max_prob"` or `"entropy"`.
        thresholds: One float per early exit (baked in unless
            `threshold_input`).
        threshold_input: Add a second input, `threshold` (float32, one per
            early exit, shape `(1, K)`), read at run time instead of the
            baked values.
        info: JSON-able dict stored as the model's metadata.

    Returns:
        The flatbuffer as bytes.
    """
    parsed = [_stage(data, j, len(stages)) for j, data in enumerate(stages)]
    model = _S.ModelT()
    model.version = 3
    model.description = "keras-compress early-exit model"
    model.buffers = [_S.BufferT()]
    model.operatorCodes = []
    model.subgraphs = [None] * (2 * len(stages) - 1)
    builder = _Builder(model)
    # Subgraph 0 is stage 0; stage j > 0 is subgraph 2j - 1 and the "then"
    # subgraph of exit j - 1 is subgraph 2j.
    for j, stage in enumerate(parsed):
        graph = builder.copy_stage(stage)
        model.subgraphs[0 if j == 0 else 2 * j - 1] = graph
    _hand_over_int8(model, parsed)
    for j in range(len(parsed)):
        _finish_stage(builder, parsed, j, criterion, thresholds, is_probability[j],
                      threshold_input)
    _add_main_outputs(builder, parsed[0], threshold_input)
    _add_metadata(builder, info)
    return _tflite.serialize(model)


class _Stage:
    """A parsed stage model and the indices of its input and outputs."""

    def __init__(self, model, graph, input_index, exit_index, feature_index):
        self.model = model
        self.graph = graph
        self.input = input_index
        self.exit = exit_index
        self.feature = feature_index
        self.copy = None  # the SubGraphT in the stitched model
        # After stitching: the tensors the IF hands to the next stage.
        self.probabilities = None
        self.handed_feature = None
        self.threshold = None


def _stage(data, j, count):
    model = _tflite.parse(data)
    if len(model.subgraphs) != 1:
        raise ValueError(
            "Expected every stage of the early-exit model to convert to one "
            f"TFLite subgraph. Received: stage {j} with {len(model.subgraphs)} "
            "subgraphs (a layer with control flow)"
        )
    graph = model.subgraphs[0]
    want_outputs = 1 if j == count - 1 else 2
    if len(graph.inputs) != 1 or len(graph.outputs) != want_outputs:
        raise RuntimeError(
            f"Stage {j} converted with {len(graph.inputs)} input(s) and "
            f"{len(graph.outputs)} output(s); expected 1 and {want_outputs}."
        )
    for buffer in model.buffers or []:
        if buffer.offset:
            raise ValueError(
                "Expected stage models small enough for in-flatbuffer "
                f"weights (< 2 GB). Received: stage {j} with external buffers"
            )
    outputs = _outputs_in_keras_order(model, graph)
    return _Stage(model, graph, int(graph.inputs[0]), outputs[0],
                  outputs[1] if want_outputs == 2 else None)


def _outputs_in_keras_order(model, graph):
    """The subgraph's outputs ordered `output_0, output_1` by the signature."""
    outputs = [int(i) for i in graph.outputs]
    signatures = model.signatureDefs or []
    if len(signatures) != 1:
        return outputs
    by_name = {}
    for item in signatures[0].outputs or []:
        name = item.name.decode() if isinstance(item.name, bytes) else item.name
        by_name[name] = int(item.tensorIndex)
    named = [by_name.get(f"output_{k}") for k in range(len(outputs))]
    return named if None not in named else outputs


class _Builder:
    """Appends stage copies, tensors and operators to the stitched model."""

    def __init__(self, model):
        self.model = model
        self._codes = {}

    def opcode(self, builtin, version=1, custom=None, deprecated=None):
        key = (builtin, version, custom)
        if key not in self._codes:
            code = _S.OperatorCodeT()
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127) if deprecated is None else deprecated
            code.customCode = custom
            code.version = version
            self.model.operatorCodes.append(code)
            self._codes[key] = len(self.model.operatorCodes) - 1
        return self._codes[key]

    def copy_stage(self, stage):
        """Copies a stage's subgraph, its buffers and operator codes."""
        source = stage.model
        buffers = {0: 0}
        graph = copy.deepcopy(stage.graph)
        for tensor in graph.tensors:
            old = int(tensor.buffer)
            if old not in buffers:
                buffers[old] = len(self.model.buffers)
                self.model.buffers.append(copy.deepcopy(source.buffers[old]))
            tensor.buffer = buffers[old]
        codes = {}
        for op in graph.operators:
            old = int(op.opcodeIndex)
            if old not in codes:
                code = source.operatorCodes[old]
                custom = code.customCode
                if isinstance(custom, bytes):
                    custom = custom.decode()
                codes[old] = self.opcode(
                    max(code.builtinCode, code.deprecatedBuiltinCode), code.version,
                    custom, code.deprecatedBuiltinCode)
            op.opcodeIndex = codes[old]
        stage.copy = graph
        return graph

    def tensor(self, graph, shape, tensor_type, name, like=None):
        """Appends an activation tensor (a copy of `like`'s quantization)."""
        tensor = _S.TensorT()
        tensor.shape = np.asarray(shape, dtype=np.int32)
        tensor.type = tensor_type
        tensor.buffer = 0
        tensor.name = name
        if like is not None and like.quantization is not None:
            tensor.quantization = copy.deepcopy(like.quantization)
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    def constant(self, graph, values, tensor_type, name):
        return _tflite_edit.add_constant(self.model, graph, values, tensor_type, name)

    def op(self, graph, builtin, inputs, outputs, options_type=0, options=None,
           version=1):
        op = _S.OperatorT()
        op.opcodeIndex = self.opcode(builtin, version)
        op.inputs = np.asarray(inputs, dtype=np.int32)
        op.outputs = np.asarray(outputs, dtype=np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        graph.operators = list(graph.operators) + [op]


def _producer(graph, index):
    for k, op in enumerate(graph.operators):
        if index in [int(i) for i in op.outputs]:
            return k, op
    return None, None


def _consumers(graph, index):
    return [op for op in graph.operators if index in [int(i) for i in op.inputs]]


def _params(tensor):
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zero = [] if q.zeroPoint is None else [int(z) for z in q.zeroPoint]
    return (int(tensor.type), [float(s) for s in q.scale], zero)


def _round_trip_is_identity(stored, requantized):
    """Whether dequantizing with `stored`'s parameters and quantizing with
    `requantized`'s gives back every value of the type (two calibrations of
    one tensor can differ in the last bits of the scale)."""
    a, b = _params(stored), _params(requantized)
    if a is None or b is None or a[0] != b[0] or len(a[1]) != 1 or len(b[1]) != 1:
        return False
    if a[2] != b[2] or a[0] not in (_T.INT8, _T.UINT8):
        return False
    zero = a[2][0] if a[2] else 0
    info = np.iinfo(np.int8 if a[0] == _T.INT8 else np.uint8)
    q = np.arange(info.min, info.max + 1, dtype=np.float32)
    x = (q - np.float32(zero)) * np.float32(a[1][0])
    scale = np.float32(b[1][0])
    # Both ways runtimes quantize: divide by the scale, or multiply by its
    # inverse.
    for back in (np.round(x / scale), np.round(x * (np.float32(1) / scale))):
        if not np.array_equal(np.clip(back + zero, info.min, info.max), q):
            return False
    return True


def _hand_over_int8(model, parsed):
    """Drops DEQUANTIZE(c_j) -> QUANTIZE pairs with equal parameters."""
    for j in range(len(parsed) - 1):
        here, nxt = parsed[j], parsed[j + 1]
        here.handed_feature = here.feature
        nxt_input = nxt.input
        graph, following = here.copy, nxt.copy
        k, dequantize = _producer(graph, here.feature)
        consumers = _consumers(following, nxt_input)
        if dequantize is None or len(consumers) != 1:
            continue
        quantize = consumers[0]
        names = [_tflite.builtin_op_name(model.operatorCodes[o.opcodeIndex])
                 for o in (dequantize, quantize)]
        if names != ["DEQUANTIZE", "QUANTIZE"]:
            continue
        if here.feature == here.exit or len(_consumers(graph, here.feature)) or \
                here.feature in [int(i) for i in graph.inputs]:
            continue
        source = int(dequantize.inputs[0])
        target = int(quantize.outputs[0])
        if not _round_trip_is_identity(graph.tensors[source], following.tensors[target]):
            continue
        graph.operators = [o for o in graph.operators if o is not dequantize]
        following.operators = [o for o in following.operators if o is not quantize]
        here.handed_feature = source
        nxt.input = target


def _finish_stage(builder, parsed, j, criterion, thresholds, is_probability,
                  threshold_input):
    """Appends stage j's decision and IF (or, for the last stage, its
    result) and sets the subgraph's inputs and outputs."""
    stage = parsed[j]
    graph = stage.copy
    last = j == len(parsed) - 1
    probabilities = _decision.probabilities(builder, graph, stage.exit, is_probability, j)
    inputs = []
    if j > 0:
        previous = parsed[j - 1]
        # The IF hands [p_{j-1}, c_{j-1}, threshold] to both branches.
        inputs.append(_mirror(builder, graph, previous.copy, previous.probabilities,
                              f"exit_{j - 1}_probabilities"))
    inputs.append(stage.input)
    if threshold_input:
        stage.threshold = builder.tensor(graph, [1, len(parsed) - 1], _T.FLOAT32,
                                         "threshold")
        inputs.append(stage.threshold)
    graph.inputs = np.asarray(inputs, dtype=np.int32)
    stage.probabilities = probabilities
    if last:
        exit_index = builder.constant(graph, np.asarray([j], np.int32), _T.INT32,
                                      f"exit_{j}")
        graph.outputs = np.asarray([probabilities, exit_index], dtype=np.int32)
        graph.name = f"stage_{j}"
        return
    cond = _decision.confident(builder, graph, probabilities, criterion, thresholds[j],
                              j, stage.threshold)
    then_index = 2 * j + 2
    else_index = 2 * j + 1
    _then_graph(builder, graph, stage, j, then_index, threshold_input)
    classes = int(graph.tensors[probabilities].shape[-1])
    out_p = builder.tensor(graph, [1, classes], _T.FLOAT32, "probabilities"
                           if j == 0 else f"stage_{j}_probabilities")
    out_exit = builder.tensor(graph, [1], _T.INT32, "exit" if j == 0 else f"stage_{j}_exit")
    options = _S.IfOptionsT()
    options.thenSubgraphIndex = then_index
    options.elseSubgraphIndex = else_index
    handed = [cond, probabilities, stage.handed_feature]
    if threshold_input:
        handed.append(stage.threshold)
    builder.op(graph, _OPS.IF, handed, [out_p, out_exit],
               _S.BuiltinOptions.IfOptions, options)
    graph.outputs = np.asarray([out_p, out_exit], dtype=np.int32)
    graph.name = "main" if j == 0 else f"stage_{j}"


def _mirror(builder, graph, source_graph, index, name):
    """A new tensor of `graph` shaped and typed like `source_graph`'s."""
    source = source_graph.tensors[index]
    return builder.tensor(graph, list(source.shape), source.type, name, like=source)


def _then_graph(builder, graph, stage, j, index, threshold_input):
    """The subgraph that returns exit j's probabilities and index."""
    then = _S.SubGraphT()
    then.tensors = []
    then.operators = []
    then.name = f"exit_{j}"
    p = _mirror(builder, then, graph, stage.probabilities, f"exit_{j}_probabilities")
    feature = _mirror(builder, then, graph, stage.handed_feature, f"exit_{j}_feature")
    inputs = [p, feature]
    if threshold_input:
        inputs.append(_mirror(builder, then, graph, stage.threshold, "threshold"))
    exit_index = builder.constant(then, np.asarray([j], np.int32), _T.INT32, f"exit_{j}")
    then.inputs = np.asarray(inputs, dtype=np.int32)
    then.outputs = np.asarray([p, exit_index], dtype=np.int32)
    builder.model.subgraphs[index] = then


def _add_main_outputs(builder, stage, threshold_input):
    """Main's outputs: probabilities, exit, prediction; and its signature."""
    graph = stage.copy
    p, exit_index = [int(i) for i in graph.outputs]
    axis = builder.constant(graph, np.asarray([1], np.int32), _T.INT32, "class_axis")
    prediction = builder.tensor(graph, [1], _T.INT32, "prediction")
    options = _S.ArgMaxOptionsT()
    options.outputType = _T.INT32
    builder.op(graph, _OPS.ARG_MAX, [p, axis], [prediction],
               _S.BuiltinOptions.ArgMaxOptions, options)
    graph.outputs = np.asarray([p, exit_index, prediction], dtype=np.int32)
    _tflite_edit.set_signature(builder.model,
                               INPUT_NAMES[: 2 if threshold_input else 1], OUTPUT_NAMES)


def _add_metadata(builder, info):
    entry = _S.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = _tflite_edit.new_buffer(
        builder.model, json.dumps(info, sort_keys=True).encode())
    builder.model.metadata = [entry]
