"""The closed-form models' shared machinery: hard objectives and the model base.

A closed-form model is a tied linear map fitted by least squares on X and y in internal units
(:mod:`sharelearn._scaling`): the inner problem is :class:`~sharelearn.models.gaussian.
TiedLinearGaussian`, whose shared values have a closed form, so the relaxation differentiates
through the solve exactly and the search scores its candidates exactly from the normal
equations. :class:`ValidationObjective` and :class:`EvidenceObjective` are the two hard
objectives (validation loss over the splits, or ``-2 log`` evidence on all the data);
:class:`ClosedFormModel` implements the model protocol (:class:`~sharelearn.models.base.
SharingModel`) for both :class:`~sharelearn.models.means.SharedMeans` and
:class:`~sharelearn.models.linear.LinearMap`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._linalg import moved_solutions, moved_squared_errors, spare_inverse
from .._memory import format_bytes
from ..evidence import fit_precisions, integrate_level, neg2_log_evidence
from ..partition import canonical_labels
from ..penalties import data_term
from ..search import HardObjective, SearchState
from ..search.coarsening import Shortlist
from ..search.moves import closed_form_moves
from .base import SharingModel
from .gaussian import HardProducts, TiedLinearGaussian, diagonal_solve, ridge_solve

__all__ = ["ClosedFormModel", "ClosedFormState", "EvidenceObjective", "ValidationObjective",
           "log_evidence"]

# The relaxation holds a few P x r tensors; above this many entries the candidate count shrinks.
_RELAXATION_BUDGET = 2**20  # also bounds a batch of restarts relaxed together
# n_restarts="auto" relaxes only while one step (O(items x inputs x groups)) stays cheap. Above
# it the search from the shared partition reached the same objective 100x faster (measured on
# valid 70 -> 68, 4,760 entries, and the 64-input small-data curve: benchmarks/bench_shift.py).
_AUTO_RESTART_BUDGET = 2**16


@dataclass
class ClosedFormState(SearchState):
    """A hard partition with its exact quadratics, stacked over the ``F`` splits, and one spare
    empty group (``R`` columns: the groups and the spare).

    ``G``, ``c`` (training) and ``Gv``, ``cv`` (validation) are the normal equations of the
    shared values; ``CS``, ``CSv`` the products ``C S`` (``F x P x R``, as
    :class:`~sharelearn.models.gaussian.HardProducts`), what a one-item move changes in them
    (:meth:`TiedLinearGaussian.hard_statistics`); ``psi`` the fitted shared values (``F x R``),
    ``lab_t`` the labels on the device, ``sizes`` the group sizes (float, ``R``). ``mse`` is the
    validation MSE of each split (validation objective), ``precisions`` the prior and noise
    precisions (evidence objective).
    """

    R: int = 0
    lab_t: torch.Tensor = None
    sizes: torch.Tensor = None
    psi: torch.Tensor = None
    G: torch.Tensor = None
    c: torch.Tensor = None
    Gv: torch.Tensor = None
    cv: torch.Tensor = None
    CS: HardProducts = None
    CSv: HardProducts = None
    mse: torch.Tensor = None
    precisions: tuple = None
    grad_t: torch.Tensor = None  # cache of ValidationObjective.training_gradient
    inverse: tuple = None  # cache of ValidationObjective._inverse


# The fewest columns (groups and the spare) a search state holds: two groups and the spare.
_MIN_COLUMNS = 3
# The screen's ratings are blocked by at least this many items.
_MIN_SCREEN_BLOCK = 1024


@dataclass
class MemoryNeed:
    """What a closed-form fit holds at its peak (bytes, by part; see
    :meth:`ClosedFormModel.memory_need`): ``parts`` with ``columns`` columns in the search
    states (``_MIN_COLUMNS``, or the start's groups and the spare), the screen included with
    its smallest block of items and the exact scoring with one candidate. Beyond ``columns``
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


class SplitScale:
    """How a change of each split's squared error (``F x ...``) maps to a change of the
    objective: ``link(sum_f weights[f] * d_sse[f])``. Calling it does that; the search's screen
    uses ``weights`` and ``link`` to sum over the splits in place (``link`` may overwrite its
    argument)."""

    def __init__(self, weights, link):
        self.weights, self.link = weights, link

    def __call__(self, d_sse):
        w = self.weights.reshape((-1,) + (1,) * (d_sse.dim() - 1))
        return self.link((d_sse * w).sum(0))


class ValidationObjective(HardObjective):
    """The outer objective of hard partitions for a closed-form problem.

    ``J = N * log(mean validation MSE) + penalties(group sizes)``, where ``N`` is the number of
    scalar training observations per split. In these units one spurious free parameter costs
    about 1, so the penalty weights are free of the data's scale. Besides the value of a
    partition (:meth:`state`) it scores the search's candidates exactly and cheaply:
    :meth:`screen_moves` rates every one-item move, :meth:`exact_moves`, :meth:`exact_merges`
    and :meth:`merge_changes` refit candidates from rank-2 and merge updates of the normal
    equations.

    ``shortlist`` picks the structured hypotheses built in full on a large layer (a
    :class:`~sharelearn.search.coarsening.Shortlist`; None: its defaults).
    """

    scored_on_training = False  # candidates are scored on the validation parts
    scores_exactly = True

    def __init__(self, problem, penalties, screen_block=None, shortlist=None):
        self.problem = problem
        self.penalties = penalties
        # items rated at once by the screen, given the number of columns (None: all)
        self.screen_block = screen_block
        self.shortlist = Shortlist() if shortlist is None else shortlist
        self.n_obs = problem.n_obs_train
        self.item_input = torch.arange(problem.n_items, device=problem.device) % problem.n_inputs
        self.kappa = problem.C_tr_diag_items  # (F, P) curvature of one entry
        self.kappa_v = problem.C_va_diag[:, self.item_input]
        # with one input (shared means) every hard quadratic is diagonal: solves are divisions
        self.diagonal = problem.n_inputs == 1

    def data_term(self, mse):
        return data_term(self.n_obs, mse.mean(-1), self.problem.mse_floor)

    def size_cost(self, sizes):
        """Penalty of one group of each size (0 for an empty group)."""
        return self.penalties.size_cost(sizes, self.problem.n_items)

    def output_errors(self, st):
        """Validation mean squared error of every output (row of ``W``), mean over splits; the
        training error where there is no validation part (the evidence)."""
        pb = self.problem
        F = st.psi.shape[0]
        W = st.psi.gather(1, st.lab_t[None].expand(F, -1))
        W = W.reshape(F, pb.n_outputs, pb.n_inputs)
        if float(pb.n_va[:F].min()) >= 1:
            yy, B, C, n = pb.yy_va_out, pb.B_va, pb.C_va, pb.n_va
        else:
            yy, B, C, n = pb.yy_tr_out, pb.B_tr, pb.C_tr, pb.n_tr
        sse = (yy[:F] - 2 * (W * B[:F].transpose(1, 2)).sum(-1) + ((W @ C[:F]) * W).sum(-1))
        return (sse / n[:F, None]).mean(0)

    def penalty_term(self, sizes):
        return self.size_cost(sizes).sum(-1)

    def state(self, labels, near=None):
        """Everything the search needs about a hard partition, with one spare empty group.
        ``near``: a state of a partition close to this one (the search's current state), whose
        statistics are updated rather than recomputed (:meth:`TiedLinearGaussian.
        hard_statistics`)."""
        labels = canonical_labels(labels)
        R = int(labels.max()) + 2
        stats = self.problem.hard_statistics(labels, R, near=near)
        data, psi, summary = self._data(stats["G"], stats["c"], stats["Gv"], stats["cv"])
        lab_t = torch.as_tensor(labels, device=self.problem.device)
        sizes = torch.bincount(lab_t, minlength=R).to(self.problem.dtype)
        return ClosedFormState(labels=labels, value=float(data + self.penalty_term(sizes)), R=R,
                               lab_t=lab_t, sizes=sizes, psi=psi, **stats,
                               **self._summary(summary))

    @staticmethod
    def _summary(mse):
        return {"mse": mse}

    def _data(self, G, c, Gv, cv, overwrite=False, sse_offset=None):
        """Data term of (batched) hard quadratics, the shared values, and a fit summary (the
        validation MSE of each split). ``overwrite``: ``G`` was built for this call alone and
        may be changed in place. ``sse_offset``: added to each split's validation squared error
        (the parts of the map fitted outside these quadratics)."""
        if self.diagonal:
            psi = diagonal_solve(torch.diagonal(G, dim1=-2, dim2=-1), c, self.problem.alpha)
        else:
            psi = ridge_solve(G, c, self.problem.alpha, overwrite=overwrite)
        mse = self._mse(psi, Gv, cv, sse_offset)
        return self.data_term(mse), psi, mse

    def _mse(self, psi, Gv, cv, sse_offset=None):
        if self.diagonal:
            quad = (psi**2 * torch.diagonal(Gv, dim1=-2, dim2=-1)).sum(-1)
        else:
            quad = (psi[..., None, :] @ Gv @ psi[..., :, None])[..., 0, 0]
        sse = self.problem.yy_va - 2 * (psi * cv).sum(-1) + quad
        if sse_offset is not None:
            sse = sse + sse_offset
        return sse / self.problem.norm_va

    # -- one-item moves ----------------------------------------------------------------------
    def _screen_block(self, st, items):
        """What the screen needs of a state for the items of the slice ``items`` (``F x n``
        each): their current values, the gradients of the training and scored losses, and the
        scored curvature; with the split scale and the penalty changes of every move
        (:meth:`move_penalties`). Only the cached training gradient is held for all items."""
        psi = st.psi  # (F, R)
        lab = st.lab_t[items]
        cur = psi.gather(1, lab[None].expand(psi.shape[0], -1))
        grad_t = self.training_gradient(st)[:, items]
        grad_v, kap_v, scale = self.scoring_gradient(st, grad_t, items)
        return lab, cur, grad_t, grad_v, kap_v, scale

    def _spare_change(self, block, items):
        """Weighted change of the scored squared error when each of ``items`` moves to the spare
        empty group, which takes the item's own least-squares value on the training part:
        ``-u`` with ``u = g_t / kappa_t``, a change of ``u (kappa u - 2 g) = -2 u q`` with
        ``q = g - kappa u / 2``. ``block``: :meth:`_screen_block` of ``items``."""
        _, _, grad_t, grad_v, kap_v, scale = block
        # an input constant on a training part has kappa 0 (and gradient 0)
        u = grad_t / self.kappa[:, items].clamp_min(1e-300)
        q = torch.addcmul(grad_v, kap_v, u, value=-0.5).mul_(u)
        return ((-2 * scale.weights[:, None]).T @ q)[0]

    def screen_moves(self, st, items=slice(None), penalties=None):
        """Predicted change of the objective for every (item, target group) pair of ``items`` (a
        slice of the items, all by default), ``n x R``. Its memory is ``O(n (F + R))``: a screen
        in blocks of items holds no ``F x P`` array beyond the state's. ``penalties``:
        :meth:`move_penalties`, when already computed."""
        psi = st.psi  # (F, R)
        R = st.R
        block = self._screen_block(st, items)
        lab, cur, _, grad_v, kap_v, scale = block
        leave, join = self.move_penalties(st) if penalties is None else penalties
        # The change of split f's squared error when item i moves to group j is
        # 2 delta g + kappa delta^2 with delta = psi[f, j] - cur[f, i], weighted and summed over
        # the splits. Expanded in powers of psi it is
        #   sum_f w kappa psi_j^2 + 2 w h psi_j - w cur (h + g),   h = g - kappa cur,
        # three products of n x F and F x R matrices, so no F x n x R array is formed (at a
        # million entries, 480 MB each), and the weights go into the small F x R factors. Each
        # pass over an F x P array costs tens of milliseconds there: they are kept few.
        w = scale.weights[:, None]
        h = torch.addcmul(grad_v, kap_v, cur, value=-1)
        const = (-w).T @ (h + grad_v).mul_(cur)  # (1, n)
        d_sse = torch.addmm(const.T, kap_v.T, w * psi**2).addmm_(h.T, 2 * w * psi)
        d_sse[:, R - 1] = self._spare_change(block, items)
        # in place: at a million entries each P x R pass costs tens of milliseconds
        pred = scale.link(d_sse)
        pred.add_(leave[items, None]).add_(join)
        pred[torch.arange(lab.numel(), device=lab.device), lab] = math.inf
        return pred

    def best_screened(self, st, n, penalties=None, extra=None, return_ratings=False):
        """The ``n`` (item, target group) pairs the screen rates best: ``(items, targets)``,
        best first. The ratings are computed for blocks of items that fit the memory budget
        (``screen_block``), keeping the best ``n`` so far. ``penalties``: the ``(leave, join)``
        penalty changes to rate with (:meth:`move_penalties` by default); ``extra``: a function
        of a slice of the items adding its own ``n x R`` change to their ratings (the
        exceptions' code, :mod:`sharelearn.search.exceptions`); ``return_ratings``: also
        return the ratings, ``(ratings, items, targets)``."""
        P, R = self.problem.n_items, st.R
        block = P if self.screen_block is None else max(1, min(P, self.screen_block(R)))
        penalties = self.move_penalties(st) if penalties is None else penalties
        best_v = best_i = None
        for start in range(0, P, block):
            items = slice(start, start + block)
            pred = self.screen_moves(st, items, penalties)
            if extra is not None:
                pred = pred.to(torch.float64) + extra(items)
            pred = pred.reshape(-1)
            v, i = torch.topk(pred, min(n, pred.numel()), largest=False)
            i = i + start * R
            if best_v is not None:
                v, i = torch.cat([best_v, v]), torch.cat([best_i, i])
                v, keep = torch.topk(v, min(n, v.numel()), largest=False)
                i = i[keep]
            best_v, best_i = v, i
        if return_ratings:
            return best_v, best_i // R, best_i % R
        return best_i // R, best_i % R

    def spare_ratings(self, st):
        """Predicted change of the objective for moving each item to the spare empty group
        (``P``): the screen's last column, without the others."""
        items = slice(None)
        block = self._screen_block(st, items)
        leave, join = self.move_penalties(st)
        change = block[5].link(self._spare_change(block, items))
        change = change + leave + join[st.R - 1]
        return change.masked_fill_(st.lab_t == st.R - 1, math.inf)

    def training_gradient(self, st):
        """Half the gradient of each split's training squared error in each entry, at the
        state's shared values (``F x P``); computed once per state."""
        if st.grad_t is None:
            st.grad_t = st.CS.times(st.psi) - self.problem.b_tr
        return st.grad_t

    def scoring_gradient(self, st, grad_t, items=slice(None)):
        """Gradient and curvature of the scored loss in each entry of ``items`` (a slice, all
        by default; ``grad_t``: the training gradient of those), and how a change of squared
        error maps to a change of the objective (validation: ``N log MSE``)."""
        pb = self.problem
        grad_v = st.CSv.times(st.psi, items) - pb.b_va[:, items]
        mse = st.mse.mean()

        def link(relative):  # overwrites its argument
            return relative.clamp_min_(-0.999999).log1p_().mul_(self.n_obs)

        # the mean over the splits of each one's change of MSE, relative to the MSE
        scale = SplitScale(1.0 / (pb.norm_va * pb.n_splits * mse), link)
        return grad_v, self.kappa_v[:, items], scale

    def move_penalties(self, st):
        """Penalty change of moving each item to each group, ``leave[i] + join[j]``: the change
        of the item's own group (``P``) and of the target group (``R``)."""
        s = st.sizes
        lab = st.lab_t
        f = self.size_cost
        leave = f((s[lab] - 1).clamp_min(0)) - f(s[lab])
        join = f(s + 1) - f(s)
        return leave, join

    def _inverse(self, st):
        """:func:`~sharelearn._linalg.spare_inverse` of the state's training systems in float64,
        computed once per state: the one-item moves and the merges of a round, and the blocks
        of each, approximate from it."""
        if st.inverse is None:
            st.inverse = spare_inverse(st.G.to(torch.float64), st.c.to(torch.float64),
                                       self.problem.alpha)
        return st.inverse

    def approximate_moves(self, st, items, targets):
        """:meth:`exact_moves` from one inverse of the state's systems by low-rank updates
        (:func:`~sharelearn._linalg.moved_solutions`), in ``O(R)`` per move instead of an
        ``R x R`` solve, agreeing to about 1e-10 of the system: to tell which moves need the
        exact change (:func:`~sharelearn.search.moves.exact_move_changes`). None where the
        objective has no such update (the evidence's determinants, a diagonal problem)."""
        if self.scored_on_training or self.diagonal:
            return None
        f8 = torch.float64
        pb = self.problem
        src = st.lab_t[items]
        inv, psi, d0 = self._inverse(st)
        emptied = st.sizes[src] == 1
        sol = moved_solutions(inv, psi, d0, src, targets,
                              st.CS.rows(items).transpose(0, 1).to(f8),
                              self.kappa[:, items].T.to(f8), pb.b_tr[:, items].T.to(f8), emptied)
        sse = moved_squared_errors(sol, src, targets, st.Gv.to(f8), st.cv.to(f8),
                                   pb.yy_va.to(f8), st.CSv.rows(items).transpose(0, 1).to(f8),
                                   self.kappa_v[:, items].T.to(f8),
                                   pb.b_va[:, items].T.to(f8))
        data = self.data_term((sse / pb.norm_va.to(f8)).to(st.G.dtype))
        sizes = st.sizes.expand(len(items), st.R).clone()
        ar = torch.arange(len(items), device=sizes.device)
        sizes[ar, src] -= 1
        sizes[ar, targets] += 1
        change = data + self.penalty_term(sizes) - st.value
        # an item alone in its group moved to the spare one: the same partition
        return change.masked_fill(emptied & (targets == st.R - 1), 0.0)

    def exact_moves(self, st, items, targets):
        """Exact objective change of moving ``items[q]`` to ``targets[q]`` (each alone)."""
        R = st.R
        src = st.lab_t[items]
        dt = st.G.dtype
        eye = torch.eye(R, dtype=dt, device=st.G.device)
        delta = eye[targets] - eye[src]  # (Q, R)
        pb = self.problem
        # candidates first: (Q, F, ...)
        G2 = self._rank2(st.G, st.CS.rows(items), self.kappa[:, items], src, targets)
        c2 = st.c[None] + pb.b_tr[:, items].T[..., None] * delta[:, None, :]
        Gv2 = self._rank2(st.Gv, st.CSv.rows(items), self.kappa_v[:, items], src, targets)
        cv2 = st.cv[None] + pb.b_va[:, items].T[..., None] * delta[:, None, :]
        data, _, _ = self._data(G2, c2, Gv2, cv2, overwrite=True)
        sizes = st.sizes.expand(len(items), R).clone()
        ar = torch.arange(len(items), device=sizes.device)
        sizes[ar, src] -= 1
        sizes[ar, targets] += 1
        return data + self.penalty_term(sizes) - st.value

    @staticmethod
    def _rank2(G, v, kappa, src, dst):
        """``G + delta v^T + v delta^T + kappa delta delta^T`` for every candidate ``q`` and
        split, with ``delta = e_dst[q] - e_src[q]``: the change of the normal equations when
        item ``q`` moves. ``v``: ``F x Q x R``; returns ``Q x F x R x R``. Only the rows and
        columns ``src`` and ``dst`` change, so they are updated in place on one copy of ``G``
        (the same additions, in the same order, as forming the dense rank-2 terms)."""
        F, Q, R = v.shape
        v, kappa = v.transpose(0, 1), kappa.T  # (Q, F, R), (Q, F)
        out = G.expand(Q, F, R, R).clone()
        q = torch.arange(Q, device=G.device)
        out[q, :, dst, :] += v
        out[q, :, src, :] -= v
        out[q, :, :, dst] += v
        out[q, :, :, src] -= v
        out[q, :, dst, dst] += kappa
        out[q, :, src, src] += kappa
        out[q, :, dst, src] -= kappa
        out[q, :, src, dst] -= kappa
        return out

    # -- merges ------------------------------------------------------------------------------
    def exact_merges(self, st, pairs=None):
        """Exact objective change of merging every pair of non-empty groups ``(a, b)``, a < b,
        or the pairs ``pairs`` (``n x 2``) only; returns the changes and the pairs."""
        r = st.R - 1
        if r < 2:
            return None, None
        if pairs is None:
            a, b = torch.triu_indices(r, r, offset=1, device=st.G.device)
        else:
            a, b = pairs[:, 0], pairs[:, 1]
        R = st.R
        dt = st.G.dtype
        M = torch.eye(R, dtype=dt, device=a.device).repeat(a.numel(), 1, 1)
        ar = torch.arange(a.numel(), device=a.device)
        M[ar, a, b] = 1
        M[ar, b, b] = 0
        Mt = M.transpose(1, 2)
        G2 = M[:, None] @ st.G[None] @ Mt[:, None]  # (pairs, F, R, R)
        Gv2 = M[:, None] @ st.Gv[None] @ Mt[:, None]
        c2 = (M[:, None] @ st.c[None, :, :, None])[..., 0]
        cv2 = (M[:, None] @ st.cv[None, :, :, None])[..., 0]
        data, _, _ = self._data(G2, c2, Gv2, cv2, overwrite=True)
        sizes = (M @ st.sizes[:, None])[..., 0]
        change = data + self.penalty_term(sizes) - st.value
        return change, torch.stack([a, b], 1)

    def approximate_merges(self, st, a, b):
        """:meth:`merge_changes` from one inverse of the state's systems by low-rank updates (a
        merge moves the whole group ``b`` to ``a``), ``O(R)`` per pair, agreeing to about 1e-10
        of the system: to tell which pairs need the exact change
        (:func:`~sharelearn.search.moves.best_merge`). None where the objective has no such
        update (see :meth:`approximate_moves`)."""
        if self.scored_on_training or self.diagonal:
            return None
        f8 = torch.float64
        pb = self.problem
        G, c, Gv, cv = (x.to(f8) for x in (st.G, st.c, st.Gv, st.cv))
        inv, psi, d0 = self._inverse(st)
        sol = moved_solutions(inv, psi, d0, b, a, G[:, b].transpose(0, 1), G[:, b, b].T,
                              c[:, b].T, torch.ones_like(b, dtype=torch.bool))
        sse = moved_squared_errors(sol, b, a, Gv, cv, pb.yy_va.to(f8),
                                   Gv[:, b].transpose(0, 1), Gv[:, b, b].T, cv[:, b].T)
        Q = a.numel()
        q = torch.arange(Q, device=a.device)
        sizes = st.sizes.expand(Q, -1).clone()
        sizes[q, a] += st.sizes[b]
        sizes[q, b] = 0
        data = self.data_term((sse / pb.norm_va.to(f8)).to(st.G.dtype))
        return data + self.penalty_term(sizes) - st.value

    def merge_changes(self, st, a, b):
        """Exact objective change of merging group ``b[q]`` into ``a[q]`` for every ``q``: the
        merge adds row and column ``b`` of the normal equations to ``a`` and empties ``b``
        (what :meth:`exact_merges` forms as ``M G M^T`` for every pair, here for the pairs given
        and without the ``M``; the search scores blocks of pairs with it,
        :func:`~sharelearn.search.moves.best_merge`)."""
        Q = a.numel()
        q = torch.arange(Q, device=a.device)

        def merged(G):  # (F, R, R) -> (Q, F, R, R)
            out = G.expand(Q, *G.shape).clone()
            out[q, :, a, :] += G[:, b, :].transpose(0, 1)
            out[q, :, b, :] = 0
            out[q, :, :, a] += out[q, :, :, b]
            out[q, :, :, b] = 0
            return out

        def summed(c):  # (F, R) -> (Q, F, R)
            out = c.expand(Q, *c.shape).clone()
            out[q, :, a] += c[:, b].T
            out[q, :, b] = 0
            return out

        sizes = st.sizes.expand(Q, -1).clone()
        sizes[q, a] += st.sizes[b]
        sizes[q, b] = 0
        data, _, _ = self._data(merged(st.G), summed(st.c), merged(st.Gv), summed(st.cv),
                                overwrite=True)
        return data + self.penalty_term(sizes) - st.value


class EvidenceObjective(ValidationObjective):
    """The outer objective with the validation loss replaced by ``-2 log evidence``.

    ``problem`` must hold one "split" whose training part is all the data. The precisions are
    re-optimised for every state and for every candidate move or merge (a batched ``r x r``
    eigendecomposition each), so candidates are scored exactly. Scoring them at the current
    state's precisions instead is a valid bound but a useless one: from the fully shared start the
    noise precision is tiny, and no single move looks profitable before it is re-fitted.

    ``free_level``: the targets' common level is integrated out under a flat prior
    (:func:`~sharelearn.evidence.integrate_level`; the shared means).
    """

    scored_on_training = True  # the evidence has no validation part

    def __init__(self, problem, penalties, screen_block=None, shortlist=None, *,
                 free_level=False):
        super().__init__(problem, penalties, screen_block, shortlist)
        self.free_level = free_level

    def _data(self, G, c, Gv, cv, overwrite=False, sse_offset=None):
        if sse_offset is not None:
            raise ValueError("the evidence has no validation error to offset")
        pb = self.problem
        G, c = G[..., 0, :, :], c[..., 0, :]
        yy, n_obs = pb.yy_tr[0].expand(G.shape[:-2]), float(pb.n_tr[0]) * pb.n_outputs
        level = None
        if self.free_level:
            G, c, yy, n_obs, level = integrate_level(G, c, yy, n_obs)
        alpha, beta = fit_precisions(G, c, yy, n_obs)
        value, psi = neg2_log_evidence(G, c, yy, n_obs, alpha, beta, return_mean=True)
        if level is not None:  # the groups' fitted values: their contrasts plus the level
            psi = psi + level(psi)
        return value, psi[..., None, :], (alpha, beta)

    @staticmethod
    def _summary(precisions):
        return {"precisions": precisions}

    def scoring_gradient(self, st, grad_t, items=slice(None)):
        beta = st.precisions[1]
        return grad_t, self.kappa[:, items], SplitScale(beta.reshape(1), lambda change: change)



def log_evidence(terms):
    """Log marginal likelihood, as a density of the targets in the user's units (of their
    contrasts for the shared means, whose common level is integrated out), from the terms a
    closed-form refit keeps: ``(G, c, yy, n_obs, log y_scale)``, with the precisions at their
    type-II maximum likelihood."""
    *stats, log_scale = terms
    G, c, yy, n_obs = (torch.as_tensor(t, dtype=torch.float64) for t in stats)
    alpha, beta = fit_precisions(G, c, yy, float(n_obs))
    # the fit ran on Y / y_scale: the density of Y has the Jacobian y_scale^-N
    return float(-0.5 * neg2_log_evidence(G, c, yy, float(n_obs), alpha, beta)
                 - float(n_obs) * float(log_scale))


class ClosedFormModel(SharingModel):
    """A tied linear map fitted in closed form; subclasses say what the map is
    (:meth:`design`) and what a fit reports (:meth:`map_attributes`).

    Parameters
    ----------
    objective : {"validation", "evidence"}
        The data term: ``N log`` of the mean validation MSE over the splits, or ``-2 log``
        evidence of the tied linear-Gaussian model on all the data.
    alpha : float
        Ridge penalty on the shared values, in internal units.
    """

    #: Which structured hypotheses a fit builds in full on a large layer, given to the hard
    #: objectives (a :class:`~sharelearn.search.coarsening.Shortlist`; None: its defaults). A
    #: model type may set its own.
    shortlist = None

    def __init__(self, *, objective="validation", alpha=1e-6):
        self.objective = objective
        self.alpha = alpha

    @classmethod
    def on_problem(cls, problem, **params):
        """A model around an already built :class:`~sharelearn.models.gaussian.
        TiedLinearGaussian` (its data used as they are, without the internal units): to score
        partitions or relax selections of a problem built by hand."""
        model = cls(**params)
        model.problem, model.n_items = problem, problem.n_items
        model.layer_shape = (problem.n_outputs, problem.n_inputs)
        model.dtype, model.device = problem.dtype, problem.device
        return model

    # -- what subclasses define ----------------------------------------------------------------
    def design(self, X, y):
        """``(inputs, targets, fit_intercept, units)`` in internal units."""
        raise NotImplementedError

    def map_attributes(self, psi, W, full):
        """The fitted attributes of the shared values ``psi`` and map ``W`` (internal units)."""
        raise NotImplementedError

    def start_cost_factor(self, n_groups):
        """Roughly how many times the default start's work a search from ``n_groups`` groups
        costs (it merges a pair of groups per round and rates every pair each round). Fitted to
        the times of init="unshared" over the default's: a linear map (a convolution's, 48 / 80
        / 224 entries) took 19 / 42 / 500 times as long, shared means (80 / 200 / 400
        features) 2 / 7 / 120 times."""
        return (n_groups / 10) ** 2 if self.supervised else (n_groups / 70) ** 3

    def layer_dims(self, n_features, n_outputs):
        """``(n_outputs, n_inputs)`` of the tied map that data with ``n_features`` columns and
        ``n_outputs`` targets give (the shared means: one constant input, a target per
        feature)."""
        return n_outputs, n_features

    def memory_need(self, n_samples, n_features, n_outputs, splits, itemsize, *,
                    start_groups=None):
        """The bytes a fit on such data holds at its peak, by part, in its leanest way of working
        (:class:`MemoryNeed`), from the shapes alone: before any work.

        Counted: the data and their split statistics (``X^T X`` and ``X^T y`` per split part,
        the curvature of every entry), two search states (the current one and a candidate) with
        ``C S`` and the normal equations for ``_MIN_COLUMNS`` columns, or for the
        ``start_groups`` groups of the start and the spare (``init="unshared"``: a column per
        item), with one candidate scored exactly at once (``F x R x R`` systems), and the screen
        of one-item moves (six ``F x n`` arrays and ``n x R`` ratings for a block of ``n`` items,
        at least ``_MIN_SCREEN_BLOCK``: larger blocks where the budget allows). The relaxation,
        which holds no search state, is priced apart (``MemoryNeed.relaxation``). Counted too:
        the block equations of the structured hypotheses that the ranking keeps, three at most
        (``2 F K^2`` numbers each for ``K`` blocks, the three largest of
        :meth:`hypothesis_blocks`: an 8 x 8 map's 1,024-block point-group readings take 84 MB
        each with 5 splits). Not counted: Python and torch themselves, and the hypotheses'
        labels (``8 P`` bytes each)."""
        m, d = self.layer_dims(n_features, n_outputs)
        P = m * d
        if not self.uses_splits or splits is None:
            splits = [(np.arange(n_samples), np.arange(n_samples))]
        F = len(splits)
        n_tr = max(len(tr) for tr, _ in splits)
        n_va = max(len(va) for _, va in splits)
        through_samples = max(n_tr, n_va) < d and d > 1
        stats = itemsize * (2 * F * d * d + 4 * F * P) + 8 * P
        if through_samples:  # the centred parts
            stats += itemsize * F * (n_tr + n_va) * d
        per_column = itemsize * (F * (n_tr + n_va) * m if through_samples else 2 * F * P)
        per_state = itemsize * F * P + 16 * P  # a cached gradient, the labels twice
        # G and Gv of each state: F x R x R each
        per_square = itemsize * 2 * F
        # A candidate scored exactly holds its refitted G and Gv and the solve's copy, and the
        # evidence's eigendecompositions; measured: 3 (validation) and 5 (evidence, F = 1)
        # times F R^2 numbers for the one-item moves, 4.2 and 6 to 8 for the merges.
        candidate = itemsize * (4 * F + 4)
        # A relaxed restart holds a few dozen P x r tensors (the logits, the selection, Adam's
        # moments, the autograd graph of C S): measured 16 to 22 F P r numbers with validation
        # splits and 47 to 73 P r with the evidence (linear map), 7 F and 29 P r for the shared
        # means
        relaxation = itemsize * ((64 + 16 * F) if d > 1 else (32 + 4 * F))
        # the screen: six F x n arrays and the n x R ratings for n items at once, and the
        # penalty change of leaving each item's group
        item, item_column = itemsize * 6 * F + 16, itemsize
        smallest = min(P, _MIN_SCREEN_BLOCK)
        R = max(_MIN_COLUMNS, 1 + int(start_groups or 0))
        # the ranking keeps the equations of its two best hypotheses and the coarser one
        kept = sum(K * K for K in self.hypothesis_blocks((m, d))[:3])
        hypotheses = {"hypotheses": itemsize * 2 * F * kept} if kept else {}
        return MemoryNeed(
            parts={"data": n_samples * (d + m) * (8 + itemsize), "statistics": stats,
                   **hypotheses,
                   "search states": (2 * (per_state + per_column * R + per_square * R * R)
                                     + candidate * R * R),
                   "screen": itemsize * P + smallest * (item + item_column * R)},
            per_column=2 * per_column, screen_item=item, screen_item_column=item_column,
            n_items=P, per_column_squared=2 * per_square, candidate=candidate,
            relaxation=relaxation, columns=R)

    # -- the protocol --------------------------------------------------------------------------
    @property
    def free_level(self):
        """Whether the evidence integrates the targets' common level out under a flat prior
        (:func:`~sharelearn.evidence.integrate_level`): for the shared means, whose design is one
        constant input and whose features share one offset. Their evidence is then the same
        whatever that offset (the data's origin, or the grand mean they are centred by), and a
        sharing pays the prior for its groups' contrasts, not for the level too."""
        return getattr(self, "name", None) == "mean"

    @property
    def uses_splits(self):
        """Whether the objective needs train/validation splits (the evidence uses all data)."""
        return self.objective != "evidence"

    def prepare(self, X, y, splits, *, dtype, device, rng=None, seed=None):
        Xd, Y, intercept, units = self.design(X, y)
        if not self.uses_splits:
            splits = [(np.arange(X.shape[0]), np.arange(X.shape[0]))]
        self.Xd, self.Y, self.intercept, self.units = Xd, Y, intercept, units
        self.dtype, self.device = dtype, device
        # copies: the user's arrays are never shared with torch
        self.problem = TiedLinearGaussian(torch.tensor(Xd, dtype=dtype, device=device),
                                          torch.tensor(Y, dtype=dtype, device=device), splits,
                                          fit_intercept=intercept, alpha=self.alpha)
        self.n_items = self.problem.n_items
        self.layer_shape = (Y.shape[1], Xd.shape[1])

    def default_columns(self):
        return max(2, min(self.n_items, 16, _RELAXATION_BUDGET // self.n_items))

    def auto_restarts(self):
        return 3 if self.n_items * self.problem.n_inputs <= _AUTO_RESTART_BUDGET else 0

    def batch_size(self, n_columns):
        """Most restarts relaxed together: a batch holds a few ``B x P x r`` tensors, within
        the memory budget (at least one: :meth:`relaxation` refuses one that does not fit)."""
        most = max(1, _RELAXATION_BUDGET // (self.n_items * n_columns))
        plan = self.__dict__.get("memory_plan")
        return most if plan is None else max(1, min(most, plan.relaxations(n_columns)))

    def relaxation(self, S0):
        plan = self.__dict__.get("memory_plan")
        if plan is not None:  # before the first step, which holds most of the relaxation
            plan.check_relaxation(S0[..., 0, 0].numel(), S0.shape[-1])
        return self.relaxed_data_term  # stateless: S0 is not needed

    def relaxed_data_term(self, S):
        """The data term of soft selections ``S`` (``P x r`` or a batch ``B x P x r``): ``N log``
        of the expected validation MSE (a soft row costs its expected loss), or ``-2 log p(y | S)``
        of the expected model on all the data, with the precisions at their type-II maximum
        likelihood. At a hard ``S`` it equals the hard objective's data term."""
        problem = self.problem
        if self.objective == "evidence":
            G, c = problem.normal_equations(S)
            G, c = G[..., 0, :, :], c[..., 0, :]
            yy = problem.yy_tr[0].expand(G.shape[:-2])
            n_obs = float(problem.n_tr[0]) * problem.n_outputs
            if self.free_level:
                G, c, yy, n_obs, _ = integrate_level(G, c, yy, n_obs)
            alpha, beta = fit_precisions(G.detach(), c.detach(), yy.detach(), n_obs)
            return neg2_log_evidence(G, c, yy, n_obs, alpha, beta)
        return data_term(problem.n_obs_train, problem.validation_mse(S), problem.mse_floor)

    def hard_objective(self, penalties):
        screen_block = self.__dict__.get("screen_block")
        if self.objective == "evidence":
            return EvidenceObjective(self.problem, penalties, screen_block=screen_block,
                                     shortlist=self.shortlist, free_level=self.free_level)
        return ValidationObjective(self.problem, penalties, screen_block=screen_block,
                                   shortlist=self.shortlist)

    def hypothesis_blocks(self, layer_shape):
        """The block counts of the structured hypotheses of a layer of ``layer_shape``
        (:meth:`hypotheses`), largest first, for the memory estimate; none by default."""
        return []

    def plan_memory(self, need, budget):
        """Work within ``budget`` bytes (None: no limit) given the fit's ``need``
        (:meth:`memory_need`): the search's screen rates its moves in blocks of items that fit,
        its exact scores are computed in blocks of candidates that fit, and the restarts are
        relaxed in batches that fit (:class:`MemoryPlan`)."""
        self.memory_plan = None if budget is None else MemoryPlan(need, budget)
        self.screen_block = self.memory_plan

    def search_moves(self, max_iter):
        return closed_form_moves(max_iter=max_iter)

    def refit(self, labels, objective):
        """Shared values of the chosen partition, fitted on all the (internal) data, and mapped
        back to the user's units; also what ``log_evidence_`` needs, computed on first access
        (the precisions' fixed point costs more than a whole fit of a small problem)."""
        n_groups = int(labels.max()) + 1
        Xd, Y = self.Xd, self.Y
        if self.uses_splits:
            everything = [(np.arange(Xd.shape[0]), np.arange(Xd.shape[0]))]
            full = TiedLinearGaussian(torch.tensor(Xd, dtype=self.dtype, device=self.device),
                                      torch.tensor(Y, dtype=self.dtype, device=self.device),
                                      everything, fit_intercept=self.intercept,
                                      alpha=self.alpha)
        else:  # the evidence's problem holds all the data already
            full = self.problem
        stats = full.hard_statistics(labels, n_groups)
        evidence = (stats["G"][0], stats["c"][0], full.yy_tr[0],
                    float(full.n_tr[0]) * full.n_outputs)
        if self.free_level:
            evidence = integrate_level(*evidence)[:4]
        terms = tuple(np.asarray(torch.as_tensor(t).detach().cpu(), dtype=np.float64)
                      for t in evidence) + (np.log(self.units.y_scale),)
        psi = ridge_solve(stats["G"][0], stats["c"][0], self.alpha)
        psi = psi.cpu().numpy().astype(np.float64)
        W = psi[labels].reshape(Y.shape[1], Xd.shape[1])
        attributes = self.map_attributes(psi, W, full)
        attributes["validation_loss_"] = (None if not self.uses_splits else float(
            objective.state(labels).mse.mean()) * self.units.y_scale ** 2)
        attributes["_evidence_terms"] = terms
        return labels, attributes

    def release(self):
        for name in ("Xd", "Y", "problem"):
            self.__dict__.pop(name, None)
