"""Internal units: the closed-form models fit standardised data, so the user's units never matter.

A sharing scheme says which weights are *equal*. Multiplying all of ``X`` (or all of ``Y``) by one
number multiplies every weight by one number, and subtracting a constant offset (a column offset
where an intercept is fitted, one offset for all features of the shared-means model) moves every
weight or mean alike: neither changes which weights are equal. The objective should not change
either, but any absolute amount in it (the ridge ``alpha``, a jitter, a floor, the float
resolution left after a large offset) would make it depend on the data's units. So the data are
brought to one global scale before anything else, in float64 on the host:

* each array is centred, where the model allows it without changing its sharing: per column for
  the linear model with an intercept, by one global value for the shared means (the features are
  the items), not at all for a linear model without intercept;
* each array is divided by one number, its root mean square after centring.

A per-column scale would rescale each column of ``W`` by a different factor and destroy the
sharing, which is why there is only one. The fitted attributes are mapped back to the user's units
with :class:`Units`. Those must exist in float64: squared errors in the units of the targets
(``validation_loss_``, ``score``) and the weights ``coef_ ~ y_scale / x_scale``. Data whose
attributes would overflow are refused before the fit, with the magnitude and what to divide by.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["Units", "standardize"]

# Below this ratio of spread to offset fewer than about three significant digits of the data
# survive the subtraction of the offset in float64.
_PRECISION_FLOOR = 1e3 * np.finfo(np.float64).eps

# The largest root mean square of targets (after their offset) whose squared errors stay finite
# in float64 (up to 1.8e308) with room for errors 1e8 times the data's own spread.
_LARGEST_TARGET_SCALE = 1e150


@dataclass(frozen=True)
class Units:
    """Offsets and scales that took the user's arrays to the internal ones.

    ``X_internal = (X - x_offset) / x_scale`` and the same for ``Y``; ``x_offset`` and
    ``y_offset`` broadcast against one row.
    """

    x_offset: np.ndarray
    x_scale: float
    y_offset: np.ndarray
    y_scale: float

    @property
    def weight_scale(self):
        """Factor from an internal weight of the linear map to the user's units."""
        return self.y_scale / self.x_scale


def _rms(A):
    """Root mean square of every entry, safe from overflow for huge values (1e160 and above)."""
    peak = float(np.max(np.abs(A))) if A.size else 0.0
    if peak == 0.0 or not np.isfinite(peak):
        return peak
    return peak * float(np.sqrt(np.mean(np.square(A / peak))))


def _standardize_array(A, center, name):
    """``(A - offset) / scale`` with ``center`` in {"columns", "global", "none"}."""
    if center == "columns":
        offset = A.mean(0)
    elif center == "global":
        offset = np.asarray(A.mean())
    else:
        offset = np.zeros(())
    centred = A - offset
    scale = _rms(centred)
    if not np.isfinite(scale):
        raise ValueError(f"{name} is too large to compute with: its root mean square overflows "
                         "float64. Rescale it first.")
    largest_offset = float(np.max(np.abs(offset))) if offset.size else 0.0
    if scale > 0 and largest_offset > 0 and scale < _PRECISION_FLOOR * largest_offset:
        warnings.warn(
            f"The spread of {name} is {scale / largest_offset:.1e} times its offset: fewer than "
            "three significant digits of the data remain after removing the offset, so the "
            f"discovered sharing may be wrong. Subtract the offset from {name} before fitting.",
            UserWarning, stacklevel=7)
    if scale == 0.0:  # constant data: nothing to scale
        scale = 1.0
    return centred / scale, offset, scale


def standardize(X, Y, *, center_x, center_y):
    """Bring ``X`` and ``Y`` (float64 arrays) to one global scale each; returns
    ``(X_internal, Y_internal, units)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_inputs) or None
        The inputs, or ``None`` for the shared-means model (whose design is a column of ones,
        which stays as it is).
    Y : ndarray of shape (n_samples, n_outputs)
    center_x, center_y : {"columns", "global", "none"}
        Which offset may be removed without changing the sharing (see the module docstring).
    """
    if X is None:
        Xs, x_offset, x_scale = None, np.zeros(()), 1.0
    else:
        Xs, x_offset, x_scale = _standardize_array(X, center_x, "X")
    y_name = "X" if X is None else "y"
    Ys, y_offset, y_scale = _standardize_array(Y, center_y, y_name)
    _check_representable(x_scale, y_scale, y_name, X is not None)
    return Xs, Ys, Units(x_offset, x_scale, y_offset, y_scale)


def _check_representable(x_scale, y_scale, y_name, has_inputs):
    """Refuse, before the fit, data whose fitted attributes overflow float64 in the user's
    units: squared errors of the targets (``y_name``), and a linear map's weights."""
    if y_scale > _LARGEST_TARGET_SCALE:
        raise ValueError(
            f"{y_name} is too large to report errors in its units: its root mean square "
            f"(after its offset) is {y_scale:.1e}, above the 1e150 up to which squared errors "
            f"in these units (validation_loss_, score) stay within float64. Divide {y_name} "
            f"by a power of ten (e.g. 1e{int(np.floor(np.log10(y_scale)))}) before fitting: "
            "the sharing found does not depend on its units.")
    if has_inputs and not np.isfinite(y_scale / x_scale):
        raise ValueError(
            f"The weights of the linear map from X to y are too large for float64 in these "
            f"units: y's root mean square is {y_scale:.1e} and X's {x_scale:.1e}, so the "
            f"weights are about {y_scale:.1e} / {x_scale:.1e}. Bring X and y to closer "
            "magnitudes (e.g. multiply X or divide y by a power of ten) before fitting: the "
            "sharing found does not depend on their units.")
