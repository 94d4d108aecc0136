"""Run an exported artifact next to the Keras model before anything is written."""

import numpy as np


def random_inputs(specs, count=4, seed=0):
    """Uniform [0, 1) inputs for `specs`, `count` samples (or the fixed batch)."""
    rng = np.random.default_rng(seed)
    inputs = [
        rng.uniform(0, 1, (spec.shape[0] or count,) + tuple(spec.shape[1:]))
        .astype(spec.dtype.as_numpy_dtype)
        for spec in specs
    ]
    return inputs[0] if len(inputs) == 1 else inputs


def check_outputs(runner, model, feed, artifact, tolerance=None):
    """Raises `RuntimeError` unless `runner` computes what `model` computes.

    Args:
        runner: A runtime wrapper with `predict(feed)`.
        model: The Keras model.
        feed: Inputs for both.
        artifact: What was exported, for the message (e.g. "float32 TFLite").
        tolerance: Largest allowed absolute difference, relative to the
            output scale `max(1, max|keras|)`; None checks only shapes and
            finiteness (quantized exports).
    """
    import keras

    got = runner.predict(feed)
    got = got if isinstance(got, list) else [got]
    # The exported file lists a dict's outputs by sorted key, as flatten does.
    want = keras.tree.flatten(model.predict(feed, verbose=0))
    compare(got, want, f"The {artifact} export", tolerance)


def compare(got, want, what, tolerance=None):
    """Raises `RuntimeError` unless the arrays `got` match `want`.

    Args:
        got: The runtime's outputs (a list of arrays).
        want: Keras's outputs, in the same order.
        what: The subject of the messages (e.g. "The ONNX export").
        tolerance: As in `check_outputs`; None checks shapes and finiteness.
    """
    if len(got) != len(want):
        raise RuntimeError(
            f"{what} did not run like the Keras model: expected "
            f"{len(want)} output(s). Received: {len(got)}"
        )
    for k, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        finite = bool(np.all(np.isfinite(g)))
        output = f" output {k}" if len(want) > 1 else ""
        if g.shape != w.shape or not finite:
            raise RuntimeError(
                f"{what} did not run like the Keras model: expected finite"
                f"{output or ' outputs'} of shape {w.shape}. Received: shape "
                f"{g.shape}, finite={finite}"
            )
        if tolerance is None:
            continue
        limit = tolerance * max(1.0, float(np.max(np.abs(w), initial=0.0)))
        err = float(np.max(np.abs(g - w), initial=0.0))
        if err > limit:
            raise RuntimeError(
                f"{what} does not match Keras{output and ' on' + output}: "
                f"expected a max abs difference <= {limit:.3g}. Received: "
                f"{err:.3g}"
            )
