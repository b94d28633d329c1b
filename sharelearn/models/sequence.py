"""The built-in sequence network (``NetworkSharingDiscoverer(module="sequence")``).

:class:`sharelearn.networks.SequenceNetwork` (embedding -> per-position linear layer -> ReLU ->
sum over positions -> linear) on integer token sequences; its items are the ``L`` per-position
layers (``share`` defaults to :data:`sharelearn.networks.SEQUENCE_SHARE`). ``length`` and
``n_tokens`` come from the data unless given as ``module__...``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import EfficiencyWarning

from ..networks import SEQUENCE_SHARE, SequenceNetwork
from .module import ModuleModel

__all__ = ["SequenceModel"]

# A token vocabulary this large whose ids are mostly unused makes an embedding of mostly dead rows.
_LARGE_VOCABULARY = 1024


def _warn_sparse_vocabulary(X):
    """Warn when the token ids of ``X`` leave most rows of the embedding unused."""
    n_tokens = int(X.max()) + 1
    n_used = np.unique(X).size
    if n_tokens > _LARGE_VOCABULARY and 4 * n_used < n_tokens:
        warnings.warn(
            f"X holds {n_used} distinct token ids but the largest is {n_tokens - 1}, so the "
            f"embedding gets {n_tokens} rows, {n_tokens - n_used} of them never used, and the "
            "fit grows with every row. Relabel the tokens to 0..n-1 first, e.g. "
            "np.unique(X, return_inverse=True)[1].reshape(X.shape), or pass "
            "module__n_tokens explicitly.", EfficiencyWarning, stacklevel=8)


class SequenceModel(ModuleModel):
    """The sequence network's per-position layers as the shared items."""

    name = "sequence"
    integer_inputs = True

    def check_inputs(self, X, fitted=None):
        if X.dtype.kind not in "iub" and not np.all(X == np.round(X)):
            raise ValueError("module='sequence' needs X to hold integer token ids (one "
                             "sequence per row), got non-integer values.")
        X = X.astype(np.int64)
        if X.min() < 0:
            raise ValueError("Negative values in data passed to NetworkSharingDiscoverer("
                             "module='sequence'): X must hold non-negative integer token "
                             f"ids, got {X.min()}.")
        n_tokens = None if fitted is None else fitted._n_tokens
        if n_tokens is not None and X.max() >= n_tokens:
            raise ValueError(f"X holds token {X.max()}, but the network was fitted with "
                             f"{n_tokens} tokens (0..{n_tokens - 1}).")
        return X

    def build(self, X, n_outputs, seed):
        kwargs = self.module_kwargs
        if "n_tokens" not in kwargs:
            _warn_sparse_vocabulary(X)
        kwargs = {"length": X.shape[1], "n_tokens": int(X.max()) + 1, "n_outputs": n_outputs,
                  **kwargs}
        return self._construct(SequenceNetwork, kwargs, seed)

    def resolved_share(self):
        return dict(self.share) if self.share is not None else dict(SEQUENCE_SHARE)

    def refit(self, labels, objective):
        labels, attributes = super().refit(labels, objective)
        attributes["_n_tokens"] = int(attributes["_module_template"].embedding.num_embeddings)
        return labels, attributes
