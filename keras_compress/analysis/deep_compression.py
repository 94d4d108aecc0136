"""The Deep Compression table: one row per compression stage of a model.

For each stage (a Keras model, a `.tflite`, a mapping of arrays or a
`WeightBits` already computed) `deep_compression_table` runs `weight_bits`
and reports its weights' params, non-zeros, distinct values, and the
representation with the fewest total bits over all its weights (one format
for the whole stage; quantization scales added), its bits per weight, its
bytes (`ceil(bits / 8)`: the streams of all tensors back to back) and the
compression ratio against the first stage. This is the layout of Deep
Compression's tables 1-5 (Han, Mao & Dally, ICLR 2016).
"""

import collections.abc
import dataclasses
import numbers

from keras_compress import _io
from keras_compress.analysis.coding import MAX_CODE_LENGTH
from keras_compress.analysis.weight_report import WeightBits
from keras_compress.analysis.weight_report import weight_bits


@dataclasses.dataclass
class StageRow:
    """One stage of a `DeepCompressionTable`.

    Args:
        stage: Stage name.
        source: `"keras"`, `"tflite"` or `"arrays"`.
        params: Weights measured.
        nonzeros: Non-zero weights.
        distinct: Largest number of distinct values in one tensor.
        clusters: Largest codebook (per tensor, or per channel for
            per-channel int8 tensors).
        representation: The stage's best representation.
        bits: Its total bits, quantization scales included.
        bits_per_weight: `bits / params`.
        bytes: `ceil(bits / 8)`.
        ratio: Bytes of the first stage divided by this stage's bytes
            (`None` when this stage has 0 bytes).
        accuracy: The accuracy given for the stage, or `None`.
    """

    stage: str
    source: str
    params: int
    nonzeros: int
    distinct: int
    clusters: int
    representation: str
    bits: int
    bits_per_weight: float
    bytes: int
    ratio: object
    accuracy: object = None


@dataclasses.dataclass
class DeepCompressionTable:
    """Sizes of a model's weights across compression stages.

    Args:
        rows: One `StageRow` per stage, in the order given.
        reports: `{stage: WeightBits}` with the per-tensor details.
    """

    rows: list
    reports: dict

    def table(self):
        """Returns the stages as an aligned text table."""
        header = ["Stage", "Source", "Params", "Nonzero", "Kept", "Distinct",
                  "K", "Best representation", "Bits/weight", "Bytes",
                  "Ratio", "Accuracy"]
        body = [[
            r.stage, r.source, f"{r.params:,}", f"{r.nonzeros:,}",
            f"{100.0 * r.nonzeros / r.params:.1f}%" if r.params else "-",
            f"{r.distinct:,}", f"{r.clusters:,}", r.representation,
            f"{r.bits_per_weight:.3f}", f"{r.bytes:,}",
            "-" if r.ratio is None else f"{r.ratio:.1f}x",
            "-" if r.accuracy is None else f"{r.accuracy:.4f}",
        ] for r in self.rows]
        widths = [max(len(line[i]) for line in [header] + body)
                  for i in range(len(header))]

        def fmt(cells):
            return "  ".join(
                c.ljust(widths[i]) if i in (0, 1, 7) else c.rjust(widths[i])
                for i, c in enumerate(cells)
            ).rstrip()

        rule = "-" * len(fmt(header))
        title = ("Deep Compression table (bytes: best representation of the "
                 "weights + scales; ratio vs the first stage)")
        return "\n".join([title, rule, fmt(header), rule]
                         + [fmt(c) for c in body])

    def __str__(self):
        return self.table()

    def to_dict(self):
        """Returns the table as a JSON-compatible dict."""
        return {
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "reports": {k: v.to_dict() for k, v in self.reports.items()},
        }

    def to_json(self, path=None):
        """Returns the table as JSON, optionally writing it atomically.

        Args:
            path: Optional file path (`str` or `os.PathLike`). Defaults to
                `None`.

        Returns:
            The JSON string.
        """
        return _io.json_text(self.to_dict(), path)


def deep_compression_table(stages, accuracy=None, index_bits=None,
                           max_length=MAX_CODE_LENGTH, verify=False):
    """Builds the Deep Compression table of a model's stages.

    Args:
        stages: A non-empty mapping `{stage name: model}` in pipeline order;
            each model is anything `weight_bits` takes (a Keras model, a
            `.keras` or `.tflite` path, `.tflite` bytes, a mapping of arrays)
            or a `WeightBits`. The first stage is the reference of `ratio`.
        accuracy: Optional mapping `{stage name: accuracy}` for some or all
            stages. Defaults to `None`.
        index_bits: Passed to `weight_bits`. Defaults to `None`.
        max_length: Passed to `weight_bits`. Defaults to 16.
        verify: Passed to `weight_bits`. Defaults to `False`.

    Returns:
        A `DeepCompressionTable`.

    Example:

    ```python
    table = deep_compression_table(
        {"float32": model, "pruned": pruned, "int8": tflite_bytes},
        accuracy={"float32": 0.97, "int8": 0.96},
    )
    print(table)
    table.to_json("deep_compression.json")
    ```
    """
    if not isinstance(stages, collections.abc.Mapping):
        raise TypeError(
            "Expected `stages` to be a mapping {stage name: model}. "
            f"Received: stages of type {type(stages).__name__}"
        )
    if not stages:
        raise ValueError(
            "Expected `stages` to name at least one stage. Received: "
            "stages={}"
        )
    for key in stages:
        if not isinstance(key, str):
            raise TypeError(
                "Expected the stage names in `stages` to be strings. "
                f"Received: a key of type {type(key).__name__}"
            )
    accuracy = _check_accuracy(accuracy, stages)
    reports = {}
    for key, obj in stages.items():
        if isinstance(obj, WeightBits):
            reports[key] = obj
        else:
            reports[key] = weight_bits(obj, index_bits=index_bits,
                                       max_length=max_length, verify=verify)
    rows, reference = [], None
    for key, report in reports.items():
        totals = report.totals
        best = totals.best
        bits = totals.total_bits(best)
        size = -(-bits // 8)
        if reference is None:
            reference = size
        rows.append(StageRow(
            stage=key,
            source=report.source,
            params=totals.params,
            nonzeros=totals.nonzeros,
            distinct=totals.distinct,
            clusters=totals.clusters,
            representation=best,
            bits=bits,
            bits_per_weight=bits / totals.params if totals.params else 0.0,
            bytes=size,
            ratio=reference / size if size else None,
            accuracy=accuracy.get(key),
        ))
    return DeepCompressionTable(rows=rows, reports=reports)


def _check_accuracy(accuracy, stages):
    if accuracy is None:
        return {}
    if not isinstance(accuracy, collections.abc.Mapping):
        raise TypeError(
            "Expected `accuracy` to be None or a mapping {stage name: "
            f"accuracy}}. Received: accuracy of type {type(accuracy).__name__}"
        )
    unknown = [k for k in accuracy if k not in stages]
    if unknown:
        raise ValueError(
            f"Expected the keys of `accuracy` to be stage names "
            f"{list(stages)}. Received: unknown stages {unknown}"
        )
    result = {}
    for key, value in accuracy.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"Expected accuracy[{key!r}] to be a number. Received: "
                f"{value!r} of type {type(value).__name__}"
            )
        result[key] = float(value)
    return result
