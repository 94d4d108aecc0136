"""Lottery tickets: iterative magnitude pruning with rewinding, on an MLP.

`keras_compress.callbacks.LotteryTicket` trains an MLP in rounds; after each
round it prunes --rate of the weights still alive (per layer, by magnitude)
and rewinds the survivors to their initial values. The mask of every round
is kept (`keras_compress.pruning.get_masks`), then each mask is retrained
from scratch twice for --epochs: as a winning ticket (the original
initialization, `set_masks`) and as a random re-initialization of the same
sparse architecture (Frankle & Carbin, ICLR 2019). Test accuracy is Keras's;
the sparsest ticket is also exported with `sparse=True` and run in LiteRT.

    python examples/lottery_ticket.py
    python examples/lottery_ticket.py --rounds 10 --round_epochs 20 --epochs 60

Prints a table (round, weights left, ticket and random re-init test
accuracy) and the exported ticket's size and LiteRT accuracy; writes to
--out (default /tmp/lottery_ticket): masks.npz (the masks of every round,
keys "round<r>/<layer>/<weight>"), ticket.tflite, lottery_ticket.png
(accuracy vs weights left) and results.json.

Measured with the defaults (MNIST-1D, MLP 40-100-100-10, 8 rounds of 10
epochs, retraining 30 epochs; 62 s on 2 shared, busy cores):

    round  weights left  ticket accuracy  random re-init accuracy
    -----  ------------  ---------------  -----------------------
    0            100.0%            58.9%                    60.6%
    1             80.0%            58.1%                    60.8%
    2             64.0%            58.5%                    58.2%
    3             51.2%            58.4%                    56.6%
    4             41.0%            58.8%                    52.7%
    5             32.8%            58.3%                    51.8%
    6             26.2%            58.4%                    49.0%
    7             21.0%            58.3%                    49.7%
    8             16.8%            55.4%                    48.0%

    Sparsest ticket as ticket.tflite (sparse=True): 17,548 bytes, LiteRT accuracy 55.4%

The tickets keep the dense network's accuracy down to ~20% of the weights;
the same masks from a random initialization lose 10 points.
"""

import os

import _common
import numpy as np
from absl import app, flags, logging

_common.define_flags(epochs=30, out="/tmp/lottery_ticket", dataset="mnist1d")
flags.DEFINE_integer("rounds", 8, "Pruning rounds.", lower_bound=1)
flags.DEFINE_integer("round_epochs", 10, "Epochs per round of the search.",
                     lower_bound=1)
flags.DEFINE_float("rate", 0.2, "Share of the remaining weights pruned per round.")
FLAGS = flags.FLAGS
BATCH = 100


def build_mlp(input_shape, classes, seed):
    import keras

    keras.utils.set_random_seed(seed)  # the initialization
    return keras.Sequential([
        keras.Input(input_shape), keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(100, activation="relu", name="fc1"),
        keras.layers.Dense(100, activation="relu", name="fc2"),
        keras.layers.Dense(classes, name="out"),
    ], name="mlp")


def train(model, x, y, epochs, seed, callbacks=()):
    import keras

    steps = -(-len(x) // BATCH)
    model.compile(keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps)  # one compiled call per epoch
    keras.utils.set_random_seed(seed)  # the same batches for every run
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0,
              callbacks=list(callbacks))
    return model


def accuracy(model, x, y):
    # A plain call: `predict` would trace a new function for every model.
    return float((np.argmax(model(x, training=False), axis=-1) == y).mean())


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # no TensorFlow INFO lines
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import keras_compress as kc
    from keras_compress.callbacks import LotteryTicket
    from keras_compress.pruning import get_masks, set_masks, strip_pruning

    out, seed = _common.output_dir(FLAGS.out), FLAGS.seed
    (x, y), (xt, yt) = _common.load_data(
        FLAGS.dataset, FLAGS.train_samples, FLAGS.test_samples)
    shape, classes = x.shape[1:], int(y.max()) + 1
    theta0 = build_mlp(shape, classes, seed).get_weights()

    # The search: rounds + 1 rounds of training, a pruning after each of the
    # first `rounds`. A callback after LotteryTicket sees each new mask.
    masks = {0: None}

    class KeepMasks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            r, rest = divmod(epoch + 1, FLAGS.round_epochs)
            if rest == 0 and r <= FLAGS.rounds:
                masks[r] = get_masks(self.model)

    model = build_mlp(shape, classes, seed)
    model.set_weights(theta0)
    ticket = LotteryTicket(FLAGS.round_epochs, FLAGS.rounds, rate=FLAGS.rate)
    train(model, x, y, FLAGS.round_epochs * (FLAGS.rounds + 1), seed,
          [ticket, KeepMasks()])

    # Retrain every mask: from theta_0 (the ticket) and from a new init.
    rows = []
    for r in range(FLAGS.rounds + 1):
        winning = build_mlp(shape, classes, seed)
        winning.set_weights(theta0)
        rand = build_mlp(shape, classes, seed + 1000 + r)
        if masks[r] is not None:
            set_masks(winning, masks[r])
            set_masks(rand, masks[r])
        left = 1.0 if masks[r] is None else (
            sum(int(m.sum()) for m in masks[r].values())
            / sum(m.size for m in masks[r].values()))
        rows.append({
            "round": r, "weights_left": left,
            "ticket": accuracy(train(winning, x, y, FLAGS.epochs, seed), xt, yt),
            "random": accuracy(train(rand, x, y, FLAGS.epochs, seed), xt, yt),
        })
    print(_common.table(rows, [
        ("round", "round", "d"), ("weights_left", "weights left", ".1%"),
        ("ticket", "ticket accuracy", ".1%"),
        ("random", "random re-init accuracy", ".1%")]))

    np.savez_compressed(os.path.join(out, "masks.npz"), **{
        f"round{r}/{key}": m.astype(bool)
        for r in masks if masks[r] for key, m in masks[r].items()})
    tflite = os.path.join(out, "ticket.tflite")
    kc.export.to_tflite(strip_pruning(winning), tflite, sparse=True)
    exported = {"file": "ticket.tflite", "bytes": os.path.getsize(tflite),
                "accuracy": _common.accuracy(kc.runtime.LiteRTModel(tflite), xt, yt)}
    print(f"\nSparsest ticket as {exported['file']} (sparse=True): "
          f"{exported['bytes']:,} bytes, LiteRT accuracy {exported['accuracy']:.1%}")

    fig, ax = plt.subplots(figsize=(6, 4))
    left = [100 * row["weights_left"] for row in rows]
    ax.plot(left, [100 * row["ticket"] for row in rows], "o-", label="winning ticket")
    ax.plot(left, [100 * row["random"] for row in rows], "s--", label="random re-init")
    ax.set_xscale("log")  # rounds evenly spaced
    ax.set_xticks(left, [f"{v:.0f}" for v in left])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("weights left (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Lottery tickets, {FLAGS.dataset} MLP")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "lottery_ticket.png"), dpi=100)
    _common.write_results(out, "results", {
        "dataset": FLAGS.dataset, "rounds": FLAGS.rounds, "rate": FLAGS.rate,
        "round_epochs": FLAGS.round_epochs, "epochs": FLAGS.epochs, "rows": rows,
        "exported_ticket": exported, "masks": "masks.npz", "plot": "lottery_ticket.png",
    })


if __name__ == "__main__":
    app.run(main)
