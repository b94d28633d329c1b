"""The moves of a network's search, each candidate scored by short retrains.

A network's hard objective (:class:`sharelearn.networks.objective.NetworkValidationObjective`,
declaring ``scores_by_retrain``) retrains the tied network
for every partition it scores and caches the result, so these moves ask for as few candidates as
they can, in this order of preference (:func:`network_moves`):

* :class:`AllMerges`: the best of all merges of two groups (with ``L`` items that is cheap);
* :class:`GradientSplits`: the best split of a group along its items' gradients
  (:func:`gradient_splits`), one per group: a group that mixes items the data pull apart may not
  be left by moving one item at a time, since each half-way partition can score worse than
  both ends;
* :class:`FirstImprovingMove`: the first improving move of one item to another group or a new
  one (there are ``L x groups`` of them, and each costs a retrain).

A candidate counts as an improvement when it beats the current value by more than ``1e-9``.
"""

from __future__ import annotations

import numpy as np

from ..partition import canonical_labels
from . import Move, SearchState

__all__ = ["AllMerges", "FirstImprovingMove", "GradientSplits", "best_candidate",
           "first_improving", "gradient_splits", "merges", "network_moves", "one_item_moves"]

_IMPROVEMENT = 1e-9


def merges(labels):
    """Every merge of two groups (canonical labels)."""
    g = int(labels.max()) + 1
    for a in range(g):
        for b in range(a + 1, g):
            yield canonical_labels(np.where(labels == b, a, labels))


def one_item_moves(labels):
    """Every move of one item to another group or to a new one (canonical labels)."""
    g = int(labels.max()) + 1
    sizes = np.bincount(labels)
    for i in range(labels.size):
        targets = [j for j in range(g) if j != labels[i]]
        if sizes[labels[i]] > 1:
            targets.append(g)  # a new singleton group
        for j in targets:
            new = labels.copy()
            new[i] = j
            yield canonical_labels(new)


def gradient_splits(labels, gradients):
    """One split of each group of two or more items, along its items' gradients.

    The items of a group share their values, so the training loss is stationary in the
    group's value, not in each item's: an item's own gradient says where its data would pull
    it if it were free. A group whose items are pulled apart along one direction (positions
    with opposite signs tied together, say) shows it as a dominant direction of its items'
    centred gradients. The items are split by the sign of their projection on the top right
    singular vector of that matrix; the side with positive projections becomes a new group.

    Parameters
    ----------
    labels : ndarray of shape (n_items,)
        Canonical labels.
    gradients : ndarray of shape (n_items, item_size)

    Yields
    ------
    labels : ndarray of shape (n_items,)
        Canonical labels of each proposed split (groups with no split direction yield none).
    """
    n_groups = int(labels.max()) + 1
    for group in range(n_groups):
        members = np.flatnonzero(labels == group)
        if members.size < 2:
            continue
        G = gradients[members] - gradients[members].mean(0)
        if not np.any(G):
            continue
        _, _, vt = np.linalg.svd(G, full_matrices=False)
        side = G @ vt[0] > 0
        if side.all() or not side.any():
            continue
        new = labels.copy()
        new[members[side]] = n_groups
        yield canonical_labels(new)


def best_candidate(objective, candidates):
    """``(value, labels)`` of the best-scoring candidate (the first on ties), or
    ``(inf, None)``."""
    candidates = list(candidates)
    objective.prefetch(candidates)
    scored = [(objective(c), i, c) for i, c in enumerate(candidates)]
    return min(scored, key=lambda t: (t[0], t[1]))[::2] if scored else (np.inf, None)


def first_improving(objective, candidates, threshold):
    """``(value, labels)`` of the first candidate scoring below ``threshold``, or
    ``(inf, None)``. Candidates are retrained ``objective.n_jobs`` at a time, in order, so the
    answer is the serial one."""
    candidates = list(candidates)
    for start in range(0, len(candidates), objective.n_jobs):
        chunk = candidates[start:start + objective.n_jobs]
        objective.prefetch(chunk)
        for c in chunk:
            if (v := objective(c)) < threshold:
                return v, c
    return np.inf, None


class _Retrained(Move):
    """A move whose candidates are scored by the objective's retrains (``objective(labels)``)."""

    def applies(self, objective):
        return objective.scores_by_retrain

    @staticmethod
    def _state(value, labels, state):
        if labels is None or value >= state.value - _IMPROVEMENT:
            return None
        return SearchState(labels=labels, value=float(value))


class AllMerges(_Retrained):
    """The best merge of two groups, all pairs scored."""

    def propose(self, objective, state):
        return self._state(*best_candidate(objective, merges(state.labels)), state)


class GradientSplits(_Retrained):
    """The best split of a group along its items' training-loss gradients."""

    def propose(self, objective, state):
        gradients = objective.item_gradients(state.labels)
        splits = gradient_splits(state.labels, gradients)
        return self._state(*best_candidate(objective, splits), state)


class FirstImprovingMove(_Retrained):
    """The first move of one item (to another group or a new one) that improves."""

    def propose(self, objective, state):
        return self._state(*first_improving(objective, one_item_moves(state.labels),
                                             state.value - _IMPROVEMENT), state)


def network_moves():
    """A fresh list of the network search's moves, in order of preference."""
    return [AllMerges(), GradientSplits(), FirstImprovingMove()]
