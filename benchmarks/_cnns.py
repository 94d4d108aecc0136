"""The random-weight CNNs of the LiteRT benchmarks, and their exports.

Used by `export_formats.py` (a MobileNet-style CNN with unnamed ReLU layers
and Keras's MobileNet v1) and `structured_latency.py` (a named ReLU6
MobileNet-style CNN and a small ResNet). BatchNorm layers get random,
trained-looking statistics (`randomize_batchnorm`), so that no BatchNorm is
an identity the converter could fold away.
"""

import time

import numpy as np

# (output channels, stride) of each depthwise-separable block.
MOBILENET_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (256, 2),
)
# (channels, stride of the first block) of each residual stage.
RESNET_STAGES = ((32, 1), (64, 2), (128, 2))
RESNET_BLOCKS_PER_STAGE = 2
CALIBRATION_SAMPLES = 100


def randomize_batchnorm(model, seed):
    """Gives BatchNorm layers trained-looking statistics.

    Fresh BatchNorm layers are identities, which the converter folds into
    all-zero biases that it then stores once for the whole model; that
    would flatter the file sizes. With random statistics every layer keeps
    its own bias, as in a trained model.
    """
    from keras import layers

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.1, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0.0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
    return model


def build_mobilenet_style(input_shape=(96, 96, 3), num_classes=10, seed=0,
                          relu6=False, named=False):
    """A MobileNet-v1-style CNN with random weights: a stride-2 3x3 stem (32
    channels), the `MOBILENET_BLOCKS` (DepthwiseConv2D+BN+ReLU, 1x1
    Conv2D+BN+ReLU), global average pool, Dense. `relu6`: ReLU6 activations;
    `named`: fixed layer names (else Keras numbers them)."""
    import keras
    from keras import layers

    def name(text):
        return text if named else None

    def relu(text):
        return layers.ReLU(6.0 if relu6 else None, name=name(text))

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False,
                      name=name("stem_conv"))(inputs)
    x = layers.BatchNormalization(name=name("stem_bn"))(x)
    x = relu("stem_relu")(x)
    for i, (channels, stride) in enumerate(MOBILENET_BLOCKS, 1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same",
                                   use_bias=False, name=name(f"b{i}_dw"))(x)
        x = layers.BatchNormalization(name=name(f"b{i}_dw_bn"))(x)
        x = relu(f"b{i}_dw_relu")(x)
        x = layers.Conv2D(channels, 1, use_bias=False, name=name(f"b{i}_pw"))(x)
        x = layers.BatchNormalization(name=name(f"b{i}_pw_bn"))(x)
        x = relu(f"b{i}_pw_relu")(x)
    x = layers.GlobalAveragePooling2D(name=name("pool"))(x)
    outputs = layers.Dense(num_classes, name=name("logits"))(x)
    model = keras.Model(inputs, outputs, name="mobilenet_style")
    return randomize_batchnorm(model, seed)


def build_mobilenet_v1(input_shape=(96, 96, 3), num_classes=10, seed=0):
    """Keras's own MobileNet v1 at full width (alpha 1.0), random weights."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNet(
        input_shape=input_shape, alpha=1.0, weights=None, classes=num_classes
    )
    return randomize_batchnorm(model, seed)


def build_resnet_style(input_shape=(64, 64, 3), num_classes=10, seed=0):
    """A small ResNet (basic blocks, projection shortcuts) with random weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(RESNET_STAGES[0][0], 3, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for s, (channels, first_stride) in enumerate(RESNET_STAGES, 1):
        for b in range(1, RESNET_BLOCKS_PER_STAGE + 1):
            name = f"s{s}b{b}"
            stride = first_stride if b == 1 else 1
            y = layers.Conv2D(channels, 3, strides=stride, padding="same",
                              use_bias=False, name=f"{name}_conv1")(x)
            y = layers.BatchNormalization(name=f"{name}_bn1")(y)
            y = layers.ReLU(name=f"{name}_relu1")(y)
            y = layers.Conv2D(channels, 3, padding="same", use_bias=False,
                              name=f"{name}_conv2")(y)
            y = layers.BatchNormalization(name=f"{name}_bn2")(y)
            shortcut = x
            if stride != 1 or x.shape[-1] != channels:
                shortcut = layers.Conv2D(channels, 1, strides=stride,
                                         use_bias=False, name=f"{name}_proj")(x)
                shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
            x = layers.Add(name=f"{name}_add")([y, shortcut])
            x = layers.ReLU(name=f"{name}_out")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="resnet_style")
    return randomize_batchnorm(model, seed)


def random_images(input_shape, samples=CALIBRATION_SAMPLES, seed=0):
    """`samples` uniform random images in [0, 1): the int8 calibration data
    of the random-weight models."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (samples,) + tuple(input_shape)).astype("float32")


def export_all(model, formats, calibration, log=None):
    """`{label: .tflite bytes}` of `model` in each `(label, quantize mode)`
    of `formats`, batch size 1; int8 calibrated on `calibration`."""
    from keras_compress.export import to_tflite

    artifacts = {}
    for label, mode in formats:
        start = time.perf_counter()
        artifacts[label] = to_tflite(
            model, quantize=mode,
            representative_data=calibration if mode == "int8" else None,
            calibration_samples=CALIBRATION_SAMPLES,
            batch_size=1,
        )
        if log is not None:
            log(f"  exported {label:<8} {len(artifacts[label]):>9,} bytes "
                f"({time.perf_counter() - start:.1f} s)")
    return artifacts
