"""Trains with BackupAndRestore, printing each finished epoch
(tests/test_kill_resume.py kills it mid-epoch and starts it again).

Run as `python resume_child.py KIND BACKUP_DIR OUT.npz`: KIND is `qat`
(quantize_model + QATSchedule with range and batch-norm switches),
`distiller` (a Distiller of a student from a teacher), `pruning`
(MagnitudePruning), `lottery` (LotteryTicket, a round ending mid-run),
`slimming` (NetworkSlimming, proximal) or `clustering`
(WeightClustering). At the end, every
variable of the trained model goes to OUT.npz. BackupAndRestore comes
after the compression callbacks. `qat_backup_first` lists it first
(QATSchedule must then not move its switches by the restored steps), and
so does `lottery_backup_first` (its backup holds a round's weights before
the pruning, which must then happen when the run resumes). With
`--mirrored`, the model is built and trained under
`tf.distribute.MirroredStrategy` on two logical CPUs.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
MIRRORED = "--mirrored" in sys.argv
if MIRRORED:
    sys.argv.remove("--mirrored")
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * 2)

import contextlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_compress.datasets import load_digits  # noqa: E402

EPOCHS = 4
BATCH = 32


def _cnn(seed, width=8):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(width, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
        keras.layers.Flatten(), keras.layers.Dense(10, name="dense")])


def build(kind):
    from keras_compress.callbacks import QATSchedule

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if kind == "qat":
        from keras_compress.quantization import quantize_model

        model = quantize_model(_cnn(0))
        model.compile(keras.optimizers.Adam(1e-3), loss)
        # Switches flip inside the run: batch norm frozen from epoch 2,
        # ranges from epoch 3.
        return model, [QATSchedule(quantize_start=0, freeze_batchnorm=2, freeze_ranges=3)]
    if kind in ("pruning", "lottery", "slimming", "clustering"):
        from keras_compress import callbacks as kc

        model = _cnn(0)
        model.compile(keras.optimizers.Adam(1e-3), loss)
        if kind == "pruning":
            from keras_compress.pruning import PolynomialDecay

            return model, [kc.MagnitudePruning(PolynomialDecay(0.0, 0.8, 0, 80, frequency=5))]
        if kind == "lottery":  # a round ends at epoch 2: pruning and rewinding
            return model, [kc.LotteryTicket(epochs_per_round=2, rounds=1, rate=0.5)]
        if kind == "slimming":
            return model, [kc.NetworkSlimming(penalty=1e-3, proximal=True)]
        return model, [kc.WeightClustering(clusters=8)]
    from keras_compress.distillation import Distiller

    teacher = _cnn(1, width=16)
    model = Distiller(_cnn(2), teacher, temperature=2.0, alpha=0.5)
    model.compile(keras.optimizers.Adam(1e-3), loss)
    return model, []


class Announce(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch} done", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.02)  # room for a kill mid-epoch


def main():
    kind, backup, out = sys.argv[1:4]
    (x, y), _ = load_digits()
    x, y = x[:640], y[:640]
    backup_first = kind.endswith("_backup_first")
    scope = (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope() if MIRRORED
             else contextlib.nullcontext())
    with scope:
        model, callbacks = build(kind.replace("_backup_first", ""))
    restore = [keras.callbacks.BackupAndRestore(backup)]
    order = restore + callbacks if backup_first else callbacks + restore
    keras.utils.set_random_seed(3)
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0,
              callbacks=order + [Announce()])
    np.savez(out, **{f"{k}_{v.path}": np.asarray(v) for k, v in enumerate(model.variables)})
    print("finished", flush=True)


if __name__ == "__main__":
    main()
