"""Argument checks shared across the package."""

import numbers


def check_int(name, value, minimum):
    """Returns `value` as an int, or raises if it is not an integer >= minimum."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)
