"""Checks of the integer arguments (`rank`, `units`, `filters`) of the low-rank layers."""


def check_positive(layer, name, value):
    """Raises unless argument `name` of `layer` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Layer {layer.name!r}: expected `{name}` to be an integer >= 1. "
            f"Received: {name}={value!r}"
        )


def check_rank_range(layer, rank, limit, what):
    """Raises unless `1 <= rank <= limit`; `what` explains the limit."""
    if not 1 <= rank <= limit:
        raise ValueError(
            f"Layer {layer.name!r}: expected `rank` in [1, {limit}] ({what}). "
            f"Received: rank={rank}"
        )
