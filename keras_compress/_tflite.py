"""Read and validate `.tflite` flatbuffers before any runtime sees them.

The LiteRT and TFLite Micro interpreters are C++ code: a corrupt or truncated
file can make them crash the whole Python process instead of raising. Every
entry point of keras-compress that takes a `.tflite` therefore passes it
through `load_model_bytes`, which unpacks the whole flatbuffer with the schema
bindings that ship with LiteRT and checks every index it holds, so bad input
becomes a `ValueError` naming the argument.
"""

import os

from ai_edge_litert import schema_py_generated as schema

from keras_compress import _tflite_checks

_IDENTIFIER = b"TFL3"


def read_bytes(obj, arg_name="model"):
    """Returns the bytes of a `.tflite` given as bytes or a path.

    Args:
        obj: `bytes`, `bytearray`, `memoryview`, or a path (`str` or
            `os.PathLike`) to a `.tflite` file.
        arg_name: The argument name used in error messages.

    Returns:
        The file content as `bytes`.
    """
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if not os.path.isfile(path):
            raise ValueError(
                f"Expected `{arg_name}` to be the path of an existing .tflite "
                f"file. Received: {arg_name}={path!r} (no such file)"
            )
        with open(path, "rb") as f:
            return f.read()
    raise TypeError(
        f"Expected `{arg_name}` to be .tflite bytes or a path to a .tflite "
        f"file. Received: {arg_name} of type {type(obj).__name__}"
    )


def parse(data, arg_name="model"):
    """Unpacks and validates a TFLite flatbuffer.

    Args:
        data: The flatbuffer as `bytes`.
        arg_name: The argument name used in error messages.

    Returns:
        The `schema.ModelT` object tree.

    Raises:
        ValueError: if `data` is not a complete, consistent TFLite model.
    """
    if len(data) < 8 or data[4:8] != _IDENTIFIER:
        raise ValueError(
            f"Expected `{arg_name}` to be a TFLite flatbuffer (file identifier "
            f"'TFL3' at bytes 4-8). Received: {len(data)} bytes starting with "
            f"{bytes(data[:8])!r}"
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        _check_indices(model, len(data))
        _tflite_checks.check_model(model, builtin_op_name)
    except ValueError as e:
        raise ValueError(
            f"`{arg_name}` is not a valid TFLite model: {e}. Received: "
            f"{len(data)} bytes"
        ) from None
    except Exception as e:  # struct.error, IndexError, ... from a bad offset.
        raise ValueError(
            f"`{arg_name}` is a corrupt or truncated TFLite model "
            f"({type(e).__name__}: {e}). Received: {len(data)} bytes"
        ) from None
    return model


def load_model_bytes(obj, arg_name="model"):
    """Reads `obj` (bytes or path) and validates it; returns `(bytes, ModelT)`."""
    data = read_bytes(obj, arg_name)
    return data, parse(data, arg_name)


def _check_indices(model, size):
    if not model.subgraphs:
        raise ValueError("it has no subgraph")
    buffers = model.buffers or []
    n_codes = len(model.operatorCodes or [])
    for b in buffers:
        if b.offset and b.offset + b.size > size:
            raise ValueError("a buffer points past the end of the file")
    for g, sg in enumerate(model.subgraphs):
        tensors = sg.tensors or []
        for t in tensors:
            if t.buffer < 0 or t.buffer >= max(len(buffers), 1):
                raise ValueError(f"subgraph {g} has a tensor with a bad buffer")
        n = len(tensors)
        for name, ids in (("input", sg.inputs), ("output", sg.outputs)):
            for i in _as_list(ids):
                if not 0 <= i < n:
                    raise ValueError(f"subgraph {g} has a bad {name} index {i}")
        for op in sg.operators or []:
            if not 0 <= op.opcodeIndex < n_codes:
                raise ValueError(f"subgraph {g} has a bad operator code index")
            for i in _as_list(op.inputs) + _as_list(op.outputs):
                if not -1 <= i < n:
                    raise ValueError(f"subgraph {g} has a bad tensor index {i}")


def _as_list(ids):
    return [] if ids is None else [int(i) for i in ids]


def builtin_op_name(code):
    """Returns the name of an `OperatorCodeT` (e.g. `CONV_2D` or `CUSTOM:x`)."""
    value = max(code.builtinCode, code.deprecatedBuiltinCode)
    if value == schema.BuiltinOperator.CUSTOM:
        name = code.customCode
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"CUSTOM:{name}"
    return _OP_NAMES.get(value, f"UNKNOWN_{value}")


_OP_NAMES = {
    v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")
}


BUFFER_ALIGNMENT = 16


class _AlignedBuffer:
    """Packs a `BufferT` with its data 16-byte aligned in the file.

    The schema asks for `force_align: 16` on buffer data, which the Python
    flatbuffers library ignores; TFLite Micro reads some constants (Huffman
    code words, int32 biases) as words, so misaligned data would be
    undefined behaviour on a microcontroller.
    """

    def __init__(self, buffer):
        self.buffer = buffer

    def Pack(self, builder):
        data = self.buffer.data
        offset = None
        if data is not None:
            payload = bytes(bytearray(data)) if not isinstance(data, bytes) else data
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            offset = builder.EndVector()
        schema.BufferStart(builder)
        if offset is not None:
            schema.BufferAddData(builder, offset)
        schema.BufferAddOffset(builder, self.buffer.offset)
        schema.BufferAddSize(builder, self.buffer.size)
        return schema.BufferEnd(builder)


def serialize(model):
    """Packs a `schema.ModelT` into `.tflite` bytes, buffers 16-byte aligned.

    The object tree is not changed. The result starts with the `TFL3` file
    identifier, like the converter's output.
    """
    import flatbuffers

    buffers = model.buffers
    model.buffers = None if buffers is None else [_AlignedBuffer(b) for b in buffers]
    try:
        builder = flatbuffers.Builder(1024)
        root = model.Pack(builder)
        builder.Finish(root, file_identifier=_IDENTIFIER)
    finally:
        model.buffers = buffers
    return bytes(builder.Output())
