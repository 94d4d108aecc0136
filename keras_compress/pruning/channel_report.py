"""`ChannelReport`: what `prune_channels` kept, layer by layer."""

import dataclasses
import json


@dataclasses.dataclass
class ChannelReport:
    """Channels, parameters and MACs before and after channel pruning.

    Attributes:
        layers: one dict per layer whose output channels could change:
            `name`, `channels_before`, `channels_after`.
        params_before, params_after: parameter counts of the two models.
        macs_before, macs_after: multiply-accumulates per sample (from
            `keras_compress.analysis.summarize`).
        notes: layers the dependency graph kept whole, and why.
    """

    layers: list
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    notes: list

    @classmethod
    def compare(cls, model, pruned, graph, plans):
        from keras_compress.analysis import summarize

        rows = []
        for layer, _, out in graph.layer_entries():
            if out is None or id(layer) not in plans:
                continue
            rows.append({
                "name": layer.name,
                "channels_before": int(len(out)),
                "channels_after": int(plans[id(layer)][1].sum()),
            })
        before, after = summarize(model).totals, summarize(pruned).totals
        return cls(rows, before.params, after.params, before.macs or 0,
                   after.macs or 0, list(graph.notes))

    @property
    def mac_ratio(self):
        """MACs before / MACs after (the expected speedup)."""
        return self.macs_before / max(self.macs_after, 1)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self):
        width = max([len(r["name"]) for r in self.layers] + [5])
        lines = [f"{'layer':<{width}}  channels"]
        for r in self.layers:
            lines.append(f"{r['name']:<{width}}  {r['channels_before']:>4} -> "
                         f"{r['channels_after']}")
        lines.append(
            f"params {self.params_before:,} -> {self.params_after:,} "
            f"({self.params_before / max(self.params_after, 1):.2f}x fewer); "
            f"MACs {self.macs_before:,} -> {self.macs_after:,} "
            f"({self.mac_ratio:.2f}x fewer)"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
