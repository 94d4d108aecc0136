"""quantize_model, calibrate, QATSchedule and int8 exports of QAT models."""

import keras
import numpy as np
import pytest

from keras_compress import datasets, export
from keras_compress import layers as kl
from keras_compress.callbacks import QATSchedule
from keras_compress.quantization import calibrate, quantize_model
from keras_compress.runtime import LiteRTModel, MicroModel

L = keras.layers


def _residual_model():
    inputs = keras.Input((12, 12, 3))
    h = L.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    h = L.BatchNormalization()(h)
    h = L.ReLU()(h)
    a = L.DepthwiseConv2D(3, padding="same")(h)
    a = L.BatchNormalization()(a)
    a = L.ReLU(6.0)(a)
    a = L.Conv2D(8, 1)(a)
    h = L.Add()([h, a])
    h = L.ReLU()(h)
    h = L.MaxPooling2D()(h)
    c = L.Concatenate()([h, L.Conv2D(4, 1, activation="relu")(h)])
    h = L.GlobalAveragePooling2D()(c)
    h = L.Dropout(0.1)(h)
    outputs = L.Dense(10, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def test_quantize_model_places_quantizers_where_int8_requantizes():
    model = _residual_model()
    qat = quantize_model(model)
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert kinds == [
        "InputLayer", "Quantize",
        "QuantConv2D", "ReLU", "Quantize",            # conv+BN fused, ReLU fused
        "QuantDepthwiseConv2D", "ReLU", "Quantize",   # ReLU6 fused
        "QuantConv2D", "Quantize",                    # linear conv
        "Add", "ReLU", "Quantize",                    # add + fused relu
        "MaxPooling2D",                               # keeps its scale
        "QuantConv2D", "Quantize",
        "Concatenate", "Quantize",
        "GlobalAveragePooling2D", "Quantize",
        "Dropout",
        "QuantDense", "Quantize", "Activation",       # logits range, softmax
    ]
    assert not any(isinstance(layer, L.BatchNormalization) for layer in qat.layers)
    # The input model is untouched and the copy computes nearly the same.
    assert [type(layer) for layer in model.layers][2] is L.BatchNormalization
    x = np.random.default_rng(0).uniform(0, 1, (32, 12, 12, 3)).astype("float32")
    calibrate(qat, x, method="minmax", verbose=0)
    np.testing.assert_allclose(qat.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.03)


def test_quantized_model_converts_to_full_int8_without_data(tmp_path):
    keras.utils.set_random_seed(0)  # The count of clear top-1 margins depends on init.
    model = _residual_model()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (128, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 10, 128)
    qat = quantize_model(model)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "qat.tflite"
    data = export.to_tflite(qat, path, quantize="int8")
    assert path.read_bytes() == data
    runner = LiteRTModel(data)
    ops = {op["op_name"] for op in runner._interpreter._get_ops_details()}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "CONCATENATION",
            "FULLY_CONNECTED", "SOFTMAX"} <= ops
    assert "MUL" not in ops  # BatchNorm folded away.
    got, want = runner.predict(x), qat.predict(x, verbose=0)
    # Random labels leave near-ties between classes, so top-1 is compared
    # where Keras's top two are at least 0.01 apart; the real-data tests
    # below hold every sample to 99%.
    assert np.abs(got - want).max() < 0.02
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.01
    assert clear.sum() >= 16  # about 30 of 128 on two machines
    assert (got.argmax(1)[clear] == want.argmax(1)[clear]).mean() >= 0.95
    # Keras-saved QAT models load and export alike.
    saved = tmp_path / "qat.keras"
    qat.save(saved)
    loaded = keras.saving.load_model(saved, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    assert export.to_tflite(loaded, quantize="int8") == data


def test_int8_export_names_ops_left_in_float():
    inputs = keras.Input((8,))
    h = kl.QuantDense(4)(inputs)  # No Quantize on the input or output.
    model = keras.Model(inputs, h)
    with pytest.raises(RuntimeError, match="stayed float"):
        export.to_tflite(model, quantize="int8")


def test_export_refuses_quantization_not_started():
    model = quantize_model(keras.Sequential([keras.Input((4,)), L.Dense(3)]))
    x = np.ones((8, 4), "float32")
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((8, 3)), epochs=1, verbose=0,
              callbacks=[QATSchedule(quantize_start=5, unit="step")])
    with pytest.raises(ValueError, match="has not started"):
        export.to_tflite(model, quantize="int8")
    export.to_tflite(model)  # Float export is fine.


def test_qat_schedule_switches_in_graph():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    h = L.Conv2D(4, 3, use_bias=False)(inputs)
    h = L.BatchNormalization()(h)
    outputs = L.ReLU()(L.Flatten()(h))
    qat = quantize_model(keras.Model(inputs, outputs))
    conv = next(layer for layer in qat.layers if isinstance(layer, kl.QuantConv2D))
    act = [layer for layer in qat.layers if isinstance(layer, kl.Quantize)][-1]
    x = np.random.default_rng(0).normal(size=(32, 6, 6, 2)).astype("float32")
    qat.compile("sgd", "mse")
    schedule = QATSchedule(quantize_start=2, freeze_batchnorm=4, freeze_ranges=6, unit="step")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((
                np.asarray(act.quantizer.max).item(),
                np.asarray(conv.moving_mean).copy(),
                # Quantized output: few distinct values; float: many.
                len(np.unique(np.asarray(act.quantizer(x, training=False)))),
            ))

    qat.fit(x, np.zeros((32, 64)), batch_size=4, epochs=1, verbose=0,
            shuffle=False, callbacks=[schedule, Probe()])
    assert len(seen) == 8
    # Entry i is read after i + 1 training steps; a switch at step k acts
    # on the step that starts with k steps done.
    assert seen[0][2] > 256                          # float in step 1
    assert seen[1][2] <= 256                         # quantized from step 2
    assert not np.array_equal(seen[2][1], seen[3][1])  # BN moves in step 4
    np.testing.assert_array_equal(seen[3][1], seen[7][1])  # then frozen
    assert seen[4][0] != seen[5][0]                  # ranges move in step 6
    assert seen[5][0] == seen[7][0]                  # then frozen
    with pytest.raises(ValueError, match="freeze_ranges >= quantize_start"):
        QATSchedule(quantize_start=3, freeze_ranges=2)
    with pytest.raises(ValueError, match="unit"):
        QATSchedule(unit="batch")
    with pytest.raises(ValueError, match="no keras-compress quantizer"):
        plain = keras.Sequential([keras.Input((2,)), L.Dense(1)])
        plain.compile("sgd", "mse")
        plain.fit(np.ones((2, 2)), np.ones((2, 1)), verbose=0, callbacks=[QATSchedule()])


def test_quantize_model_bad_input():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model"):
        quantize_model(sub)
    with pytest.raises(TypeError, match="keras.Model"):
        quantize_model(L.Dense(2))
    lstm = keras.Sequential([keras.Input((5, 3)), L.LSTM(4), L.Dense(2)])
    with pytest.raises(ValueError, match="'lstm'.*LSTM"):
        quantize_model(lstm)
    with pytest.warns(UserWarning, match="stays in float"):
        kept = quantize_model(lstm, unsupported="float")
    assert type(kept.get_layer("lstm")) is L.LSTM
    with pytest.raises(ValueError, match="unsupported"):
        quantize_model(lstm, unsupported="skip")
    with pytest.raises(ValueError, match="Unknown quantizer"):
        quantize_model(lstm, kernel_quantizer="int3")


def test_calibrate_bad_input():
    qat = quantize_model(keras.Sequential([keras.Input((4,)), L.Dense(3)]))
    with pytest.raises(ValueError, match="at least one sample"):
        calibrate(qat, np.zeros((0, 4), "float32"), verbose=0)
    with pytest.raises(ValueError, match="method"):
        calibrate(qat, np.ones((4, 4), "float32"), method="mse", verbose=0)
    with pytest.raises(ValueError, match="percentile"):
        calibrate(qat, np.ones((4, 4), "float32"), percentile=30, verbose=0)
    plain = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    with pytest.raises(ValueError, match="no quantizer"):
        calibrate(plain, np.ones((4, 4), "float32"), verbose=0)


def test_calibration_methods_order_ranges():
    rng = np.random.default_rng(0)
    x = rng.standard_t(2, size=(2000, 16)).astype("float32")  # heavy tails
    ranges = {}
    for method in ("minmax", "percentile", "kl"):
        qat = quantize_model(keras.Sequential([keras.Input((16,)), L.Dense(4)]))
        ranges[method] = calibrate(qat, x, method=method, percentile=99.9, verbose=0)
    # The first quantizer is the input's.
    lo, hi = next(iter(ranges["minmax"].values()))
    assert lo == pytest.approx(x.min()) and hi == pytest.approx(x.max())
    for method in ("percentile", "kl"):
        lo2, hi2 = next(iter(ranges[method].values()))
        assert lo <= lo2 < 0 < hi2 <= hi
        assert hi2 - lo2 < 0.8 * (hi - lo)  # heavy tails are clipped
        assert hi2 > np.percentile(x, 99) and lo2 < np.percentile(x, 1)


def _cnn(shape, conv):
    inputs = keras.Input(shape)
    h = inputs
    for filters in (16, 32):
        h = conv(filters, 3, padding="same", use_bias=False)(h)
        h = L.BatchNormalization(momentum=0.9)(h)
        h = L.ReLU()(h)
        h = (L.MaxPooling1D() if conv is L.Conv1D else L.MaxPooling2D())(h)
    h = L.Flatten()(h)
    outputs = L.Dense(10)(h)
    return keras.Model(inputs, outputs)


def _accuracy(pred, y):
    return float((np.asarray(pred).argmax(1) == y).mean() * 100)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist1d", "digits"])
def test_qat_fidelity_on_real_data(name):
    keras.utils.set_random_seed(0)
    if name == "mnist1d":
        (xt, yt), (xs, ys) = datasets.load_mnist1d()
        model, epochs = _cnn(xt.shape[1:], L.Conv1D), 20
    else:
        (xt, yt), (xs, ys) = datasets.load_digits()
        model, epochs = _cnn(xt.shape[1:], L.Conv2D), 15
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(3e-3), loss)
    model.fit(xt, yt, epochs=epochs, batch_size=64, verbose=0)
    float_acc = _accuracy(model.predict(xs, verbose=0), ys)

    qat = quantize_model(model)
    qat.compile(keras.optimizers.Adam(5e-4), loss)
    qat.fit(xt, yt, epochs=4, batch_size=64, verbose=0,
            callbacks=[QATSchedule(freeze_batchnorm=2, freeze_ranges=3)])
    keras_pred = qat.predict(xs, verbose=0)
    data = export.to_tflite(qat, quantize="int8")
    int8_pred = LiteRTModel(data).predict(xs)
    keras_acc, int8_acc = _accuracy(keras_pred, ys), _accuracy(int8_pred, ys)
    agree = (keras_pred.argmax(1) == int8_pred.argmax(1)).mean()
    print(f"{name}: float {float_acc:.1f} qat-keras {keras_acc:.1f} "
          f"int8 {int8_acc:.1f} agree {agree:.4f}")
    assert abs(keras_acc - int8_acc) <= 0.3
    assert agree >= 0.99
    assert int8_acc >= float_acc - 0.5
    assert float_acc >= (85 if name == "mnist1d" else 95)

    # TensorFlow Lite Micro (reference kernels) computes the same int8
    # outputs as LiteRT up to the rounding of requantization: LiteRT's
    # builtin kernels agree on >= 99% of outputs, XNNPACK on >= 80%, and
    # none differs by more than one int8 step. The classes agree.
    micro_data = export.to_tflite(qat, quantize="int8", int8_io=True, batch_size=1)
    micro = MicroModel(micro_data).predict(xs[:100], raw=True).astype(int)
    for kernels, share in (("builtin", 0.99), ("xnnpack", 0.8)):
        litert = LiteRTModel(micro_data, kernels=kernels).predict(xs[:100], raw=True)
        assert np.abs(micro - litert).max() <= 1, kernels
        assert (micro == litert).mean() >= share, kernels
        assert (micro.argmax(1) == litert.argmax(1)).mean() >= 0.99
