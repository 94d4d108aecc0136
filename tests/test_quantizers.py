"""Quantizers: forward values against numpy formulas, gradients, state, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_compress.quantizers as Q
from keras_compress.quantizers import (
    DoReFa,
    FakeQuant,
    PowerOfTwo,
    SteSign,
    StochasticSign,
    Ternary,
)

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Every test draws the same numbers whichever worker and order run it."""
    global RNG
    RNG = np.random.default_rng(0)


def npy(x):
    return keras.ops.convert_to_numpy(x)


def grad(q, x, **kwargs):
    """d sum(q(x)) / dx."""
    x = tf.constant(x, dtype="float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = q(x, **kwargs)
    return tape.gradient(y, x).numpy()


def other_axes(rank, axis):
    axis %= rank
    return tuple(i for i in range(rank) if i != axis)


def built(q, shape):
    """Builds `q` on a fresh, unbuilt layer and returns it."""
    q.build(keras.layers.Layer(), shape, "x")
    return q


def randn(*shape):
    return RNG.standard_normal(shape).astype("float32")


# -- SteSign -------------------------------------------------------------


def test_ste_sign_forward_is_sign_with_sign0_plus_one():
    x = np.concatenate([randn(200), [0.0, -0.0]]).astype("float32")
    y = npy(SteSign()(x))
    np.testing.assert_array_equal(y, np.where(x >= 0, 1.0, -1.0))
    assert set(np.unique(y)) == {-1.0, 1.0}


def test_ste_sign_gradient_is_clipped_identity():
    x = np.array([0.5, 1.5, -2.0, -1.0, 1.0, 0.0, -0.3], "float32")
    np.testing.assert_array_equal(grad(SteSign(), x), [1, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(
        grad(SteSign(clip_value=2.5), x), [1, 1, 1, 1, 1, 1, 1]
    )
    np.testing.assert_array_equal(
        grad(SteSign(clip_value=0.4), x), [0, 0, 0, 0, 0, 1, 1]
    )


@pytest.mark.parametrize("axis", [-1, 0])
def test_ste_sign_channel_scale(axis):
    x = randn(3, 3, 4, 6)
    y = npy(SteSign(scale="channel", axis=axis)(x))
    alpha = np.mean(np.abs(x), axis=other_axes(4, axis), keepdims=True)
    np.testing.assert_allclose(y, np.where(x >= 0, 1.0, -1.0) * alpha, rtol=1e-6)
    for c in range(x.shape[axis]):
        yc = np.take(y, c, axis=axis)
        a = np.take(alpha, c, axis=axis).item()
        np.testing.assert_allclose(sorted(np.unique(yc)), [-a, a], rtol=1e-6)


def test_ste_sign_tensor_scale_and_gradient():
    x = np.array([[0.5, -1.5], [-2.0, 0.2]], "float32")
    alpha = np.mean(np.abs(x))
    y = npy(SteSign(scale="tensor")(x))
    np.testing.assert_allclose(y, np.where(x >= 0, alpha, -alpha), rtol=1e-6)
    # alpha is a constant in the backward pass: gradient alpha inside the clip.
    np.testing.assert_allclose(
        grad(SteSign(scale="tensor"), x), [[alpha, 0], [0, alpha]], rtol=1e-6
    )
    xc = randn(5, 3)
    alpha_c = np.mean(np.abs(xc), axis=0)
    expected = np.where(np.abs(xc) <= 1.0, alpha_c, 0.0)
    np.testing.assert_allclose(
        grad(SteSign(scale="channel"), xc), expected, rtol=1e-6
    )


# -- StochasticSign ------------------------------------------------------


def test_stochastic_sign_inference_is_sign():
    x = np.concatenate([randn(100), [0.0]]).astype("float32")
    np.testing.assert_array_equal(
        npy(StochasticSign(seed=1)(x)), np.where(x >= 0, 1.0, -1.0)
    )


def test_stochastic_sign_training_mean_is_hard_tanh():
    x = np.linspace(-1.5, 1.5, 13).astype("float32")
    q = StochasticSign(seed=3)
    y = npy(q(np.tile(x, (20000, 1)), training=True))
    assert set(np.unique(y)) == {-1.0, 1.0}
    hard_sigmoid = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    np.testing.assert_allclose(y.mean(axis=0), 2 * hard_sigmoid - 1, atol=0.05)
    # Saturated inputs are deterministic.
    assert np.all(y[:, 0] == -1.0) and np.all(y[:, -1] == 1.0)


def test_stochastic_sign_seed_and_gradient():
    x = np.zeros((1000,), "float32")
    a, b = StochasticSign(seed=7), StochasticSign(seed=7)
    ya, yb = npy(a(x, training=True)), npy(b(x, training=True))
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, npy(a(x, training=True)))  # state advances
    g = np.array([0.5, 1.5, -2.0, -1.0, 0.0], "float32")
    for training in (True, False):
        np.testing.assert_array_equal(
            grad(StochasticSign(seed=1), g, training=training), [1, 0, 0, 1, 1]
        )


def test_stochastic_sign_on_layer_tracks_seed_generator():
    layer = keras.layers.Layer()
    q = StochasticSign(seed=2)
    q.build(layer, (None, 4), "act")
    assert any(v is q.seed_generator.state for v in layer.non_trainable_variables)
    y = npy(q(np.zeros((3, 4), "float32"), training=True))
    assert set(np.unique(y)) <= {-1.0, 1.0}


# -- Ternary -------------------------------------------------------------


def ternary_ref(x, factor=0.7, scale=True, axis=None):
    axes = None if axis is None else other_axes(x.ndim, axis)
    a = np.abs(x)
    delta = factor * np.mean(a, axis=axes, keepdims=True)
    mask = a > delta
    alpha = np.sum(a * mask, axis=axes, keepdims=True) / np.maximum(
        np.sum(mask, axis=axes, keepdims=True), 1
    )
    if not scale:
        alpha = 1.0
    return np.sign(x) * mask * alpha


@pytest.mark.parametrize("axis", [None, -1, 0])
@pytest.mark.parametrize("factor", [0.7, 0.3])
def test_ternary_forward(axis, factor):
    x = randn(3, 3, 2, 5)
    y = npy(Ternary(threshold_factor=factor, axis=axis)(x))
    np.testing.assert_allclose(y, ternary_ref(x, factor, True, axis), atol=1e-6)
    channels = [y] if axis is None else [
        np.take(y, c, axis=axis) for c in range(x.shape[axis])
    ]
    for yc in channels:
        values = np.unique(yc)
        assert len(values) <= 3
        nonzero = values[values != 0]
        np.testing.assert_array_equal(nonzero, -nonzero[::-1])
    assert 0.0 in y and np.mean(y == 0) < 0.9


def test_ternary_unscaled_zero_and_gradient():
    x = randn(40, 3)
    y = npy(Ternary(scale=False)(x))
    np.testing.assert_array_equal(y, ternary_ref(x, scale=False))
    assert set(np.unique(y)) == {-1.0, 0.0, 1.0}
    z = np.zeros((4, 3), "float32")
    z[:, 1] = [1.0, -2.0, 0.0, 0.5]
    yz = npy(Ternary(axis=-1)(z))
    assert np.all(np.isfinite(yz))
    np.testing.assert_array_equal(yz[:, [0, 2]], 0.0)
    np.testing.assert_array_equal(npy(Ternary()(np.zeros(5, "float32"))), 0.0)
    np.testing.assert_array_equal(grad(Ternary(axis=-1), x), np.ones_like(x))


# -- DoReFa --------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_dorefa_weights(bits):
    x = randn(6, 7) * 1.5
    n = 2.0**bits - 1
    t = np.tanh(x)
    r = t / (2 * np.max(np.abs(t))) + np.float32(0.5)
    expected = 2 * np.round(r * n) / n - 1
    y = npy(DoReFa(bits=bits)(x))
    np.testing.assert_allclose(y, expected, atol=1e-6)
    values = np.unique(y)
    assert len(values) <= 2**bits
    assert values.min() >= -1 - 1e-6 and values.max() <= 1 + 1e-6
    np.testing.assert_allclose(values, 2 * np.round((values + 1) / 2 * n) / n - 1,
                               atol=1e-6)

    # The gradient is that of the unrounded normalisation, tanh(x) / max|tanh|.
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        smooth = tf.tanh(xt) / tf.reduce_max(tf.abs(tf.tanh(xt)))
    np.testing.assert_allclose(
        grad(DoReFa(bits=bits), x), tape.gradient(smooth, xt).numpy(), atol=1e-6
    )


def test_dorefa_one_bit_weights():
    x = np.concatenate([randn(50), [0.0]]).astype("float32")
    e = np.mean(np.abs(x))
    y = npy(DoReFa(bits=1)(x))
    np.testing.assert_allclose(y, np.where(x >= 0, e, -e), rtol=1e-6)
    np.testing.assert_array_equal(grad(DoReFa(bits=1), x), np.ones_like(x))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_dorefa_activations(bits):
    x = RNG.uniform(-0.5, 1.5, size=(300,)).astype("float32")
    n = 2.0**bits - 1
    y = npy(DoReFa(bits=bits, mode="activation")(x))
    np.testing.assert_allclose(y, np.round(np.clip(x, 0, 1) * n) / n, atol=1e-6)
    assert len(np.unique(y)) <= 2**bits
    g = np.array([-0.5, 0.25, 0.75, 1.5, -2.0], "float32")
    np.testing.assert_array_equal(
        grad(DoReFa(bits=bits, mode="activation"), g), [0, 1, 1, 0, 0]
    )
    if bits == 1:
        np.testing.assert_array_equal(
            npy(DoReFa(bits=1, mode="activation")(np.array([0.4, 0.6], "float32"))),
            [0.0, 1.0],
        )


# -- PowerOfTwo ----------------------------------------------------------


def po2_ref(x, bits, max_value):
    emax = 2 ** (bits - 1) - 2
    a = np.abs(x).astype("float64")
    with np.errstate(divide="ignore"):
        e = np.clip(np.round(np.log2(max_value / a)), 0, emax)
    keep = a >= max_value * 2.0**-emax / 2
    return np.where(keep, np.sign(x) * max_value * 2.0**-e, 0.0)


@pytest.mark.parametrize("bits,max_value", [(2, 1.0), (3, 1.0), (4, 1.0), (4, 0.5),
                                            (8, 2.0)])
def test_power_of_two_forward(bits, max_value):
    emax = 2 ** (bits - 1) - 2
    x = np.sign(randn(500)) * np.exp2(RNG.uniform(-emax - 2, 2, 500))
    x = (x * max_value).astype("float32")
    # Stay clear of rounding boundaries (float32 vs float64 log2).
    frac = np.log2(max_value / np.abs(x.astype("float64"))) % 1.0
    x = np.concatenate([x[np.abs(frac - 0.5) > 1e-3], [0.0]]).astype("float32")
    y = npy(PowerOfTwo(bits=bits, max_value=max_value)(x))
    np.testing.assert_array_equal(y, po2_ref(x, bits, max_value))
    levels = {0.0} | {s * max_value * 2.0**-e for s in (1, -1)
                      for e in range(emax + 1)}
    assert set(np.unique(y).tolist()) <= levels
    assert np.abs(y).max() == max_value


def test_power_of_two_examples_and_gradient():
    q = PowerOfTwo(bits=3)  # levels 0, +-1, +-0.5, +-0.25
    x = np.array([-0.3, 0.1, 0.13, 0.7, 3.0, -0.0], "float32")
    np.testing.assert_array_equal(npy(q(x)), [-0.25, 0.0, 0.25, 0.5, 1.0, 0.0])
    np.testing.assert_array_equal(grad(q, x), np.ones_like(x))
    np.testing.assert_array_equal(
        npy(PowerOfTwo(bits=2)(np.array([0.2, 0.6, -5.0], "float32"))),
        [0.0, 1.0, -1.0],
    )


# -- FakeQuant -----------------------------------------------------------


def fake_quant_ref(x, lo, hi, bits, narrow_range=False):
    """numpy version of TF's FakeQuantWithMinMaxVars (nudged range)."""
    x = np.asarray(x, "float32")
    lo, hi = np.float32(min(lo, 0.0)), np.float32(max(hi, 0.0))
    qmin = 1.0 if narrow_range else 0.0
    qmax = 2.0**bits - 1
    scale = np.float32((hi - lo) / (qmax - qmin))
    zp = qmin - lo / scale
    zp = qmin if zp < qmin else qmax if zp > qmax else np.floor(zp + 0.5)
    nmin = np.float32((qmin - zp) * scale)
    nmax = np.float32((qmax - zp) * scale)
    clamped = np.clip(x, nmin, nmax) - nmin
    inv = np.float32(1.0) / scale
    return (np.floor(clamped * inv + np.float32(0.5)) * scale + nmin).astype("float32")


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("narrow_range", [False, True])
def test_fake_quant_last_matches_tf_nudging(bits, narrow_range):
    x = randn(64) * 2 + 0.3
    y = npy(FakeQuant(bits=bits, range_mode="last", narrow_range=narrow_range)(x))
    ref = fake_quant_ref(x, x.min(), x.max(), bits, narrow_range)
    np.testing.assert_allclose(y, ref, atol=1e-6)
    assert len(np.unique(y)) <= 2**bits
    # A range that does not hold zero is widened to hold it.
    xp = np.abs(x) + 1.0
    np.testing.assert_allclose(
        npy(FakeQuant(bits=bits, range_mode="last")(xp)),
        fake_quant_ref(xp, 0.0, xp.max(), bits), atol=1e-6,
    )


@pytest.mark.parametrize("axis", [-1, 0])
def test_fake_quant_per_channel(axis):
    x = randn(5, 4) * np.array([0.1, 1.0, 3.0, 10.0], "float32")
    if axis == 0:
        x = x.T.copy()
    y = npy(FakeQuant(bits=4, axis=axis, range_mode="last")(x))
    for c in range(x.shape[axis]):
        xc = np.take(x, c, axis=axis)
        np.testing.assert_allclose(
            np.take(y, c, axis=axis),
            fake_quant_ref(xc, xc.min(), xc.max(), 4), rtol=1e-6, atol=1e-6,
        )
    # Per-tensor would crush the small channel; per-channel does not.
    small = np.take(x, 0, axis=axis)
    assert len(np.unique(np.take(y, 0, axis=axis))) > 2
    assert np.abs(np.take(y, 0, axis=axis) - small).max() < 0.1


def test_fake_quant_gradient_is_one_inside_range():
    q = built(FakeQuant(range_mode="minmax"), (6,))
    q.set_range(-1.0, 1.0)
    x = np.array([0.5, 1.5, -2.0, 0.0, -0.9, 0.9], "float32")
    np.testing.assert_array_equal(grad(q, x), [1, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(npy(q(x)), fake_quant_ref(x, -1, 1, 8), atol=1e-6)


def test_fake_quant_symmetric():
    x = np.array([-1.0, 0.2, 3.0, -0.4], "float32")
    y = npy(FakeQuant(range_mode="last", symmetric=True)(x))
    np.testing.assert_allclose(y, fake_quant_ref(x, -3.0, 3.0, 8), atol=1e-6)
    q = built(FakeQuant(range_mode="minmax", symmetric=True, narrow_range=True),
              (2,))
    q.set_range(-1.0, 3.0)
    np.testing.assert_allclose(
        npy(q(np.array([-10.0, 10.0], "float32"))), [-3.0, 3.0], atol=1e-6
    )


def test_fake_quant_ema_and_freeze():
    q = built(FakeQuant(range_mode="ema", ema_decay=0.9), (4,))
    q(np.array([-2.0, 0.0, 1.0, 3.0], "float32"), training=True)
    np.testing.assert_allclose([npy(q.min), npy(q.max)], [-2.0, 3.0], atol=1e-6)
    q(np.array([-4.0, 0.0, 0.5, 1.0], "float32"), training=True)
    np.testing.assert_allclose(
        [npy(q.min), npy(q.max)], [0.9 * -2 + 0.1 * -4, 0.9 * 3 + 0.1 * 1],
        atol=1e-6,
    )
    q.freeze_step.assign(q.steps)
    before = (npy(q.min), npy(q.max))
    q(np.array([-10.0, 10.0, 0.0, 0.0], "float32"), training=True)
    assert (npy(q.min), npy(q.max)) == before
    assert int(npy(q.steps)) == 3


def test_fake_quant_minmax_and_inference_uses_stored_range():
    q = built(FakeQuant(range_mode="minmax"), (4,))
    q(np.array([-2.0, 0.0, 1.0, 3.0], "float32"), training=True)
    q(np.array([-4.0, 0.0, 0.5, 1.0], "float32"), training=True)
    np.testing.assert_allclose([npy(q.min), npy(q.max)], [-4.0, 3.0])
    x = np.array([-9.0, 0.3, 2.0, 9.0], "float32")
    np.testing.assert_allclose(npy(q(x)), fake_quant_ref(x, -4, 3, 8), atol=1e-6)
    np.testing.assert_allclose([npy(q.min), npy(q.max)], [-4.0, 3.0])


def test_fake_quant_start_step_is_identity_before():
    q = built(FakeQuant(bits=2, range_mode="ema"), (5,))
    q.start_step.assign(5)
    x = np.array([-1.0, -0.3, 0.1, 0.45, 1.0], "float32")
    for _ in range(5):
        np.testing.assert_array_equal(npy(q(x, training=True)), x)
    y = npy(q(x, training=True))
    assert not np.allclose(y, x)
    np.testing.assert_allclose(y, fake_quant_ref(x, -1, 1, 2), atol=1e-6)


def test_fake_quant_unbuilt_stateful_raises_and_set_range():
    with pytest.raises(ValueError, match="must be built"):
        FakeQuant(range_mode="ema")(np.zeros(3, "float32"))
    with pytest.raises(ValueError, match="no stored range"):
        FakeQuant(range_mode="ema").set_range(-1.0, 1.0)
    q = built(FakeQuant(range_mode="ema", axis=-1), (2, 3))
    q.set_range(-1.0, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(npy(q.min), [-1.0, -1.0, -1.0])
    np.testing.assert_array_equal(npy(q.max), [1.0, 2.0, 3.0])
    assert float(npy(q.initialized)) == 1.0
    # Having seen a range, the first training batch moves it by EMA only.
    q(np.full((2, 3), 5.0, "float32"), training=True)
    np.testing.assert_allclose(
        npy(q.max), 0.99 * np.array([1.0, 2.0, 3.0]) + 0.01 * 5.0, rtol=1e-6
    )


# -- errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: FakeQuant(bits=1), "Expected `bits`.*Received: bits=1"),
        (lambda: FakeQuant(bits=17), "Expected `bits`.*Received: bits=17"),
        (lambda: FakeQuant(bits=3.5), "Expected `bits`.*Received: bits=3.5"),
        (lambda: FakeQuant(range_mode="foo"), "range_mode='foo'"),
        (lambda: FakeQuant(ema_decay=1.0), "ema_decay=1.0"),
        (lambda: FakeQuant(init_min=1.0), "init_min=1.0"),
        (lambda: DoReFa(bits=0), "Expected `bits`.*Received: bits=0"),
        (lambda: DoReFa(bits=9), "Expected `bits`.*Received: bits=9"),
        (lambda: DoReFa(mode="foo"), "Expected `mode`.*Received: mode='foo'"),
        (lambda: PowerOfTwo(bits=1), "Expected `bits`.*Received: bits=1"),
        (lambda: PowerOfTwo(bits=9), "Expected `bits`.*Received: bits=9"),
        (lambda: PowerOfTwo(max_value=0), "Expected `max_value`"),
        (lambda: Ternary(threshold_factor=0.0), "Received: threshold_factor=0.0"),
        (lambda: Ternary(threshold_factor=-1), "Received: threshold_factor=-1"),
        (lambda: SteSign(scale="foo"), "Expected `scale`.*Received: scale='foo'"),
        (lambda: SteSign(clip_value=0), "Expected `clip_value`"),
        (lambda: StochasticSign(seed=-1), "Expected `seed`"),
        (lambda: Q.get("nope"), "Unknown quantizer name.*'nope'"),
        (lambda: Q.get(3), "Expected a quantizer"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "q",
    [
        FakeQuant(axis=3, range_mode="last"),
        Ternary(axis=2),
        SteSign(scale="channel", axis=-3),
    ],
)
def test_axis_outside_shape_raises_on_build(q):
    with pytest.raises(ValueError, match="Expected `axis`.*rank-2"):
        q.build(keras.layers.Layer(), (4, 5), "w")


def test_axis_outside_rank_raises_when_called_unbuilt():
    with pytest.raises(ValueError, match="Expected `axis`"):
        Ternary(axis=2)(np.ones((2, 2), "float32"))


# -- serialization -------------------------------------------------------

ALL = [
    FakeQuant(bits=4, axis=-1, symmetric=True, narrow_range=True,
              range_mode="minmax", ema_decay=0.9, init_min=-2.0, init_max=3.0,
              name="fq"),
    SteSign(clip_value=2.0, scale="channel", axis=0, name="s"),
    StochasticSign(clip_value=0.5, seed=4),
    Ternary(threshold_factor=0.5, scale=False, axis=-1),
    DoReFa(bits=3, mode="activation"),
    PowerOfTwo(bits=5, max_value=2.0),
]


@pytest.mark.parametrize("q", ALL, ids=lambda q: type(q).__name__)
def test_config_round_trip(q):
    config = Q.serialize(q)
    q2 = Q.get(config)
    assert type(q2) is type(q)
    assert q2.get_config() == q.get_config()
    q3 = Q.get(q)
    assert q3 is not q and type(q3) is type(q)
    assert q3.get_config() == q.get_config() and not q3.built
    assert type(q).__name__ in repr(q)


@pytest.mark.parametrize(
    "name,cls",
    [("fake_quant", FakeQuant), ("ste_sign", SteSign),
     ("stochastic_sign", StochasticSign), ("ternary", Ternary),
     ("dorefa", DoReFa), ("power_of_two", PowerOfTwo)],
)
def test_get_by_name_and_class(name, cls):
    assert type(Q.get(name)) is cls
    assert type(Q.get(cls)) is cls
    assert cls.__name__ in Q.__all__
    assert Q.get(None) is None


def test_stochastic_sign_copy_has_own_seed_generator():
    q = StochasticSign(seed=5)
    q2 = Q.get(q)
    assert q2.seed == 5 and q2.seed_generator is not q.seed_generator
    x = np.zeros(200, "float32")
    np.testing.assert_array_equal(npy(q(x, training=True)),
                                  npy(q2(x, training=True)))


@pytest.mark.parametrize("q", ALL[1:], ids=lambda q: type(q).__name__)
def test_stateless_quantizers_in_graph_with_unknown_batch(q):
    q = Q.get(q)
    fn = tf.function(lambda t: q(t, training=True),
                     input_signature=[tf.TensorSpec((None, 6), "float32")])
    x = randn(3, 6)
    y = fn(x).numpy()
    assert y.shape == x.shape and np.all(np.isfinite(y))
    if not isinstance(q, StochasticSign):
        np.testing.assert_allclose(y, npy(q(x, training=True)), atol=1e-6)
