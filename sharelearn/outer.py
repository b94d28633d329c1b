"""The outer loop, one for every model: relax, anneal, round, search.

One *restart* optimises the relaxed outer objective (the model's relaxed data term plus the
penalties of :mod:`sharelearn.penalties`) over soft selection matrices from its own random logits
(Adam, annealed softmax temperature, early stopping on the objective), rounds the result by
row-wise argmax, and hands it to the discrete search (:func:`sharelearn.search.local_search` with
the model's moves). :func:`discover` runs several restarts plus searches from ``init`` (the fully
shared partition by default) and from the model's extra starts; the estimator keeps the partition
with the best objective and has the model refit it. The model is anything that follows the
protocol of :class:`sharelearn.models.base.SharingModel`.

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
from .partition import canonical_labels
from .search import StartResult
from .search.hypotheses import rank_hypotheses, search_starts

__all__ = ["StartResult", "discover", "relax"]

def relax(model, penalties, seeds, *, n_columns, max_iter, learning_rate, temperature, tol,
          n_iter_no_change):
    """Relax one restart per seed, all in one batch.

    Restart ``i`` starts from standard normal logits drawn from ``seeds[i]`` and stops by its own
    :class:`~sharelearn.relaxation.EarlyStopping`; stopped restarts leave the batch. The value of
    a batch of soft selections is ``model.relaxation(S0)(S) + penalties.soft(S)``. Returns one
    ``(soft selection, objective curve, steps)`` per seed, numpy.
    """
    dev, B = model.device, len(seeds)
    draws = [torch.randn(model.n_items, n_columns, dtype=model.dtype,
                         generator=torch.Generator(device="cpu").manual_seed(int(seed)))
             for seed in seeds]
    logits = torch.stack(draws).to(dev).requires_grad_(True)
    optimizer = relaxation.Adam(logits, lr=learning_rate)
    t_start, t_end = temperature
    with torch.no_grad():
        first = relaxation.soft_selection(logits, t_start)
    data_term = model.relaxation(first)
    stop = relaxation.EarlyStopping(tol, n_iter_no_change, B)
    active = np.arange(B)  # the restarts still in the batch, in batch order
    soft, n_iter = [None] * B, np.zeros(B, dtype=np.int64)
    for step in range(max_iter):
        T = relaxation.temperature_at(step, max_iter, t_start, t_end)
        S = relaxation.soft_selection(logits, T)
        values = data_term(S) + penalties.soft(S)
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


class _Progress:
    """One progress bar for a whole fit (``verbose``): each hypothesis's coarsenings, each
    batch of relaxations, each start's item-wise search and each coarsening searched again is
    one step, counted as soon as it is known to come; the text after the bar says what ran last
    (a search's rounds) and the best objective so far."""

    def __init__(self, verbose):
        self.bar, self.best = None, None
        if verbose:
            from tqdm.auto import tqdm

            # every step is shown: a fit has tens of steps, each one worth seeing
            self.bar = tqdm(total=0, desc="sharelearn fit", unit="step", mininterval=0)

    def expect(self, n):
        if self.bar is not None and n:
            self.bar.total += n
            self.bar.refresh()

    def step(self, what, value=None):
        if self.bar is None:
            return
        if value is not None and (self.best is None or value < self.best):
            self.best = value
        best = "" if self.best is None else f"; best objective {self.best:.6g}"
        self.bar.set_postfix_str(f"{what}{best}", refresh=False)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def discover(model, penalties, seeds, *, n_relax, n_columns, search, search_max_iter, start=None,
             extra_starts=(), hypotheses=None, hypothesis_start=True, relax_if_explained=True,
             exceptions=True, n_jobs=None, verbose=0, **relax_params):
    """All the starts of one fit: ``n_relax`` relaxations, ``start``, ``extra_starts``, and the
    hypotheses' own searches.

    Parameters
    ----------
    model : SharingModel
        Prepared (:meth:`~sharelearn.models.base.SharingModel.prepare`).
    penalties : Penalties
    seeds : sequence of int
        One seed per relaxation (the first ``n_relax`` are used).
    n_relax : int
        Number of relaxation restarts.
    n_columns : int
        Candidate groups of the relaxation.
    search : bool
        Whether to improve each rounded partition by :func:`~sharelearn.search.local_search`.
    search_max_iter : int
    start : array-like of shape (n_items,) or None
        The partition searched from besides the relaxations; None is the fully shared one.
    extra_starts : sequence of array-like of shape (n_items,)
        More partitions to search from, after ``start`` (unless a hypothesis replaced it).
    hypotheses : dict or None
        Named structured partitions (description -> labels, e.g.
        :func:`~sharelearn.symmetry.shift_hypotheses`). They change the objective: a partition
        that coarsens one of them is charged the smaller of its item-wise and block-wise
        penalties (:mod:`sharelearn.search.coarsening`), and every result's value includes it.
        With ``search``, the coarsenings of the two best-scoring hypotheses are searched, before
        the item-wise searches and again from the best result's nearest coarsening
        (``StartResult.kind`` ``"coarsening: <description>"``).
    hypothesis_start : bool
        Search item by item from the best coarsening of the hypotheses if it scores better than
        ``start`` (``StartResult.kind`` ``"hypothesis: <description>"``): instead of ``start``
        and ``extra_starts`` where ``model.explains`` its hypothesis or
        ``model.hypothesis_replaces_start()``, else besides them.
    exceptions : bool
        Whether a closed form's hypotheses are searched with exceptions (items outside their
        block's group, :mod:`sharelearn.search.exceptions`) and partitions near a coarsening
        are charged through them; networks' hypotheses never are.
    relax_if_explained : bool
        Whether the relaxations run when the leading hypothesis replaces the start because
        ``model.explains`` it (False: they are skipped, as ``n_restarts="auto"`` asks).
    n_jobs : int or None
        joblib workers: relaxation batches and searches are spread over them where the model
        allows it (``parallel_searches``).
    verbose : int
        Show a progress bar over the searches.
    **relax_params
        Passed to :func:`relax`: ``max_iter``, ``learning_rate``, ``temperature``, ``tol``,
        ``n_iter_no_change``.

    Returns
    -------
    objective : the model's hard objective
    results : list of StartResult
        Relaxations first, then ``start``, then the extra starts.
    hypotheses : list of dict
        The closed forms' structured hypotheses scored, best first
        (:meth:`~sharelearn.search.hypotheses.HypothesisRanking.table`); empty without
        hypotheses and for networks.
    """
    progress = _Progress(verbose)
    try:
        return _discover(model, penalties, seeds, n_relax, n_columns, start, extra_starts,
                         hypotheses, hypothesis_start, relax_if_explained, search,
                         search_max_iter, exceptions, n_jobs, progress, relax_params)
    finally:
        progress.close()


def _discover(model, penalties, seeds, n_relax, n_columns, start, extra_starts, hypotheses,
              hypothesis_start, relax_if_explained, search, search_max_iter, exceptions, n_jobs,
              progress, relax_params):
    objective = model.hard_objective(penalties)
    init = (model.shared_start(model.n_items) if start is None else canonical_labels(start))
    hyp = None
    if hypotheses:
        hyp = rank_hypotheses(model, objective, hypotheses, penalties, init,
                              exceptions=exceptions, search=search, max_iter=search_max_iter,
                              hypothesis_start=hypothesis_start, progress=progress)
        if hyp.explained and not relax_if_explained:
            n_relax = 0

    seeds = [int(s) for s in seeds[:n_relax]]
    workers = max(1, effective_n_jobs(n_jobs)) if model.parallel_searches else 1
    batch_size = model.relax_batch or model.batch_size(n_columns)
    n_batches = max(min(workers, n_relax), -(-n_relax // max(1, batch_size))) if n_relax else 0
    batches = [list(b) for b in np.array_split(np.arange(n_relax), n_batches)] if n_relax else []
    relax_params = dict(relax_params, n_columns=n_columns)
    progress.expect(len(batches))
    if workers == 1:
        relaxed = []
        for i, b in enumerate(batches):
            relaxed.append(relax(model, penalties, [seeds[i] for i in b], **relax_params))
            progress.step(f"relaxations, batch {i + 1} of {len(batches)}")
    else:
        relaxed = Parallel(n_jobs=n_jobs)(
            delayed(relax)(model, penalties, [seeds[i] for i in b], **relax_params)
            for b in batches)
        for _ in batches:
            progress.step("relaxations")
    relaxed = [r for batch in relaxed for r in batch]

    rounded = [canonical_labels(soft.argmax(1)) for soft, _, _ in relaxed]
    results = search_starts(model, objective, rounded, init, extra_starts, hyp, search=search,
                            max_iter=search_max_iter, workers=workers, n_jobs=n_jobs,
                            progress=progress)
    for result, (soft, curve, n_iter) in zip(results[:len(relaxed)], relaxed, strict=True):
        result.soft, result.curve, result.n_iter = soft, curve, n_iter  # relaxations first
    return objective, results, [] if hyp is None else hyp.table()
