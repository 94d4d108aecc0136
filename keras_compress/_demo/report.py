"""What the demo shows: the results table, the plot, the progress lines."""

import time

from keras_compress import _io


def table(rows):
    """The demo's result rows as an aligned text table."""
    header = ["artifact", "runtime", "accuracy", "size", "vs float32", "latency", "arena"]
    lines = [header]
    for r in rows:
        lines.append([
            r["artifact"], r["runtime"], f"{100 * r['accuracy']:.1f}%",
            kb(r["size_bytes"]), f"{r['size_vs_float32']:.2f}x",
            "-" if r["latency_ms"] is None else f"{1000 * r['latency_ms']:.0f} us",
            "-" if r["arena_bytes"] is None else kb(r["arena_bytes"]),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot(rows, path):
    """Accuracy against size, one labelled point per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 4.5))
    markers = "osD^vP*X"
    for i, r in enumerate(rows):
        kb, acc = r["size_bytes"] / 1024, 100 * r["accuracy"]
        ax.scatter(kb, acc, s=70, marker=markers[i % len(markers)], alpha=0.8,
                   label=f"{r['artifact']} ({kb:.0f} KB, {acc:.1f}%)")
    accuracies = [100 * r["accuracy"] for r in rows]
    middle = (max(accuracies) + min(accuracies)) / 2
    half = max(1.0, (max(accuracies) - min(accuracies)) / 2 + 0.5)
    ax.set_ylim(middle - half, middle + half)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("size (KB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("keras-compress demo: digits CNN, accuracy vs size")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with _io.staged_files([path]) as temps:
        fig.savefig(temps[path], format="png", dpi=120)
    plt.close(fig)


def kb(n):
    """`n` bytes in KB, one decimal."""
    return f"{n / 1024:.1f} KB"


class Stages:
    """Prints `[k/n] what` lines with the time since the start."""

    def __init__(self, total, log):
        self.total, self.log, self.count = total, log, 0
        self.start = time.perf_counter()

    def __call__(self, text):
        self.count += 1
        self.log(f"[{self.count}/{self.total}] {text} ... ({self.elapsed():.0f} s)")

    def elapsed(self):
        return time.perf_counter() - self.start
