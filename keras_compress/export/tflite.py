"""Keras model -> LiteRT/TFLite flatbuffer, verified in the LiteRT runtime."""

import logging
import warnings

import numpy as np

from keras_compress import _io
from keras_compress import _tflite
from keras_compress import _inputs
from keras_compress.export import _lean
from keras_compress.export import _packed
from keras_compress.export import _signature
from keras_compress.export import _sparse
from keras_compress import _verify as _verify_outputs
from keras_compress.export.lean import lean_with_check
from keras_compress.export.lean import litert_kernels_for
from keras_compress.quantizers.base import export_mode

QUANTIZE_MODES = (None, "dynamic", "float16", "int8")


def to_tflite(
    model,
    path=None,
    quantize=None,
    representative_data=None,
    int8_io=False,
    sparse=False,
    batch_size=None,
    calibration_samples=200,
    verify=True,
    lean=False,
    binary=None,
):
    """Converts a Keras model to a LiteRT (TFLite) flatbuffer.

    The model is traced with `training=False` through a `tf.function`, so
    Sequential, Functional and subclassed models all convert. Unless
    `verify=False`, the bytes are then loaded in the LiteRT interpreter
    (XNNPACK) and run on a few inputs: the outputs must have Keras's shapes
    and be finite, and a float32 export must match Keras within 1e-3
    (relative to the output scale). Nothing is written unless all of this
    succeeds, and the file is written atomically.

    Args:
        model: A built `keras.Model`.
        path: Optional file path; the folder must exist. Default None
            (return the bytes only).
        quantize: One of `None` (float32, the default), `"float16"` (weights
            stored as float16), `"dynamic"` (int8 weights, float
            activations) or `"int8"` (full-integer: int8 weights and
            activations, calibrated on `representative_data`, or taken
            from the model's own fake-quant ranges after quantization-aware
            training or `keras_compress.quantization.calibrate`).
        representative_data: Inputs for int8 calibration: an array of samples,
            a list of arrays (one per input), a `tf.data.Dataset` (batched or
            not, `(x, y)` elements allowed), a generator, or a callable
            returning an iterable. Required for `quantize="int8"`, unless
            the model carries fake-quant ranges (a `quantize_model` or
            `Quant*` layer model): then the converter uses those ranges,
            every op must have them, and an op left in float is an error
            that names it.
        int8_io: With `quantize="int8"`, make the model's inputs and outputs
            int8 too (what microcontrollers want). Default False (float
            inputs and outputs, quantized inside).
        sparse: Store pruned weights in TFLite's sparse format
            (`Optimize.EXPERIMENTAL_SPARSITY`): pruned models become smaller
            files. Default False. A sparse encoding is never bigger than the
            dense one: a tensor whose values and index arrays (with their
            `DENSIFY` operator) take more bytes than its dense values is
            stored dense (int8 weights need roughly two thirds zeros for the
            index arrays to pay off, float32 ones about a third), and if the
            whole file is still not smaller than the dense conversion, the
            dense file is returned with a warning. Which runtimes run a
            sparse file: float32 and float16 sparse weights run under
            XNNPACK (LiteRT's default). Int8 sparse weights
            (`quantize="int8"` or `"dynamic"`) make LiteRT 2.3's XNNPACK
            delegate fail to prepare the FULLY_CONNECTED ops that read them,
            so such a file is verified with LiteRT's builtin kernels and
            must be run with them or the reference kernels
            (`LiteRTModel(data, kernels="builtin")`). TFLite Micro has no
            `DENSIFY` kernel and runs no sparse file.
        batch_size: Batch dimension of the exported inputs: `None` (default,
            dynamic: any batch) or a fixed positive int (1 for a device;
            static shapes let XNNPACK and TFLite Micro take every op).
        calibration_samples: How many samples of `representative_data` the
            int8 calibration uses, default 200.
        verify: Run the exported model in LiteRT before returning, default
            True.
        lean: Drop what the runtimes never read (tensor names, signature
            def, conversion metadata, per-activation buffers, ...; see
            `keras_compress.export.lean_tflite`), default False. The lean
            file is proven (unless `verify=False`) to give bit-identical
            outputs to the converter's file in LiteRT, with the kernels
            above and the reference kernels. It runs in LiteRT and TFLite
            Micro but has no signature runner.
        binary: None (default: `BinaryDense` / `BinaryConv2D` become int8
            FULLY_CONNECTED / CONV_2D, which every runtime runs) or
            `"packed"` (with `quantize="int8"`: they become the custom
            operators `KC_BINARY_FC` / `KC_BINARY_CONV2D`, weights stored as
            bits, 8x smaller than int8, and XOR/popcount arithmetic where
            the layer binarizes its inputs; see `keras_compress.custom_ops`).
            A packed file runs in LiteRT with the keras-compress delegate
            and in TFLite Micro with its kernels (`LiteRTModel` and
            `MicroModel` compile and load them). Before it is returned, it
            is proven to compute bit for bit what the builtin int8 file
            computes: in NumPy operator by operator, and end to end in LiteRT
            and TFLite Micro (a check that cannot run here, e.g. without a C
            compiler, is skipped with a warning saying why). A layer with
            fewer than 5 input channels per kernel tap stays builtin (its
            bits would not be smaller).

    Returns:
        The flatbuffer as `bytes`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> data = np.random.rand(64, 8).astype("float32")
    >>> tflite_bytes = to_tflite(model, quantize="int8",
    ...                          representative_data=data)
    """
    _inputs.check_model(model)
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Expected `quantize` to be one of {list(QUANTIZE_MODES)}. "
            f"Received: quantize={quantize!r}"
        )
    if int8_io and quantize != "int8":
        raise ValueError(
            "`int8_io=True` needs full-integer quantization. Expected "
            f"quantize='int8'. Received: quantize={quantize!r}"
        )
    qat = quantize == "int8" and _has_fake_quant(model)
    if quantize == "int8" and representative_data is None and not qat:
        raise ValueError(
            "quantize='int8' calibrates activation ranges on data: expected "
            "`representative_data` (an array of model inputs, a "
            "tf.data.Dataset or a generator), or a model with fake-quant "
            "ranges (keras_compress.quantization.quantize_model). Received: "
            "representative_data=None"
        )
    if not isinstance(lean, bool):
        raise TypeError(f"Expected `lean` to be a bool. Received: lean={lean!r}")
    _check_binary(binary, quantize, sparse)
    if not isinstance(calibration_samples, int) or calibration_samples < 1:
        raise ValueError(
            "Expected `calibration_samples` to be a positive int. "
            f"Received: calibration_samples={calibration_samples!r}"
        )
    if path is not None:
        path = _io.check_output_path(path)
    specs = _inputs.tensor_specs(model, batch_size)
    samples = None
    if representative_data is not None:
        samples = _inputs.take_samples(representative_data, specs, calibration_samples)

    if quantize is not None:
        _check_started(model)

    def convert(sparse):
        if quantize is None:
            # Float: the quantizers' switches are traced as they are, so
            # the file computes what Keras computes now.
            return _convert(model, specs, quantize, samples, int8_io, sparse)
        with export_mode():
            return _convert(model, specs, quantize, samples, int8_io, sparse)

    data = convert(sparse)
    if sparse:
        data = _smaller_of_sparse_and_dense(model, data, lambda: convert(False), lean)
    if qat and samples is None:
        _check_all_int8(data, model)
    kernels = litert_kernels_for(data)
    feed = _feed(specs, samples)
    if verify:
        _verify(model, data, feed, quantize, kernels)
    if binary == "packed":
        data = _pack(model, data, specs, samples, verify)
    if lean:
        if verify:
            data = lean_with_check(
                data, sample_inputs=feed,
                litert_kernels=tuple(dict.fromkeys((kernels, "reference"))),
            )
        else:
            data = _lean.lean_bytes(data)
    if path is not None:
        _io.write_atomic(path, data)
    return data


def _convert(model, specs, quantize, samples, int8_io, sparse):
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    # A frozen concrete function of the inference call (training=False):
    # the converter takes it without the SavedModel round trip of
    # TensorFlow's own from_keras_model (4-5x faster: the digits CNN 0.78 ->
    # 0.15 s, its QAT copy 1.9 -> 0.4 s) and writes the same operators. It
    # writes no signature def, so the archive's is added. The batch
    # dimension is the specs'.
    signature = specs if len(specs) == 1 else [specs]
    function = tf.function(
        lambda *args: model(*args, training=False), input_signature=signature
    )
    concrete = function.get_concrete_function()
    frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "providing trackable_obj is deprecated"
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    finally:
        logger.setLevel(level)
    data = _configure_and_convert(converter, model, quantize, samples, int8_io, sparse)
    return _signature.add_signature(
        data, [spec.name for spec in specs],
        _signature.output_names(concrete.structured_outputs),
    )


def _configure_and_convert(converter, model, quantize, samples, int8_io, sparse):
    import tensorflow as tf

    optimizations = []
    if quantize is not None:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if samples is not None:
            converter.representative_dataset = lambda: iter(samples)
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            ]
        # Without samples the converter takes every range from the model's
        # FakeQuant ops (and refuses TFLITE_BUILTINS_INT8 without a
        # representative dataset); _check_all_int8 then proves no op stayed
        # float.
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        with warnings.catch_warnings():
            # Full int8 from fake-quant ranges: the converter warns that it
            # has no statistics for the float inputs it quantizes; the
            # inputs' Quantize ranges are used.
            warnings.filterwarnings(
                "ignore", "Statistics for quantized inputs were expected")
            return converter.convert()
    except Exception as e:
        raise RuntimeError(
            f"The TFLite converter could not convert model {model.name!r} "
            f"(quantize={quantize!r}): {e}"
        ) from e


def _smaller_of_sparse_and_dense(model, data, convert_dense, lean):
    """The sparse file with tensors dense where smaller, or the dense file.

    Sizes are compared as they will be written (after the lean pass when
    `lean`).
    """
    sparse_data = _sparse.densify_where_smaller(data)
    dense_data = convert_dense()

    def size(d):
        return len(_lean.lean_bytes(d)) if lean else len(d)

    sparse_size, dense_size = size(sparse_data), size(dense_data)
    has_sparse = _sparse.has_sparse_tensors(_tflite.parse(sparse_data))
    if has_sparse and sparse_size < dense_size:
        return sparse_data
    warnings.warn(
        f"sparse=True: the sparse encoding of model {model.name!r} "
        f"({sparse_size:,} bytes) is not smaller than the dense one "
        f"({dense_size:,} bytes), so the dense file was kept. Int8 weights "
        "need roughly two thirds zeros, float32 ones about a third, for the "
        "sparse format to pay off.",
        stacklevel=3,
    )
    return dense_data


def _feed(specs, samples, count=8):
    """Verification inputs: up to `count` calibration samples, else random."""
    if samples:
        inputs = [np.concatenate(parts) for parts in zip(*samples[:count])]
        return inputs[0] if len(inputs) == 1 else inputs
    return _verify_outputs.random_inputs(specs, count=count)


def _check_binary(binary, quantize, sparse):
    if binary not in (None, "packed"):
        raise ValueError(
            f"Expected `binary` to be None or 'packed'. Received: binary={binary!r}"
        )
    if binary == "packed" and quantize != "int8":
        raise ValueError(
            "binary='packed' writes binary layers as operators of a full-int8 "
            f"file. Expected quantize='int8'. Received: quantize={quantize!r}"
        )
    if binary == "packed" and sparse:
        raise ValueError(
            "binary='packed' stores binary weights as bits, which TFLite's "
            "sparse format cannot hold. Expected sparse=False. Received: "
            "sparse=True"
        )


def _pack(model, data, specs, samples, verify):
    """The packed file of `data`, proven equal to it (see `binary`)."""
    packed, layers, checks = _packed.pack(data, model)
    if not checks:
        notes = "; ".join(f"{r.layer}: {r.note}" for r in layers)
        raise ValueError(
            "binary='packed' found no binary layer of model "
            f"{model.name!r} worth packing ({notes}). Expected a BinaryDense "
            "or BinaryConv2D with at least 5 input channels per kernel tap."
        )
    if verify:
        _packed.verify(data, packed, checks, _feed(specs, samples, count=64))
    return packed


def _verify(model, data, feed, quantize, kernels):
    from keras_compress.runtime.litert import LiteRTModel

    artifact = f"{quantize or 'float32'} TFLite"
    tolerance = 1e-3 if quantize is None else None
    _verify_outputs.check_outputs(
        LiteRTModel(data, kernels=kernels), model, feed, artifact, tolerance
    )


def _has_fake_quant(model):
    """Whether the model holds keras-compress quantizers (QAT or calibrated)."""
    from keras_compress.layers.quantized.base_quant import model_quantizers

    return any(True for _ in model_quantizers(model))


def _check_started(model):
    from keras_compress.layers.quantized.base_quant import model_quantizers

    waiting = sorted({layer.name for layer, q in model_quantizers(model) if not q.started()})
    if waiting:
        raise ValueError(
            f"Quantization has not started yet in layers {waiting} of model "
            f"{model.name!r} (their quantizers' start_step is still ahead, "
            "e.g. QATSchedule stopped before `quantize_start`): the Keras "
            "model computes in float there, so a quantized export would not "
            "match it. Expected every quantizer started. Train past the "
            "start, or set `quantizer.start_step` to 0."
        )


def _check_all_int8(data, model):
    from keras_compress.runtime.litert import LiteRTModel

    interpreter = LiteRTModel(data, kernels="builtin")._interpreter
    tensors = interpreter.get_tensor_details()
    floating = []
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        ids = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0]
        if any(tensors[i]["dtype"] == np.float32 for i in ids):
            floating.append(op["op_name"])
    if floating:
        raise RuntimeError(
            f"Model {model.name!r} did not convert to full int8 from its "
            f"fake-quant ranges: these ops stayed float: {floating}. Each "
            "op's inputs and outputs need a range: build the model with "
            "keras_compress.quantization.quantize_model (which places "
            "Quantize layers where int8 kernels requantize), add Quantize "
            "layers or output quantizers, or pass representative_data."
        )
