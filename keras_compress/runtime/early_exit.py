"""`EarlyExitRunner`: runs an exported early-exit chain in LiteRT."""

import json
import os

import numpy as np

from keras_compress import _exit_rule
from keras_compress.early_exit.result import EarlyExitResult
from keras_compress.runtime import _common
from keras_compress.runtime.litert import LiteRTModel

_CHAIN_FILE = "chain.json"
_FORMAT = "keras_compress.early_exit"


class EarlyExitRunner:
    """Runs the stage models written by `export_early_exit`, stopping early.

    Each sample runs stage 0; if exit 0 is confident (the same test as
    `keras_compress.early_exit.early_exit_predict`) it leaves there,
    otherwise its feature map goes to stage 1, and so on; the last stage
    (the final classifier) takes whatever is left. Only the stages a sample
    needs are run, so the MACs reported per sample are really spent.

    Args:
        folder: The folder `export_early_exit` wrote (with `chain.json`).
        threshold: Override of the thresholds in `chain.json`: a float in
            [0, 1] or one per early exit. Default None (the exported ones).
        criterion: Override of the criterion, `"max_prob"` or `"entropy"`.
            Default None (the exported one).
        num_threads: LiteRT interpreter threads, default None.
        kernels: `"xnnpack"` (default), `"builtin"` or `"reference"`, as in
            `LiteRTModel`.

    Example:

    >>> runner = EarlyExitRunner("exits/")  # doctest: +SKIP
    >>> result = runner.predict(x_test)  # doctest: +SKIP
    >>> result.accuracy(y_test), result.mean_macs  # doctest: +SKIP
    """

    def __init__(self, folder, threshold=None, criterion=None, num_threads=None,
                 kernels="xnnpack"):
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(
                "Expected `folder` to be a str or os.PathLike. Received: "
                f"folder of type {type(folder).__name__}"
            )
        folder = os.fspath(folder)
        path = os.path.join(folder, _CHAIN_FILE)
        if not os.path.isfile(path):
            raise ValueError(
                f"Expected `folder` to hold {_CHAIN_FILE} (written by "
                f"export_early_exit). Received: folder={folder!r}"
            )
        with open(path) as f:
            try:
                chain = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"Expected {path!r} to be valid JSON. Received: {e}"
                ) from None
        if not isinstance(chain, dict) or chain.get("format") != _FORMAT:
            raise ValueError(
                f"Expected {path!r} to describe an early-exit chain "
                f"(format {_FORMAT!r}). Received: format="
                f"{chain.get('format') if isinstance(chain, dict) else None!r}"
            )
        self.folder = folder
        self.chain = chain
        self.criterion = _exit_rule.check_criterion(
            chain["criterion"] if criterion is None else criterion)
        num_early = len(chain["stages"]) - 1
        self.thresholds = _exit_rule.check_thresholds(
            chain["threshold"] if threshold is None else threshold,
            num_early, self.criterion)
        self.stages = [
            LiteRTModel(os.path.join(folder, stage["file"]),
                        num_threads=num_threads, kernels=kernels)
            for stage in chain["stages"]
        ]
        self._exit_index = [s["exit"]["output_index"] for s in chain["stages"]]
        self._feature_index = [
            None if s["feature"] is None else s["feature"]["output_index"]
            for s in chain["stages"]
        ]
        self._is_probability = [s["exit"]["probabilities"] for s in chain["stages"]]
        self.cumulative_macs = [int(s["cumulative_macs"]) for s in chain["stages"]]
        self._plan = list(zip(self.stages, self._exit_index, self._feature_index,
                              self._is_probability))

    @property
    def num_exits(self):
        return len(self.stages)

    @property
    def size_bytes(self):
        """Total size of the stage files in bytes."""
        return sum(stage.size_bytes for stage in self.stages)

    def predict(self, x, batch_size=None):
        """Early-exit predictions for every sample of `x`.

        Stage j runs on the samples still undecided after exit j-1, in
        batches of `batch_size` (default: 256, or the models' fixed batch).

        Returns:
            An `EarlyExitResult` (`predictions`, `exits`, `macs`,
            `confidences`, `probabilities`).
        """
        x = np.asarray(x)
        n = len(x)
        if n == 0:
            raise ValueError("Expected at least one sample. Received: 0 samples")
        exits = np.zeros(n, dtype=np.int64)
        confidences = np.zeros(n, dtype=np.float64)
        probabilities = np.zeros((n, int(self.chain["num_classes"])), dtype=np.float64)
        active = np.arange(n)
        inputs = x
        last = self.num_exits - 1
        for j, stage in enumerate(self.stages):
            outs = stage.predict(inputs, batch_size=batch_size)
            outs = outs if isinstance(outs, list) else [outs]
            p = _exit_rule.to_probabilities(outs[self._exit_index[j]], self._is_probability[j])
            conf = _exit_rule.confidence(p, self.criterion)
            if j < last:
                leave = _exit_rule.confident(conf, self.thresholds[j], self.criterion)
            else:
                leave = np.ones(len(active), dtype=bool)
            done = active[leave]
            exits[done] = j
            confidences[done] = conf[leave]
            probabilities[done] = p[leave]
            if j == last or leave.all():
                break
            active = active[~leave]
            inputs = outs[self._feature_index[j]][~leave]
        return EarlyExitResult(
            predictions=probabilities.argmax(axis=-1).astype(np.int64),
            exits=exits,
            macs=np.asarray(self.cumulative_macs, dtype=np.int64)[exits],
            confidences=confidences,
            probabilities=probabilities,
        )

    def predict_one(self, sample):
        """One sample (no batch dimension), with as little Python as possible.

        Takes the same decisions as `predict` (same confidence code on the
        same outputs), calling each stage's interpreter directly.

        Returns:
            `(prediction, exit_index)`; meant for timing per-sample latency.
        """
        x = np.asarray(sample)[None]
        criterion = self.criterion
        for j, (stage, exit_k, feature_k, is_probability) in enumerate(self._plan):
            if stage._in[0]["shape"][0] != 1:
                stage._resize(1)  # A dynamic-batch stage last ran a batch.
            interpreter = stage._interpreter
            interpreter.set_tensor(stage._in[0]["index"],
                                   _common.to_stored(x, stage.inputs[0]))
            interpreter.invoke()
            scores = _common.from_stored(
                interpreter.get_tensor(stage._out[exit_k]["index"]),
                stage.outputs[exit_k], False)
            p = _exit_rule.to_probabilities(scores, is_probability)
            if feature_k is None or _exit_rule.confident(
                _exit_rule.confidence(p, criterion), self.thresholds[j], criterion
            )[0]:
                return int(p[0].argmax()), j
            x = _common.from_stored(
                interpreter.get_tensor(stage._out[feature_k]["index"]),
                stage.outputs[feature_k], False)

    def evaluate(self, x, y):
        """Top-1 accuracy of early-exit predictions on `(x, y)`."""
        return self.predict(x).accuracy(y)
