"""Small argument checks shared by the public functions (scikit-learn's message style)."""

from __future__ import annotations

import numbers

import numpy as np


def check_int(value, name, *, min_value=None, max_value=None):
    """Return ``value`` as a Python int, or raise ``ValueError`` naming ``name``."""
    if not _is_int(value):
        raise ValueError(
            f"{name} must be an integer, got {value!r} of type {type(value).__name__}."
        )
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}.")
    return value


def check_real(value, name, *, min_value=None, strictly_positive=False):
    """Return ``value`` as a finite float, or raise ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if strictly_positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}.")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    return value


def check_pair(value, name, what, *, name_items=True):
    """Return ``value`` as a pair of positive Python ints, or raise ``ValueError``.

    ``what`` spells the pair in the message, e.g. ``"(n_out, n_in)"``. With ``name_items`` a bad
    item is named on its own (``shape[0] must be >= 1``); otherwise the whole pair is quoted.
    """
    expected = f"{name} must be a pair {what} of positive integers, got {value!r}."
    if isinstance(value, (str, bytes, numbers.Number)):
        raise ValueError(expected)
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(expected) from None
    if len(items) != 2:
        raise ValueError(expected)
    if not name_items:
        if not all(_is_int(v) and v >= 1 for v in items):
            raise ValueError(expected)
        return int(items[0]), int(items[1])
    return tuple(check_int(v, f"{name}[{d}]", min_value=1) for d, v in enumerate(items))


def check_dims(value, name):
    """Return an int ``n`` or a sequence ``(n,)`` / ``(h, w)`` of positive ints as a tuple."""
    if _is_int(value):
        return (check_int(value, name, min_value=1),)
    expected = f"{name} must be a positive int or a tuple of 1 or 2 positive ints, got {value!r}."
    if isinstance(value, (str, bytes)):
        raise ValueError(expected)
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(expected) from None
    if len(items) not in (1, 2):
        raise ValueError(f"{name}={value!r} must have 1 or 2 dimensions, got {len(items)}.")
    return tuple(check_int(v, f"{name}[{d}]", min_value=1) for d, v in enumerate(items))


def check_square_side(side, name="side"):
    """Return the side ``h`` of a square image given as ``h`` or ``(h, h)``."""
    dims = check_dims(side, name)
    if len(dims) == 2 and dims[0] != dims[1]:
        raise ValueError(f"{name} must describe a square image, got shape {dims}.")
    return dims[0]


def _is_int(value):
    """Whether ``value`` is an integer and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
