"""scikit-learn's handwritten digits as a Keras-style image data set."""

import numpy as np

NUM_TEST = 360
_SPLIT_SEED = 0


def load_digits(upsample=1):
    """Loads the 1797 real 8x8 handwritten digits that ship with scikit-learn.

    The split is fixed: 360 test images (20%, stratified by class, seed 0) and
    1437 training images, the same on every machine and call. Pixels are
    scaled from scikit-learn's 0..16 to float32 in [0, 1].

    Args:
        upsample: Integer factor, default 1. Each pixel is repeated
            `upsample` times along height and width (nearest neighbour), so
            `upsample=4` gives 32x32 images for models that downsample more.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images of shape
        `(n, 8 * upsample, 8 * upsample, 1)` (NHWC, float32) and int32 labels
        in 0..9, like `keras.datasets.mnist.load_data()`.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape, x_test.shape
    ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or upsample < 1:
        raise ValueError(
            "Expected `upsample` to be a positive integer. "
            f"Received: upsample={upsample!r}"
        )
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    data = sk_load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=NUM_TEST, stratify=y, random_state=_SPLIT_SEED
    )
    if upsample > 1:
        x_train = x_train.repeat(upsample, axis=1).repeat(upsample, axis=2)
        x_test = x_test.repeat(upsample, axis=1).repeat(upsample, axis=2)
    return (x_train, y_train), (x_test, y_test)
