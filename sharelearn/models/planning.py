"""The memory of a closed-form fit: what its problem needs, by part, and how the search works
within a budget (``memory_budget``, :mod:`sharelearn._memory`).

:class:`MemoryNeed` is the estimate a model makes before any work
(:meth:`~sharelearn.models.closed_form.ClosedFormModel.memory_need`); :class:`MemoryPlan` the
blocks of candidates and restarts that fit what is left of the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._memory import format_bytes

__all__ = ["MemoryNeed", "MemoryPlan"]

# The fewest columns (groups and the spare) a search state holds: two groups and the spare.
_MIN_COLUMNS = 3
# The screen's ratings are blocked by at least this many items.
_MIN_SCREEN_BLOCK = 1024


@dataclass
class MemoryNeed:
    """What a closed-form fit holds at its peak (bytes, by part; see
    :meth:`~sharelearn.models.closed_form.ClosedFormModel.memory_need`): ``parts`` with
    ``columns`` columns in the search states (``_MIN_COLUMNS``, or the start's groups and the
    spare), the screen included with its smallest block of items and the exact scoring with
    one candidate. Beyond ``columns``
    the two states hold ``per_column`` more for each further column and ``per_column_squared``
    for each further square of the columns (their ``F x R x R`` normal equations). For each
    item the screen rates at once: ``screen_item`` bytes plus ``screen_item_column`` per
    column; for each candidate (a one-item move or a merge) scored exactly at once:
    ``candidate`` bytes per square of the columns (its refitted ``F x R x R`` systems); for
    each restart relaxed at once: ``relaxation`` bytes per item and candidate group."""

    parts: dict
    per_column: int
    screen_item: int
    screen_item_column: int
    n_items: int
    per_column_squared: int = 0
    candidate: int = 0
    relaxation: int = 0
    columns: int = _MIN_COLUMNS

    def _screen_bytes(self, n_items, n_columns):
        return n_items * (self.screen_item + self.screen_item_column * n_columns)

    @property
    def minimum(self):
        """Bytes at ``columns`` columns, with the smallest block of the screen and one
        candidate scored at once."""
        return sum(self.parts.values())

    def held(self, n_columns):
        """Bytes held beside the screen's block and the candidates scored at once, with
        ``n_columns`` columns in the states (never counted below ``columns``)."""
        at = self.columns
        smallest = min(self.n_items, _MIN_SCREEN_BLOCK)
        more = max(n_columns, at)
        return (self.minimum - self._screen_bytes(smallest, at) - self.candidate * at * at
                + self.per_column * (more - at) + self.per_column_squared * (more**2 - at**2))

    def screen_block(self, budget, n_columns):
        """Items the screen may rate at once beside the rest at ``n_columns`` columns (all of
        them without a budget), at least ``_MIN_SCREEN_BLOCK``."""
        if budget is None:
            return self.n_items
        smallest = min(self.n_items, _MIN_SCREEN_BLOCK)
        fits = ((budget - self.held(n_columns))
                // (self.screen_item + self.screen_item_column * n_columns))
        return int(min(self.n_items, max(smallest, fits)))

    def candidate_block(self, budget, n_columns, n_candidates):
        """Of ``n_candidates``, how many the search may score exactly at once beside the rest
        at ``n_columns`` columns (all without a budget), at least one."""
        if budget is None:
            return n_candidates
        fits = (budget - self.held(n_columns)) // max(1, self.candidate * n_columns**2)
        return int(min(n_candidates, max(1, fits)))

    def relaxation_bytes(self, n_restarts, n_columns):
        """Bytes of ``n_restarts`` restarts relaxed at once with ``n_columns`` candidate
        groups."""
        return self.relaxation * n_restarts * self.n_items * n_columns

    def relaxation_batch(self, budget, n_columns):
        """Restarts that may be relaxed at once with ``n_columns`` candidate groups beside the
        data and their statistics (no states are held then); 0 when not even one fits."""
        if budget is None:
            return math.inf
        room = (budget - self.parts["data"] - self.parts["statistics"]
                - self.parts.get("hypotheses", 0))
        return max(0, room // max(1, self.relaxation_bytes(1, n_columns)))

    def describe(self):
        return ", ".join(f"{name} {format_bytes(b)}" for name, b in self.parts.items())


class MemoryPlan:
    """How a fit works within ``budget`` bytes, given its ``need`` (:class:`MemoryNeed`).

    Called with a number of columns, it gives the items the search's screen rates at once (it
    is the objectives' ``screen_block``); :meth:`candidates` gives the candidates the search
    scores exactly at once (:func:`sharelearn.search.moves.exact_move_changes` and
    :func:`~sharelearn.search.moves.best_merge`), :meth:`check_relaxation` refuses a relaxation
    that does not fit."""

    def __init__(self, need, budget):
        self.need, self.budget = need, budget

    def __call__(self, n_columns):
        return self.need.screen_block(self.budget, n_columns)

    def candidates(self, n_columns, n_candidates):
        return self.need.candidate_block(self.budget, n_columns, n_candidates)

    def relaxations(self, n_columns):
        """Most restarts relaxed at once (0: not even one fits)."""
        return self.need.relaxation_batch(self.budget, n_columns)

    def check_relaxation(self, n_restarts, n_columns):
        """A ``MemoryError`` before relaxing ``n_restarts`` restarts with ``n_columns``
        candidate groups at once, when they do not fit."""
        if self.relaxations(n_columns) >= n_restarts:
            return
        need = self.need
        held = (need.parts["data"] + need.parts["statistics"]
                + need.parts.get("hypotheses", 0))
        many = f"{n_restarts} restarts" if n_restarts > 1 else "one restart"
        raise MemoryError(
            f"Relaxing {many} with {n_columns} candidate groups (n_candidate_groups) on "
            f"{need.n_items:,} shareable items needs "
            f"{format_bytes(need.relaxation_bytes(n_restarts, n_columns))} beside "
            f"{format_bytes(held)} of data, statistics and structured hypotheses, more than "
            f"the memory budget allows "
            f"({format_bytes(self.budget)}). Lower n_candidate_groups, set n_restarts=0 (the "
            f"discrete search alone needs no relaxation), or raise memory_budget.")
