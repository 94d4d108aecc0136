"""Run a `.tflite` in the TensorFlow Lite Micro interpreter (pip tflite-micro)."""

import contextlib
import os
import re
import tempfile

import numpy as np

from keras_compress import _tflite
from keras_compress import _arena
from keras_compress._checks import check_int
from keras_compress._checks import check_optional_int
from keras_compress.runtime import _common

_ALIGN = 16
_MAX_ARENA = 512 * 1024 * 1024
_FIRST_PROBE = 1024 * 1024


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
        alt_decompression_memory_size: Bytes of alternate decompression
            memory, default 0. A model with look-up-table compressed weights
            (`to_micro(..., compression="lut")`) decodes each weight into
            the arena before the operator that reads it; with this memory
            the decoded weights go there instead, and `arena_bytes` shrinks.
        isolate: For an untrusted file: first load it and run it once in a
            child process, and raise `ValueError` if that process crashes or
            hangs, default False (see `LiteRTModel`).

    Example:

    >>> micro = MicroModel("model_int8.tflite")
    >>> micro.arena_bytes
    3632
    >>> micro.evaluate(x_test, y_test)
    0.96
    """

    def __init__(self, model, arena_size=None, alt_decompression_memory_size=0,
                 isolate=False):
        self._data, flatbuffer = _tflite.load_model_bytes(model, "model")
        arena_size = check_optional_int("arena_size", arena_size)
        if not isinstance(isolate, bool):
            raise TypeError(f"Expected `isolate` to be a bool. Received: isolate={isolate!r}")
        if isolate:
            from keras_compress.runtime import _isolate

            _isolate.probe(self._data, "micro", arena_size)
        alt = check_int("alt_decompression_memory_size",
                        alt_decompression_memory_size, 0)
        self.alt_decompression_memory_size = alt
        self.ops = op_names(flatbuffer)
        if arena_size is None:
            arena_size = find_arena_size(self._data, alt)
            self.arena_bytes = arena_size
        else:
            self.arena_bytes = None
        self.arena_size = arena_size
        self._interpreter = _make(self._data, arena_size, alt_size=alt,
                                  custom_ops=_uses_custom_ops(self.ops))
        graph = flatbuffer.subgraphs[0]
        self.inputs = [
            _info(self._interpreter.get_input_details(i), graph, i, "in")
            for i in range(len(graph.inputs))
        ]
        self.outputs = [
            _info(self._interpreter.get_output_details(i), graph, i, "out")
            for i in range(len(graph.outputs))
        ]
        _common.check_batched(self.inputs, self.outputs, "TFLite Micro")

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

    def benchmark(self, num_runs=50, warmup=10, seed=0):
        """Times `invoke()` of TFLite Micro's interpreter on random inputs
        (on this machine: host code, not a microcontroller's cycles).

        Args:
            num_runs: Timed invocations, default 50.
            warmup: Untimed invocations first, default 10.
            seed: Seed of the random inputs, default 0.

        Returns:
            A dict with `median_ms`, `p90_ms`, `mean_ms`, `min_ms`, `runs`
            and `batch_size`.
        """
        num_runs = check_int("num_runs", num_runs, 1)
        warmup = check_int("warmup", warmup, 0)
        rng = np.random.default_rng(seed)
        for i, info in enumerate(self.inputs):
            self._interpreter.set_input(_common.random_input(rng, info.shape, info), i)
        times = _common.time_invocations(self._interpreter.invoke, num_runs, warmup)
        return _common.latency_stats(times, self.inputs[0].shape[0] or 1)


def find_arena_size(data, alt_decompression_memory_size=0):
    """Smallest tensor arena (bytes, multiple of 16) TFLM can run `data` in.

    TFLM's recording allocator reports how much of a generous arena one
    invocation used; the smallest arena that really works (a little more)
    is then found by bisection from that figure. The probes run in a child
    process (`keras_compress._arena`): TFLM's Python interpreter can
    crash the process instead of failing when an arena is too small.

    Args:
        data: `.tflite` bytes.
        alt_decompression_memory_size: Bytes of alternate decompression
            memory given to the interpreter (default 0: compressed tensors
            are decoded into the arena).

    Raises:
        RuntimeError: if TFLM cannot allocate the model even in 512 MiB, for
            example because it uses an operator TFLM has no kernel for.
    """
    alt = alt_decompression_memory_size
    ops = _uses_custom_ops(op_names(_tflite.parse(data, "data")))
    high = max(_FIRST_PROBE, _ALIGN * (4 * len(data) // _ALIGN + 64))
    while not _arena.fits(data, high, alt, ops):
        if high >= _MAX_ARENA:
            log = _allocation_log(data, _MAX_ARENA, alt, ops)
            raise RuntimeError(
                "TensorFlow Lite Micro could not allocate the model in "
                f"{_MAX_ARENA} bytes. Its log: {log.strip()[-800:]}"
            )
        high = min(high * 4, _MAX_ARENA)
    low = max(_recorded_total(data, high, alt, ops) // _ALIGN * _ALIGN - _ALIGN, 0)
    size = _arena.smallest_arena(data, low, high, alt, hint=low + 16 * _ALIGN,
                                 custom_ops=ops)
    # Measured in a child process; prove it here too.
    interpreter = _make(data, size, alt_size=alt, custom_ops=ops)
    interpreter.invoke()
    return size


def _recorded_total(data, size, alt, ops):
    """Arena bytes TFLM's recording allocator used for one invocation."""
    with tempfile.TemporaryFile(mode="w+") as log:
        with _quiet_stderr(log):
            interpreter = _make(data, size, raw=True, alt_size=alt, custom_ops=ops)
            interpreter.invoke()
            interpreter.print_allocations()
        log.seek(0)
        text = log.read()
    found = re.search(r"Arena allocation total (\d+) bytes", text)
    return int(found.group(1)) if found else 0


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


def _allocation_log(data, size, alt=0, ops=False):
    with tempfile.TemporaryFile(mode="w+") as log:
        try:
            with _quiet_stderr(log):
                _make(data, size, raw=True, alt_size=alt, custom_ops=ops)
        except RuntimeError as e:
            log.seek(0)
            return log.read() + str(e)
    return ""


def _uses_custom_ops(ops):
    from keras_compress import custom_ops

    return any(op in ops for op in custom_ops.CUSTOM_OP_NAMES)


def _registerers(custom_ops):
    """The keras-compress operators' registerer, when the model needs it."""
    if not custom_ops:
        return []
    from keras_compress.custom_ops import BuildError, micro_registerers

    try:
        return micro_registerers()
    except BuildError as e:
        raise BuildError(
            "This model has keras-compress binary operators, which TensorFlow "
            f"Lite Micro can only run here with their compiled kernels: {e}"
        ) from None


def _make(data, size, raw=False, alt_size=0, custom_ops=False):
    from tflite_micro.python.tflite_micro import runtime

    registerers = _registerers(custom_ops)
    try:
        return runtime.Interpreter.from_bytes(
            data, arena_size=size, alt_decompression_memory_size=alt_size,
            custom_op_registerers=registerers,
        )
    except RuntimeError:
        if raw:
            raise
        log = _allocation_log(data, size, alt_size, custom_ops)
        raise _common.ModelLoadError(
            f"TensorFlow Lite Micro could not load the model with an arena of "
            f"{size} bytes: {log.strip()[-800:]}"
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
