"""Shared means: which features have equal means (``SharingDiscoverer(model="mean")``).

The items are the ``n_features`` means. As a closed-form model it is the linear map of one
constant input to every feature, without intercept: the features are the targets, brought to
one global offset and scale (:func:`sharelearn._scaling.standardize`), and every hard quadratic
is diagonal, so the search's solves are divisions.
"""

from __future__ import annotations

import numpy as np

from .._scaling import standardize
from .closed_form import ClosedFormModel

__all__ = ["SharedMeans"]


class SharedMeans(ClosedFormModel):
    """Tied feature means; fitted attributes ``shared_values_`` and ``means_``."""

    name = "mean"
    supervised = False
    min_train = 1

    @classmethod
    def from_estimator(cls, est):
        return cls(objective=est.objective, alpha=est.alpha)

    def start_cost_factor(self, n_groups):
        """Roughly how many times the default start's work a search from ``n_groups`` groups
        costs: fitted to the times of init="unshared" over the default's on 80 / 200 / 400
        features, 2 / 7 / 120 times as long."""
        return (n_groups / 70) ** 3

    def layer_dims(self, n_features, n_outputs):
        return n_features, 1

    def design(self, X, y):
        _, Y, units = standardize(None, X, center_x="none", center_y="global")
        return np.ones((X.shape[0], 1)), Y, False, units

    def map_attributes(self, psi, W, full):
        u = self.units
        # the features are the targets of a constant input: one global offset and scale
        return {"shared_values_": psi * u.y_scale + u.y_offset,
                "means_": W[:, 0] * u.y_scale + u.y_offset}

    @staticmethod
    def transform(est, X):
        """Each group's features averaged (as ``FeatureAgglomeration`` pools them)."""
        counts = np.bincount(est.sharing_partition_, minlength=est.n_groups_)
        return (X @ est.selection_matrix_) / counts

    @staticmethod
    def score(est, X, y):
        """Minus the mean squared error of X around ``means_``."""
        return -float(np.mean((X - est.means_) ** 2))
