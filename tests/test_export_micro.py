"""to_micro bundles, checked in the TensorFlow Lite Micro interpreter."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from keras_compress import export
from keras_compress.runtime import LiteRTModel, MicroModel


@pytest.fixture(scope="module")
def bundle(cnn_int8, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "micro"
    report = export.to_micro(cnn_int8, out, "digits")
    return out, report


def _c_array_bytes(source):
    body = source[source.index("{") + 1 : source.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def test_bundle_files_and_report(bundle, cnn_int8):
    out, report = bundle
    assert sorted(os.listdir(out)) == [
        "digits.c", "digits.h", "digits.tflite", "digits_report.json"
    ]
    lean = export.lean_tflite(cnn_int8)  # to_micro's default lean=True.
    assert (out / "digits.tflite").read_bytes() == lean
    on_disk = json.loads((out / "digits_report.json").read_text())
    assert on_disk == report
    assert report["flash_bytes"] == len(lean) < len(cnn_int8)
    assert report["ops"][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert {"ADD", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= set(report["ops"])
    assert "AddDepthwiseConv2D" in report["resolver"]
    assert report["inputs"][0]["dtype"] == "int8"
    header = (out / "digits.h").read_text()
    assert f"#define DIGITS_ARENA_SIZE {report['arena_bytes']}" in header
    assert "resolver.AddFullyConnected();" in header


def test_c_array_is_byte_identical(bundle):
    out, _ = bundle
    tflite = (out / "digits.tflite").read_bytes()
    source = (out / "digits.c").read_text()
    assert _c_array_bytes(source) == tflite
    assert f"digits_tflite_len = {len(tflite)};" in source


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_array_compiles_aligned_and_identical(bundle, tmp_path):
    out, _ = bundle
    main = tmp_path / "main.c"
    main.write_text(
        '#include <stdio.h>\n#include <stdint.h>\n#include "digits.h"\n'
        "int main(void) {\n"
        "  if ((uintptr_t)digits_tflite % 16) return 3;\n"
        "  fwrite(digits_tflite, 1, digits_tflite_len, stdout);\n"
        "  return 0;\n}\n"
    )
    binary = tmp_path / "dump"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", f"-I{out}", str(main),
                    str(out / "digits.c"), "-o", str(binary)], check=True)
    dumped = subprocess.run([str(binary)], capture_output=True, check=True).stdout
    assert dumped == (out / "digits.tflite").read_bytes()


def test_arena_is_the_smallest_that_works(bundle, cnn_int8, digits):
    _, report = bundle
    arena = report["arena_bytes"]
    assert 0 < arena < 256 * 1024 and arena % 16 == 0
    _, (x_test, _) = digits
    MicroModel(cnn_int8, arena_size=arena).predict(x_test[:2])
    with pytest.raises(RuntimeError, match="could not load"):
        MicroModel(cnn_int8, arena_size=arena - 16)


def test_tflm_agrees_with_litert_int8(cnn, cnn_int8, digits):
    """TFLM's kernels descend from LiteRT's reference kernels: their int8
    outputs agree on nearly every value (measured: 0-0.2% differ, by <= 3
    steps). XNNPACK rounds differently (measured: 10-15% of values differ,
    by <= 5 steps) but predicts the same class on nearly every sample."""
    _, (x_test, y_test) = digits
    micro = MicroModel(cnn_int8).predict(x_test, raw=True).astype(int)
    reference = LiteRTModel(cnn_int8, kernels="reference").predict(x_test, raw=True)
    diff = np.abs(micro - reference.astype(int))
    assert np.mean(diff == 0) >= 0.99 and diff.max() <= 4
    assert np.array_equal(micro.argmax(1), reference.argmax(1))
    xnnpack = LiteRTModel(cnn_int8).predict(x_test, raw=True)
    diff = np.abs(micro - xnnpack.astype(int))
    assert np.mean(diff == 0) >= 0.75 and diff.max() <= 8
    assert np.mean(micro.argmax(1) == xnnpack.argmax(1)) >= 0.99
    keras_acc = cnn.evaluate(x_test, y_test, verbose=0)[1]
    assert MicroModel(cnn_int8).evaluate(x_test, y_test) >= keras_acc - 0.02


def test_keras_model_goes_straight_to_a_bundle(cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    report = export.to_micro(cnn, tmp_path / "b", "cnn", representative_data=x_train[:100])
    micro = MicroModel(tmp_path / "b" / "cnn.tflite")
    assert micro.arena_bytes == report["arena_bytes"]
    assert micro.evaluate(x_test, y_test) > 0.8


@pytest.mark.parametrize("mode", [None, "float16", "dynamic"])
def test_refuses_models_that_are_not_full_int8(cnn, mode, tmp_path):
    data = export.to_tflite(cnn, quantize=mode)
    with pytest.raises(ValueError, match="full-int8"):
        export.to_micro(data, tmp_path / "b", "cnn")
    assert not (tmp_path / "b").exists()


def test_keras_model_without_calibration_data(cnn, tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        export.to_micro(cnn, tmp_path / "b", "cnn")


@pytest.mark.parametrize("name", ["2fast", "my-model", "", None])
def test_name_must_be_a_c_identifier(cnn_int8, tmp_path, name):
    with pytest.raises(ValueError, match="C identifier"):
        export.to_micro(cnn_int8, tmp_path, name)


def test_out_dir_parent_must_exist(cnn_int8, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        export.to_micro(cnn_int8, tmp_path / "a" / "b", "cnn")
