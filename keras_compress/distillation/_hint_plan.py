"""FitNets hints: which student and teacher layers each `Hint` pairs."""

from keras_compress.distillation import _teachers
from keras_compress.distillation.hint import Hint


def normalize_hints(hints):
    if hints is None:
        return []
    if isinstance(hints, Hint):
        return [hints]
    if not isinstance(hints, (list, tuple)):
        raise TypeError(
            "Expected `hints` to be None, a Hint or a list of Hints. "
            f"Received: hints of type {type(hints).__name__}"
        )
    result = []
    for item in hints:
        if isinstance(item, Hint):
            result.append(item)
        elif isinstance(item, (list, tuple)) and 2 <= len(item) <= 4:
            result.append(Hint(*item))
        else:
            raise TypeError(
                "Expected each hint to be a Hint or a tuple (student_layer, "
                f"teacher_layer[, weight[, teacher]]). Received: {item!r}"
            )
    return result



def layer_output(model, name, role, arg):
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise ValueError(
            f"Expected `{arg}` to name a layer of {role} {model.name!r}. "
            f"Received: {arg}={name!r}. Layers: {names}"
        )
    layer = model.get_layer(name)
    try:
        output = layer.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Expected `{arg}` to name a layer with one output tensor in "
            f"{role} {model.name!r}. Received: {arg}={name!r} ({error})"
        ) from None
    if not hasattr(output, "shape"):
        raise ValueError(
            f"Expected `{arg}` to name a layer with one output tensor in "
            f"{role} {model.name!r}. Received: {arg}={name!r} returns "
            f"a {type(output).__name__}"
        )
    return output



def plan_hints(student, teachers, hints):
    """Checks every hint and finds its tensors, before anything is built."""
    if not hints:
        return []
    how = (
        "hints need the outputs of intermediate layers: build it with "
        "keras.Input (Functional or Sequential), or use hints=None for "
        "logits distillation"
    )
    if not _teachers.has_graph(student):
        raise ValueError(
            "Expected a Functional or Sequential student for hints. Received: "
            f"student {student.name!r} ({type(student).__name__}) has no "
            f"symbolic inputs/outputs; {how}"
        )
    plan = []
    for h, hint in enumerate(hints):
        if hint.teacher >= len(teachers):
            raise ValueError(
                f"Expected hint {h} `teacher` to index the {len(teachers)} "
                f"teacher(s). Received: teacher={hint.teacher}"
            )
        teacher = teachers[hint.teacher]
        if not _teachers.has_graph(teacher):
            raise ValueError(
                f"Expected a Functional or Sequential teacher for hint {h}. "
                f"Received: teacher {hint.teacher} ({teacher.name!r}, "
                f"{type(teacher).__name__}) has no symbolic inputs/outputs; {how}"
            )
        s = layer_output(student, hint.student_layer, "the student", "student_layer")
        t = layer_output(
            teacher, hint.teacher_layer, f"teacher {hint.teacher}", "teacher_layer"
        )
        s_shape, t_shape = tuple(s.shape), tuple(t.shape)
        same = len(s_shape) == len(t_shape) and all(
            a is None or b is None or a == b
            for a, b in zip(s_shape[1:-1], t_shape[1:-1])
        )
        if not same or len(s_shape) < 2:
            raise ValueError(
                f"Expected hint {h} layers to have the same rank and the same "
                "sizes on every axis but the batch and the last (channels) one. "
                f"Received: student layer {hint.student_layer!r} output "
                f"{s_shape}, teacher layer {hint.teacher_layer!r} output "
                f"{t_shape}"
            )
        if s_shape[-1] is None or t_shape[-1] is None:
            raise ValueError(
                f"Expected hint {h} layers to have a known channel count. "
                f"Received: student {s_shape}, teacher {t_shape}"
            )
        plan.append({
            "student_tensor": s,
            "teacher_tensor": t,
            "teacher": hint.teacher,
            "teacher_channels": int(t_shape[-1]),
            "weight": hint.weight,
        })
    return plan
