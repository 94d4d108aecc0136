"""`DependencyGraph`: which channels of a Functional model go together."""

import collections

import keras
import numpy as np

from keras_compress import graph

_L = keras.layers

# Layers whose output channels are new (each is a filter or a neuron that
# channel pruning can remove), with the weight layout the surgery slices.
PRODUCERS = (
    _L.Dense, _L.Conv1D, _L.Conv2D, _L.Conv3D, _L.Conv1DTranspose,
    _L.Conv2DTranspose, _L.Conv3DTranspose, _L.SeparableConv1D,
    _L.SeparableConv2D,
)
DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
# Layers that act on each channel separately: channel c in, channel c out.
PER_CHANNEL = (
    _L.BatchNormalization, _L.ReLU, _L.LeakyReLU, _L.ELU, _L.PReLU,
    _L.Dropout, _L.SpatialDropout1D, _L.SpatialDropout2D, _L.SpatialDropout3D,
    _L.GaussianNoise, _L.GaussianDropout, _L.AlphaDropout,
    _L.MaxPooling1D, _L.MaxPooling2D, _L.MaxPooling3D,
    _L.AveragePooling1D, _L.AveragePooling2D, _L.AveragePooling3D,
    _L.GlobalMaxPooling1D, _L.GlobalMaxPooling2D, _L.GlobalMaxPooling3D,
    _L.GlobalAveragePooling1D, _L.GlobalAveragePooling2D,
    _L.GlobalAveragePooling3D, _L.ZeroPadding1D, _L.ZeroPadding2D,
    _L.ZeroPadding3D, _L.Cropping1D, _L.Cropping2D, _L.Cropping3D,
    _L.UpSampling1D, _L.UpSampling2D, _L.UpSampling3D, _L.Identity,
    _L.ActivityRegularization, _L.Activation,
)
MERGES = (_L.Add, _L.Subtract, _L.Multiply, _L.Average, _L.Maximum, _L.Minimum)
# Activations that mix channels (normalize over the last axis).
_MIXING_ACTIVATIONS = ("softmax", "log_softmax")

ChannelGroup = collections.namedtuple(
    "ChannelGroup", ["index", "layers", "channels", "prunable", "reason"]
)
ChannelGroup.__doc__ = """Channels that are removed together.

Fields:
    index: position in `DependencyGraph.groups`.
    layers: names of the layers whose output channels form the group (a
        residual stage lists every convolution feeding its `Add`s).
    channels: number of channels (coupled channel sets) in the group.
    prunable: whether channels of this group may be removed.
    reason: why not, when `prunable` is False.
"""


class _UnionFind:
    def __init__(self):
        self.parent = []

    def new(self, count):
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    def find(self, i):
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a, b):
        for i, j in zip(np.asarray(a).ravel(), np.asarray(b).ravel()):
            ri, rj = self.find(int(i)), self.find(int(j))
            if ri != rj:
                self.parent[max(ri, rj)] = min(ri, rj)


def _channels(tensor):
    shape = tensor.shape
    return int(shape[-1]) if len(shape) and shape[-1] is not None else 0


def check_graph_model(model, arg_name="model"):
    """The graph of `model`, or the error for models without one."""
    return graph.check_graph_model(
        model, "structured pruning reads the layer graph to find which "
        "channels are coupled, and a subclassed model has no graph to read "
        "(rebuild it with the Functional API, or use MagnitudePruning, which "
        "works on any model).", arg_name)


class DependencyGraph:
    """Finds the channels of a Functional model that must go together.

    Removing output channel `c` of a convolution also removes channel `c`
    from the BatchNormalization after it, from depthwise convolutions,
    activations, pooling and dropout on the way, and the matching input
    rows of every layer that consumes it. Inputs of a residual `Add` (and
    `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`) share their
    channels, so the convolutions feeding one residual stage form one group;
    `Concatenate` places each input's channels at its offset; `Flatten`
    after a convolution maps each channel to its positions in the flat
    vector; nested Functional and Sequential models are followed inside.

    Channels reaching a model output, a model input, or a layer the graph
    cannot reason about (a `Reshape`, a softmax over channels, a grouped
    convolution, a custom layer, ...) are kept; `notes` says which and why.

    Args:
        model: a built Functional or Sequential Keras model.

    Attributes:
        groups: list of `ChannelGroup`.
        notes: messages about layers kept whole.

    Example:

    >>> graph = DependencyGraph(model)  # doctest: +SKIP
    >>> print(graph)  # doctest: +SKIP
    """

    def __init__(self, model):
        check_graph_model(model)
        self.model = model
        self.notes = []
        self._uf = _UnionFind()
        self._fixed = set()
        self._fixed_reason = {}
        # layer id -> dict(layer=, out=labels, ins=[labels per input])
        self._layers = {}
        self._order = []
        self.kept_whole = set()  # ids of layers whose weights stay as they are
        # Every layer call in order: (layer, input tensor ids, output tensor
        # ids); layer None passes tensors into or out of a nested model.
        self.calls = []
        self.tensor_labels = {}
        inputs = [self._fresh(_channels(x), f"model input '{x.name}'")
                  for x in graph.graph_of(model).inputs]
        outputs = self._walk(model, inputs)
        for labels in outputs:
            self._fix(labels, "reaches a model output")
        self._build_groups()

    # -- graph walk ----------------------------------------------------

    def _fresh(self, count, fixed_reason=None):
        labels = self._uf.new(count)
        if fixed_reason:
            self._fix(labels, fixed_reason)
        return labels

    def _fix(self, labels, reason):
        for i in np.asarray(labels).ravel():
            self._fixed.add(int(i))
            self._fixed_reason.setdefault(int(i), reason)

    def _walk(self, model, input_labels):
        functional = graph.graph_of(model)
        labels = {id(x): l for x, l in zip(functional.inputs, input_labels)}
        self.tensor_labels.update(labels)
        for node in graph.nodes(functional):
            ins = [labels[id(x)] for x in node.input_tensors]
            layer = node.operation
            in_ids = [id(x) for x in node.input_tensors]
            out_ids = [id(x) for x in node.outputs]
            nested = graph.graph_of(layer)  # None unless a nested graph model
            if nested is not None:
                self.calls.append((None, in_ids, [id(x) for x in nested.inputs]))
            outs = self._visit(layer, ins, node)
            if nested is not None:
                self.calls.append((None, [id(x) for x in nested.outputs], out_ids))
            else:
                self.calls.append((layer, in_ids, out_ids))
            for x, out in zip(node.outputs, outs):
                labels[id(x)] = out
                self.tensor_labels[id(x)] = out
        return [labels[id(x)] for x in functional.outputs]

    def _record(self, layer, ins, out):
        entry = self._layers.get(id(layer))
        if entry is None:
            self._layers[id(layer)] = {"layer": layer, "ins": ins, "out": out}
            self._order.append(layer)
            return out
        # A shared layer: both calls use the same weights, so the channels
        # of its inputs (and outputs) at every call site are tied.
        for old, new in zip(entry["ins"], ins):
            self._uf.union(old, new)
        if out is not None and entry["out"] is not None:
            return entry["out"]
        return out

    def _keep_whole(self, layer, ins, node, reason):
        self.notes.append(f"layer '{layer.name}' ({type(layer).__name__}) "
                          f"is kept whole: {reason}")
        for labels in ins:
            self._fix(labels, f"feeds layer '{layer.name}'")
        outs = [self._fresh(_channels(x), f"comes out of layer '{layer.name}'")
                for x in node.outputs]
        self._record(layer, ins, None)
        self.kept_whole.add(id(layer))
        return outs

    def _visit(self, layer, ins, node):
        if graph.graph_of(layer) is not None:
            outs = self._walk(layer, ins)
            self._record(layer, ins, None)
            return outs
        if len(ins) == 1 and len(node.outputs) == 1:
            (x,), out_tensor = ins, node.outputs[0]
        else:
            x, out_tensor = None, None
        if isinstance(layer, PRODUCERS) and x is not None:
            if getattr(layer, "groups", 1) != 1:
                return self._keep_whole(layer, ins, node, "grouped convolution")
            entry = self._layers.get(id(layer))
            out = entry["out"] if entry else self._fresh(_channels(out_tensor))
            return [self._record(layer, ins, out)]
        if isinstance(layer, DEPTHWISE) and x is not None:
            out = np.repeat(x, layer.depth_multiplier)
            self._record(layer, ins, None)
            return [out]
        if isinstance(layer, PER_CHANNEL) and x is not None:
            reason = self._per_channel_problem(layer, x, out_tensor)
            if reason:
                return self._keep_whole(layer, ins, node, reason)
            self._record(layer, ins, None)
            return [x]
        if isinstance(layer, MERGES):
            if len({len(l) for l in ins}) != 1:
                return self._keep_whole(layer, ins, node,
                                        "inputs broadcast over channels")
            for other in ins[1:]:
                self._uf.union(ins[0], other)
            self._record(layer, ins, None)
            return [ins[0]]
        if isinstance(layer, _L.Concatenate):
            rank = len(node.outputs[0].shape)
            if layer.axis in (-1, rank - 1):
                self._record(layer, ins, None)
                return [np.concatenate(ins)]
            for other in ins[1:]:
                self._uf.union(ins[0], other)
            self._record(layer, ins, None)
            return [ins[0]]
        if isinstance(layer, _L.Flatten) and x is not None:
            if layer.data_format == "channels_first":
                return self._keep_whole(layer, ins, node, "channels_first")
            positions = _channels(out_tensor) // max(len(x), 1)
            self._record(layer, ins, None)
            return [np.tile(x, positions)]
        if isinstance(layer, _L.InputLayer):
            return ins
        return self._keep_whole(layer, ins, node,
                                "its effect on channels is not known")

    def _per_channel_problem(self, layer, x, out_tensor):
        if _channels(out_tensor) != len(x):
            return "changes the number of channels"
        if getattr(layer, "data_format", "channels_last") == "channels_first":
            return "channels_first data format"
        if isinstance(layer, _L.BatchNormalization):
            rank = len(out_tensor.shape)
            if layer.axis not in (-1, rank - 1):
                return f"normalizes over axis {layer.axis}, not the channels"
        if isinstance(layer, _L.Activation):
            name = getattr(layer.activation, "__name__", "")
            if name in _MIXING_ACTIVATIONS:
                return f"'{name}' mixes channels"
        if isinstance(layer, _L.PReLU) and layer.shared_axes is not None:
            rank = len(out_tensor.shape)
            if rank - 1 in [a % rank for a in layer.shared_axes]:
                return "alpha is shared over the channel axis"
        return None

    # -- groups --------------------------------------------------------

    def _build_groups(self):
        root = self._uf.find
        fixed_roots = {}
        for i in self._fixed:
            fixed_roots.setdefault(root(i), self._fixed_reason[i])
        # channel class (root) -> producers [(layer, out index)]
        self.members = collections.defaultdict(list)
        for entry in self._layers.values():
            layer = entry["layer"]
            if isinstance(layer, PRODUCERS) and entry["out"] is not None:
                for j, label in enumerate(entry["out"]):
                    self.members[root(int(label))].append((layer, j))
        # Groups: classes linked through a shared producer.
        uf = _UnionFind()
        uf.new(self._uf.parent.__len__())
        for entry in self._layers.values():
            out = entry["out"]
            if out is not None and len(out):
                first = root(int(out[0]))
                for label in out[1:]:
                    uf.union([first], [root(int(label))])
        by_group = collections.defaultdict(list)
        for cls in self.members:
            by_group[uf.find(cls)].append(cls)
        self.groups, self._group_classes, self.class_group = [], [], {}
        for classes in by_group.values():
            classes.sort()
            names = []
            for cls in classes:
                for layer, _ in self.members[cls]:
                    if layer.name not in names:
                        names.append(layer.name)
            reasons = [fixed_roots[c] for c in classes if c in fixed_roots]
            index = len(self.groups)
            self.groups.append(ChannelGroup(
                index, tuple(names), len(classes), not reasons,
                reasons[0] if reasons else None,
            ))
            self._group_classes.append(classes)
            for cls in classes:
                self.class_group[cls] = index

    def classes(self, group):
        """Channel classes (sorted ids) of group number `group`."""
        return self._group_classes[group]

    def class_of(self, label):
        return self._uf.find(int(label))

    def layer_entries(self):
        """`(layer, input labels, output labels or None)` in graph order."""
        return [(e["layer"], e["ins"], e["out"])
                for e in (self._layers[id(l)] for l in self._order)]

    def __str__(self):
        lines = [f"DependencyGraph of model '{self.model.name}': "
                 f"{len(self.groups)} channel groups"]
        for g in self.groups:
            state = "prunable" if g.prunable else f"kept ({g.reason})"
            lines.append(f"  group {g.index}: {g.channels} channels, layers "
                         f"{', '.join(g.layers)}: {state}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
