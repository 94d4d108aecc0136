"""Run and time a `.tflite` in the LiteRT interpreter (XNNPACK by default)."""

import numpy as np

from keras_compress import _tflite
from keras_compress._checks import check_int
from keras_compress._checks import check_optional_int
from keras_compress.runtime import _common

_DEFAULT_BATCH = 256


class LiteRTModel:
    """A `.tflite` model loaded in the LiteRT interpreter.

    LiteRT applies its XNNPACK delegate by default: supported operators run
    in XNNPACK's fast kernels, the rest in LiteRT's builtin kernels;
    `delegation()` tells which is which. A model with keras-compress binary
    operators (`to_tflite(..., binary="packed")`) gets their delegate
    (`keras_compress.custom_ops`, compiled on first use), which runs them. Integer kernels differ in rounding:
    on an int8 CNN, XNNPACK's outputs differed from TensorFlow Lite Micro's
    by a few quantization steps on 10-15% of values, LiteRT's reference
    kernels (`kernels="reference"`, the code TFLM's kernels come from) on
    under 1%. The file is validated before the
    interpreter sees it, so a corrupt model raises `ValueError` instead of
    crashing the process.

    Args:
        model: `.tflite` bytes or a path to a `.tflite` file.
        num_threads: Interpreter threads, default None (LiteRT's default).
        kernels: `"xnnpack"` (default: the XNNPACK delegate, then LiteRT's
            optimized builtin kernels), `"builtin"` (builtin kernels only) or
            `"reference"` (LiteRT's slow reference kernels).
        preserve_all_tensors: Keep every intermediate tensor after a run,
            so `tensors()` can read them, default False (LiteRT reuses
            their memory).
        isolate: For an untrusted file: first load it and run it once on
            zero inputs in a child process, and raise `ValueError` if that
            process crashes or hangs, default False. The file checks catch
            what is known to crash the interpreter; this catches the rest
            (for about a second per model).

    Example:

    >>> runner = LiteRTModel("model.tflite")
    >>> probabilities = runner.predict(x_test)
    >>> runner.evaluate(x_test, y_test)
    0.97
    """

    def __init__(self, model, num_threads=None, kernels="xnnpack",
                 preserve_all_tensors=False, isolate=False):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self._data, self._flatbuffer = _tflite.load_model_bytes(model, "model")
        if not isinstance(isolate, bool):
            raise TypeError(f"Expected `isolate` to be a bool. Received: isolate={isolate!r}")
        if isolate:
            from keras_compress.runtime import _isolate

            _isolate.probe(self._data, "litert")
        num_threads = check_optional_int("num_threads", num_threads)
        resolvers = {
            "xnnpack": OpResolverType.AUTO,
            "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            "reference": OpResolverType.BUILTIN_REF,
        }
        if kernels not in resolvers:
            raise ValueError(
                f"Expected `kernels` to be one of {list(resolvers)}. "
                f"Received: kernels={kernels!r}"
            )
        self.num_threads = num_threads
        self.kernels = kernels
        self.preserve_all_tensors = bool(preserve_all_tensors)
        resolver = resolvers[kernels]
        delegates = _custom_op_delegates(self._flatbuffer)
        try:
            self._interpreter = Interpreter(
                model_content=self._data,
                num_threads=num_threads,
                experimental_op_resolver_type=resolver,
                experimental_delegates=delegates,
                experimental_preserve_all_tensors=bool(preserve_all_tensors),
            )
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise self._refused("load", e) from e
        self._in, self._out = _details_in_order(self._interpreter)
        self.inputs = [_info(d, f"input_{i}") for i, d in enumerate(self._in)]
        self.outputs = [_info(d, f"output_{i}") for i, d in enumerate(self._out)]
        _common.check_batched(self.inputs, self.outputs, "LiteRT")
        self._batch = int(self._in[0]["shape"][0]) if self._in[0]["shape"].size else 1

    def _invoke(self):
        """`invoke()`; a refusal (XNNPACK prepares its nodes at the first
        invoke) is a `ModelLoadError`."""
        try:
            self._interpreter.invoke()
        except RuntimeError as e:
            raise self._refused("run", e) from e

    def _refused(self, verb, error):
        hint = ""
        if self.kernels == "xnnpack" and "xnnpack" in str(error).lower():
            hint = (" (XNNPACK refused an op; kernels='builtin' runs "
                    "every op with LiteRT's own kernels)")
        return _common.ModelLoadError(f"LiteRT could not {verb} the model: {error}{hint}")

    @property
    def size_bytes(self):
        """Size of the flatbuffer in bytes."""
        return len(self._data)

    @property
    def dynamic_batch(self):
        """True when the model accepts any batch size."""
        return all(info.shape and info.shape[0] is None for info in self.inputs)

    def predict(self, x, batch_size=None, raw=False):
        """Runs the model on all samples of `x`.

        Args:
            x: An array (or a list of arrays, one per input) of samples.
                Float input to an int8 model is quantized with the input's
                scale and zero point.
            batch_size: Samples per invocation. Default: 256 for a model with
                a dynamic batch, the model's own batch size otherwise.
            raw: Return int8 outputs as stored, default False (dequantized to
                float32).

        Returns:
            An array, or a list of arrays for several outputs.
        """
        arrays = _common.as_input_list(x, self.inputs)
        if self.dynamic_batch:
            batch = batch_size or _DEFAULT_BATCH
        else:
            batch = self._batch
            if batch_size not in (None, batch):
                raise ValueError(
                    f"This model has a fixed batch size of {batch}. "
                    f"Received: batch_size={batch_size}"
                )
        return _common.run_in_batches(
            lambda chunk: self._run(chunk, raw), arrays, batch
        )

    def _run(self, chunk, raw):
        interp = self._interpreter
        count = len(chunk[0])
        if self.dynamic_batch:
            self._resize(count)
        else:
            chunk = _common.pad_to(chunk, self._batch)
        for detail, info, a in zip(self._in, self.inputs, chunk):
            interp.set_tensor(detail["index"], _common.to_stored(a, info))
        self._invoke()
        return [
            _common.from_stored(interp.get_tensor(d["index"]), info, raw)
            for d, info in zip(self._out, self.outputs)
        ]

    def _resize(self, count):
        if self._in[0]["shape"][0] == count:
            return
        for d in self._in:
            shape = list(d["shape"])
            shape[0] = count
            self._interpreter.resize_tensor_input(d["index"], shape)
        self._interpreter.allocate_tensors()
        self._in, self._out = _details_in_order(self._interpreter)

    def tensors(self, x, indices):
        """Runs one batch `x` and returns the stored values of tensors.

        Args:
            x: An array (or a list of arrays, one per input): one batch
                (the model's batch size for a fixed-batch model).
            indices: Tensor indices of the flatbuffer's first subgraph.

        Returns:
            `{index: array}`, each as stored (int8 tensors not dequantized).
        """
        if not self.preserve_all_tensors:
            raise ValueError(
                "Expected a LiteRTModel made with preserve_all_tensors=True "
                "(LiteRT reuses intermediate tensors' memory otherwise). "
                "Received: preserve_all_tensors=False"
            )
        arrays = _common.as_input_list(x, self.inputs)
        if not self.dynamic_batch and len(arrays[0]) != self._batch:
            raise ValueError(
                f"This model has a fixed batch size of {self._batch}. "
                f"Received: {len(arrays[0])} samples"
            )
        self._run(arrays, raw=True)
        return {int(i): self._interpreter.get_tensor(int(i)).copy() for i in indices}

    def evaluate(self, x, y, batch_size=None):
        """Top-1 accuracy of the model on `(x, y)` (labels as ints or one-hot)."""
        return _common.accuracy(self.predict(x, batch_size=batch_size), y)

    def benchmark(self, num_runs=50, warmup=10, batch_size=1, seed=0):
        """Times `invoke()` on random inputs.

        Args:
            num_runs: Timed invocations, default 50.
            warmup: Untimed invocations first, default 10.
            batch_size: Batch size for a dynamic-batch model, default 1.
            seed: Seed of the random inputs, default 0.

        Returns:
            A dict with `median_ms`, `p90_ms`, `mean_ms`, `min_ms`, `runs`,
            `batch_size` and `num_threads`.
        """
        num_runs = check_int("num_runs", num_runs, 1)
        warmup = check_int("warmup", warmup, 0)
        if self.dynamic_batch:
            self._resize(batch_size)
        rng = np.random.default_rng(seed)
        for d, info in zip(self._in, self.inputs):
            shape = tuple(int(s) for s in d["shape"])
            self._interpreter.set_tensor(d["index"], _common.random_input(rng, shape, info))
        self._invoke()  # refusals as errors, before the timing
        times = _common.time_invocations(self._interpreter.invoke, num_runs, warmup)
        stats = _common.latency_stats(times, int(self._in[0]["shape"][0]))
        stats["num_threads"] = self.num_threads
        return stats

    def delegation(self):
        """Which operators XNNPACK runs and which stay on builtin kernels.

        Returns:
            A dict: `ops` (a list of `{"index", "op", "xnnpack"}` in model
            order), `xnnpack_ops` and `total_ops` counts, and
            `builtin_only` (the op names XNNPACK did not take; the packed
            binary operators, which the keras-compress delegate runs, are
            listed there too), and `subgraphs`, the model's subgraph
            count. Only the main subgraph's operators are listed: LiteRT's
            Python interpreter shows no other subgraph's nodes. LiteRT
            applies XNNPACK to every subgraph, so the stages inside the
            `IF` branches of an early-exit file are delegated too
            (BENCHMARKS.md measures it: every stage run, the file is as
            fast as the plain model under XNNPACK and as slow with the
            builtin kernels).
        """
        details = self._interpreter._get_ops_details()
        originals = [d for d in details if d["op_name"] != "DELEGATE"]
        delegated = _delegated_nodes(details)
        # keras-compress's binary operators run in their own delegate.
        ops = [
            {"index": int(d["index"]), "op": d["op_name"],
             "xnnpack": d["index"] in delegated and not d["op_name"].startswith("KC_BINARY_")}
            for d in originals
        ]
        return {
            "ops": ops,
            "xnnpack_ops": sum(op["xnnpack"] for op in ops),
            "total_ops": len(ops),
            "builtin_only": sorted({op["op"] for op in ops if not op["xnnpack"]}),
            "subgraphs": int(self._interpreter.num_subgraphs()),
        }


def _custom_op_delegates(flatbuffer):
    """The keras-compress delegate, for a model with its binary operators."""
    from keras_compress import custom_ops
    from keras_compress.runtime.micro import op_names

    if not any(op in op_names(flatbuffer) for op in custom_ops.CUSTOM_OP_NAMES):
        return None
    try:
        return [custom_ops.litert_delegate()]
    except custom_ops.BuildError as e:
        raise custom_ops.BuildError(
            "This model has keras-compress binary operators, which LiteRT can "
            f"only run here with their compiled delegate: {e}"
        ) from None


def _delegated_nodes(details):
    """Indices of original nodes that some DELEGATE node replaced.

    A delegate node stands for a partition of the graph; its outputs are
    produced by original nodes of the partition. Walking back from those
    producers, through tensors that are not inputs of the partition, finds
    every node inside it.
    """
    producer = {}
    for d in details:
        if d["op_name"] != "DELEGATE":
            for t in d["outputs"]:
                producer[int(t)] = d
    delegated = set()
    for d in details:
        if d["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        seen = set()
        while stack:
            t = stack.pop()
            node = producer.get(t)
            if t in seen or t in boundary or node is None:
                continue
            seen.add(t)
            delegated.add(node["index"])
            stack.extend(int(i) for i in node["inputs"] if i >= 0)
    return delegated


def _details_in_order(interpreter):
    """Input and output details in the order of the exported model.

    `get_output_details` lists tensors in the flatbuffer's order, which for
    a model with several outputs is not Keras's. The converter names a
    single signature's tensors `input_<k>`/`output_<k>` in Keras's order, so
    they are sorted by that number when every name has one. Without a
    signature (a lean file, whose subgraph lists them in that order), the
    subgraph's order is kept.
    """
    ins = interpreter.get_input_details()
    outs = interpreter.get_output_details()
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return ins, outs
    (key,) = signatures
    runner = interpreter.get_signature_runner(key)

    def ordered(details, by_name):
        number = {}
        for name, d in by_name.items():
            digits = name.rsplit("_", 1)[-1]
            if not digits.isdigit():
                return details
            number[d["index"]] = int(digits)
        if sorted(number) != sorted(d["index"] for d in details):
            return details
        return sorted(details, key=lambda d: number[d["index"]])

    return (ordered(ins, runner.get_input_details()),
            ordered(outs, runner.get_output_details()))


def _info(detail, fallback_name):
    scale, zero_point = _common.quantization(detail)
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if s < 0 else int(s) for s in signature)
    return _common.TensorInfo(
        name=detail.get("name") or fallback_name,
        shape=shape,
        dtype=np.dtype(detail["dtype"]),
        scale=scale,
        zero_point=zero_point,
    )
