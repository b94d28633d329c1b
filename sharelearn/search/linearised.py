"""A network's search step whose cost does not grow with the number of candidate moves.

Retraining a network for every candidate move (:mod:`sharelearn.search.network`) is affordable
for a few slices; for the thousands of entries of a dense layer it is not (a round of one-item
moves would be ``n_items x n_groups`` retrains). :class:`LinearisedProposal` replaces those
rounds by one proposal per round:

1. the network tied by the current partition, at its best retrain, is linearised in its items'
   own values (the objective's ``local_linear_model``, a capability it declares with
   ``can_linearise``): ``f(theta) ~ f(theta0) + J (theta - theta0)``, a linear model in the
   ``n_items`` entries with design ``J``;
2. that local linear model is searched exactly by the closed-form machinery of
   ``SharingDiscoverer(model="linear")`` (its moves, merges and splits, and the structured
   hypotheses' coarsenings), from the current partition, under the same penalties and the
   same objective (the validation split, or the evidence): the ``search_local`` the model
   gives the move;
3. the partition it returns is retrained once (``score_from``) and kept if the network's own
   objective, with the block-wise penalties (``penalty_change``), improves.

A round therefore costs one linearisation, one closed-form search and one retrain, however many
moves the closed-form search looks at. The linear model is only valid near ``theta0``: that is
why its answer is a proposal, confirmed by the retrain, and why the search starts from a
partition whose tied network already fits (the best of the structured hypotheses).
"""

from __future__ import annotations

import numpy as np

from ..partition import canonical_labels
from . import Move, SearchState

__all__ = ["LinearisedProposal"]

_IMPROVEMENT = 1e-9


class LinearisedProposal(Move):
    """Propose the partition that the local linear model of the network prefers, and keep it
    if its retrain scores better (one retrain per round).

    Parameters
    ----------
    search_local : callable
        ``search_local(J, target, splits, labels) -> labels``: the closed-form search of the
        local linear model from the partition ``labels``.
    """

    def __init__(self, search_local):
        self.search_local = search_local
        self._tried = set()

    def applies(self, objective):
        return objective.can_linearise

    def propose(self, objective, state):
        key = state.labels.tobytes()
        if key in self._tried:  # its proposal was already refused
            return None
        self._tried.add(key)
        J, target, splits = objective.local_linear_model(state.labels)
        candidate = canonical_labels(self.search_local(J, target, splits, state.labels))
        if np.array_equal(candidate, state.labels):
            return None
        # the proposal's retrains include one from the current network (score_from)
        value = float(objective.score_from(candidate, state.labels))
        # the block-wise penalties, as the outer loop ranks results
        change = objective.penalty_change(candidate) - objective.penalty_change(state.labels)
        if value + change >= state.value - _IMPROVEMENT:
            return None
        return SearchState(labels=candidate, value=value)
