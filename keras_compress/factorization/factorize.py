"""`factorize`: replace `Dense` layers by SVD-initialized `LowRankDense`."""

import numbers

import keras
import numpy as np

from keras_compress._checks import check_number
from keras_compress.graph import graph_layers, rebuild
from keras_compress.factorization._common import build_input_shape
from keras_compress.factorization._common import check_layer_names
from keras_compress.factorization._common import check_model
from keras_compress.factorization._common import finish
from keras_compress.layers.factorized.low_rank_dense import LowRankDense

DEFAULT_ENERGY = 0.9


def _check_args(rank, energy, layers, min_saving):
    if rank is not None and energy is not None:
        raise ValueError(
            "Expected either `rank` or `energy`, not both: `rank` fixes the "
            "rank, `energy` picks it per layer. Received: "
            f"rank={rank!r}, energy={energy!r}"
        )
    if isinstance(rank, dict):
        if layers is not None:
            raise ValueError(
                "Expected `layers=None` when `rank` is a dict (its keys "
                f"select the layers). Received: layers={layers!r}"
            )
        values = list(rank.values())
        if not all(isinstance(k, str) for k in rank):
            raise TypeError(
                "Expected the keys of `rank` to be layer names. "
                f"Received: rank={rank!r}"
            )
    else:
        values = [] if rank is None else [rank]
    for value in values:
        if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                or value < 1):
            raise ValueError(
                "Expected `rank` to be None, an integer >= 1 or a dict of "
                f"layer names to integers >= 1. Received: rank={rank!r}"
            )
    if energy is not None:
        check_number("energy", energy, "a number in (0, 1]", lambda v: 0 < v <= 1)
    if min_saving is not None:
        check_number("min_saving", min_saving, "None or a number in [0, 1)",
                     lambda v: 0 <= v < 1)


def _energies(s):
    squares = s.astype(np.float64) ** 2
    total = squares.sum()
    if total <= 0:
        return np.ones_like(squares)
    return np.cumsum(squares) / total


def factorize(model, rank=None, energy=None, layers=None, min_saving=0.0,
              return_report=False):
    """Replaces `Dense` layers by SVD-initialized `LowRankDense` layers.

    Each selected `Dense` layer with an `M x N` kernel `W = U S V^T` (a
    singular value decomposition) becomes a `LowRankDense` of rank `r` with
    factors `U_r sqrt(S_r)` (`M x r`) and `sqrt(S_r) V_r^T` (`r x N`), the
    best rank-`r` approximation of `W` (Eckart-Young); bias, activation,
    initializers, regularizers, constraints and the layer name are kept.
    The layer then holds `r * (M + N)` (+ `N` bias) weights instead of
    `M * N`.

    The rank is either given (`rank`) or, per layer, the smallest one that
    keeps a fraction `energy` of the sum of squared singular values
    (default 0.9). A layer is kept as it is when its factorization would not
    save more than `min_saving` of its parameters. Fine-tune the returned
    model (compile it, then `fit`) to recover the accuracy lost.

    Dense layers inside nested Functional or Sequential models are found
    too. Only `keras.layers.Dense` itself is converted (not subclasses such
    as `QuantDense`), and not when it is already quantized by Keras.

    Args:
        model: A built Functional or Sequential `keras.Model`; not changed.
        rank: None (default: use `energy`), an integer used for every
            selected layer, or a dict `{layer name: rank}` that also selects
            the layers. With `layers=None` and an integer, layers with
            `rank > min(M, N)` are kept (and reported); for layers named in
            `layers` or the dict, such a rank is an error.
        energy: Fraction in (0, 1] of the squared singular values to keep,
            per layer. Defaults to None: 0.9 when `rank` is None. Give
            either `rank` or `energy`.
        layers: None (default: every `Dense` layer), a layer name or a list
            of names.
        min_saving: A layer is replaced only if the factorization removes
            more than this fraction of its parameters. Defaults to 0.0
            (any saving); None replaces every selected layer, even at a
            rank that saves nothing.
        return_report: Also return a `FactorizationReport`. Defaults to
            False.

    Returns:
        The new, uncompiled model, or `(new_model, report)` with
        `return_report=True`.

    Raises:
        TypeError: if `model` is not a Keras model, or `layers` is not a
            name or a list of names.
        ValueError: for a subclassed model, both `rank` and `energy`, a
            rank < 1 or > min(M, N) of a named layer, `energy` outside
            (0, 1], `min_saving` outside [0, 1), or a layer name that is
            not in the model or not a `Dense` layer.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((64,)),
    ...                           keras.layers.Dense(256, activation="relu"),
    ...                           keras.layers.Dense(10)])
    >>> small, report = factorize(model, energy=0.5, return_report=True)
    >>> print(report)  # doctest: +SKIP

    Reference:
        - [Denton et al., Exploiting Linear Structure Within Convolutional
          Networks for Efficient Evaluation, NeurIPS 2014](
          https://arxiv.org/abs/1404.0736)
        - [Xue et al., Restructuring of Deep Neural Network Acoustic Models
          with Singular Value Decomposition, Interspeech 2013](
          https://www.isca-archive.org/interspeech_2013/xue13_interspeech.html)
    """
    check_model(model, "factorize")
    _check_args(rank, energy, layers, min_saving)
    if rank is None and energy is None:
        energy = DEFAULT_ENERGY

    found = {layer.name: layer for layer, _, _ in graph_layers(model, True)}
    if isinstance(rank, dict):
        names = check_layer_names(list(rank), found, "factorize")
    else:
        names = check_layer_names(layers, found, "factorize")
    explicit = names is not None
    if explicit:
        selected = [found[n] for n in names]
        for layer in selected:
            if type(layer) is not keras.layers.Dense:
                raise ValueError(
                    "Expected `layers` to name keras.layers.Dense layers. "
                    f"Received: layer {layer.name!r} of type "
                    f"{type(layer).__name__}"
                )
        order = {id(layer): i for i, (layer, _, _) in
                 enumerate(graph_layers(model, True))}
        selected.sort(key=lambda layer: order[id(layer)])
    else:
        selected = [layer for layer, _, _ in graph_layers(model, True)
                    if type(layer) is keras.layers.Dense]

    rows, replacements = [], {}
    for layer in selected:
        layer_rank = rank[layer.name] if isinstance(rank, dict) else rank
        row, new = _plan(layer, layer_rank, energy, min_saving, explicit)
        rows.append(row)
        if new is not None:
            replacements[id(layer)] = new

    new_model = rebuild(model, lambda layer: replacements.get(id(layer)))
    return finish(model, new_model, "low_rank", rows, return_report)


def _plan(layer, rank, energy, min_saving, explicit):
    """The report row of `layer` and its replacement (or None)."""
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
    m, n = kernel.shape
    bias = n if layer.use_bias else 0
    before = m * n + bias
    row = {"name": layer.name, "shape": [int(m), int(n)], "rank": None,
           "kept_energy": None, "params_before": int(before),
           "params_after": int(before), "replaced": False, "status": None}
    if getattr(layer, "quantization_mode", None) is not None:
        if explicit:
            raise ValueError(
                "Expected float Dense layers. Received: layer "
                f"{layer.name!r} quantized by Keras "
                f"({layer.quantization_mode})"
            )
        row["status"] = f"kept: quantized ({layer.quantization_mode})"
        return row, None
    limit = min(m, n)
    if rank is not None and rank > limit:
        if explicit:
            raise ValueError(
                f"Expected `rank` in [1, {limit}] for layer {layer.name!r} "
                f"(min(input_dim={m}, units={n})). Received: rank={rank}"
            )
        row["status"] = f"kept: rank {rank} > min(M, N) = {limit}"
        return row, None
    u, s, vt = np.linalg.svd(kernel, full_matrices=False)
    energies = _energies(s)
    if rank is None:
        rank = int(np.searchsorted(energies, energy - 1e-9) + 1)
        rank = min(max(rank, 1), limit)
    after = rank * (m + n) + bias
    row.update(rank=int(rank), kept_energy=float(energies[rank - 1]))
    if min_saving is not None and before - after <= min_saving * before:
        if after >= before:
            row["status"] = f"kept: rank {rank} saves nothing"
        else:
            row["status"] = (f"kept: rank {rank} saves only "
                             f"{(before - after) / before:.1%}")
        return row, None
    root = np.sqrt(s[:rank])
    new = LowRankDense(
        units=int(n),
        rank=int(rank),
        activation=layer.activation,
        use_bias=layer.use_bias,
        kernel_initializer=layer.kernel_initializer,
        bias_initializer=layer.bias_initializer,
        kernel_regularizer=layer.kernel_regularizer,
        bias_regularizer=layer.bias_regularizer,
        activity_regularizer=layer.activity_regularizer,
        kernel_constraint=layer.kernel_constraint,
        bias_constraint=layer.bias_constraint,
        name=layer.name,
        dtype=layer.dtype_policy,
        trainable=layer.trainable,
    )
    new.build(build_input_shape(layer))
    new.u.kernel.assign((u[:, :rank] * root).astype(new.u.kernel.dtype))
    new.v.kernel.assign((root[:, None] * vt[:rank]).astype(new.v.kernel.dtype))
    if layer.use_bias:
        new.v.bias.assign(keras.ops.convert_to_numpy(layer.bias))
    row.update(params_after=int(after), replaced=True, status="replaced")
    return row, new
