"""Slimmable networks: one model, several widths, each exportable on its own.

Build a model from `keras_compress.layers.slimmable` layers, then:

  set_width(model, w), get_width(model), width(model, w) (context manager),
    model_widths(model), slimmable_layers(model): switch and read the
    active width (held in variables, no retracing).
  SandwichModel(model, num_random=2, distillation=True): train all widths
    in one `fit` by the sandwich rule with in-place distillation.
  calibrate_batchnorm(model, data): exact BatchNorm statistics per width.
  export_width(model, w): a plain, really smaller Keras model of width w.
  active_channels(n, w): the one rule for the channels kept at a width.
"""

from keras_compress.layers.slimmable.base_slimmable import active_channels
from keras_compress.slimmable.calibrate import calibrate_batchnorm
from keras_compress.slimmable.export import export_width
from keras_compress.slimmable.sandwich_model import SandwichModel
from keras_compress.slimmable.switch import get_width
from keras_compress.slimmable.switch import model_widths
from keras_compress.slimmable.switch import set_width
from keras_compress.slimmable.switch import slimmable_layers
from keras_compress.slimmable.switch import width

__all__ = [
    "SandwichModel",
    "active_channels",
    "calibrate_batchnorm",
    "export_width",
    "get_width",
    "model_widths",
    "set_width",
    "slimmable_layers",
    "width",
]
