"""to_tflite on real converters and the LiteRT runtime."""

import os

import keras
import numpy as np
import pytest

from keras_compress import export
from keras_compress.runtime import LiteRTModel


def test_float_matches_keras(cnn, cnn_float, digits):
    _, (x_test, _) = digits
    got = LiteRTModel(cnn_float).predict(x_test)
    np.testing.assert_allclose(got, cnn.predict(x_test, verbose=0), rtol=0, atol=1e-4)


def test_int8_accuracy_within_two_points(cnn, cnn_int8, digits):
    _, (x_test, y_test) = digits
    keras_acc = cnn.evaluate(x_test, y_test, verbose=0)[1]
    assert keras_acc > 0.85, "the fixture CNN did not learn"
    int8_acc = LiteRTModel(cnn_int8).evaluate(x_test, y_test)
    assert int8_acc >= keras_acc - 0.02


@pytest.mark.parametrize("mode", ["float16", "dynamic"])
def test_float16_and_dynamic_run_close_to_keras(cnn, digits, mode):
    _, (x_test, y_test) = digits
    runner = LiteRTModel(export.to_tflite(cnn, quantize=mode))
    keras_acc = cnn.evaluate(x_test, y_test, verbose=0)[1]
    assert runner.evaluate(x_test, y_test) >= keras_acc - 0.02


def test_int8_is_smaller_than_float(cnn_float, cnn_int8):
    assert len(cnn_int8) < len(cnn_float) / 2.5


def test_int8_calibration_sources_agree(cnn, digits):
    import tensorflow as tf

    (x_train, y_train), _ = digits
    x = x_train[:64]
    from_array = export.to_tflite(cnn, quantize="int8", representative_data=x)
    from_dataset = export.to_tflite(
        cnn, quantize="int8",
        representative_data=tf.data.Dataset.from_tensor_slices((x, y_train[:64])).batch(16),
    )
    from_generator = export.to_tflite(
        cnn, quantize="int8", representative_data=lambda: (s for s in x)
    )
    assert from_array == from_dataset == from_generator


def test_fixed_batch_size_gives_static_shapes(cnn):
    runner = LiteRTModel(export.to_tflite(cnn, batch_size=1))
    assert runner.inputs[0].shape == (1, 8, 8, 1)
    assert not runner.dynamic_batch
    delegation = runner.delegation()
    assert delegation["builtin_only"] == []
    assert delegation["xnnpack_ops"] == delegation["total_ops"] > 5


def test_sparse_encoding_makes_a_pruned_model_smaller(rng):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256),
                              keras.layers.Dense(256), keras.layers.Dense(10)])
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        kernel[rng.uniform(size=kernel.shape) < 0.9] = 0.0
        layer.set_weights([kernel, bias])
    dense = export.to_tflite(model)
    sparse = export.to_tflite(model, sparse=True)
    assert len(sparse) < len(dense) / 2
    x = rng.uniform(size=(16, 64)).astype("float32")
    np.testing.assert_allclose(LiteRTModel(sparse).predict(x),
                               model.predict(x, verbose=0), atol=1e-4)


def test_sequential_subclassed_and_multi_input_models(rng):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

    sub = Subclassed()
    x = rng.uniform(size=(5, 4)).astype("float32")
    sub(x)
    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    a, b = keras.Input((4,)), keras.Input((2,))
    multi = keras.Model([a, b], keras.layers.Dense(3)(keras.layers.Concatenate()([a, b])))
    x2 = rng.uniform(size=(5, 2)).astype("float32")
    for model, feed in [(sub, x), (seq, x), (multi, [x, x2])]:
        got = LiteRTModel(export.to_tflite(model)).predict(feed)
        np.testing.assert_allclose(got, model.predict(feed, verbose=0), atol=1e-5)


def test_many_outputs_come_back_in_keras_order(rng):
    # The flatbuffer lists outputs in its own order (twelve outputs: neither
    # Keras's nor alphabetical); LiteRTModel returns them in Keras's.
    a, b = keras.Input((4,)), keras.Input((3,))
    h = keras.layers.Concatenate()([a, b])
    sizes = (2, 5, 1, 7, 3, 4, 6, 8, 9, 10, 11, 12)
    model = keras.Model([a, b], [keras.layers.Dense(k)(h) for k in sizes])
    feed = [rng.uniform(size=(3, 4)).astype("float32"),
            rng.uniform(size=(3, 3)).astype("float32")]
    got = LiteRTModel(export.to_tflite(model)).predict(feed)  # verify=True
    assert [g.shape[1] for g in got] == list(sizes)
    for g, want in zip(got, model.predict(feed, verbose=0)):
        np.testing.assert_allclose(g, want, atol=1e-5)

def test_signature_runner_names_inputs_and_outputs(rng):
    # One `serving_default` signature, as Keras's export archive writes it:
    # inputs named input_000..., outputs by the model's dict keys.
    from ai_edge_litert.interpreter import Interpreter

    a, b = keras.Input((4,)), keras.Input((3,))
    h = keras.layers.Concatenate()([a, b])
    model = keras.Model([a, b], {"score": keras.layers.Dense(2)(h),
                                 "embedding": keras.layers.Dense(5)(h)})
    feed = [rng.uniform(size=(1, 4)).astype("float32"),
            rng.uniform(size=(1, 3)).astype("float32")]
    interpreter = Interpreter(model_content=export.to_tflite(model, batch_size=1))
    assert interpreter.get_signature_list() == {"serving_default": {
        "inputs": ["input_000", "input_001"], "outputs": ["embedding", "score"]}}
    got = interpreter.get_signature_runner()(input_000=feed[0], input_001=feed[1])
    want = model.predict(feed, verbose=0)
    for key in ("score", "embedding"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-5)


def test_writes_the_file_it_returns(cnn, tmp_path):
    path = tmp_path / "cnn.tflite"
    data = export.to_tflite(cnn, path)
    assert path.read_bytes() == data
    assert os.listdir(tmp_path) == ["cnn.tflite"]


def test_unknown_quantize_mode(cnn):
    with pytest.raises(ValueError, match=r"quantize.*Received: quantize='int4'"):
        export.to_tflite(cnn, quantize="int4")


def test_int8_without_calibration_data(cnn):
    with pytest.raises(ValueError, match="representative_data=None"):
        export.to_tflite(cnn, quantize="int8")


def test_int8_io_needs_int8(cnn):
    with pytest.raises(ValueError, match="int8_io"):
        export.to_tflite(cnn, int8_io=True)


def test_missing_folder(cnn, tmp_path):
    path = tmp_path / "no_such_folder" / "m.tflite"
    with pytest.raises(ValueError, match="does not exist"):
        export.to_tflite(cnn, path)
    assert not path.parent.exists()


def test_not_a_model():
    with pytest.raises(TypeError, match="keras.Model"):
        export.to_tflite("model.keras")


def test_failed_export_leaves_the_old_file_and_no_temp(cnn, tmp_path):
    path = tmp_path / "cnn.tflite"
    path.write_bytes(b"previous artifact")
    with pytest.raises(ValueError, match="shape"):
        export.to_tflite(cnn, path, quantize="int8",
                         representative_data=np.zeros((4, 5, 5, 1), "float32"))
    assert path.read_bytes() == b"previous artifact"
    assert os.listdir(tmp_path) == ["cnn.tflite"]
