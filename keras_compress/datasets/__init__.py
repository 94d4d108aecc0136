"""Offline data sets for demos, tests and examples (nothing is downloaded)."""

from keras_compress.datasets.digits import load_digits
from keras_compress.datasets.mnist1d import load_mnist1d
