"""`WeightClip`: keeps latent weights of binary layers in [-limit, limit]."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_compress")
class WeightClip(keras.constraints.Constraint):
    """Clips a weight to `[-limit, limit]` after every update.

    BinaryConnect clips its real-valued ("latent") weights to [-1, 1]: the
    sign of a weight far outside never flips again, so the clip keeps
    training alive. A constraint the layer already had runs first.

    Args:
        limit: Positive clip value, default 1.0.
        constraint: Another constraint applied before the clip, default None.

    Example:

    >>> layer = keras.layers.Dense(4, kernel_constraint=WeightClip(1.0))
    """

    def __init__(self, limit=1.0, constraint=None):
        if not float(limit) > 0:
            raise ValueError(
                f"Expected `limit` to be positive. Received: limit={limit!r}"
            )
        self.limit = float(limit)
        self.constraint = keras.constraints.get(constraint)

    def __call__(self, w):
        if self.constraint is not None:
            w = self.constraint(w)
        return ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {
            "limit": self.limit,
            "constraint": keras.constraints.serialize(self.constraint),
        }
