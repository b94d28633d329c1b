"""The built-in sequence network (``NetworkSharingDiscoverer(module="sequence")``).

:class:`sharelearn.networks.SequenceNetwork` (embedding -> per-position linear layer -> ReLU ->
sum over positions -> linear) on integer token sequences; its items are the ``L`` per-position
layers (``share`` defaults to :data:`sharelearn.networks.SEQUENCE_SHARE`). ``length`` and
``n_tokens`` come from the data unless given as ``module__...``, and then must agree with it.
"""

from __future__ import annotations

import inspect
import numbers
import warnings

import numpy as np
from sklearn.exceptions import EfficiencyWarning

from .._memory import _available_host_memory, format_bytes
from ..networks import SEQUENCE_SHARE, SequenceNetwork
from .module import ModuleModel

__all__ = ["SequenceModel"]

# A token vocabulary this large whose ids are mostly unused makes an embedding of mostly dead rows.
_LARGE_VOCABULARY = 1024
# Copies of the embedding a fit holds at once (the initialisations, their Adam moments, the
# retrains' tied copies): the table is refused when this many do not fit in half the memory.
_EMBEDDING_COPIES = 8
# How features (a float X) are given instead: a module with a dense layer, in one line.
_DENSE_ADVICE = (
    "For numeric features such as pixels, give a module with a dense layer and name what it "
    "may share, e.g. {name}(nn.Sequential(nn.Linear({n_in}, 32), nn.ReLU(), "
    "nn.Linear(32, {n_out})), share={{'0.weight': None}}) to search which entries of the dense "
    "layer are tied (see the Examples of {name})."
)


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


def _too_large(value):
    return ValueError(
        f"X holds token id {value}, too large: token ids index the rows of the embedding, so "
        "they must lie in 0..n_tokens - 1, and n_tokens rows must fit in memory; relabel them "
        "to 0..n-1, e.g. np.unique(X, return_inverse=True)[1].reshape(X.shape).")


def _positive_int(value):
    return (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
            and value >= 1)


class SequenceModel(ModuleModel):
    """The sequence network's per-position layers as the shared items."""

    name = "sequence"
    integer_inputs = True

    def raw_inputs(self, X):
        return self.token_array(X)

    @staticmethod
    def token_array(X):
        """``X`` before scikit-learn's validation, with its integers kept: an input without a
        dtype (a list, an array-like) is read by numpy, and an object array of ints becomes
        int64, where the validation would make floats of both (and floats are refused as
        features). Anything else is returned as it is, for the validation to report."""
        if hasattr(X, "dtypes") or (hasattr(X, "dtype") and X.dtype != object):
            return X  # a data frame or an array: its dtype says what it holds
        try:
            array = np.asarray(X)
        except (ValueError, TypeError):
            return X
        if array.dtype != object:
            return array
        if not all(isinstance(v, numbers.Integral) for v in array.flat):
            return X
        try:
            return array.astype(np.int64)
        except OverflowError:
            raise _too_large(max(array.flat, key=abs)) from None

    def check_inputs(self, X, fitted=None):
        owner = getattr(self, "owner", "NetworkSharingDiscoverer")
        if X.dtype.kind == "f":
            # Token ids are integers: a float X is most often features (pixels), which the
            # embedding would read as thousands of token sequences and fit for hours.
            integral = bool(np.all(X == np.round(X)))
            if not integral:
                found = f"non-integer values, e.g. {X[X != np.round(X)][0]:g}"
                cast = ""
            elif np.abs(X).max() > np.iinfo(np.int64).max:
                found = f"values too large for token ids, up to {np.abs(X).max():g}"
                cast = ""
            else:
                found = f"whole numbers stored as {X.dtype}"
                cast = " If X does hold token ids, pass X.astype(int)."
            raise ValueError(
                f"{owner}(module='sequence') reads X as integer token ids (one sequence per "
                f"row, ids 0, 1, 2, ... indexing an embedding), but X holds {found}.{cast} "
                + _DENSE_ADVICE.format(name=owner, n_in=X.shape[1],
                                       n_out="n_classes" if self.classifies else "n_targets"))
        if X.dtype.kind == "u" and X.size and X.max() > np.iinfo(np.int64).max:
            raise _too_large(X.max())
        X = X.astype(np.int64)
        if X.min() < 0:
            raise ValueError(f"Negative values in data passed to {owner}(module='sequence'): "
                             "X must hold non-negative integer token ids, got "
                             f"{X.min()}.")
        n_tokens = None if fitted is None else fitted._n_tokens
        if n_tokens is not None and X.max() >= n_tokens:
            raise ValueError(f"X holds token {X.max()}, but the network was fitted with "
                             f"{n_tokens} tokens (0..{n_tokens - 1}).")
        return X

    def _check_sizes(self, X, kwargs):
        """The network's sizes (``module__*`` or from the data) as the network needs them."""
        for name in ("embedding_dim", "hidden", "length", "n_tokens"):
            if name in kwargs and not _positive_int(kwargs[name]):
                raise ValueError(f"module__{name} must be a positive int, got "
                                 f"{kwargs[name]!r}.")
        length = kwargs.get("length", X.shape[1])
        if length != X.shape[1]:
            raise ValueError(f"module__length={length}, but X has {X.shape[1]} columns: the "
                             "network reads one token per column, so its length is the "
                             "number of columns. Drop module__length (it is taken from X).")
        n_tokens = kwargs.get("n_tokens", int(X.max()) + 1)
        if n_tokens <= X.max():
            raise ValueError(f"module__n_tokens={n_tokens}, but X holds token id {X.max()}: "
                             f"the embedding needs at least {X.max() + 1} rows. Drop "
                             "module__n_tokens (it is taken from X) or relabel the tokens.")
        dim = kwargs.get("embedding_dim",
                         inspect.signature(SequenceNetwork).parameters["embedding_dim"].default)
        need = _EMBEDDING_COPIES * n_tokens * dim * 8
        available = _available_host_memory()
        if available is not None and need > available // 2:
            raise ValueError(
                f"The embedding of token ids 0..{n_tokens - 1} would have {n_tokens:,} rows "
                f"of {dim} values, and a fit about {format_bytes(need)}, "
                f"more than half the memory available ({format_bytes(available)}). "
                + (f"Lower module__embedding_dim={dim}, or relabel the token ids to 0..n-1"
                   if "embedding_dim" in kwargs else "Token ids index the embedding's rows: "
                   "relabel them to 0..n-1")
                + ", e.g. np.unique(X, return_inverse=True)[1].reshape(X.shape).")

    def build(self, X, n_outputs, seed):
        kwargs = self.module_kwargs
        self._check_sizes(X, kwargs)
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
