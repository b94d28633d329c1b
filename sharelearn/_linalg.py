"""Linear algebra of tied linear maps shared by the closed forms and the structured search.

Below both :mod:`sharelearn.models.gaussian` (the tied linear-Gaussian problem) and
:mod:`sharelearn.search.coarsening` (the hypotheses' block equations), so that the search needs
nothing from the models to build and solve its normal equations.
"""

from __future__ import annotations

import torch

__all__ = ["block_quadratics", "diagonal_solve", "ridge_solve"]

# block_quadratics stacks copies of X^T X for several output rows up to this many entries
_SMALL_CHUNK = 2**12


def _jitter(diag):
    """A jitter for each entry of the diagonals ``diag`` of a batch of systems: a fraction above
    the dtype's resolution of the entry itself (so float32 stays solvable too), and the
    resolution of the systems' mean entry, which keeps the value of an empty group at 0.

    Relative to each entry, not to their mean: a jitter of the mean entry shrank the value of
    a small group by the size of a large one (the zeros of a convolution hold most items), and
    on noise-free data that shrinkage was fitted as misfit (``TiedLinearGaussian.mse_floor``).
    """
    eps = torch.finfo(diag.dtype).eps
    rel = max(1e-10, 100 * eps)
    size = diag.abs()
    return rel * size + eps * (size.mean(-1, keepdim=True) + 1)


def diagonal_solve(g, c, alpha):
    """:func:`ridge_solve` for a diagonal ``G`` given by its diagonal ``g``."""
    return c / (g + alpha + _jitter(g))


def ridge_solve(G, c, alpha, *, overwrite=False):
    """Solve ``(G + alpha I) psi = c`` (batched); a tiny jitter keeps empty groups at 0.

    ``overwrite=True`` adds the ridge to ``G``'s diagonal in place (for a ``G`` the caller built
    for this solve alone), which saves a copy of the whole batch."""
    diag = torch.diagonal(G, dim1=-2, dim2=-1)
    ridge = alpha + _jitter(diag)
    if overwrite:
        diag.add_(ridge)
        A = G
    else:
        eye = torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
        A = G + ridge[..., None] * eye
    return torch.linalg.solve(A, c[..., None])[..., 0]


def block_quadratics(C, b, lab, K, m):
    """``G_H = sum_o S_o^T C S_o`` (``F x K x K``) and ``c_H = b S`` (``F x K``) of the hard
    partition ``lab`` (``m * d`` items), by scatter-adds of ``C``'s entries: ``O(F m d^2)``
    whatever ``K``. ``C`` is added as it is, one output row after another (a copy of ``C`` per
    row cost five times the additions at 16 x 16 images); only small ``C`` are stacked for a
    few rows at once, to save calls."""
    F, d = C.shape[0], C.shape[-1]
    L = lab.reshape(m, d)
    G = torch.zeros(F, K * K, dtype=C.dtype, device=C.device)
    rows = max(1, _SMALL_CHUNK // (d * d))
    source = C.reshape(F, -1) if rows == 1 else None
    for o in range(0, m, rows):
        Lo = L[o:o + rows]
        idx = (Lo[:, :, None] * K + Lo[:, None, :]).reshape(-1)
        n = Lo.shape[0]
        G.index_add_(1, idx, source if rows == 1 else
                     C[:, None].expand(F, n, d, d).reshape(F, -1))
    c = torch.zeros(F, K, dtype=b.dtype, device=b.device).index_add_(1, lab, b)
    return G.reshape(F, K, K), c


# -- many moves from one inverse -----------------------------------------------------------------
# A move takes a block of entries (or a whole group) from group s to group t of the normal
# equations G psi = c (F systems of R x R, the last group a spare empty one). G changes by
# u m^T + m u^T + g u u^T with u = e_t - e_s, m the block's coupling to every group and g its own
# curvature, and c by v u. From one inverse of G, each move's solution then costs a 3 x 3 solve
# (Woodbury; the third column sets the diagonal of a group the move empties or fills from the
# spare, whose entry in the inverted system is a stand-in), O(R) per move instead of O(R^3).
# The jitter of the two changed diagonal entries is the current one, so the solutions agree
# with the exact ones to about 1e-10 of the system: good to screen, not to decide.


def spare_inverse(G, c, alpha):
    """The inverse of the ridged systems ``G`` (``F x R x R``, float64, the last group the
    spare empty one, whose diagonal is set to the mean of the others), their solutions ``psi``
    (``F x R``) and that stand-in diagonal less the ridge ``alpha`` (``F``): what a group
    filled from the spare takes off its diagonal."""
    A = G + torch.diag_embed(alpha + _jitter(torch.diagonal(G, dim1=1, dim2=2)))
    d0 = torch.diagonal(A, dim1=1, dim2=2)[:, :-1].mean(-1)
    A[:, -1, -1] = d0
    inv = torch.linalg.inv(A)
    inv = (inv + inv.transpose(1, 2)) / 2
    return inv, (inv @ c[..., None])[..., 0], d0 - alpha


def moved_solutions(inv, psi, d0, s, t, m, g, v, emptied):
    """Solutions (``n x F x R``) after each of ``n`` moves ``s[k] -> t[k]`` with coupling ``m``
    (``n x F x R``), curvature ``g`` and right-hand side ``v`` (``n x F``); ``emptied``: the
    move leaves ``s`` empty. From :func:`spare_inverse`'s ``inv, psi, d0``. A block alone in its
    group moved to the spare changes nothing: its rows are not meaningful (callers use the
    current solution for them)."""
    n, F, R = m.shape
    new = t == R - 1
    q = torch.where(new, t, s)
    # (an emptied group's diagonal needs only to stay away from zero: its row is zero)
    delta = torch.where(new, -d0[:, None], torch.where(emptied, d0[:, None], 0.0)).T  # (n, F)

    def column(j):  # columns j of the inverse, (n, F, R)
        return inv[:, :, j].permute(2, 0, 1)

    a_u = column(t) - column(s)
    AU = torch.stack([a_u, torch.einsum("fij,nfj->nfi", inv, m), column(q)], -1)
    z = psi[None] + v[..., None] * a_u

    # G' - G = U V^T with U = [u, m, e_q], V = [m + g u, u, delta e_q]
    def project(y):  # V^T y for y of (n, F, R, k)
        k = y.shape[-1]

        def at(j):
            return y.gather(2, j[:, None, None, None].expand(n, F, 1, k))[:, :, 0]

        uy = at(t) - at(s)
        my = torch.einsum("nfr,nfrk->nfk", m, y)
        return torch.stack([my + g[..., None] * uy, uy, delta[..., None] * at(q)], -2)

    K = torch.eye(3, dtype=inv.dtype, device=inv.device) + project(AU)
    w = torch.linalg.solve(K, project(z[..., None]))
    return z - (AU @ w)[..., 0]


def moved_squared_errors(sol, s, t, Gv, cv, yy, mv, gv, vv):
    """Squared errors (``n x F``) of moved solutions ``sol`` (:func:`moved_solutions`) on the
    part whose normal equations are ``Gv, cv`` with ``||y||^2 = yy``; ``mv, gv, vv``: the
    moved blocks' coupling, curvature and right-hand side there."""
    n, F, _ = sol.shape

    def at(j):
        return sol.gather(2, j[:, None, None].expand(n, F, 1))[..., 0]

    ud = at(t) - at(s)
    quad = ((torch.einsum("fij,nfj->nfi", Gv, sol) * sol).sum(-1)
            + 2 * ud * (mv * sol).sum(-1) + gv * ud**2)
    return yy - 2 * ((cv[None] * sol).sum(-1) + vv * ud) + quad
