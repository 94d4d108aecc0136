"""Mutated .tflite files never crash or hang a process (seeded, bounded).

Mutants of a float32, an int8, a sparse int8, a LUT-compressed TFLM, a
bit-packed binary and a single-file early-exit model (truncations, byte
flips, zeroed runs, header bytes) go to `summarize`, `LiteRTModel`,
`MicroModel`, `EarlyExitRunner` and the CLI's `report` and `bench`, each
call in a process of its own: it must return (the file still valid) or
raise a `ValueError` with a message, never die by a signal, hang, or raise
anything else.
"""

import collections
import concurrent.futures
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_compress import export

PROBE = os.path.join(os.path.dirname(__file__), "fuzz_probe.py")
# KC_FUZZ_MUTANTS=50 gives the 300 mutants quoted in the README;
# KC_FUZZ_SEED draws another set.
MUTANTS_PER_FILE = int(os.environ.get("KC_FUZZ_MUTANTS", "12"))
SEED = int(os.environ.get("KC_FUZZ_SEED", "0"))
TIMEOUT_S = 120
CALLS = {
    "float32": ("summarize", "litert", "cli_report"),
    "int8": ("summarize", "litert", "micro", "cli_bench"),
    # XNNPACK refuses sparse int8 weights; LiteRT's builtin kernels run them.
    "sparse_int8": ("summarize", "litert", "litert_builtin"),
    "lut": ("summarize", "micro", "litert"),
    "binary_packed": ("summarize", "litert", "micro"),
    "early_exit": ("early_exit", "summarize", "micro"),
}


def _mutants(data, seed, count):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        b = bytearray(data)
        kind = k % 4
        if kind == 0:  # truncation
            b = b[: int(rng.integers(8, len(b)))]
        elif kind == 1:  # byte flips
            for _ in range(int(rng.integers(1, 9))):
                b[int(rng.integers(0, len(b)))] ^= int(rng.integers(1, 256))
        elif kind == 2:  # a zeroed run
            start = int(rng.integers(0, len(b)))
            end = min(len(b), start + int(rng.integers(16, 257)))
            b[start:end] = bytes(end - start)
        else:  # header bytes (root offset, identifier)
            for i in rng.choice(8, size=2, replace=False):
                b[int(i)] = int(rng.integers(0, 256))
        out.append(bytes(b))
    return out


@pytest.fixture(scope="module")
def base_files(cnn_float, cnn_int8, digits, tmp_path_factory):
    """The six kinds of file, built small."""
    from keras_compress.early_exit import add_early_exits, export_early_exit_file
    from keras_compress.layers import BinaryDense

    (x_train, y_train), _ = digits
    folder = tmp_path_factory.mktemp("fuzz_base")
    files = {"float32": cnn_float, "int8": cnn_int8}
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    kernel = dense.layers[1].kernel.numpy()
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.8)] = 0
    dense.layers[1].kernel.assign(kernel)
    files["sparse_int8"] = export.to_tflite(dense, quantize="int8", sparse=True,
                                            representative_data=x_train[:64], verify=False)
    clustered = keras.models.clone_model(dense)
    clustered.set_weights(dense.get_weights())
    k = clustered.layers[1].kernel.numpy()
    centers = np.linspace(k.min(), k.max(), 16)
    clustered.layers[1].kernel.assign(centers[np.abs(k[..., None] - centers).argmin(-1)])
    report = export.to_micro(clustered, os.path.join(folder, "lut"), "lut",
                             representative_data=x_train[:64], compression="lut")
    with open(os.path.join(folder, "lut", report["files"]["tflite"]), "rb") as f:
        files["lut"] = f.read()
    binary = keras.Sequential([keras.Input((64,)), BinaryDense(64, binarize_inputs=True),
                               keras.layers.Dense(10)])
    files["binary_packed"] = export.to_tflite(
        binary, quantize="int8", binary="packed",
        representative_data=x_train[:64].reshape(-1, 64), verify=False)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="b0")(inputs)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="b1")(h)
    backbone = keras.Model(inputs, keras.layers.Dense(10)(
        keras.layers.GlobalAveragePooling2D()(h)))
    files["early_exit"] = export_early_exit_file(
        add_early_exits(backbone, ["b0"]), quantize="int8",
        representative_data=x_train[:64], verify=False)
    return files


def _probe(call, path):
    try:
        done = subprocess.run([sys.executable, PROBE, call, path], capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "hang", ""
    lines = [line for line in done.stdout.splitlines() if line.startswith(("ok", "error "))]
    if done.returncode < 0:
        return "crash", f"signal {-done.returncode}"
    if not lines:
        return "crash", f"exit {done.returncode}: {done.stderr[-300:]}"
    return ("ok", "") if lines[-1] == "ok" else ("error", lines[-1])


@pytest.mark.slow
def test_mutated_files_never_crash(base_files, tmp_path):
    jobs = []
    for n, (kind, data) in enumerate(sorted(base_files.items())):
        for m, mutant in enumerate(_mutants(data, seed=100 + n + 1000 * SEED, count=MUTANTS_PER_FILE)):
            path = os.path.join(tmp_path, f"{kind}_{m}.tflite")
            with open(path, "wb") as f:
                f.write(mutant)
            for call in CALLS[kind]:
                jobs.append((kind, m, call, path))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda job: (job, _probe(job[2], job[3])), jobs))
    counts = collections.Counter(result for _, (result, _) in outcomes)
    bad = []
    for (kind, m, call, _), (result, detail) in outcomes:
        if result in ("crash", "hang"):
            bad.append(f"{kind} mutant {m}, {call}: {result} {detail}")
        elif result == "error" and not detail.startswith("error ValueError: ") or \
                detail == "error ValueError: ":
            bad.append(f"{kind} mutant {m}, {call}: {detail}")
    print(f"fuzz (seed {SEED}): {len(base_files) * MUTANTS_PER_FILE} mutants, "
          f"{len(jobs)} calls, {dict(counts)}")
    assert not bad, "\n".join(bad)
    assert counts["error"] > len(jobs) // 3  # most mutants are caught


@pytest.mark.parametrize("path", ["corrupt_sparse_int8.tflite"])
def test_known_crashing_fixture_is_refused(path):
    fixture = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", path)
    if not os.path.isfile(fixture):
        pytest.skip(f"{fixture} is not beside the checkout")
    for call in ("litert", "summarize", "micro"):
        result, detail = _probe(call, fixture)
        assert result == "error", (call, result, detail)
        assert "STRIDED_SLICE" in detail and "takes 4" in detail, detail
