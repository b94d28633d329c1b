"""The outer loop: relax, anneal, round, then search, for one restart.

One *restart* optimises the relaxed outer objective over soft selection matrices from its own
random logits (Adam, annealed softmax temperature, early stopping on the objective), rounds the
result by row-wise argmax, and hands it to the exact discrete search of :mod:`sharelearn.search`.
The estimator runs several restarts (in parallel with joblib) plus one search started from the
fully shared partition, and keeps the partition with the best objective.
"""

from __future__ import annotations

import numpy as np
import torch

from . import relaxation
from .evidence import fit_precisions, neg2_log_evidence
from .partition import canonical_labels
from .search import local_search

__all__ = ["relaxed_objective", "run_restart"]


def relaxed_objective(problem, S, *, nuclear, code_length, entropy, nuclear_kind="nuclear",
                      objective="validation"):
    """The outer objective of a soft selection matrix (equals the search's at a hard one).

    ``objective="validation"``: ``N log(validation MSE)``; ``"evidence"``: ``-2 log p(y | S)``
    of the expected model on all the data (``problem`` then has one split whose training part
    is everything), with the precisions at their type-II maximum likelihood.
    """
    if objective == "evidence":
        G, c = problem.normal_equations(S)
        yy, n_obs = problem.yy_tr[0], float(problem.n_tr[0]) * problem.n_outputs
        alpha, beta = fit_precisions(G[0].detach(), c[0].detach(), yy, n_obs)
        value = neg2_log_evidence(G[0], c[0], yy, n_obs, alpha, beta)
    else:
        mse = problem.validation_mse(S).clamp_min(problem.mse_floor)
        value = problem.n_obs_train * torch.log(mse)
    return value + relaxation.penalty(S, nuclear=nuclear, code_length=code_length,
                                      entropy=entropy, nuclear_kind=nuclear_kind)


def _relax(problem, *, n_columns, seed, max_iter, learning_rate, temperature, tol,
           n_iter_no_change, penalties):
    dev = problem.device
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    logits = torch.randn(problem.n_items, n_columns, generator=gen, dtype=problem.dtype)
    logits = logits.to(dev).requires_grad_(True)
    optimizer = relaxation.Adam(logits, lr=learning_rate)
    t_start, t_end = temperature
    stop = relaxation.EarlyStopping(tol, n_iter_no_change)
    n_iter = 0
    for step in range(max_iter):
        T = relaxation.temperature_at(step, max_iter, t_start, t_end)
        S = relaxation.soft_selection(logits, T)
        value = relaxed_objective(problem, S, **penalties)
        if not torch.isfinite(value):
            raise FloatingPointError(
                f"the relaxed objective became {float(value.detach())} at outer step {step}; "
                "try dtype='float64' or a smaller learning_rate.")
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        n_iter = step + 1
        if stop(float(value.detach()), S):
            break
    with torch.no_grad():
        S = relaxation.soft_selection(logits, relaxation.temperature_at(
            n_iter - 1, max_iter, t_start, t_end))
    return S.detach(), np.asarray(stop.curve), n_iter


def run_restart(problem, objective, *, start, seed, n_columns, max_iter, learning_rate,
                temperature, tol, n_iter_no_change, penalties, search, search_max_iter):
    """One restart. ``start="relax"`` relaxes from random logits; ``start="shared"`` begins the
    search from the fully shared partition (every item in one group)."""
    torch.manual_seed(int(seed))
    if start == "shared":
        labels = np.zeros(problem.n_items, dtype=np.int64)
        soft, curve, n_iter = None, np.empty(0), 0
    else:
        soft, curve, n_iter = _relax(
            problem, n_columns=n_columns, seed=seed, max_iter=max_iter,
            learning_rate=learning_rate, temperature=temperature, tol=tol,
            n_iter_no_change=n_iter_no_change, penalties=penalties)
        labels = canonical_labels(soft.argmax(1).cpu().numpy())
        soft = soft.cpu().numpy()
    rounded = labels
    n_moves, converged = 0, True
    if search:
        labels, value, n_moves, converged = local_search(objective, labels,
                                                         max_iter=search_max_iter)
    else:
        value = objective.state(labels)["value"]
    return dict(labels=labels, rounded=rounded, value=float(value), soft=soft, curve=curve,
                n_iter=n_iter, n_moves=n_moves, converged=converged, start=start,
                seed=int(seed))
