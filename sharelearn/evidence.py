"""The marginal likelihood (evidence) of a tied linear-Gaussian model.

With a Gaussian prior ``psi ~ N(0, alpha^-1 I)`` on the ``r`` shared values and Gaussian noise of
precision ``beta`` on the ``N`` scalar observations, the shared values integrate out in closed
form (Bayesian linear regression). With ``G = Phi^T Phi``, ``c = Phi^T y`` and ``yy = ||y||^2``,
the tied design's sufficient statistics (see :mod:`sharelearn.models.gaussian`)::

    -2 log p(y | A, alpha, beta) = -N log beta - r log alpha + log det(alpha I + beta G)
                                   + beta ||y - Phi m||^2 + alpha ||m||^2 + N log(2 pi),
    m = beta (alpha I + beta G)^-1 c        (the posterior mean of psi).

``-2 log p`` is in the same units as the validation objective's ``N log MSE``, so the penalties of
the outer objective keep their meaning (the code length of the assignment is then the prior over
partitions). The precisions are chosen by type-II maximum likelihood with MacKay's fixed-point
updates on the eigenvalues of ``G``; by the envelope theorem the gradient of the optimised evidence
with respect to the selection matrix is its partial gradient at the optimum, so the updates run
without autograd. With an intercept the data are centred first (the intercept has a flat prior
and is profiled out; this changes the evidence by the same amount for every partition). The shared
means have no intercept but one common level of all features, which lies in the span of every
sharing's design: it is integrated out under a flat prior (:func:`integrate_level`), so that the
evidence is the same wherever the data's origin lies and a sharing pays the prior for the contrasts
between its groups only.
"""

from __future__ import annotations

import math

import torch

__all__ = ["fit_precisions", "integrate_level", "neg2_log_evidence", "noise_floor",
           "noise_floor_fraction"]


def _eig(G):
    lam, Q = torch.linalg.eigh(G)
    return lam.clamp_min(0), Q


def noise_floor_fraction(dtype):
    """The smallest noise variance either objective resolves, as a fraction of the targets' mean
    square: far below any real noise (1e-10 in float64: a noise 1e-5 of the targets' spread),
    and far above the rounding of the sufficient statistics' quadratic forms in ``dtype`` (1e-15
    to 1e-14 of the mean square on noise-free 10 x 10 image filters in float64). Below it, data
    count as noise-free: every sharing that explains them is exact, and the penalties choose."""
    return max(1e-10, 1e3 * torch.finfo(dtype).eps)


def noise_floor(yy, n_obs, dtype):
    """The smallest noise variance the precisions may reach (:func:`noise_floor_fraction` of
    the targets' mean square). On noise-free data the type-II maximum likelihood noise
    precision grows without bound; here it stops."""
    return noise_floor_fraction(dtype) * (yy / n_obs).clamp_min(torch.finfo(dtype).tiny)


def fit_precisions(G, c, yy, n_obs, *, n_iter=100, tol=1e-7):
    """Type-II maximum-likelihood ``(alpha, beta)`` for each quadratic in a batch (no gradient).

    The noise precision ``beta`` is capped at the inverse of :func:`noise_floor` (noise-free
    data) and the prior precision ``alpha`` kept within 24 orders of magnitude of the data's
    scale, so that both stay finite on degenerate problems (a constant design, fewer
    observations than groups).

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
        beta_max = 1.0 / noise_floor(yy, n_obs, G.dtype)
        beta = 1.0 / scale
        alpha = torch.ones_like(beta) / scale
        for _ in range(n_iter):
            mt = ct / (lam + (alpha / beta)[..., None])
            sse = (yy - 2 * (mt * ct).sum(-1) + (lam * mt**2).sum(-1)).clamp_min(1e-300)
            gamma = (beta[..., None] * lam / (alpha[..., None] + beta[..., None] * lam)).sum(-1)
            new_alpha = gamma.clamp_min(1e-12) / (mt**2).sum(-1).clamp_min(1e-300)
            new_beta = torch.minimum((n_obs - gamma).clamp_min(1e-12) / sse, beta_max)
            new_alpha = new_alpha.clamp(1e-12 / scale, 1e12 / scale)
            done = ((new_alpha - alpha).abs() <= tol * alpha).all() and \
                ((new_beta - beta).abs() <= tol * beta).all()
            alpha, beta = new_alpha, new_beta
            if done:
                break
    return alpha, beta


def integrate_level(G, c, yy, n_obs):
    """The statistics of the evidence with the targets' common level integrated out under a flat
    prior, for the shared means (a design whose one input is the constant 1, so that each
    group's design column sums to its entry of ``G``'s diagonal).

    The model is ``x = mu + psi_g + noise`` with ``psi ~ N(0, alpha^-1 I)`` and ``mu`` free: the
    evidence of the targets' contrasts, whose design columns and targets are centred by their
    grand mean: ``G - v v^T / N``, ``c - v sum(y) / N``, ``yy - sum(y)^2 / N`` with ``v =
    diag(G)``, and ``N - 1`` observations. It is the same whatever offset the data have, and a
    sharing of ``k`` groups pays the prior for its ``k - 1`` contrasts only. Centring the data
    and keeping the zero-mean prior instead charged one group too many (the centred level sits
    at 0, where the prior puts it for free: one group paid nothing, two paid for both), and
    merged groups the data told apart (:mod:`tests.test_evidence`).

    Returns ``(G, c, yy, n_obs, level)``; ``level(m)`` is the level's estimate given the
    groups' values ``m`` (added to them, it gives the fitted means).
    """
    v = torch.diagonal(G, dim1=-2, dim2=-1)
    total = c.sum(-1)  # every observation lies in one group
    G = G - v[..., :, None] * v[..., None, :] / n_obs
    c = c - v * (total / n_obs)[..., None]
    yy = yy - total**2 / n_obs

    def level(m):
        return ((total - (v * m).sum(-1)) / n_obs)[..., None]

    return G, c, yy, n_obs - 1, level


def stable_cholesky(H):
    """Cholesky factor of a batch of symmetric positive definite matrices; where rounding makes
    one fail (a huge ratio of noise to prior precision on a singular design), a jitter of a
    growing multiple of the dtype's resolution times the mean diagonal is added to that one."""
    L, info = torch.linalg.cholesky_ex(H)
    if not bool((info != 0).any()):
        return L
    eps = torch.finfo(H.dtype).eps
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    size = torch.diagonal(H, dim1=-2, dim2=-1).abs().mean(-1, keepdim=True)[..., None]
    for k in range(1, 8):
        failed = (info != 0)[..., None, None]
        jitter = torch.where(failed, (10.0 ** (2 * k)) * eps * size, torch.zeros_like(size))
        L, info = torch.linalg.cholesky_ex(H + jitter * eye)
        if not bool((info != 0).any()):
            return L
    raise ValueError("The evidence of this problem cannot be computed: its posterior precision "
                     "is not positive definite even with a jitter (are X or y non-finite or "
                     "degenerate?).")


def neg2_log_evidence(G, c, yy, n_obs, alpha, beta, *, return_mean=False):
    """``-2 log p(y | A, alpha, beta)`` (batched, differentiable in ``G`` and ``c``), and with
    ``return_mean`` also the posterior mean of the shared values.

    An empty group (a zero row and column of ``G``) contributes nothing: its ``log alpha`` in the
    log-determinant cancels its prior normalisation.
    """
    r = G.shape[-1]
    eye = torch.eye(r, dtype=G.dtype, device=G.device)
    H = alpha[..., None, None] * eye + beta[..., None, None] * G
    L = stable_cholesky(H)
    m = beta[..., None] * torch.cholesky_solve(c[..., None], L)[..., 0]
    sse = yy - 2 * (m * c).sum(-1) + (m[..., None, :] @ G @ m[..., :, None])[..., 0, 0]
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    value = (-n_obs * torch.log(beta) - r * torch.log(alpha) + logdet + beta * sse
             + alpha * (m**2).sum(-1) + n_obs * math.log(2 * math.pi))
    return (value, m) if return_mean else value
