"""The student and its teachers: argument checks and output look-ups."""

import keras


def check_models(student, teachers):
    if not isinstance(student, keras.Model):
        raise TypeError(
            "Expected `student` to be a keras.Model. Received: "
            f"student of type {type(student).__name__}"
        )
    if isinstance(teachers, keras.Model):
        teachers = [teachers]
    if not isinstance(teachers, (list, tuple)):
        raise TypeError(
            "Expected `teachers` to be a keras.Model or a list of them. "
            f"Received: teachers of type {type(teachers).__name__}"
        )
    if not teachers:
        raise ValueError(
            "Expected at least one teacher. Received: teachers=[]"
        )
    for index, teacher in enumerate(teachers):
        if not isinstance(teacher, keras.Model):
            raise TypeError(
                f"Expected every teacher to be a keras.Model. Received: "
                f"teachers[{index}] of type {type(teacher).__name__}"
            )
        if teacher is student:
            raise ValueError(
                "Expected teachers distinct from the student. Received: "
                f"teachers[{index}] is the student {student.name!r}"
            )
    return list(teachers)



def model_inputs(model):
    """The model's symbolic inputs, in the structure its callers pass."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs



def has_graph(model):
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False



def single_output(model, role):
    """The model's symbolic output tensor, or None for a subclassed model."""
    if not has_graph(model):
        return None
    if len(model.outputs) != 1:
        raise ValueError(
            f"Expected {role} to have a single output (logits). Received: "
            f"{len(model.outputs)} outputs"
        )
    return model.outputs[0]



def ends_in_softmax(model):
    history = getattr(model.outputs[0], "_keras_history", None)
    layer = getattr(history, "operation", None)
    if isinstance(layer, keras.layers.Softmax):
        return True
    return getattr(layer, "activation", None) is keras.activations.softmax



def check_output_shape(index, teacher, teacher_shape, student_shape):
    t, s = tuple(teacher_shape)[1:], tuple(student_shape)[1:]
    same = len(t) == len(s) and all(
        a is None or b is None or a == b for a, b in zip(t, s)
    )
    if not same:
        raise ValueError(
            f"Expected teacher {index} ({teacher.name!r}) to output the "
            f"student's shape {tuple(student_shape)}. Received: teacher output "
            f"shape {tuple(teacher_shape)}"
        )
