"""The custom options of the binary operators: `KCB1` + 24 int32 fields.

The layout is `kc_options` of `csrc/kc_binary.h`, little-endian; the checks
are those of `kc_parse_options`, so Python refuses what the C core refuses.
"""

import struct

MAGIC = b"KCB1"
FIELDS = (
    "kind", "input_mode", "input_zero_point", "threshold", "d_plus",
    "d_minus", "output_zero_point", "act_min", "act_max", "in_h", "in_w",
    "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w",
    "dilation_h", "dilation_w", "pad_top", "pad_left", "columns",
    "magnitude", "bias", "multiplier", "shift",
)
SIZE = 4 * (len(FIELDS) + 1)
FC, CONV2D = 1, 2
INPUT_INT8, INPUT_BINARY = 0, 1
OP_NAMES = {FC: "KC_BINARY_FC", CONV2D: "KC_BINARY_CONV2D"}
# The channel parameters, in table column order (see `kc_param`).
PARAMS = ("magnitude", "bias", "multiplier", "shift")
_MAX_DIM = 65535
_MAX_ELEMENTS = 1 << 26
_DIMS = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
         "stride_h", "stride_w", "dilation_h", "dilation_w")


def pack(options):
    """`options` (a dict with every field) as custom-option bytes."""
    check(options)
    return MAGIC + struct.pack(f"<{len(FIELDS)}i", *(int(options[f]) for f in FIELDS))


def parse(data, what="custom options"):
    """Custom-option bytes as a dict; `ValueError` if the C core would refuse them."""
    data = bytes(data)
    if len(data) != SIZE or data[:4] != MAGIC:
        raise ValueError(
            f"Expected {what} of {SIZE} bytes starting with {MAGIC!r}. "
            f"Received: {len(data)} bytes starting with {data[:4]!r}"
        )
    options = dict(zip(FIELDS, struct.unpack(f"<{len(FIELDS)}i", data[4:])))
    check(options, what)
    return options


def check(o, what="custom options"):
    """Raises `ValueError` unless `o` holds consistent operator options."""
    def refuse(reason):
        raise ValueError(f"Expected consistent {what}: {reason}. Received: {o}")

    if o["kind"] not in OP_NAMES:
        refuse(f"kind must be {FC} (FC) or {CONV2D} (CONV2D)")
    if o["input_mode"] not in (INPUT_INT8, INPUT_BINARY):
        refuse("input_mode must be 0 or 1")
    if not 0 <= o["columns"] < 1 << len(PARAMS):
        refuse(f"columns must be a bit mask of {len(PARAMS)} bits")
    if not (0 <= o["magnitude"] <= 255 and o["multiplier"] >= 0
            and -31 <= o["shift"] <= 30):
        refuse("the shared magnitude must be in [0, 255], the multiplier "
               ">= 0 and the shift in [-31, 30]")
    for name in _DIMS:
        if not 1 <= o[name] <= _MAX_DIM:
            refuse(f"{name} must be in [1, {_MAX_DIM}]")
    ranges = {"input_zero_point": (-128, 127), "output_zero_point": (-128, 127),
              "act_min": (-128, 127), "act_max": (o["act_min"], 127),
              "threshold": (-128, 128), "d_plus": (-255, 255),
              "d_minus": (-255, 255)}
    for name, (low, high) in ranges.items():
        if not low <= o[name] <= high:
            refuse(f"{name} must be in [{low}, {high}]")
    if (o["in_h"] * o["in_w"] * o["in_c"] > _MAX_ELEMENTS
            or o["out_h"] * o["out_w"] * o["out_c"] > _MAX_ELEMENTS
            or o["k_h"] * o["k_w"] * o["in_c"] > _MAX_ELEMENTS):
        refuse(f"tensors must hold at most {_MAX_ELEMENTS} elements")
    if o["kind"] == FC:
        ones = ("in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "stride_h",
                "stride_w", "dilation_h", "dilation_w")
        if any(o[n] != 1 for n in ones) or o["pad_top"] or o["pad_left"]:
            refuse("a fully connected operator has 1x1 shapes and no padding")
        return
    for axis in ("h", "w"):
        pad = o["pad_top" if axis == "h" else "pad_left"]
        extent = (o[f"k_{axis}"] - 1) * o[f"dilation_{axis}"] + 1
        last = (o[f"out_{axis}"] - 1) * o[f"stride_{axis}"] - pad
        if not 0 <= pad < extent or not (last < o[f"in_{axis}"] and last + extent > 0):
            refuse(f"the output {axis} does not fit the input, kernel, stride "
                   "and padding")


def words_per_tap(o):
    """32-bit words of packed bits per kernel tap."""
    return (o["in_c"] + 31) // 32


def row_bytes(o):
    """Bytes of one output channel's packed weights."""
    return o["k_h"] * o["k_w"] * words_per_tap(o) * 4


def table_columns(o):
    """The parameters stored per channel in the table, in column order."""
    return [name for i, name in enumerate(PARAMS) if (o["columns"] >> i) & 1]


def channel_parameters(o, table):
    """`(out_c, 4)` int64: every channel's magnitude, bias, multiplier and
    shift, from the table's columns and the shared values."""
    import numpy as np

    columns = table_columns(o)
    table = np.asarray(table, dtype=np.int64).reshape(o["out_c"], len(columns))
    out = np.empty((o["out_c"], len(PARAMS)), dtype=np.int64)
    for i, name in enumerate(PARAMS):
        out[:, i] = table[:, columns.index(name)] if name in columns else o[name]
    return out


def split_parameters(o, parameters):
    """Sets `o["columns"]` and the shared values from `(out_c, 4)`
    `parameters`; returns the int32 table of the columns that vary."""
    import numpy as np

    parameters = np.asarray(parameters, dtype=np.int64)
    columns = 0
    for i, name in enumerate(PARAMS):
        values = parameters[:, i]
        if np.all(values == values[0]):
            o[name] = int(values[0])
        else:
            o[name] = 0
            columns |= 1 << i
    o["columns"] = columns
    kept = [i for i in range(len(PARAMS)) if (columns >> i) & 1]
    return np.ascontiguousarray(parameters[:, kept], dtype=np.int32)
