"""Run a `.tflite` in the TensorFlow Lite Micro interpreter (pip tflite-micro)."""

import contextlib
import os
import tempfile

import numpy as np

from keras_compress import _tflite
from keras_compress.runtime import _common

_ALIGN = 16
_MAX_ARENA = 512 * 1024 * 1024


class MicroModel:
    """A `.tflite` model loaded in the TensorFlow Lite Micro interpreter.

    This is TFLM's own C++ interpreter (the one that runs on
    microcontrollers), built for the host by the `tflite-micro` package.
    When no arena size is given, the smallest arena the interpreter can
    allocate the model in is found by bisection (to 16 bytes) and used: that
    figure, `arena_bytes`, is the RAM a firmware must reserve for tensors.

    Args:
        model: `.tflite` bytes or a path to a `.tflite` file.
        arena_size: Tensor arena in bytes, default None (measure the smallest
            that works).

    Example:

    >>> micro = MicroModel("model_int8.tflite")
    >>> micro.arena_bytes
    3632
    >>> micro.evaluate(x_test, y_test)
    0.96
    """

    def __init__(self, model, arena_size=None):
        self._data, flatbuffer = _tflite.load_model_bytes(model, "model")
        if arena_size is not None and (
            isinstance(arena_size, bool) or not isinstance(arena_size, int)
            or arena_size < 1
        ):
            raise ValueError(
                "Expected `arena_size` to be None or a positive int. "
                f"Received: arena_size={arena_size!r}"
            )
        self.ops = op_names(flatbuffer)
        if arena_size is None:
            arena_size = find_arena_size(self._data)
            self.arena_bytes = arena_size
        else:
            self.arena_bytes = None
        self.arena_size = arena_size
        self._interpreter = _make(self._data, arena_size)
        graph = flatbuffer.subgraphs[0]
        self.inputs = [
            _info(self._interpreter.get_input_details(i), graph, i, "in")
            for i in range(len(graph.inputs))
        ]
        self.outputs = [
            _info(self._interpreter.get_output_details(i), graph, i, "out")
            for i in range(len(graph.outputs))
        ]

    @property
    def size_bytes(self):
        """Size of the flatbuffer in bytes (the flash it takes)."""
        return len(self._data)

    def predict(self, x, raw=False):
        """Runs the model on every sample of `x`, one invocation per batch.

        Args:
            x: An array (or a list of arrays, one per input). Float input to
                an int8 model is quantized with the input's scale and zero
                point.
            raw: Return int8 outputs as stored, default False (dequantized).

        Returns:
            An array, or a list of arrays for several outputs.
        """
        arrays = _common.as_input_list(x, self.inputs)
        batch = self.inputs[0].shape[0] or 1
        return _common.run_in_batches(lambda c: self._run(c, raw), arrays, batch)

    def _run(self, chunk, raw):
        chunk = _common.pad_to(chunk, self.inputs[0].shape[0] or 1)
        for i, (a, info) in enumerate(zip(chunk, self.inputs)):
            self._interpreter.set_input(_common.to_stored(a, info), i)
        self._interpreter.invoke()
        return [
            _common.from_stored(self._interpreter.get_output(i), info, raw)
            for i, info in enumerate(self.outputs)
        ]

    def evaluate(self, x, y):
        """Top-1 accuracy of the model on `(x, y)`."""
        return _common.accuracy(self.predict(x), y)


def find_arena_size(data):
    """Smallest tensor arena (bytes, multiple of 16) TFLM can run `data` in.

    Raises:
        RuntimeError: if TFLM cannot allocate the model even in 512 MiB, for
            example because it uses an operator TFLM has no kernel for.
    """
    high = _ALIGN * (len(data) // _ALIGN + 64)
    while not _fits(data, high):
        if high >= _MAX_ARENA:
            log = _allocation_log(data, _MAX_ARENA)
            raise RuntimeError(
                "TensorFlow Lite Micro could not allocate the model in "
                f"{_MAX_ARENA} bytes. Its log: {log.strip()[-800:]}"
            )
        high = min(high * 4, _MAX_ARENA)
    low = 0  # Known not to fit.
    while high - low > _ALIGN:
        mid = (low + high) // 2 // _ALIGN * _ALIGN
        if mid <= low:
            break
        if _fits(data, mid):
            high = mid
        else:
            low = mid
    # An allocation can succeed and invocation still need more; check it runs.
    interpreter = _make(data, high)
    interpreter.invoke()
    return high


def op_names(flatbuffer):
    """Operator names of a `schema.ModelT` in order of first use."""
    names = []
    codes = flatbuffer.operatorCodes or []
    for graph in flatbuffer.subgraphs:
        for op in graph.operators or []:
            name = _tflite.builtin_op_name(codes[op.opcodeIndex])
            if name not in names:
                names.append(name)
    return names


def _fits(data, size):
    try:
        with _quiet_stderr():
            _make(data, size, raw=True)
        return True
    except RuntimeError:
        return False


def _allocation_log(data, size):
    with tempfile.TemporaryFile(mode="w+") as log:
        try:
            with _quiet_stderr(log):
                _make(data, size, raw=True)
        except RuntimeError as e:
            log.seek(0)
            return log.read() + str(e)
    return ""


def _make(data, size, raw=False):
    from tflite_micro.python.tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(data, arena_size=size)
    except RuntimeError:
        if raw:
            raise
        raise RuntimeError(
            f"TensorFlow Lite Micro could not load the model with an arena of "
            f"{size} bytes: {_allocation_log(data, size).strip()[-800:]}"
        ) from None


@contextlib.contextmanager
def _quiet_stderr(target=None):
    """Sends the C++ library's stderr to `target` (default: nowhere)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    sink = target if target is not None else open(os.devnull, "w")
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if target is None:
            sink.close()


def _info(detail, graph, i, kind):
    scale, zero_point = _common.quantization(detail)
    index = (graph.inputs if kind == "in" else graph.outputs)[i]
    name = graph.tensors[index].name
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return _common.TensorInfo(
        name=name or f"{kind}put_{i}",
        shape=tuple(int(s) for s in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
        scale=scale,
        zero_point=zero_point,
    )
