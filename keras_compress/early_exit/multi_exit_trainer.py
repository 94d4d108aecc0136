"""`MultiExitTrainer`: fits a multi-exit model on its weighted exit losses."""

import keras

from keras_compress.early_exit import _graph
from keras_compress.early_exit import training


@keras.saving.register_keras_serializable(package="keras_compress")
class MultiExitTrainer(keras.Model):
    """Trains every exit of a multi-exit model at once.

    A wrapper model in the spirit of `keras.distillation.Distiller`: calling
    it runs the wrapped model, and its loss is `multi_exit_loss` (the
    weighted sum of every exit's cross-entropy, optionally with
    distillation from the final exit to the early ones). The wrapped
    model's weights are trained in place; save and export the wrapped
    model, a plain Functional model. Labels are one per sample (integers or
    one-hot), not one per exit. `compile_multi_exit` builds and compiles
    one.

    Args:
        model: A multi-exit model (see `add_early_exits`).
        exit_weights: One non-negative weight per exit, the final last.
            Default None (1.0 each).
        distillation: None (default) or `{"temperature": T, "alpha": a}`
            with `T > 0` and `a` in [0, 1].
        from_logits: Whether the outputs are logits. Default None (read
            from the model).
        **kwargs: Base model arguments (`name`).

    Example:

    >>> trainer = MultiExitTrainer(model, distillation={"temperature": 3.0,
    ...                                                 "alpha": 0.5})  # doctest: +SKIP
    >>> trainer.compile(optimizer="adam")  # doctest: +SKIP
    >>> trainer.fit(x_train, y_train, epochs=5)  # doctest: +SKIP

    Reference:
        Teerapittayanon et al., "BranchyNet", ICPR 2016 (weighted sum of
        exit losses); Phuong and Lampert, "Distillation-Based Training for
        Multi-Exit Architectures", ICCV 2019; Hinton et al., "Distilling
        the Knowledge in a Neural Network", 2015 (temperature, T^2).
    """

    def __init__(self, model, exit_weights=None, distillation=None,
                 from_logits=None, **kwargs):
        super().__init__(**kwargs)
        exits = _graph.Exits(model)
        self.multi_exit_model = model
        self.exit_weights = training.check_exit_weights(exit_weights, exits.num_exits)
        self.distillation = training.check_distillation(distillation)
        self.from_logits = from_logits
        self._probabilities = _graph.output_kinds(exits, from_logits)
        self._num_classes = exits.num_classes
        names = [f"exit_{j}" for j in range(exits.num_exits - 1)] + ["final"]
        self.exit_accuracies = [
            keras.metrics.CategoricalAccuracy(name=f"{n}_accuracy") for n in names
        ]

    def call(self, inputs, training=None):
        return self.multi_exit_model(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        loss = self.exit_loss(y, y_pred, sample_weight)
        for extra in self.losses:  # Regularizers of the wrapped model.
            loss = loss + keras.ops.cast(extra, loss.dtype)
        return loss

    def exit_loss(self, y, y_pred, sample_weight=None):
        """`multi_exit_loss` of this trainer's settings (no regularizers)."""
        return training.multi_exit_loss(
            y, list(y_pred), self.exit_weights, self._probabilities,
            self.distillation, sample_weight,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        one_hot = self._one_hot(y)
        for metric, out in zip(self.exit_accuracies, y_pred):
            metric.update_state(one_hot, out, sample_weight=sample_weight)
        return self.get_metrics_result()

    def _one_hot(self, y):
        ops = keras.ops
        y = ops.convert_to_tensor(y)
        if len(y.shape) == 2 and y.shape[-1] == self._num_classes:
            return y
        return ops.one_hot(ops.cast(ops.reshape(y, (-1,)), "int32"), self._num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.multi_exit_model),
            "exit_weights": list(self.exit_weights),
            "distillation": None if self.distillation is None else dict(self.distillation),
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def compile_multi_exit(model, optimizer="adam", exit_weights=None,
                       distillation=None, from_logits=None, **compile_kwargs):
    """Prepares a multi-exit model for `fit` on the weighted exit losses.

    Returns a compiled `MultiExitTrainer` around `model`: `fit` it on
    `(x, y)` with one label per sample; it trains `model`'s own weights
    (shared, not copied), so save and export `model` afterwards. The loss is
    `multi_exit_loss` (the weighted sum of the exits' cross-entropies, plus
    distillation from the final exit to the early ones if asked); metrics
    are each exit's accuracy (`exit_0_accuracy`, ..., `final_accuracy`).

    Without distillation, Keras's own multi-output compile gives the same
    loss: `model.compile(loss=[SparseCategoricalCrossentropy(from_logits)]
    * n, loss_weights=exit_weights)` and `model.fit(x, [y] * n)`.

    Args:
        model: A multi-exit model (see `add_early_exits`).
        optimizer: Optimizer or its name, default `"adam"`.
        exit_weights: One non-negative weight per exit (early first, the
            final last). Default None: 1.0 each.
        distillation: None (default) or `{"temperature": T, "alpha": a}`:
            each early exit's loss becomes `(1 - a) * CE + a * T^2 * KL` to
            the final exit's outputs softened at temperature `T`.
        from_logits: Whether the outputs are logits. Default None: read from
            the model (outputs whose last layer ends in a softmax are
            probabilities).
        **compile_kwargs: Passed to `compile` (e.g. `steps_per_execution`,
            `jit_compile`).

    Returns:
        The compiled `MultiExitTrainer`.

    Example:

    >>> trainer = compile_multi_exit(model, "adam", exit_weights=[0.5, 0.5, 1],
    ...                              distillation={"temperature": 3,
    ...                                            "alpha": 0.5})  # doctest: +SKIP
    >>> trainer.fit(x_train, y_train, epochs=5)  # doctest: +SKIP
    >>> model.save("multi_exit.keras")  # doctest: +SKIP
    """
    for key in ("loss", "loss_weights", "metrics"):
        if key in compile_kwargs:
            raise ValueError(
                f"Expected no `{key}`: compile_multi_exit sets the loss and the "
                f"per-exit accuracies itself. Received: {key}="
                f"{compile_kwargs[key]!r}"
            )
    trainer = MultiExitTrainer(
        model, exit_weights=exit_weights, distillation=distillation,
        from_logits=from_logits,
    )
    trainer.compile(optimizer=optimizer, **compile_kwargs)
    return trainer
