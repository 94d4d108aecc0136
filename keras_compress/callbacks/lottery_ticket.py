"""`LotteryTicket`: iterative magnitude pruning with weight rewinding."""

from keras import ops

from keras_compress._checks import check_int
from keras_compress._checks import check_number
from keras_compress.callbacks._masking import PruningCallback


class LotteryTicket(PruningCallback):
    """Finds a winning lottery ticket by iterative magnitude pruning.

    Training runs in rounds of `epochs_per_round` epochs. At the end of
    each of the first `rounds` rounds, `rate` of the weights still alive
    are pruned by magnitude (per layer or over the whole network) and the
    survivors are reset ("rewound") to their values after `rewind_step`
    steps (0: the initialization), with the mask kept. The round after the
    last pruning trains the final ticket, so call `fit` with
    `epochs=epochs_per_round * (rounds + 1)`. After round `r` the sparsity
    is `1 - (1 - rate) ** r`: with `rate=0.2`, 7 rounds leave 21% of the
    weights.

    Only the pruned weights (kernels) are rewound; biases and normalization
    parameters keep training. Pruning and rewinding happen in this
    callback's `on_epoch_end`: callbacks listed before it see the trained
    weights of a round, callbacks after it the rewound ones. Masks, the
    rewind snapshot and the round (derived from the epoch) are saved with
    the model, so the search resumes under
    `keras.callbacks.BackupAndRestore`, listed before or after this
    callback: if the restored masks are not yet at the sparsity of the
    round that ended (the backup was taken before the pruning), the pruning
    and rewinding happen at the start of the next epoch instead.

    Args:
        epochs_per_round: epochs trained between two prunings.
        rounds: number of pruning rounds.
        rate: fraction of the remaining weights pruned each round, in
            (0, 1). Defaults to 0.2 (Frankle & Carbin).
        rewind_step: step whose weights the survivors return to; 0
            (default) is the original initialization, a few hundred steps
            in is "late rewinding", which works better for deep networks.
        scope: `"layer"` (default): each layer loses `rate` of its weights;
            `"global"`: one threshold over all selected weights.
        layers: which layers to prune, as in `MagnitudePruning`.
        skip_first: leave the first prunable layer dense.
        skip_last: leave the last prunable layer dense.
        reset_optimizer: at each rewind, restart the optimizer as it was
            at `rewind_step`: its step count (`iterations`, which
            learning-rate schedules and Adam's bias correction read) is set
            to `rewind_step` and its slot variables (momenta) are zeroed.
            With `rewind_step=0` this is a fresh optimizer. Defaults to True.
        log_sparsity: add `sparsity` and `sparsity/<layer>` to the epoch
            logs. Defaults to True.

    Example:

    ```python
    ticket = keras_compress.callbacks.LotteryTicket(
        epochs_per_round=5, rounds=7)
    model.fit(x, y, epochs=5 * 8, callbacks=[ticket])
    ```

    Reference:
        Frankle & Carbin, "The Lottery Ticket Hypothesis: Finding Sparse,
        Trainable Neural Networks", ICLR 2019; Frankle et al., "Linear Mode
        Connectivity and the Lottery Ticket Hypothesis", ICML 2020.
    """

    def __init__(
        self,
        epochs_per_round,
        rounds,
        rate=0.2,
        rewind_step=0,
        scope="layer",
        layers=None,
        skip_first=False,
        skip_last=False,
        reset_optimizer=True,
        log_sparsity=True,
    ):
        epochs_per_round = check_int("epochs_per_round", epochs_per_round, 1)
        rounds = check_int("rounds", rounds, 1)
        check_number("rate", rate, "a number in (0, 1)", lambda v: 0 < v < 1)
        if rewind_step is None:
            raise ValueError(
                "Expected `rewind_step` to be an integer >= 0. "
                "Received: rewind_step=None"
            )
        super().__init__("unstructured", scope, layers, skip_first, skip_last,
                         rewind_step, log_sparsity)
        self.epochs_per_round = epochs_per_round
        self.rounds = rounds
        self.rate = float(rate)
        self.reset_optimizer = reset_optimizer

    def round_sparsity(self, round_index):
        """Sparsity after `round_index` prunings: `1 - (1 - rate) ** r`."""
        return 1.0 - (1.0 - self.rate) ** min(round_index, self.rounds)

    def _hook(self, item, pm, w):
        # Masks change between rounds, in Python; in the train step the
        # constraint only records the weights at `rewind_step`.
        self._capture_snapshot(pm, w, self._step())
        return w, pm.mask

    def on_epoch_begin(self, epoch, logs=None):
        # A run resumed from a backup taken between the end of a round and
        # its pruning: prune now, as the uninterrupted run did.
        round_index = epoch // self.epochs_per_round
        if epoch % self.epochs_per_round or not 0 < round_index <= self.rounds:
            return
        halfway = (self.round_sparsity(round_index - 1)
                   + self.round_sparsity(round_index)) / 2
        if self.sparsity_logs()["sparsity"] < halfway:
            self._prune_and_rewind(self.round_sparsity(round_index))

    def on_epoch_end(self, epoch, logs=None):
        finished = epoch + 1
        if finished % self.epochs_per_round == 0:
            round_index = finished // self.epochs_per_round
            if round_index <= self.rounds:
                self._prune_and_rewind(self.round_sparsity(round_index))
        super().on_epoch_end(epoch, logs)

    def _prune_and_rewind(self, sparsity):
        if self.model.optimizer.iterations < self.rewind_step:
            raise ValueError(
                f"Expected the first round to train past `rewind_step`. "
                f"Received: rewind_step={self.rewind_step}, but only "
                f"{int(self.model.optimizer.iterations)} steps were taken"
            )
        threshold = (self._threshold_value(sparsity)
                     if self.scope == "global" else None)
        new_masks = [
            self._new_mask(item, pm, ops.convert_to_tensor(item.variable),
                           sparsity, threshold)
            for item, pm in zip(self.items, self.masks)
        ]
        for item, pm, mask in zip(self.items, self.masks, new_masks):
            mask = ops.cast(mask, item.variable.dtype)
            pm.mask.assign(mask)
            item.variable.assign(ops.cast(pm.snapshot, item.variable.dtype) * mask)
        if self.reset_optimizer:
            optimizer = self.model.optimizer
            for variable in optimizer.variables:
                if variable is optimizer.iterations:
                    # Steps after this one are > rewind_step, so the
                    # snapshot is not taken again.
                    variable.assign(self.rewind_step)
                elif "learning_rate" not in variable.name:
                    variable.assign(ops.zeros(variable.shape, variable.dtype))
