"""`LowRankDense`: a dense layer whose kernel is a product of two thin
matrices."""

import keras

from keras_compress._checks import check_parent_default
from keras_compress.layers.factorized._rank import check_positive
from keras_compress.layers.factorized._rank import check_rank_range

_L = keras.layers


@keras.saving.register_keras_serializable(package="keras_compress")
class LowRankDense(keras.layers.Layer):
    """`Dense` with a rank-`r` kernel: `y = activation((x @ U) @ V + b)`.

    The `M x N` kernel of a dense layer is replaced by the product of
    `U` (`M x rank`) and `V` (`rank x N`), which holds `rank * (M + N)`
    weights (plus `N` biases) instead of `M * N`, and costs as many
    multiply-accumulates per input row. It saves parameters when
    `rank < M * N / (M + N)`. `keras_compress.factorization.factorize`
    initializes it from a trained `Dense` layer by truncated SVD.

    The two factors are two `keras.layers.Dense` sublayers, `u` (`rank`
    units, no bias) and `v` (`units` units, with the bias), so the kernels
    are `layer.u.kernel` and `layer.v.kernel`; they export to TFLite as two
    `FULLY_CONNECTED` operators.

    Args:
        units: Dimension of the output.
        rank: Inner dimension `r` of the factorization, an integer in
            `[1, min(input_dim, units)]` (checked when the layer is built).
        activation: Activation function. Defaults to None (linear).
        use_bias: Whether the layer adds a bias. Defaults to True.
        kernel_initializer: Initializer of both factors. Defaults to
            `"glorot_uniform"`.
        bias_initializer: Initializer of the bias. Defaults to `"zeros"`.
        kernel_regularizer: Regularizer applied to each factor. Defaults to
            None.
        bias_regularizer: Regularizer of the bias. Defaults to None.
        activity_regularizer: Regularizer of the output. Defaults to None.
        kernel_constraint: Constraint applied to each factor. Defaults to
            None.
        bias_constraint: Constraint of the bias. Defaults to None.
        lora_rank, lora_alpha, quantization_config: Keras's `Dense`
            arguments, accepted for parity; must stay None.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Input shape:
        N-D tensor `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor `(batch_size, ..., units)`.

    Example:

    >>> import numpy as np
    >>> layer = LowRankDense(64, rank=8, activation="relu")
    >>> tuple(layer(np.ones((2, 128), "float32")).shape)
    (2, 64)

    Reference:
        - [Denton et al., Exploiting Linear Structure Within Convolutional
          Networks for Efficient Evaluation, NeurIPS 2014](
          https://arxiv.org/abs/1404.0736)
        - [Sainath et al., Low-Rank Matrix Factorization for Deep Neural
          Network Training with High-Dimensional Output Targets, ICASSP
          2013](https://doi.org/10.1109/ICASSP.2013.6638949)
    """

    def __init__(
        self,
        units,
        rank,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        name = type(self).__name__
        check_parent_default(name, "lora_rank", lora_rank, None,
                             "is a low-rank factorization already: train its factors")
        check_parent_default(name, "lora_alpha", lora_alpha, None,
                             "has no LoRA (see lora_rank)")
        check_parent_default(name, "quantization_config", quantization_config, None,
                             "quantizes through keras_compress.quantization "
                             "(quantize_model) and the TFLite export")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        check_positive(self, "units", units)
        check_positive(self, "rank", rank)
        self.units = units
        self.rank = rank
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.u = _L.Dense(
            rank,
            use_bias=False,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            kernel_constraint=kernel_constraint,
            dtype=self.dtype_policy,
            name="u",
        )
        self.v = _L.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            dtype=self.dtype_policy,
            name="v",
        )
        self.input_spec = keras.InputSpec(min_ndim=2)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"Layer {self.name!r}: expected the last dimension of the "
                f"input to be defined. Received: input_shape={input_shape}"
            )
        check_rank_range(self, self.rank, min(input_dim, self.units),
                         f"min(input_dim={input_dim}, units={self.units})")
        self.u.build(input_shape)
        self.v.build(tuple(input_shape[:-1]) + (self.rank,))
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        return self.activation(self.v(self.u(inputs)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "units": self.units,
            "rank": self.rank,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": ser(self.u.kernel_initializer),
            "bias_initializer": ser(self.v.bias_initializer),
            "kernel_regularizer": ser(self.u.kernel_regularizer),
            "bias_regularizer": ser(self.v.bias_regularizer),
            "activity_regularizer": ser(self.activity_regularizer),
            "kernel_constraint": ser(self.u.kernel_constraint),
            "bias_constraint": ser(self.v.bias_constraint),
        }
