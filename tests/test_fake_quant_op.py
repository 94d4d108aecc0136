"""`FakeQuant`'s kernel for JAX and PyTorch equals TensorFlow's op.

`quantizers/_fake_quant_op.fake_quant` is TensorFlow's fake-quantization
formula in `keras.ops`; here it runs on TensorFlow tensors next to
`tf.quantization.fake_quant_with_min_max_vars(_per_channel)`: values
bit-equal, gradients equal.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_compress.quantizers._fake_quant_op import fake_quant

RANGES = [(0.0, 1.0, False, 8), (-0.7, 1.3, False, 8), (-2.1, 2.1, True, 8),
          (-0.33, 0.9, False, 4), (0.2, 3.0, False, 8), (-3.0, -0.5, False, 8),
          (-6.0, 6.0, False, 8)]


@pytest.mark.parametrize("lo,hi,narrow,bits", RANGES)
def test_values_bit_equal_to_tensorflow(lo, hi, narrow, bits):
    rng = np.random.default_rng(0)
    # Random values, every multiple of 1/255 near the range (ties), the edges.
    x = np.concatenate([rng.normal(size=4000) * 2, np.arange(-400, 400) / 255.0,
                        np.linspace(lo - 0.1, hi + 0.1, 2001)]).astype("float32")
    want = tf.quantization.fake_quant_with_min_max_vars(
        x, lo, hi, num_bits=bits, narrow_range=narrow).numpy()
    got = np.asarray(fake_quant(tf.constant(x), tf.constant(lo), tf.constant(hi), bits,
                                narrow))
    np.testing.assert_array_equal(got, want)


def test_per_channel_bit_equal_to_tensorflow():
    x = np.random.default_rng(1).normal(size=(50, 7, 3)).astype("float32")
    lo = np.array([-1.0, -0.5, -2.0], "float32")
    hi = np.array([1.0, 2.0, 0.3], "float32")
    want = tf.quantization.fake_quant_with_min_max_vars_per_channel(x, lo, hi).numpy()
    got = np.asarray(fake_quant(tf.constant(x), tf.constant(lo), tf.constant(hi), 8,
                                False, 2))
    np.testing.assert_array_equal(got, want)


def test_gradients_equal_tensorflow():
    x = tf.constant(np.random.default_rng(2).normal(size=1000).astype("float32") * 2)
    weights = tf.range(1000, dtype=tf.float32)
    grads = []
    for fn in (tf.quantization.fake_quant_with_min_max_vars, fake_quant):
        lo, hi = tf.Variable(-1.0), tf.Variable(1.5)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn(x, lo, hi) * weights)
        grads.append([g.numpy() for g in tape.gradient(loss, [x, lo, hi])])
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_array_equal(got, want)
