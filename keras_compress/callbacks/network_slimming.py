"""`NetworkSlimming`: an L1 penalty on BatchNorm scales during `fit`."""

import re

import keras
import numpy as np
from keras import ops

from keras_compress._checks import check_number


class _Sum:
    """Regularizer: the layer's own plus the L1 penalty."""

    def __init__(self, own, penalty):
        self.own, self.penalty = own, penalty

    def __call__(self, x):
        loss = self.penalty * ops.sum(ops.abs(x))
        return loss if self.own is None else loss + self.own(x)


class _SoftThreshold:
    """Constraint: the proximal (ISTA) step of the L1 penalty."""

    def __init__(self, own, penalty, optimizer):
        self.own, self.penalty, self.optimizer = own, penalty, optimizer

    def __call__(self, x):
        if self.own is not None:
            x = self.own(x)
        step = ops.cast(self.optimizer.learning_rate, x.dtype) * self.penalty
        return ops.sign(x) * ops.maximum(ops.abs(x) - step, 0.0)


class NetworkSlimming(keras.callbacks.Callback):
    """Pushes BatchNormalization scales (gamma) toward zero while training.

    Network slimming trains with an L1 penalty `penalty * sum |gamma|` on
    the scale of every BatchNormalization, so that unimportant channels end
    with gammas near zero; `prune_channels(model, ratio=...,
    scope="global", criterion=BatchNormScale())` then removes them, and a
    short fine-tuning recovers the accuracy (`network_slimming` runs the
    whole loop). The penalty is added in-graph, as a weight regularizer
    (its subgradient joins the loss gradient) or, with `proximal=True`, as
    a soft-thresholding constraint applied after each optimizer update
    (ISTA: `gamma <- sign(gamma) * max(|gamma| - lr * penalty, 0)`), which
    sets gammas exactly to zero. Both are removed when training ends; the
    layers' configs never change.

    The two forms differ in strength: the proximal step shrinks by
    `lr * penalty` per step, while the subgradient goes through the
    optimizer (with SGD momentum 0.9 about 10x stronger for the same
    penalty; with Adam it is rescaled per parameter and shrinks gammas only
    a little). The paper used SGD with momentum.

    Logs `slimming/near_zero` (the fraction of gammas with
    |gamma| < `near_zero`) and `slimming/mean_abs_gamma` each epoch.

    Args:
        penalty: L1 strength, the paper's lambda. Defaults to 1e-4.
        proximal: use the proximal step instead of the subgradient.
            Defaults to False.
        layers: which BatchNormalization layers: `None` (all), a regex
            matched in full against names, a list of names, or a callable.
        near_zero: threshold for the logged near-zero count. Defaults to
            1e-2.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[NetworkSlimming(1e-4)])
    pruned, report = prune_channels(model, ratio=0.5, scope="global",
                                    criterion=BatchNormScale())
    ```

    Reference:
        Liu et al., "Learning Efficient Convolutional Networks through
        Network Slimming", ICCV 2017.
    """

    def __init__(self, penalty=1e-4, proximal=False, layers=None, near_zero=1e-2):
        super().__init__()
        self.penalty = check_number("penalty", penalty, "a positive number",
                                    lambda v: v > 0)
        self.proximal = bool(proximal)
        self.layers = layers
        self.near_zero = float(near_zero)
        self.gammas = []
        self._saved = []

    def _select(self, model):
        bns = [
            layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
            and layer.scale and layer.built
        ]
        if not bns:
            raise ValueError(
                f"Expected model '{model.name}' to have built BatchNormalization "
                "layers with `scale=True` for network slimming. Received: none"
            )
        names = [layer.name for layer in bns]
        if self.layers is None:
            return bns
        if isinstance(self.layers, str):
            chosen = [l for l in bns if re.fullmatch(self.layers, l.name)]
        elif isinstance(self.layers, (list, tuple, set)):
            missing = [n for n in self.layers if n not in names]
            if missing:
                raise ValueError(
                    f"Expected `layers` to name BatchNormalization layers "
                    f"{names}. Received: not found {missing}"
                )
            chosen = [l for l in bns if l.name in self.layers]
        elif callable(self.layers):
            chosen = [l for l in bns if self.layers(l)]
        else:
            raise ValueError(
                "Expected `layers` to be None, a regex, a list of names or a "
                f"callable. Received: layers={self.layers!r}"
            )
        if not chosen:
            raise ValueError(
                f"Expected `layers` to select at least one of {names}. "
                f"Received: layers={self.layers!r}"
            )
        return chosen

    def set_model(self, model):
        super().set_model(model)
        if self._saved:
            return
        if not model.built:
            raise ValueError(
                f"Expected a built model for NetworkSlimming. Received: model "
                f"'{model.name}' without weights; call it on a batch first"
            )
        self.gammas = [layer.gamma for layer in self._select(model)]
        for gamma in self.gammas:
            self._saved.append((gamma, gamma.regularizer, gamma.constraint))
            if self.proximal:
                gamma.constraint = _SoftThreshold(
                    gamma.constraint, self.penalty, model.optimizer)
            else:
                gamma.regularizer = _Sum(gamma.regularizer, self.penalty)
        model.train_function = None

    def near_zero_fraction(self):
        values = np.concatenate(
            [np.abs(ops.convert_to_numpy(g)).ravel() for g in self.gammas])
        return float((values < self.near_zero).mean()), float(values.mean())

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.gammas:
            near, mean = self.near_zero_fraction()
            logs["slimming/near_zero"] = near
            logs["slimming/mean_abs_gamma"] = mean

    def on_train_end(self, logs=None):
        for gamma, regularizer, constraint in self._saved:
            gamma.regularizer = regularizer
            gamma.constraint = constraint
        self._saved = []
        if self.model is not None:
            self.model.train_function = None
