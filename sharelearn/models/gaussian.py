"""The closed-form inner problem: a tied linear-Gaussian model and its expected loss.

Every closed-form model of sharelearn is a linear map ``W`` (``n_outputs x n_inputs``) whose
``P = n_outputs * n_inputs`` entries (row-major) are the shareable items, tied by a selection
matrix ``S`` (``P x r``): ``W = reshape(S @ psi)``. The shared-means model is the special case of a
single constant input and no intercept: ``W`` is then the column of feature means.

Relaxation. A soft ``S`` (each row a probability vector) is read as a random hard assignment,
each item independently in group ``j`` with probability ``S[i, j]``, and a loss is relaxed to its
*expectation* over that assignment. For the squared loss this is exact and cheap::

    E[SSE] = || Y - X Wbar^T ||^2 + sum_{o,k} C_kk Var(W_ok)

with ``Wbar = S @ psi`` and ``Var(W_ok) = sum_j S_okj psi_j^2 - Wbar_ok^2``. The second term is zero
only when every row is one-hot, or when the groups a row mixes hold equal values: a soft row costs
fit by itself, so the relaxation rewards committing items to groups that really share a value.
At a hard ``S`` it equals the ordinary loss. For shared means it reduces to the paper's closed
form (``psi_j`` = the S-weighted average of the items' means).

In ``psi`` the expected loss is a quadratic ``yy - 2 psi^T c(S) + psi^T G(S) psi``; the inner
solution is ``psi*(S) = (G(S) + alpha I)^-1 c(S)``, and autograd differentiates through the
solve, so the hypergradient is exact. Everything works on sufficient statistics (``X^T X``,
``X^T Y``, ``||Y||^2`` per split), never on a ``P x P`` matrix or an ``(n * n_outputs) x P``
design.
"""

from __future__ import annotations

import torch

from .._linalg import block_quadratics, diagonal_solve, ridge_solve
from ..evidence import noise_floor_fraction

# hard_statistics moves the rows of C for at most this many (item, row) pairs at once (with 5
# splits, 40 MiB of values per block)
_MOVED_BLOCK = 2**20
__all__ = ["HardProducts", "ProductsThroughC", "ProductsThroughSamples", "SpanTests",
           "TiedLinearGaussian", "block_quadratics", "diagonal_solve", "ridge_solve", "span_test"]


def _moments(X, Y, x_mean, y_mean):
    Xc = X - x_mean
    Yc = Y - y_mean
    return Xc.T @ Xc, Xc.T @ Yc, (Yc * Yc).sum(0)


class TiedLinearGaussian:
    """Tied linear map ``Y = X W^T + b`` with squared loss, on precomputed split statistics.

    The statistics of all ``F`` train/validation splits are stacked along a leading axis, so one
    evaluation of the outer objective is a handful of batched matrix products and one batched
    ``r x r`` solve, whatever the number of splits. ``C`` is ``X^T X`` (``F x d x d``), ``B`` is
    ``X^T Y`` (``F x d x m``), ``yy`` is ``||Y||^2`` (``yy_va_out`` per output), for the
    training part (``*_tr``) and the validation part (``*_va``) of each split, centred with the
    training means when an intercept is fitted.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_inputs)
    Y : tensor of shape (n_samples, n_outputs)
    splits : list of (train_index, validation_index) numpy arrays
    fit_intercept : bool
        A free (untied, unpenalised) intercept per output, handled by centring with the training
        means of each split.
    alpha : float
        Ridge penalty on the shared values ``psi``.
    """

    def __init__(self, X, Y, splits, *, fit_intercept, alpha):
        self.n_inputs = X.shape[1]
        self.n_outputs = Y.shape[1]
        self.n_items = self.n_inputs * self.n_outputs
        self.fit_intercept = fit_intercept
        self.alpha = float(alpha)
        self.device, self.dtype = X.device, X.dtype
        parts = [self._split_statistics(X, Y, tr, va) for tr, va in splits]
        names = ("C_tr", "B_tr", "yy_tr", "C_va", "B_va", "yy_va_out", "x_mean", "y_mean")
        for i, name in enumerate(names):
            setattr(self, name, torch.stack([p[i] for p in parts]))
        # With fewer samples than inputs, a hard partition's products C S are cheaper through
        # the samples, X^T (X S), than through C (see hard_statistics): keep the centred parts.
        self.longest_part = longest = max(max(len(tr), len(va)) for tr, va in splits)
        # Stacked over the splits (F x n x d), each part padded with zero rows to the longest
        # (a zero row adds nothing to X^T X S).
        self.X_parts = None
        if longest < X.shape[1]:
            self.X_parts, self.X_columns = [], []
            for part in (0, 1):
                n_max = max(len(pair[part]) for pair in splits)
                Xp = torch.zeros(len(splits), n_max, X.shape[1], dtype=X.dtype, device=X.device)
                for f, pair in enumerate(splits):
                    rows = torch.as_tensor(pair[part], device=X.device)
                    Xp[f, :len(rows)] = X[rows] - self.x_mean[f]
                    # stored by input (d x F n: a moved entry's samples are one contiguous row);
                # X_parts is the same numbers viewed F x n x d
                columns = Xp.permute(2, 0, 1).reshape(X.shape[1], -1).contiguous()
                self.X_columns.append(columns)
                self.X_parts.append(
                    columns.view(X.shape[1], len(splits), n_max).permute(1, 2, 0))
        # ||Y||^2 per output on the validation part (F x m), and in all (F)
        self.yy_tr_out = self.yy_tr
        self.yy_tr = self.yy_tr.sum(-1)
        self.yy_va = self.yy_va_out.sum(-1)
        self.n_tr = torch.tensor([len(tr) for tr, _ in splits], dtype=X.dtype, device=X.device)
        self.n_va = torch.tensor([len(va) for _, va in splits], dtype=X.dtype, device=X.device)
        self.n_splits = len(splits)
        self.C_tr_diag = torch.diagonal(self.C_tr, dim1=1, dim2=2)  # (F, d)
        self.C_va_diag = torch.diagonal(self.C_va, dim1=1, dim2=2)
        self.C_tr_diag_items = self.C_tr_diag.repeat(1, self.n_outputs)  # (F, P)
        # item-wise: entry (o, k) of W meets input k and target o; B is kept as a view of b
        self.b_tr = self.B_tr.transpose(1, 2).reshape(self.n_splits, -1)  # (F, P)
        self.b_va = self.B_va.transpose(1, 2).reshape(self.n_splits, -1)
        shape = (self.n_splits, self.n_outputs, self.n_inputs)
        self.B_tr = self.b_tr.view(shape).transpose(1, 2)
        self.B_va = self.b_va.view(shape).transpose(1, 2)
        self.norm_va = self.n_va * self.n_outputs  # scalar validation observations per split
        # Number of scalar training observations per split: the unit in which one extra free
        # parameter costs about one (see ``sharelearn.models.objectives.ValidationObjective``).
        self.n_obs_train = float(self.n_tr.mean()) * self.n_outputs
        # Noise-free data leave a validation MSE of rounding errors, which differ between
        # sharings that all explain the data: scored as they are, N log MSE fits the rounding
        # (a convolution's taps split for a better rounding, whatever the penalties). The
        # floor is the evidence's noise floor, far above that rounding: every exact sharing
        # then scores the same data term, and the penalties choose the coarsest.
        rel = noise_floor_fraction(X.dtype)
        self.mse_floor = rel * float((self.yy_va / self.norm_va).mean()) + 1e-30

    def _split_statistics(self, X, Y, tr, va):
        tr = torch.as_tensor(tr, device=X.device)
        va = torch.as_tensor(va, device=X.device)
        Xtr, Ytr, Xva, Yva = X[tr], Y[tr], X[va], Y[va]
        if self.fit_intercept:
            x_mean, y_mean = Xtr.mean(0), Ytr.mean(0)
        else:
            x_mean = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
            y_mean = torch.zeros(Y.shape[1], dtype=Y.dtype, device=Y.device)
        C_tr, B_tr, yy_tr = _moments(Xtr, Ytr, x_mean, y_mean)
        C_va, B_va, yy_va = _moments(Xva, Yva, x_mean, y_mean)
        return C_tr, B_tr, yy_tr, C_va, B_va, yy_va, x_mean, y_mean

    def times_C(self, S, C):
        """Row ``(o, k)`` of the result is ``sum_k' C[k, k'] S[(o, k'), :]``: each split's ``C``
        (``F x d x d``) applied to every output's block of ``S`` (``P x r``, or ``B x P x r`` for a
        batch of selection matrices) in one product, ``O(B F m d^2 r)``. Returns ``F x P x r``
        (``B x F x P x r``)."""
        m, d = self.n_outputs, self.n_inputs
        if d == 1:  # shared means: C is a scalar per split
            return C[:, 0, 0, None, None] * S.unsqueeze(-3)
        r = S.shape[-1]
        batch = S.shape[:-2]
        nb = S[..., 0, 0].numel()
        Sk = S.reshape(nb, m, d, r).permute(2, 0, 1, 3).reshape(d, nb * m * r)
        CS = (C @ Sk).reshape(-1, d, nb, m, r).permute(2, 0, 3, 1, 4)
        return CS.reshape(*batch, -1, m * d, r)

    # -- the inner problem -------------------------------------------------------------------
    def normal_equations(self, S, *, diagonal=False):
        """``G(S)`` (``F x r x r``) and ``c(S)`` (``F x r``) of the expected training loss; with a
        batch ``S`` (``B x P x r``), ``B x F x r x r`` and ``B x F x r``.

        With one input (shared means) ``G`` is diagonal; ``diagonal=True`` then returns only
        its diagonal (``F x r``).
        """
        Sf = S.unsqueeze(-3)  # broadcasts over the splits
        # Expected loss: the diagonal of C moves from the cross terms onto G's diagonal.
        DS = Sf * self.C_tr_diag_items[..., None]
        c = self.b_tr @ S
        if diagonal and self.n_inputs == 1:  # one input: no cross terms
            return DS.sum(-2), c
        G = torch.diag_embed(DS.sum(-2))
        if self.n_inputs > 1:
            G = G + Sf.transpose(-1, -2) @ (self.times_C(S, self.C_tr) - DS)
        return G, c

    def solve(self, S):
        """Inner solution ``psi*(S)`` of every split (``F x r``), differentiable in ``S``."""
        if self.n_inputs == 1:  # a diagonal system: the solve is a division
            return diagonal_solve(*self.normal_equations(S, diagonal=True), self.alpha)
        G, c = self.normal_equations(S)
        return ridge_solve(G, c, self.alpha)

    def expected_sse(self, S, psi):
        """Expected validation squared error of ``S`` with each split's ``psi`` (``F``, or
        ``B x F`` for a batch)."""
        m, d = self.n_outputs, self.n_inputs
        if d == 1:
            # one input: sum_i C (W_i^2 + Var W_i) = C sum_j mass_j psi_j^2, mass = column sums
            fit = self.yy_va - 2 * (psi * (self.b_va @ S)).sum(-1)
            return fit + self.C_va[:, 0, 0] * (psi**2 * S.sum(-2).unsqueeze(-2)).sum(-1)
        St = S.transpose(-1, -2)
        W = (psi @ St).unflatten(-1, (m, d))
        var = (psi**2 @ St).unflatten(-1, (m, d)) - W**2
        fit = self.yy_va - 2 * (W * self.B_va.transpose(1, 2)).sum((-2, -1))
        fit = fit + ((W @ self.C_va) * W).sum((-2, -1))
        return fit + (var * self.C_va_diag[:, None, :]).sum((-2, -1))

    def validation_mse(self, S):
        """Mean over splits of the expected validation mean squared error (one per ``S`` of a
        batch)."""
        return (self.expected_sse(S, self.solve(S)) / self.norm_va).mean(-1)

    # -- hard partitions ---------------------------------------------------------------------
    def hard_statistics(self, labels, n_columns, near=None):
        """Exact quadratics of a hard partition with ``n_columns`` groups, stacked over splits.

        Returns a dict with ``G``, ``c`` (training) and ``Gv``, ``cv`` (validation), and ``CS``,
        ``CSv``: the products ``C S`` of each split's training and validation part with the
        one-hot selection (``F x P x n_columns``; row ``i = (o, k)`` is ``sum_{k'} C[k, k']
        [label(o, k') == j]``), which is what a one-item move needs. They are
        :class:`HardProducts`: stored as they are (:class:`ProductsThroughC`) or, with fewer
        samples than inputs, as ``X S`` (:class:`ProductsThroughSamples`, ``F x n x m x
        n_columns``), from which any row of ``C S`` is a product with ``X``.

        ``near``: the statistics of another partition (an object with ``lab_t``, ``CS`` and
        ``CSv``: a search state), from which these are updated instead of computed: its
        columns are mapped onto the groups that hold most of their items, and each item that
        then still sits in the wrong group moves its contribution across (``O(F d)`` per item
        through ``C``, ``O(F n)`` through the samples; a search round moves a few items, a
        merge none). From scratch the products cost ``O(F m d^2 n_columns)`` through ``C``, or
        ``O(F n m d n_columns)`` through the samples. ``G`` and ``c`` are then sums of the
        products' rows by group; nothing is ``P x P``.
        """
        lab = torch.as_tensor(labels, device=self.device)
        products = None
        if near is not None:
            products = self._moved_products(near, lab, n_columns)
        if products is None:
            products = self._products(lab, n_columns)
        out = {}
        for tag, CS, b in (("", products[0], self.b_tr), ("v", products[1], self.b_va)):
            out["G" + tag] = CS.gram(lab)
            out["c" + tag] = torch.zeros(self.n_splits, n_columns, dtype=self.dtype,
                                         device=self.device).index_add_(1, lab, b)
            out["CS" + tag] = CS
        return out

    def _products(self, lab, n_columns):
        """The products ``C S`` of the partition ``lab`` for the training and the validation
        parts of every split, from scratch."""
        P = self.n_items
        onehot = torch.zeros(P, n_columns, dtype=self.dtype, device=self.device)
        onehot[torch.arange(P, device=self.device), lab] = 1
        if self.X_parts is None or self.n_inputs == 1:
            return [ProductsThroughC(self.times_C(onehot, C), part, self)
                    for part, C in enumerate((self.C_tr, self.C_va))]
        return [ProductsThroughSamples.from_labels(onehot, part, self) for part in (0, 1)]

    def _moved_products(self, near, lab, n_columns):
        """The ``C S`` products of ``lab`` updated from a nearby partition's (see
        :meth:`hard_statistics`); None when so many items move that computing them afresh is
        cheaper."""
        old = near.lab_t
        R_old = near.CS.n_columns
        counts = torch.bincount(old * n_columns + lab, minlength=R_old * n_columns)
        counts = counts.reshape(R_old, n_columns)
        mapping = counts.argmax(1)  # old group -> the new group holding most of its items
        # an empty old group (the spare column) keeps its place where there is one: its column is
        # zero, and an unchanged layout is copied rather than remapped
        own = torch.arange(R_old, device=self.device).clamp_max(n_columns - 1)
        mapping = torch.where(counts.sum(1) > 0, mapping, own)
        moved = torch.nonzero(mapping[old] != lab)[:, 0]
        if not near.CS.worth_moving(moved.numel()):
            return None
        same_groups = R_old == n_columns and bool(
            (mapping == torch.arange(R_old, device=self.device)).all())
        remap = None
        if not same_groups:
            remap = torch.zeros(R_old, n_columns, dtype=self.dtype, device=self.device)
            remap[torch.arange(R_old, device=self.device), mapping] = 1
        source, target = mapping[old[moved]], lab[moved]
        return [CS_old.moved(remap, moved, source, target) for CS_old in (near.CS, near.CSv)]


class HardProducts:
    """The products ``C S`` (``F x P x R``) of a hard one-hot selection ``S`` with each split's
    ``C`` of the training (``part=0``) or the validation part (``part=1``) of ``problem``, as
    the search reads them: the normal equations' ``G = S^T C S`` (:meth:`gram`), ``C S psi``
    for every split's shared values (:meth:`times`), the rows of some items (:meth:`rows`), and
    an update after items moved (:meth:`moved`, when :meth:`worth_moving`)."""

    n_columns: int

    def __init__(self, part, problem):
        self.part, self.problem = part, problem

    def gram(self, lab):
        raise NotImplementedError

    def times(self, psi, items=slice(None)):
        """``(C S psi)[:, items]`` for every split's shared values ``psi`` (``F x R``), the
        items a slice (all by default)."""
        raise NotImplementedError

    def rows(self, items):
        raise NotImplementedError

    def worth_moving(self, n_moved):
        raise NotImplementedError

    def moved(self, remap, items, source, target):
        """The products after ``items`` moved from groups ``source`` to ``target`` (groups
        numbered after ``remap``, the old columns onto the new; None: unchanged)."""
        raise NotImplementedError


class ProductsThroughC(HardProducts):
    """``C S`` stored, ``F x P x R``: for more samples than inputs."""

    def __init__(self, CS, part, problem):
        super().__init__(part, problem)
        self.CS = CS
        self.n_columns = CS.shape[-1]

    def gram(self, lab):
        F, R = self.CS.shape[0], self.n_columns
        return torch.zeros(F, R, R, dtype=self.CS.dtype, device=self.CS.device).index_add_(
            1, lab, self.CS)

    def times(self, psi, items=slice(None)):
        return (self.CS[:, items] @ psi[..., None])[..., 0]

    def rows(self, items):
        return self.CS[:, items]

    def worth_moving(self, n_moved):
        # moving the rows of C is memory-bound, O(F d) per item; from scratch the products are
        # O(F P min(n, d)) in dense matrix products: past a quarter of that, recompute
        pb = self.problem
        d = pb.n_inputs
        return 4 * n_moved * d <= pb.n_items * min(pb.longest_part, d)

    def moved(self, remap, items, source, target):
        # each old group's column onto its new group (a copy where the labels kept theirs)
        CS = self.CS.clone() if remap is None else self.CS @ remap
        C = (self.problem.C_tr, self.problem.C_va)[self.part]
        F, d, R = CS.shape[0], self.problem.n_inputs, CS.shape[-1]
        flat = CS.view(F, -1)
        block = max(1, _MOVED_BLOCK // d)  # moved items per block of the updates
        arange_d = torch.arange(d, device=CS.device)
        for start in range(0, items.numel(), block):
            part = slice(start, start + block)
            k = items[part] % d
            # flat positions in CS of (row (o, k''), column) for the d rows of the item's
            # output o; the item's row k' of C moves from its old column to its new one
            rows = ((items[part] - k)[:, None] + arange_d) * R
            values = C[:, :, k].transpose(1, 2).reshape(F, -1)
            flat.index_add_(1, (rows + target[part][:, None]).reshape(-1), values)
            flat.index_add_(1, (rows + source[part][:, None]).reshape(-1), values, alpha=-1)
        return ProductsThroughC(CS, self.part, self.problem)


# ProductsThroughSamples.rows multiplies per output row when the items lie in at most one row
# per this many items
_ROWS_PER_LINE = 16


class ProductsThroughSamples(HardProducts):
    """``C S = X^T (X S)`` kept as ``X S`` and the centred samples ``X`` (each split's part padded
    with zero rows to the longest, ``n``): for fewer samples than inputs, where it is smaller
    than ``C S`` by ``d / n`` and a moved item changes ``n`` numbers per split instead of ``d``.
    At a million entries and 80 samples, 40 MB instead of 480 MB.

    ``XS`` is laid out ``m x R x F x n`` (output row, group, split, sample), so that the sums of
    one output row's group are contiguous rows of ``m R x F n`` that moves add to and subtract
    from; ``problem.X_parts`` is ``F x n x d`` and ``problem.X_columns`` the same numbers as
    ``d x F n``."""

    def __init__(self, XS, part, problem):
        super().__init__(part, problem)
        self.XS = XS
        self.n_columns = XS.shape[1]

    @classmethod
    def from_labels(cls, onehot, part, problem):
        m, d = problem.n_outputs, problem.n_inputs
        R = onehot.shape[1]
        # (X S)[s, (o, j)] sums the columns of X in group j of output row o
        St = onehot.reshape(m, d, R).transpose(1, 2)  # (m, R, d)
        XS = St @ problem.X_columns[part]  # (m, R, F n)
        F = problem.n_splits
        return cls(XS.reshape(m, R, F, -1), part, problem)

    def gram(self, lab):
        m, R, F, n = self.XS.shape
        A = self.XS.permute(2, 1, 0, 3).reshape(F, R, m * n)
        return A @ A.transpose(1, 2)

    def times(self, psi, items=slice(None)):
        d = self.problem.n_inputs
        start, stop, _ = items.indices(self.problem.n_items)
        first, last = start // d, -(-stop // d)  # the output rows the items lie in
        u = torch.einsum("ojfs,fj->fos", self.XS[first:last], psi)  # (F, rows, n)
        out = (u @ self.problem.X_parts[self.part]).reshape(psi.shape[0], -1)
        return out[:, start - first * d:stop - first * d]

    def rows(self, items):
        d = self.problem.n_inputs
        X = self.problem.X_parts[self.part]
        o, k = items // d, items % d
        lines, where = torch.unique(o, return_inverse=True)
        if lines.numel() * _ROWS_PER_LINE > items.numel():
            # items of many output rows: each item's row of X S gathered (q x R x F x n)
            return torch.einsum("fsq,qjfs->fqj", X[:, :, k], self.XS[o])
        # items of a few output rows (one, for a network's local linear model of a dense
        # layer: 4,608 items whose gathered rows were 1 GB a call): one product per row
        F, R = X.shape[0], self.n_columns
        out = torch.empty(F, items.numel(), R, dtype=X.dtype, device=X.device)
        for i, line in enumerate(lines.tolist()):
            mine = torch.nonzero(where == i)[:, 0] if lines.numel() > 1 else slice(None)
            out[:, mine] = X[:, :, k[mine]].transpose(1, 2) @ self.XS[line].permute(1, 2, 0)
        return out

    def worth_moving(self, n_moved):
        # a moved item adds and subtracts F n numbers; from scratch costs one product of
        # O(F n d m R): moving is cheaper for up to about a tenth of the items (measured at
        # 16 x 16 and 32 x 32 images)
        return 10 * n_moved <= self.problem.n_items

    def moved(self, remap, items, source, target):
        m, R, F, n = self.XS.shape
        if remap is None:
            XS = self.XS.clone()
        else:
            R = remap.shape[1]
            XS = (remap.T @ self.XS.reshape(m, -1, F * n)).reshape(m, R, F, n)
        flat = XS.view(m * R, F * n)
        d = self.problem.n_inputs
        columns = self.problem.X_columns[self.part]
        block = max(1, _MOVED_BLOCK // (F * n))
        for start in range(0, items.numel(), block):
            part = slice(start, start + block)
            o, k = items[part] // d, items[part] % d
            values = columns[k]  # the item's input column leaves one group for another
            flat.index_add_(0, o * R + target[part], values)
            flat.index_add_(0, o * R + source[part], values, alpha=-1)
        return ProductsThroughSamples(XS, self.part, self.problem)


def _explained(quadratic, linear, tol=1e-12):
    """``(b^T Q^+ b summed over the columns of b, rank of Q)`` for a symmetric PSD ``Q``:
    the squared norm a least-squares fit explains, by eigenvalues (rank-deficient ``Q``, as
    for a hypothesis with an empty block or collinear inputs, keeps its range only)."""
    lam, V = torch.linalg.eigh(quadratic)
    keep = lam > tol * max(float(lam[-1]), 1e-300)
    proj = V[:, keep].T @ linear
    return float(((proj ** 2).sum(-1) / lam[keep]).sum()), int(keep.sum())


def span_test(X, Y, labels, *, fit_intercept):
    """Whether the data describe a map in the span of the sharing ``labels``: the p-value of
    the F-test of ``Y = X W^T + b + noise`` with ``W`` tied by ``labels`` against an untied
    ``W`` (Gaussian noise of one variance). ``1.0`` is returned when the sharing restricts
    nothing (as many free values as the untied map), ``nan`` when the test has no residual
    degrees of freedom (no more samples than inputs). The residuals are floored at ``1e-12``
    of ``||Y||^2``, so noise-free data in the span are not rejected for rounding errors.

    A map in the span of a sharing ``H`` has one value per block of ``H`` (blocks whose values
    coincide included), so its own sharing coarsens ``H``: a test that does not reject says the
    data give no reason to look beyond ``H``'s coarsenings.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_inputs)
    Y : tensor of shape (n_samples, n_outputs)
    labels : tensor of shape (n_outputs * n_inputs,)
        Canonical labels of the entries of ``W``, row-major.
    fit_intercept : bool
    """
    return SpanTests(X, Y, fit_intercept=fit_intercept).of(labels)["p_value"]


class SpanTests:
    """How well the sharings of one data set explain it: the span test of each
    (:func:`span_test`), the fraction of the targets' variance its tied map explains, and
    whether that map explains more than chance (the F-test of the tied map against no map).

    The untied map's fit is computed once (``O(n d^2 + d^3)``), each sharing's from its
    block quadratics.
    """

    def __init__(self, X, Y, *, fit_intercept):
        if fit_intercept:
            X, Y = X - X.mean(0), Y - Y.mean(0)
        self.n, self.m = Y.shape
        self.df_samples = self.n - int(fit_intercept)
        self.C, self.B = X.T @ X, X.T @ Y
        self.yy = float((Y * Y).sum())
        # fewer samples than inputs: no residual degrees of freedom to test with (the
        # eigenvalues below would be of a d x d matrix, 14 s at the 4,608 inputs of a
        # network's local linear model)
        self.testable = self.df_samples >= X.shape[1]
        if self.testable:
            self.fit_free, self.rank = _explained(self.C, self.B)

    def of(self, labels):
        """``{"statistic", "p_value", "explained", "signal_p_value", "n_free"}`` of the
        sharing ``labels`` (canonical labels of ``W``'s entries, a tensor): the span test's F
        statistic and p-value (``nan`` where it cannot be computed, p = 1 where the sharing
        restricts nothing), the fraction of the targets' (centred) squared norm the tied map
        explains, and the p-value of the F-test of the tied map against none."""
        from scipy.stats import f as f_distribution

        nan = float("nan")
        out = {"statistic": nan, "p_value": nan, "explained": nan, "signal_p_value": nan,
               "n_free": nan}
        if not self.testable or self.yy <= 0:
            return out
        m, yy = self.m, self.yy
        K = int(labels.max()) + 1
        if K == labels.numel():  # every entry free: the untied fit, already known
            fit_tied, rank_tied = self.fit_free, m * self.rank
        else:
            G, c = block_quadratics(self.C[None], self.B.T.reshape(1, -1), labels, K, m)
            fit_tied, rank_tied = _explained(G[0], c[0][:, None])
        rss_free = max(yy - self.fit_free, 1e-12 * yy)
        rss_tied = max(yy - fit_tied, rss_free)
        out["explained"] = 1.0 - rss_tied / yy
        out["n_free"] = rank_tied
        tied_df = m * self.df_samples - rank_tied
        if rank_tied > 0 and tied_df > 0:
            signal = ((yy - rss_tied) / rank_tied) / (rss_tied / tied_df)
            out["signal_p_value"] = float(f_distribution.sf(signal, rank_tied, tied_df))
        resid_df = m * (self.df_samples - self.rank)
        if resid_df <= 0:
            return out
        extra_df = m * self.rank - rank_tied
        if extra_df <= 0:
            out["statistic"], out["p_value"] = 0.0, 1.0
            return out
        statistic = ((rss_tied - rss_free) / extra_df) / (rss_free / resid_df)
        out["statistic"] = float(statistic)
        out["p_value"] = float(f_distribution.sf(statistic, extra_df, resid_df))
        return out
