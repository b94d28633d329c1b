"""Structured hypotheses: their coarsenings, the penalties that see them, and their search.

The penalties describe a partition item by item. The code length
(:class:`~sharelearn.penalties.CodeLength`, ``sum_j m_j log(P / m_j)`` nats, the cost of naming
every item's group) is what keeps the discrete search from fitting validation noise by moving
single items, and the nuclear norm (``sum_j sqrt(m_j)``) pushes towards few, large groups. Both
charge a split of two large groups in proportion to their sizes, whether the groups are arbitrary
sets of items or two taps of a convolution: keeping two taps of 60 items apart costs ``120 log 2 =
83`` nats of code length, and taps 13 standard errors apart were merged because of it
(``docs/results.md``).

A partition that *coarsens* a known structured partition ``H`` (every block of ``H`` inside one
group: a convolution whose taps take equal values, or whose unused taps joined the zeros) is
better described as a partition of ``H``'s ``K`` blocks: name ``H`` among the family of
hypotheses (``log |family|`` nats of code length), then penalise the partition of the blocks as if
they were the items (code length ``sum_j k_j log(K / k_j)``, nuclear norm ``sum_j sqrt(k_j)``,
``k_j`` blocks in group ``j``). The outer objective charges the smaller of the two
(:meth:`SharingFamily.penalty_change`): one more group costs a few units when it separates whole
blocks, and as much as before when it separates single items. Item-level moves keep their
protection against noise; block-level decisions, of which there are few, pay what a few
decisions cost.

:func:`coarsening_search` searches the coarsenings of one hypothesis: it moves one block to
another (or a new) group, or merges two groups, scoring every candidate exactly from the
hypothesis's own ``K x K`` normal equations (a coarsening's quadratics are ``B^T G_H B`` for its
block assignment ``B``), and accepts the best one each round.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import torch

from .._linalg import (
    block_quadratics,
    moved_solutions,
    moved_squared_errors,
    ridge_solve,
    spare_inverse,
)
from ..partition import canonical_labels
from ..penalties import CodeLength
from . import improves
from .exceptions import (
    EXCEPTION_WEIGHT,
    exception_nats,
    exception_search,
    home_groups,
    structured_value,
)
from .starts import one_dim_kmeans

__all__ = [
    "HypothesisBlocks",
    "SharingFamily",
    "Shortlist",
    "coarsening_search",
    "coarsening_with_exceptions",
    "shortlist_on_rows",
]

# Building every hypothesis's block equations reads X^T X once per output row, hypothesis and
# split part, O(F m d^2) each, bandwidth-bound: at 32 x 32 natural-image patches (900 rows of
# 1,024 inputs, 5 splits, 8 hypotheses) 17 s each and 290 s in all. Above this many reads in all,
# the hypotheses are first ranked on a subset of the rows (shortlist_on_rows; the defaults of
# Shortlist).
_SHORTLIST_COST = 2e10
_SHORTLIST_ROWS = 64

# candidates scored together: a chunk holds a few (candidates x splits x R x R) tensors
_CHUNK_ELEMENTS = 2**22
# groups a block may move to besides a new one: those nearest to its own fitted value
_N_TARGETS = 3
# candidates of a round solved exactly after the low-rank screen (HypothesisBlocks._screen):
# the best this many, and every one within this fraction (of the best value, at least 1) of the
# best screened value
_CONFIRMED = 8
_CONFIRM_GAP = 1e-6
# the coarsening is refitted around at most this many exceptions (a dead input of a 3 x 3
# convolution has 9)
_MAX_REFITTED_EXCEPTIONS = 32


class SharingFamily:
    """A family of named partitions of the same items (``name -> labels``).

    Parameters
    ----------
    hypotheses : dict
        Description -> labels of the ``n_items`` items.
    exceptions : bool, default=False
        Whether a partition that coarsens a hypothesis but for some items is described
        through it with those items as exceptions (:meth:`structured_penalty`); else only
        exact coarsenings are (the networks' objective, whose searches do not look for
        exceptions).
    """

    def __init__(self, hypotheses, exceptions=False):
        self.with_exceptions = exceptions
        # an identical partition listed under two names is kept once, under the first
        kept = {}
        for name, labels in hypotheses.items():
            kept.setdefault(canonical_labels(labels).tobytes(), (name, canonical_labels(labels)))
        self.names = [name for name, _ in kept.values()]
        self.labels = [labels for _, labels in kept.values()]
        self.log_size = math.log(len(self.names)) if self.names else 0.0
        self._index()

    def _index(self):
        """Each hypothesis's items sorted by block, and where each block starts."""
        self._order = [np.argsort(h, kind="stable") for h in self.labels]
        self._starts = [np.flatnonzero(np.r_[True, np.diff(h[o]) != 0])
                        for h, o in zip(self.labels, self._order, strict=True)]

    def __len__(self):
        return len(self.names)

    def n_blocks(self, h):
        return int(self.labels[h].max()) + 1

    def blocks_of(self, h, labels):
        """The group of each block of hypothesis ``h`` under ``labels`` if ``labels`` coarsens
        it (every block inside one group), else None."""
        lab = np.asarray(labels)[self._order[h]]
        starts = self._starts[h]
        lo, hi = np.minimum.reduceat(lab, starts), np.maximum.reduceat(lab, starts)
        if not np.array_equal(lo, hi):
            return None
        out = np.empty(starts.size, dtype=np.int64)
        out[self.labels[h][self._order[h][starts]]] = lo
        return out

    def majority_blocks(self, h, labels):
        """The group that holds most of each block's items under ``labels`` (a coarsening of
        hypothesis ``h`` near ``labels``; the home groups of
        :func:`~sharelearn.search.exceptions.home_groups`, canonical)."""
        return canonical_labels(home_groups(self.labels[h], labels)[0])

    def block_penalty(self, blocks, penalties):
        """Penalty of a coarsening described by its block assignment: the penalties of the
        partition of the ``K`` blocks, plus the code length of naming the hypothesis."""
        counts = torch.as_tensor(np.bincount(blocks), dtype=torch.float64)
        return (float(penalties.hard(counts, blocks.size))
                + penalties.weight(CodeLength) * self.log_size)

    def structured_penalty(self, labels, penalties):
        """The smallest structured penalty of ``labels`` over the hypotheses, and the index of
        that hypothesis (``(inf, None)`` without hypotheses). Through hypothesis ``h`` the
        partition is the coarsening of its blocks' home groups plus the items that are not in
        their block's home, its exceptions (:mod:`sharelearn.search.exceptions`): the block-wise
        penalty of the coarsening, plus the exceptions' code (``EXCEPTION_WEIGHT`` times the
        nats that list them; none for an exact coarsening)."""
        best = (math.inf, None)
        labels = np.asarray(labels)
        n_groups = int(labels.max()) + 1
        for h in range(len(self)):
            blocks = self.blocks_of(h, labels)
            n_exc = 0
            if blocks is None:
                if not self.with_exceptions:
                    continue
                blocks, item_home = home_groups(self.labels[h], labels)
                n_exc = int(np.count_nonzero(item_home != labels))
            value = (self.block_penalty(blocks, penalties)
                     + EXCEPTION_WEIGHT * exception_nats(labels.size, n_exc, n_groups))
            best = min(best, (value, h), key=lambda t: t[0])
        return best

    def exceptions(self, h, labels):
        """Mask of the items of ``labels`` that are not in their block's home group under
        hypothesis ``h`` (none for a coarsening of it)."""
        labels = np.asarray(labels)
        if self.blocks_of(h, labels) is not None:
            return np.zeros(labels.size, dtype=bool)
        return home_groups(self.labels[h], labels)[1] != labels

    def penalty_change(self, labels, penalties):
        """What the objective of ``labels`` gains from the block-wise description:
        ``min(item penalty, block penalty) - item penalty`` (zero or negative)."""
        if not len(self):
            return 0.0
        block, _ = self.structured_penalty(labels, penalties)
        if not math.isfinite(block):
            return 0.0
        return min(0.0, block - penalties.of_labels(labels))


class Shortlist:
    """Which hypotheses of a family are built in full: on a large layer, only those that fit a
    few output rows best (:func:`shortlist_on_rows`). A closed-form objective holds one
    (``objective.shortlist``), and the ranking of the hypotheses calls it as
    ``shortlist(problem, family, n_keep)``: the hypotheses' indices, or None for all of them.

    Parameters
    ----------
    cost : float, default=2e10
        The reads of ``X^T X`` (``2 F m d^2`` per hypothesis) that building every hypothesis
        may cost; above it the hypotheses are shortlisted.
    n_rows : int, default=64
        The output rows the shortlist ranks them on.
    """

    def __init__(self, cost=_SHORTLIST_COST, n_rows=_SHORTLIST_ROWS):
        self.cost, self.n_rows = cost, n_rows

    def __call__(self, problem, family, n_keep):
        return shortlist_on_rows(problem, family, n_keep, n_rows=self.n_rows, cost=self.cost)


def shortlist_on_rows(problem, family, n_keep, n_rows=_SHORTLIST_ROWS, cost=_SHORTLIST_COST):
    """The ``n_keep`` hypotheses of ``family`` that fit ``n_rows`` evenly spaced output rows
    best, by the validation mean squared error of each split's least-squares block values on
    those rows alone (``O(F n_rows d^2)`` per hypothesis instead of ``O(F m d^2)``), or None
    where the problem has no validation part (the evidence) or is small enough to rank whole
    (``cost``). Different hypotheses misfit every row of a layer differently, so a few rows
    tell the best ones apart; the full ranking is then done on the shortlist."""
    m, d, F = problem.n_outputs, problem.n_inputs, problem.n_splits
    if len(family) <= n_keep or float(problem.n_va.min()) < 1 or \
            2.0 * F * m * d * d * len(family) <= cost:
        return None
    rows = torch.as_tensor(np.unique(np.linspace(0, m - 1, min(n_rows, m)).astype(np.int64)),
                           device=problem.device)
    b_tr = problem.b_tr.reshape(F, m, d)[:, rows].reshape(F, -1)
    b_va = problem.b_va.reshape(F, m, d)[:, rows].reshape(F, -1)
    yy_va = problem.yy_va_out[:, rows].sum(-1)
    norm = problem.n_va * rows.numel()
    errors = []
    for h in range(len(family)):
        lab = torch.as_tensor(family.labels[h], device=problem.device).reshape(m, d)[rows]
        lab = lab.reshape(-1)
        K = family.n_blocks(h)
        G, c = block_quadratics(problem.C_tr, b_tr, lab, K, rows.numel())
        Gv, cv = block_quadratics(problem.C_va, b_va, lab, K, rows.numel())
        psi = ridge_solve(G, c, problem.alpha)
        sse = yy_va - 2 * (psi * cv).sum(-1) + (psi[..., None, :] @ Gv @ psi[..., None])[..., 0, 0]
        errors.append(float((sse / norm).mean()))
    return [int(h) for h in np.argsort(errors, kind="stable")[:n_keep]]


def free_rows(labels, rows, n_inputs):
    """``labels`` (of an ``m x n_inputs`` map) with every entry of the output rows ``rows`` in
    a group of its own."""
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        return labels
    labels = np.array(labels).reshape(-1, n_inputs)
    labels[rows] = labels.max() + 1 + np.arange(rows.size * n_inputs).reshape(-1, n_inputs)
    return canonical_labels(labels.ravel())


class HypothesisBlocks:
    """The normal equations of one hypothesis's blocks, for exact scoring of its coarsenings.

    Built once per hypothesis (one pass over the data, as for any partition's objective);
    every coarsening is then scored from ``K x K`` matrices alone, and the candidates of one
    round (every block moved, every pair of groups merged) from the current ``R x R`` ones by
    low-rank updates, ``O(R^2)`` each before the batched solve.

    With ``apart`` (output rows), those rows are left out of the blocks and fitted freely, each
    entry on its own: a free row meets no other row's entries, so its validation error is a
    constant of the data term (``sse_offset``), and the coarsenings of the other rows are
    scored exactly as the partitions that also free those rows (validation objective only; the
    evidence's shared precisions couple every parameter).
    """

    def __init__(self, objective, family, h, apart=None, screen=True):
        pb = objective.problem
        # candidates screened by low-rank updates before the exact solves (:meth:`_screen`):
        # the validation objective of a full map (the evidence's determinants are not low-rank
        # updates, and a diagonal problem's solves are divisions already)
        self.screen = screen and not (objective.scored_on_training or objective.diagonal)
        self.objective, self.family, self.h = objective, family, h
        K = family.n_blocks(h)
        m, d, F = pb.n_outputs, pb.n_inputs, pb.n_splits
        lab = torch.as_tensor(family.labels[h], device=pb.device)
        b_tr, b_va = pb.b_tr, pb.b_va
        self.apart = np.zeros(0, dtype=np.int64) if apart is None else np.asarray(apart)
        self.sse_offset, self.yy_tr = None, pb.yy_tr[0]
        if self.apart.size:
            keep = torch.as_tensor(np.setdiff1d(np.arange(m), self.apart), device=pb.device)
            m = keep.numel()
            lab = lab.reshape(-1, d)[keep].reshape(-1)
            b_tr = b_tr.reshape(F, -1, d)[:, keep].reshape(F, -1)
            b_va = b_va.reshape(F, -1, d)[:, keep].reshape(F, -1)
            self.sse_offset = self._free_rows_offset(pb, self.apart)
            self.yy_tr = pb.yy_tr_out[0, keep].sum()
        self.n_kept_rows = m
        self.G, self.c = block_quadratics(pb.C_tr, b_tr, lab, K, m)
        self.Gv, self.cv = block_quadratics(pb.C_va, b_va, lab, K, m)
        self.dtype, self.device = self.G.dtype, self.G.device
        self.sizes = torch.bincount(lab, minlength=K).to(self.dtype)
        self.penalties, self.n_blocks = objective.penalties, K
        self.naming = self.penalties.weight(CodeLength) * family.log_size

    @staticmethod
    def _free_rows_offset(pb, rows):
        """Per split: the validation squared error of the output rows ``rows`` fitted freely
        on the training part, less their validation ``||y||^2`` (which the problem's total
        holds)."""
        rows = torch.as_tensor(rows, device=pb.device)
        B_tr, B_va = pb.B_tr[:, :, rows], pb.B_va[:, :, rows]  # (F, d, r)
        W = ridge_solve(pb.C_tr[:, None], B_tr.transpose(1, 2), pb.alpha)  # (F, r, d)
        sse = (-2 * (W * B_va.transpose(1, 2)).sum(-1)
               + ((W @ pb.C_va) * W).sum(-1))  # (F, r), less ||y||^2
        return sse.sum(-1)

    def _data(self, G, c, Gv, cv, overwrite=False):
        return self.objective._data(G, c, Gv, cv, overwrite=overwrite,
                                    sse_offset=self.sse_offset)

    def free_rows(self, labels):
        """``labels`` with every entry of the rows set apart in a group of its own."""
        return free_rows(labels, self.apart, self.objective.problem.n_inputs)

    @cached_property
    def fitted_values(self):
        """The blocks' own least-squares values (``K``), mean over the splits."""
        _, psi, _ = self._data(self.G.clone(), self.c, self.Gv, self.cv)
        return psi.reshape(-1, psi.shape[-1]).mean(0).cpu().numpy()

    @cached_property
    def value_errors(self):
        """Standard errors of the blocks' least-squares values (``K``), on the first split, with
        the noise variance estimated from the hypothesis's own residual."""
        pb = self.objective.problem
        G, c = self.G[0], self.c[0]
        K = G.shape[0]
        ridge = pb.alpha + 1e-12 * (float(torch.diagonal(G).max()) + 1.0)
        inv = torch.linalg.inv(G + ridge * torch.eye(K, dtype=G.dtype, device=G.device))
        rss = float(self.yy_tr - c @ (inv @ c))
        dof = max(1.0, float(pb.n_tr[0]) * self.n_kept_rows - K)
        var = torch.clamp(torch.diagonal(inv), min=0) * max(rss, 0.0) / dof
        return torch.sqrt(var).cpu().numpy()

    def value_starts(self, max_groups=16, gaps=(2.0, 3.0, 4.0)):
        """Coarsenings that group the blocks by their fitted values: few-group starts for a
        hypothesis of many blocks. Two kinds: 1-D k-means (``k = 2 .. max_groups``), and cuts of
        the sorted values wherever two neighbours are more than ``z`` standard errors of their
        difference apart (``z`` in ``gaps``), which give as many groups as the data separate
        (C_4 on a 7 x 7 image: 92 groups of 601 orbits)."""
        values = self.fitted_values
        K = values.size
        starts = [canonical_labels(one_dim_kmeans(values, k))
                  for k in range(2, min(K, max_groups) + 1)]
        order = np.argsort(values, kind="stable")
        err = self.value_errors[order].astype(np.float64)  # float32's floor would round to 0
        apart = np.diff(values[order]) / np.maximum(np.hypot(err[1:], err[:-1]), 1e-300)
        for z in gaps:
            groups = np.empty(K, dtype=np.int64)
            groups[order] = np.r_[0, np.cumsum(apart > z)]
            starts.append(canonical_labels(groups))
        return starts

    def _penalty(self, sizes, counts):
        """Penalties of coarsenings with items per group ``sizes`` and blocks per group
        ``counts`` (``n x R``): the smaller of the item-wise and the block-wise ones."""
        item = self.objective.penalty_term(sizes)
        block = self.penalties.hard(counts, self.n_blocks) + self.naming
        return torch.minimum(item, block)

    def _values(self, G, c, Gv, cv, sizes, counts):
        data, _, _ = self._data(G, c, Gv, cv, overwrite=True)
        return data + self._penalty(sizes, counts)

    def quadratics(self, a, R):
        """``B^T G_H B`` and ``B^T c_H`` (training and validation) of the assignment ``a`` with
        ``R`` columns, and ``G_H B`` (``F x K x R``) for the updates."""
        B = torch.zeros(a.size, R, dtype=self.dtype, device=self.device)
        B[torch.arange(a.size), torch.as_tensor(a, device=self.device)] = 1
        M, Mv = self.G @ B, self.Gv @ B
        return B.T @ M, self.c @ B, B.T @ Mv, self.cv @ B, M, Mv, B

    def value_of(self, blocks):
        """Objective of one coarsening (its block assignment)."""
        a = canonical_labels(blocks)
        R = int(a.max()) + 1
        G, c, Gv, cv, _, _, B = self.quadratics(a, R)
        sizes, counts = (B.T @ self.sizes)[None], B.sum(0)[None]
        return float(self._values(G[None], c[None], Gv[None], cv[None], sizes, counts)[0])

    def _targets(self, a, R, psi):
        """Candidate moves ``(blocks, targets)``: each block to a new group and to the
        ``_N_TARGETS`` groups whose values are nearest to its own fitted value (all groups when
        there are few); and candidate merges ``(g, h)``: every pair when there are few groups,
        else the pairs of groups within two places of each other in value order."""
        if R - 1 <= _N_TARGETS + 1:
            bb, tt = np.nonzero(np.arange(R)[None, :] != a[:, None])
            gg, hh = np.triu_indices(R - 1, 1)
            return bb, tt, gg, hh
        dist = np.abs(self.fitted_values[:, None] - psi[None, :R - 1])
        dist[np.arange(a.size), a] = np.inf  # not to its own group
        near = np.argsort(dist, 1, kind="stable")[:, :_N_TARGETS]
        bb = np.repeat(np.arange(a.size), _N_TARGETS + 1)
        tt = np.concatenate([near, np.full((a.size, 1), R - 1)], 1).ravel()
        order = np.argsort(psi[:R - 1], kind="stable")
        pairs = [(order[i], order[i + j]) for j in (1, 2) for i in range(R - 1 - j)]
        gg, hh = (np.array(x) for x in zip(*pairs, strict=True))
        return bb, tt, np.minimum(gg, hh), np.maximum(gg, hh)

    def _screen(self, a, R, G, c, Gv, cv, M, Mv, sizes, counts, bb, tt, gg, hh, current):
        """Which candidates of :meth:`best_candidate` to score exactly: boolean masks over the
        moves ``(bb, tt)`` and the merges ``(gg, hh)`` (``current``: the value of ``a``).

        Every candidate moves a block, or a whole group, from one group to another, a low-rank
        change of the ``R x R`` system: its solution follows from the current inverse in
        ``O(R)`` (:func:`~sharelearn._linalg.moved_solutions`) where the exact path solves
        ``R x R`` for each. These values agree with the exact ones to about 1e-10 of the
        system; the ``_CONFIRMED`` best and every candidate within ``_CONFIRM_GAP`` of the
        best are solved exactly, which keeps the exact search's choice (an 8 x 8 circular map
        with 5 changed entries, its zero-padded reading: 377 rounds, the same choice in each,
        best_candidate 61 s -> 10 s)."""
        f8 = torch.float64
        pb = self.objective.problem
        F = G.shape[0]
        G, c, Gv, cv, M, Mv = (x.to(f8) for x in (G, c, Gv, cv, M, Mv))
        inv, psi, d0 = spare_inverse(G, c, pb.alpha)
        GH, GHv, cH, cHv = (x.to(f8) for x in (self.G, self.Gv, self.c, self.cv))
        yy = pb.yy_va.to(f8) + (0 if self.sse_offset is None else self.sse_offset.to(f8))
        a_t = torch.as_tensor(a, device=self.device)
        chunk = max(1, _CHUNK_ELEMENTS // (4 * F * R))
        values = []

        def value(s, t, m, g, v, mv, gv, vv, emptied, sz, ct):
            sol = moved_solutions(inv, psi, d0, s, t, m, g, v, emptied)
            sse = moved_squared_errors(sol, s, t, Gv, cv, yy, mv, gv, vv)
            mse = (sse / pb.norm_va.to(f8)).to(self.dtype)
            return self.objective.data_term(mse) + self._penalty(sz, ct)

        for i in range(0, bb.size, chunk):  # moves: block b from s = a[b] to t
            b = torch.as_tensor(bb[i:i + chunk], device=self.device)
            t = torch.as_tensor(tt[i:i + chunk], device=self.device)
            s = a_t[b]
            rows = torch.arange(b.numel(), device=self.device)
            sz, ct = sizes.expand(b.numel(), R).clone(), counts.expand(b.numel(), R).clone()
            sz[rows, t] += self.sizes[b]
            sz[rows, s] -= self.sizes[b]
            ct[rows, t] += 1
            ct[rows, s] -= 1
            emptied = counts[s] == 1
            moved = value(s, t, M[:, b].transpose(0, 1), GH[:, b, b].T, cH[:, b].T,
                          Mv[:, b].transpose(0, 1), GHv[:, b, b].T, cHv[:, b].T, emptied,
                          sz, ct)
            # a block alone in its group moved to the spare one: the partition as it is
            values.append(torch.where(emptied & (t == R - 1), current, moved))
        n_moves = bb.size
        for i in range(0, gg.size, chunk):  # merges: group h into g
            g = torch.as_tensor(gg[i:i + chunk], device=self.device)
            h = torch.as_tensor(hh[i:i + chunk], device=self.device)
            rows = torch.arange(g.numel(), device=self.device)
            sz, ct = sizes.expand(g.numel(), R).clone(), counts.expand(g.numel(), R).clone()
            sz[rows, g] += sz[rows, h]
            sz[rows, h] = 0
            ct[rows, g] += ct[rows, h]
            ct[rows, h] = 0
            values.append(value(h, g, G[:, h].transpose(0, 1), G[:, h, h].T, c[:, h].T,
                                Gv[:, h].transpose(0, 1), Gv[:, h, h].T, cv[:, h].T,
                                torch.ones_like(h, dtype=torch.bool), sz, ct))
        values = torch.cat(values).cpu().numpy() if values else np.zeros(0)
        keep = np.zeros(values.size, dtype=bool)
        if values.size:
            best = float(values.min())
            keep[np.argsort(values, kind="stable")[:_CONFIRMED]] = True
            keep |= values <= best + _CONFIRM_GAP * max(1.0, abs(best))
        return keep[:n_moves], keep[n_moves:]

    def best_candidate(self, a):
        """The best candidate of :meth:`_targets` (blocks moved to other or new groups, groups
        merged), scored exactly: ``(value, assignment)``."""
        R = int(a.max()) + 2  # one spare empty group for a new one
        G, c, Gv, cv, M, Mv, B = self.quadratics(a, R)
        sizes, counts = B.T @ self.sizes, B.sum(0)
        F = G.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // (F * R * R))
        best = (math.inf, None)
        data, psi, _ = self._data(G.clone(), c, Gv, cv, overwrite=True)
        psi = psi.reshape(-1, R).mean(0).cpu().numpy()
        bb, tt, gg, hh = self._targets(a, R, psi)
        if self.screen:  # the exact solves below for the few that may be best
            current = data + self._penalty(sizes[None], counts[None])[0]
            keep_moves, keep_merges = self._screen(a, R, G, c, Gv, cv, M, Mv, sizes, counts,
                                                   bb, tt, gg, hh, current)
            bb, tt, gg, hh = bb[keep_moves], tt[keep_moves], gg[keep_merges], hh[keep_merges]
        # moves: block b from s = a[b] to t != s; G' = G + u m^T + m u^T + g_bb u u^T, u = e_t - e_s
        gbb = torch.diagonal(self.G, dim1=1, dim2=2)  # (F, K)
        gbbv = torch.diagonal(self.Gv, dim1=1, dim2=2)
        for i in range(0, bb.size, chunk):
            b = torch.as_tensor(bb[i:i + chunk], device=self.device)
            t = torch.as_tensor(tt[i:i + chunk], device=self.device)
            src = torch.as_tensor(a, device=self.device)[b]
            n = b.numel()
            rows = torch.arange(n, device=self.device)
            out = []
            for Gq, cq, Mq, cH, gq in ((G, c, M, self.c, gbb), (Gv, cv, Mv, self.cv, gbbv)):
                m = Mq[:, b, :].transpose(0, 1)  # (n, F, R)
                Gn = Gq.expand(n, F, R, R).clone()
                Gn[rows, :, t, :] += m
                Gn[rows, :, src, :] -= m
                Gn[rows, :, :, t] += m
                Gn[rows, :, :, src] -= m
                g = gq[:, b].T  # (n, F)
                Gn[rows, :, t, t] += g
                Gn[rows, :, src, src] += g
                Gn[rows, :, t, src] -= g
                Gn[rows, :, src, t] -= g
                cn = cq.expand(n, F, R).clone()
                v = cH[:, b].T
                cn[rows, :, t] += v
                cn[rows, :, src] -= v
                out += [Gn, cn]
            sz = sizes.expand(n, R).clone()
            sz[rows, t] += self.sizes[b]
            sz[rows, src] -= self.sizes[b]
            ct = counts.expand(n, R).clone()
            ct[rows, t] += 1
            ct[rows, src] -= 1
            values = self._values(*out, sz, ct)
            j = int(torch.argmin(values))
            if float(values[j]) < best[0]:
                moved = a.copy()
                moved[bb[i + j]] = tt[i + j]
                best = (float(values[j]), moved)
        # merges: group h into g < h (the spare group is empty: no merge with it)
        for i in range(0, gg.size, chunk):
            g = torch.as_tensor(gg[i:i + chunk], device=self.device)
            h = torch.as_tensor(hh[i:i + chunk], device=self.device)
            n = g.numel()
            rows = torch.arange(n, device=self.device)
            out = []
            for Gq, cq in ((G, c), (Gv, cv)):
                Gn = Gq.expand(n, F, R, R).clone()
                Gn[rows, :, g, :] += Gn[rows, :, h, :]
                Gn[rows, :, :, g] += Gn[rows, :, :, h]
                Gn[rows, :, h, :] = 0
                Gn[rows, :, :, h] = 0
                cn = cq.expand(n, F, R).clone()
                cn[rows, :, g] += cn[rows, :, h]
                cn[rows, :, h] = 0
                out += [Gn, cn]
            sz = sizes.expand(n, R).clone()
            sz[rows, g] += sz[rows, h]
            sz[rows, h] = 0
            ct = counts.expand(n, R).clone()
            ct[rows, g] += ct[rows, h]
            ct[rows, h] = 0
            values = self._values(*out, sz, ct)
            j = int(torch.argmin(values))
            if float(values[j]) < best[0]:
                merged = np.where(a == hh[i + j], gg[i + j], a)
                best = (float(values[j]), merged)
        return best


def coarsening_search(blocks, starts, *, max_iter=1000, tol=1e-9):
    """Best coarsening of hypothesis ``h`` reached from ``starts`` by steepest descent.

    Parameters
    ----------
    blocks : HypothesisBlocks
        The hypothesis whose coarsenings are searched, on a closed-form hard objective
        (:class:`~sharelearn.models.objectives.ValidationObjective` or its evidence variant).
    starts : list of ndarray
        Block assignments (``K`` labels each) to start from.
    max_iter : int
        Cap on accepted rounds per start.

    Returns
    -------
    labels : ndarray of shape (n_items,)
        The best coarsening found, as canonical item labels.
    value : float
        Its objective, with the structured code length.
    n_moves : int
        Accepted rounds of the winning start.
    converged : bool
    """
    best = None
    for a in starts:
        a = canonical_labels(a)
        value = blocks.value_of(a)
        converged, n_moves = False, 0
        for n_moves in range(max_iter):  # noqa: B007 - n_moves is reported
            new_value, new = blocks.best_candidate(a)
            if new is None or not improves(new_value, value, tol):
                converged = True
                break
            a, value = canonical_labels(new), new_value
        else:
            n_moves = max_iter
        if best is None or value < best[1]:
            best = (a, value, n_moves, converged)
    a, value, n_moves, converged = best
    return canonical_labels(a[blocks.family.labels[blocks.h]]), value, n_moves, converged


def coarsening_with_exceptions(objective, family, h, labels, value, *, max_iter=1000,
                               max_rounds=4, tol=1e-9):
    """The exceptions to a coarsening of hypothesis ``h``, and the coarsening refitted
    around them, in turn.

    A coarsening searched on all the items is fitted with its exceptions inside: a dead input's
    entries pull their taps towards zero, and two taps may merge. So once the exceptions are
    found (:func:`~sharelearn.search.exceptions.exception_search`), those of each group become
    a block of their own in a refined hypothesis (up to ``_MAX_REFITTED_EXCEPTIONS``), whose
    coarsenings are searched exactly (:func:`coarsening_search`: taps split again, and
    exceptions join the group they belong to, such as the zeros); then the exceptions are
    searched again, up to ``max_rounds`` times or until neither improves.

    Returns
    -------
    labels : ndarray
    value : float
        Its objective with the structured penalty of ``h`` (exceptions priced).
    n_exceptions : int
    """
    best = (canonical_labels(labels), value, 0)
    for _ in range(max_rounds):
        found, found_value, n_exc, _ = exception_search(objective, family, h, best[0],
                                                        max_iter=max_iter, tol=tol)
        if not improves(found_value, best[1], tol):
            break
        best = (found, found_value, n_exc)
        if n_exc == 0 or n_exc > _MAX_REFITTED_EXCEPTIONS:
            # many exceptions: a poor hypothesis for these data, whose refitted coarsenings
            # are costly to search (p4m under a reflect-border Gaussian filter: 125 exceptions
            # to 21 blocks, 30 s, and it still lost by 26,000 units; a random 64 x 64 map:
            # 95 s over its hypotheses)
            break
        exceptions = family.exceptions(h, found)
        blocks = family.labels[h].copy()
        # the exceptions of one group are one block (the search moves single ones)
        blocks[exceptions] = blocks.max() + 1 + canonical_labels(found[exceptions])
        refined = SharingFamily({"refined": blocks})
        refit, _, _, _ = coarsening_search(HypothesisBlocks(objective, refined, 0),
                                           [refined.blocks_of(0, found)], max_iter=max_iter)
        refit_value, refit_exc = structured_value(objective, family, h, refit)
        if not improves(refit_value, best[1], tol):
            break
        best = (refit, refit_value, refit_exc)
    return best
