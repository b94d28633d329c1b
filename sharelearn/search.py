"""Discrete local search over hard partitions, scored by the exact outer objective.

After the relaxed selection matrix is rounded, the hard partition is improved by these moves, in
this order of preference, until none helps:

* move one item to another existing group, or to a new group of its own (a batch: the best move
  of each output row, confirmed exactly, halved until it helps);
* merge two groups;
* split: open a new group with the ``k = 2, 4, 8, ...`` items rated best for it, together;
* signed split: split a group by the direction its items want to move (a group that holds two
  true groups of different values has items pulling both ways, and the sign-blind split mixes
  them);
* untied split: fit every item of a group freely at once, row by row, and split the group by
  those values into two or three (on correlated inputs one item's own value mostly measures how
  its neighbours compensate, which defeats the splits above);
* re-solve rows: a beam search over the assignment of each suspect output (row of ``W``),
  kept if the search resumed from it beats the current partition.

The last one escapes the trap of the small-data regime: with fewer samples than inputs, a
correlated but wrong input can take a group's value first when a row is grown one entry at a
time, after which no single move, merge or split pays although the true row is far better.

Every accepted move is scored by the *same* outer objective as the relaxation (validation loss of
the closed-form refit, plus the complexity penalty), exactly: a one-item move changes the normal
equations of every split by a rank-2 term, and a merge by summing two rows and columns, so the
refit of a candidate costs one small ``r x r`` solve. Candidates for one-item moves are first
screened with a one-entry quadratic model of the validation loss at fixed shared values (exact in
the moved entry); the most promising ones are then scored exactly, and batches of them are
accepted only after an exact recomputation confirms the gain.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .evidence import fit_precisions, neg2_log_evidence
from .inner import diagonal_solve, ridge_solve
from .partition import canonical_labels

__all__ = ["EvidenceObjective", "HardObjective", "input_correlation", "local_search",
           "ridge_clusters", "untied_values"]


class HardObjective:
    """The outer objective of hard partitions for a closed-form problem.

    ``J = N * log(mean validation MSE) + penalty * sum_j sqrt(size_j)``, where ``N`` is the number
    of scalar training observations per split. In these units one spurious free parameter costs
    about 1, so ``penalty`` is free of the data's scale. ``sum_j sqrt(size_j)`` is the nuclear norm
    of a hard selection matrix (and also its column-norm variant).
    """

    def __init__(self, problem, nuclear, code_length):
        self.problem = problem
        self.nuclear = float(nuclear)
        self.code_length = float(code_length)
        self.n_obs = problem.n_obs_train
        self.item_input = torch.arange(problem.n_items, device=problem.device) % problem.n_inputs
        self.kappa = problem.C_tr_diag[:, self.item_input]  # (F, P) curvature of one entry
        self.kappa_v = problem.C_va_diag[:, self.item_input]
        # with one input (shared means) every hard quadratic is diagonal: solves are divisions
        self.diagonal = problem.n_inputs == 1

    def data_term(self, mse):
        return self.n_obs * torch.log(mse.mean(-1).clamp_min(self.problem.mse_floor))

    def _size_cost(self, sizes):
        """Penalty of one group of each size (0 for an empty group)."""
        P = float(self.problem.n_items)
        code = sizes * torch.log(P / sizes.clamp_min(1))
        return self.nuclear * torch.sqrt(sizes) + self.code_length * code

    def output_errors(self, st):
        """Validation mean squared error of every output (row of ``W``), mean over splits."""
        pb = self.problem
        F = st["psi"].shape[0]
        W = st["psi"].gather(1, st["lab_t"][None].expand(F, -1))
        W = W.reshape(F, pb.n_outputs, pb.n_inputs)
        sse = (pb.yy_va_out[:F] - 2 * (W * pb.B_va[:F].transpose(1, 2)).sum(-1)
               + ((W @ pb.C_va[:F]) * W).sum(-1))
        return (sse / pb.n_va[:F, None]).mean(0)

    def penalty_term(self, sizes):
        return self._size_cost(sizes).sum(-1)

    def state(self, labels):
        """Everything the search needs about a hard partition, with one spare empty group."""
        labels = canonical_labels(labels)
        r = int(labels.max()) + 1
        R = r + 1
        st = self.problem.hard_statistics(labels, R)
        data, st["psi"], st["fit"] = self._data(st["G"], st["c"], st["Gv"], st["cv"], None)
        st["lab_t"] = torch.as_tensor(labels, device=self.problem.device)
        st["sizes"] = torch.bincount(st["lab_t"], minlength=R).to(self.problem.dtype)
        st["value"] = float(data + self.penalty_term(st["sizes"]))
        st["labels"], st["R"] = labels, R
        return st

    def _data(self, G, c, Gv, cv, st):
        """Data term of (batched) hard quadratics, the shared values, and a fit summary (the
        validation MSE of each split). ``st`` is the current state, unused here."""
        if self.diagonal:
            psi = diagonal_solve(torch.diagonal(G, dim1=-2, dim2=-1), c, self.problem.alpha)
        else:
            psi = ridge_solve(G, c, self.problem.alpha)
        mse = self._mse(psi, Gv, cv)
        return self.data_term(mse), psi, mse

    def _mse(self, psi, Gv, cv):
        if self.diagonal:
            quad = (psi**2 * torch.diagonal(Gv, dim1=-2, dim2=-1)).sum(-1)
        else:
            quad = (psi[..., None, :] @ Gv @ psi[..., :, None])[..., 0, 0]
        return (self.problem.yy_va - 2 * (psi * cv).sum(-1) + quad) / self.problem.norm_va

    # -- one-item moves ----------------------------------------------------------------------
    def screen_moves(self, st):
        """Predicted change of the objective for every (item, target group) pair, ``P x R``."""
        psi = st["psi"]  # (F, R)
        lab = st["lab_t"]
        R = st["R"]
        cur = psi.gather(1, lab[None].expand(psi.shape[0], -1))  # (F, P) current value
        pb = self.problem
        grad_t = (st["CS"] @ psi[..., None])[..., 0] - pb.b_tr  # half d SSE / dW, (F, P)
        grad_v, kap_v, scale = self._scoring_gradient(st, grad_t)
        kap_t = self.kappa
        delta = psi[:, None, :] - cur[..., None]  # (F, P, R): value change when moving to j
        # the spare empty group takes the item's own least-squares value on the training part
        delta[..., R - 1] = -grad_t / kap_t.clamp_min(1e-300)
        d_sse = 2 * delta * grad_v[..., None] + delta**2 * kap_v[..., None]
        pred = scale(d_sse)
        pred = pred + self._penalty_change(st)
        pred[torch.arange(lab.numel()), lab] = math.inf
        return pred

    def _scoring_gradient(self, st, grad_t):
        """Gradient and curvature of the scored loss in one entry, and how a change of squared
        error maps to a change of the objective (validation: ``N log MSE``)."""
        pb = self.problem
        grad_v = (st["CSv"] @ st["psi"][..., None])[..., 0] - pb.b_va
        mse = st["fit"].mean()

        def scale(d_sse):
            d_mse = (d_sse / pb.norm_va[:, None, None]).mean(0)
            return self.n_obs * torch.log1p((d_mse / mse).clamp_min(-0.999999))

        return grad_v, self.kappa_v, scale

    def _penalty_change(self, st):
        s = st["sizes"]
        lab = st["lab_t"]
        f = self._size_cost
        leave = f((s[lab] - 1).clamp_min(0)) - f(s[lab])
        join = f(s + 1) - f(s)
        return leave[:, None] + join[None, :]

    def exact_moves(self, st, items, targets):
        """Exact objective change of moving ``items[q]`` to ``targets[q]`` (each alone)."""
        R = st["R"]
        lab = st["lab_t"]
        src = lab[items]
        dt = st["G"].dtype
        eye = torch.eye(R, dtype=dt, device=st["G"].device)
        delta = eye[targets] - eye[src]  # (Q, R)
        pb = self.problem
        G2 = self._rank2(st["G"], st["CS"][:, items], self.kappa[:, items], delta)
        c2 = st["c"][:, None, :] + pb.b_tr[:, items, None] * delta
        Gv2 = self._rank2(st["Gv"], st["CSv"][:, items], self.kappa_v[:, items], delta)
        cv2 = st["cv"][:, None, :] + pb.b_va[:, items, None] * delta
        # candidates first: (Q, F, ...)
        data, _, _ = self._data(G2.transpose(0, 1), c2.transpose(0, 1), Gv2.transpose(0, 1),
                                cv2.transpose(0, 1), st)
        sizes = st["sizes"].expand(len(items), R).clone()
        ar = torch.arange(len(items), device=sizes.device)
        sizes[ar, src] -= 1
        sizes[ar, targets] += 1
        return data + self.penalty_term(sizes) - st["value"]

    @staticmethod
    def _rank2(G, v, kappa, delta):
        """``G + delta v^T + v delta^T + kappa delta delta^T`` for every split and candidate:
        the change of the normal equations when one item moves (``delta = e_to - e_from``)."""
        outer = delta[None, :, :, None] * v[:, :, None, :]  # (F, Q, R, R)
        dd = delta[:, :, None] * delta[:, None, :]
        return G[:, None] + outer + outer.transpose(-1, -2) + kappa[..., None, None] * dd[None]

    # -- merges ------------------------------------------------------------------------------
    def exact_merges(self, st):
        """Exact objective change of merging every pair of non-empty groups ``(a, b)``, a < b."""
        r = st["R"] - 1
        if r < 2:
            return None, None
        a, b = torch.triu_indices(r, r, offset=1, device=st["G"].device)
        R = st["R"]
        dt = st["G"].dtype
        M = torch.eye(R, dtype=dt, device=a.device).repeat(a.numel(), 1, 1)
        ar = torch.arange(a.numel(), device=a.device)
        M[ar, a, b] = 1
        M[ar, b, b] = 0
        Mt = M.transpose(1, 2)
        G2 = M[:, None] @ st["G"][None] @ Mt[:, None]  # (pairs, F, R, R)
        Gv2 = M[:, None] @ st["Gv"][None] @ Mt[:, None]
        c2 = (M[:, None] @ st["c"][None, :, :, None])[..., 0]
        cv2 = (M[:, None] @ st["cv"][None, :, :, None])[..., 0]
        data, _, _ = self._data(G2, c2, Gv2, cv2, st)
        sizes = (M @ st["sizes"][:, None])[..., 0]
        change = data + self.penalty_term(sizes) - st["value"]
        return change, torch.stack([a, b], 1)


class EvidenceObjective(HardObjective):
    """The outer objective with the validation loss replaced by ``-2 log evidence``.

    ``problem`` must hold one "split" whose training part is all the data. The precisions are
    re-optimised for every state and for every candidate move or merge (a batched ``r x r``
    eigendecomposition each), so candidates are scored exactly. Scoring them at the current
    state's precisions instead is a valid bound but a useless one: from the fully shared start the
    noise precision is tiny, and no single move looks profitable before it is re-fitted.
    """

    def _data(self, G, c, Gv, cv, st):
        pb = self.problem
        G, c = G[..., 0, :, :], c[..., 0, :]
        yy, n_obs = pb.yy_tr[0], float(pb.n_tr[0]) * pb.n_outputs
        alpha, beta = fit_precisions(G, c, yy.expand(G.shape[:-2]), n_obs)
        value, psi = neg2_log_evidence(G, c, yy, n_obs, alpha, beta, return_mean=True)
        return value, psi[..., None, :], (alpha, beta)

    def state(self, labels):
        st = super().state(labels)
        st["precisions"] = st["fit"]
        return st

    def _scoring_gradient(self, st, grad_t):
        beta = st["precisions"][1]

        def scale(d_sse):
            return beta * d_sse.sum(0)

        return grad_t, self.kappa, scale


def local_search(objective, labels, *, max_iter=200, n_candidates=512, tol=1e-9,
                 resets=True):
    """Improve a hard partition by exact moves, merges, splits and row re-solves until none
    helps.

    Parameters
    ----------
    objective : HardObjective
    labels : array-like of shape (n_items,)
        Starting partition.
    max_iter : int
        Cap on accepted batches of moves.
    n_candidates : int
        How many screened one-item moves are scored exactly per round.
    resets : bool
        Whether to re-solve suspect rows (see the module's docstring) when nothing else helps.

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
    st = objective.state(labels)
    n_accepted = 0
    converged = False
    tried = set()
    for _ in range(max_iter):
        new = _best_moves(objective, st, n_candidates, tol)
        if new is None:
            new = _best_merge(objective, st, tol)
        if new is None:
            new = _best_split(objective, st, tol)
        if new is None:
            new = _best_signed_split(objective, st, tol)
        if new is None:
            new = _best_untied_split(objective, st, tol)
        if new is None and resets:
            new = _resolve_rows(objective, st, tried, tol,
                                dict(max_iter=max_iter, n_candidates=n_candidates, tol=tol))
        if new is None:
            converged = True
            break
        st = new
        n_accepted += 1
    return st["labels"], st["value"], n_accepted, converged


def _best_moves(objective, st, n_candidates, tol):
    pred = objective.screen_moves(st)
    P, R = pred.shape
    q = min(n_candidates, P * R)
    flat = torch.topk(-pred.reshape(-1), q).indices
    items, targets = flat // R, flat % R
    change = objective.exact_moves(st, items, targets)
    order = torch.argsort(change)
    items, targets, change = items[order], targets[order], change[order]
    good = change < -tol * max(1.0, abs(st["value"]))
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
    base = st["labels"]
    while batch >= 1:
        lab = base.copy()
        lab[items[:batch].cpu().numpy()] = targets[:batch].cpu().numpy()
        new = objective.state(lab)
        if new["value"] < st["value"] - tol * max(1.0, abs(st["value"])):
            return new
        batch //= 2
    return None


def _best_split(objective, st, tol):
    """Open a new group with several items at once: the ``k`` items whose move to a new group
    the screen rates best, for ``k = 2, 4, 8, ...``. A single item may not pay for a new group
    (its code length and penalty) where a whole set of items sharing one value does."""
    pred = objective.screen_moves(st)[:, st["R"] - 1]
    order = torch.argsort(pred).cpu().numpy()
    best = None
    k = 2
    while k <= order.size // 2 or (k == 2 and order.size >= 2):
        lab = st["labels"].copy()
        lab[order[:k]] = st["R"] - 1
        new = objective.state(lab)
        if new["value"] < st["value"] - tol * max(1.0, abs(st["value"])) and (
                best is None or new["value"] < best["value"]):
            best = new
        k *= 2
    return best


def _best_signed_split(objective, st, tol, n_exact=6):
    """Split a group by the direction its items want to move; the improved state or None.

    The items of one group can want opposite changes: when two true groups share a value, the
    items of the larger true value want it higher and the others lower, and any new group that
    mixes them keeps the old value and gains nothing (the sign-blind ranking of
    :func:`_best_split` does exactly that). Here the members of each group are split by the sign
    of their own least-squares change ``delta_i = -g_i / kappa_i`` and ordered by its size, and
    every prefix of every (group, sign) list is rated as a new group with a jointly fitted value,
    in closed form (diagonal curvature, cumulative sums over the prefixes): value shift
    ``t = -sum g / sum kappa`` on each split's training part, change of the scored squared error
    ``2 t sum g_v + t^2 sum kappa_v``, plus the exact penalty change. The ``n_exact`` best rated
    prefixes (the best of each segment) are then refitted exactly.
    """
    pb = objective.problem
    lab = st["lab_t"]
    psi = st["psi"]
    F = psi.shape[0]
    grad_t = (st["CS"] @ psi[..., None])[..., 0] - pb.b_tr
    grad_v, kap_v, scale = objective._scoring_gradient(st, grad_t)
    kap_t = objective.kappa[:F]
    if grad_v.shape[0] != F:
        grad_v, kap_v = grad_v[:F], kap_v[:F]
    delta = -(grad_t.sum(0) / kap_t.sum(0).clamp_min(1e-300)).cpu().numpy()
    labels = st["labels"]
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
    f = objective._size_cost
    sizes = st["sizes"]
    src = sizes[torch.as_tensor(labels[order], device=lab.device)]
    kk = torch.as_tensor(k, dtype=sizes.dtype, device=lab.device)
    pred = pred + f(src - kk) - f(src) + f(kk)
    pred = pred.masked_fill(kk >= src, math.inf)  # moving a whole group is a relabelling
    pred = pred.cpu().numpy()
    # The best prefix of each segment, then the best segments: long prefixes of a large group
    # touch many entries of one row, whose interactions the diagonal rating ignores, so their
    # ratings are optimistic; one candidate per segment keeps them from crowding out the rest.
    ends = np.r_[starts[1:], seg.size]
    per_segment = [a + int(np.argmin(pred[a:b])) for a, b in zip(starts, ends, strict=True)]
    per_segment.sort(key=lambda pos: pred[pos])
    best = None
    for pos in per_segment[:n_exact]:
        if not pred[pos] < 0:
            break
        new_lab = labels.copy()
        new_lab[order[seg_start[pos]:pos + 1]] = st["R"] - 1
        new = objective.state(new_lab)
        if new["value"] < st["value"] - tol * max(1.0, abs(st["value"])) and (
                best is None or new["value"] < best["value"]):
            best = new
    return best


def untied_values(problem, labels, values, group, ridge=1e-3):
    """The least-squares values of the items of ``group`` when each is fitted freely, every other
    item held at its group's value: ``(items, values)``.

    The training statistics are averaged over the splits. The outputs (rows of ``W``) are
    independent regressions, so the fit is one small system per row, over the row's entries in
    the group (padded to the longest row by identity rows, and solved as one batch). A ridge of
    ``ridge`` times the mean diagonal of ``X^T X`` pulls each free value towards the group's
    current value ``values[group]``. Cost ``O(rows x k^3)`` for at most ``k`` entries of the
    group in a row.
    """
    m, d = problem.n_outputs, problem.n_inputs
    C = problem.C_tr.mean(0)
    B = problem.B_tr.mean(0)
    dev = C.device
    lab = np.asarray(labels).reshape(m, d)
    inside = lab == group
    rows = np.flatnonzero(inside.any(1))
    counts = inside[rows].sum(1)
    width = int(counts.max())
    # column index of each row's j-th entry in the group (padded with the row's first one)
    cols = np.zeros((rows.size, width), dtype=np.int64)
    valid = np.arange(width)[None, :] < counts[:, None]
    r_idx, c_idx = np.nonzero(inside[rows])
    cols[r_idx, np.concatenate([np.arange(c) for c in counts])] = c_idx
    cols[~valid] = cols[:, :1].repeat(width, 1)[~valid]
    rows_t = torch.as_tensor(rows, device=dev)
    cols_t = torch.as_tensor(cols, device=dev)
    mask = torch.as_tensor(valid, device=dev, dtype=C.dtype)
    lam = _ridge_amount(C, ridge)
    W = values[torch.as_tensor(lab, device=dev)]
    W_out = W[rows_t] * torch.as_tensor(~inside[rows], device=dev, dtype=C.dtype)
    # right-hand side on the group's entries: X^T y minus what the other entries explain
    resid = B[:, rows_t].T - W_out @ C  # (q, d)
    rhs = (resid.gather(1, cols_t) + lam * values[group]) * mask
    A = C[cols_t[:, :, None], cols_t[:, None, :]] * (mask[:, :, None] * mask[:, None, :])
    A = A + torch.diag_embed(1 - mask + lam * mask)
    free = torch.linalg.solve(A, rhs[..., None])[..., 0]
    items = (rows[:, None] * d + cols)[valid]
    return items, free[mask.bool()].cpu().numpy()


def _ridge_amount(C, ridge):
    """``ridge`` times the mean diagonal of ``C``; 1 where the inputs are constant (``C = 0``),
    so that the ridge systems stay solvable."""
    size = torch.diagonal(C).mean()
    return ridge * (size if float(size) > 0 else torch.ones_like(size))


def input_correlation(problem, n_iter=30):
    """Largest eigenvalue of the inputs' correlation matrix over the number of inputs (training
    statistics averaged over the splits; power iteration, ``O(d^2)`` a step): about
    ``(1 + sqrt(d / n))^2 / d`` for independent inputs, near 1 when one direction carries most
    of their variance, as for neighbouring pixels of natural images."""
    C = problem.C_tr.mean(0)
    scale = torch.diagonal(C).clamp_min(torch.finfo(C.dtype).tiny).rsqrt()
    R = C * scale[:, None] * scale[None, :]
    v = torch.ones(R.shape[0], dtype=R.dtype, device=R.device)
    for _ in range(n_iter):
        v = R @ v
        v = v / v.norm().clamp_min(torch.finfo(R.dtype).tiny)
    return float(v @ R @ v) / R.shape[0]


def ridge_clusters(problem, k=2, ridge=1e-2):
    """A start for the search: the entries of a ridge estimate of the untied map, in ``k``
    intervals of value (:func:`_one_dim_kmeans`).

    The ridge is ``ridge`` times the mean diagonal of ``X^T X`` (training statistics averaged
    over the splits). On correlated inputs the fully shared partition is a poor start: its first
    useful split moves hundreds of entries at once, which no local move finds; two clusters of
    a ridge estimate already separate the large weights from the rest.
    """
    C = problem.C_tr.mean(0)
    B = problem.B_tr.mean(0)
    lam = _ridge_amount(C, ridge)
    eye = torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    W = torch.linalg.solve(C + lam * eye, B).T.reshape(-1)
    return _one_dim_kmeans(W.cpu().numpy(), k)


def _one_dim_kmeans(x, k, n_iter=50):
    """Cluster 1-D values ``x`` into ``k`` intervals by Lloyd's iterations started at evenly
    spaced quantiles (for ``k = 2`` the exact best threshold of the sorted values); returns the
    cluster of each value, ``0..k-1`` from low to high."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n = xs.size
    if k == 2:
        cs, cs2 = np.cumsum(xs), np.cumsum(xs * xs)
        j = np.arange(1, n)  # size of the lower part
        low = cs2[j - 1] - cs[j - 1] ** 2 / j
        high = (cs2[-1] - cs2[j - 1]) - (cs[-1] - cs[j - 1]) ** 2 / (n - j)
        cuts = [int(np.argmin(low + high)) + 1]
    else:
        centres = np.quantile(xs, (np.arange(k) + 0.5) / k)
        for _ in range(n_iter):
            cuts = np.searchsorted(xs, (centres[1:] + centres[:-1]) / 2)
            parts = np.split(xs, cuts)
            new = np.array([p.mean() if p.size else c for p, c in zip(parts, centres,
                                                                        strict=True)])
            if np.allclose(new, centres):
                break
            centres = new
    sorted_labels = np.zeros(n, dtype=np.int64)
    for c in cuts:
        sorted_labels[c:] += 1
    out = np.empty(n, dtype=np.int64)
    out[order] = sorted_labels
    return out


def _best_untied_split(objective, st, tol):
    """Split a group in two by its items' values fitted freely; the improved state or None.

    With correlated inputs (smooth signals, images) one item's own least-squares value, at the
    other items' fixed values, mostly measures how its correlated neighbours compensate, and the
    splits rated by it miss groups that hold two true values. Fitting all the items of a group
    freely at once, row by row (:func:`untied_values`), accounts for the correlations between
    them; the best two- and three-way splits of those values (:func:`_one_dim_kmeans`: a
    group that holds values on both sides of another group's needs three) are then refitted
    exactly, for every group, and the best one is kept.
    """
    pb = objective.problem
    if pb.n_inputs < 2:  # one input: the signed split's diagonal rating is exact already
        return None
    values = st["psi"].mean(0)
    sizes = st["sizes"].cpu().numpy()
    best = None
    for g in np.flatnonzero(sizes[:-1] >= 2):
        items, free = untied_values(pb, st["labels"], values, int(g))
        for k in (2, 3):
            if free.size <= k:
                continue
            parts = _one_dim_kmeans(free, k)
            counts = np.bincount(parts, minlength=k)
            lab = st["labels"].copy()
            # the largest part keeps the group's label, the others open new groups
            new_label = st["R"] - 1
            for part in np.argsort(-counts, kind="stable")[1:]:
                lab[items[parts == part]] = new_label
                new_label += 1
            new = objective.state(lab)
            if new["value"] < st["value"] - tol * max(1.0, abs(st["value"])) and (
                    best is None or new["value"] < best["value"]):
                best = new
    return best


def _best_merge(objective, st, tol):
    change, pairs = objective.exact_merges(st)
    if change is None:
        return None
    best = int(torch.argmin(change))
    if float(change[best]) >= -tol * max(1.0, abs(st["value"])):
        return None
    a, b = (int(x) for x in pairs[best])
    lab = st["labels"].copy()
    lab[lab == b] = a
    return objective.state(lab)


def _rows_touched(lab, r):
    """``touched[g, o]``: whether group ``g`` has an entry in output ``o`` (``lab``: m x d)."""
    touched = np.zeros((r, lab.shape[0]), dtype=bool)
    touched[lab, np.arange(lab.shape[0])[:, None]] = True
    return touched


def _row_beam(st, o, beam, scoring, groups):
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
    cur = torch.as_tensor(st["labels"].reshape(-1, d)[o], device=dev)
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
    labels = np.full(d, bg, dtype=st["labels"].dtype)
    a = best[0].cpu().numpy()
    labels[a >= 0] = np.asarray(groups)[a[a >= 0]]
    return labels, best[1], free


def _resolve_rows(objective, st, tried, tol, search_kwargs, beam=8, reach=0.25,
                  outlier=2.0):
    """Re-solve the assignment of suspect outputs by :func:`_row_beam`; where a row's beam result
    beats its current configuration the row is replaced, the search resumes from there, and the
    result is kept if it beats the current partition. The improved state, or None. Suspects are
    the rows that use a group of small reach and the rows whose validation error exceeds
    ``outlier`` times the median row's; a partition whose groups all span the layer and whose
    rows fit alike costs nothing here.

    Greedy moves regrow a row one entry at a time; with fewer samples than inputs a correlated
    but wrong input can take a group's value first, after which no single change pays although
    the true row is far better. A beam over whole rows keeps such alternatives alive. Only the
    groups that span the layer (touch more than ``reach`` of the outputs) are offered: the values
    of groups of small reach are tailored to the rows they prop up, and rows that use them are
    re-solved without them.
    """
    pb = objective.problem
    m, d = pb.n_outputs, pb.n_inputs
    if d < 2 or st["R"] < 3:
        return None
    key = ("rows", st["value"])
    if key in tried:
        return None
    tried.add(key)
    psi = st["psi"]
    F = psi.shape[0]
    bg = int(torch.argmax(st["sizes"][:-1]))
    grad_t = (st["CS"] @ psi[..., None])[..., 0] - pb.b_tr
    _, _, scale = objective._scoring_gradient(st, grad_t)
    if isinstance(objective, EvidenceObjective):
        C, b = pb.C_tr[:F], pb.B_tr[:F].transpose(1, 2)
    else:
        C, b = pb.C_va[:F], pb.B_va[:F].transpose(1, 2)
    f = objective._size_cost
    sizes = st["sizes"]
    pen = f(sizes + 1) - f(sizes) + (f(sizes[bg] - 1) - f(sizes[bg]))
    scoring = (C, b, psi, bg, scale, pen)
    labels = st["labels"].reshape(m, d).copy()
    touched = _rows_touched(labels, st["R"] - 1)
    wide = (touched.sum(1) > reach * m) | (m < 4)
    groups = [j for j in range(st["R"] - 1) if j != bg and wide[j]]
    if not groups:
        return None
    # suspects: the rows that use a group of small reach, and rows that fit much worse than most
    errors = objective.output_errors(st).cpu().numpy()
    suspects = touched[~wide].any(0) | (errors > outlier * np.median(errors))
    if not suspects.any():
        return None
    changed = False
    for o in np.flatnonzero(suspects):
        row, gain, free = _row_beam(st, o, beam, scoring, groups)
        if (gain < -1e-9 or not free) and not np.array_equal(row, labels[o]):
            labels[o] = row
            changed = True
    if not changed:
        return None
    new_labels, value, _, _ = local_search(objective, labels.ravel(), resets=False,
                                           **search_kwargs)
    if value < st["value"] - tol * max(1.0, abs(st["value"])):
        return objective.state(new_labels)
    return None
