"""Which constants to compress, how, and what it saves.

Every quantized constant (int8 weights, int32 biases) that a weight
operator reads is encoded with each decode type; a tensor is compressed
with the allowed type that saves the most flash, if any saves at all.
The cost of a compressed tensor is its encoded and ancillary bytes (each
buffer padded to 16 bytes) plus the flatbuffer bytes of one more tensor,
buffer and DECODE operator per consumer, measured once per model by
serializing it with placeholder encodings.
"""

import collections

import numpy as np

from keras_compress import _tflite
from keras_compress._decode import layout as _layout
from keras_compress._decode import rewrite
from keras_compress._decode.huffman import Huffman
from keras_compress._decode.lut import Lut
from keras_compress._decode.prune import Prune

CODECS = {"lut": Lut(), "prune": Prune(), "huffman": Huffman()}
METHODS = {
    "lut": ("lut",),
    "prune": ("prune",),
    "huffman": ("huffman",),
    "auto": ("lut", "prune", "huffman"),
}
# Operators whose constant inputs DECODE may replace (those TFLM documents
# for compression). A DECODE output is written when the model runs, so the
# consumer's kernel must not read it while being prepared: TFLM's reference
# kernels for these do not (every bundle is run to prove it).
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def padded(n):
    """Bytes a buffer of `n` bytes takes, 16-byte aligned."""
    return -(-n // 16) * 16


class Candidate:
    """A quantized constant read by operators, and its encodings."""

    def __init__(self, g, t, tensor, consumers, values, layout, reason):
        self.key = (g, t)
        self.tensor = tensor
        self.consumers = consumers
        self.values = values
        self.layout = layout
        self.reason = reason
        self.encodings = {}
        self.notes = {}
        self.choice = None
        self.saving = None
        self.label = f"tensor_{t}"

    def encode_all(self):
        for name, codec in CODECS.items():
            try:
                self.encodings[name] = codec.encode(self.values, self.layout)
            except _layout.NotDecodable as e:
                self.notes[name] = str(e)

    def payload(self, name):
        encoded, ancillary, _ = self.encodings[name]
        return len(encoded) + len(ancillary)

    def cost(self, name, per_decode):
        encoded, ancillary, _ = self.encodings[name]
        extra_copies = (len(self.consumers) - 1) * 12 * self.layout.channels
        return (padded(len(encoded)) + padded(len(ancillary))
                + len(self.consumers) * per_decode + extra_copies)

    def row(self):
        t = self.tensor
        name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else t.name
        dtype = _layout.TYPE_NAMES.get(t.type, str(t.type))
        before = self.values.nbytes if self.values is not None else None
        row = {
            "name": name or self.label,
            "subgraph": self.key[0],
            "tensor": self.key[1],
            "shape": [int(d) for d in t.shape],
            "dtype": dtype,
            "consumers": self.consumers,
            "channels": self.layout.channels if self.layout else None,
            "channel_axis": _axis(self.layout),
            "distinct": None,
            "zeros": None,
            "bits": None,
            "bytes_before": before,
            "bytes_after": before,
            "candidates": {n: None for n in CODECS},
            "decode_type": None,
            "compressed": False,
            "reason": self.reason,
        }
        if self.values is not None and self.layout is not None:
            flat = self.values.reshape(-1)
            row["distinct"] = int(Lut.distinct(flat, self.layout))
            try:
                zeros = flat == Prune.zero_points(self.layout)
                row["zeros"] = round(float(np.mean(zeros)), 4)
            except _layout.NotDecodable:
                pass
            if "lut" in self.encodings:
                row["bits"] = self.encodings["lut"][2]["bits"]
            row["candidates"] = {
                n: (self.payload(n) if n in self.encodings else None) for n in CODECS
            }
        if self.choice is not None:
            row["decode_type"] = self.choice
            row["compressed"] = True
            row["bytes_after"] = self.payload(self.choice)
        return row


def _axis(layout):
    if layout is None or not layout.per_channel:
        return None
    return len(layout.shape) - 1 if layout.last_axis else 0


def _raw(model, data, tensor):
    buffer = model.buffers[tensor.buffer]
    if buffer.data is not None and len(buffer.data):
        return np.asarray(buffer.data, dtype=np.uint8).tobytes()
    if buffer.offset > 1 and buffer.size:
        return bytes(data[buffer.offset : buffer.offset + buffer.size])
    return None


def find_candidates(model, data):
    """A `Candidate` for every quantized constant an operator reads."""
    codes = model.operatorCodes or []
    found = []
    for g, graph in enumerate(model.subgraphs):
        tensors = graph.tensors or []
        consumers = collections.defaultdict(list)
        roles = {}
        for k, op in enumerate(graph.operators or []):
            name = _tflite.builtin_op_name(codes[op.opcodeIndex])
            inputs = [int(i) for i in op.inputs]
            for j, i in enumerate(inputs):
                if i >= 0 and j == inputs.index(i):
                    consumers[i].append(name)  # One entry per operator.
                    roles.setdefault(i, _role(name, k, j))
        users = collections.Counter(t.buffer for t in tensors if t.buffer > 0)
        io = {int(i) for i in list(graph.inputs) + list(graph.outputs)}
        for t in sorted(consumers):
            tensor = tensors[t]
            q = tensor.quantization
            if q is None or q.scale is None or len(q.scale) == 0:
                continue  # Shapes, axes, ...: not weights.
            constant = not tensor.isVariable and tensor.buffer > 0
            raw = _raw(model, data, tensor) if constant else None
            if not raw:
                continue  # Not a constant.
            reason, values, layout = None, None, None
            others = sorted(set(consumers[t]) - set(WEIGHT_OPS))
            try:
                layout = _layout.Layout.of(rewrite.decoded_copy(tensor))
                values = np.frombuffer(raw, dtype=layout.dtype)
                if values.size != layout.size:
                    raise _layout.NotDecodable(
                        f"{values.size} stored values for shape {list(layout.shape)}"
                    )
                values = values.reshape(layout.shape)
            except _layout.NotDecodable as e:
                reason, layout = str(e), None
            if others:
                reason = (
                    f"read by {', '.join(others)}: DECODE is inserted for "
                    f"the constants of {', '.join(WEIGHT_OPS)} only"
                )
            elif t in io:
                reason = "a subgraph input or output"
            elif users[tensor.buffer] > 1:
                reason = "shares its buffer with another tensor"
            candidate = Candidate(g, t, tensor, consumers[t], values, layout, reason)
            candidate.label = roles[t]
            found.append(candidate)
    return found


def _role(op_name, k, j):
    """A name for input `j` of operator `k`, e.g. `conv_2d_3/weights`."""
    bias = 3 if op_name == "TRANSPOSE_CONV" else 2
    role = {1: "weights", bias: "bias"}.get(j, f"input_{j}")
    return f"{op_name.lower()}_{k}/{role}"


def measure_overhead(model, candidates):
    """Flatbuffer bytes of one more DECODE, and of its operator code.

    Serializes the model with placeholder encodings (16 + 16 bytes) for
    one and then two constants read by one operator each (or by the
    fewest operators when there are not two such).

    Returns:
        `(per_decode, opcode)` in bytes.
    """
    base = len(_tflite.serialize(model))
    sizes = []
    fake = (bytes(16), bytes(16))
    chosen = sorted(candidates, key=lambda c: len(c.consumers))[:2]
    if len(chosen) == 2 and len(chosen[1].consumers) > 1:
        chosen = chosen[:1]
    for k in range(1, len(chosen) + 1):
        encodings = {c.key: fake for c in chosen[:k]}
        sizes.append(len(_tflite.serialize(rewrite.insert_decodes(model, encodings))))
    deltas = [32 - padded(c.values.nbytes) for c in chosen]
    first = sizes[0] - base - deltas[0]
    if len(sizes) == 1:
        return max(first // len(chosen[0].consumers), 0), 0
    per_decode = max(sizes[1] - sizes[0] - deltas[1], 0)
    return per_decode, max(first - per_decode, 0)


def choose(candidates, method, per_decode, opcode):
    """Sets `choice`, `saving` and `reason` of every candidate.

    Returns:
        The `{key: (encoded, ancillary)}` to write; empty when nothing pays.
    """
    allowed = METHODS[method]
    for c in candidates:
        if c.reason is not None:
            continue
        c.encode_all()
        usable = [n for n in allowed if n in c.encodings]
        if not usable:
            c.reason = "; ".join(f"{n}: {c.notes[n]}" for n in allowed)
            continue
        gain = padded(c.values.nbytes)
        savings = {n: gain - c.cost(n, per_decode) for n in usable}
        best = max(usable, key=lambda n: (savings[n], -allowed.index(n)))
        c.saving = savings[best]
        if c.saving > 0:
            c.choice = best
            c.reason = f"{best} saves about {c.saving} bytes"
        else:
            c.reason = (
                f"would grow by about {-c.saving} bytes with {best} "
                f"({c.payload(best)} bytes encoded + {per_decode} bytes of "
                "DECODE operator and tensors per consumer)"
            )
    chosen = [c for c in candidates if c.choice is not None]
    total = sum(c.saving for c in chosen)
    if chosen and total <= opcode:
        for c in chosen:
            c.choice = None
            c.reason = (
                f"the savings ({total} bytes) do not pay for the DECODE "
                f"operator code ({opcode} bytes)"
            )
        chosen = []
    return {c.key: c.encodings[c.choice][:2] for c in chosen}


def decoded_bytes_per_decode(model):
    """Bytes of each tensor each DECODE writes (aligned to 16): a tuple
    per DECODE operator."""
    out = []
    for graph in model.subgraphs:
        for op in graph.operators or []:
            if not rewrite.is_decode(model, op):
                continue
            sizes = []
            for i in op.outputs:
                layout = _layout.Layout.of(graph.tensors[int(i)])
                sizes.append(padded(layout.size * layout.dtype.itemsize))
            out.append(tuple(sizes))
    return out
