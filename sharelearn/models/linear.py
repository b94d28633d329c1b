"""A tied linear map ``y = W x + b`` (``SharingDiscoverer(model="linear")``).

The items are the entries of ``W`` (``n_outputs x n_features``, row-major); the intercept ``b``
has one free value per output, never shared and never penalised (the data are centred by the
training means of each split). Without relaxations, on strongly correlated inputs, the search
gets one more start: two value clusters of a ridge estimate of ``W``
(:func:`sharelearn.search.starts.ridge_clusters`). With ``init="auto"`` the widest
convolutions that the layer's shape admits are scored too, and the best one, if it beats the
shared start, is searched from (:func:`sharelearn.symmetry.shift_hypotheses`, and on square
layers over square images :func:`sharelearn.symmetry.image_group_hypotheses`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .._scaling import standardize
from ..search.moves import closed_form_moves
from ..search.starts import input_correlation, ridge_clusters
from ..symmetry.convolution import border_hypotheses, shift_hypotheses
from ..symmetry.wallpaper import image_group_hypotheses
from .closed_form import ClosedFormModel
from .gaussian import SpanTests

__all__ = ["LinearMap"]

# Inputs count as strongly correlated when the largest eigenvalue of their correlation matrix is
# above this fraction of their number (independent inputs: (1 + sqrt(d / n))^2 / d, 0.03 to 0.15
# on the benchmarks' shift tasks; AR(0.9) signals of 64 inputs about 0.3; image patches 0.6-0.9).
_CORRELATED_INPUTS = 0.2
# A hypothesis explains the data when the F-test of the map in its span against an untied map
# does not reject at this level (on the realistic benchmark's 64-input signals and 8 x 8 patches,
# the true convolution's p-values were 0.37-0.74 and every other hypothesis got p = 0).
_SPAN_LEVEL = 0.01


class LinearMap(ClosedFormModel):
    """Tied linear map; fitted attributes ``shared_values_``, ``coef_`` and ``intercept_``.

    Parameters
    ----------
    fit_intercept : bool
        A free intercept per output.
    objective, alpha :
        See :class:`~sharelearn.models.closed_form.ClosedFormModel`.
    """

    name = "linear"
    supervised = True

    def __init__(self, *, fit_intercept=True, **kwargs):
        super().__init__(**kwargs)
        self.fit_intercept = fit_intercept

    @classmethod
    def from_estimator(cls, est):
        return cls(fit_intercept=est.fit_intercept, objective=est.objective, alpha=est.alpha)

    @property
    def min_train(self):
        return 2 if self.fit_intercept else 1

    def design(self, X, y):
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        center = "columns" if self.fit_intercept else "none"
        Xs, Ys, units = standardize(X, Y, center_x=center, center_y=center)
        return Xs, Ys, self.fit_intercept, units

    def correlated_inputs(self):
        """Whether the inputs are strongly correlated (see ``_CORRELATED_INPUTS``); computed
        once per fit."""
        if getattr(self, "_correlated", None) is None:
            self._correlated = (self.problem.n_inputs > 1
                                and input_correlation(self.problem) > _CORRELATED_INPUTS)
        return self._correlated

    def start_cost_factor(self, n_groups):
        """Roughly how many times the default start's work a search from ``n_groups`` groups
        costs (it merges a pair of groups per round and rates every pair each round): fitted to
        the times of init="unshared" over the default's on a convolution's map of 48 / 80 / 224
        entries, 19 / 42 / 500 times as long."""
        return (n_groups / 10) ** 2

    def search_moves(self, max_iter):
        # on strongly correlated inputs a group spread over the rows, one entry each, is split
        # off by RowwiseSplit, which no single-entry rating finds (measured on image patches)
        return closed_form_moves(max_iter=max_iter, rowwise=self.correlated_inputs())

    def extra_starts(self, init_is_auto, n_relax):
        # Without relaxations the shared start alone is weak on strongly correlated inputs
        # (smooth signals, images); a ridge estimate's two clusters are one more start there
        # (not when the user chose the start). On independent inputs the shared start finds
        # the same partitions faster (measured: benchmarks/bench_shift.py).
        if n_relax == 0 and init_is_auto and self.correlated_inputs():
            return [ridge_clusters(self.problem)]
        return []

    def hypothesis_replaces_start(self):
        # on strongly correlated inputs the shared start's search wanders (up to 24 s on the
        # realistic benchmark's patches) and never won there; on independent inputs it is cheap
        # and finds what no hypothesis describes (a map tied by an arbitrary partition)
        return self.correlated_inputs()

    def _span_tests(self):
        if getattr(self, "_tests", None) is None:
            self._tests = SpanTests(torch.as_tensor(self.Xd, dtype=torch.float64),
                                    torch.as_tensor(self.Y, dtype=torch.float64),
                                    fit_intercept=self.intercept)
        return self._tests

    def explains(self, labels):
        # The F-test needs more samples than inputs; without that, nothing is assumed.
        p_value = self._span_tests().of(torch.as_tensor(labels))["p_value"]
        return bool(p_value > _SPAN_LEVEL)

    def span_statistics(self, labelings):
        tests = self._span_tests()
        return [tests.of(torch.as_tensor(labels)) for labels in labelings]

    def release(self):
        self._tests = None
        super().release()

    def hypotheses(self):
        # The widest convolutions the layer's shape admits (every reading of its inputs and
        # outputs as sequences or images). When the data are a convolution, a search from the
        # right one only has to merge what the data do not separate, which no search from the
        # shared start achieves on strongly correlated inputs; and its coarsenings are charged
        # by blocks, so taps the data separate stay apart (benchmarks/bench_realistic.py).
        # On a square layer over square images, the wallpaper and point groups' sharings too:
        # their orbits are unions of translation orbits that no convolution's blocks describe
        # (up to 1,024 orbits: C_4 and D_4 on a 7 x 7 image have 601 and 325).
        # Same-size maps whose border outputs differ from the interior (every boundary mode of
        # scipy.ndimage and torch's padding="same") coarsen a border hypothesis, and so does
        # a sequence's full convolution (border_hypotheses).
        return _layer_hypotheses(tuple(self.layer_shape))

    def hypothesis_blocks(self, layer_shape):
        return list(_hypothesis_blocks(tuple(layer_shape)))

    def map_attributes(self, psi, W, full):
        u = self.units
        coef = W * u.weight_scale
        b = full.y_mean[0].cpu().numpy() - W @ full.x_mean[0].cpu().numpy()
        x_offset = np.broadcast_to(u.x_offset, (W.shape[1],))
        return {"shared_values_": psi * u.weight_scale, "coef_": coef,
                "intercept_": (u.y_offset + u.y_scale * b - coef @ x_offset).astype(np.float64)}

    @staticmethod
    def transform(est, X):
        """The tied map applied: ``X @ coef_.T + intercept_``."""
        return X @ est.coef_.T + est.intercept_

    @staticmethod
    def score(est, X, y):
        """Minus the mean squared error of the tied map on ``(X, y)``."""
        if y is None:
            raise ValueError("score of model='linear' without a reference requires y.")
        pred = LinearMap.transform(est, X)
        y = np.asarray(y, dtype=np.float64)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if Y.shape != pred.shape:
            raise ValueError(f"y must have {pred.shape[0]} rows and {pred.shape[1]} outputs, "
                             f"got shape {y.shape}.")
        return -float(np.mean((Y - pred) ** 2))


def _layer_hypotheses(layer_shape):
    """The structured hypotheses of a linear map of ``layer_shape`` (see
    :meth:`LinearMap.hypotheses`)."""
    return {**shift_hypotheses(layer_shape),
            **image_group_hypotheses(layer_shape, max_groups=1024),
            **border_hypotheses(layer_shape)}


@functools.lru_cache(maxsize=16)
def _hypothesis_blocks(layer_shape):
    """Their block counts, largest first, for the memory estimate: kept per shape (a few
    numbers; the labels themselves, 64 MB at a 1024 x 1024 layer, are not kept), so a second
    fit of one shape builds its hypotheses once (about 4 s at 1024 x 1024)."""
    return tuple(sorted((int(labels.max()) + 1
                         for labels in _layer_hypotheses(layer_shape).values()), reverse=True))
