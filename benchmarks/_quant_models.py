"""The models and training helpers of `quantization.py`: section A's
float CNN, section B's low-bit MLP and CNN, the optimizer, accuracy and
the epoch-timing callback.
"""

import time

import numpy as np

BATCH_SIZE = 64
LR = 3e-3  # Adam, cosine decay to 0 over each from-scratch run
QAT_LR = 5e-4  # Adam, constant, for QAT and the float fine-tuning it is timed against
HIDDEN_UNITS = 256

# Per task: the three conv blocks (filters, kernel) of both sections' CNN,
# the float epochs (section A), the QAT epochs F and the epochs of every
# section B model (from scratch).
TASKS = {
    "mnist1d": {
        "title": "MNIST-1D",
        "blocks": ((32, 5), (64, 3), (64, 3)),
        "epochs": 30,
        "qat_epochs": 5,
        "lowbit_epochs": 20,
    },
    "digits": {
        "title": "digits (8x8)",
        "blocks": ((32, 3), (64, 3), (64, 3)),
        "epochs": 30,
        "qat_epochs": 5,
        "lowbit_epochs": 30,
    },
}


def load(name):
    from keras_compress.datasets import load_digits, load_mnist1d

    return load_mnist1d() if name == "mnist1d" else load_digits()


def build_cnn(name, seed):
    """Section A's float CNN: three Conv-BN-ReLU blocks, Flatten, Dense(10)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if name == "mnist1d":
        inputs, conv, pool = keras.Input((40, 1)), layers.Conv1D, layers.MaxPooling1D
    else:
        inputs, conv, pool = keras.Input((8, 8, 1)), layers.Conv2D, layers.MaxPooling2D
    x = inputs
    blocks = TASKS[name]["blocks"]
    for i, (filters, kernel) in enumerate(blocks):
        x = conv(filters, kernel, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < len(blocks) - 1:
            x = pool(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"{name}_cnn")


def _kernel_layer(kind, variant, position, units, kernel=None, name=None):
    """A Dense (kind "dense") or Conv2D layer for a section B variant.

    `position` is "first", "middle" or "last"; the first and last layers of
    quantized variants keep int8 weights.
    """
    from keras import layers

    from keras_compress.layers import BinaryConv2D, BinaryDense, QuantConv2D, QuantDense
    from keras_compress.quantizers import DoReFa, Ternary

    dense = kind == "dense"
    args = (units,) if dense else (units, kernel)
    kwargs = {"name": name} if dense else {"name": name, "padding": "same"}
    if position != "last":
        kwargs["use_bias"] = False  # BatchNorm follows
    if variant == "float":
        return (layers.Dense if dense else layers.Conv2D)(*args, **kwargs)
    if position != "middle":
        quantizer = "default"  # int8 weights
    elif variant == "binary":
        return (BinaryDense if dense else BinaryConv2D)(*args, scale="channel", **kwargs)
    else:
        quantizer = {"dorefa4": DoReFa(4), "dorefa2": DoReFa(2),
                     "ternary": Ternary()}[variant]
    return (QuantDense if dense else QuantConv2D)(*args, kernel_quantizer=quantizer, **kwargs)


def build_lowbit(name, model, variant, seed):
    """Section B's MLP or CNN with `variant` kernels."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if name == "mnist1d":
        inputs = keras.Input((40, 1))
    else:
        inputs = keras.Input((8, 8, 1))
    x = inputs
    if model == "mlp":
        x = layers.Flatten(name="flatten_in")(x)
        for i in range(3):
            position = "first" if i == 0 else "middle"
            x = _kernel_layer("dense", variant, position, HIDDEN_UNITS, name=f"dense{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
    else:
        one_d = name == "mnist1d"
        if one_d:  # (40, 1) sequences as (40, 1, 1) images, (k, 1) kernels
            x = layers.Reshape((40, 1, 1), name="as_image")(x)
        blocks = TASKS[name]["blocks"]
        for i, (filters, kernel) in enumerate(blocks):
            position = "first" if i == 0 else "middle"
            size = (kernel, 1) if one_d else (kernel, kernel)
            x = _kernel_layer("conv", variant, position, filters, size, name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
            if i < len(blocks) - 1:
                x = layers.MaxPooling2D((2, 1) if one_d else (2, 2), name=f"pool{i}")(x)
        x = layers.Flatten(name="flatten")(x)
    outputs = _kernel_layer("dense", variant, "last", 10, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"{name}_{model}_{variant}")


def compile_model(model, steps, lr=LR, epochs=None):
    """Adam; a cosine decay to 0 over `epochs` if given, else a constant lr."""
    import keras

    if epochs is not None:
        lr = keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps))
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # One compiled call per epoch: the models are tiny and Python's
        # per-step overhead would dominate (and blur the QAT overhead).
        steps_per_execution=steps,
    )
    return model


def predictions(model, x):
    return np.asarray(model(x, training=False)).argmax(axis=1)


def accuracy(model, data):
    x, y = data
    return float((predictions(model, x) == y).mean())


def copy_float(model):
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def _test_accuracy_log(test):
    import keras

    class TestAccuracy(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_epoch_end(self, epoch, logs=None):
            self.values.append(accuracy(self.model, test))

    return TestAccuracy()
