"""The graph of a multi-exit model: exits, cut tensors, stages and MACs.

A multi-exit model (what `add_early_exits` returns) is a Functional model
with one input and outputs `[exit_0, ..., exit_{K-1}, final]`. Each early
output is made by one layer (the head) called on one tensor of the trunk,
its cut tensor `c_j`: every path from the input to the final output goes
through it. Staged execution runs

    stage 0:       input   -> [exit_0, c_0]
    stage j:       c_{j-1} -> [exit_j, c_j]        (0 < j < K)
    stage K:       c_{K-1} -> final

and stops at the first confident exit.
"""

import weakref

import keras

from keras_compress.graph import check_graph_model
from keras_compress.graph import graph_of
from keras_compress.graph import layer_nodes
from keras_compress.graph import producer
from keras_compress.graph import rebuild


def functional_of(model, arg_name="model"):
    """The Functional graph of a one-input Functional or Sequential model."""
    functional = check_graph_model(
        model, "early exits are attached to tensors of its graph.", arg_name)
    if len(functional.inputs) != 1:
        raise ValueError(
            f"Expected `{arg_name}` to have exactly one input. Received: "
            f"{arg_name}={model.name!r} with {len(functional.inputs)} inputs"
        )
    return functional


def ancestors(tensor):
    """ids of every tensor `tensor` depends on, itself included."""
    seen = set()
    stack = [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        _, node = producer(t)
        stack.extend(node.input_tensors)
    return seen


def is_cut(tensor, output):
    """Whether every path from a model input to `output` passes `tensor`."""
    seen = set()
    stack = [output]
    while stack:
        t = stack.pop()
        if t is tensor or id(t) in seen:
            continue
        seen.add(id(t))
        _, node = producer(t)
        if node.is_input:
            return False
        stack.extend(node.input_tensors)
    return True


def is_probability_layer(layer):
    """Whether a layer ends in a softmax (outputs probabilities)."""
    if isinstance(layer, keras.layers.Softmax):
        return True
    if isinstance(layer, keras.Model):
        inner = graph_of(layer)
        if inner is None or len(inner.outputs) != 1:
            return False
        return is_probability_layer(producer(inner.outputs[0])[0])
    activation = getattr(layer, "activation", None)
    if isinstance(activation, str):
        return activation == "softmax"
    return getattr(activation, "__name__", None) == "softmax"


class Exits:
    """The exits of a multi-exit model found in its graph.

    Attributes:
        model: The model.
        functional: Its Functional graph.
        heads: The head layer of each early exit.
        cuts: The cut tensor of each early exit.
        outputs: The output tensors, early exits first, the final last.
    """

    def __init__(self, model, arg_name="model"):
        functional = functional_of(model, arg_name)
        outputs = list(functional.outputs)
        if len(outputs) < 2:
            raise ValueError(
                f"Expected `{arg_name}` to be a multi-exit model with at least "
                "2 outputs (early exits first, the final classifier last), as "
                f"made by add_early_exits. Received: {arg_name}={model.name!r} "
                f"with {len(outputs)} output"
            )
        heads, cuts = [], []
        final = outputs[-1]
        for j, out in enumerate(outputs[:-1]):
            head, node = producer(out)
            if (
                node.is_input
                or len(node.input_tensors) != 1
                or len(node.outputs) != 1
                or len(layer_nodes(functional, head)) != 1
            ):
                raise ValueError(
                    f"Expected each early output of `{arg_name}` to be made by "
                    "one layer (the head) called once on one tensor. Received: "
                    f"output {j} ({head.name!r}) of {model.name!r}"
                )
            cut = node.input_tensors[0]
            if not is_cut(cut, final):
                raise ValueError(
                    f"Expected the input of early exit {j} ({head.name!r}) to be "
                    "a tensor every path to the final output goes through, so "
                    "the model can run in stages. Received: a tensor on a side "
                    f"branch of {model.name!r}"
                )
            after_previous = not cuts or (
                cut is not cuts[-1] and id(cuts[-1]) in ancestors(cut)
            )
            if not after_previous:
                raise ValueError(
                    f"Expected the early exits of `{arg_name}` ordered from the "
                    "input to the output, each after the previous one. "
                    f"Received: exit {j} ({head.name!r}) of {model.name!r} is "
                    "not after the previous exit"
                )
            heads.append(head)
            cuts.append(cut)
        for j, out in enumerate(outputs):
            shape = tuple(out.shape)
            if len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
                raise ValueError(
                    f"Expected every output of `{arg_name}` to be class scores "
                    "of shape (batch, num_classes >= 2). Received: output "
                    f"{j} of {model.name!r} with shape {shape}"
                )
        classes = {int(out.shape[-1]) for out in outputs}
        if len(classes) != 1:
            raise ValueError(
                f"Expected every output of `{arg_name}` to have the same number "
                f"of classes. Received: {[int(o.shape[-1]) for o in outputs]}"
            )
        self.model = model
        self.functional = functional
        self.heads = heads
        self.cuts = cuts
        self.outputs = outputs
        self.num_classes = classes.pop()

    @property
    def num_exits(self):
        return len(self.outputs)

    def probabilities(self):
        """Per output: True if it gives probabilities, False for logits."""
        return [is_probability_layer(producer(o)[0]) for o in self.outputs]


def output_kinds(exits, from_logits):
    """Per output of an `Exits`: True if it gives probabilities."""
    if from_logits is None:
        return exits.probabilities()
    if not isinstance(from_logits, bool):
        raise TypeError(
            "Expected `from_logits` to be None (read it from the model) or a "
            f"bool. Received: from_logits={from_logits!r}"
        )
    return [not from_logits] * exits.num_exits


def stage_models(model, arg_name="model"):
    """Stage models of a multi-exit model, on a private copy of its layers.

    Returns:
        `(stages, heads)`: `stages[j]` maps the previous cut tensor (the model
        input for j = 0) to `[exit_j, c_j]` (only `final` for the last
        stage); `heads[j]` maps `c_j` to `exit_j`. Their layers are copies:
        `model` is not changed.
    """
    exits = Exits(model, arg_name)
    copy = rebuild(exits.functional)
    outputs = list(copy.outputs)
    cuts = []
    for j, head in enumerate(exits.heads):
        node = layer_nodes(copy, copy.get_layer(head.name))[0]
        cuts.append(node.input_tensors[0])
    name = model.name
    stages, heads = [], []
    previous = copy.inputs[0]
    for j in range(len(outputs)):
        if j < len(cuts):
            stage = keras.Model(previous, [outputs[j], cuts[j]], name=f"{name}_stage_{j}")
            heads.append(keras.Model(cuts[j], outputs[j], name=f"{name}_head_{j}"))
            previous = cuts[j]
        else:
            stage = keras.Model(previous, outputs[j], name=f"{name}_stage_{j}")
        stages.append(stage)
    return stages, heads


_COSTS = weakref.WeakKeyDictionary()


def exit_costs(model):
    """Exact MACs per sample of each stage of a multi-exit model.

    The MACs come from `keras_compress.analysis.summarize` run on the stage
    models (see `stage_models`): `stage[j]` is what running stage j costs,
    `head[j]` the part of it spent in head j (0 for the final stage),
    `backbone[j]` the rest, and `cumulative[j]` what a sample that leaves
    at exit j has cost (stages 0..j). `cumulative[-1]` equals the MACs of
    the whole model; `backbone_total` is the backbone alone (no heads).

    Args:
        model: A multi-exit model (see `add_early_exits`).

    Returns:
        A dict with lists `stage`, `head`, `backbone`, `cumulative` (ints,
        one per exit) and ints `backbone_total`, `model_total`.
    """
    cached = _COSTS.get(model)
    if cached is not None:
        return {k: list(v) if isinstance(v, list) else v for k, v in cached.items()}
    from keras_compress.analysis import summarize

    stages, heads = stage_models(model)

    def macs(m):
        value = summarize(m).totals.macs
        if value is None:
            raise ValueError(
                "Expected every layer of the multi-exit model to have known "
                "shapes, to count its MACs. Received: model "
                f"{model.name!r} whose sub-model {m.name!r} has unknown MACs"
            )
        return int(value)

    stage = [macs(s) for s in stages]
    head = [macs(h) for h in heads] + [0]
    backbone = [s - h for s, h in zip(stage, head)]
    cumulative = []
    total = 0
    for s in stage:
        total += s
        cumulative.append(total)
    costs = {
        "stage": stage,
        "head": head,
        "backbone": backbone,
        "cumulative": cumulative,
        "backbone_total": sum(backbone),
        "model_total": total,
    }
    _COSTS[model] = costs
    return {k: list(v) if isinstance(v, list) else v for k, v in costs.items()}
