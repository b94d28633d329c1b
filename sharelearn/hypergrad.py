"""Hypergradients of a bi-level problem by implicit differentiation.

For an inner problem ``w*(h) = argmin_w f(w, h)`` and an outer loss ``g(w, h)``, the implicit
function theorem gives the total derivative of ``g(w*(h), h)``::

    dg/dh = d_h g - (d_h d_w f) H^-1 d_w g,      H = d_w d_w f  at  w*(h)

This module only answers "how is the outer loss differentiated": it knows nothing of networks or
of sharing. ``w`` is a flat 1-D tensor and ``h`` any tensor; ``f`` and ``g`` are functions of
``(w, h)`` returning scalars. Hessian-vector products go through :mod:`torch.func`, so ``H`` is
never formed except by the ``"exact"`` solver.

Four solvers approximate ``p = H^-1 v``:

``"exact"``
    Forms ``H`` and solves the linear system (least squares if it is singular). Cost ``O(n^3)``:
    small models only.
``"cg"``
    Conjugate gradient. It stops early when a direction of non-positive curvature appears
    (the Hessian of a non-convex loss need not be positive definite) and keeps its iterate.
``"neumann"``
    Truncated Neumann series ``p = alpha * sum_{k=0}^{K} v_k`` with ``v_0 = v`` and
    ``v_{k+1} = v_k - alpha H v_k``, which converges to ``H^-1 v`` when ``0 < alpha < 2 /
    lambda_max(H)``. Without the factor ``alpha`` (as in the paper's public code) the series
    sums to ``(alpha H)^-1 v``: the right direction but ``1 / alpha`` times too long.
``"identity"``
    ``p = v``: the first-order approximation ``H ~ I``, one gradient evaluation and no HVP.
"""

from __future__ import annotations

import torch
from torch.func import grad, grad_and_value, jacrev, vjp

__all__ = ["SOLVERS", "hessian_vector_product", "implicit_hypergradient", "inverse_hvp"]

SOLVERS = ("exact", "cg", "neumann", "identity")


def hessian_vector_product(inner_loss, w, h):
    """Return ``v -> H v`` for ``H`` the Hessian of ``inner_loss(., h)`` at ``w``.

    The gradient is linearised once (reverse over reverse) and the returned function reuses the
    linearisation, so each product costs about one backward pass.
    """
    _, pullback = vjp(lambda w_: grad(inner_loss, argnums=0)(w_, h), w.detach())

    def hvp(v):
        return pullback(v)[0]

    return hvp


def inverse_hvp(hvp, v, method="cg", *, n_iter=20, alpha=1.0, tol=1e-10, hessian_fn=None):
    """Approximate ``H^-1 v`` with one of :data:`SOLVERS`.

    Parameters
    ----------
    hvp : callable
        ``u -> H u`` for 1-D tensors ``u`` shaped like ``v``.
    v : torch.Tensor of shape (n,)
    method : {"exact", "cg", "neumann", "identity"}, default="cg"
    n_iter : int, default=20
        Conjugate-gradient iterations, or the number ``K`` of Neumann terms after the first.
    alpha : float, default=1.0
        Step-size factor of the Neumann series.
    tol : float, default=1e-10
        Conjugate gradient stops when the squared residual norm falls below
        ``tol * ||v||^2``.
    hessian_fn : callable or None
        ``() -> H`` (``n x n``), required by ``method="exact"``.

    Returns
    -------
    p : torch.Tensor of shape (n,)
    """
    if method == "identity":
        return v
    if method == "exact":
        if hessian_fn is None:
            raise ValueError("method='exact' needs hessian_fn to form the Hessian.")
        H = hessian_fn()
        try:
            return torch.linalg.solve(H, v)
        except RuntimeError:  # singular Hessian: the least-norm solution is still meaningful
            return torch.linalg.lstsq(H, v.unsqueeze(1)).solution.squeeze(1)
    if method == "neumann":
        term, total = v, v
        for _ in range(n_iter):
            term = term - alpha * hvp(term)
            total = total + term
        return alpha * total
    if method == "cg":
        x = torch.zeros_like(v)
        r = v.clone()
        d = r.clone()
        rr = r @ r
        stop = tol * rr
        for _ in range(n_iter):
            if rr <= stop:
                break
            Hd = hvp(d)
            curvature = d @ Hd
            if curvature <= 0:
                # Negative curvature: CG's step would be meaningless. On the very first step the
                # best available answer is the first-order one.
                return v if torch.count_nonzero(x) == 0 else x
            step = rr / curvature
            x = x + step * d
            r = r - step * Hd
            rr_new = r @ r
            d = r + (rr_new / rr) * d
            rr = rr_new
        return x
    raise ValueError(f"Unknown hypergradient solver {method!r}; expected one of {SOLVERS}.")


def implicit_hypergradient(inner_loss, outer_loss, w, h, method="cg", *, n_iter=20, alpha=1.0,
                           tol=1e-10):
    """Total derivative of ``outer_loss(w*(h), h)`` in ``h`` by the implicit function theorem.

    Parameters
    ----------
    inner_loss, outer_loss : callable
        ``(w, h) -> scalar tensor``. ``w`` is assumed to be (near) a stationary point of
        ``inner_loss(., h)``.
    w : torch.Tensor of shape (n,)
        The inner solution.
    h : torch.Tensor
        The hyper-parameters.
    method, n_iter, alpha, tol
        The linear solver of :func:`inverse_hvp`.

    Returns
    -------
    hypergradient : torch.Tensor shaped like ``h``
    outer_value : float
        ``outer_loss(w, h)``.

    Examples
    --------
    A quadratic inner problem ``f = (w - h)^2 / 2`` has ``w* = h``, so ``g = w^2`` has total
    derivative ``2 h``:

    >>> import torch
    >>> from sharelearn.hypergrad import implicit_hypergradient
    >>> f = lambda w, h: 0.5 * ((w - h) ** 2).sum()
    >>> g = lambda w, h: (w ** 2).sum()
    >>> h = torch.tensor([1.0, -2.0], dtype=torch.float64)
    >>> implicit_hypergradient(f, g, h.clone(), h, method="exact")[0].tolist()
    [2.0, -4.0]
    """
    if method not in SOLVERS:
        raise ValueError(f"Unknown hypergradient solver {method!r}; expected one of {SOLVERS}.")
    w = w.detach()
    h = h.detach()
    (g_w, g_h), value = _grad_and_value(outer_loss, w, h)
    hvp = None if method in ("identity", "exact") else hessian_vector_product(inner_loss, w, h)
    p = inverse_hvp(hvp, g_w, method, n_iter=n_iter, alpha=alpha, tol=tol,
                    hessian_fn=lambda: _hessian(inner_loss, w, h))
    # d_h (d_w f . p): the mixed second derivative applied to p, by one more pullback
    _, pullback = vjp(lambda h_: grad(inner_loss, argnums=0)(w, h_), h)
    mixed = pullback(p.detach())[0]
    return g_h - mixed, value


def _hessian(inner_loss, w, h):
    """``d_w d_w inner_loss`` at ``(w, h)``, reverse over reverse.

    ``torch.func.hessian`` is forward over reverse, and torch's forward-mode rules are built with
    the deprecated ``torch.jit.script``, which warns on first use.
    """
    return jacrev(jacrev(inner_loss, argnums=0), argnums=0)(w, h)


def _grad_and_value(fn, w, h):
    grads, value = grad_and_value(fn, argnums=(0, 1))(w, h)
    return grads, float(value)
