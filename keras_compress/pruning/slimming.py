"""`network_slimming`: slim, prune and fine-tune in passes."""

from keras_compress._checks import check_int
from keras_compress.pruning.criteria import BatchNormScale
from keras_compress.pruning.graph import check_graph_model
from keras_compress.pruning.surgery import prune_channels


def network_slimming(
    model,
    x,
    y,
    ratio,
    passes=1,
    epochs=10,
    finetune_epochs=5,
    penalty=1e-4,
    proximal=False,
    min_channels=None,
    round_to=1,
    **fit_kwargs,
):
    """Network slimming: train with sparse gammas, prune, fine-tune.

    Each pass trains `model` for `epochs` with `NetworkSlimming(penalty)`,
    removes `ratio` of the channels that have a BatchNormalization by one
    global threshold on |gamma| (`prune_channels(..., scope="global",
    criterion=BatchNormScale())`) and fine-tunes the smaller model for
    `finetune_epochs` without the penalty. Several passes slim further
    (the paper's multi-pass scheme). The model must be compiled; the pruned
    models are compiled from its compile config, so a fresh optimizer (and
    a learning-rate schedule restarting from its start) fine-tunes them;
    pass `finetune_epochs=0` and fine-tune yourself for another schedule.

    Args:
        model: a compiled Functional or Sequential model with BatchNorms.
        x, y: training data, as for `model.fit`.
        ratio: fraction of the BatchNorm channels removed per pass, [0, 1).
        passes: slim-prune-finetune passes. Defaults to 1.
        epochs: training epochs with the penalty per pass. Defaults to 10.
        finetune_epochs: epochs after each pruning. Defaults to 5.
        penalty: the L1 strength. Defaults to 1e-4.
        proximal: proximal (ISTA) step instead of the subgradient.
        min_channels, round_to: as in `prune_channels`.
        **fit_kwargs: passed to every `fit` (`batch_size`,
            `validation_data`, `callbacks`, `verbose`, ...).

    Returns:
        `(slim_model, reports)`: the final model and one `ChannelReport` per
        pass. The input model is trained in the first pass, not pruned.

    Reference:
        Liu et al., "Learning Efficient Convolutional Networks through
        Network Slimming", ICCV 2017.
    """
    from keras_compress.callbacks import NetworkSlimming

    check_graph_model(model)
    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            f"Expected a compiled model. Received: model '{model.name}' "
            "without an optimizer"
        )
    passes = check_int("passes", passes, 1)
    compile_config = model.get_compile_config()
    callbacks = list(fit_kwargs.pop("callbacks", []) or [])
    reports = []
    for _ in range(passes):
        slimming = NetworkSlimming(penalty, proximal=proximal)
        # NetworkSlimming first, so the user's callbacks see its logs.
        model.fit(x, y, epochs=epochs, callbacks=[slimming] + callbacks, **fit_kwargs)
        pruned, report = prune_channels(
            model, ratio=ratio, scope="global", criterion=BatchNormScale(),
            min_channels=min_channels, round_to=round_to,
        )
        pruned.compile_from_config(compile_config)
        if finetune_epochs:
            pruned.fit(x, y, epochs=finetune_epochs, callbacks=callbacks, **fit_kwargs)
        reports.append(report)
        model = pruned
    return model, reports
