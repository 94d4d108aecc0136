"""`Distiller`: a student learns from one or several teachers during `fit`.

Keras 3.15 ships `keras.distillation.Distiller`; this one is written anew
rather than built on it, because that class takes one teacher (no ensemble
target), sets `teacher.trainable = False` on the user's model, matches
features without a learned adapter (so hint layers must have equal shapes)
and runs the student a second time for features. Its default
`LogitsDistillation()` (loss `"kl_divergence"` given as a string) also
skips the softmax and the T^2 factor: only a `keras.losses.KLDivergence()`
instance gives Hinton's loss, which `Distiller` here matches (tested).
"""

import keras
from keras import ops

from keras_compress.distillation import _hint_plan
from keras_compress.distillation import _loss
from keras_compress.distillation import _teachers

# Probabilities are clipped here before a logarithm: softmax outputs of a
# teacher that ends in softmax, and the averaged teacher distribution.
_TINY = 1e-30


@keras.saving.register_keras_serializable(package="keras_compress")
class Distiller(keras.Model):
    """Trains a student on labels and on the softened outputs of teachers.

    A `keras.Model` that wraps a student and frozen teachers: `compile` and
    `fit` it like any model, then use (save, export) `distiller.student`,
    a plain Keras model that the distiller trained in place. Calling the
    distiller, `predict` and the metrics use the student's outputs only;
    `evaluate` reports the student's metrics and the distillation loss.

    With teachers `t_1..t_K` (logits), student logits `s`, labels `y` and
    temperature `T`, the loss of a batch is

        p = (1 / K) * sum_k softmax(t_k / T)      (the ensemble target)
        q = softmax(s / T)
        KL = mean over the batch of sum_c p_c * (log p_c - log q_c)
        loss = alpha * CE(y, s) + (1 - alpha) * T**2 * KL
               + sum_h weight_h * mean((adapter_h(f_h) - g_h) ** 2)
               + the student's own regularization losses

    where `CE` is the compiled loss (by default sparse categorical
    cross-entropy on logits), `f_h`/`g_h` are the student/teacher layer
    outputs of hint `h` and `adapter_h` a learned `Dense` on their last
    axis (a 1x1 convolution for feature maps). The `T**2` factor keeps the
    soft term's gradients the same size as the temperature changes
    (Hinton et al.): for large `T` its gradient with respect to `s` tends
    to `(s - t) / C` (centered logits, `C` classes), whatever `T`. Sample
    weights weight `CE` and `KL` per sample (divided by the batch size,
    like Keras's losses) but not the hints.

    Student and teachers must output logits (one output tensor, classes on
    the last axis, the same shape for all). A Functional or Sequential
    teacher that visibly ends in a softmax (a `Softmax` layer, or a layer
    with `activation="softmax"`) is accepted: its log-probabilities serve
    as logits, which gives the same softened targets. A subclassed teacher
    is taken to output logits, and a student ending in a softmax is an
    error.

    The teachers are never trained and never changed: their weights are
    left out of the distiller's trainable weights (their `trainable` flag
    is untouched) and they always run with `training=False`. Hint adapters
    belong to the distiller, not to the student.

    Args:
        student: The `keras.Model` to train (any kind; Functional or
            Sequential if `hints` are given).
        teachers: A trained `keras.Model` or a non-empty list of them; the
            average of their softened probabilities is the target.
        temperature: Softmax temperature `T`, a number > 0. Defaults to
            2.0 (Hinton et al. used up to 20 with large students; on our
            small CNN benchmarks low temperatures did better).
        alpha: Weight of the hard-label loss, in [0, 1]; the soft term gets
            `1 - alpha`. Defaults to 0.5.
        hints: `None` (default), a `Hint` or a list of `Hint`s (or tuples
            `(student_layer, teacher_layer[, weight[, teacher]])`), see
            `keras_compress.distillation.Hint`.
        name: Name of the distiller model. Defaults to `"distiller"`.
        **kwargs: Passed to `keras.Model`.

    Example:

    ```python
    import keras, numpy as np
    x = np.random.rand(64, 8).astype("float32")
    y = np.random.randint(0, 3, 64)
    teachers = [keras.Sequential([keras.Input((8,)),
                                  keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(3)]) for _ in range(2)]
    student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    distiller = Distiller(student, teachers, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(x, y, epochs=2, verbose=0)
    logits = student.predict(x, verbose=0)  # the trained student
    ```

    Reference:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
        Network", NIPS 2014 Deep Learning Workshop (arXiv:1503.02531, 2015).
        Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
    """

    def __init__(
        self,
        student,
        teachers,
        temperature=2.0,
        alpha=0.5,
        hints=None,
        name="distiller",
        **kwargs,
    ):
        teachers = _teachers.check_models(student, teachers)
        temperature = _loss.check_temperature(temperature)
        alpha = _loss.check_alpha(alpha)
        hints = _hint_plan.normalize_hints(hints)
        student_output = _teachers.single_output(student, "the student")
        if student_output is not None and _teachers.ends_in_softmax(student):
            raise ValueError(
                "Expected the student to output logits (the distiller applies "
                "the softmax at temperature T itself). Received: student "
                f"{student.name!r} ends in a softmax; remove it (for "
                "inference, add one after training)"
            )
        teacher_probs = []
        for index, teacher in enumerate(teachers):
            output = _teachers.single_output(teacher, f"teacher {index} ({teacher.name!r})")
            if student_output is not None and output is not None:
                _teachers.check_output_shape(index, teacher, output.shape, student_output.shape)
            teacher_probs.append(output is not None and _teachers.ends_in_softmax(teacher))
        plan = _hint_plan.plan_hints(student, teachers, hints)

        super().__init__(name=name, **kwargs)
        self.student = student
        self.teachers = teachers
        self.temperature = temperature
        self.alpha = alpha
        self.hints = hints
        self._teacher_probs = tuple(teacher_probs)
        self._hard_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        self._student_features = None
        self._teacher_features = {}
        self.adapters = []
        self._hint_slots = []
        if plan:
            self._build_hints(plan)
        self._cache = None

        self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")
        self.hint_loss_tracker = (
            keras.metrics.Mean(name="hint_loss") if hints else None
        )
        # Built models (and built adapters) hold every weight already: the
        # Distiller is built too, which callbacks that save state before the
        # first step (keras.callbacks.BackupAndRestore) require.
        models = [student, *teachers, *self.adapters]
        if all(getattr(m, "built", False) for m in models):
            self.built = True

    def _build_hints(self, plan):
        student = self.student
        self._student_features = keras.Model(
            _teachers.model_inputs(student),
            [student.outputs[0]] + [p["student_tensor"] for p in plan],
            name=f"{self.name}_student_features",
        )
        by_teacher = {}
        for i, p in enumerate(plan):
            by_teacher.setdefault(p["teacher"], []).append(i)
        teacher_models = {}
        for t, hint_indices in by_teacher.items():
            teacher = self.teachers[t]
            teacher_models[str(t)] = keras.Model(
                _teachers.model_inputs(teacher),
                [teacher.outputs[0]]
                + [plan[i]["teacher_tensor"] for i in hint_indices],
                name=f"{self.name}_teacher{t}_features",
            )
            for position, i in enumerate(hint_indices):
                plan[i]["teacher_position"] = position + 1
        self._teacher_features = teacher_models
        adapters = []
        for i, p in enumerate(plan):
            adapter = keras.layers.Dense(
                p["teacher_channels"], name=f"{self.name}_hint_adapter_{i}"
            )
            adapter.build(tuple(p["student_tensor"].shape))
            adapters.append(adapter)
        self.adapters = adapters
        self._hint_slots = [
            (p["teacher"], p["teacher_position"], p["weight"]) for p in plan
        ]

    # The teachers' variables are never trained: they are reported as
    # non-trainable whatever their own `trainable` flag says.
    def _teacher_variable_ids(self):
        return {id(v) for t in getattr(self, "teachers", ()) for v in t.variables}

    def _split(self, trainable, non_trainable):
        frozen = self._teacher_variable_ids()
        if not frozen or not self.trainable:
            return trainable, non_trainable
        return (
            [v for v in trainable if id(v) not in frozen],
            non_trainable + [v for v in trainable if id(v) in frozen],
        )

    @property
    def trainable_weights(self):
        return self._split(super().trainable_weights, [])[0]

    @property
    def non_trainable_weights(self):
        return self._split(super().trainable_weights, super().non_trainable_weights)[1]

    @property
    def trainable_variables(self):
        return self._split(super().trainable_variables, [])[0]

    @property
    def non_trainable_variables(self):
        return self._split(
            super().trainable_variables, super().non_trainable_variables
        )[1]

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configures the distiller for training.

        Args:
            optimizer: Optimizer of the student (and hint adapters).
                Defaults to `"adam"`.
            loss: The hard-label loss `CE` on the student's logits:
                `None` (default) for
                `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`
                (integer labels), or a loss object or function (e.g.
                `keras.losses.CategoricalCrossentropy(from_logits=True)` for
                one-hot labels). A cross-entropy that expects probabilities
                is an error: the student outputs logits.
            metrics: Metrics of the student's outputs, e.g. `["accuracy"]`.
            **kwargs: Passed to `keras.Model.compile` (e.g.
                `steps_per_execution`).
        """
        if kwargs.get("loss_weights") is not None:
            raise ValueError(
                "Expected no `loss_weights`: the distiller weighs its terms "
                "with `alpha`. Received: loss_weights="
                f"{kwargs['loss_weights']!r}"
            )
        hard = _loss.hard_loss(loss)
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._hard_loss = hard
        if loss is not None and hasattr(self, "_compile_config"):
            # Saved with the distiller, so `compile_from_config` restores it.
            self._compile_config.config["loss"] = loss

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def build(self, input_shape):
        # Builds a subclassed student or teacher by a symbolic call (what
        # Keras would do for the student alone), so every model has its
        # weights before the first step and shapes can be checked now.
        inputs = keras.tree.map_shape_structure(
            lambda shape: keras.KerasTensor(shape), input_shape
        )
        models = [self.student, *self.teachers]
        outputs = [m(inputs, training=False) if not m.built else None for m in models]
        student_output = outputs[0]
        if student_output is not None and hasattr(student_output, "shape"):
            for index, output in enumerate(outputs[1:]):
                if output is not None and hasattr(output, "shape"):
                    _teachers.check_output_shape(
                        index, self.teachers[index], output.shape, student_output.shape
                    )

    def call(self, inputs, training=None):
        if self._student_features is None:
            return self.student(inputs, training=training)
        outputs = self._student_features(inputs, training=training)
        # `compute_loss` reuses the features of this very forward pass
        # (recognized by identity of the output), so the student runs once.
        self._cache = (outputs[0], list(outputs[1:]))
        return outputs[0]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The distillation loss of a batch (see the class docstring)."""
        if y_pred is None:
            y_pred = self(x, training=training)
        student_features = None
        if self._student_features is not None:
            cache, self._cache = self._cache, None
            if cache is not None and cache[0] is y_pred:
                student_features = cache[1]
            else:
                student_features = list(
                    self._student_features(x, training=training)[1:]
                )
        if isinstance(y_pred, (list, tuple, dict)):
            raise ValueError(
                "Expected the student to return one tensor of logits. "
                f"Received: a {type(y_pred).__name__} of outputs"
            )

        teacher_logits, teacher_features = self._run_teachers(x)
        for index, logits in enumerate(teacher_logits):
            _teachers.check_output_shape(
                index, self.teachers[index], logits.shape, y_pred.shape
            )

        logits = ops.cast(y_pred, "float32")
        temperature = self.temperature
        probs = [ops.softmax(t / temperature, axis=-1) for t in teacher_logits]
        target = probs[0] if len(probs) == 1 else ops.mean(ops.stack(probs), axis=0)
        log_q = ops.log_softmax(logits / temperature, axis=-1)
        kl = ops.sum(
            target * (ops.log(ops.maximum(target, _TINY)) - log_q), axis=-1
        )
        soft = temperature**2 * _loss.weighted_mean(kl, sample_weight)

        if self.alpha > 0:
            if y is None:
                raise ValueError(
                    f"Expected labels `y` for the hard loss (alpha={self.alpha}). "
                    "Received: y=None; pass labels or use alpha=0"
                )
            hard = ops.cast(self._hard_loss(y, y_pred, sample_weight), "float32")
        else:
            hard = ops.zeros((), "float32")

        total = self.alpha * hard + (1.0 - self.alpha) * soft
        if self._hint_slots:
            hint = ops.zeros((), "float32")
            for adapter, feature, (t, position, weight) in zip(
                self.adapters, student_features, self._hint_slots
            ):
                guess = adapter(ops.cast(feature, "float32"))
                target_feature = ops.cast(teacher_features[t][position], "float32")
                hint = hint + weight * ops.mean(ops.square(guess - target_feature))
            total = total + hint
            self.hint_loss_tracker.update_state(hint)
        for loss in self.losses:
            total = total + ops.cast(ops.sum(loss), "float32")

        self.hard_loss_tracker.update_state(hard)
        self.soft_loss_tracker.update_state(soft)
        return total

    def _run_teachers(self, x):
        logits, features = [], {}
        for index, teacher in enumerate(self.teachers):
            model = self._teacher_features.get(str(index))
            if model is None:
                out = teacher(x, training=False)
                if isinstance(out, (list, tuple, dict)):
                    raise ValueError(
                        f"Expected teacher {index} ({teacher.name!r}) to return "
                        f"one tensor of logits. Received: a {type(out).__name__} "
                        "of outputs"
                    )
            else:
                outs = [ops.stop_gradient(o) for o in model(x, training=False)]
                features[index] = outs
                out = outs[0]
            out = ops.stop_gradient(ops.cast(out, "float32"))
            if self._teacher_probs[index]:
                out = ops.log(ops.maximum(out, _TINY))
            logits.append(out)
        return logits, features

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "student": serialize(self.student),
            "teachers": [serialize(t) for t in self.teachers],
            "temperature": self.temperature,
            "alpha": self.alpha,
            "hints": [serialize(h) for h in self.hints] if self.hints else None,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        deserialize = keras.saving.deserialize_keras_object
        config["student"] = deserialize(config["student"])
        config["teachers"] = [deserialize(t) for t in config["teachers"]]
        if config.get("hints"):
            config["hints"] = [deserialize(h) for h in config["hints"]]
        return cls(**config)
