"""The outer loop: relax, anneal, round, then search.

One *restart* optimises the relaxed outer objective over soft selection matrices from its own
random logits (Adam, annealed softmax temperature, early stopping on the objective), rounds the
result by row-wise argmax, and hands it to the exact discrete search of :mod:`sharelearn.search`.
:func:`discover` runs several restarts plus one search started from the fully shared partition,
and the estimator keeps the partition with the best objective.

The restarts relax *together*: their logits are one ``B x P x r`` tensor and every step is one
batched evaluation of the objective, each restart with its own early stopping. On small problems
a step costs about the same for one restart as for several (the time goes to per-operation
overhead, not arithmetic), so this is where most of a small fit's time is saved. Batches are
bounded in memory and spread over joblib workers when ``n_jobs`` asks for it; the searches then
run in parallel, once per distinct rounded partition (restarts that round alike share one).
"""

from __future__ import annotations

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs

from . import relaxation
from .evidence import fit_precisions, neg2_log_evidence
from .partition import canonical_labels
from .search import local_search

__all__ = ["discover", "relax", "relaxed_objective"]


def relaxed_objective(problem, S, *, nuclear, code_length, entropy, nuclear_kind="nuclear",
                      objective="validation"):
    """The outer objective of a soft selection matrix (equals the search's at a hard one).

    ``objective="validation"``: ``N log(validation MSE)``; ``"evidence"``: ``-2 log p(y | S)``
    of the expected model on all the data (``problem`` then has one split whose training part
    is everything), with the precisions at their type-II maximum likelihood. ``S`` is ``P x r``
    (a scalar value) or a batch ``B x P x r`` (one value per matrix).
    """
    if objective == "evidence":
        G, c = problem.normal_equations(S)
        G, c = G[..., 0, :, :], c[..., 0, :]
        yy = problem.yy_tr[0].expand(G.shape[:-2])
        n_obs = float(problem.n_tr[0]) * problem.n_outputs
        alpha, beta = fit_precisions(G.detach(), c.detach(), yy, n_obs)
        value = neg2_log_evidence(G, c, yy, n_obs, alpha, beta)
    else:
        mse = problem.validation_mse(S).clamp_min(problem.mse_floor)
        value = problem.n_obs_train * torch.log(mse)
    return value + relaxation.penalty(S, nuclear=nuclear, code_length=code_length,
                                      entropy=entropy, nuclear_kind=nuclear_kind)


def relax(problem, seeds, *, n_columns, max_iter, learning_rate, temperature, tol,
          n_iter_no_change, penalties):
    """Relax one restart per seed, all in one batch.

    Restart ``i`` starts from standard normal logits drawn from ``seeds[i]`` and stops by its own
    :class:`~sharelearn.relaxation.EarlyStopping`; stopped restarts leave the batch. Returns one
    ``(soft selection, objective curve, steps)`` per seed, numpy.
    """
    dev, B = problem.device, len(seeds)
    draws = [torch.randn(problem.n_items, n_columns, dtype=problem.dtype,
                         generator=torch.Generator(device="cpu").manual_seed(int(seed)))
             for seed in seeds]
    logits = torch.stack(draws).to(dev).requires_grad_(True)
    optimizer = relaxation.Adam(logits, lr=learning_rate)
    t_start, t_end = temperature
    stop = relaxation.EarlyStopping(tol, n_iter_no_change, B)
    active = np.arange(B)  # the restarts still in the batch, in batch order
    soft, n_iter = [None] * B, np.zeros(B, dtype=np.int64)
    for step in range(max_iter):
        T = relaxation.temperature_at(step, max_iter, t_start, t_end)
        S = relaxation.soft_selection(logits, T)
        values = relaxed_objective(problem, S, **penalties)
        v = values.detach().cpu().numpy()
        if not np.isfinite(v).all():
            raise FloatingPointError(
                f"the relaxed objective became {v[~np.isfinite(v)][0]} at outer step {step}; "
                "try dtype='float64' or a smaller learning_rate.")
        optimizer.zero_grad()
        values.sum().backward()  # the restarts are independent: each gets its own gradient
        optimizer.step()
        n_iter[active] = step + 1
        done = stop(v, S, active)
        if step == max_iter - 1:
            done[:] = True
        if done.any():
            with torch.no_grad():
                final = relaxation.soft_selection(logits[torch.as_tensor(np.flatnonzero(done),
                                                                         device=dev)], T)
            for j, i in enumerate(active[done]):
                soft[i] = final[j].cpu().numpy()
            if done.all():
                break
            logits = optimizer.keep(torch.as_tensor(np.flatnonzero(~done), device=dev))
            active = active[~done]
    if max_iter == 0:  # no steps: the random logits are rounded at the final temperature
        with torch.no_grad():
            final = relaxation.soft_selection(logits, relaxation.temperature_at(
                0, 0, t_start, t_end))
        soft = [S_i.cpu().numpy() for S_i in final]
    return [(soft[i], np.asarray(stop.curves[i]), int(n_iter[i])) for i in range(B)]


def _search(objective, labels, search, search_max_iter):
    if search:
        return local_search(objective, labels, max_iter=search_max_iter)
    return labels, objective.state(labels)["value"], 0, True


def _progress(iterable, total, verbose):
    if not verbose:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="SharingDiscoverer searches")


def _search_in_turn(objective, starts, search, search_max_iter, verbose):
    """The searches from ``starts`` (a dict: key -> labels) one after the other, last key first
    (the shared start, unless a restart rounded to it). A start that is where an earlier search
    converged is not searched again: the search stops where no move of any kind improves, so it
    would stop there at once (with the same value, computed by the same code)."""
    keys = list(starts)
    found, ends = {}, {}
    for k in _progress(keys[::-1], len(keys), verbose):
        if k in ends:
            found[k] = (*ends[k], 0, True)
            continue
        found[k] = _search(objective, starts[k], search, search_max_iter)
        labels, value, _, converged = found[k]
        if converged:
            ends.setdefault(labels.tobytes(), (labels, value))
    return found


def discover(problem, objective, seeds, *, n_relax, batch_size, search, search_max_iter,
             start=None, extra_starts=(), n_jobs=None, verbose=0, **relax_params):
    """All the starts of one fit: ``n_relax`` relaxations and one given partition (by default
    the fully shared one).

    Parameters
    ----------
    problem : TiedLinearGaussian
    objective : HardObjective or EvidenceObjective
        The objective of the discrete search.
    seeds : sequence of int
        One seed per relaxation (the first ``n_relax`` are used).
    n_relax : int
        Number of relaxation restarts (``len(seeds)``).
    batch_size : int
        Most restarts relaxed together in one batch (bounds the memory).
    search : bool
        Whether to improve each rounded partition by :func:`~sharelearn.search.local_search`.
    search_max_iter : int
    start : array-like of shape (n_items,) or None
        The partition searched from besides the relaxations; None is the fully shared one.
    extra_starts : sequence of array-like of shape (n_items,)
        More partitions to search from, after ``start``.
    n_jobs : int or None
        joblib workers: relaxation batches and searches are spread over them.
    verbose : int
        Show a progress bar over the searches.
    **relax_params
        Passed to :func:`relax`.

    Returns
    -------
    list of dict
        One per start (relaxations first, then the shared start): the final ``labels``, their
        ``value``, the ``rounded`` partition the search began from, and ``soft``, ``curve``,
        ``n_iter``, ``n_moves``, ``converged``, ``start``, ``seed``.
    """
    seeds = [int(s) for s in seeds[:n_relax]]
    workers = max(1, effective_n_jobs(n_jobs))
    n_batches = max(min(workers, n_relax), -(-n_relax // max(1, batch_size))) if n_relax else 0
    batches = [list(b) for b in np.array_split(np.arange(n_relax), n_batches)] if n_relax else []
    if len(batches) == 1:
        relaxed = [relax(problem, seeds, **relax_params)]
    else:
        relaxed = Parallel(n_jobs=n_jobs)(
            delayed(relax)(problem, [seeds[i] for i in b], **relax_params) for b in batches)
    relaxed = [r for batch in relaxed for r in batch]

    starts = [canonical_labels(soft.argmax(1)) for soft, _, _ in relaxed]
    starts.append(np.zeros(problem.n_items, dtype=np.int64) if start is None
                  else canonical_labels(start))
    starts += [canonical_labels(s) for s in extra_starts]
    distinct = {}
    for labels in starts:
        distinct.setdefault(labels.tobytes(), labels)
    keys = list(distinct)
    if workers == 1:
        found = _search_in_turn(objective, distinct, search, search_max_iter, verbose)
    else:
        tasks = (delayed(_search)(objective, distinct[k], search, search_max_iter)
                 for k in keys)
        found = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
        found = dict(zip(keys, _progress(found, len(keys), verbose), strict=True))

    results = []
    for i, rounded in enumerate(starts):
        labels, value, n_moves, converged = found[rounded.tobytes()]
        soft, curve, n_iter = relaxed[i] if i < n_relax else (None, np.empty(0), 0)
        kind = "relax" if i < n_relax else "shared" if i == n_relax else "extra"
        results.append(dict(labels=labels, rounded=rounded, value=float(value), soft=soft,
                            curve=curve, n_iter=n_iter, n_moves=n_moves, converged=converged,
                            start=kind,
                            seed=seeds[i] if i < n_relax else None))
    return results
