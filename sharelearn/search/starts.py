"""Starts of the discrete search besides the relaxations, and the untied values of a group.

On strongly correlated inputs (smooth signals, image patches) the fully shared partition is a
poor start: its first useful split moves hundreds of entries at once, which no local move finds.
:func:`ridge_clusters` gives a start from two value clusters of a ridge estimate of the map;
:func:`input_correlation` tells when the inputs are that correlated. :func:`untied_values` fits
the items of one group freely, which the untied split of :mod:`sharelearn.search.moves` uses.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["input_correlation", "one_dim_kmeans", "ridge_clusters", "untied_values"]

# untied_values builds the rows' systems in chunks of at most this many entries (32 MiB)
_UNTIED_CHUNK = 2**22


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
    # the rows' systems in chunks of at most _UNTIED_CHUNK entries (a group filling most of
    # 256 rows of 256 inputs has systems of 247 x 247: 125 MB for all rows at once)
    free = torch.empty_like(rhs)
    step = max(1, _UNTIED_CHUNK // (width * width))
    for a in range(0, rows.size, step):
        c, mk = cols_t[a:a + step], mask[a:a + step]
        A = C[c[:, :, None], c[:, None, :]]
        A.mul_(mk[:, :, None]).mul_(mk[:, None, :])
        A.diagonal(dim1=-2, dim2=-1).add_(1 - mk + lam * mk)
        free[a:a + step] = torch.linalg.solve(A, rhs[a:a + step, :, None])[..., 0]
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
    R = C.mul_(scale[:, None]).mul_(scale[None, :])  # in place: C is this call's own d x d
    v = torch.ones(R.shape[0], dtype=R.dtype, device=R.device)
    for _ in range(n_iter):
        v = R @ v
        v = v / v.norm().clamp_min(torch.finfo(R.dtype).tiny)
    return float(v @ R @ v) / R.shape[0]


def ridge_clusters(problem, k=2, ridge=1e-2):
    """A start for the search: the entries of a ridge estimate of the untied map, in ``k``
    intervals of value (:func:`one_dim_kmeans`).

    The ridge is ``ridge`` times the mean diagonal of ``X^T X`` (training statistics averaged
    over the splits). On correlated inputs the fully shared partition is a poor start: its first
    useful split moves hundreds of entries at once, which no local move finds; two clusters of
    a ridge estimate already separate the large weights from the rest.
    """
    C = problem.C_tr.mean(0)
    B = problem.B_tr.mean(0)
    # the ridge on the diagonal in place: C is this call's own d x d, and no identity is formed
    torch.diagonal(C).add_(_ridge_amount(C, ridge))
    W = torch.linalg.solve(C, B).T.reshape(-1)
    return one_dim_kmeans(W.cpu().numpy(), k)


def one_dim_kmeans(x, k, n_iter=50):
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
