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


def check_optional_int(name, value, none_means=""):
    """Returns `value` as an int (None stays None), or raises unless it is
    None or an integer >= 1.

    Args:
        name: The argument's name, for the message.
        value: Its value.
        none_means: What None stands for, shown after it in the message
            (e.g. `" (dynamic)"`). Defaults to nothing.
    """
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"Expected `{name}` to be None{none_means} or a positive int. "
            f"Received: {name}={value!r}"
        )
    return None if value is None else int(value)


def check_number(name, value, allowed, accept=lambda v: True):
    """Returns `value` as a float, or raises unless it is a real number (not
    a bool) that `accept` takes.

    Args:
        name: The argument's name, for the message.
        value: Its value.
        allowed: What is allowed, for the message (e.g. "a number in
            [0, 1)").
        accept: A predicate on the number (NaN fails every comparison).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not accept(value)
    ):
        raise ValueError(
            f"Expected `{name}` to be {allowed}. Received: {name}={value!r}"
        )
    return float(value)


def check_choice(name, value, choices):
    """Returns `value`, or raises if it is not one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"Expected `{name}` to be one of {list(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_parent_default(layer, name, value, default, why):
    """Refuses an argument of a Keras parent layer that `layer` does not
    support, unless it has the parent's default.

    Args:
        layer: The class name, for the message.
        name: The argument's name.
        value: What the user gave.
        default: The parent's default, the only value accepted.
        why: Why, as the end of a sentence that starts with `layer`.
    """
    if value is not default and value != default:
        raise ValueError(
            f"{layer} {why}. Expected {name}={default!r}. Received: {name}={value!r}"
        )
