"""`calibrate`: post-training ranges for a model's fake-quant quantizers."""

import numpy as np

from keras_compress._checks import check_int
from keras_compress.quantizers import FakeQuant
from keras_compress.quantizers.base import recording

METHODS = ("minmax", "percentile", "kl")
BINS = 2048


def calibrate(model, data, method="percentile", percentile=99.99,
              num_samples=1000, batch_size=64, verbose=1):
    """Sets the ranges of a model's activation quantizers from data.

    Runs `data` through the model in float (every quantizer passes its
    input through while the statistics are gathered), then gives each
    `FakeQuant` with a stored range (the `Quantize` layers of
    `quantize_model`, and input/output quantizers of `Quant*` layers) a
    range from what it saw. `to_tflite(model, quantize="int8")` then
    converts with these ranges instead of the converter's own min/max.

    Methods:

    - `"minmax"`: the smallest and largest values seen (what the TFLite
      converter does);
    - `"percentile"`: clip the `100 - percentile` % extreme values on each
      side (one side for non-negative tensors);
    - `"kl"`: TensorRT's entropy calibration (Migacz, 2017): the clip
      threshold whose quantized histogram is closest in KL divergence to
      the float one (2048 bins; 128 int8 levels per side for signed
      tensors, 256 for non-negative ones).

    Args:
        model: A model holding keras-compress quantizers (Sequential,
            Functional or subclassed), e.g. from `quantize_model`.
        data: Model inputs: an array, a list of arrays (several inputs), a
            `tf.data.Dataset` (`(x, y)` elements allowed) or a generator.
        method: `"minmax"`, `"percentile"` (default) or `"kl"`.
        percentile: For `"percentile"`, in (50, 100]. Default 99.99.
        num_samples: At most this many samples are used, default 1000.
        batch_size: Samples per forward pass, default 64.
        verbose: 1 (default) shows a progress bar, 0 is silent.

    Returns:
        A dict `{quantizer weight prefix path: (min, max)}` of the ranges set.

    Example:

    >>> qmodel = quantize_model(model)  # doctest: +SKIP
    >>> calibrate(qmodel, x_train[:500], method="kl")  # doctest: +SKIP
    >>> to_tflite(qmodel, quantize="int8")  # doctest: +SKIP

    Reference:
        Migacz, "8-bit Inference with TensorRT", GTC 2017.
    """
    from keras_compress import _inputs

    if method not in METHODS:
        raise ValueError(
            f"Expected `method` to be one of {list(METHODS)}. "
            f"Received: method={method!r}"
        )
    if not 50.0 < float(percentile) <= 100.0:
        raise ValueError(
            "Expected `percentile` in (50, 100]. "
            f"Received: percentile={percentile!r}"
        )
    num_samples = check_int("num_samples", num_samples, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    _inputs.check_model(model)
    targets = _targets(model)
    if not targets:
        raise ValueError(
            f"Model {model.name!r} has no quantizer with a stored range to "
            "calibrate. Expected a model from quantize_model, or with "
            "Quantize layers / Quant* layers with FakeQuant input or output "
            "quantizers."
        )
    samples = _inputs.take_samples(
        data, _inputs.tensor_specs(model), num_samples, arg_name="data"
    )
    batches = [
        [np.concatenate(part) for part in zip(*samples[i:i + batch_size])]
        for i in range(0, len(samples), batch_size)
    ]
    stats = {id(q): _Stats() for q in targets}

    def run(observe, title):
        progress = _progress(len(batches), verbose, title)

        def record(quantizer, x):
            if id(quantizer) in stats:
                observe(stats[id(quantizer)], np.asarray(x, dtype="float32"))

        with recording(record):
            for i, batch in enumerate(batches):
                model(batch[0] if len(batch) == 1 else batch, training=False)
                if progress is not None:
                    progress.update(i + 1)

    run(_Stats.extremes, "calibrating: ranges")
    if method != "minmax":
        run(_Stats.histogram, "calibrating: histograms")
    ranges = {}
    for quantizer in targets:
        st = stats[id(quantizer)]
        if st.lo is None:
            continue  # Not reached by the data (an unused branch).
        lo, hi = st.range(method, float(percentile), quantizer.bits)
        quantizer.set_range(lo, hi)
        ranges[quantizer.min.path.rsplit("_min", 1)[0]] = (lo, hi)
    return ranges


def _targets(model):
    from keras_compress.layers.quantized import QuantLayer, Quantize

    found = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, Quantize):
            candidates = [layer.quantizer]
        elif isinstance(layer, QuantLayer):
            candidates = [layer.input_quantizer, layer.output_quantizer]
        else:
            continue
        for q in candidates:
            if isinstance(q, FakeQuant) and q.min is not None and q.axis is None:
                found.append(q)
    return found


def _progress(total, verbose, title):
    if not verbose:
        return None
    import keras

    print(title)
    return keras.utils.Progbar(total)


class _Stats:
    """Running min/max, then a histogram over that span."""

    def __init__(self):
        self.lo = self.hi = None
        self.counts = None

    def extremes(self, x):
        lo, hi = float(x.min()), float(x.max())
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    def _signed(self):
        return self.lo < 0.0

    def histogram(self, x):
        top = max(abs(self.lo), abs(self.hi)) if self._signed() else self.hi
        values = np.abs(x) if self._signed() else x
        # Exact zeros (most of a ReLU's output) are exact in int8 at any
        # range; left in, they swamp the KL search toward tiny ranges.
        values = values[values != 0]
        counts, _ = np.histogram(values, bins=BINS, range=(0.0, max(top, 1e-12)))
        self.counts = counts if self.counts is None else self.counts + counts

    def range(self, method, percentile, bits):
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        if method == "minmax" or self.counts is None or self.counts.sum() == 0:
            return lo, hi
        top = max(-lo, hi) if self._signed() else hi
        width = top / BINS
        if method == "percentile":
            cdf = np.cumsum(self.counts) / self.counts.sum()
            index = int(np.searchsorted(cdf, percentile / 100.0))
            threshold = min((index + 1) * width, top)
        else:
            levels = 2 ** (bits - 1) if self._signed() else 2**bits
            threshold = (_kl_threshold(self.counts, levels) + 0.5) * width
        if self._signed():
            return max(lo, -threshold), min(hi, threshold)
        return 0.0, threshold


def _kl_threshold(counts, levels):
    """Bin index whose clipping at `levels` levels loses the least (KL)."""
    counts = counts.astype("float64")
    best, best_kl = len(counts), np.inf
    start = min(levels, len(counts))
    for i in range(start, len(counts) + 1, 8):
        p = counts[:i].copy()
        p[i - 1] += counts[i:].sum()
        # Merge the first i bins into `levels` groups, spread each group's
        # mass evenly over its non-empty bins.
        groups = np.array_split(np.arange(i), levels)
        q = np.zeros(i)
        for g in groups:
            nonzero = counts[g] != 0
            n = nonzero.sum()
            if n:
                q[g[nonzero]] = counts[g].sum() / n
        mask = p > 0
        if not mask.any():
            continue
        pn = p / p.sum()
        qn = q / max(q.sum(), 1e-12)
        if np.any(qn[mask] == 0):
            continue
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask])))
        if kl < best_kl:
            best, best_kl = i, kl
    return best - 1
