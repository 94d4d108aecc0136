"""The single-file early-exit model behind `EarlyExitRunner(path)`."""

import numpy as np

from keras_compress import _exit_file
from keras_compress import _exit_rule
from keras_compress import _tflite
from keras_compress.early_exit.result import EarlyExitResult
from keras_compress.runtime import _common

RUNTIMES = ("litert", "micro")


class SingleFile:
    """Runs an `export_early_exit_file` model one sample per invocation.

    The file decides by itself; this class feeds it (with the threshold
    input when the file has one) and reads the exit taken.
    """

    def __init__(self, path, threshold, criterion, num_threads, kernels, runtime):
        data, flatbuffer = _tflite.load_model_bytes(path, "folder")
        info = _exit_file.read_metadata(flatbuffer)
        if info is None:
            raise ValueError(
                "Expected `folder` to be a folder written by export_early_exit "
                "or a .tflite written by export_early_exit_file (with its "
                f"early-exit metadata). Received: folder={path!r} (a .tflite "
                "without it)"
            )
        self.info = info
        self.num_exits = int(info["num_exits"])
        self.num_classes = int(info["num_classes"])
        self.cumulative_macs = [int(m) for m in info["cumulative_macs"]]
        self.threshold_input = bool(info.get("threshold_input"))
        if criterion is not None and criterion != info["criterion"]:
            raise ValueError(
                "Expected `criterion` to be None or the file's criterion "
                f"{info['criterion']!r}: a single file has it built in. "
                f"Received: criterion={criterion!r}"
            )
        self.criterion = info["criterion"]
        if threshold is not None and not self.threshold_input:
            raise ValueError(
                "Expected `threshold=None`: this file has its thresholds "
                f"({info['threshold']}) built in; export it with "
                "threshold_input=True to choose them at run time. Received: "
                f"threshold={threshold!r}"
            )
        self.thresholds = _exit_rule.check_thresholds(
            info["threshold"] if threshold is None else threshold,
            self.num_exits - 1, self.criterion)
        self.runtime = _check_runtime(runtime)
        if runtime == "litert":
            from keras_compress.runtime.litert import LiteRTModel

            self.model = LiteRTModel(data, num_threads=num_threads, kernels=kernels)
        else:
            from keras_compress.runtime.micro import MicroModel

            self.model = MicroModel(data)
        self.size_bytes = len(data)

    def _feeds(self, x):
        x = np.asarray(x)
        inputs = [x]
        if self.threshold_input:
            inputs.append(np.tile(np.asarray(self.thresholds, np.float32), (len(x), 1)))
        return inputs

    def predict(self, x):
        probabilities, exits, predictions = self.model.predict(self._feeds(x))
        probabilities = np.asarray(probabilities, dtype=np.float64)
        exits = np.asarray(exits).reshape(-1).astype(np.int64)
        return EarlyExitResult(
            predictions=np.asarray(predictions).reshape(-1).astype(np.int64),
            exits=exits,
            macs=np.asarray(self.cumulative_macs, dtype=np.int64)[exits],
            confidences=_exit_rule.confidence(probabilities, self.criterion),
            probabilities=probabilities,
        )

    def timed_calls(self, x, repeats):
        """`(seconds, exits)`: per sample, the median time of `repeats`
        calls (set the input, invoke), and the exit it took."""
        feeds = self._feeds(x)
        model = self.model
        if self.runtime == "litert":
            interpreter = model._interpreter
            if model._in[0]["shape"][0] != 1:
                model._resize(1)
            indices = [d["index"] for d in model._in]

            def set_inputs(values):
                for index, value, info in zip(indices, values, model.inputs):
                    interpreter.set_tensor(index, _common.to_stored(value, info))

            def exit_taken():
                return interpreter.get_tensor(model._out[1]["index"])
        else:
            interpreter = model._interpreter

            def set_inputs(values):
                for i, (value, info) in enumerate(zip(values, model.inputs)):
                    interpreter.set_input(_common.to_stored(value, info), i)

            def exit_taken():
                return interpreter.get_output(1)

        times = np.zeros(len(feeds[0]))
        exits = np.zeros(len(feeds[0]), dtype=np.int64)
        for k in range(len(feeds[0])):
            values = [f[k : k + 1] for f in feeds]

            # TFLite Micro may reuse the input's memory during a call: the
            # input is set again before every invocation (in both runtimes,
            # so they are timed alike).
            def call():
                set_inputs(values)
                interpreter.invoke()

            call()  # untimed: caches warm for this sample
            exits[k] = int(np.asarray(exit_taken()).reshape(-1)[0])
            times[k] = np.median(_common.time_invocations(call, repeats, 0))
        return times, exits


def _check_runtime(runtime):
    if runtime not in RUNTIMES:
        raise ValueError(
            f"Expected `runtime` to be one of {list(RUNTIMES)}. Received: "
            f"runtime={runtime!r}"
        )
    return runtime
