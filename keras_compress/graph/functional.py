"""The layer graph of a Functional or Sequential model, and walks over it.

Every transform that reads or rewrites a model's graph (quantization,
batch-norm folding, factorization, channel surgery, early exits, slimmable
export) finds it here: `graph_of` (the graph or None), `has_graph`, `check_graph_model`
(the one error for models without a graph), `nodes` (the layer calls in
order), `producer`, `consumers`, `layer_nodes` and `graph_layers`.
"""

import collections

import keras


def graph_of(model):
    """The Functional graph of `model`, or None if it has none.

    Returns `model` itself for a Functional model, the inner Functional of a
    built Sequential model, and None for a subclassed model or a non-model.
    Raises ValueError for a Sequential model that was never built.
    """
    if isinstance(model, keras.Sequential):
        if model._functional is None:
            raise ValueError(
                "Expected a built Sequential model with an Input. Received: "
                f"model '{model.name}' that has not been built on an input "
                "shape. Call it on data or add a keras.Input first."
            )
        return model._functional
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def has_graph(model):
    """Whether `model` is a Functional model or a built Sequential model."""
    if isinstance(model, keras.Sequential):
        return model._functional is not None
    return graph_of(model) is not None


def check_graph_model(model, why, arg_name="model"):
    """Returns the graph of `model`, or raises the error for models without one.

    Args:
        model: what the user passed.
        why: why the caller needs the graph, completing "Expected a
            Functional or Sequential model: ..." (e.g. "quantize_model
            rebuilds the layer graph"); may end with advice after a period.
        arg_name: the argument's name in the messages.

    Raises:
        TypeError: `model` is not a `keras.Model`.
        ValueError: `model` is subclassed (or an unbuilt Sequential model).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected `{arg_name}` to be a keras.Model. Received: "
            f"{arg_name} of type {type(model).__name__}"
        )
    functional = graph_of(model)
    if functional is None:
        raise ValueError(
            f"Expected `{arg_name}` to be a Functional or Sequential model: "
            f"{why} Received: subclassed model '{model.name}' of class "
            f"{type(model).__name__}"
        )
    return functional


def nodes(functional):
    """The layer calls of a Functional graph in execution order (no inputs)."""
    depths = sorted(functional._nodes_by_depth, reverse=True)
    return [
        node for depth in depths for node in functional._nodes_by_depth[depth]
        if node.operation is not None and not node.is_input
    ]


def producer(tensor):
    """`(operation, node)` that made a KerasTensor."""
    history = tensor._keras_history
    return history.operation, history.operation._inbound_nodes[history.node_index]


def consumers(functional):
    """`{id(tensor): [nodes reading it]}` over the graph's layer calls."""
    result = collections.defaultdict(list)
    for node in nodes(functional):
        for tensor in node.input_tensors:
            result[id(tensor)].append(node)
    return dict(result)


def layer_nodes(functional, layer):
    """The nodes of `functional` that call `layer`."""
    own = set()
    for depth_nodes in functional._nodes_by_depth.values():
        own.update(id(n) for n in depth_nodes)
    return [n for n in layer._inbound_nodes if id(n) in own]


def graph_layers(model, recursive=False):
    """Layers of the graph of `model` in execution order, each once.

    Returns:
        A list of `(layer, calls, nested)`: `calls` is how many times the
        graph calls the layer, `nested` the name of the nested model holding
        it (None at the top level). Nested Functional or Sequential models
        are entered when `recursive` is True, else listed as layers.
    """
    order = []
    calls = collections.Counter()
    where = {}

    def walk(m, nested):
        for node in nodes(graph_of(m)):
            op = node.operation
            if recursive and isinstance(op, keras.Model) and graph_of(op) is not None:
                if id(op) not in where:
                    where[id(op)] = nested
                    walk(op, op.name)
                continue
            calls[id(op)] += 1
            if id(op) not in where:
                where[id(op)] = nested
                order.append(op)

    walk(model, None)
    return [(op, calls[id(op)], where[id(op)]) for op in order]
