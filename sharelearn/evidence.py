"""The marginal likelihood (evidence) of a tied linear-Gaussian model.

With a Gaussian prior ``psi ~ N(0, alpha^-1 I)`` on the ``r`` shared values and Gaussian noise of
precision ``beta`` on the ``N`` scalar observations, the shared values integrate out in closed
form (Bayesian linear regression). With ``G = Phi^T Phi``, ``c = Phi^T y`` and ``yy = ||y||^2``,
the tied design's sufficient statistics (see :mod:`sharelearn.inner`)::

    -2 log p(y | A, alpha, beta) = -N log beta - r log alpha + log det(alpha I + beta G)
                                   + beta ||y - Phi m||^2 + alpha ||m||^2 + N log(2 pi),
    m = beta (alpha I + beta G)^-1 c        (the posterior mean of psi).

``-2 log p`` is in the same units as the validation objective's ``N log MSE``, so the penalties of
the outer objective keep their meaning (the code length of the assignment is then the prior over
partitions). The precisions are chosen by type-II maximum likelihood with MacKay's fixed-point
updates on the eigenvalues of ``G``; by the envelope theorem the gradient of the optimised evidence
with respect to the selection matrix is its partial gradient at the optimum, so the updates run
without autograd. With an intercept the data are centred first (the intercept has a flat prior
and is profiled out; this changes the evidence by the same amount for every partition).
"""

from __future__ import annotations

import math

import torch

__all__ = ["fit_precisions", "neg2_log_evidence"]


def _eig(G):
    lam, Q = torch.linalg.eigh(G)
    return lam.clamp_min(0), Q


def fit_precisions(G, c, yy, n_obs, *, n_iter=100, tol=1e-7):
    """Type-II maximum-likelihood ``(alpha, beta)`` for each quadratic in a batch (no gradient).

    Parameters
    ----------
    G : tensor (..., r, r), c : tensor (..., r), yy : tensor (...)
    n_obs : float
        Number of scalar observations ``N``.
    """
    with torch.no_grad():
        lam, Q = _eig(G)
        ct = (Q.transpose(-1, -2) @ c[..., None])[..., 0]
        scale = (yy / n_obs).clamp_min(1e-300)
        beta = 1.0 / scale
        alpha = torch.ones_like(beta) / scale
        for _ in range(n_iter):
            mt = ct / (lam + (alpha / beta)[..., None])
            sse = (yy - 2 * (mt * ct).sum(-1) + (lam * mt**2).sum(-1)).clamp_min(1e-300)
            gamma = (beta[..., None] * lam / (alpha[..., None] + beta[..., None] * lam)).sum(-1)
            new_alpha = gamma.clamp_min(1e-12) / (mt**2).sum(-1).clamp_min(1e-300)
            new_beta = (n_obs - gamma).clamp_min(1e-12) / sse
            done = ((new_alpha - alpha).abs() <= tol * alpha).all() and \
                ((new_beta - beta).abs() <= tol * beta).all()
            alpha, beta = torch.minimum(new_alpha.clamp_min(1e-12), 1e12 / scale), new_beta
            if done:
                break
    return alpha, beta


def neg2_log_evidence(G, c, yy, n_obs, alpha, beta):
    """``-2 log p(y | A, alpha, beta)`` (batched, differentiable in ``G`` and ``c``).

    An empty group (a zero row and column of ``G``) contributes nothing: its ``log alpha`` in the
    log-determinant cancels its prior normalisation.
    """
    r = G.shape[-1]
    eye = torch.eye(r, dtype=G.dtype, device=G.device)
    H = alpha[..., None, None] * eye + beta[..., None, None] * G
    L = torch.linalg.cholesky(H)
    m = beta[..., None] * torch.cholesky_solve(c[..., None], L)[..., 0]
    sse = yy - 2 * (m * c).sum(-1) + (m[..., None, :] @ G @ m[..., :, None])[..., 0, 0]
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return (-n_obs * torch.log(beta) - r * torch.log(alpha) + logdet + beta * sse
            + alpha * (m**2).sum(-1) + n_obs * math.log(2 * math.pi))
