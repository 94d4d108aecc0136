"""Trains one compression tool for 2 epochs on the backend of this process.

Run as `KERAS_BACKEND=... python backend_child.py KINDS FOLDER
[SAVE.keras]`. KINDS is a comma-separated list of `pruning`,
`pruning_global`, `lottery`, `slimming`, `clustering`, `qat`,
`distiller`, `sandwich` and `multi_exit` (one process for all: a process start costs more than a
run). With `--data-parallel` (JAX), training runs under
`keras.distribution.DataParallel` on two CPU devices, and `copies_equal`
says, per variable, that both devices hold it and their copies agree. Each model starts from weights drawn with NumPy (the same on every
backend) and trains for 2 epochs on the first 256 digits (32 for QAT), in
batches of 32, without shuffling; its state (weights, masks, clusters,
quantizer ranges) goes to FOLDER/KIND.npz, with `error` set when the
backend refused the tool. With SAVE.keras, a QAT model trained on 256
digits is saved there, and its state and predictions on 16 digits go to
FOLDER/qat_saved.npz.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DATA_PARALLEL = "--data-parallel" in sys.argv
if DATA_PARALLEL:  # JAX: two CPU devices, set before JAX starts
    sys.argv.remove("--data-parallel")
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_compress.datasets import load_digits  # noqa: E402


def _cnn():
    return _numpy_weights(keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
        keras.layers.Flatten(), keras.layers.Dense(10, name="dense")]))


def _slimmable_cnn():
    from keras_compress import layers as kl

    widths = (0.25, 0.5, 0.75, 1.0)
    return _numpy_weights(keras.Sequential([
        keras.Input((8, 8, 1)),
        kl.SlimmableConv2D(8, 3, slim_input=False, width_multipliers=widths, name="conv"),
        kl.SwitchableBatchNormalization(width_multipliers=widths, name="bn"),
        keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(),
        kl.SlimmableDense(10, slim_output=False, width_multipliers=widths,
                          name="dense")]))


def _numpy_weights(model):
    """The same trainable weights on every backend, drawn with NumPy."""
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.trainable:
            v.assign(rng.normal(scale=0.3, size=v.shape).astype("float32"))
    return model


def _tool(kind, model):
    from keras_compress import callbacks as kc

    if kind in ("pruning", "pruning_global"):
        from keras_compress.pruning import PolynomialDecay

        scope = "global" if kind == "pruning_global" else "layer"
        # Late rewinding too: weights return to step 3 at the schedule's end.
        return model, [kc.MagnitudePruning(PolynomialDecay(0.0, 0.75, 0, 8, frequency=2),
                                           scope=scope, rewind_step=3)]
    if kind == "lottery":
        return model, [kc.LotteryTicket(epochs_per_round=1, rounds=1, rate=0.5)]
    if kind == "slimming":
        return model, [kc.NetworkSlimming(penalty=1e-2, proximal=True)]
    if kind == "clustering":
        return model, [kc.WeightClustering(clusters=8, seed=0)]
    if kind == "qat":
        from keras_compress.quantization import quantize_model

        return quantize_model(model), [kc.QATSchedule(quantize_start=0, freeze_ranges=1)]
    if kind == "sandwich":  # num_random=2 trains every width: no random draw
        from keras_compress.slimmable import SandwichModel

        return SandwichModel(_slimmable_cnn(), num_random=2), []
    if kind == "multi_exit":
        from keras_compress.early_exit import MultiExitTrainer
        from keras_compress.early_exit import add_early_exits

        exits = _numpy_weights(add_early_exits(model, ["conv"], head={"grid": 2}))
        return MultiExitTrainer(exits, distillation={"temperature": 2.0, "alpha": 0.5}), []
    from keras_compress.distillation import Distiller

    return Distiller(model, _cnn(), temperature=2.0, alpha=0.5), []


# QAT is compared after two steps (see test_backends.py).
SAMPLES = {"qat": 32}


def train(kind, out, save=None):
    """Trains `kind` and writes its state (and, with `save`, the model and
    its predictions) to `out`."""
    keras.utils.clear_session()  # (which also clears the distribution)
    if DATA_PARALLEL:
        import jax

        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices()))
    samples = SAMPLES.get(kind, 256) if save is None else 256
    (x, y), _ = load_digits()
    x, y = x[:samples], y[:samples]
    model, callbacks = _tool(kind, _cnn())
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    try:
        model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0,
                  callbacks=callbacks)
    except ValueError as e:
        np.savez(out, error=np.array(str(e)))
        return
    # (Random-number state aside: each backend draws its own numbers.)
    state = {v.path: np.asarray(keras.ops.convert_to_numpy(v)) for v in model.variables
             if "optimizer" not in v.path and "seed_generator" not in v.path}
    if DATA_PARALLEL:  # every variable on both devices, with equal copies
        state["copies_equal"] = np.array([
            len(v.value.sharding.device_set) == 2 and all(
                np.array_equal(s.data, v.value.addressable_shards[0].data)
                for s in v.value.addressable_shards)
            for v in model.variables])
    if save is not None:
        model.save(save)
        state["predictions"] = keras.ops.convert_to_numpy(model.predict(x[:16], verbose=0))
    np.savez(out, **state)


def main():
    kinds, folder = sys.argv[1].split(","), sys.argv[2]
    for kind in kinds:
        train(kind, os.path.join(folder, f"{kind}.npz"))
    if len(sys.argv) > 3:  # also a QAT model, saved
        train("qat", os.path.join(folder, "qat_saved.npz"), save=sys.argv[3])


if __name__ == "__main__":
    main()
