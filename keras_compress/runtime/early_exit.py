"""`EarlyExitRunner`: runs an exported early-exit chain or single file."""

import json
import os

import numpy as np

from keras_compress import _exit_rule
from keras_compress._checks import check_int
from keras_compress.early_exit.result import EarlyExitResult
from keras_compress.runtime import _common
from keras_compress.runtime.litert import LiteRTModel
from keras_compress.runtime._single_exit_file import SingleFile

_CHAIN_FILE = "chain.json"
_FORMAT = "keras_compress.early_exit"


class EarlyExitRunner:
    """Runs an exported early-exit model, stopping each sample early.

    Two artifacts run here:

    - the folder `export_early_exit` writes (a chain of stage models and
      `chain.json`): each sample runs stage 0; if exit 0 is confident (the
      same test as `keras_compress.early_exit.early_exit_predict`) it
      leaves there, otherwise its feature map goes to stage 1, and so on;
      the last stage (the final classifier) takes whatever is left. Python
      drives the chain (LiteRT only).
    - the `.tflite` file `export_early_exit_file` writes: the file decides
      by itself (an `IF` per early exit), one sample per invocation, in
      LiteRT or in TensorFlow Lite Micro (`runtime="micro"`).

    Only the stages a sample needs are run, so the MACs reported per sample
    are really spent; `profile` measures the time.

    Args:
        folder: The folder `export_early_exit` wrote (with `chain.json`), or
            the path of a `.tflite` written by `export_early_exit_file`.
        threshold: Override of the exported thresholds: a float in [0, 1] or
            one per early exit. Default None (the exported ones). A single
            file accepts it only if exported with `threshold_input=True`.
        criterion: Override of the criterion, `"max_prob"` or `"entropy"`.
            Default None (the exported one; a single file has it built in).
        num_threads: LiteRT interpreter threads, default None.
        kernels: `"xnnpack"` (default), `"builtin"` or `"reference"`, as in
            `LiteRTModel`.
        runtime: `"litert"` (default) or `"micro"` (a single file only).

    Example:

    >>> runner = EarlyExitRunner("exits/")  # doctest: +SKIP
    >>> result = runner.predict(x_test)  # doctest: +SKIP
    >>> result.accuracy(y_test), result.mean_macs  # doctest: +SKIP
    >>> EarlyExitRunner("model.tflite").profile(x_test)["by_exit"]  # doctest: +SKIP
    """

    def __init__(self, folder, threshold=None, criterion=None, num_threads=None,
                 kernels="xnnpack", runtime="litert"):
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(
                "Expected `folder` to be a str or os.PathLike. Received: "
                f"folder of type {type(folder).__name__}"
            )
        folder = os.fspath(folder)
        self.folder = folder
        self._file = None
        if os.path.isfile(folder):
            self._file = SingleFile(folder, threshold, criterion, num_threads, kernels,
                                    runtime)
            self.chain = None
            self.criterion = self._file.criterion
            self.thresholds = self._file.thresholds
            self.cumulative_macs = self._file.cumulative_macs
            self.stages = []
            return
        if runtime != "litert":
            raise ValueError(
                "Expected runtime='litert' for a chain folder: TensorFlow Lite "
                "Micro runs the single file of export_early_exit_file. "
                f"Received: runtime={runtime!r}"
            )
        path = os.path.join(folder, _CHAIN_FILE)
        if not os.path.isfile(path):
            raise ValueError(
                f"Expected `folder` to hold {_CHAIN_FILE} (written by "
                "export_early_exit) or to be a .tflite written by "
                f"export_early_exit_file. Received: folder={folder!r}"
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
        return self._file.num_exits if self._file else len(self.stages)

    @property
    def size_bytes(self):
        """Size of the single file, or total size of the stage files, in
        bytes."""
        if self._file:
            return self._file.size_bytes
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
        if self._file:
            return self._file.predict(x)
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
        if self._file:
            result = self._file.predict(np.asarray(sample)[None])
            return int(result.predictions[0]), int(result.exits[0])
        x = np.asarray(sample)[None]
        criterion = self.criterion
        for j, (stage, exit_k, feature_k, is_probability) in enumerate(self._plan):
            if stage._in[0]["shape"][0] != 1:
                stage._resize(1)  # A dynamic-batch stage last ran a batch.
            interpreter = stage._interpreter
            interpreter.set_tensor(stage._in[0]["index"],
                                   _common.to_stored(x, stage.inputs[0]))
            stage._invoke()
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

    def profile(self, x, repeats=5):
        """Measured per-sample latency, split by the exit each sample took.

        Every sample is run alone (batch 1) `repeats` times after one
        untimed run, and its median time kept: for a single file, setting
        the input and one `invoke()` of the interpreter (the file decides
        by itself); for a chain, `predict_one` (the stage invocations and
        the Python that decides between them).

        Args:
            x: Input samples, an array.
            repeats: Timed runs per sample, default 5.

        Returns:
            A dict: `per_sample_ms` and `exits` (arrays, one per sample),
            `mean_ms` and `median_ms` over the samples, and `by_exit`, one
            dict per exit with `exit`, `samples`, `fraction`, `median_ms`
            and `mean_ms` (None where no sample left).
        """
        repeats = check_int("repeats", repeats, 1)
        x = np.asarray(x)
        if len(x) == 0:
            raise ValueError("Expected at least one sample. Received: 0 samples")
        if self._file:
            seconds, exits = self._file.timed_calls(x, repeats)
        else:
            seconds = np.zeros(len(x))
            exits = np.zeros(len(x), dtype=np.int64)
            for k, sample in enumerate(x):
                exits[k] = self.predict_one(sample)[1]
                times = _common.time_invocations(
                    lambda: self.predict_one(sample), repeats, 0)
                seconds[k] = np.median(times)
        ms = seconds * 1e3
        by_exit = []
        for j in range(self.num_exits):
            taken = ms[exits == j]
            by_exit.append({
                "exit": j,
                "samples": int(len(taken)),
                "fraction": float(len(taken) / len(ms)),
                "median_ms": float(np.median(taken)) if len(taken) else None,
                "mean_ms": float(np.mean(taken)) if len(taken) else None,
            })
        return {
            "per_sample_ms": ms,
            "exits": exits,
            "mean_ms": float(np.mean(ms)),
            "median_ms": float(np.median(ms)),
            "by_exit": by_exit,
        }

    def evaluate(self, x, y):
        """Top-1 accuracy of early-exit predictions on `(x, y)`."""
        return self.predict(x).accuracy(y)
