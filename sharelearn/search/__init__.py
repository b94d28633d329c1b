"""The discrete search over hard partitions: one driver, a typed state, moves as parts.

A model's *hard objective* (see :mod:`sharelearn.models`) turns a partition into a
:class:`SearchState` (``objective.state(labels)``). A :class:`Move` proposes a better state from
the current one, or ``None``; :func:`local_search` tries a model's moves in their order of
preference each round, accepts the first improvement, and stops when none helps. The moves of
the closed-form models, which score candidates exactly from the normal equations, live in
:mod:`sharelearn.search.moves`; those of networks, which score candidates by retraining, in
:mod:`sharelearn.search.network`; the starts of a search besides the relaxations in
:mod:`sharelearn.search.starts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Move", "SearchState", "improves", "local_search"]


@dataclass
class SearchState:
    """A hard partition as the search sees it: canonical ``labels`` and objective ``value``.
    Objectives add what their moves need (see ``ClosedFormState``)."""

    labels: np.ndarray
    value: float


def improves(new_value, value, tol):
    """Whether ``new_value`` beats ``value`` by more than ``tol`` (relative, at least absolute)."""
    return new_value < value - tol * max(1.0, abs(value))


class Move:
    """One kind of search move. ``propose(objective, state)`` returns an improved state (by the
    objective's own scoring) or None; a move that can only serve some objectives says so by
    :meth:`applies`."""

    def applies(self, objective):
        return True

    def propose(self, objective, state):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


def local_search(objective, labels, moves, *, max_iter=200, fixed_points=None):
    """Improve a partition by ``moves`` until none helps.

    Each round tries the moves in order and accepts the first improved state.

    Parameters
    ----------
    objective : a hard objective
        With ``state(labels) -> SearchState``.
    labels : array-like of shape (n_items,)
        Starting partition.
    moves : sequence of Move
        In order of preference; moves that do not apply to ``objective`` are skipped.
    max_iter : int
        Cap on accepted rounds.
    fixed_points : set of bytes or None
        Partitions (``labels.tobytes()`` of canonical labels) known to be fixed points of the
        same ``moves`` on the same ``objective`` (an earlier search ended there): the search
        stops on reaching one, without the round that would find no move again (at a million
        entries, the costliest round of a search). A search that ends by finding no move adds
        its end to the set.

    Returns
    -------
    labels : ndarray of shape (n_items,)
        Canonical labels of the improved partition.
    value : float
        Its objective.
    n_accepted : int
        Number of accepted rounds.
    converged : bool
        False when the search stopped at ``max_iter`` with moves still improving.
    """
    moves = [m for m in moves if m.applies(objective)]
    state = objective.state(labels)
    for n_accepted in range(max_iter):
        if fixed_points is not None and state.labels.tobytes() in fixed_points:
            return state.labels, state.value, n_accepted, True
        for move in moves:
            new = move.propose(objective, state)
            if new is not None:
                break
        else:
            if fixed_points is not None:
                fixed_points.add(state.labels.tobytes())
            return state.labels, state.value, n_accepted, True
        state = new
    return state.labels, state.value, max_iter, False
