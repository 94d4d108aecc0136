"""`threshold_sweep`: accuracy against average MACs over thresholds."""

import numpy as np

from keras_compress import _exit_rule
from keras_compress.early_exit import _graph
from keras_compress.early_exit.inference import result_from_probabilities


class ThresholdSweep:
    """Accuracy and cost of early-exit inference at several thresholds.

    Made by `threshold_sweep`. `print(sweep)` shows a table; `rows` holds
    one dict per threshold with `threshold`, `accuracy`, `mean_macs`,
    `mac_reduction` (backbone MACs / mean MACs, a factor: 2.0 means half
    the MACs of the backbone without heads), `exit_fractions` (fraction of
    samples leaving at each exit) and `mean_exit`; with measured latency,
    also `latency_ms` (mean per sample of the single file) and `speedup`
    (the plain backbone's latency / `latency_ms`).

    Attributes:
        criterion: `"max_prob"` or `"entropy"`.
        rows: The per-threshold results, in the order of the thresholds.
        full_accuracy: Accuracy of the final exit on every sample (the
            backbone's own prediction).
        exit_accuracies: Accuracy of each exit if every sample left there.
        backbone_macs: MACs of the backbone alone, per sample.
        exit_macs: Cumulative MACs of a sample leaving at each exit.
        plain_latency_ms: Measured latency of the plain backbone (one
            sample, same runtime and format), or None when not measured.
        latency: The runtime latency was measured in, or None.

    Example:

    >>> sweep = threshold_sweep(model, x_test, y_test,  # doctest: +SKIP
    ...                         [0.5, 0.9, 0.99])
    >>> print(sweep)  # doctest: +SKIP
    >>> sweep.plot("sweep.png")  # doctest: +SKIP
    """

    def __init__(self, criterion, rows, full_accuracy, exit_accuracies,
                 backbone_macs, exit_macs, plain_latency_ms=None, latency=None):
        self.plain_latency_ms = plain_latency_ms
        self.latency = latency
        self.criterion = criterion
        self.rows = rows
        self.full_accuracy = full_accuracy
        self.exit_accuracies = exit_accuracies
        self.backbone_macs = backbone_macs
        self.exit_macs = exit_macs

    def best(self, max_accuracy_drop=0.01):
        """The row with the largest MAC reduction whose accuracy is at most
        `max_accuracy_drop` (a fraction, default 0.01 = 1 point) below
        `full_accuracy`, or None if no row qualifies."""
        rows = [r for r in self.rows
                if r["accuracy"] >= self.full_accuracy - max_accuracy_drop - 1e-12]
        if not rows:
            return None
        return max(rows, key=lambda r: (r["mac_reduction"], r["accuracy"]))

    def to_dict(self):
        """A JSON-serializable dict of everything."""
        return {
            "criterion": self.criterion,
            "full_accuracy": self.full_accuracy,
            "exit_accuracies": list(self.exit_accuracies),
            "backbone_macs": self.backbone_macs,
            "exit_macs": list(self.exit_macs),
            "plain_latency_ms": self.plain_latency_ms,
            "latency": self.latency,
            "rows": [dict(r) for r in self.rows],
        }

    def __str__(self):
        k = len(self.exit_macs)
        timed = self.plain_latency_ms is not None
        header = ["threshold", "accuracy %", "mean MACs", "reduction"] + (
            ["us/sample", "speedup"] if timed else []) + [
            f"exit {j} %" if j < k - 1 else "final %" for j in range(k)
        ]
        lines = [header]
        for r in self.rows:
            lines.append(
                [f"{r['threshold']:g}", f"{100 * r['accuracy']:.2f}",
                 f"{r['mean_macs']:.0f}", f"{r['mac_reduction']:.2f}x"]
                + ([f"{1e3 * r['latency_ms']:.1f}", f"{r['speedup']:.2f}x"] if timed else [])
                + [f"{100 * f:.1f}" for f in r["exit_fractions"]]
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = [
            f"Early-exit threshold sweep ({self.criterion}); full model "
            f"accuracy {100 * self.full_accuracy:.2f}%, backbone "
            f"{self.backbone_macs} MACs"
            + (f", {1e3 * self.plain_latency_ms:.1f} us per sample in {self.latency}"
               if timed else "")
        ]
        for n, line in enumerate(lines):
            out.append("  ".join(c.rjust(w) for c, w in zip(line, widths)))
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def __repr__(self):
        return (f"<ThresholdSweep {self.criterion}: {len(self.rows)} thresholds, "
                f"full accuracy {self.full_accuracy:.4f}>")

    def plot(self, path=None, ax=None, x="macs"):
        """Draws accuracy against average MACs (or measured latency), one
        point per threshold.

        Args:
            path: Optional PNG path, written atomically. Default None.
            ax: Optional matplotlib axes to draw on. Default None (a new
                figure).
            x: `"macs"` (default) or `"latency"` (a sweep made with
                `latency=`): what the horizontal axis shows.

        Returns:
            The matplotlib axes.
        """
        if x not in ("macs", "latency"):
            raise ValueError(f"Expected `x` to be 'macs' or 'latency'. Received: x={x!r}")
        if x == "latency" and self.plain_latency_ms is None:
            raise ValueError(
                "Expected a sweep with measured latency for x='latency' (made "
                "with threshold_sweep(..., latency='litert' or 'micro')). "
                "Received: a sweep of MACs only")
        try:
            import matplotlib
        except ImportError as e:
            raise ImportError(
                "ThresholdSweep.plot needs matplotlib: `pip install "
                "matplotlib`. The numbers are in `sweep.rows` without it."
            ) from e
        if ax is None:
            if path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        if x == "latency":
            macs = [1e3 * r["latency_ms"] for r in self.rows]
            full = 1e3 * self.plain_latency_ms
        else:
            macs = [r["mean_macs"] for r in self.rows]
            full = self.backbone_macs
        acc = [100 * r["accuracy"] for r in self.rows]
        ax.plot(macs, acc, "o-", label=f"early exit ({self.criterion})")
        for r, m, a in zip(self.rows, macs, acc):
            ax.annotate(f"{r['threshold']:g}", (m, a), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        ax.scatter([full], [100 * self.full_accuracy], marker="*",
                   s=120, color="black", label="full model", zorder=3)
        ax.set_xlabel("average MACs per sample" if x == "macs" else
                      f"measured microseconds per sample ({self.latency})")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        if path is not None:
            from keras_compress import _io

            path = _io.check_output_path(path)
            with _io.staged_files([path]) as temps:
                fig.savefig(temps[path], format="png", dpi=120)
        return ax


def threshold_sweep(model, x, y, thresholds, criterion="max_prob",
                    from_logits=None, batch_size=256, latency=None, quantize=None,
                    representative_data=None, latency_samples=100):
    """Accuracy, average MACs and exit usage of early exits per threshold.

    Runs the model once on `x` and replays the decisions of
    `early_exit_predict` at every threshold. With `latency`, the time is
    measured too: the model is exported once as a single file with a
    threshold input (`export_early_exit_file(..., threshold_input=True)`),
    which `keras_compress.runtime.EarlyExitRunner.profile` runs on the
    first `latency_samples` samples at every threshold, and the plain
    backbone (the model without its heads, same format) is timed in the
    same runtime.

    Args:
        model: A multi-exit model (see `add_early_exits`).
        x: Input samples.
        y: Labels, integers or one-hot.
        thresholds: A list of thresholds, each a float in [0, 1] (the same
            at every early exit).
        criterion: `"max_prob"` (default) or `"entropy"`.
        from_logits: Whether the outputs are logits. Default None (read from
            the model).
        batch_size: Batch size of `model.predict`, default 256.
        latency: None (default: MACs only), `"litert"` (XNNPACK, 1 thread)
            or `"micro"` (TensorFlow Lite Micro): measure latency there.
        quantize: Format of the timed files, `None` (float32) or as in
            `to_tflite` (e.g. `"int8"`, with `representative_data`).
        representative_data: Calibration inputs for `quantize="int8"`.
        latency_samples: Samples timed per threshold, default 100.

    Returns:
        A `ThresholdSweep`.

    Example:

    >>> sweep = threshold_sweep(model, x_test, y_test,  # doctest: +SKIP
    ...                         [0.5, 0.8, 0.9, 0.99])
    >>> sweep.best(max_accuracy_drop=0.01)  # doctest: +SKIP
    """
    exits = _graph.Exits(model)
    _exit_rule.check_criterion(criterion)
    if isinstance(thresholds, (str, bytes)) or not hasattr(thresholds, "__iter__"):
        raise TypeError(
            "Expected `thresholds` to be a list of floats in [0, 1]. "
            f"Received: thresholds={thresholds!r}"
        )
    thresholds = list(thresholds)
    if not thresholds:
        raise ValueError("Expected at least one threshold. Received: thresholds=[]")
    for t in thresholds:
        if isinstance(t, (list, tuple, np.ndarray)):
            raise ValueError(
                "Expected each entry of `thresholds` to be one float in [0, 1]. "
                f"Received: thresholds={thresholds!r}"
            )
    checked = [_exit_rule.check_thresholds(t, exits.num_exits - 1, criterion)
               for t in thresholds]
    if latency not in (None, "litert", "micro"):
        raise ValueError(
            "Expected `latency` to be None, 'litert' or 'micro'. Received: "
            f"latency={latency!r}")
    kinds = _graph.output_kinds(exits, from_logits)
    costs = _graph.exit_costs(model)
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    probabilities = [_exit_rule.to_probabilities(o, p) for o, p in zip(outputs, kinds)]
    labels = _labels(y, len(probabilities[0]), exits.num_classes)
    exit_accuracies = [float(np.mean(p.argmax(-1) == labels)) for p in probabilities]
    rows = []
    for t, per_exit in zip(thresholds, checked):
        result = result_from_probabilities(
            probabilities, per_exit, criterion, costs["cumulative"])
        mean_macs = result.mean_macs
        rows.append({
            "threshold": float(t),
            "accuracy": result.accuracy(labels),
            "mean_macs": mean_macs,
            "mac_reduction": costs["backbone_total"] / mean_macs,
            "exit_fractions": result.exit_fractions(exits.num_exits),
            "mean_exit": float(np.mean(result.exits)),
        })
    plain_ms = None
    if latency is not None:
        plain_ms = _measure(model, exits, x, rows, checked, criterion, latency, quantize,
                            representative_data, latency_samples)
    return ThresholdSweep(
        criterion=criterion,
        rows=rows,
        full_accuracy=exit_accuracies[-1],
        exit_accuracies=exit_accuracies,
        backbone_macs=costs["backbone_total"],
        exit_macs=costs["cumulative"],
        plain_latency_ms=plain_ms,
        latency=latency,
    )


def _measure(model, exits, x, rows, thresholds, criterion, runtime, quantize,
             representative_data, count):
    """Adds `latency_ms` and `speedup` to every row; returns the plain
    backbone's latency in ms."""
    import os
    import tempfile

    import keras

    from keras_compress._checks import check_int
    from keras_compress.early_exit.export_file import export_early_exit_file
    from keras_compress.export import to_tflite
    from keras_compress.runtime import EarlyExitRunner, LiteRTModel, MicroModel

    count = check_int("latency_samples", count, 1)
    samples = np.asarray(x)[:count]
    data = export_early_exit_file(
        model, threshold=[min(max(t, 1e-6), 1.0) for t in thresholds[0]],
        criterion=criterion, threshold_input=True, quantize=quantize,
        representative_data=representative_data, verify_data=samples[:32])
    backbone = keras.Model(exits.functional.inputs, exits.functional.outputs[-1])
    plain = to_tflite(backbone, quantize=quantize, representative_data=representative_data,
                      batch_size=1)
    plain_model = LiteRTModel(plain, num_threads=1) if runtime == "litert" else MicroModel(plain)
    plain_ms = plain_model.benchmark(num_runs=max(50, count))["median_ms"]
    with tempfile.TemporaryDirectory(prefix="keras_compress_sweep_") as folder:
        path = os.path.join(folder, "early_exit.tflite")
        with open(path, "wb") as f:
            f.write(data)
        for row, per_exit in zip(rows, thresholds):
            runner = EarlyExitRunner(path, threshold=per_exit, num_threads=1,
                                     runtime=runtime)
            row["latency_ms"] = runner.profile(samples, repeats=3)["mean_ms"]
            row["speedup"] = plain_ms / row["latency_ms"]
    return plain_ms


def _labels(y, count, num_classes):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[-1] == num_classes:
        y = y.argmax(-1)
    y = y.reshape(-1)
    if len(y) != count:
        raise ValueError(
            f"Expected `y` to hold one label per sample ({count}). "
            f"Received: {len(y)} labels"
        )
    return y
