"""The C core of the bit-packed binary operators against its NumPy reference.

The core (`keras_compress/custom_ops/csrc/kc_binary.c`) is compiled with
the machine's C compiler and called through ctypes; without a compiler the
tests are skipped with the reason.
"""

import ctypes
import shutil
import struct
import subprocess

import numpy as np
import pytest

from keras_compress import custom_ops
from keras_compress.custom_ops import options as op_options
from keras_compress.custom_ops import reference


_ROUNDING = {"double": 0, "single": 1}


def _core():
    try:
        core = ctypes.CDLL(custom_ops.build("core"))
    except custom_ops.BuildError as e:
        pytest.skip(f"no C core here: {e}")
    options, pointer = ctypes.POINTER(_Options), ctypes.c_void_p
    core.kc_parse_options.argtypes = [ctypes.c_char_p, ctypes.c_int32, options]
    core.kc_binary_run.argtypes = ([options, ctypes.c_int32, ctypes.c_int32]
                                   + [pointer] * 5 + [ctypes.c_int32])
    core.kc_check_table.argtypes = [options, pointer]
    core.kc_scratch_bytes.argtypes = [options]
    core.kc_scratch_bytes_fast.argtypes = [options]
    core.kc_multiply_by_quantized_multiplier.argtypes = [ctypes.c_int32] * 4
    core.kc_multiply_by_quantized_multiplier.restype = ctypes.c_int32
    return core


class _Options(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in op_options.FIELDS]


def _parse(core, data):
    out = _Options()
    status = core.kc_parse_options(ctypes.c_char_p(data), len(data), ctypes.byref(out))
    return status, {name: getattr(out, name) for name in op_options.FIELDS}


def _random_case(rng, kind, binary):
    if kind == op_options.FC:
        o = dict.fromkeys(op_options.FIELDS, 0)
        o.update(kind=kind, in_h=1, in_w=1, out_h=1, out_w=1, k_h=1, k_w=1,
                 stride_h=1, stride_w=1, dilation_h=1, dilation_w=1,
                 in_c=int(rng.integers(1, 100)), out_c=int(rng.integers(1, 40)))
    else:
        k_h, k_w = (int(v) for v in rng.integers(1, 4, 2))
        stride_h, stride_w = (int(v) for v in rng.integers(1, 3, 2))
        dil_h, dil_w = (int(v) for v in rng.integers(1, 3, 2))
        in_h, in_w = (int(v) for v in rng.integers(3, 9, 2))
        same = bool(rng.integers(0, 2))
        o = dict.fromkeys(op_options.FIELDS, 0)
        o.update(kind=kind, in_h=in_h, in_w=in_w, in_c=int(rng.integers(1, 70)),
                 out_c=int(rng.integers(1, 12)), k_h=k_h, k_w=k_w,
                 stride_h=stride_h, stride_w=stride_w, dilation_h=dil_h,
                 dilation_w=dil_w)
        for axis, pad in (("h", "pad_top"), ("w", "pad_left")):
            extent = (o[f"k_{axis}"] - 1) * o[f"dilation_{axis}"] + 1
            size = o[f"in_{axis}"]
            stride = o[f"stride_{axis}"]
            out = -(-size // stride) if same else max(1, -(-(size - extent + 1) // stride))
            total = max((out - 1) * stride + extent - size, 0)
            o[f"out_{axis}"] = out
            o[pad] = total // 2 if same else 0
        if any(o[f"out_{a}"] < 1 for a in "hw"):
            return _random_case(rng, kind, binary)
    if binary:
        o.update(input_mode=op_options.INPUT_BINARY,
                 threshold=int(rng.integers(-20, 20)),
                 d_plus=int(rng.integers(1, 200)), d_minus=-int(rng.integers(1, 200)))
        if rng.integers(0, 2):
            o["d_minus"] = -o["d_plus"]  # the symmetric (XOR-only) path
    else:
        o.update(input_mode=op_options.INPUT_INT8,
                 input_zero_point=int(rng.integers(-128, 128)))
    o["output_zero_point"] = int(rng.integers(-20, 20))
    o["act_min"] = int(rng.integers(-128, 0))
    o["act_max"] = int(rng.integers(0, 128))
    try:
        op_options.check(o)
    except ValueError:
        return _random_case(rng, kind, binary)
    taps = o["k_h"] * o["k_w"]
    signs = rng.choice([-1, 1], size=(o["out_c"], taps, o["in_c"]))
    packed = reference.pack_signs(signs, op_options.words_per_tap(o))
    parameters = np.stack([
        rng.integers(0, 128, o["out_c"]),
        rng.integers(-5000, 5000, o["out_c"]),
        rng.integers(1 << 29, (1 << 31) - 1, o["out_c"]),
        rng.integers(-14, -6, o["out_c"]),
    ], axis=1)
    if rng.integers(0, 2):
        parameters[:, 0] = parameters[0, 0]  # a shared magnitude
    table = op_options.split_parameters(o, parameters)
    batch = int(rng.integers(1, 4))
    x = rng.integers(-128, 128, (batch, o["in_h"] * o["in_w"] * o["in_c"])).astype(np.int8)
    return o, signs, packed, table, x, batch


@pytest.mark.parametrize("room", ["least", "fast"])
@pytest.mark.parametrize("rounding", ["double", "single"])
def test_c_core_equals_numpy_on_random_shapes(rounding, room):
    core = _core()
    rng = np.random.default_rng(7)
    for case in range(80):
        kind = op_options.FC if case % 2 else op_options.CONV2D
        o, _, packed, table, x, batch = _random_case(rng, kind, binary=case % 4 < 2)
        status, parsed = _parse(core, op_options.pack(o))
        assert status == 0 and parsed == o
        want = reference.run(o, x, packed, table, rounding=rounding)
        out = np.zeros(batch * o["out_h"] * o["out_w"] * o["out_c"], np.int8)
        options = _Options(**o)
        size = (core.kc_scratch_bytes if room == "least" else core.kc_scratch_bytes_fast)
        nbytes = size(ctypes.byref(options))
        scratch = np.zeros(nbytes // 4, np.uint32)
        status = core.kc_binary_run(
            ctypes.byref(options), _ROUNDING[rounding], batch, x.ctypes.data, packed.ctypes.data,
            np.ascontiguousarray(table).ctypes.data, out.ctypes.data, scratch.ctypes.data,
            nbytes)
        assert status == 0
        np.testing.assert_array_equal(out.reshape(want.shape), want, err_msg=str(o))


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_requantization_matches_numpy(rounding):
    core = _core()
    rng = np.random.default_rng(3)
    xs = rng.integers(-(2**31), 2**31 - 1, 3000)
    ms = rng.integers(1 << 30, (1 << 31) - 1, 3000)
    shifts = rng.integers(-31, 1, 3000)
    got = [core.kc_multiply_by_quantized_multiplier(int(x), int(m), int(s), _ROUNDING[rounding])
           for x, m, s in zip(xs[:300], ms[:300], shifts[:300])]
    want = reference.multiply_by_quantized_multiplier(xs[:300], ms[:300], shifts[:300], rounding)
    np.testing.assert_array_equal(got, want)


def test_pack_signs_round_trip_is_bit_exact():
    rng = np.random.default_rng(0)
    for in_c in (1, 7, 31, 32, 33, 64, 100):
        signs = rng.choice([-1, 1], size=(5, 9, in_c)).astype(np.int8)
        words = -(-in_c // 32)
        packed = reference.pack_signs(signs, words)
        assert packed.shape == (9 * words, 5 * 4)
        np.testing.assert_array_equal(reference.unpack_signs(packed, 9, in_c), signs)
        # Row k = tap * words + w: one little-endian word per output
        # channel; bit c = input channel 32 w + c; unused bits zero.
        for out in (0, 3):
            for tap in (0, 8):
                row = packed[tap * words]
                word = struct.unpack("<I", row[4 * out:4 * out + 4].tobytes())[0]
                for c in range(min(in_c, 32)):
                    assert (word >> c) & 1 == (signs[out, tap, c] > 0)
                assert word >> min(in_c, 32) == 0


def test_corrupt_options_are_refused_by_c_and_python():
    core = _core()
    rng = np.random.default_rng(1)
    o = _random_case(rng, op_options.CONV2D, True)[0]
    good = op_options.pack(o)
    assert _parse(core, good)[0] == 0
    bad = {
        "short": good[:-4],
        "magic": b"XXXX" + good[4:],
        "kind": good[:4] + struct.pack("<i", 7) + good[8:],
        "shape": bytes(good[:4 + 4 * 9]) + struct.pack("<i", 0) + good[4 + 4 * 10:],
        "shift": good[:-4] + struct.pack("<i", 40),
    }
    for name, data in bad.items():
        assert _parse(core, data)[0] == 1, name  # KC_BAD_OPTIONS
        with pytest.raises(ValueError, match="Expected"):
            op_options.parse(data)


def test_table_values_that_would_overflow_are_refused():
    core = _core()
    rng = np.random.default_rng(2)
    o, _, packed, table, x, batch = _random_case(rng, op_options.FC, False)
    options = _Options(**o)
    table = np.ascontiguousarray(table)
    assert core.kc_check_table(ctypes.byref(options), table.ctypes.data) == 0
    parameters = op_options.channel_parameters(o, table)
    parameters[0, 3] = 31  # a shift TFLite never writes
    o2 = dict(o)
    bad = np.ascontiguousarray(op_options.split_parameters(o2, parameters))
    assert core.kc_check_table(ctypes.byref(_Options(**o2)), bad.ctypes.data) == 4


def test_core_needs_no_libc(tmp_path):
    # C99, no allocation, nothing beyond <stdint.h>: the object file calls
    # nothing but (where the target has no popcount instruction) the
    # compiler's own popcount helper.
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler here")
    source = f"{custom_ops.source_dir()}/kc_binary.c"
    obj = tmp_path / "kc_binary.o"
    result = subprocess.run(
        [cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2",
         "-ffreestanding", "-c", source, "-o", str(obj)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    undefined = subprocess.run(["nm", "-u", str(obj)], capture_output=True,
                               text=True).stdout.split()
    assert set(undefined) - {"U", "__popcountdi2", "__popcountsi2"} == set()
