"""`StochasticSign`: stochastic BinaryConnect binarization."""

import keras
from keras import ops

from keras_compress._checks import check_int
from keras_compress.quantizers.base import Quantizer
from keras_compress.quantizers.ste_sign import (
    check_positive,
    clipped_ste_sign,
    straight_through,
)


@keras.saving.register_keras_serializable(package="keras_compress")
class StochasticSign(Quantizer):
    """Stochastic binarization (BinaryConnect), deterministic at inference.

    In training (`training=True`) each value becomes +1 with probability
    `p = hard_sigmoid(x) = clip((x + 1) / 2, 0, 1)` and -1 otherwise, so the
    output equals `x` in expectation on [-1, 1]. At inference it is the
    deterministic `sign(x)` (with `sign(0) = +1`), as BinaryConnect tests.
    The gradient is the clipped straight-through estimator in both cases:
    1 where `|x| <= clip_value`, 0 elsewhere.

    The random draws come from a `keras.random.SeedGenerator`; when a layer
    builds the quantizer, the generator is tracked by that layer (its state
    is one of the layer's non-trainable variables), so it also advances
    inside compiled, stateless (JAX) train steps.

    Args:
        clip_value: Gradient cut-off of the straight-through estimator, > 0.
            Default 1.0.
        seed: Optional integer seed of the random draws. Default None.
        name: Optional name for the quantizer's weights.

    Example:

    >>> import numpy as np
    >>> q = StochasticSign(seed=1)
    >>> y = q(np.array([-0.5, 0.0, 0.5], "float32"), training=True)
    >>> keras.ops.convert_to_numpy(q(np.array([-0.5, 0.0, 0.5], "float32")))
    array([-1.,  1.,  1.], dtype=float32)

    Reference:
        Courbariaux et al., "BinaryConnect: Training Deep Neural Networks
        with binary weights during propagations", NeurIPS 2015.
    """

    def __init__(self, clip_value=1.0, seed=None, name=None):
        super().__init__(name=name)
        self.clip_value = check_positive("clip_value", clip_value)
        self.seed = None if seed is None else check_int("seed", seed, 0)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build_state(self, layer, shape, prefix):
        # Let the layer track the generator's state variable.
        setattr(layer, f"_{prefix}_seed_generator", self.seed_generator)

    def quantize(self, x, training=False):
        x = ops.convert_to_tensor(x)
        if not training:
            return clipped_ste_sign(x, self.clip_value)
        p = ops.clip((x + 1.0) / 2.0, 0.0, 1.0)
        u = keras.random.uniform(
            ops.shape(x), dtype=x.dtype, seed=self.seed_generator
        )
        ones = ops.ones_like(x)
        q = ops.where(ops.less(u, p), ones, -ones)
        return straight_through(ops.clip(x, -self.clip_value, self.clip_value), q)

    def get_config(self):
        return {
            **super().get_config(),
            "clip_value": self.clip_value,
            "seed": self.seed,
        }
