"""`FactorizationReport`: what a factorization converter changed, layer by
layer."""

import dataclasses
import json

# Columns printed per method: (header, key, format).
_COLUMNS = {
    "low_rank": (
        ("layer", "name", "{}"),
        ("in x out", "shape", "{0[0]}x{0[1]}"),
        ("rank", "rank", "{}"),
        ("energy", "kept_energy", "{:.3f}"),
        ("params", "params_before", "{:,}"),
        ("-> params", "params_after", "{:,}"),
        ("status", "status", "{}"),
    ),
    "depthwise_separable": (
        ("layer", "name", "{}"),
        ("kernel", "kernel_size", "{0[0]}x{0[1]}"),
        ("in->out", "channels", "{0[0]}->{0[1]}"),
        ("m", "depth_multiplier", "{}"),
        ("params", "params_before", "{:,}"),
        ("-> params", "params_after", "{:,}"),
        ("kernel err", "kernel_error", "{:.4f}"),
        ("out err init", "relative_error_init", "{:.4f}"),
        ("out err", "relative_error", "{:.4f}"),
        ("status", "status", "{}"),
    ),
}


@dataclasses.dataclass
class FactorizationReport:
    """Parameters before and after a factorization, per layer and in total.

    Attributes:
        method: `"low_rank"` (from `factorize`) or `"depthwise_separable"`
            (from `to_depthwise_separable`).
        layers: One dict per candidate layer, in graph order, with `name`,
            `params_before`, `params_after` (equal when the layer was kept),
            `replaced` (bool) and `status` (`"replaced"` or why it was
            kept). `factorize` adds `shape` (`(input_dim, units)`), `rank`
            and `kept_energy` (the fraction of the squared singular values
            kept); `to_depthwise_separable` adds `kernel_size`, `channels`
            (`(in, out)`), `depth_multiplier`, `kernel_error` (relative
            Frobenius distance between the original kernel and the
            separable one), and with data `relative_error_init` and
            `relative_error`: the relative error `||y - y_new|| / ||y||` of
            the layer's pre-activation outputs on the data, after the SVD
            initialization and after the least-squares fit.
        params_before: Parameters of the input model.
        params_after: Parameters of the returned model.
    """

    method: str
    layers: list
    params_before: int
    params_after: int

    @property
    def replaced(self):
        """Names of the layers that were replaced."""
        return [r["name"] for r in self.layers if r["replaced"]]

    @property
    def compression(self):
        """`params_before / params_after` (how many times fewer)."""
        return self.params_before / max(self.params_after, 1)

    @property
    def saving(self):
        """Fraction of the parameters removed, `1 - after / before`."""
        return 1.0 - self.params_after / max(self.params_before, 1)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["compression"] = self.compression
        out["saving"] = self.saving
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self):
        columns = _COLUMNS.get(self.method, _COLUMNS["low_rank"])
        header = [c[0] for c in columns]
        lines = []
        for row in self.layers:
            cells = []
            for _, key, fmt in columns:
                value = row.get(key)
                cells.append("-" if value is None else fmt.format(value))
            lines.append(cells)
        widths = [max(len(x) for x in col) for col in zip(header, *lines)]

        def fmt_line(cells):
            return "  ".join(
                c.ljust(w) if i in (0, len(cells) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        out = [fmt_line(header)] + [fmt_line(c) for c in lines]
        out.append(
            f"params {self.params_before:,} -> {self.params_after:,} "
            f"({self.compression:.2f}x fewer, {self.saving:.1%} saved); "
            f"{len(self.replaced)} of {len(self.layers)} layers replaced"
        )
        return "\n".join(out)
