"""Training tied networks: the inner steps, the search's retrains, and the refit with skorch.

The search's objective for networks (:class:`RetrainScorer`) is a cheaper, documented proxy of
the outer objective: the validation loss of the *hard*-shared network retrained for
``search_steps`` full-batch Adam steps from each of ``search_inits`` fixed initialisations (the
best validation loss over checkpoints every 10 steps and over the initialisations, i.e. an
early-stopped retrain with restarts), plus the hard-partition penalties. Scores are cached per
partition, so the starts of a fit that reach the same partition share them. Two kinds of
partition get more retrains than the fixed initialisations: a proposal made from a trained
partition also starts from that network (:meth:`RetrainScorer.score_from`), and the few
partitions whose scores decide where a search starts also from ``reserve`` initialisations
(:meth:`RetrainScorer.score_more`). The moves that use it
are in :mod:`sharelearn.search.network`.

The final network of the chosen partition is trained further by skorch (callbacks for early
stopping, step-size decay and history) on the training and validation samples, early-stopped on a
separate hold-out, from the best checkpoint of its search retrain from each initialisation; the
refit with the lowest hold-out loss is kept. Before that network is returned, the partition is
checked against its best merge on that hold-out (:func:`holdout_merges`).
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import torch

from .laplace import network_evidence
from .networks import (
    LOSS_FLOOR,
    TiedNetworkProblem,
    _loss_function,
    network_data_term,
    tie_parameters,
)
from .partition import canonical_labels, labels_to_selection
from .search import SearchState
from .search.network import best_candidate, merges

__all__ = ["LOSS_FLOOR", "EvidenceScorer", "RetrainScorer", "check_diverged", "check_finite",
           "holdout_merges", "inner_steps", "refit_best", "refit_network"]

_CHECKPOINT_EVERY = 10
# holdout_merges refits a merge only if the search's retrains of it reached a validation loss at
# most this factor above the partition's: between initialisations the best of three retrains
# of one partition varied by up to about 7% (sum of numbers, L = 4), so a merge 25% worse has
# really lost something, and refitting it would only cost time.
_HOLDOUT_CHECK_RATIO = 1.25
# A training whose loss ends this many times above where it started (or above 1, about the loss
# of predicting the mean of standardised targets, if that is larger) has diverged: at
# inner_learning_rate=1e8 the retrains ended 1e5 to 1e25 times above their start and the refit
# scored -1e5 in standardised units, while at step sizes up to 1 (a hundred times the default)
# losses spiked to at most about a hundred times their start and then came back down.
_DIVERGED = 100.0


def _key(labels):
    """The cache key of a partition: its canonical labels as a tuple."""
    return tuple(canonical_labels(labels).tolist())


def _adam(w, lr):
    return torch.optim.Adam([w], lr=lr)


def check_finite(value, where):
    if not math.isfinite(value):
        raise FloatingPointError(
            f"The training loss became {value} at {where}; lower inner_learning_rate or check "
            "the module and the data.")


def check_diverged(value, start, where, lr):
    """A ``FloatingPointError`` when a training ended with a loss ``value`` far above its
    ``start`` (``_DIVERGED`` times ``max(start, 1)``): Adam's step size ``lr`` is too large."""
    check_finite(value, where)
    if value > _DIVERGED * max(start, 1.0):
        raise FloatingPointError(
            f"The training diverged at {where}: its loss went from {start:.4g} to {value:.4g}. "
            f"Adam's step size was {lr:g}: lower inner_learning_rate ('auto' uses 0.01, or "
            "0.03 for entry-level sharing).")


def _linear_decay(n_steps):
    return lambda k: max(0.0, 1.0 - k / n_steps)


def inner_steps(problem, w, S, optimizer, n_steps, where, schedule=None):
    """``n_steps`` full-batch Adam steps on the training loss at a fixed selection ``S``."""
    S = S.detach()
    value = float("nan")
    for k in range(n_steps):
        optimizer.zero_grad()
        loss = problem.train_loss(w, S)
        value = float(loss.detach())
        check_finite(value, f"{where}, inner step {k}")
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return value


def _penalised(loss_name, loss, labels, penalties, n_obs):
    """The search's objective of a hard partition whose ``loss_name`` loss is ``loss``: the
    data term (:func:`sharelearn.networks.network_data_term`) plus the penalties."""
    return network_data_term(loss_name, n_obs, loss) + penalties.of_labels(labels)


class RetrainScorer:
    """The search's proxy objective of a hard partition, by short retrains (cached).

    ``value(labels) = n_obs * log(best validation loss) + penalties``. Every partition is trained
    for ``steps`` full-batch Adam steps from each of a fixed set of initialisations (the
    ``templates``' parameters, tied by that partition), with the step size decaying linearly to
    0; the validation loss is read every ``_CHECKPOINT_EVERY`` steps and the best checkpoint of
    the best initialisation is kept (an early-stopped retrain with restarts). The same
    initialisations for every partition keep the comparison between partitions free of the
    noise of different random starts. More than one initialisation guards the comparison
    against a retrain that stalls: measured on the sum-of-numbers misses, one short retrain of
    the true partition from the fit's initialisation sometimes ended 10-150 units above its
    retrains from other initialisations, and the search then settled on a partition with a
    spurious extra group.

    Parameters
    ----------
    templates : torch.nn.Module or list of torch.nn.Module
        The untied module at each initialisation (never modified).
    share : dict
        The declaration of the shared parameter.
    data : tuple of tensors
        ``(X_train, y_train, X_val, y_val)`` on the device.
    steps, lr, loss, weight_decay :
        The retrain: number of steps, initial Adam step size, ``"l1"`` or ``"mse"``, weight decay.
    n_obs : int
        Number of scalar training observations (the unit of the data term).
    penalties : Penalties
        The penalties of the hard partition.
    dtype, device :
        Of the selection matrix.
    n_jobs : int, default=1
        Threads that :meth:`prefetch` retrains partitions in. Each retrain is the same
        computation in whichever thread it runs, so the scores do not depend on it.
    reserve : list of torch.nn.Module, default=()
        More initialisations, for the partitions scored by :meth:`score_more` only.
    """

    def __init__(self, templates, share, data, *, steps, lr, loss, weight_decay, n_obs, penalties,
                 dtype, device, n_jobs=1, reserve=()):
        if isinstance(templates, torch.nn.Module):
            templates = [templates]
        self.templates, self.share, self.data = list(templates), share, data
        self.steps, self.lr, self.loss, self.weight_decay = int(steps), lr, loss, weight_decay
        self.n_obs, self.penalties = n_obs, penalties
        self.dtype, self.device = dtype, device
        self.n_jobs = max(1, int(n_jobs))
        self.reserve = list(reserve)
        self._cache, self._more = {}, set()
        self._batchable = True

    def _start(self, template, S, w0=None):
        """The retrain from one initialisation (``template``'s parameters tied by ``S``, or the
        vector ``w0``), ready to run: ``(problem, w, optimizer, schedule)`` (Adam, step size
        decaying linearly to 0 over ``steps``)."""
        problem = TiedNetworkProblem(template, self.share, S, *self.data, loss=self.loss,
                                     weight_decay=self.weight_decay)
        w = (problem.initial_vector() if w0 is None else w0.detach().clone()).requires_grad_(True)
        optimizer = _adam(w, self.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_decay(self.steps))
        return problem, w, optimizer, schedule

    def _retrain_one(self, template, S, w0=None):
        """``(best validation loss, its parameter vector, problem)`` from one initialisation."""
        problem, w, optimizer, schedule = self._start(template, S, w0)
        with torch.no_grad():
            start = float(problem.val_loss(w, S))
        best, best_w = math.inf, w.detach().clone()
        for k in range(0, self.steps, _CHECKPOINT_EVERY):
            inner_steps(problem, w, S, optimizer, min(_CHECKPOINT_EVERY, self.steps - k),
                        f"the search's retrain, step {k}", schedule=schedule)
            with torch.no_grad():
                value = float(problem.val_loss(w, S))
            check_finite(value, f"the search's retrain (validation), step {k}")
            if value < best:
                best, best_w = value, w.detach().clone()
        check_diverged(best, start, "the search's retrain (validation)", self.lr)
        return best, best_w, problem

    def _retrain_batch(self, S, templates=None, starts=()):
        """The retrains from every initialisation (or from ``templates``, then the parameter
        vectors ``starts``) at once, as one batch (``torch.func.vmap`` over the
        initialisations' parameter vectors; Adam is elementwise and the summed loss separates,
        so each initialisation follows its own serial path). Returns one ``(best validation
        loss, its parameter vector, problem)`` per initialisation, or None when the module
        cannot be batched (then they are trained one by one).

        Measured on a 64 -> 36 -> 1 network tied by a 3 x 3 convolution: 32 initialisations
        in 13.5 s as one batch, 29 s one by one.
        """
        templates = self.templates if templates is None else templates
        if len(templates) + len(starts) < 2 or not self._batchable:
            return None
        problem, w, optimizer, schedule = self._batch_start(S, templates, starts)
        train = torch.func.vmap(lambda v: problem.train_loss(v, S))
        val = torch.func.vmap(lambda v: problem.val_loss(v, S))
        best = torch.full((w.shape[0],), math.inf, dtype=w.dtype, device=w.device)
        best_w = w.detach().clone()
        try:
            with torch.no_grad():
                start = val(w)
            for k in range(self.steps):
                optimizer.zero_grad()
                loss = train(w)
                check_finite(float(loss.sum().detach()), f"the search's retrain, step {k}")
                loss.sum().backward()
                optimizer.step()
                schedule.step()
                if (k + 1) % _CHECKPOINT_EVERY == 0 or k + 1 == self.steps:
                    with torch.no_grad():
                        value = val(w)
                    check_finite(float(value.sum()),
                                 f"the search's retrain (validation), step {k}")
                    better = value < best
                    best = torch.where(better, value, best)
                    best_w[better] = w.detach()[better]
        except (RuntimeError, NotImplementedError) as err:
            if "vmap" not in str(err).lower() and "batch" not in str(err).lower():
                raise
            self._batchable = False  # a module that vmap cannot batch: one by one
            return None
        worst = int(torch.argmax(best / start.clamp_min(1.0)))
        check_diverged(float(best[worst]), float(start[worst]),
                       "the search's retrain (validation)", self.lr)
        return [(float(best[i]), best_w[i].clone(), problem) for i in range(w.shape[0])]

    def _batch_start(self, S, templates, starts=()):
        """``(problem, w, optimizer, schedule)`` of the batched retrains: ``w`` stacks the
        initialisations' vectors (``n_inits x n_params``), the templates' then ``starts``."""
        def problem_of(template):
            return TiedNetworkProblem(template, self.share, S, *self.data, loss=self.loss,
                                      weight_decay=self.weight_decay)

        problems = [problem_of(t) for t in templates]
        vectors = [p.initial_vector() for p in problems] + [v.detach() for v in starts]
        w = torch.stack(vectors).requires_grad_(True)
        optimizer = _adam(w, self.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_decay(self.steps))
        return (problems[0] if problems else problem_of(self.templates[0])), w, optimizer, \
            schedule

    def _retrain(self, labels):
        """``(S, runs)`` of a partition: its selection matrix and, best validation loss first,
        one ``(best validation loss, its parameter vector, problem)`` per initialisation."""
        key = _key(labels)
        if key not in self._cache:
            self._cache[key] = self._retrain_all(key)
        return self._cache[key]

    def _retrain_all(self, key, starts=()):
        S = self._selection(key)
        return S, sorted(self._runs(S, self.templates, starts), key=lambda run: run[0])

    def score_from(self, labels, parent):
        """The objective of ``labels``, whose retrains (unless it is already scored) include
        one more: from the parent partition's best retrain, each group of ``labels`` starting
        at the mean of its items' values there (:meth:`warm_start`). A proposal that merges or
        splits a few groups of a trained network then starts next to where its optimum is,
        instead of relying on a random initialisation to reach it: a search step compares the
        two partitions at their own optima, not at a retrain's luck."""
        key = _key(labels)
        if key not in self._cache:
            self._cache[key] = self._retrain_all(key, [self.warm_start(key, parent)])
        return self(labels)

    def warm_start(self, labels, parent):
        """The parameter vector of ``parent``'s best retrain mapped onto ``labels``: each tied
        parameter's group value is the mean of its items' values under ``parent``, every other
        parameter is kept."""
        S_parent, runs = self._retrain(parent)
        _, w, problem = runs[0]
        S = self._selection(labels)
        mass = S.sum(0)
        out = []
        for name, chunk, shape in zip(problem.names, torch.split(w.detach(), problem.sizes),
                                      problem.shapes, strict=True):
            if name in problem.shared_names:
                items = torch.tensordot(S_parent.to(chunk.dtype), chunk.reshape(shape), dims=1)
                psi = torch.tensordot(S.T.to(chunk.dtype), items, dims=1)
                chunk = psi / mass.to(chunk.dtype).reshape((-1,) + (1,) * (psi.dim() - 1))
            out.append(chunk.reshape(-1))
        return torch.cat(out)

    def score_more(self, labels):
        """Retrain ``labels`` from the ``reserve`` initialisations too, keeping the best of
        all (once per partition): for the few partitions whose score decides where the search
        starts (the structured hypotheses), where one more good initialisation matters most."""
        key = _key(labels)
        S, runs = self._retrain(key)
        if self.reserve and key not in self._more:
            self._more.add(key)
            self._cache[key] = S, sorted(runs + self._runs(S, self.reserve),
                                         key=lambda run: run[0])
        return self(labels)

    def _selection(self, labels):
        return torch.as_tensor(labels_to_selection(np.asarray(labels), sparse=False),
                               dtype=self.dtype, device=self.device)

    def _runs(self, S, templates, starts=()):
        """The retrains of ``S`` from ``templates`` and the parameter vectors ``starts``: as
        one batch where the module allows it, else one by one."""
        runs = self._retrain_batch(S, templates, starts)
        if runs is not None:
            return runs
        return ([self._retrain_one(t, S) for t in templates]
                + [self._retrain_one(self.templates[0], S, w0) for w0 in starts])

    def prefetch(self, candidates):
        """Retrain the partitions not yet scored among ``candidates``, in ``n_jobs`` threads
        (torch releases the GIL inside its operations; measured 1.3x faster with 2 threads
        on 2 cores). Scoring them afterwards reads the cache."""
        keys = list(dict.fromkeys(_key(c) for c in candidates))
        keys = [k for k in keys if k not in self._cache]
        if self.n_jobs == 1 or len(keys) < 2:
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=min(self.n_jobs, len(keys)))
        try:
            for key, result in zip(keys, pool.map(self._retrain_all, keys), strict=True):
                self._cache[key] = result
        finally:
            # on an error or Ctrl-C, the queued retrains are dropped, not run first
            pool.shutdown(wait=True, cancel_futures=True)

    def screen(self, candidates, n_inits, steps, n_rows=None):
        """The objective of each candidate from cheaper retrains: ``steps`` steps (the step
        size decaying to 0 over them) from the first ``n_inits`` initialisations, on the first
        ``n_rows`` training samples (all by default; the validation samples are kept). A
        noisier first ranking of many candidates, whose best are then scored in full. Not
        cached, and not the scores of the search."""
        templates = self.templates[:max(1, int(n_inits))]
        saved = self.steps, self.data
        self.steps = max(1, int(steps))
        scale = 1.0
        if n_rows is not None and n_rows < self.data[0].shape[0]:
            rows = slice(0, max(1, int(n_rows)))
            X_train, y_train, X_val, y_val = self.data
            # the evidence's "validation" pair is its training data: subsampled alike
            same = X_val is X_train
            self.data = (X_train[rows], y_train[rows], *((X_train[rows], y_train[rows]) if same
                                                         else (X_val, y_val)))
            if same:  # an evidence of fewer samples, brought to the units of all of them
                scale = X_train.shape[0] / self.data[0].shape[0]
        try:
            values = []
            for labels in candidates:
                labels = canonical_labels(labels)
                best = min(run[0] for run in self._runs(self._selection(labels), templates))
                values.append(scale * self._data_of(best) + self.penalties.of_labels(labels))
        finally:
            self.steps, self.data = saved
        return values

    def _data_of(self, score):
        """The data term of a retrain's score (its validation loss)."""
        return network_data_term(self.loss, self.n_obs, score)

    def best_run(self, labels):
        """``(S, w, problem)`` of the partition's best retrain: its selection matrix, parameter
        vector and inner problem."""
        S, runs = self._retrain(canonical_labels(labels))
        return S, runs[0][1], runs[0][2]

    def validation_loss(self, labels):
        """Best validation loss of the partition's retrains."""
        return self._retrain(labels)[1][0][0]

    def data_value(self, labels):
        """The data term of the partition (without the penalties)."""
        return self._data_of(self.validation_loss(labels))

    def __call__(self, labels):
        labels = canonical_labels(labels)
        return self.data_value(labels) + self.penalties.of_labels(labels)

    def state(self, labels):
        """The search's state of a partition (:class:`sharelearn.search.SearchState`)."""
        labels = canonical_labels(labels)
        return SearchState(labels=labels, value=float(self(labels)))

    def item_gradients(self, labels):
        """Training-loss gradient of each item, untied, at the partition's best retrain
        (numpy, ``n_items x item_size``; see :meth:`TiedNetworkProblem.item_gradients`)."""
        S, runs = self._retrain(labels)
        _, w, problem = runs[0]
        return problem.item_gradients(w, S).detach().cpu().double().numpy()

    def trained_modules(self, labels):
        """Copies of the tied module at the best checkpoint of the partition's retrain from each
        initialisation, best validation loss first."""
        S, runs = self._retrain(labels)
        return [copy.deepcopy(problem.load(w, S)) for _, w, problem in runs]

    def initial_modules(self, labels, n):
        """Copies of the first ``n`` initialisations, tied by the partition (untrained)."""
        S = self._selection(labels)
        return [tie_parameters(copy.deepcopy(t), self.share, S) for t in self.templates[:n]]


class EvidenceScorer(RetrainScorer):
    """The search's objective of a hard partition by the Laplace evidence (no validation split).

    ``value(labels) = -2 log p(y) + penalties``: every partition is trained for ``steps``
    full-batch Adam steps (step size decaying linearly to 0) on the training samples (all the
    fitting samples: ``data`` holds them as both the training and the "validation" pair) from
    each initialisation, and its evidence is the Laplace approximation at the trained weights
    (:func:`sharelearn.laplace.network_evidence`); the initialisation with the highest evidence
    is kept. Parameters as for :class:`RetrainScorer`, plus ``hessian_structure`` (``"full"`` or
    ``"diag"``).
    """

    def __init__(self, *args, hessian_structure, **kwargs):
        super().__init__(*args, **kwargs)
        self.hessian_structure = hessian_structure
        # the fitted precisions of each retrain, by the identity of its parameter vector (which
        # is kept beside them, so the identity is never reused)
        self._precisions = {}

    def _evidence(self, problem, w, S):
        """``-2 log p(y)`` of one trained network; its fitted precisions are kept by ``w``."""
        value, precisions = network_evidence(problem, w, S, problem.X_train, problem.y_train,
                                             loss=self.loss, structure=self.hessian_structure)
        check_finite(value, "the Laplace evidence of the search's retrain")
        self._precisions[id(w)] = (w, precisions)
        return value

    def _retrain_one(self, template, S, w0=None):
        """``(-2 log evidence, trained parameter vector, problem)`` from one initialisation."""
        problem, w, optimizer, schedule = self._start(template, S, w0)
        with torch.no_grad():
            start = float(problem.train_loss(w, S))
        end = inner_steps(problem, w, S, optimizer, self.steps, "the search's retrain",
                          schedule=schedule)
        check_diverged(end, start, "the search's retrain", self.lr)
        w = w.detach().clone()
        return self._evidence(problem, w, S), w, problem

    def _retrain_batch(self, S, templates=None, starts=()):
        """The batched retrains (:meth:`RetrainScorer._retrain_batch`; their "validation" pair
        is the training data, so each keeps its checkpoint of lowest training loss), each
        scored by its Laplace evidence."""
        runs = super()._retrain_batch(S, templates, starts)
        if runs is None:
            return None
        return [(self._evidence(problem, w, S), w, problem) for _, w, problem in runs]

    def _data_of(self, score):
        return score  # the retrain's score is already -2 log p(y)

    def data_value(self, labels):
        """``-2 log p(y)`` of the partition's best retrain."""
        return self._retrain(labels)[1][0][0]

    def precisions(self, labels):
        """The precisions fitted by the evidence of the partition's best retrain: a dict with
        ``alpha`` (the prior's) and, for ``loss="mse"``, ``beta`` (the noise's)."""
        S, runs = self._retrain(labels)
        _, w, problem = runs[0]
        kept = self._precisions.get(id(w))
        if kept is None or kept[0] is not w:
            self._evidence(problem, w, S)
        return dict(self._precisions[id(w)][1])

    def validation_loss(self, labels):
        """The training loss of the partition's best retrain (there is no validation split)."""
        S, runs = self._retrain(labels)
        _, w, problem = runs[0]
        with torch.no_grad():
            return float(problem.loss_fn(problem._shape(problem.output(w, S, problem.X_train)),
                                         problem.y_train))


def holdout_merges(scorer, labels, refit, *, n_obs, max_iter):
    """Confirm the search's partition against its best merge on the early-stopping hold-out.

    The search ranks partitions by retrains scored on the validation rows, and picks the best
    of many: its choice is optimistic, and the retrains' noise (a few units of the objective,
    measured between initialisations) is of the order of one group's penalty, so it can keep a
    spurious extra group. The hold-out rows took no part in that choice. This step refits the
    chosen partition and the merge of two of its groups that the search scored best, scores
    both as ``n_obs * log(hold-out loss) + penalties`` (the search's objective, on the
    hold-out) and keeps the merge if it scores no worse; it repeats from the merge, at most
    ``max_iter`` times. A merge whose retrains' validation loss is more than
    ``_HOLDOUT_CHECK_RATIO`` times the partition's is not refitted (the check stops).

    Parameters
    ----------
    scorer : RetrainScorer
    labels : ndarray of shape (n_items,)
    refit : callable
        ``refit(labels) -> (module, history, hold-out loss)``.
    n_obs : int
        The unit of the data term (as in the search).
    max_iter : int

    Returns
    -------
    labels, (module, history, hold-out loss), n_merged
    """
    labels = canonical_labels(labels)

    def value(labels_, fitted_):
        return _penalised(scorer.loss, fitted_[2], labels_, scorer.penalties, n_obs)

    fitted = refit(labels)
    current = value(labels, fitted)
    for n_merged in range(max_iter):
        # the first partition's merges were scored in the search's last round (cached)
        _, candidate = best_candidate(scorer, merges(labels))
        if candidate is None:
            return labels, fitted, n_merged
        if (scorer.validation_loss(candidate)
                > _HOLDOUT_CHECK_RATIO * scorer.validation_loss(labels)):
            return labels, fitted, n_merged
        other = refit(candidate)
        other_value = value(candidate, other)
        if other_value > current:
            return labels, fitted, n_merged
        labels, fitted, current = candidate, other, other_value
    return labels, fitted, max_iter


def refit_network(module, *, X, y, X_stop, y_stop, lr, loss, weight_decay, max_epochs, patience,
                  device, verbose, decay=None):
    """Train ``module`` (already tied) with skorch, early-stopped on ``(X_stop, y_stop)``.

    ``weight_decay`` applies to every parameter but those named in ``decay`` (a dict of
    parameter names, as in ``named_parameters``, to their own weight decay).

    Returns the trained module and skorch's history as a list of dicts.
    """
    from skorch import NeuralNet, NeuralNetRegressor
    from skorch.callbacks import LRScheduler
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    # the same linear decay as the search's retrains (see RetrainScorer)
    callbacks = [("decay", LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR,
                                       lr_lambda=_linear_decay(max_epochs)))]
    train_split = None
    if X_stop is not None:
        train_split = predefined_split(Dataset(X_stop, y_stop))
        callbacks.append(("stop", _early_stopping()(monitor="valid_loss", patience=patience,
                                                    load_best=True)))
    # class codes train the logits through torch's cross-entropy: skorch's plain NeuralNet
    # (its classifier would read the output as probabilities and needs no extra checks here)
    net_class, criterion = {"l1": (NeuralNetRegressor, torch.nn.L1Loss),
                            "mse": (NeuralNetRegressor, torch.nn.MSELoss),
                            "cross_entropy": (NeuralNet, torch.nn.CrossEntropyLoss)}[loss]
    net = _interruptible(net_class)(
        module, criterion=criterion,
        optimizer=torch.optim.Adam, optimizer__weight_decay=weight_decay, lr=lr,
        optimizer__param_groups=[(name, {"weight_decay": value})
                                 for name, value in (decay or {}).items()],
        max_epochs=max_epochs, batch_size=-1, train_split=train_split, callbacks=callbacks,
        iterator_train=_FullBatch, iterator_valid=_FullBatch, device=device,
        verbose=int(verbose > 1))
    net.set_params(callbacks=callbacks + [("finite", _StopOnNonFinite())])
    start_loss, start_state = math.inf, None
    if X_stop is not None:
        criterion = _loss_function(loss)
        with torch.no_grad():
            out = module(X_stop)
            start_loss = float(criterion(out.reshape(out.shape[0], -1), y_stop))
        start_state = copy.deepcopy(module.state_dict())
    try:
        net.fit(X, y)
    except _Interrupted as err:
        raise err.__cause__ from None  # the user's Ctrl-C, as it was raised
    history = [{k: v for k, v in row.items() if k in ("epoch", "train_loss", "valid_loss")}
               for row in net.history]
    if X_stop is None and history:
        # (with a hold-out, a refit that never beats its start is replaced by the start below)
        check_diverged(history[-1]["train_loss"], history[0]["train_loss"],
                       f"the refit's last epoch ({history[-1]['epoch']})", lr)
    best = min((row.get("valid_loss", math.inf) for row in history), default=math.inf)
    if start_loss < best:
        # The refit never beat its (already trained) start on the hold-out: keep the start.
        net.module_.load_state_dict(start_state)
    return net.module_, history


def refit_best(modules, *, X, y, X_stop, y_stop, loss, **kwargs):
    """:func:`refit_network` from each of ``modules`` (the search's retrains of one partition
    from its initialisations); the refit with the lowest loss on the early-stopping hold-out
    ``(X_stop, y_stop)`` is kept. Without a hold-out only the first module is refitted.

    Returns the module, its history and its hold-out loss (None without a hold-out).
    """
    if X_stop is None:
        module, history = refit_network(modules[0], X=X, y=y, X_stop=None, y_stop=None,
                                        loss=loss, **kwargs)
        return module, history, None
    criterion, best = _loss_function(loss), None
    for start in modules:
        module, history = refit_network(start, X=X, y=y, X_stop=X_stop, y_stop=y_stop,
                                        loss=loss, **kwargs)
        with torch.no_grad():
            out = module(X_stop)
            value = float(criterion(out.reshape(out.shape[0], -1), y_stop))
        if best is None or value < best[2]:
            best = (module, history, value)
    return best


# skorch ends a training early by raising KeyboardInterrupt from its EarlyStopping callback, and
# its fit catches every KeyboardInterrupt, so a user's Ctrl-C ended the refit as early stopping
# does and the estimator's fit returned as if nothing had happened. The refit tells the two
# apart: its early stopping raises _Stopped instead, which ends the training as skorch would, and
# a KeyboardInterrupt leaves skorch's fit as _Interrupted, re-raised as the interrupt.
class _Interrupted(Exception):
    """A ``KeyboardInterrupt`` raised in skorch's training loop (its cause)."""


class _Stopped(Exception):
    """The refit's early stopping: the hold-out loss has not improved for ``patience`` epochs."""


@functools.cache
def _early_stopping():
    """skorch's ``EarlyStopping`` that stops by raising :class:`_Stopped`."""
    from skorch.callbacks import EarlyStopping

    class Stopping(EarlyStopping):
        def on_epoch_end(self, net, **kwargs):
            try:
                super().on_epoch_end(net, **kwargs)
            except KeyboardInterrupt:
                if self.misses_ == self.patience:  # its own signal to stop
                    raise _Stopped() from None
                raise

    Stopping.__name__ = Stopping.__qualname__ = "EarlyStopping"
    return Stopping


@functools.cache
def _interruptible(net_class):
    """``net_class`` whose training loop ends on :class:`_Stopped` and lets a
    ``KeyboardInterrupt`` out (as :class:`_Interrupted`)."""

    class Interruptible(net_class):
        def fit_loop(self, *args, **kwargs):
            try:
                return super().fit_loop(*args, **kwargs)
            except _Stopped:
                return self
            except KeyboardInterrupt as err:
                raise _Interrupted() from err

    Interruptible.__name__ = Interruptible.__qualname__ = net_class.__name__
    return Interruptible


class _FullBatch:
    """skorch iterator yielding the whole data set as one batch.

    torch's DataLoader indexes and collates sample by sample; for full-batch training of a
    small network that tripled the refit's time per epoch (measured: about 20 ms against 5 ms at
    L = 4), and the data are already tensors on the device.
    """

    def __init__(self, dataset, **kwargs):
        self.dataset = dataset

    def __iter__(self):
        yield self.dataset.X, self.dataset.y

    def __len__(self):
        return 1


def _StopOnNonFinite():
    from skorch.callbacks import Callback

    class StopOnNonFinite(Callback):
        """Stop the refit at the first epoch whose training loss is not finite."""

        def on_epoch_end(self, net, **kwargs):
            value = net.history[-1, "train_loss"]
            check_finite(float(value), f"refit epoch {net.history[-1, 'epoch']}")

    return StopOnNonFinite()
