"""`rebuild`: copy a Functional or Sequential model node by node.

The graph rewriter every transform uses. It replays the
layer calls of a model on new `keras.Input`s, letting a caller swap layers
(`replace_layer`), remove single-input layers (`DROP`) and add operations
after any tensor (`after_tensor`). The input model is never changed: every
layer of the new model is a new object unless `replace_layer` hands back an
existing one on purpose.
"""

import keras
from keras import tree

from keras_compress.graph.functional import check_graph_model
from keras_compress.graph.functional import graph_of
from keras_compress.graph.functional import nodes
from keras_compress.weights import copy_constraints


class _Drop:
    def __repr__(self):
        return "DROP"


DROP = _Drop()
"""Returned by `replace_layer` to remove a layer: its (single) input tensor
takes the place of its output at every call site."""


def copy_layer(layer, config=None, weights=None):
    """A new layer of the same class, built, with weights set.

    Args:
        layer: a built layer.
        config: config for the copy; defaults to `layer.get_config()`.
        weights: list of arrays for `set_weights`; defaults to the weights
            of `layer`.

    Returns:
        The new layer, built with `layer.get_build_config()`.
    """
    new = layer.__class__.from_config(
        layer.get_config() if config is None else config
    )
    new.build_from_config(layer.get_build_config())
    new.set_weights(layer.get_weights() if weights is None else weights)
    copy_constraints(layer, new)
    return new


def _new_input(x):
    """A fresh `keras.Input` like the model input tensor `x`."""
    input_layer = x._keras_history.operation
    return keras.Input(
        batch_shape=x.shape,
        dtype=x.dtype,
        sparse=x.sparse,
        name=input_layer.name,
        optional=getattr(input_layer, "optional", False),
    )


class _Rebuilder:
    def __init__(self, replace_layer, after_tensor):
        self.replace_layer = replace_layer
        self.after_tensor = after_tensor
        self.layers = {}  # id(old operation) -> (new operation, recursed)
        self.pending = {}  # id(new layer) -> the layer it copies (weights, masks)

    def operation_for(self, op):
        entry = self.layers.get(id(op))
        if entry is not None:
            return entry
        new = self.replace_layer(op) if self.replace_layer else None
        recursed = False
        if new is None:
            if isinstance(op, keras.Model) and graph_of(op) is not None:
                new, recursed = self.model(op, top=False), True
            else:
                new = op.__class__.from_config(op.get_config())
                if isinstance(op, keras.layers.Layer) and op.weights:
                    self.pending[id(new)] = op
        entry = self.layers[id(op)] = (new, recursed)
        return entry

    def after(self, tensor, layer):
        if self.after_tensor is None:
            return tensor
        result = self.after_tensor(tensor, layer)
        return tensor if result is None else result

    def model(self, model, top, inputs=None):
        functional = graph_of(model)
        if inputs is None:
            inputs = tree.map_structure(_new_input, functional._inputs_struct)
        elif len(tree.flatten(inputs)) != len(functional.inputs):
            raise ValueError(
                f"Expected `inputs` to hold {len(functional.inputs)} tensors, "
                f"one per input of model '{model.name}'. Received: "
                f"{len(tree.flatten(inputs))} tensors"
            )
        tensors = {}
        for old, new in zip(functional.inputs, tree.flatten(inputs)):
            tensors[id(old)] = self.after(new, None) if top else new
        for node in nodes(functional):
            self.call(node, tensors)
        outputs = [tensors[id(x)] for x in functional.outputs]
        new_model = None
        if isinstance(model, keras.Sequential):
            new_model = _as_sequential(model, inputs, outputs[0])
        if new_model is None:
            new_model = keras.Model(
                inputs,
                tree.pack_sequence_as(functional._outputs_struct, outputs),
                name=model.name,
            )
        if not model.trainable:
            new_model.trainable = False
        return new_model

    def call(self, node, tensors):
        op = node.operation
        new_op, recursed = self.operation_for(op)
        if new_op is DROP:
            _check_single_io(node, "removed with DROP")
            tensors[id(node.outputs[0])] = tensors[id(node.input_tensors[0])]
            return
        if isinstance(new_op, list):
            self.call_chain(node, new_op, tensors)
            return
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = tree.flatten(new_op(*args, **kwargs))
        source = self.pending.pop(id(new_op), None)
        if source is not None:
            new_op.set_weights(source.get_weights())
            copy_constraints(source, new_op)
        for old, new in zip(node.outputs, outputs):
            tensors[id(old)] = new if recursed else self.after(new, op)


    def call_chain(self, node, layers, tensors):
        _check_single_io(node, "replaced by a chain of layers")
        x = tensors[id(node.input_tensors[0])]
        for layer in layers:
            x = layer(x)
        tensors[id(node.outputs[0])] = self.after(x, node.operation)


def _check_single_io(node, what):
    if len(node.input_tensors) != 1 or len(node.outputs) != 1:
        raise ValueError(
            f"Expected a layer {what} to have one input and one output. "
            f"Received: layer '{node.operation.name}' with "
            f"{len(node.input_tensors)} inputs and {len(node.outputs)} outputs"
        )


def _context_only(kwargs):
    """Whether call kwargs are only what Keras records by itself (`mask=None`,
    a layer's default `training=False`), which a Sequential model supplies
    at run time."""
    return all(
        key in ("mask", "training") and value in (None, False)
        for key, value in kwargs.items()
    )


def _as_sequential(model, inputs, output):
    """A Sequential model over the chain `inputs` -> `output`, or None."""
    flat_inputs = tree.flatten(inputs)
    if len(flat_inputs) != 1:
        return None
    layers = []
    tensor = output
    while tensor is not flat_inputs[0]:
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None:
            return None
        layer = history.operation
        node = layer._inbound_nodes[history.node_index]
        if (
            not isinstance(layer, keras.layers.Layer)
            or isinstance(layer, keras.layers.InputLayer)
            or len(node.input_tensors) != 1
            or len(node.outputs) != 1
            or not _context_only(node.arguments.kwargs)
            or len(node.arguments.args) != 1
            or any(layer is other for other in layers)
        ):
            return None
        layers.append(layer)
        tensor = node.input_tensors[0]
    return keras.Sequential(
        [_new_input(flat_inputs[0])] + layers[::-1], name=model.name
    )


def rebuild(model, replace_layer=None, after_tensor=None, inputs=None):
    """Copies a Functional or Sequential model, swapping layers on the way.

    Replays every layer call of `model` in graph order on new `keras.Input`s
    (same batch shape, dtype and name). Each distinct layer is resolved once
    (a shared layer stays shared) by `replace_layer(layer)`, which returns:

    - `None`: the default. A nested Functional or Sequential model is
      rebuilt recursively with the same `replace_layer` and `after_tensor`;
      any other layer is copied with `from_config(get_config())` and gets
      the original weights after its first call.
    - a layer: used as is at every call site of `layer`, with the same call
      arguments. `rebuild` does not touch its weights (build and fill it
      yourself, e.g. with `copy_layer`). Returning `layer` itself shares it,
      and its variables, with the input model.
    - a list of layers: the (single-input, single-output) layer is replaced
      by these layers called in a chain on its input, e.g. a composite
      layer by its parts. As for a single layer, `rebuild` does not touch
      their weights.
    - `DROP`: the layer is removed; its single input tensor replaces its
      output.

    `after_tensor(tensor, layer)` (optional) is called once for every new
    tensor: each top-level model input (`layer` is None) and each output of
    a kept or replaced layer (`layer` is the original layer that produced
    it). It returns the tensor that consumers and model outputs see, e.g.
    `keras.layers.Activation("relu")(tensor)`, or None to keep `tensor`. It
    is not called on the inputs of a nested model nor on the outputs of a
    nested model that was rebuilt recursively (the tensors inside were
    already offered), nor on the output of a dropped layer.

    `inputs` (optional) are the `keras.Input`s to replay on, in the input
    structure of `model`, e.g. with fewer channels when the layers change
    shape; by default new Inputs like those of `model`.

    The result is a Functional model with the input and output structure and
    the name of `model`; a Sequential input gives a Sequential result when
    the new graph is still a chain of single-input layers. The result is not
    compiled. `model` is not changed.

    Args:
        model: a built Functional or Sequential Keras model.
        replace_layer: callable `layer -> None | layer | DROP`. Defaults to
            None (copy everything).
        after_tensor: callable `(tensor, layer or None) -> tensor or None`.
            Defaults to None.
        inputs: `keras.Input` tensors to build on, structured like the
            inputs of `model`. Defaults to None (copies of its Inputs).

    Returns:
        The new Keras model.

    Example:

    >>> def no_dropout(layer):  # doctest: +SKIP
    ...     return DROP if isinstance(layer, keras.layers.Dropout) else None
    >>> new_model = rebuild(model, no_dropout)  # doctest: +SKIP
    """
    check_graph_model(model, "rebuilding reads the layer graph.")
    return _Rebuilder(replace_layer, after_tensor).model(model, top=True, inputs=inputs)
