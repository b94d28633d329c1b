"""The discrete search over hard partitions: one driver, a typed state, moves as parts.

A model's *hard objective* (the protocol :class:`HardObjective`) turns a partition into a
:class:`SearchState` (``objective.state(labels)``) and declares what else it can score. A
:class:`Move` proposes a better state from the current one, or ``None``; :func:`local_search`
tries a model's moves in their order of preference each round, accepts the first improvement,
and stops when none helps (:func:`gated_search` runs it from a start that coarsens a
structured hypothesis, and :class:`StartResult` records where a start ended). The moves of the
closed-form models, which score candidates exactly from the normal equations, live in
:mod:`sharelearn.search.moves`; those of networks, which score candidates by retraining, in
:mod:`sharelearn.search.network`; the starts of a search besides the relaxations in
:mod:`sharelearn.search.starts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["STAY", "HardObjective", "Move", "SearchState", "StartResult", "gated_search",
           "improves", "local_search"]


class HardObjective:
    """The hard-objective protocol: how a model scores hard partitions for the search.

    A model's :meth:`~sharelearn.models.base.SharingModel.hard_objective` returns one. The
    search and the outer loop (:mod:`sharelearn.outer`) ask it only what this class declares;
    what an objective *can* do beyond scoring is declared by the class attributes below, never
    probed by ``hasattr``: a move that needs a capability reads it in its ``applies``. The
    implementations: the closed forms' ``ValidationObjective`` and ``EvidenceObjective``
    (:mod:`sharelearn.models.objectives`: exact deltas from the normal equations) and the
    networks' ``NetworkValidationObjective`` and ``NetworkEvidenceObjective``
    (:mod:`sharelearn.networks.objective`: a retrain per partition, cached). It lives here,
    below both families, so that neither imports the other's package.

    Attributes
    ----------
    penalties : Penalties
        The penalties of a hard partition, part of every value.
    screen_block : MemoryPlan or None
        How many items the closed forms' screen rates, and how many candidates they score, at
        once within the fit's memory budget (``candidates(n_columns, n)``); None: no budget.
    shortlist : callable or None
        ``shortlist(problem, family, n_keep)``: the structured hypotheses built in full (their
        indices, or None for all), for a ranking by block equations
        (:class:`~sharelearn.search.coarsening.Shortlist`); None: all of them.
    scores_exactly : bool
        Candidates are scored exactly and cheaply from the normal equations (``screen_moves``,
        ``exact_moves``, ``exact_merges``): the closed forms' moves
        (:mod:`sharelearn.search.moves`) serve it. Such an objective may also approximate moves
        and merges from one inverse of its equations (``approximate_moves``,
        ``approximate_merges``, returning None where it cannot): the moves then solve exactly
        only the candidates whose choice the approximation cannot settle.
    scores_by_retrain : bool
        Each partition costs a retrain (cached by partition): the network moves
        (:mod:`sharelearn.search.network`) serve it, asking for few candidates at a time with
        ``prefetch(candidates)`` (retrains in threads) and ``objective(labels)`` (the value).
    can_linearise : bool
        ``local_linear_model(labels)`` gives the linear model of the objective's network around
        the partition's best retrain and ``score_from(labels, parent)`` scores a proposal with
        one more retrain from its parent's: the linearised proposal
        (:mod:`sharelearn.search.linearised`) serves it.
    scored_on_training : bool
        Candidates are scored on the training data (the evidence) rather than on validation
        parts.
    """

    penalties = None
    screen_block = None
    shortlist = None
    scores_exactly = False
    scores_by_retrain = False
    can_linearise = False
    scored_on_training = False

    def state(self, labels):
        """The search's state of a partition (:class:`sharelearn.search.SearchState`, or a
        subclass carrying what the objective's moves need): canonical ``labels`` and ``value``,
        the data term plus the penalties."""
        raise NotImplementedError

    def penalty_change(self, labels):
        """What ``labels`` gains from a block-wise description of its penalties (the structured
        hypotheses it coarsens; 0 by default). The outer loop charges it through the
        hypotheses' ranking; an objective that serves moves across hypotheses knows it too."""
        return 0.0

    def hypothesis_ranking(self, hypotheses, penalties, *, exceptions, explains):
        """The objective's own way of ranking the structured ``hypotheses`` (description ->
        labels), or None: the outer loop's ranking by their block equations
        (:mod:`sharelearn.search.coarsening`), which needs the normal equations of a closed
        form. A ranking answers the loop with ``ranked``, ``best``, ``lead``, ``explained``,
        ``replaces``, ``rank(max_iter, progress)``, ``choose_start(model, init)``, ``gate()``,
        ``penalty_change(labels)``, ``search_again(leader, max_iter, progress)`` and
        ``table()`` (see :class:`sharelearn.networks.hypotheses.RetrainedHypotheses`)."""
        return None


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
    :meth:`applies`. ``searches_on``: the move runs a search of its own from the partition it
    builds (its result is the end of that search, not one step), which the gated search's first
    step leaves out (:func:`gated_search`)."""

    searches_on = False

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


@dataclass
class StartResult:
    """Where one start of a fit ended.

    ``kind`` is ``"relax"`` (a relaxation restart), ``"init"`` (the user's ``init``, the fully
    shared partition by default), ``"extra"`` (a model's extra start), ``"hypothesis: <name>"``
    (the best coarsening of the leading hypothesis; ``"; the data lie in its span: the only
    start"`` is appended when the model's test says so) or ``"coarsening: <name>"`` (a
    hypothesis's coarsening searched again after the others); ``rounded`` the
    partition the search began from, ``labels`` and ``value`` where it ended; ``soft``,
    ``curve`` and ``n_iter`` describe the relaxation (``None``, empty and 0 for the others);
    ``n_moves`` counts accepted search rounds; ``converged`` is False when the search stopped
    at its cap.
    """

    kind: str
    rounded: np.ndarray
    labels: np.ndarray
    value: float
    n_moves: int
    converged: bool
    soft: np.ndarray = None
    curve: np.ndarray = field(default_factory=lambda: np.empty(0))
    n_iter: int = 0


# The gate of a start that the item-wise search leaves as it is (see gated_search).
STAY = "stay"


def gated_search(model, objective, labels, search, search_max_iter, gate=None,
                 fixed_points=None):
    """The item-wise search from ``labels`` with ``model``'s moves. With ``gate=STAY`` there is
    none (the start is a coarsening of a hypothesis that explains the data: what moves single
    items fits noise). With any other ``gate`` (the objective change of a partition's
    block-wise penalties, :meth:`~sharelearn.search.coarsening.SharingFamily.penalty_change`),
    the start coarsens a hypothesis: the search leaves it only if its first accepted step
    improves the objective *with* the gate, i.e. pays for leaving the structure (after that step
    the partition coarsens nothing and the objectives agree). Otherwise the start is returned
    as it is; with weak penalties the item-wise search would otherwise wander through noise from
    there. That first step is one step: moves that search on from what they build
    (:attr:`Move.searches_on`, e.g. re-solving whole rows) are left out of it. They exist for
    rows that greedy moves grew wrongly, while the start's exceptions to its hypothesis were
    placed by the exception search; on a border map (sobel, reflect mode, 8 x 8) the re-solved
    border rows' search took 13 of the fit's 19 s and was never accepted in the borders
    benchmark's quick set. ``fixed_points``: see :func:`local_search` (searches of one fit share
    them)."""
    if not search or gate is STAY:
        return labels, objective.state(labels).value, 0, True
    if gate is None:
        return local_search(objective, labels, model.search_moves(search_max_iter),
                            max_iter=search_max_iter, fixed_points=fixed_points)
    steps = [m for m in model.search_moves(search_max_iter) if not m.searches_on]
    first, value, n_moves, _ = local_search(objective, labels, steps, max_iter=1,
                                            fixed_points=fixed_points)
    start_value = objective.state(labels).value
    if n_moves == 0 or value + gate(first) >= start_value + gate(labels):
        return labels, start_value, 0, True
    if search_max_iter == 1:
        return first, value, 1, False
    labels, value, n_moves, converged = local_search(
        objective, first, model.search_moves(search_max_iter), max_iter=search_max_iter - 1,
        fixed_points=fixed_points)
    return labels, value, n_moves + 1, converged
