"""What every example shares: flags, data, a results table, result files.

Each example is a script (`python examples/<name>.py --help`). They import
this module as `_common` (the examples folder is the script's folder, so it
is on `sys.path`).

Flags every example gets from `define_flags`:

    --dataset   digits (default) or mnist1d: offline, real data; mnist or
                cifar10: `keras.datasets`, downloaded (needs the internet)
    --epochs    training epochs of the main model
    --out       output folder (created; its parent must exist)
    --train_samples / --test_samples   use only the first N samples (tiny
                runs and tests); 0 = all
    --seed      random seed
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

import numpy as np  # noqa: E402

DATASETS = ("digits", "mnist1d", "mnist", "cifar10")


def define_flags(epochs, out, dataset="digits", datasets=DATASETS):
    """Defines the shared flags with this example's defaults."""
    flags.DEFINE_enum("dataset", dataset, list(datasets),
                      "digits and mnist1d are offline; mnist and cifar10 are "
                      "downloaded by keras.datasets (needs the internet).")
    flags.DEFINE_integer("epochs", epochs, "Training epochs of the main model.",
                         lower_bound=1)
    flags.DEFINE_string("out", out, "Output folder (created if missing).")
    flags.DEFINE_integer("train_samples", 0,
                         "Use only the first N training samples (0 = all).",
                         lower_bound=0)
    flags.DEFINE_integer("test_samples", 0,
                         "Use only the first N test samples (0 = all).",
                         lower_bound=0)
    flags.DEFINE_integer("seed", 0, "Random seed.")


def load_data(name, train_samples=0, test_samples=0):
    """`(x_train, y_train), (x_test, y_test)`: float32 inputs, int labels.

    Images are NHWC with a channel axis, pixels in [0, 1]; MNIST-1D is
    `(n, 40, 1)`, values of about -5 to 5.
    """
    if name == "digits":
        from keras_compress.datasets import load_digits

        (x, y), (xt, yt) = load_digits()
    elif name == "mnist1d":
        from keras_compress.datasets import load_mnist1d

        (x, y), (xt, yt) = load_mnist1d()
    elif name in ("mnist", "cifar10"):
        import keras

        loader = getattr(keras.datasets, name)
        try:
            (x, y), (xt, yt) = loader.load_data()
        except Exception as e:  # urllib, ssl, OSError...: no network
            raise SystemExit(
                f"--dataset={name} downloads its data with keras.datasets, "
                f"which failed ({type(e).__name__}: {e}). Use --dataset=digits "
                "or --dataset=mnist1d offline."
            ) from e
        x, xt = (a.astype("float32") / 255.0 for a in (x, xt))
        if x.ndim == 3:
            x, xt = x[..., None], xt[..., None]
        y, yt = (np.asarray(a).reshape(-1).astype("int32") for a in (y, yt))
    else:
        raise ValueError(f"Expected dataset in {list(DATASETS)}. Received: {name!r}")
    if train_samples:
        x, y = x[:train_samples], y[:train_samples]
    if test_samples:
        xt, yt = xt[:test_samples], yt[:test_samples]
    return (x, y), (xt, yt)


def output_dir(path):
    """Creates the output folder (its parent must exist) and returns it."""
    from keras_compress import _io

    path = _io.check_output_dir(path, "--out")
    os.makedirs(path, exist_ok=True)
    return path


def table(rows, columns):
    """A plain-text table of `rows` (dicts) with `columns` (key, title, fmt).

    `fmt` is a format spec such as ",d" or ".1%", or None for `str`.
    """
    def cell(row, key, fmt):
        value = row.get(key)
        if value is None:
            return "-"
        return format(value, fmt) if fmt else str(value)

    cells = [[cell(r, k, f) for k, _, f in columns] for r in rows]
    titles = [t for _, t, _ in columns]
    widths = [max(len(t), *(len(c[i]) for c in cells)) for i, t in enumerate(titles)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths)),
             "  ".join("-" * w for w in widths)]
    for c in cells:
        lines.append("  ".join(
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))
        ))
    return "\n".join(lines)


def write_results(out, name, results):
    """Writes `results` as `<out>/<name>.json` atomically; returns the path."""
    from keras_compress import _io

    path = os.path.join(out, f"{name}.json")
    _io.write_atomic(path, json.dumps(results, indent=2, default=_plain) + "\n")
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def accuracy(model, x, y):
    """Top-1 accuracy of a Keras model, or of an exported runtime model."""
    predictions = model.predict(x, verbose=0) if _is_keras(model) else model.predict(x)
    return float((np.asarray(predictions).argmax(axis=-1) == y).mean())


def latency_us(tflite, runs=200, repeats=3):
    """Median LiteRT (XNNPACK, 1 thread) latency at batch 1, microseconds."""
    from keras_compress.runtime import LiteRTModel

    runner = LiteRTModel(tflite, num_threads=1)
    return 1e3 * float(np.median([
        runner.benchmark(num_runs=runs, warmup=20)["median_ms"] for _ in range(repeats)
    ]))


def macs(model):
    """Exact multiply-accumulates per sample (`keras_compress.analysis`)."""
    from keras_compress.analysis import summarize

    return int(summarize(model).totals.macs)


def _is_keras(model):
    import keras

    return isinstance(model, keras.Model)
