"""Knowledge distillation: a student learns from teachers during `fit`.

`Distiller` trains a student on labels and on the temperature-softened
outputs of one teacher or the average of several (Hinton et al. 2015),
optionally with FitNets hints between intermediate layers (`Hint`).
"""

from keras_compress.distillation.distiller import Distiller
from keras_compress.distillation.hint import Hint

__all__ = ["Distiller", "Hint"]
