"""A network's search step whose cost does not grow with the number of candidate moves.

Retraining a network for every candidate move (:mod:`sharelearn.search.network`) is affordable
for a few slices; for the thousands of entries of a dense layer it is not (a round of one-item
moves would be ``n_items x n_groups`` retrains). :class:`LinearisedProposal` replaces those
rounds by one proposal per round:

1. the network tied by the current partition, at its best retrain, is linearised in its items'
   own values (:func:`sharelearn.laplace.item_linearisation`): ``f(theta) ~ f(theta0) + J
   (theta - theta0)``, a linear model in the ``n_items`` entries with design ``J``;
2. that local linear model is searched exactly by the closed-form machinery of
   ``SharingDiscoverer(model="linear")`` (its moves, merges and splits, and the structured
   hypotheses' coarsenings), from the current partition, under the same penalties and the
   same objective (the validation split, or the evidence);
3. the partition it returns is retrained once and kept if the network's own objective improves.

A round therefore costs one linearisation, one closed-form search and one retrain, however many
moves the closed-form search looks at. The linear model is only valid near ``theta0``: that is
why its answer is a proposal, confirmed by the retrain, and why the search starts from a
partition whose tied network already fits (the best of the structured hypotheses).
"""

from __future__ import annotations

import numpy as np
import torch

from ..laplace import item_linearisation
from ..partition import canonical_labels
from . import Move, SearchState

__all__ = ["LinearisedProposal", "local_linear_model"]

_IMPROVEMENT = 1e-9


def local_linear_model(problem, w, S, *, loss, validation):
    """The network at ``(w, S)`` as a linear model in its items' values.

    Returns ``(J, target, splits)``: ``J`` (``N x n_items``, one row per scalar output of each
    sample, samples in order), the linearised targets and, with ``validation``, the one
    ``(train, validation)`` row split of the problem's two sample sets (None otherwise: the
    training samples alone, for the evidence). For ``loss="cross_entropy"`` the targets are the
    logits' Gauss-Newton working response ``f + (onehot(y) - p) / c`` with ``c`` the mean
    curvature ``p (1 - p)`` of the logits (one weight for every row, so that it stays a
    least-squares problem).
    """
    X = torch.cat([problem.X_train, problem.X_val]) if validation else problem.X_train
    y = torch.cat([problem.y_train, problem.y_val]) if validation else problem.y_train
    with torch.no_grad():
        out = problem._shape(problem.output(w, S, X))
    J, base = item_linearisation(problem, w, S, X, torch.zeros_like(out))
    if J.shape[-1] != 1:
        raise ValueError("the linearised search needs items that are single entries "
                         "(share={name: None}).")
    J = J[:, :, 0]
    out = out.double()
    # item_linearisation's targets for y = 0 are J theta - f: J theta is the linear part
    linear_part = base + out.reshape(-1)
    if loss == "cross_entropy":
        p = torch.softmax(out, dim=1)
        onehot = torch.nn.functional.one_hot(y.long(), out.shape[1]).double()
        curvature = float((p * (1 - p)).mean().clamp_min(1e-6))
        residual = (onehot - p) / curvature
    else:
        residual = y.double().reshape(out.shape) - out
    target = linear_part + residual.reshape(-1)
    splits = None
    if validation:
        per_sample = out.shape[1]
        n_train = problem.X_train.shape[0] * per_sample
        splits = [(np.arange(n_train), np.arange(n_train, J.shape[0]))]
    return J.cpu().numpy(), target.cpu().numpy(), splits


class LinearisedProposal(Move):
    """Propose the partition that the local linear model of the network prefers, and keep it
    if its retrain scores better (one retrain per round).

    Parameters
    ----------
    search_local : callable
        ``search_local(J, target, splits, labels) -> labels``: the closed-form search of the
        local linear model from the partition ``labels``.
    loss : str
        The network's loss.
    validation : bool
        Whether the objective uses a validation split (False: the evidence).
    penalty_change : callable or None
        ``penalty_change(labels)``: what a partition gains from a block-wise description of its
        penalties (:meth:`~sharelearn.search.coarsening.SharingFamily.penalty_change`); the
        retrain confirms a proposal with it, as the outer loop ranks results.
    """

    def __init__(self, search_local, *, loss, validation, penalty_change=None):
        self.search_local, self.loss, self.validation = search_local, loss, validation
        self.penalty_change = penalty_change or (lambda labels: 0.0)
        self._tried = set()

    def applies(self, objective):
        return hasattr(objective, "best_run") and hasattr(objective, "score_from")

    def propose(self, objective, state):
        key = state.labels.tobytes()
        if key in self._tried:  # its proposal was already refused
            return None
        self._tried.add(key)
        S, w, problem = objective.best_run(state.labels)
        J, target, splits = local_linear_model(problem, w, S, loss=self.loss,
                                               validation=self.validation)
        candidate = canonical_labels(self.search_local(J, target, splits, state.labels))
        if np.array_equal(candidate, state.labels):
            return None
        # the proposal's retrains include one from the current network (score_from)
        value = float(objective.score_from(candidate, state.labels))
        change = self.penalty_change(candidate) - self.penalty_change(state.labels)
        if value + change >= state.value - _IMPROVEMENT:
            return None
        return SearchState(labels=candidate, value=value)
