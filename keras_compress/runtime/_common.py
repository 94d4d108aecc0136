"""What every runtime wrapper shares: input checks, int8 I/O, batching."""

import dataclasses

import numpy as np


class ModelLoadError(ValueError, RuntimeError):
    """An interpreter refused to load a model that passed the file checks.

    A `ValueError` (the file is bad input for that runtime) and, for code
    written before it existed, a `RuntimeError`.
    """


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """An input or output of an exported model.

    Attributes:
        name: Tensor name in the artifact.
        shape: Shape with `None` for a dynamic dimension.
        dtype: NumPy dtype of the stored tensor.
        scale: Quantization scale (0.0 when not quantized).
        zero_point: Quantization zero point.
    """

    name: str
    shape: tuple
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self):
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)


def check_batched(inputs, outputs, runtime):
    """Raises `ModelLoadError` when an input or output has no batch
    dimension (a scalar): predictions are split and joined along it."""
    for kind, infos in (("input", inputs), ("output", outputs)):
        for k, info in enumerate(infos):
            if not info.shape:
                raise ModelLoadError(
                    f"{runtime} loaded the model, but its {kind} {k} ({info.name!r}) "
                    "has shape (). Expected every input and output to have a "
                    "batch dimension, as those of Keras models do")


def as_input_list(x, infos, arg_name="x"):
    """Checks `x` against the model inputs; returns a list of arrays."""
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != len(infos):
        raise ValueError(
            f"Expected `{arg_name}` to hold {len(infos)} input array(s). "
            f"Received: {len(arrays)}"
        )
    out = []
    for a, info in zip(arrays, infos):
        a = np.asarray(a)
        want = tuple(info.shape[1:])
        ok = a.ndim == len(info.shape) and all(
            w is None or w == g for w, g in zip(want, a.shape[1:])
        )
        if not ok:
            raise ValueError(
                f"Expected `{arg_name}` of shape {(None,) + want} for input "
                f"{info.name!r}. Received: {arg_name}.shape={a.shape}"
            )
        out.append(a)
    if len({len(a) for a in out}) != 1:
        raise ValueError(
            f"Expected every array of `{arg_name}` to have the same number of "
            f"samples. Received: {[len(a) for a in out]}"
        )
    return out


def quantization(detail):
    """`(scale, zero_point)` of an interpreter's tensor details (0, 0 if none)."""
    q = detail.get("quantization_parameters") or {}
    scales, zeros = q.get("scales"), q.get("zero_points")
    scale = float(scales[0]) if scales is not None and len(scales) else 0.0
    zero_point = int(zeros[0]) if zeros is not None and len(zeros) else 0
    return scale, zero_point


def to_stored(a, info):
    """Converts user input to the tensor's stored type (quantizing floats)."""
    if info.quantized and not np.issubdtype(a.dtype, np.integer):
        limits = np.iinfo(info.dtype)
        q = np.round(a / info.scale) + info.zero_point
        return np.clip(q, limits.min, limits.max).astype(info.dtype)
    return a.astype(info.dtype, copy=False)


def from_stored(a, info, raw):
    """Dequantizes an output unless `raw`."""
    if raw or not info.quantized:
        return a
    return ((a.astype("float32") - info.zero_point) * info.scale).astype("float32")


def run_in_batches(run, arrays, batch_size):
    """Runs `run(list_of_batches) -> list_of_outputs` over all samples.

    When `batch_size` is fixed by the model, a short last batch is padded
    with zeros and the padding is dropped from the outputs.
    """
    n = len(arrays[0])
    outputs = None
    for start in range(0, n, batch_size):
        chunk = [a[start : start + batch_size] for a in arrays]
        count = len(chunk[0])
        result = run(chunk)
        result = [r[:count] for r in result]
        if outputs is None:
            outputs = [[] for _ in result]
        for store, r in zip(outputs, result):
            store.append(r)
    if outputs is None:
        raise ValueError("Expected at least one sample. Received: 0 samples")
    merged = [np.concatenate(parts) for parts in outputs]
    return merged[0] if len(merged) == 1 else merged


def pad_to(chunk, size):
    """Pads each array of `chunk` with zero samples up to `size`."""
    count = len(chunk[0])
    if count == size:
        return chunk
    return [
        np.concatenate([a, np.zeros((size - count,) + a.shape[1:], a.dtype)])
        for a in chunk
    ]


def accuracy(predictions, y, arg_name="y"):
    """Top-1 accuracy of class scores against integer or one-hot labels.

    With several outputs (a list), the first holds the class scores.
    """
    if isinstance(predictions, list):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    y = np.asarray(y)
    if y.ndim == predictions.ndim and y.shape[-1] == predictions.shape[-1]:
        y = y.argmax(-1)
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if len(y) != len(predictions):
        raise ValueError(
            f"Expected `{arg_name}` to have one label per sample "
            f"({len(predictions)}). Received: {len(y)} labels"
        )
    return float(np.mean(predictions.reshape(len(y), -1).argmax(-1) == y))


def latency_stats(times_s, batch_size):
    """Median, p90, mean and min latency in milliseconds."""
    ms = np.asarray(times_s) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(np.mean(ms)),
        "min_ms": float(np.min(ms)),
        "runs": int(len(ms)),
        "batch_size": int(batch_size),
    }


def random_input(rng, shape, info):
    """Random inputs of `shape` for a tensor: the whole range of an integer
    type, [0, 1) for floats."""
    if np.issubdtype(info.dtype, np.integer):
        limits = np.iinfo(info.dtype)
        return rng.integers(limits.min, limits.max, shape, endpoint=True).astype(info.dtype)
    return rng.uniform(0, 1, shape).astype(info.dtype)


def time_invocations(invoke, num_runs, warmup):
    """Seconds of each of `num_runs` calls of `invoke`, after `warmup`
    untimed calls."""
    import time

    for _ in range(warmup):
        invoke()
    times = []
    for _ in range(num_runs):
        start = time.perf_counter()
        invoke()
        times.append(time.perf_counter() - start)
    return times
