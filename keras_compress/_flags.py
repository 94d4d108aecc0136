"""Thread-local switches that a `with` block turns on."""

import contextlib
import threading

_flags = threading.local()


@contextlib.contextmanager
def switched_on(name):
    """Turns the switch `name` on for the block (nested blocks restore it)."""
    previous = getattr(_flags, name, False)
    setattr(_flags, name, True)
    try:
        yield
    finally:
        setattr(_flags, name, previous)


def is_on(name):
    """Whether the switch `name` is on in this thread."""
    return getattr(_flags, name, False)
