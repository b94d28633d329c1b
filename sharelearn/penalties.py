"""The terms of the outer objective besides the data: each penalty written once.

A penalty has two faces that must agree. Its *soft* value scores a batch of soft selection
matrices ``S`` (``... x P x r``, rows summing to one) for the relaxation; its *hard* value scores a
partition through its group sizes for the discrete search, as a sum over groups of a cost of one
group's size, ``sum_j f(size_j)``. At a one-hot ``S`` the two are equal (``tests/test_penalties.py``
checks it for every penalty), so the relaxation and the search optimise one objective. Because the
hard value is a sum over groups, the search's deltas follow from ``f`` alone: moving one item from
group ``a`` to ``b`` changes the penalty by ``f(s_a - 1) - f(s_a) + f(s_b + 1) - f(s_b)``.

:class:`Penalties` holds the weighted penalties of one fit, built from the estimator's parameters
by :meth:`Penalties.from_params`; adding a penalty means adding one class here and its weight to
that method.

The data term is also defined here, once: ``n_obs * log(loss)`` with the loss clamped at a floor
that the model chooses (its loss on noise-free data may be exactly zero).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "CodeLength",
    "ColumnNorm",
    "NuclearNorm",
    "Penalties",
    "Penalty",
    "RowEntropy",
    "data_term",
]


def data_term(n_obs, loss, floor):
    """``n_obs * log(max(loss, floor))``: the data term of the outer objective, for a tensor or
    a float loss. ``n_obs`` scalar observations make one spurious free parameter cost about 1."""
    if isinstance(loss, torch.Tensor):
        return n_obs * torch.log(loss.clamp_min(floor))
    return n_obs * math.log(max(float(loss), floor))


class Penalty:
    """One penalty: :meth:`soft` on selection matrices, :meth:`size_cost` on group sizes.
    ``hard_is_zero``: the penalty vanishes at every hard partition (the search skips it)."""

    hard_is_zero = False

    def soft(self, S):
        """Value at each soft selection matrix of a batch ``S`` (``... x P x r``)."""
        raise NotImplementedError

    def size_cost(self, sizes, n_items):
        """Cost of one group of each size in ``sizes`` (a float tensor; 0 for an empty group)
        in a partition of ``n_items`` items; the hard value is its sum over the groups."""
        raise NotImplementedError


class NuclearNorm(Penalty):
    """``||S||_*``, the sum of singular values: ``sum_j sqrt(size_j)`` at a hard ``S``. Pushes
    towards few, large groups. ``torch.linalg.svdvals`` has a well-defined gradient even where
    singular values repeat."""

    def soft(self, S):
        return torch.linalg.svdvals(S).sum(-1)

    def size_cost(self, sizes, n_items):
        return torch.sqrt(sizes)


class ColumnNorm(NuclearNorm):
    """The sum of column L2 norms, what the paper's public code computes as
    ``trace(sqrt(S^T S))`` with an element-wise square root; equal to the nuclear norm at a hard
    ``S``."""

    def soft(self, S):
        return torch.sqrt((S * S).sum(-2) + 1e-30).sum(-1)


class CodeLength(Penalty):
    """Description length of the assignment in nats, ``sum_j m_j log(P / m_j)`` with ``m_j`` the
    column mass. For a hard partition this is the cost of naming each item's group with a code
    fitted to the group sizes; it grows with the number of items spread over groups, which keeps
    a search over partitions from fitting the validation noise through the assignment."""

    def soft(self, S):
        P = S.shape[-2]
        # float64: in float32 a column's mass can underflow to where the log's gradient misbehaves
        m = S.sum(-2, dtype=torch.float64)
        return (m * torch.log(P / m.clamp_min(1e-30))).sum(-1).to(S.dtype)

    def size_cost(self, sizes, n_items):
        return sizes * torch.log(float(n_items) / sizes.clamp_min(1))


class RowEntropy(Penalty):
    """Sum over items of the entropy of each row: pushes the relaxation's rows towards one-hot;
    0 at every hard partition."""

    hard_is_zero = True

    def soft(self, S):
        return -(S * torch.log(S.clamp_min(1e-30))).sum((-2, -1))

    def size_cost(self, sizes, n_items):
        return torch.zeros_like(sizes)


class Penalties:
    """The weighted penalties of one fit (weights of zero are left out).

    Parameters
    ----------
    terms : list of (float, Penalty)
    """

    def __init__(self, terms):
        self.terms = [(float(w), p) for w, p in terms if w]
        self._hard_terms = [(w, p) for w, p in self.terms if not p.hard_is_zero]

    @classmethod
    def from_params(cls, *, nuclear=0.0, code_length=0.0, entropy=0.0, nuclear_kind="nuclear"):
        """The estimator's penalty parameters as :class:`Penalties`, in a fixed order."""
        norm = NuclearNorm() if nuclear_kind == "nuclear" else ColumnNorm()
        return cls([(nuclear, norm), (code_length, CodeLength()), (entropy, RowEntropy())])

    def weight(self, kind):
        """Total weight of the penalties of class ``kind``."""
        return sum(w for w, p in self.terms if isinstance(p, kind))

    def soft(self, S):
        """Weighted sum at each soft selection of a batch ``S`` (one value per matrix)."""
        value = S.new_zeros(S.shape[:-2])
        for w, p in self.terms:
            value = value + w * p.soft(S)
        return value

    def size_cost(self, sizes, n_items):
        """Weighted cost of one group of each size (element-wise on ``sizes``)."""
        if not isinstance(sizes, torch.Tensor):
            sizes = torch.as_tensor(sizes, dtype=torch.float64)
        if not self._hard_terms:
            return torch.zeros_like(sizes)
        (w, p), *rest = self._hard_terms
        value = w * p.size_cost(sizes, n_items)
        for w, p in rest:
            value = value + w * p.size_cost(sizes, n_items)
        return value

    def hard(self, sizes, n_items):
        """Value of partitions with group sizes ``sizes`` (``... x groups``): one per row."""
        return self.size_cost(sizes, n_items).sum(-1)

    def of_labels(self, labels):
        """Value of the partition with these labels (a float)."""
        labels = np.asarray(labels)
        sizes = torch.as_tensor(np.bincount(labels), dtype=torch.float64)
        return float(self.hard(sizes, labels.size))
