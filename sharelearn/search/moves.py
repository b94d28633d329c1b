"""The moves of the closed-form models' search, each scored exactly from the normal equations.

The moves, in the order :func:`closed_form_moves` gives them (each round accepts the first
that improves):

* :class:`OneItemMoves`: move one item to another existing group, or to a new group of its own
  (a batch: the best move of each output row, confirmed exactly, halved until it helps);
* :class:`BestMerge`: merge two groups;
* :class:`Split`: open a new group with the ``k = 2, 4, 8, ...`` items rated best for it;
* :class:`SignedSplit`: split a group by the direction its items want to move (a group that
  holds two true groups of different values has items pulling both ways, and the sign-blind
  split mixes them);
* :class:`UntiedSplit`: fit every item of a group freely at once, row by row, and split the
  group by those values into two or three (on correlated inputs one item's own value mostly
  measures how its neighbours compensate, which defeats the splits above);
* :class:`RowResolve`: a beam search over the assignment of each suspect output (row of ``W``),
  kept if the search resumed from it beats the current partition. It escapes the trap of the
  small-data regime: with fewer samples than inputs, a correlated but wrong input can take a
  group's value first when a row is grown one entry at a time, after which no single move,
  merge or split pays although the true row is far better.

Every accepted move is scored by the same outer objective as the relaxation, exactly: a one-item
move changes the normal equations of every split by a rank-2 term, and a merge by summing two
rows and columns, so the refit of a candidate costs one small ``r x r`` solve
(:class:`sharelearn.models.objectives.ValidationObjective`). Candidates for one-item moves are
first screened with a one-entry quadratic model of the scored loss at fixed shared values
(exact in the moved entry); the most promising ones are then scored exactly, and batches of them
are accepted only after an exact recomputation confirms the gain. The exact scores refit ``F``
systems of ``R x R`` per candidate, so with many groups they are computed in blocks of
candidates that fit the fit's memory budget (:func:`exact_move_changes`, :func:`best_merge`):
the same scores, without ever holding them all at once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import Move, improves, local_search
from .starts import one_dim_kmeans, untied_values

__all__ = ["BestMerge", "OneItemMoves", "RowResolve", "RowwiseSplit", "SignedSplit", "Split",
           "UntiedSplit", "best_merge", "closed_form_moves", "exact_move_changes", "row_beam"]

# UntiedSplit fits a group's entries freely, one k x k system per output row (k: the row's
# entries in the group). A group that fills most of every row of a wide layer (the zero group of
# a 3 x 3 convolution on 24 x 24 images: 576 rows of 567 entries) would cost about 1e11
# operations and 1.5 GB per copy of its systems; groups costing more than this many are not
# split by it (other moves still split them).
_UNTIED_FIT_COST = 4e9


# moves approximated above the bar by this much (relative to the objective) are not solved
# exactly (exact_move_changes)
_EXACT_MARGIN = 1e-6
# merges solved exactly after the screen (best_merge), at least
_CONFIRMED_MERGES = 8


def _candidate_block(objective, st, n):
    """Of ``n`` candidates, how many may be scored exactly at once within the objective's
    memory budget (all of them without one): each refits ``F`` systems of ``R x R``, and at
    626 groups 512 one-item moves took 8 GB at once."""
    plan = objective.screen_block  # a MemoryPlan, or None: no budget
    fits = getattr(plan, "candidates", None)
    return n if fits is None else fits(st.R, n)


def exact_move_changes(objective, st, items, targets, below=None):
    """``objective.exact_moves``: the exact change of the objective of moving each of ``items``
    to its ``targets`` (each alone), scored in blocks of candidates that fit the memory
    budget.

    ``below``: what the caller needs is which changes are below this and their order. Where
    the objective approximates every move from one inverse (``approximate_moves``, ``O(R)``
    each where a solve is ``O(R^3)``), only the moves whose approximate change lies within
    ``_EXACT_MARGIN`` (relative to the state's value, about a million times the
    approximation's error) of ``below`` or of another move below it are solved exactly; the
    others keep the approximate change, which is on the same side of ``below`` and in the same
    order as the exact one. (A search through many improving moves, the row re-solves' search
    on a valid convolution with 20 changed entries: 237 rounds of 512 candidates.)"""
    n = items.numel()
    block = _candidate_block(objective, st, n)
    approx = None
    if below is not None and n:
        parts = [objective.approximate_moves(st, items[a:a + block], targets[a:a + block])
                 for a in range(0, n, block)]
        approx = None if any(p is None for p in parts) else torch.cat(parts)
    if approx is not None:
        margin = _EXACT_MARGIN * max(1.0, abs(st.value))
        near = (approx - below).abs() < margin
        low = torch.nonzero(approx < below + margin)[:, 0]
        values, order = torch.sort(approx[low])
        close = torch.zeros_like(values, dtype=torch.bool)
        gaps = values[1:] - values[:-1] < margin
        close[1:] |= gaps
        close[:-1] |= gaps
        near[low[order[close]]] = True
        need = torch.nonzero(near)[:, 0]
        change = approx.to(st.G.dtype).clone()
        if need.numel():
            change[need] = exact_move_changes(objective, st, items[need], targets[need])
        return change
    if block >= n:
        return objective.exact_moves(st, items, targets)
    return torch.cat([objective.exact_moves(st, items[a:a + block], targets[a:a + block])
                      for a in range(0, n, block)])


def _pair_blocks(r, block, device):
    """The pairs ``(a, b)``, ``a < b < r``, in the order of ``torch.triu_indices``, in blocks of
    at most ``block`` pairs (never all at once: ``r = 10,000`` groups have 50 million)."""
    a, b = 0, 1
    while a < r - 1:
        firsts, seconds, count = [], [], 0
        while a < r - 1 and count < block:
            take = min(r - b, block - count)
            firsts.append(torch.full((take,), a, dtype=torch.long))
            seconds.append(torch.arange(b, b + take))
            count, b = count + take, b + take
            if b == r:
                a, b = a + 1, a + 2
        yield torch.cat(firsts).to(device), torch.cat(seconds).to(device)


def _screened_merges(objective, st, r, block):
    """The pairs (``n x 2``, in the order of :func:`_pair_blocks`) that :func:`best_merge` must
    solve exactly, when the objective approximates merges from one inverse
    (``approximate_merges``): the ``_CONFIRMED_MERGES`` best and every pair within
    ``_EXACT_MARGIN`` of the best approximate change (relative to the state's value, a million
    times the approximation's error). None without approximations."""
    if r < 2 * _CONFIRMED_MERGES:  # few pairs: solving them all costs about as much
        return None
    changes, pairs = [], []
    for a, b in _pair_blocks(r, max(block, 1), st.G.device):
        approx = objective.approximate_merges(st, a, b)
        if approx is None:
            return None
        changes.append(approx)
        pairs.append(torch.stack([a, b], 1))
    changes, pairs = torch.cat(changes), torch.cat(pairs)
    best = float(changes.min())
    keep = changes <= best + _EXACT_MARGIN * max(1.0, abs(st.value))
    keep[torch.topk(changes, min(_CONFIRMED_MERGES, changes.numel()), largest=False)[1]] = True
    return pairs[keep]


def best_merge(objective, st):
    """The best merge of two non-empty groups, all pairs scored exactly: ``(change, a, b)``
    (``a < b``), or None with fewer than two groups. The pairs are scored by
    ``objective.exact_merges`` where they fit the memory budget at once, else by
    ``objective.merge_changes`` in blocks that fit (at 700 groups, 244,650 pairs of
    ``F x R x R`` systems: terabytes at once)."""
    r = st.R - 1
    if r < 2:
        return None
    n_pairs = r * (r - 1) // 2
    block = _candidate_block(objective, st, n_pairs)
    screened = _screened_merges(objective, st, r, block)
    if screened is not None:  # the pairs that may be best, solved exactly
        change, pairs = objective.exact_merges(st, screened) if block >= screened.shape[0] \
            else (torch.cat([objective.merge_changes(st, p[:, 0], p[:, 1])
                             for p in screened.split(block)]), screened)
        best = int(torch.argmin(change))  # ties: the first pair, as among all of them
        return float(change[best]), int(pairs[best, 0]), int(pairs[best, 1])
    if block >= n_pairs:
        change, pairs = objective.exact_merges(st)
        best = int(torch.argmin(change))
        return float(change[best]), int(pairs[best, 0]), int(pairs[best, 1])
    best = None
    for a, b in _pair_blocks(r, block, st.G.device):
        change = objective.merge_changes(st, a, b)
        i = int(torch.argmin(change))
        if best is None or float(change[i]) < best[0]:  # ties: the first pair, as at once
            best = (float(change[i]), int(a[i]), int(b[i]))
    return best


class _Exact(Move):
    """A move of the closed-form search: needs an objective with exact deltas."""

    def __init__(self, tol=1e-9):
        self.tol = tol

    def applies(self, objective):
        return objective.scores_exactly


class OneItemMoves(_Exact):
    """The best one-item move of each output row, screened then scored exactly, accepted as a
    batch (halved until the batch improves). The ``n_candidates`` best-screened moves are
    scored exactly, and at least two per output row of a layer with more rows: a round moves at
    most one entry per row, and a layer of 1,024 rows that is one group at the start needs
    thousands of moves (measured on a 32 x 32 circular convolution: 45 rounds with 512
    candidates)."""

    def __init__(self, n_candidates=512, tol=1e-9):
        super().__init__(tol)
        self.n_candidates = n_candidates

    def propose(self, objective, st):
        tol = self.tol
        n_candidates = max(self.n_candidates, 2 * objective.problem.n_outputs)
        items, targets = objective.best_screened(st, n_candidates)
        # only the changes that may improve need be exact: the others are dropped below
        change = exact_move_changes(objective, st, items, targets,
                                    below=-tol * max(1.0, abs(st.value)))
        order = torch.argsort(change)
        items, targets, change = items[order], targets[order], change[order]
        good = change < -tol * max(1.0, abs(st.value))
        if not bool(good.any()):
            return None
        items, targets = items[good], targets[good]
        # One move per output (row of W), its best. Moves in different rows interact only through
        # the refit of the shared values, so their exact gains nearly add up; entries of one row
        # interact through X^T X, strongly when there are fewer samples than inputs, and a batch of
        # individually good moves in one row can lock the row into a wrong configuration.
        rows = (items // objective.problem.n_inputs).cpu().numpy()
        keep = np.unique(rows, return_index=True)[1]
        keep = torch.as_tensor(np.sort(keep), device=items.device)
        items, targets = items[keep], targets[keep]
        batch = items.numel()
        base = st.labels
        while batch >= 1:
            lab = base.copy()
            lab[items[:batch].cpu().numpy()] = targets[:batch].cpu().numpy()
            new = objective.state(lab, near=st)
            if improves(new.value, st.value, tol):
                return new
            batch //= 2
        return None


class BestMerge(_Exact):
    """The best merge of two groups, all pairs scored exactly (:func:`best_merge`)."""

    def propose(self, objective, st):
        tol = self.tol
        best = best_merge(objective, st)
        if best is None:
            return None
        change, a, b = best
        if change >= -tol * max(1.0, abs(st.value)):
            return None
        lab = st.labels.copy()
        lab[lab == b] = a
        return objective.state(lab, near=st)


class Split(_Exact):
    """Open a new group with several items at once: the ``k`` items whose move to a new group
    the screen rates best, for ``k = 2, 4, 8, ...``. A single item may not pay for a new group
    (its code length and penalty) where a whole set of items sharing one value does."""

    def propose(self, objective, st):
        tol = self.tol
        pred = objective.spare_ratings(st)
        order = torch.argsort(pred).cpu().numpy()
        best = None
        k = 2
        while k <= order.size // 2 or (k == 2 and order.size >= 2):
            lab = st.labels.copy()
            lab[order[:k]] = st.R - 1
            new = objective.state(lab, near=st)
            if improves(new.value, st.value, tol) and (
                    best is None or new.value < best.value):
                best = new
            k *= 2
        return best


class SignedSplit(_Exact):
    """Split a group by the direction its items want to move.

    The items of one group can want opposite changes: when two true groups share a value, the
    items of the larger true value want it higher and the others lower, and any new group that
    mixes them keeps the old value and gains nothing (the sign-blind ranking of :class:`Split`
    does exactly that). Here the members of each group are split by the sign of their own
    least-squares change ``delta_i = -g_i / kappa_i`` and ordered by its size, and every prefix
    of every (group, sign) list is rated as a new group with a jointly fitted value, in closed
    form (diagonal curvature, cumulative sums over the prefixes): value shift
    ``t = -sum g / sum kappa`` on each split's training part, change of the scored squared error
    ``2 t sum g_v + t^2 sum kappa_v``, plus the exact penalty change. The ``n_exact`` best rated
    prefixes (the best of each segment) are then refitted exactly.
    """

    def __init__(self, tol=1e-9, n_exact=6):
        super().__init__(tol)
        self.n_exact = n_exact

    def propose(self, objective, st):
        tol, n_exact = self.tol, self.n_exact
        # the ratings' F x P temporaries are freed before the candidates are refitted
        pred, order, starts, seg_start = self._rate(objective, st)
        labels = st.labels
        # The best prefix of each segment, then the best segments: long prefixes of a large group
        # touch many entries of one row, whose interactions the diagonal rating ignores, so their
        # ratings are optimistic; one candidate per segment keeps them from crowding out the rest.
        ends = np.r_[starts[1:], pred.size]
        per_segment = [a + int(np.argmin(pred[a:b])) for a, b in zip(starts, ends, strict=True)]
        per_segment.sort(key=lambda pos: pred[pos])
        best = None
        for pos in per_segment[:n_exact]:
            if not pred[pos] < 0:
                break
            new_lab = labels.copy()
            new_lab[order[seg_start[pos]:pos + 1]] = st.R - 1
            new = objective.state(new_lab, near=st)
            if improves(new.value, st.value, tol) and (
                    best is None or new.value < best.value):
                best = new
        return best

    @staticmethod
    def _rate(objective, st):
        """The rating of every prefix of every (group, sign) segment (numpy, in segment order),
        the items' order, the segments' starts, and each position's segment start."""
        lab = st.lab_t
        psi = st.psi
        F = psi.shape[0]
        grad_t = objective.training_gradient(st)
        grad_v, kap_v, scale = objective.scoring_gradient(st, grad_t)
        kap_t = objective.kappa[:F]
        if grad_v.shape[0] != F:
            grad_v, kap_v = grad_v[:F], kap_v[:F]
        delta = -(grad_t.sum(0) / kap_t.sum(0).clamp_min(1e-300)).cpu().numpy()
        labels = st.labels
        # segments: (group, sign of delta), members by decreasing |delta|
        order = np.lexsort((-np.abs(delta), delta > 0, labels))
        seg = labels[order] * 2 + (delta[order] > 0)
        starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
        seg_start = np.repeat(starts, np.diff(np.r_[starts, seg.size]))
        k = np.arange(seg.size) - seg_start + 1  # prefix length at each position
        idx = torch.as_tensor(order, device=lab.device)

        def prefix_sums(v):  # (F, P) -> prefix sums within each segment, in sorted order
            c = torch.cumsum(v[:, idx], 1)
            before = torch.cat([torch.zeros_like(c[:, :1]), c[:, :-1]], 1)
            return c - before[:, torch.as_tensor(seg_start, device=lab.device)]

        sg_t, sk_t = prefix_sums(grad_t), prefix_sums(kap_t)
        sg_v, sk_v = prefix_sums(grad_v), prefix_sums(kap_v)
        t = -sg_t / sk_t.clamp_min(1e-300)
        pred = scale((2 * t * sg_v + t**2 * sk_v)[..., None])[..., 0]
        f = objective.size_cost
        sizes = st.sizes
        src = sizes[torch.as_tensor(labels[order], device=lab.device)]
        kk = torch.as_tensor(k, dtype=sizes.dtype, device=lab.device)
        pred = pred + f(src - kk) - f(src) + f(kk)
        pred = pred.masked_fill(kk >= src, math.inf)  # moving a whole group is a relabelling
        return pred.cpu().numpy(), order, starts, seg_start


class UntiedSplit(_Exact):
    """Split a group by its items' values fitted freely.

    With correlated inputs (smooth signals, images) one item's own least-squares value, at the
    other items' fixed values, mostly measures how its correlated neighbours compensate, and the
    splits rated by it miss groups that hold two true values. Fitting all the items of a group
    freely at once, row by row (:func:`~sharelearn.search.starts.untied_values`), accounts for the
    correlations between them; the best two- and three-way splits of those values
    (:func:`~sharelearn.search.starts.one_dim_kmeans`: a group that holds values on both sides of
    another group's needs three) are then refitted exactly, for every group, and the best one is
    kept.
    """

    def propose(self, objective, st):
        tol = self.tol
        pb = objective.problem
        if pb.n_inputs < 2:  # one input: the signed split's diagonal rating is exact already
            return None
        values = st.psi.mean(0)
        sizes = st.sizes.cpu().numpy()
        best = None
        by_row = st.labels.reshape(pb.n_outputs, pb.n_inputs)
        for g in np.flatnonzero(sizes[:-1] >= 2):
            width = (by_row == g).sum(1)
            if float((width.astype(np.float64) ** 3).sum()) > _UNTIED_FIT_COST:
                continue  # the rows' free fits would cost too much (see _UNTIED_FIT_COST)
            items, free = untied_values(pb, st.labels, values, int(g))
            for k in (2, 3):
                if free.size <= k:
                    continue
                parts = one_dim_kmeans(free, k)
                counts = np.bincount(parts, minlength=k)
                lab = st.labels.copy()
                # the largest part keeps the group's label, the others open new groups
                new_label = st.R - 1
                for part in np.argsort(-counts, kind="stable")[1:]:
                    lab[items[parts == part]] = new_label
                    new_label += 1
                new = objective.state(lab, near=st)
                if improves(new.value, st.value, tol) and (
                        best is None or new.value < best.value):
                    best = new
        return best


class RowwiseSplit(_Exact):
    """Open a new group with at most one entry of each output row, at one common value.

    On correlated inputs (smooth signals, image patches) a group that should be pulled out of
    another is often spread over the rows, one entry each (a kernel tap of a convolution), and
    no single entry pays for a new group: its neighbours compensate for it. Here each of
    ``n_values`` candidate values ``v`` (quantiles of the entries' own least-squares values)
    is offered to every row at once: in each row the one entry whose change to ``v`` lowers the
    row's training error most (exactly, at the other entries' values) joins the new group, if
    any does. Each candidate partition is refitted exactly and the best one kept. Cost per
    candidate: one exact refit, ``O(F m d^2 R)``.
    """

    def __init__(self, tol=1e-9, n_values=24):
        super().__init__(tol)
        self.n_values = n_values

    def applies(self, objective):
        return super().applies(objective) and objective.problem.n_inputs > 1

    def propose(self, objective, st):
        pb = objective.problem
        m, d = pb.n_outputs, pb.n_inputs
        psi = st.psi
        current = psi.gather(1, st.lab_t[None].expand(psi.shape[0], -1)).mean(0)  # (P,)
        # half-gradient and curvature of the training error in each entry, summed over splits
        grad = objective.training_gradient(st).sum(0)
        kappa = objective.kappa.sum(0)
        own = current - grad / kappa.clamp_min(torch.finfo(kappa.dtype).tiny)
        values = np.quantile(own.cpu().numpy(), np.linspace(0.02, 0.98, self.n_values))
        rows = torch.arange(m, device=psi.device)
        best, tried = None, set()
        for v in values:
            delta = float(v) - current
            gain = -(2 * delta * grad + delta**2 * kappa).reshape(m, d)
            col = torch.argmax(gain, 1)
            chosen = gain[rows, col] > 0
            if int(chosen.sum()) < 2:
                continue
            items = (rows * d + col)[chosen].cpu().numpy()
            key = items.tobytes()
            if key in tried:
                continue
            tried.add(key)
            lab = st.labels.copy()
            lab[items] = st.R - 1
            new = objective.state(lab, near=st)
            if improves(new.value, st.value, self.tol) and (best is None or new.value < best.value):
                best = new
        return best


class RowResolve(_Exact):
    """Re-solve the assignment of suspect outputs by :func:`row_beam`, then resume the search.

    Where a row's beam result beats its current configuration the row is replaced, the search
    resumes from there with ``moves``, and the result is kept if it beats the current partition
    (each partition value is tried once). Suspects are the rows that use a group of small reach
    and the rows whose validation error exceeds ``outlier`` times the median row's; a partition
    whose groups all span the layer and whose rows fit alike costs nothing here.

    Greedy moves regrow a row one entry at a time; with fewer samples than inputs a correlated
    but wrong input can take a group's value first, after which no single change pays although
    the true row is far better. A beam (of width ``beam``) over whole rows keeps such
    alternatives alive. Only the groups that span the layer (touch more than ``reach`` of the
    outputs) are offered: the values of groups of small reach are tailored to the rows they prop
    up, and a row that uses them is re-solved without them where that scores better at the
    current values. (Re-solved also where it scored worse, the rows of a valid convolution with
    20 changed entries, each an exception in a group of its own, scored 5,000-9,600 units worse
    each, and the search took 224 rounds, 69 s, to climb back to where it began.)
    """

    searches_on = True

    def __init__(self, moves, *, max_iter, tol=1e-9, beam=8, reach=0.25, outlier=2.0):
        super().__init__(tol)
        self.moves, self.max_iter = list(moves), max_iter
        self.beam, self.reach, self.outlier = beam, reach, outlier
        self.tried = set()

    def propose(self, objective, st):
        tol, tried = self.tol, self.tried
        beam, reach, outlier = self.beam, self.reach, self.outlier
        search_kwargs = dict(moves=self.moves, max_iter=self.max_iter)
        pb = objective.problem
        m, d = pb.n_outputs, pb.n_inputs
        if d < 2 or st.R < 3:
            return None
        key = ("rows", st.value)
        if key in tried:
            return None
        tried.add(key)
        psi = st.psi
        F = psi.shape[0]
        bg = int(torch.argmax(st.sizes[:-1]))
        grad_t = objective.training_gradient(st)
        _, _, scale = objective.scoring_gradient(st, grad_t)
        if objective.scored_on_training:
            C, b = pb.C_tr[:F], pb.B_tr[:F].transpose(1, 2)
        else:
            C, b = pb.C_va[:F], pb.B_va[:F].transpose(1, 2)
        f = objective.size_cost
        sizes = st.sizes
        pen = f(sizes + 1) - f(sizes) + (f(sizes[bg] - 1) - f(sizes[bg]))
        scoring = (C, b, psi, bg, scale, pen)
        labels = st.labels.reshape(m, d).copy()
        touched = _rows_touched(labels, st.R - 1)
        wide = (touched.sum(1) > reach * m) | (m < 4)
        groups = [j for j in range(st.R - 1) if j != bg and wide[j]]
        if not groups:
            return None
        # suspects: the rows that use a group of small reach, and rows that fit much worse than most
        errors = objective.output_errors(st).cpu().numpy()
        suspects = touched[~wide].any(0) | (errors > outlier * np.median(errors))
        if not suspects.any():
            return None
        changed = False
        for o in np.flatnonzero(suspects):
            row, gain, _ = row_beam(st, o, beam, scoring, groups)
            if gain < -1e-9 and not np.array_equal(row, labels[o]):
                labels[o] = row
                changed = True
        if not changed:
            return None
        new_labels, value, _, _ = local_search(objective, labels.ravel(), **search_kwargs)
        if improves(value, st.value, tol):
            return objective.state(new_labels, near=st)
        return None


def closed_form_moves(*, max_iter=200, n_candidates=512, tol=1e-9, resets=True,
                      rowwise=False):
    """A fresh list of the closed-form search's moves, in order of preference (see the module's
    docstring); ``resets=False`` leaves out :class:`RowResolve`, ``rowwise=True`` adds
    :class:`RowwiseSplit` (for strongly correlated inputs) before it."""
    moves = [OneItemMoves(n_candidates, tol), BestMerge(tol), Split(tol), SignedSplit(tol),
             UntiedSplit(tol)]
    if rowwise:
        moves.append(RowwiseSplit(tol))
    if resets:
        moves.append(RowResolve(closed_form_moves(max_iter=max_iter, n_candidates=n_candidates,
                                                  tol=tol, resets=False, rowwise=rowwise),
                                max_iter=max_iter, tol=tol))
    return moves


def _rows_touched(lab, r):
    """``touched[g, o]``: whether group ``g`` has an entry in output ``o`` (``lab``: m x d)."""
    touched = np.zeros((r, lab.shape[0]), dtype=bool)
    touched[lab, np.arange(lab.shape[0])[:, None]] = True
    return touched


def row_beam(st, o, beam, scoring, groups):
    """Best assignment of output ``o``'s entries found by a beam search, at fixed shared values.

    The row starts with every entry in the largest group; each step gives one more entry one of
    the other groups' values, and the ``beam`` best partial rows survive. A row is scored by its
    exact change of the scored squared error (its own quadratic ``-2 b.w + w^T C w`` per split:
    the interactions of its inputs included) mapped to the objective, plus the penalty change of
    its entries at the current group sizes, both relative to the current row. Returns the best
    row seen at any depth, its score (negative: better than the current row), and whether the
    current row uses only offered groups.
    """
    C, b, psi, bg, scale, pen = scoring
    F, d = b.shape[0], b.shape[2]
    J = len(groups)
    dev = psi.device
    delta = psi[:, groups] - psi[:, bg:bg + 1]  # (F, J): value change into each group
    base_w = psi[:, bg:bg + 1].expand(F, d)
    grad0 = (base_w[:, None, :] @ C)[:, 0] - b[:, o]  # (F, d): half-gradient of the row's SSE
    Cdiag = torch.diagonal(C, dim1=1, dim2=2)
    pen_j = pen[groups]  # (J,) marginal penalty of one more item in each group

    def to_objective(x):  # (F, ...) change of squared error -> change of the objective
        return scale(x.reshape(F, -1, 1)).reshape(x.shape[1:])

    # The current row, as a change from the all-largest row; every candidate is then scored
    # relative to it, so that ``mse + d_mse`` stays a realisable error (a change measured from
    # the far-away all-largest row can exceed the whole MSE and saturate the log).
    cur = torch.as_tensor(st.labels.reshape(-1, d)[o], device=dev)
    dw = psi[:, cur] - psi[:, bg:bg + 1]
    cur_sse = 2 * (dw * grad0).sum(1) + ((dw[:, None, :] @ C)[:, 0] * dw).sum(1)
    cur_pen = float(pen[cur[cur != bg]].sum())
    free = all(int(g) == bg or int(g) in groups for g in cur)

    # beam states: assignment (d,), row change dw (F, d), cumulative SSE (F,), penalty
    assign = torch.full((1, d), -1, dtype=torch.long, device=dev)
    dws = torch.zeros(1, F, d, dtype=psi.dtype, device=dev)
    sse = torch.zeros(1, F, dtype=psi.dtype, device=dev)
    pens = torch.zeros(1, dtype=psi.dtype, device=dev)
    best = (assign[0].clone(), float(to_objective(-cur_sse)) - cur_pen)  # the empty row
    for _ in range(min(d, 2 * int((cur != bg).sum()) + 4)):
        g = grad0[None] + (dws[:, :, None, :] @ C)[:, :, 0]  # (B, F, d) at each beam row
        d_sse = (2 * delta[None, :, None, :] * g[..., None]
                 + delta[None, :, None, :] ** 2 * Cdiag[None, :, :, None])  # (B, F, d, J)
        new_sse = sse[:, :, None, None] + d_sse
        total = to_objective((new_sse - cur_sse[:, None, None]).transpose(0, 1)) + (
            pens[:, None, None] + pen_j - cur_pen)  # (B, d, J)
        total = total.masked_fill((assign >= 0)[..., None], math.inf)
        flat = total.reshape(-1)
        q = min(4 * beam, flat.numel())
        vals, idx = torch.topk(-flat, q)
        vals = -vals
        if not torch.isfinite(vals[0]):
            break
        bi, rest = idx // (d * J), idx % (d * J)
        ki, ji = rest // J, rest % J
        keep, seen = [], set()
        for q_ in range(q):
            if not math.isfinite(float(vals[q_])):
                break
            a = assign[bi[q_]].clone()
            a[ki[q_]] = ji[q_]
            key = tuple(a.tolist())
            if key in seen:
                continue
            seen.add(key)
            keep.append((q_, a))
            if len(keep) == beam:
                break
        sel = torch.tensor([q_ for q_, _ in keep], device=dev)
        assign = torch.stack([a for _, a in keep])
        dws = dws[bi[sel]].clone()
        dws[torch.arange(len(keep), device=dev)[:, None], :, ki[sel][:, None]] = \
            delta[:, ji[sel]].T[:, None, :]
        sse = new_sse[bi[sel], :, ki[sel], ji[sel]]
        pens = pens[bi[sel]] + pen_j[ji[sel]]
        if float(vals[sel[0]]) < best[1]:
            best = (assign[0].clone(), float(vals[sel[0]]))
    labels = np.full(d, bg, dtype=st.labels.dtype)
    a = best[0].cpu().numpy()
    labels[a >= 0] = np.asarray(groups)[a[a >= 0]]
    return labels, best[1], free


