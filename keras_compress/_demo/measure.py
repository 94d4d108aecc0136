"""Running a demo artifact in its runtime: accuracy, size and latency."""

import os
import time

import numpy as np


def tflite_row(model, artifact, file, mode, calibration, out_dir, x_test,
               y_test, sparse=False):
    """Exports `model` to `out_dir/file`, runs it in LiteRT, returns the row."""
    from keras_compress import export
    from keras_compress.runtime import LiteRTModel

    data = export.to_tflite(
        model, os.path.join(out_dir, file), quantize=mode, sparse=sparse,
        representative_data=calibration if mode == "int8" else None,
        batch_size=1,
    )
    # XNNPACK cannot prepare sparse int8 FULLY_CONNECTED weights.
    builtin = sparse and mode == "int8"
    runner = LiteRTModel(data, num_threads=1,
                         kernels="builtin" if builtin else "xnnpack")
    return {
        "artifact": artifact,
        "runtime": "LiteRT builtin" if builtin else "LiteRT+XNNPACK",
        "accuracy": runner.evaluate(x_test, y_test),
        "size_bytes": len(data),
        "latency_ms": median_latency(runner),
        "arena_bytes": None, "file": file,
    }


def median_latency(runner, repeats=3):
    """Median LiteRT latency in ms, the median of `repeats` benchmarks."""
    return float(np.median([
        runner.benchmark(num_runs=200, warmup=20)["median_ms"] for _ in range(repeats)
    ]))


def micro_latency(micro, x):
    """Median TFLite Micro latency in ms over the samples of `x`."""
    times = []
    for sample in x:
        start = time.perf_counter()
        micro.predict(sample[None])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)
