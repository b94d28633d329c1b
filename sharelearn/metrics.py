"""Scorers for model selection over sharing schemes."""

from __future__ import annotations

from .partition import _to_partition, partition_distance

__all__ = ["partition_scorer"]


class _PartitionScorer:
    """Callable ``scorer(estimator, X, y=None) -> -partition_distance(discovered, reference)``."""

    def __init__(self, reference):
        self.reference = _to_partition(reference, "reference")

    def __call__(self, estimator, X, y=None):
        found = estimator.sharing_partition_
        if found.size != self.reference.size:
            raise ValueError(f"reference partitions {self.reference.size} items, but the "
                             f"estimator shares {found.size}.")
        return -partition_distance(found, self.reference)

    def __repr__(self):
        return f"partition_scorer(reference of {self.reference.size} items)"


def partition_scorer(reference):
    """A scikit-learn scorer: minus the partition distance between the fitted estimator's
    ``sharing_partition_`` and ``reference`` (greater is better, 0 is exact recovery).

    Use it as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV` or
    :func:`~sklearn.model_selection.cross_validate` to choose penalties by how close the
    discovered scheme is to a known one; the data passed to the scorer is ignored.

    Parameters
    ----------
    reference : array-like of shape (n_items,) or (n_items, n_groups)
        Group labels or a hard selection matrix.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sharelearn import SharingDiscoverer
    >>> from sharelearn.datasets import make_shared_means
    >>> from sharelearn.metrics import partition_scorer
    >>> X, truth, _ = make_shared_means(60, n_features=4, n_groups=2, random_state=0)
    >>> search = GridSearchCV(SharingDiscoverer(n_restarts=1, random_state=0),
    ...                       {"nuclear": [0.0, 2.0]}, scoring=partition_scorer(truth), cv=2)
    >>> search.fit(X).best_score_
    np.float64(0.0)
    """
    return _PartitionScorer(reference)
