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
attributes would overflow, or whose weights would underflow to (nearly) nothing, are refused
before the fit, with the magnitude and what to divide or multiply by; weights in float64's
subnormal range, which keep fewer digits, fit with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["Units", "check_network_targets", "standardize"]

# Below this ratio of spread to offset fewer than about three significant digits of the data
# survive the subtraction of the offset in float64.
_PRECISION_FLOOR = 1e3 * np.finfo(np.float64).eps

# The largest root mean square of targets (after their offset) whose squared errors stay finite
# in float64 (up to 1.8e308) with room for errors 1e8 times the data's own spread.
_LARGEST_TARGET_SCALE = 1e150

# Below float64's smallest normal number (2.2e-308) the weights of a linear map are subnormal
# and keep fewer significant digits the smaller they are; below this factor from internal
# weights to the user's units they keep about two, or none (coef_ all zeros).
_SMALLEST_WEIGHT_SCALE = 100 * float(np.finfo(np.float64).smallest_subnormal)


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
            UserWarning, stacklevel=9)
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
    units (squared errors of the targets ``y_name``, a linear map's weights) or whose weights
    underflow it; warn where the weights are subnormal."""
    if y_scale > _LARGEST_TARGET_SCALE:
        raise ValueError(
            f"{y_name} is too large to report errors in its units: its root mean square "
            f"(after its offset) is {y_scale:.1e}, above the 1e150 up to which squared errors "
            f"in these units (validation_loss_, score) stay within float64. Divide {y_name} "
            f"by a power of ten (e.g. 1e{int(np.floor(np.log10(y_scale)))}) before fitting: "
            "the sharing found does not depend on its units.")
    if not has_inputs:
        return
    weight_scale = y_scale / x_scale
    if not np.isfinite(weight_scale):
        raise ValueError(
            f"The weights of the linear map from X to y are too large for float64 in these "
            f"units: y's root mean square is {y_scale:.1e} and X's {x_scale:.1e}, so the "
            f"weights are about {y_scale:.1e} / {x_scale:.1e}. Bring X and y to closer "
            "magnitudes (e.g. multiply X or divide y by a power of ten) before fitting: the "
            "sharing found does not depend on their units.")
    if weight_scale < _SMALLEST_WEIGHT_SCALE:
        raise ValueError(
            f"The weights of the linear map from X to y are too small for float64 in these "
            f"units: y's root mean square is {y_scale:.1e} and X's {x_scale:.1e}, so the "
            f"weights are about {y_scale:.1e} / {x_scale:.1e}, below the 5e-322 under which "
            "float64 keeps at most two of their digits (coef_ would be zeros, and predict the "
            "intercept alone). Bring X and y to closer magnitudes (e.g. divide X or multiply y "
            "by a power of ten) before fitting: the sharing found does not depend on their "
            "units.")
    tiny = float(np.finfo(np.float64).tiny)
    if weight_scale < tiny:
        digits = int(np.log10(weight_scale / float(np.finfo(np.float64).smallest_subnormal)))
        warnings.warn(
            f"The weights of the linear map from X to y are about {weight_scale:.1e}, below "
            f"float64's normal range ({tiny:.1e}): coef_ keeps only about {digits} significant "
            "digits, and predict as many. Bring X and y to closer magnitudes (e.g. divide X or "
            "multiply y by a power of ten) before fitting.", UserWarning, stacklevel=9)


def check_network_targets(Y):
    """Refuse targets of a network (``n_samples x n_outputs``, float64) whose standardisation
    float64 cannot compute: the network is trained on each output divided by its standard
    deviation, whose square overflows above a spread of about 1e154 (the predictions were
    infinite) and underflows to 0 below about 1e-154 (the targets were left unscaled, and the
    predictions were of the network's own magnitude)."""
    lowest = 1 / _LARGEST_TARGET_SCALE
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
        offset = Y.mean(0)
        spreads = [_rms(Y[:, j] - offset[j]) if np.isfinite(offset[j]) else np.inf
                   for j in range(Y.shape[1])]
    for j, spread in enumerate(spreads):
        if spread == 0 or lowest <= spread <= _LARGEST_TARGET_SCALE:
            continue
        where = f" (output {j})" if Y.shape[1] > 1 else ""
        large = spread > 1
        power = (300 if not np.isfinite(spread) else int(np.floor(np.log10(spread)))
                 if large else -int(np.floor(np.log10(spread))))
        shown = f"{spread:.1e}" if np.isfinite(spread) else "beyond float64"
        raise ValueError(
            f"y's spread (root mean square about its mean){where} is {shown}, outside the "
            "range from 1e-150 to 1e150 in which a network's targets are standardised in "
            f"float64 (their variance would {'overflow' if large else 'underflow to 0'}). "
            f"Before fitting, {'divide' if large else 'multiply'} y by a power of ten (e.g. "
            f"1e{power}), and scale the predictions back.")
