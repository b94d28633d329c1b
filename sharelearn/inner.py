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
solve, so the hypergradient is exact. Everything works on sufficient statistics (``X^T X``, ``X^T Y``,
``||Y||^2`` per split), never on a ``P x P`` matrix or an ``(n * n_outputs) x P`` design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SplitStatistics", "TiedLinearGaussian"]


@dataclass
class SplitStatistics:
    """Sufficient statistics of one train/validation split (torch tensors).

    ``C`` is ``X^T X`` (``d x d``), ``B`` is ``X^T Y`` (``d x m``), ``yy`` is ``||Y||^2`` and ``n`` the
    number of samples, for the training part (``*_tr``) and the validation part (``*_va``),
    both centred with the training means when an intercept is fitted.
    """

    C_tr: torch.Tensor
    B_tr: torch.Tensor
    yy_tr: torch.Tensor
    n_tr: int
    C_va: torch.Tensor
    B_va: torch.Tensor
    yy_va: torch.Tensor
    n_va: int
    x_mean: torch.Tensor
    y_mean: torch.Tensor


def _moments(X, Y, x_mean, y_mean):
    Xc = X - x_mean
    Yc = Y - y_mean
    return Xc.T @ Xc, Xc.T @ Yc, (Yc * Yc).sum()


class TiedLinearGaussian:
    """Tied linear map ``Y = X W^T + b`` with squared loss, on precomputed split statistics.

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
        self.splits = [self._split_statistics(X, Y, tr, va) for tr, va in splits]
        # Number of scalar training observations per split: the unit in which one extra free
        # parameter costs about one (see ``objective``).
        self.n_obs_train = float(np.mean([s.n_tr for s in self.splits])) * self.n_outputs
        self.C_diag = [torch.diagonal(s.C_tr) for s in self.splits]
        self.device, self.dtype = X.device, X.dtype
        # keeps log(MSE) finite on noise-free data; far below any real noise level
        scale = float(np.mean([float(s.yy_va) / (s.n_va * self.n_outputs) for s in self.splits]))
        self.mse_floor = 1e-12 * scale + 1e-300
        self.C_va_diag = [torch.diagonal(s.C_va) for s in self.splits]

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
        return SplitStatistics(C_tr, B_tr, yy_tr, len(tr), C_va, B_va, yy_va, len(va),
                               x_mean, y_mean)

    # -- the inner problem -------------------------------------------------------------------
    def _times_C(self, S, C):
        """Row ``(o, k)`` of the result is ``sum_k' C[k, k'] S[(o, k'), :]``: ``C`` applied to every
        output's block of ``S`` (``P x r``) in one matrix product, ``O(m d^2 r)``."""
        m, d = self.n_outputs, self.n_inputs
        r = S.shape[1]
        CS = C @ S.reshape(m, d, r).permute(1, 0, 2).reshape(d, m * r)
        return CS.reshape(d, m, r).permute(1, 0, 2).reshape(m * d, r)

    def _normal_equations(self, S, C, C_diag, B):
        """``G(S)`` and ``c(S)`` of the expected training loss, for ``S`` of shape (P, r)."""
        CS = self._times_C(S, C)
        # Expected loss: the diagonal of C moves from the cross terms onto G's diagonal.
        DS = S * C_diag.repeat(self.n_outputs)[:, None]
        G = S.T @ (CS - DS) + torch.diag(DS.sum(0))
        c = S.T @ B.T.reshape(-1)
        return G, c

    def solve(self, S, split):
        """Inner solution ``psi*(S)`` on the training part of one split (differentiable)."""
        st = self.splits[split]
        G, c = self._normal_equations(S, st.C_tr, self.C_diag[split], st.B_tr)
        r = G.shape[0]
        # a tiny jitter keeps empty columns solvable when alpha == 0
        jitter = 1e-10 * (torch.diagonal(G).mean().abs() + 1)
        eye = torch.eye(r, dtype=G.dtype, device=G.device)
        return torch.linalg.solve(G + (self.alpha + jitter) * eye, c)

    def expected_sse(self, S, psi, split, part="va"):
        """Expected squared error of ``S, psi`` on one part of one split."""
        st = self.splits[split]
        C, B, yy = (st.C_va, st.B_va, st.yy_va) if part == "va" else (st.C_tr, st.B_tr, st.yy_tr)
        C_diag = self.C_va_diag[split] if part == "va" else self.C_diag[split]
        W = (S @ psi).reshape(self.n_outputs, self.n_inputs)
        var = ((S * psi**2).sum(1)).reshape(self.n_outputs, self.n_inputs) - W**2
        fit = yy - 2 * (W * B.T).sum() + (W @ C * W).sum()
        return fit + (var * C_diag[None, :]).sum()

    def validation_mse(self, S):
        """Mean over splits of the validation mean squared error (per scalar observation)."""
        total = 0.0
        for f, st in enumerate(self.splits):
            psi = self.solve(S, f)
            total = total + self.expected_sse(S, psi, f) / (st.n_va * self.n_outputs)
        return total / len(self.splits)

    # -- hard partitions ---------------------------------------------------------------------
    def hard_statistics(self, labels, n_columns):
        """Exact quadratics of a hard partition, for every split, with ``n_columns`` groups.

        Returns a list (one entry per split) of dicts with ``G``, ``c`` (training) and ``Gv``,
        ``cv`` (validation), and ``CS``/``CSv``: row ``i`` of ``C S`` for item ``i = (o, k)``, i.e.
        ``sum_{k'} C[k, k'] [label(o, k') == j]`` (``P x n_columns``), which is what a one-item move
        needs. Cost ``O(m d^2 n_columns)`` per split in dense matrix products, never ``P x P``.
        """
        P = self.n_items
        dev = self.splits[0].C_tr.device
        lab = torch.as_tensor(labels, device=dev)
        onehot = torch.zeros(P, n_columns, dtype=self.dtype, device=dev)
        onehot[torch.arange(P, device=dev), lab] = 1
        out = []
        for st in self.splits:
            entry = {}
            for tag, C, B in (("", st.C_tr, st.B_tr), ("v", st.C_va, st.B_va)):
                CS = self._times_C(onehot, C)
                entry["G" + tag] = onehot.T @ CS
                entry["c" + tag] = onehot.T @ B.T.reshape(-1)
                entry["CS" + tag] = CS
            out.append(entry)
        return out
