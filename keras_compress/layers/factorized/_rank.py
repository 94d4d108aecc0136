"""Checks of the `rank` argument of the low-rank layers."""


def check_rank(layer, rank):
    """Raises unless `rank` is an integer >= 1 (the lower bound)."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(
            f"Layer {layer.name!r}: expected `rank` to be an integer >= 1. "
            f"Received: rank={rank!r}"
        )


def check_rank_range(layer, rank, limit, what):
    """Raises unless `1 <= rank <= limit`; `what` explains the limit."""
    if not 1 <= rank <= limit:
        raise ValueError(
            f"Layer {layer.name!r}: expected `rank` in [1, {limit}] ({what}). "
            f"Received: rank={rank}"
        )
