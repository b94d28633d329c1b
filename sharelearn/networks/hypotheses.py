"""A network's way of ranking its structured hypotheses: by retraining the network tied by each.

A closed form ranks its hypotheses by their block equations and searches their coarsenings
(:mod:`sharelearn.search.coarsening`, run by :mod:`sharelearn.outer`); a network has no block
equations, so its objective (:meth:`sharelearn.networks.objective.NetworkValidationObjective.
hypothesis_ranking`) hands the outer loop this ranking instead. Both answer the loop alike:
``ranked``, ``best``, ``lead``, ``explained``, ``replaces``, :meth:`rank`, :meth:`choose_start`,
:meth:`gate`, :meth:`penalty_change`, :meth:`search_again` and :meth:`table`.
"""

from __future__ import annotations

from functools import partial

from ..search import StartResult, gated_search
from ..search.coarsening import SharingFamily

__all__ = ["RetrainedHypotheses"]

# initialisations of the first, quick ranking of many hypotheses: with 500 digits, 4 ranked the
# true 3 x 3 sharing 4th to 7th on some seeds (the retrains of a tied network stall in local
# minima; its quick score was -467 against a full score of -1,449), and the fits ended in search
# failures; 8 ranked it first on every seed tried, within 3% of its full score
# (benchmarks/bench_image_network.py)
_QUICK_INITS = 8
# and the fraction of the training samples they train on (at least _QUICK_MIN_ROWS): the full
# number of steps on fewer samples converges where fewer steps on all of them do not (a quarter
# of the steps ranked the true 3 x 3 sharing of a digits teacher 4th, at -1,499 units against
# its full score of -4,387, behind readings with more groups that fit sooner)
_QUICK_ROWS = 0.25
_QUICK_MIN_ROWS = 200
# hypotheses scored in full after the quick ranking (it is noisy: the true sharing came second
# of 44 on that teacher)
_N_SCORED_IN_FULL = 2


class RetrainedHypotheses:
    """The structured hypotheses of a network's fit: scored by retraining the network tied by
    each, and the best one replaces ``init`` as the start if it scores better (a network tied
    by a poor partition is a poor point to linearise at).

    As for a closed form, a partition that coarsens a hypothesis is charged the block-wise
    penalties (:meth:`~sharelearn.search.coarsening.SharingFamily.penalty_change`): the code
    length of naming the group of each of 2,304 entries is about 3,300 units for a 3 x 3
    convolution, which no data term of a few thousand samples outweighs. Many hypotheses (a
    dense layer read as 1 or 2 channels of every image shape) are first ranked by retrains from
    ``_QUICK_INITS`` initialisations on ``_QUICK_ROWS`` of the training samples
    (``objective.quick_scores``), and only the ``_N_SCORED_IN_FULL`` best are scored in full: a
    tied network's retrain sometimes stalls in a poor local minimum (3 x 3 tying of a 64 -> 36
    -> 1 network: 2 to 9 of 16 initialisations reached the noise floor), so the full score
    takes the best of many initialisations, which is too costly for every hypothesis. The best
    leads the search; the model's search also runs from the others (:meth:`search_again`).
    """

    def __init__(self, objective, hypotheses, penalties):
        self.objective, self.penalties = objective, penalties
        self.family = SharingFamily(hypotheses)
        self.lead, self.explained, self.replaces = None, False, False
        self.ranked, self.best, self.model = [], {}, None

    def penalty_change(self, labels):
        return self.family.penalty_change(labels, self.penalties)

    def gate(self):
        """The gate of the lead's item-wise search (:func:`~sharelearn.search.gated_search`):
        its block-wise penalties (a network's hypothesis is never explained)."""
        return partial(self.family.penalty_change, penalties=self.penalties)

    def _value(self, labels):
        return self.objective.state(labels).value + self.penalty_change(labels)

    def rank(self, max_iter, progress=None):
        """Rank the hypotheses: by quick retrains when there are many, the best scored in
        full."""
        family = self.family
        order = list(range(len(family)))
        if len(order) > _N_SCORED_IN_FULL:
            n_train = self.objective.data[0].shape[0]
            quick = self.objective.quick_scores(
                family.labels, _QUICK_INITS, self.objective.steps,
                n_rows=max(min(n_train, _QUICK_MIN_ROWS), int(_QUICK_ROWS * n_train)))
            quick = [v + self.penalty_change(family.labels[h]) for h, v in enumerate(quick)]
            order = sorted(order, key=lambda h: (quick[h], h))[:_N_SCORED_IN_FULL]
        self.objective.prefetch([family.labels[h] for h in order])
        for h in order:  # their scores decide the start: from the reserve initialisations too
            self.objective.score_more(family.labels[h])
        self.ranked = order
        self.best = {h: (family.labels[h], self._value(family.labels[h])) for h in order}

    def choose_start(self, model, init):
        if not self.best:
            self.rank(None)
        lead = min(self.ranked, key=lambda h: (self.best[h][1], h))
        if self.best[lead][1] < self._value(init):
            self.lead, self.replaces = lead, True
        self.model = model

    def table(self):
        """Nothing: a network's hypotheses are ranked by retrains, not scored by blocks."""
        return []

    def search_again(self, leader, max_iter, progress):
        """The model's search from each ranked hypothesis that did not lead (on the
        benchmark's digits teacher, the true 3 x 3 convolution ranked second once, behind a
        2-channel reading that it coarsens, and the search from the leader stopped one merge
        away from it)."""
        out = []
        if self.model is None:  # the hypotheses were not asked to start a search
            return out
        others = [h for h in self.ranked if h != self.lead]
        progress.expect(len(others))
        for h in others:
            labels = self.family.labels[h]
            found, value, n_moves, converged = gated_search(
                self.model, self.objective, labels, True, max_iter, self.gate())
            out.append(StartResult(f"hypothesis: {self.family.names[h]}", labels, found,
                                   value + self.penalty_change(found), n_moves, converged))
            rounds = f"{n_moves} round" + ("" if n_moves == 1 else "s")
            progress.step(f"search from {self.family.names[h]}: {rounds}", out[-1].value)
        return out
