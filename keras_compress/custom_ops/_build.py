"""Compiles the operators' C sources with the user's C compiler, on demand.

Nothing is compiled at import: `build(target)` compiles the sources of
`target` into a shared library in a cache folder (`$KERAS_COMPRESS_CACHE`,
else `~/.cache/keras_compress`, subfolder `ops`) named after a hash of the
sources, the compiler and the flags, and returns its path; a later call
finds it there. The library is written to a temporary file and renamed,
so a build that fails or is interrupted leaves nothing behind.
"""

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

SOURCES = {
    # The LiteRT external delegate.
    "litert": ("kc_binary.c", "kc_litert_delegate.c"),
    # The registerer of the pip tflite-micro wheel's Python interpreter.
    "micro": ("kc_binary.c", "kc_tflm_python.c"),
    # The core alone, every function visible (to call it with ctypes).
    "core": ("kc_binary.c",),
}
DEFINES = {
    "litert": ("-fvisibility=hidden",),
    "micro": ("-fvisibility=hidden",),
    "core": (),
}
HEADERS = ("kc_binary.h", "kc_tflite_abi.h")
_FLAGS = ("-std=c99", "-O3", "-fPIC", "-shared")
# Tried first (the host's popcount and vector instructions), dropped if the
# compiler refuses it.
_NATIVE = ("-march=native",)


class BuildError(RuntimeError):
    """The operators could not be compiled here (no compiler, or it failed)."""


def source_dir():
    """The folder of the C sources shipped with keras-compress."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")


def compiler():
    """The C compiler: `$CC`, else the first of cc, gcc and clang on PATH."""
    wanted = os.environ.get("CC")
    names = [wanted] if wanted else ["cc", "gcc", "clang"]
    for name in names:
        path = shutil.which(name.split()[0]) if name else None
        if path:
            return path
    raise BuildError(
        "Running the binary operators in LiteRT or TFLite Micro on this "
        "machine compiles them with a C compiler, and none was found "
        f"({'CC=' + repr(wanted) if wanted else 'cc, gcc and clang are not on PATH'}). "
        "Install one (Debian/Ubuntu: apt install gcc; macOS: xcode-select "
        "--install) or set CC. Exporting without binary='packed' needs none."
    )


def cache_dir():
    root = os.environ.get("KERAS_COMPRESS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_compress")
    return os.path.join(root, "ops")


def build(target):
    """Compiles `target` if needed; returns the path of the shared library.

    Targets: "litert" (the delegate), "micro" (the tflite-micro wheel's
    registerer) and "core" (the C core alone). Raises `BuildError` if it
    cannot be built.
    """
    if target not in SOURCES:
        raise ValueError(
            f"Expected `target` to be one of {sorted(SOURCES)}. Received: "
            f"target={target!r}"
        )
    cc = compiler()
    folder = source_dir()
    sources = [os.path.join(folder, name) for name in SOURCES[target]]
    digest = hashlib.sha256()
    for name in SOURCES[target] + HEADERS:
        with open(os.path.join(folder, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    flags = _FLAGS + DEFINES[target]
    digest.update(f"{cc}|{_version(cc)}|{flags}|{platform.machine()}".encode())
    out_dir = cache_dir()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"libkc_{target}_{digest.hexdigest()[:16]}.so")
    if os.path.isfile(path):
        return path
    fd, temp = tempfile.mkstemp(prefix=".build_", suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        errors = ""
        for extra in (_NATIVE, ()):
            command = [cc, *flags, *extra, "-I", folder, *sources, "-o", temp]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode == 0:
                os.replace(temp, path)
                return path
            errors = result.stderr
        raise BuildError(
            f"The C compiler {cc} could not build the {target} binary "
            f"operators: {errors.strip()[-1500:]}"
        )
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def _version(cc):
    try:
        result = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                timeout=30)
        return result.stdout.splitlines()[0] if result.stdout else ""
    except (OSError, subprocess.SubprocessError):
        return ""
