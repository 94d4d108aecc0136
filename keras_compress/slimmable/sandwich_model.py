"""`SandwichModel`: train every width of a slimmable model in one `fit`."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_compress.slimmable import switch as width_lib
from keras_compress.layers.slimmable.base_slimmable import width_index


@keras.saving.register_keras_serializable(package="keras_compress")
class SandwichModel(keras.Model):
    """Trains a slimmable model by the sandwich rule with in-place distillation.

    Each training step runs the wrapped model at several widths on the same
    batch and applies the sum of their gradients in one optimizer update
    (Yu & Huang, 2019):

    1. the widest width (1.0), on the labels, with the compiled loss (and
       the model's regularization losses);
    2. the smallest width;
    3. `num_random` widths drawn at random, without replacement, from the
       widths strictly between the smallest and the widest (all of them if
       there are no more than `num_random`).

    With `distillation=True` (in-place distillation), widths 2 and 3 learn
    the widest width's predictions of this step instead of the labels:
    their loss is the cross-entropy `-sum(p * log q)` between
    `p = softmax(stop_gradient(z_max))` and the width's prediction `q`
    (both taken as logits with `from_logits=True`, as probabilities
    otherwise), averaged over the batch (weighted by `sample_weight` if
    given). With `distillation=False` they use the compiled loss on the
    labels (without the regularization losses, counted once at the widest
    width).

    Every `SwitchableBatchNormalization` updates the statistics of the width
    being run, so after training each width has its own. The loss reported
    as `loss` is the sum of the losses whose gradients were applied; the
    compiled metrics are those of the widest width. The width the model was
    at before a step comes back after it, so `evaluate` and `predict` use
    the width set with `set_width` (1.0 by default).

    Compile and fit it like any Keras model; then use, save or export the
    wrapped `model` (`export_width(model, w)`). Training uses Keras's own
    step (the widths run in `compute_loss`), so it works on every backend
    and under distribution strategies. In training mode, calling the
    trainer runs the widest width.

    Args:
        model: A `keras.Model` with slimmable layers. Its output: one tensor
            of class scores (logits with `from_logits=True`) when
            `distillation=True`.
        num_random: How many widths between the smallest and the widest to
            train at each step, an int >= 0, default 2.
        distillation: Train the narrower widths on the widest width's soft
            predictions (True, default) or on the labels (False).
        from_logits: Whether the model outputs logits (True, default) or
            probabilities, for the distillation loss.
        seed: Seed of the random widths, an int or None (default).
        **kwargs: `keras.Model` arguments (e.g. `name`).

    Example:

    ```python
    model = ...  # SlimmableConv2D / SwitchableBatchNormalization / ...
    trainer = SandwichModel(model, num_random=2)
    trainer.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    trainer.fit(x, y, epochs=10)
    small = export_width(model, 0.25)
    ```

    Reference:
        - [Yu & Huang, Universally Slimmable Networks and Improved Training
          Techniques, ICCV 2019](https://arxiv.org/abs/1903.05134)
    """

    def __init__(self, model, num_random=2, distillation=True,
                 from_logits=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(
                "Expected `model` to be a keras.Model with slimmable layers. "
                f"Received: model of type {type(model).__name__}"
            )
        widths = width_lib.model_widths(model)
        if (isinstance(num_random, bool) or not isinstance(num_random, numbers.Integral)
                or num_random < 0):
            raise ValueError(
                "Expected `num_random` to be an integer >= 0. Received: "
                f"num_random={num_random!r}"
            )
        for name, value in (("distillation", distillation), ("from_logits", from_logits)):
            if not isinstance(value, bool):
                raise TypeError(
                    f"Expected `{name}` to be True or False. Received: "
                    f"{name}={value!r}"
                )
        self.model = model
        self.num_random = int(num_random)
        self.distillation = distillation
        self.from_logits = from_logits
        self.seed = seed
        self.widths = widths
        self._seed_generator = keras.random.SeedGenerator(seed)
        # Per slimmable layer (in `slimmable_layers` order): model width
        # index -> the layer's own index.
        self._tables = [
            np.array([width_index(layer.width_multipliers, w) for w in widths],
                     "int32")
            for layer in width_lib.slimmable_layers(model)
        ]

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def _layer_tables(self):
        return list(zip(width_lib.slimmable_layers(self.model), self._tables))

    def _set_index(self, j):
        for layer, table in self._layer_tables():
            layer.width_index.assign(ops.take(ops.convert_to_tensor(table), j))

    def _sub_widths(self):
        """Model-width indices trained after the widest: smallest, random."""
        n = len(self.widths)
        if n == 1:
            return []
        middle = list(range(1, n - 1))
        if self.num_random >= len(middle):
            return [0] + middle
        if self.num_random == 0:
            return [0]
        order = keras.random.shuffle(
            ops.arange(1, n - 1, dtype="int32"), seed=self._seed_generator
        )
        return [0] + [order[i] for i in range(self.num_random)]

    def _distill_loss(self, soft, y_pred, sample_weight):
        if isinstance(y_pred, (list, tuple, dict)):
            raise ValueError(
                "Expected a model with one output for in-place distillation. "
                f"Received: model '{self.model.name}' with "
                f"{len(y_pred)} outputs (use distillation=False)"
            )
        target = ops.softmax(soft, axis=-1) if self.from_logits else soft
        ce = keras.losses.categorical_crossentropy(
            target, y_pred, from_logits=self.from_logits
        )
        if sample_weight is not None:
            sample_weight = ops.reshape(
                ops.cast(sample_weight, ce.dtype), ops.shape(ce)
            )
            ce = ce * sample_weight
        return ops.mean(ce)

    def call(self, inputs, training=None):
        if not training:
            return self.model(inputs, training=training)
        # Training: the widest width, the first slice of the sandwich.
        saved = self._read_indices()
        self._set_index(len(self.widths) - 1)
        outputs = self.model(inputs, training=True)
        self._restore_indices(saved)
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        """The widest width's loss plus the narrower widths' (in training).

        Keras's own training step calls this on every backend with the
        widest width's predictions (see `call`); the narrower widths run
        here, so the gradient of the returned sum is the sum of the widths'
        gradients.
        """
        total = super().compute_loss(x=x, y=y, y_pred=y_pred,
                                     sample_weight=sample_weight, training=training)
        if not training:
            return total
        saved = self._read_indices()
        soft = keras.tree.map_structure(ops.stop_gradient, y_pred)
        for j in self._sub_widths():
            self._set_index(j)
            narrow = self.model(x, training=True)
            if self.distillation:
                loss = self._distill_loss(soft, narrow, sample_weight)
            else:
                loss = self._compile_loss(y, narrow, sample_weight)
            total = total + ops.cast(loss, total.dtype)
        self._restore_indices(saved)
        return total

    def _read_indices(self):
        # Copies, so that later assignments cannot change them.
        return [ops.copy(layer.width_index.value) for layer, _ in self._layer_tables()]

    def _restore_indices(self, saved):
        for (layer, _), index in zip(self._layer_tables(), saved):
            layer.width_index.assign(index)

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "num_random": self.num_random,
            "distillation": self.distillation,
            "from_logits": self.from_logits,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)
