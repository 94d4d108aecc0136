"""`add_early_exits`: a backbone classifier -> a multi-exit model."""

import keras

from keras_compress import graph
from keras_compress.early_exit import _graph
from keras_compress.layers.early_exit.early_exit_head import EarlyExitHead


def add_early_exits(backbone, exit_points, head=None, freeze_backbone=False,
                    name=None):
    """Attaches early-exit classifiers to a backbone classifier.

    The backbone is a Functional or Sequential model with one input whose
    single output is the final classifier, of shape `(batch, num_classes)`:
    logits, or probabilities if its last layer ends in a softmax (a `Dense`
    or `Activation` with `activation="softmax"`, or a `Softmax` layer). By
    default every head gives the same kind of scores as the backbone.

    Each exit point names a layer of the backbone whose output every path
    from the input to the output goes through (e.g. the last layer of a
    block, not a layer inside a residual branch), so that the model can run
    in stages and stop at the first confident exit. The exits are ordered
    from the input to the output whatever the order of `exit_points`.

    The backbone is copied, weights included: it is not changed, and
    training the multi-exit model does not train it. Its copy trains with
    the heads (joint training, as in BranchyNet) unless `freeze_backbone`:
    then only the heads learn, on the trained backbone's features, and the
    final exit keeps the backbone's accuracy exactly. (On the demo's digits
    CNN, joint fine-tuning cost the final exit 2-6 points.)

    Args:
        backbone: A built Functional or Sequential `keras.Model`.
        exit_points: A list of layer names of `backbone` (at least one).
        head: What each early exit computes from its feature map:
            - None (default): `EarlyExitHead(num_classes, grid=4)` (average
              pooling to a 4x4 grid of cells, or 4 steps for a 1-D map,
              flattened, then `Dense(num_classes)`; global pooling where
              the feature map's size is unknown), with
              `activation="softmax"` if the backbone outputs
              probabilities. Of six heads measured on shallow features
              (BENCHMARKS.md, "Early-exit heads"), it gave the most
              accuracy per MAC at the exit: 95.8% against global
              pooling's 31.7% at the first exit of a MobileNet-style CNN
              on 32x32 digits, for 13k MACs instead of 8.5k. Its
              classifier has `16 * channels * num_classes` weights: with
              many classes, pass a smaller `grid` or another head;
            - a dict of `EarlyExitHead` arguments for every exit (e.g.
              `{"filters": 32}`), `num_classes` and `activation` filled in
              as above unless given;
            - a callable `head(index, feature_map_shape) -> keras.layers.Layer`
              returning a new layer that maps the feature map to
              `(batch, num_classes)` scores;
            - a list of the above, one per exit point (in the order of
              `exit_points`).
        freeze_backbone: If True, the backbone's layers are not trainable
            (BatchNormalization then runs in inference mode). Default False.
        name: Name of the new model, default `"<backbone name>_multi_exit"`.

    Returns:
        A Functional `keras.Model` with the backbone's input and outputs
        `[exit_0, ..., exit_{K-1}, final]` (head layers named `exit_0`, ...).
        It saves as `.keras` and loads with `safe_mode=True`.

    Raises:
        TypeError: If `backbone` is not a Keras model or an argument has the
            wrong type.
        ValueError: If an exit point is unknown, duplicated, the output
            layer or the input, not on every path to the output, or if a
            head does not give `(batch, num_classes)` scores.

    Example:

    >>> import keras
    >>> backbone = keras.Sequential([
    ...     keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(8, 3, activation="relu", name="block1"),
    ...     keras.layers.Conv2D(8, 3, activation="relu", name="block2"),
    ...     keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(10),
    ... ])
    >>> model = add_early_exits(backbone, ["block1"])
    >>> [tuple(o.shape) for o in model.outputs]
    [(None, 10), (None, 10)]

    Reference:
        Teerapittayanon, McDanel and Kung, "BranchyNet: Fast Inference via
        Early Exiting from Deep Neural Networks", ICPR 2016.
    """
    functional = _graph.functional_of(backbone, "backbone")
    if len(functional.outputs) != 1:
        raise ValueError(
            "Expected `backbone` to have one output (the final classifier). "
            f"Received: backbone={backbone.name!r} with "
            f"{len(functional.outputs)} outputs"
        )
    final = functional.outputs[0]
    shape = tuple(final.shape)
    if len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
        raise ValueError(
            "Expected the output of `backbone` to be class scores of shape "
            f"(batch, num_classes >= 2). Received: output shape {shape}"
        )
    num_classes = int(shape[-1])
    points = _check_exit_points(functional, exit_points, final)
    specs = _head_specs(head, len(points))
    if not isinstance(freeze_backbone, bool):
        raise TypeError(
            "Expected `freeze_backbone` to be a bool. Received: "
            f"freeze_backbone={freeze_backbone!r}"
        )
    if name is not None and not isinstance(name, str):
        raise TypeError(f"Expected `name` to be a str. Received: name={name!r}")

    # Order the exits from the input to the output.
    order = sorted(range(len(points)), key=lambda i: len(_graph.ancestors(points[i][1])))
    probabilities = _graph.is_probability_layer(graph.producer(final)[0])

    copy = graph.rebuild(functional)
    if freeze_backbone:
        for layer in copy.layers:
            layer.trainable = False
    taken = {layer.name for layer, _, _ in graph.graph_layers(functional)}
    outputs = []
    for j, i in enumerate(order):
        layer_name = points[i][0]
        tensor = graph.layer_nodes(copy, copy.get_layer(layer_name))[0].outputs[0]
        head_name = _unique(f"exit_{j}", taken)
        taken.add(head_name)
        layer = _make_head(specs[i], j, tensor, num_classes, probabilities, head_name)
        out = layer(tensor)
        got = tuple(out.shape)
        if len(got) != 2 or got[-1] != num_classes:
            raise ValueError(
                f"Expected the head of exit point {layer_name!r} to give "
                f"scores of shape (batch, {num_classes}). Received: a "
                f"{type(layer).__name__} with output shape {got}"
            )
        outputs.append(out)
    outputs.append(copy.outputs[0])
    return keras.Model(
        copy.inputs[0], outputs, name=name or f"{backbone.name}_multi_exit"
    )


def _check_exit_points(functional, exit_points, final):
    if isinstance(exit_points, str) or not isinstance(exit_points, (list, tuple)):
        raise TypeError(
            "Expected `exit_points` to be a list of layer names. "
            f"Received: exit_points={exit_points!r}"
        )
    if not exit_points:
        raise ValueError(
            "Expected `exit_points` to name at least one layer. "
            "Received: exit_points=[]"
        )
    layers = [layer for layer, _, _ in graph.graph_layers(functional)]
    by_name = {layer.name: layer for layer in layers}
    output_layer = graph.producer(final)[0]
    input_names = {
        layer.name for layer in functional.layers
        if isinstance(layer, keras.layers.InputLayer)
    }
    available = [layer.name for layer in layers if layer is not output_layer]
    seen = set()
    points = []
    for point in exit_points:
        if not isinstance(point, str):
            raise TypeError(
                "Expected `exit_points` to hold layer names (str). Received: "
                f"exit_points={list(exit_points)!r}"
            )
        if point in seen:
            raise ValueError(
                "Expected distinct exit points. Received: exit point "
                f"{point!r} more than once in exit_points={list(exit_points)!r}"
            )
        seen.add(point)
        if point in input_names:
            raise ValueError(
                "Expected exit points between the input and the output. "
                f"Received: exit point {point!r}, the input layer"
            )
        if point not in by_name:
            raise ValueError(
                f"Expected exit points among the layers of the backbone: "
                f"{available}. Received: exit point {point!r}, not a layer "
                "of the backbone"
            )
        layer = by_name[point]
        if layer is output_layer:
            raise ValueError(
                "Expected exit points before the output layer (the final "
                f"classifier is the last exit). Received: exit point {point!r}, "
                "the output layer"
            )
        nodes = graph.layer_nodes(functional, layer)
        if len(nodes) != 1 or len(nodes[0].outputs) != 1:
            raise ValueError(
                "Expected each exit point to be a layer called once with one "
                f"output. Received: exit point {point!r} with {len(nodes)} "
                f"call(s) and {len(nodes[0].outputs) if nodes else 0} output(s)"
            )
        tensor = nodes[0].outputs[0]
        if tensor is final:
            raise ValueError(
                "Expected exit points before the output. Received: exit point "
                f"{point!r}, whose output is the model output"
            )
        if not _graph.is_cut(tensor, final):
            raise ValueError(
                "Expected exit points that every path from the input to the "
                f"output goes through. Received: exit point {point!r}, on a "
                "branch (e.g. inside a residual block); choose the layer that "
                "ends the block"
            )
        points.append((point, tensor))
    return points


def _head_specs(head, count):
    if isinstance(head, list):
        if len(head) != count:
            raise ValueError(
                "Expected `head` as a list to hold one entry per exit point "
                f"({count}). Received: {len(head)} entries"
            )
        specs = list(head)
    else:
        specs = [head] * count
    for spec in specs:
        if spec is not None and not isinstance(spec, dict) and not callable(spec):
            raise TypeError(
                "Expected `head` to be None, a dict of EarlyExitHead "
                "arguments, a callable (index, feature_shape) -> layer, or a "
                f"list of those. Received: head={head!r}"
            )
    return specs


# The default head pools to DEFAULT_GRID x DEFAULT_GRID cells (see
# benchmarks/_early_exit_heads.py).
DEFAULT_GRID = 4


def _make_head(spec, index, tensor, num_classes, probabilities, head_name):
    if spec is None or isinstance(spec, dict):
        kwargs = {"num_classes": num_classes,
                  "activation": "softmax" if probabilities else None}
        if spec is None and all(d is not None for d in tensor.shape[1:-1]):
            kwargs["grid"] = DEFAULT_GRID
        kwargs.update(spec or {})
        kwargs.setdefault("name", head_name)
        return EarlyExitHead(**kwargs)
    layer = spec(index, tuple(tensor.shape))
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            "Expected the `head` callable to return a keras.layers.Layer. "
            f"Received: {type(layer).__name__} for exit {index}"
        )
    return layer


def _unique(base, taken):
    candidate, k = base, 1
    while candidate in taken:
        candidate = f"{base}_{k}"
        k += 1
    return candidate
