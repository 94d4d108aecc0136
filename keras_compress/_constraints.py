"""Putting constraints on a model's weights (pruning masks, clusters)."""

import keras

from keras_compress import _flags


def updates_after_steps():
    """Lets `check_backend` pass on JAX: the caller (a callback) applies the
    constraints itself after each train step."""
    return _flags.switched_on("constraints_after_steps")


def set_constraints(model, pairs):
    """Gives weights new constraints, where Keras applies and saves them.

    Each variable gets its constraint, and so does the layer attribute that
    goes into the layer's config (`kernel_constraint`, ...); the model's
    cached train step, traced with the old constraints, is dropped.

    Args:
        model: The model owning the weights.
        pairs: `(PrunableWeight, constraint or None)` pairs.
    """
    for item, constraint in pairs:
        item.variable.constraint = constraint
        if item.constraint_attr is not None:
            setattr(item.layer, item.constraint_attr, constraint)
    model.train_function = None


def updates_in_step(model, caller, what):
    """Whether `caller`'s constraints can update `what` inside the train step.

    False on JAX (its compiled step runs constraints statelessly): the
    callback then applies them after each step, so each step must come
    back to Python.

    Raises:
        ValueError: on JAX with `steps_per_execution` other than 1.
    """
    if keras.backend.backend() != "jax":
        return True
    steps = getattr(model, "steps_per_execution", 1)
    if steps != 1:
        raise ValueError(
            f"{caller} updates {what} after every train step on JAX, so each "
            "step must return to Python. Expected steps_per_execution=1 in "
            f"compile(). Received: steps_per_execution={steps}")
    return False


def after_steps_hook(callback, hook):
    """On JAX, makes `hook(batch, logs)` the `on_train_batch_end` of
    `callback` (an instance attribute, set before `fit` builds its callback
    list).

    Only there: a callback with a batch hook of its own makes Keras run
    every callback's batch hooks synchronously, without the asynchronous
    dispatch it uses on PyTorch and JAX, so elsewhere the default stays.
    """
    if keras.backend.backend() == "jax":
        callback.on_train_batch_end = hook


def check_backend(caller, what):
    """Raises on JAX, whose train step runs variable constraints statelessly.

    Args:
        caller: Who asks, for the message (`"cluster_weights"`, a callback's
            class name).
        what: What its constraints update (`"masks"`, `"centroids"`).
    """
    if keras.backend.backend() == "jax" and not _flags.is_on("constraints_after_steps"):
        raise ValueError(
            f"{caller} updates {what} inside the train step through variable "
            "constraints, which the JAX backend runs statelessly. Expected "
            "the tensorflow or torch backend, or on JAX the callback "
            "(keras_compress.callbacks.WeightClustering, MagnitudePruning), "
            "which updates them after each step. Received: backend='jax'"
        )


def check_fit_model(model, caller, action):
    """Raises unless `model` is compiled and built, ready for a callback.

    Args:
        model: The model the callback got.
        caller: The callback's class name.
        action: What the callback does before the train step is traced
            (`"attaches masks"`, `"clusters weights"`).
    """
    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            f"Expected a compiled model for {caller}. "
            f"Received: model '{model.name}' without an optimizer"
        )
    if not model.built:
        raise ValueError(
            f"Expected a built model: {caller} {action} before the train "
            f"step is traced, and model '{model.name}' has not created its "
            "weights yet. Call it once on a batch (`model(x[:1])`) or "
            "`model.build(input_shape)` before `fit`."
        )
