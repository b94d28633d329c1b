"""The hard objectives of the closed-form models: what the search asks of a partition.

:class:`ValidationObjective` scores a hard partition by its validation loss over the splits
(``N log MSE``, the normal equations of each split solved for the shared values) and
:class:`EvidenceObjective` by ``-2 log`` evidence on all the data; both give the search a
:class:`ClosedFormState` per partition and the exact (and low-rank approximate) changes of
one-item moves and merges from its normal equations (:mod:`sharelearn.search.moves`). They
implement :class:`~sharelearn.search.HardObjective` for the closed-form models
(:mod:`sharelearn.models.closed_form`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._linalg import moved_solutions, moved_squared_errors, spare_inverse
from ..evidence import fit_precisions, integrate_level, neg2_log_evidence
from ..partition import canonical_labels
from ..penalties import data_term
from ..search import HardObjective, SearchState
from ..search.coarsening import Shortlist
from .gaussian import HardProducts, diagonal_solve, ridge_solve

__all__ = ["ClosedFormState", "EvidenceObjective", "SplitScale", "ValidationObjective",
           "log_evidence"]


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
