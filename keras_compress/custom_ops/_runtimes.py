"""Load the compiled operators into LiteRT and TFLite Micro."""

import ctypes
import importlib.metadata
import os

from keras_compress.custom_ops import _build

# The tflite-micro wheel whose resolver layout kc_tflm_python.c writes (the
# registration of custom operators in its Python interpreter is checked
# against this build only; firmware builds TFLM from source).
PINNED_TFLM = "0.dev20261023182759"
REGISTERER = "KcRegisterBinaryOps"
_loaded = {}


def litert_delegate():
    """The LiteRT delegate that runs the binary operators (built on demand;
    one per process)."""
    if "litert" not in _loaded:
        from ai_edge_litert.interpreter import load_delegate

        _loaded["litert"] = load_delegate(_build.build("litert"))
    return _loaded["litert"]


def micro_registerers():
    """Registerer names for TFLM's Python interpreter (`custom_op_registerers`),
    after loading the compiled registerer into the process.

    Raises:
        BuildError: if the installed tflite-micro is not the pinned build,
            or the operators cannot be compiled.
    """
    try:
        version = importlib.metadata.version("tflite-micro")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != PINNED_TFLM:
        raise _build.BuildError(
            "The binary operators register with TFLite Micro's Python "
            f"interpreter through the resolver layout of tflite-micro=="
            f"{PINNED_TFLM}; the installed one is {version!r}. Install that "
            "build (pip install tflite-micro==" + PINNED_TFLM + ") to run "
            "packed files here; firmware compiles kc_tflm_ops.h with its own "
            "TFLM sources and is not affected."
        )
    if "micro" not in _loaded:
        library = ctypes.CDLL(_build.build("micro"), mode=os.RTLD_GLOBAL)
        if not library.KcSetMicroApi(*_wheel_functions()):
            raise _build.BuildError(
                "The tflite-micro wheel does not export the kernel functions "
                f"the binary operators call ({', '.join(_WHEEL_FUNCTIONS)})."
            )
        _loaded["micro"] = library
    return [REGISTERER]


# The functions the pinned wheel's kernels reach the interpreter with
# (tflite::micro::MicroContext*: allocate, request scratch, get scratch,
# get eval tensor, report an error), by their exported C++ names.
_WHEEL_FUNCTIONS = (
    "_ZN6tflite5micro36MicroContextAllocatePersistentBufferEPNS0_13TfLiteContextEm",
    "_ZN6tflite5micro39MicroContextRequestScratchBufferInArenaEPNS0_13TfLiteContextEmPi",
    "_ZN6tflite5micro28MicroContextGetScratchBufferEPNS0_13TfLiteContextEi",
    "_ZN6tflite5micro25MicroContextGetEvalTensorEPKNS0_13TfLiteContextEi",
    "_ZN6tflite5micro25MicroContextReportOpErrorEPNS0_13TfLiteContextEPKcz",
)


def _wheel_functions():
    from tflite_micro.python.tflite_micro import _runtime

    wheel = ctypes.CDLL(_runtime.__file__)
    try:
        return [ctypes.cast(getattr(wheel, name), ctypes.c_void_p) for name in _WHEEL_FUNCTIONS]
    except AttributeError as e:
        raise _build.BuildError(
            f"The tflite-micro wheel does not export {e}: it is not the "
            f"pinned build {PINNED_TFLM}."
        ) from None
