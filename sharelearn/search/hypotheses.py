"""Searching from starts that structured hypotheses lead: their ranking, their coarsenings,
and the item-wise searches from every start.

:class:`HypothesisRanking` ranks a fit's structured hypotheses (:mod:`sharelearn.search.
coarsening`) by their block equations, searches the coarsenings of the best ones with their
exceptions, and chooses which leads the item-wise searches and how (a network's objective ranks
them its own way: :class:`sharelearn.networks.hypotheses.RetrainedHypotheses`, the same
interface). :func:`search_starts` runs the item-wise searches from a list of starts (the rounded
relaxations, ``init``, the extra starts and the leading coarsening) and returns one
:class:`~sharelearn.search.StartResult` per start. The outer loop (:mod:`sharelearn.outer`)
adds the relaxations before them; :func:`search_surrogate` runs them alone, for a move that
searches a surrogate model (:class:`~sharelearn.search.linearised.LinearisedProposal`), so that
no move runs the outer loop.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from joblib import Parallel, delayed

from ..partition import canonical_labels
from . import STAY, StartResult, gated_search
from .coarsening import (
    HypothesisBlocks,
    SharingFamily,
    coarsening_search,
    coarsening_with_exceptions,
    free_rows,
)
from .exceptions import home_groups, replaced_rows, structured_value

__all__ = ["HypothesisRanking", "NO_PROGRESS", "rank_hypotheses", "search_in_turn",
           "search_starts", "search_surrogate"]


class _NoProgress:
    """A progress report that shows nothing (the interface of ``sharelearn.outer``'s bar)."""

    def expect(self, n):
        pass

    def step(self, what, value=None):
        pass


NO_PROGRESS = _NoProgress()

# The coarsening search starts from a hypothesis's own partition only up to this many blocks
# (a 6 x 6 torus's 36 translations): each round scores O(K R) candidates of R x R, and from K
# groups it needs about K rounds. Above, and always, it starts from the blocks grouped by their
# fitted values (the best two of HypothesisBlocks.value_starts: k-means with 2..16 groups, and
# cuts where neighbouring values are 2, 3 or 4 standard errors apart).
_MAX_BLOCKS_FROM_HYPOTHESIS = 40
# hypotheses (the best-scoring ones) whose coarsenings are searched
_N_HYPOTHESES_SEARCHED = 2
# output rows that look replaced, set apart before the hypotheses are ranked (at most)
_FREE_ROWS = 4


def _coarsening_starts(blocks):
    K = blocks.family.n_blocks(blocks.h)
    by_value = blocks.value_starts()
    by_value.sort(key=blocks.value_of)
    return ([np.arange(K)] if K <= _MAX_BLOCKS_FROM_HYPOTHESIS else []) + by_value[:2]




def search_in_turn(model, objective, starts, search, search_max_iter, progress, gates):
    """The searches from ``starts`` (a dict: key -> labels) one after the other, last key first
    (the ``init`` start, unless a restart rounded to it). A start that is where an earlier
    search converged is not searched again: the search stops where no move of any kind
    improves, so it would stop there at once (with the same value, computed by the same
    code). For the same reason a search that reaches where an earlier one found no move stops
    there (``fixed_points``)."""
    keys = list(starts)
    found, ends, fixed_points = {}, {}, set()
    for i, k in enumerate(keys[::-1]):
        if k in ends:
            found[k] = (*ends[k], 0, True)
            progress.step(f"search {i + 1} of {len(keys)}: where an earlier one ended")
            continue
        found[k] = gated_search(model, objective, starts[k], search, search_max_iter,
                                gates.get(k), fixed_points)
        labels, value, n_moves, converged = found[k]
        progress.step(f"search {i + 1} of {len(keys)}: {_rounds(n_moves)}", value)
        if converged:
            ends.setdefault(labels.tobytes(), (labels, value))
    return found


class HypothesisRanking:
    """The structured hypotheses of one fit (:mod:`sharelearn.search.coarsening`): their
    ranking, their best coarsenings, and which of them leads the searches and how."""

    def __init__(self, objective, hypotheses, penalties, exceptions=True, explains=None):
        self.objective, self.penalties = objective, penalties
        self.explains = explains
        self._explained_by_one = None  # whether a leading hypothesis explains the data
        self.family = family = SharingFamily(hypotheses, exceptions=exceptions)
        # on large layers, only the hypotheses that fit a subset of the rows best are built
        shortlist = (None if objective.shortlist is None else
                     objective.shortlist(objective.problem, family, _N_HYPOTHESES_SEARCHED))
        built = range(len(family)) if shortlist is None else shortlist
        # the hypotheses' blocks, with outlying output rows set apart (below)
        self._build(built)
        if family.with_exceptions and self.scores and not objective.scored_on_training:
            apart = self._outlying_rows()
            if apart.size:
                self._build(built, apart)
        scores = self.scores
        self.ranked = sorted(scores, key=lambda h: (scores[h], h))[:_N_HYPOTHESES_SEARCHED]
        if family.with_exceptions and self.ranked:
            self.ranked += self._coarser_than_lead()
        # the best coarsening known of each leading hypothesis: (labels, value)
        self.best = {h: (family.labels[h], scores[h]) for h in self.ranked}
        self.lead, self.explained, self.replaces = None, False, False

    def _build(self, built, apart=None):
        """Score every hypothesis of ``built`` with its blocks free, keeping the normal
        equations (``F x K x K``, twice) of the best ``_N_HYPOTHESES_SEARCHED`` only: held
        all at once, the 31 hypotheses of an 8 x 8 map (up to 1,024 blocks) took about 350 MB
        of a 400 MB peak, whatever the memory budget."""
        self._apart = apart
        self.scores, self.blocks = {}, {}
        for h in built:
            blocks = HypothesisBlocks(self.objective, self.family, h, apart)
            self.scores[h] = blocks.value_of(np.arange(self.family.n_blocks(h)))
            self.blocks[h] = blocks
            if len(self.blocks) > _N_HYPOTHESES_SEARCHED:
                del self.blocks[max(self.blocks, key=lambda g: (self.scores[g], g))]

    def _blocks_of(self, h):
        """The normal equations of hypothesis ``h``, built again if they were let go."""
        if h not in self.blocks:
            self.blocks[h] = HypothesisBlocks(self.objective, self.family, h, self._apart)
        return self.blocks[h]

    def _outlying_rows(self):
        """The output rows that look replaced under the best-scoring hypothesis (each block
        free; :func:`~sharelearn.search.exceptions.replaced_rows`), at most ``_FREE_ROWS``.

        A replaced output row misleads the ranking: a hypothesis with more blocks absorbs part
        of its residual (a circular convolution with one row replaced ranked a zero-padded
        reading with 225 blocks first and the true 64-block torus 7th). Set apart and fitted
        freely (:class:`~sharelearn.search.coarsening.HypothesisBlocks`), the row no longer
        decides which hypothesis leads nor how its blocks are grouped; its entries are then
        exceptions, priced as any other, which the later searches may move back."""
        h = min(self.scores, key=lambda g: (self.scores[g], g))
        labels, d = self.family.labels[h], self.objective.problem.n_inputs
        rows = []
        # one at a time, the worst first, refitted without it: a replaced row also spoils
        # its neighbours' fit (rows 6 and 7 looked replaced beside row 5 of that example)
        for _ in range(_FREE_ROWS):
            st = self.objective.state(free_rows(labels, rows, d))
            found = replaced_rows(self.objective, st, 1)
            if not found.size:
                break
            rows.append(int(found[0]))
        return np.array(sorted(rows), dtype=np.int64)

    def _coarser_than_lead(self):
        """The best-scoring hypothesis that the leading one refines, with at most half its
        blocks, if it is not ranked already: ``[h]`` or ``[]``.

        With each block free, a finer hypothesis also absorbs departures from a coarser one:
        20 changed entries of a circular convolution ranked its zero-padded every-offset
        reading (225 blocks) first and the 64-block torus 7th, and the exceptions to the
        zero-padded reading never reached the truth (PD 3,050). Searched with its exceptions,
        the coarser hypothesis can say what the finer one only absorbs."""
        family, lead = self.family, self.ranked[0]
        coarser = [h for h in self.scores if h != lead
                   and 2 * family.n_blocks(h) <= family.n_blocks(lead)
                   and family.blocks_of(lead, family.labels[h]) is not None]
        if not coarser:
            return []
        best = min(coarser, key=lambda h: (self.scores[h], h))
        # one ranked already is enough: the next coarser one was the circular map's 1-D
        # reading, searched for 2 s to score 51,000 units worse
        if any(h in self.ranked for h in coarser):
            return []
        self._blocks_of(best)
        return [best]

    def penalty_change(self, labels):
        return self.family.penalty_change(labels, self.penalties)

    def search_coarsenings(self, max_iter, progress=None):
        """The best coarsenings of the leading hypotheses, each with the exceptions the data
        pay for, before any item-wise search."""
        for h in self.ranked:
            if progress is not None:
                progress.step(f"coarsenings of {self.family.names[h]}")
            labels, value, _, _ = self._coarsening(h, _coarsening_starts(self.blocks[h]),
                                                   max_iter)
            self.best[h] = self._with_exceptions(h, labels, value, max_iter)

    # the step every ranking strategy takes before the searches (a network's:
    # sharelearn.networks.hypotheses.RetrainedHypotheses.rank)
    rank = search_coarsenings

    def _some_hypothesis_explains(self):
        """Whether the data lie in the span of a leading hypothesis (``model.explains``): then
        nothing departs from it that the data tell from noise, and no exception is searched
        (with no penalties, the exceptions to a 2-channel reading of a 5-tap convolution's
        data reproduced it with 120 exceptions fitted to validation noise, and won)."""
        if self.explains is None:
            return False
        if self._explained_by_one is None:
            self._explained_by_one = any(self.explains(self.family.labels[g])
                                         for g in self.ranked)
        return self._explained_by_one

    def _coarsening(self, h, starts, max_iter):
        """:func:`~sharelearn.search.coarsening.coarsening_search` of hypothesis ``h``'s
        blocks, with the rows set apart freed and priced as its exceptions."""
        labels, value, n_moves, converged = coarsening_search(self.blocks[h], starts,
                                                              max_iter=max_iter)
        if self.blocks[h].apart.size:
            labels = self.blocks[h].free_rows(labels)
            value = structured_value(self.objective, self.family, h, labels)[0]
        return labels, value, n_moves, converged

    def _with_exceptions(self, h, labels, value, max_iter):
        """``(labels, value)`` of a coarsening of hypothesis ``h`` with the exceptions the data
        pay for (:func:`~sharelearn.search.coarsening.coarsening_with_exceptions`)."""
        if not self.family.with_exceptions:
            return labels, value
        if self._some_hypothesis_explains():
            return labels, value
        found, found_value, _ = coarsening_with_exceptions(self.objective, self.family, h,
                                                           labels, value, max_iter=max_iter)
        return (found, found_value) if found_value < value else (labels, value)

    def choose_start(self, model, init):
        """Lead with the best coarsening if it scores better than ``init``.

        Where the data lie in the leading hypothesis's span (``model.explains``), the true
        sharing coarsens it: its best coarsening is the one start needed, kept out of the
        item-wise search (what moves single items out of it fits noise), and the relaxations
        are not needed either. Under weak penalties the searches from the shared partition and
        the relaxations wander through noise: with none at all, 174-242 s on
        benchmarks/bench_penalty_cost.py, and 1,000 rounds (150-210 s) from the gated start.
        On correlated inputs the searches from the shared partition and from ridge clusters
        wander for hundreds of rounds, and neither won on any case of
        benchmarks/bench_realistic.py where a hypothesis scored better than the start: the best
        coarsening replaces them (``model.hypothesis_replaces_start``). Elsewhere both are
        searched: data that coarsen no hypothesis (a map tied by an arbitrary partition; before
        the point groups were hypotheses, D_4's map on a 7 x 7 image) are found from the shared
        start.
        """
        init_value = self.objective.state(init).value + self.penalty_change(init)
        lead = min(self.ranked, key=lambda h: self.best[h][1])
        if self.best[lead][1] < init_value:
            self.lead = lead
            self.explained = model.explains(self.family.labels[lead])
            self.replaces = self.explained or model.hypothesis_replaces_start()

    def gate(self):
        """The gate of the lead's item-wise search (see :func:`~sharelearn.search.gated_search`)."""
        return STAY if self.explained else partial(self.family.penalty_change,
                                                    penalties=self.penalties)

    def search_again(self, leader, max_iter, progress):
        """The leading hypotheses' coarsenings again, from their best so far and from the
        coarsening nearest to ``leader`` (the best partition of any start)."""
        family, out = self.family, []
        progress.expect(len(self.ranked))
        for h in self.ranked:
            begin = [family.majority_blocks(h, self.best[h][0]),
                     family.majority_blocks(h, leader)]
            labels, value, n_moves, converged = self._coarsening(h, begin, max_iter)
            known = self.best[h][0]
            if np.array_equal(labels, canonical_labels(home_groups(family.labels[h],
                                                                   known)[1])):
                labels = known  # the coarsening it had: its exceptions are known too
            else:
                labels, _ = self._with_exceptions(h, labels, value, max_iter)
            # rescored as every other result is, so that equal partitions get equal values
            value = self.objective.state(labels).value + self.penalty_change(labels)
            out.append(StartResult(f"coarsening: {family.names[h]}", family.labels[h],
                                   labels, value, n_moves, converged))
            progress.step(f"coarsenings of {family.names[h]} again", value)
        return out


    def table(self):
        """One row per hypothesis scored: its name, blocks, and where its coarsenings led
        (``groups``, ``exceptions`` and ``objective`` of the best one known; the hypothesis's
        own partition for those not searched), best objective first."""
        rows = []
        for h in self.scores:
            labels, value = self.best.get(h, (self.family.labels[h], self.scores[h]))
            rows.append({"hypothesis": self.family.names[h], "labels": labels,
                         "blocks": self.family.n_blocks(h),
                         "groups": int(labels.max()) + 1,
                         "exceptions": int(self.family.exceptions(h, labels).sum()),
                         "objective": float(value), "searched": h in self.best})
        return sorted(rows, key=lambda r: r["objective"])


def rank_hypotheses(model, objective, hypotheses, penalties, init, *, exceptions, search,
                    max_iter, hypothesis_start, progress=NO_PROGRESS):
    """The ranking of ``hypotheses`` (description -> labels): the objective's own (a network's
    retrains), else :class:`HypothesisRanking`; with ``search``, the leading hypotheses'
    coarsenings searched; with ``hypothesis_start``, the lead chosen against ``init``."""
    hyp = objective.hypothesis_ranking(hypotheses, penalties, exceptions=exceptions,
                                       explains=model.explains) or HypothesisRanking(
        objective, hypotheses, penalties, exceptions, model.explains)
    if search:
        progress.expect(len(hyp.ranked))
        hyp.rank(max_iter, progress)
    if hypothesis_start:
        hyp.choose_start(model, init)
    return hyp


def search_starts(model, objective, rounded, init, extra_starts, hyp, *, search, max_iter,
                  workers=1, n_jobs=None, progress=NO_PROGRESS):
    """The item-wise searches of one fit, from ``rounded`` (the relaxations' rounded
    partitions), ``init``, ``extra_starts`` and the leading coarsening of ``hyp`` (a ranking,
    or None), each distinct start searched once (in ``workers`` joblib workers when more than
    one); then, with ``search`` and ``hyp``, the leading hypotheses' coarsenings again.
    Returns one :class:`~sharelearn.search.StartResult` per start, in that order (the
    relaxations first), then the coarsenings searched again."""
    n_relax = len(rounded)
    starts = list(rounded) + [init]
    lead = None if hyp is None else hyp.lead
    replaces = lead is not None and hyp.replaces
    if lead is not None:
        if replaces:
            starts[n_relax] = hyp.best[lead][0]
        else:
            starts.append(hyp.best[lead][0])
    if not replaces:
        starts[n_relax + 1:n_relax + 1] = [canonical_labels(s) for s in extra_starts]
    hyp_index = None if lead is None else (n_relax if replaces else len(starts) - 1)
    distinct = {}
    for labels in starts:
        distinct.setdefault(labels.tobytes(), labels)
    gates = {} if lead is None else {starts[hyp_index].tobytes(): hyp.gate()}
    keys = list(distinct)
    progress.expect(len(keys))
    if workers == 1:
        found = search_in_turn(model, objective, distinct, search, max_iter, progress, gates)
    else:
        tasks = (delayed(gated_search)(model, objective, distinct[k], search, max_iter,
                                       gates.get(k)) for k in keys)
        found = {}
        for i, (k, result) in enumerate(zip(keys, Parallel(n_jobs=n_jobs,
                                                          return_as="generator")(tasks),
                                            strict=True)):
            found[k] = result
            progress.step(f"search {i + 1} of {len(keys)}: {_rounds(result[2])}", result[1])

    results = []
    for i, start in enumerate(starts):
        labels, value, n_moves, converged = found[start.tobytes()]
        kind = "relax" if i < n_relax else "init" if i == n_relax else "extra"
        if i == hyp_index:
            kind = f"hypothesis: {hyp.family.names[lead]}" + (
                "; the data lie in its span: no item-wise search from it" if hyp.explained
                else "")
        if hyp is not None:
            value = value + hyp.penalty_change(labels)
        results.append(StartResult(kind, start, labels, float(value), n_moves, converged))
    if search and hyp is not None:
        results += hyp.search_again(min(results, key=lambda r: r.value).labels, max_iter,
                                    progress)
    return results


def search_surrogate(model, penalties, start, *, hypotheses, max_iter):
    """The best partition the search finds for ``model`` (a prepared closed form) from
    ``start``, with its ``hypotheses`` (no exceptions) and no relaxation: what the outer loop
    finds with no restarts. A move that proposes from a surrogate of its model (a network's
    local linear model) searches the surrogate through this."""
    objective = model.hard_objective(penalties)
    init = canonical_labels(start)
    hyp = None
    if hypotheses:
        hyp = rank_hypotheses(model, objective, hypotheses, penalties, init, exceptions=False,
                              search=True, max_iter=max_iter, hypothesis_start=True)
    results = search_starts(model, objective, [], init, (), hyp, search=True,
                            max_iter=max_iter)
    return min(results, key=lambda r: r.value).labels


def _rounds(n):
    return f"{n} round" + ("" if n == 1 else "s")
