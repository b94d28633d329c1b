"""Small argument checks shared by the public functions (scikit-learn's message style)."""

from __future__ import annotations

import numbers

import numpy as np


def check_int(value, name, *, min_value=None, max_value=None):
    """Return ``value`` as a Python int, or raise ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
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
