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
    samples leaving at each exit) and `mean_exit`.

    Attributes:
        criterion: `"max_prob"` or `"entropy"`.
        rows: The per-threshold results, in the order of the thresholds.
        full_accuracy: Accuracy of the final exit on every sample (the
            backbone's own prediction).
        exit_accuracies: Accuracy of each exit if every sample left there.
        backbone_macs: MACs of the backbone alone, per sample.
        exit_macs: Cumulative MACs of a sample leaving at each exit.

    Example:

    >>> sweep = threshold_sweep(model, x_test, y_test,  # doctest: +SKIP
    ...                         [0.5, 0.9, 0.99])
    >>> print(sweep)  # doctest: +SKIP
    >>> sweep.plot("sweep.png")  # doctest: +SKIP
    """

    def __init__(self, criterion, rows, full_accuracy, exit_accuracies,
                 backbone_macs, exit_macs):
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
            "rows": [dict(r) for r in self.rows],
        }

    def __str__(self):
        k = len(self.exit_macs)
        header = ["threshold", "accuracy %", "mean MACs", "reduction"] + [
            f"exit {j} %" if j < k - 1 else "final %" for j in range(k)
        ]
        lines = [header]
        for r in self.rows:
            lines.append(
                [f"{r['threshold']:g}", f"{100 * r['accuracy']:.2f}",
                 f"{r['mean_macs']:.0f}", f"{r['mac_reduction']:.2f}x"]
                + [f"{100 * f:.1f}" for f in r["exit_fractions"]]
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = [
            f"Early-exit threshold sweep ({self.criterion}); full model "
            f"accuracy {100 * self.full_accuracy:.2f}%, backbone "
            f"{self.backbone_macs} MACs"
        ]
        for n, line in enumerate(lines):
            out.append("  ".join(c.rjust(w) for c, w in zip(line, widths)))
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def __repr__(self):
        return (f"<ThresholdSweep {self.criterion}: {len(self.rows)} thresholds, "
                f"full accuracy {self.full_accuracy:.4f}>")

    def plot(self, path=None, ax=None):
        """Draws accuracy against average MACs, one point per threshold.

        Args:
            path: Optional PNG path, written atomically. Default None.
            ax: Optional matplotlib axes to draw on. Default None (a new
                figure).

        Returns:
            The matplotlib axes.
        """
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
        macs = [r["mean_macs"] for r in self.rows]
        acc = [100 * r["accuracy"] for r in self.rows]
        ax.plot(macs, acc, "o-", label=f"early exit ({self.criterion})")
        for r, m, a in zip(self.rows, macs, acc):
            ax.annotate(f"{r['threshold']:g}", (m, a), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        ax.scatter([self.backbone_macs], [100 * self.full_accuracy], marker="*",
                   s=120, color="black", label="full model", zorder=3)
        ax.set_xlabel("average MACs per sample")
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
                    from_logits=None, batch_size=256):
    """Accuracy, average MACs and exit usage of early exits per threshold.

    Runs the model once on `x` and replays the decisions of
    `early_exit_predict` at every threshold.

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
    return ThresholdSweep(
        criterion=criterion,
        rows=rows,
        full_accuracy=exit_accuracies[-1],
        exit_accuracies=exit_accuracies,
        backbone_macs=costs["backbone_total"],
        exit_macs=costs["cumulative"],
    )


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
