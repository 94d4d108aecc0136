"""`Taylor`: first-order Taylor estimate of each filter's effect on the loss."""

import keras
import numpy as np

from keras_compress.pruning.criteria._data import batches
from keras_compress.pruning.criteria.base import Criterion, producer_kernels


class Taylor(Criterion):
    """Importance of a filter = (sum over its weights of w * dL/dw) ** 2.

    The first-order Taylor estimate of how much the loss changes when the
    filter is removed, accumulated over batches of `data` (Molchanov et al.
    2019, the weight-gradient form).

    Args:
        data: `(x, y)` samples and labels.
        loss: a Keras loss (object or name); defaults to the loss the model
            was compiled with.
        batch_size: samples per gradient. Defaults to 64.
        max_samples: samples used at most. Defaults to 1000.

    Reference:
        Molchanov et al., "Importance Estimation for Neural Network
        Pruning", CVPR 2019.
    """

    needs_data = True

    def __init__(self, data, loss=None, batch_size=64, max_samples=1000):
        self.data = data
        self.loss = loss
        self.batch_size = batch_size
        self.max_samples = max_samples

    def channel_scores(self, graph):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "Expected the tensorflow backend for the Taylor criterion "
                f"(it takes gradients). Received: backend='{keras.backend.backend()}'"
            )
        import tensorflow as tf

        model = graph.model
        loss = self.loss if self.loss is not None else getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "Expected `loss` or a compiled model for the Taylor criterion. "
                f"Received: loss=None and model '{model.name}' without a loss"
            )
        loss_fn = keras.losses.get(loss)
        layers = [layer for layer, _ in producer_kernels(graph)]
        kernels = [
            layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
            for layer in layers
        ]
        totals = [0.0] * len(layers)
        for x, y in batches(self.data, self.batch_size, self.max_samples, True):
            with tf.GradientTape() as tape:
                value = loss_fn(y, model(x, training=False))
            grads = tape.gradient(value, [k.value for k in kernels])
            for i, (k, g) in enumerate(zip(kernels, grads)):
                prod = np.asarray(k.numpy() * g.numpy())
                if "Transpose" in type(layers[i]).__name__:
                    prod = np.swapaxes(prod, -1, -2)
                totals[i] = totals[i] + prod.reshape(-1, prod.shape[-1]).sum(0) ** 2
        return {
            (layer, j): float(v)
            for layer, total in zip(layers, totals)
            for j, v in enumerate(np.atleast_1d(total))
        }

    def get_config(self):
        return {"loss": self.loss, "batch_size": self.batch_size,
                "max_samples": self.max_samples}
