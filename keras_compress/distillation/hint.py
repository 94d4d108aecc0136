"""`Hint`: one FitNets hint between a teacher layer and a student layer."""

import numbers

import keras


@keras.saving.register_keras_serializable(package="keras_compress")
class Hint:
    """A hint: the student layer's output should predict the teacher's.

    A `Distiller` given hints learns, for each one, an adapter (a `Dense`
    on the last axis, i.e. a 1x1 convolution on a channels-last feature
    map) that maps the student layer's channels to the teacher layer's,
    and adds `weight * mean((adapter(student_features) -
    teacher_features) ** 2)` to the loss (the mean runs over the batch and
    every feature element). Both outputs must have the same rank and the
    same sizes on every axis but the last (channels); the adapter is
    trained with the student and is not part of the student.

    Hints need the layers' outputs, so the student and this hint's teacher
    must be Functional or Sequential models.

    Args:
        student_layer: Name of the student layer whose output is guided.
        teacher_layer: Name of the teacher layer whose output is the hint.
        weight: Weight of this hint's loss, a number >= 0. Defaults to 1.0.
        teacher: Index of the teacher (in the distiller's `teachers` list)
            that owns `teacher_layer`. Defaults to 0.

    Example:

    >>> hint = Hint("student_conv1", "teacher_conv2", weight=0.5)
    >>> hint.get_config()["weight"]
    0.5

    Reference:
        Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
    """

    def __init__(self, student_layer, teacher_layer, weight=1.0, teacher=0):
        for arg, value in (("student_layer", student_layer),
                           ("teacher_layer", teacher_layer)):
            if not isinstance(value, str) or not value:
                raise TypeError(
                    f"Expected `{arg}` to be a layer name (a non-empty str). "
                    f"Received: {arg}={value!r}"
                )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not weight >= 0
        ):
            raise ValueError(
                "Expected the hint `weight` to be a number >= 0. "
                f"Received: weight={weight!r}"
            )
        if (
            isinstance(teacher, bool)
            or not isinstance(teacher, numbers.Integral)
            or teacher < 0
        ):
            raise ValueError(
                "Expected the hint `teacher` to be a teacher index (an int "
                f">= 0). Received: teacher={teacher!r}"
            )
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.weight = float(weight)
        self.teacher = int(teacher)

    def get_config(self):
        return {
            "student_layer": self.student_layer,
            "teacher_layer": self.teacher_layer,
            "weight": self.weight,
            "teacher": self.teacher,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"Hint(student_layer={self.student_layer!r}, "
            f"teacher_layer={self.teacher_layer!r}, weight={self.weight}, "
            f"teacher={self.teacher})"
        )

    def __eq__(self, other):
        return isinstance(other, Hint) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(tuple(self.get_config().items()))
