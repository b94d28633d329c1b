"""SharingDiscoverer: learn which parameters of a closed-form model are tied together."""

from __future__ import annotations

import functools
import numbers
import types
import warnings

import numpy as np
import torch
from joblib import effective_n_jobs
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ._base import BaseDiscoverer, validate_numbers
from ._memory import format_bytes, resolve_budget
from .models import CLOSED_FORM_MODELS, closed_form_model
from .models.objectives import log_evidence

__all__ = ["SharingDiscoverer"]


def _model_type(name):
    """The closed-form model type that ``model=name`` names, ``"auto"`` for ``"auto"`` (either
    may follow), or None (not a closed form)."""
    if isinstance(name, str) and name == "auto":
        return name
    return CLOSED_FORM_MODELS.get(name) if isinstance(name, str) else None


def _if_supervised(supervised):
    """Method available only for the models that do (or do not) predict a target, by the
    fitted model (``model_``) once fitted, else the ``model`` parameter (``hasattr`` reflects
    it); before a fit with ``model="auto"`` it may be either, so the method is there."""
    def check(est):
        fitted = est.__dict__.get("model_")
        kind = _model_type(fitted if fitted is not None else est.model)
        return kind == "auto" or (kind is not None and kind.supervised == supervised)
    return check


def _shown(est):
    """``model=...`` as a message names it: the parameter, and the fitted model behind "auto"."""
    model, fitted = est.model, est.__dict__.get("model_")
    if isinstance(model, str) and model == "auto" and fitted is not None:
        return f"model='auto', fitted as model={fitted!r}"
    return f"model={model!r}"


class _for_models:
    """A method that exists only for some models: where ``check(estimator)`` is false,
    ``hasattr`` is False (as with scikit-learn's ``available_if``) and calling it raises an
    ``AttributeError`` whose message says what to use instead."""

    def __init__(self, check, advice):
        self.check, self.advice = check, advice

    def __call__(self, fn):
        self.fn = fn
        functools.update_wrapper(self, fn)
        return self

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        if not self.check(obj):
            raise AttributeError(f"SharingDiscoverer({_shown(obj)}) has no "
                                 f"{self.fn.__name__}: {self.advice}")
        return types.MethodType(self.fn, obj)


_NO_PREDICT = ("model='mean' learns which feature means are equal and has no target to "
               "predict; use transform (the features pooled by group) or means_, or fit "
               "model='linear' (or the default model='auto') with a y to predict.")
_MEAN_ONLY = "inverse_transform broadcasts the groups of model='mean' back to its features."


def _warn_if_standardised_per_feature(X, model):
    """Warn when every feature has mean 0 and standard deviation 1 to rounding: the mark of a
    per-feature standardisation (``StandardScaler``), which rarely leaves a sharing intact."""
    if X.shape[1] < 2 or X.shape[0] < 3:
        return
    tol = 1e-7
    with np.errstate(over="ignore", invalid="ignore"):  # huge data: inf spreads, no warning
        mean = X.mean(0)
        if not np.all(np.abs(mean) <= tol):
            return
        std = X.std(0)
        if not (np.all(np.abs(std - 1) <= tol)
                or np.all(np.abs(X.std(0, ddof=1) - 1) <= tol)):
            return
    if not model.supervised:  # feature means
        why = ("centring each feature makes every mean 0, so there is nothing left to share, "
               "and scaling each feature by its own spread changes which means are equal")
    else:
        why = ("scaling each input by its own spread multiplies each column of the weights "
               "by its own factor, so weights that were equal no longer are (unless the inputs "
               "had equal spreads already)")
    warnings.warn(
        f"Every feature of X has mean 0 and standard deviation 1: X looks standardised per "
        f"feature (e.g. by StandardScaler). For model={model.name!r}, {why}. Fit on the raw "
        "features, or scale all of them by one number; the fit removes offsets and one global "
        "scale by itself.", UserWarning, stacklevel=6)



def _one_digit(x):
    """``x`` rounded to one significant digit, as a rough factor is written (60, 500, 3,000)."""
    magnitude = 10 ** int(np.floor(np.log10(x)))
    return f"{round(x / magnitude) * magnitude:,}"


class SharingDiscoverer(TransformerMixin, BaseDiscoverer):
    """Discover a parameter-sharing scheme from data by bi-level optimisation.

    The model's shareable items (the feature means for ``model="mean"``, the entries of a linear
    map for ``model="linear"``) are partitioned into groups that share one value. The partition is
    chosen to minimise the outer objective::

        J(A) = N * log(validation MSE of the model refitted on training data with sharing A)
               + nuclear * ||A||_* + code_length * sum_j s_j log(P / s_j) + entropy * H(A)

    averaged over the train/validation splits of ``cv``. ``N`` is the number of scalar training
    observations, so one spurious free parameter costs about 1 and the penalty weights do not
    depend on the data's scale. The inner problem (the shared values ``psi`` of a sharing) is a
    closed-form least-squares fit, so the hypergradient is exact. A relaxation (row-softmax of
    free logits, annealed, in which a soft row costs its expected loss) is optimised from random
    starts, rounded by argmax, and polished by an exact discrete search (one-item moves, merges,
    splits, and a beam over the assignment of whole rows; see :mod:`sharelearn.search`); the best
    partition is refitted on all the data.

    For networks (a torch module, or the built-in sequence network), whose inner problem is
    solved by gradient descent, use :class:`NetworkSharingDiscoverer`.

    Parameters
    ----------
    model : {"auto", "mean", "linear"}, default="auto"
        ``"auto"``: read from the data of each fit: ``"linear"`` when ``fit`` is given a
        ``y``, ``"mean"`` without one; the choice is ``model_`` (and is printed with
        ``verbose``). In a :class:`~sklearn.pipeline.Pipeline`, which passes its ``y`` to
        every step, give ``model="mean"`` to pool features by group.
        ``"mean"``: unsupervised, ``fit(X)``; items are the ``n_features`` means
        (:class:`sharelearn.models.SharedMeans`); a ``y`` is ignored.
        ``"linear"``: supervised, ``fit(X, y)`` for ``y = W x + b``; items are the entries of
        ``W`` (``n_outputs x n_features``, row-major). The intercept ``b`` has one free value per
        output: it is never shared and never penalised (it is removed by centring each training
        split), see ``fit_intercept`` (:class:`sharelearn.models.LinearMap`).
        Methods of one model only (``predict`` for ``"linear"``, ``inverse_transform`` for
        ``"mean"``) follow the fitted model.
    n_candidate_groups : int or None, default=None
        Number of candidate groups (columns of the relaxed selection matrix). ``None`` uses one per
        item, capped at 16 and so that items x groups stays below about one million entries. The
        discrete search may still open new groups beyond it. Ten or more times the default
        multiplies the relaxation's work alike, and warns (``EfficiencyWarning``).
    nuclear : float, default=2.0
        Weight of the nuclear-norm penalty (pushes towards few, large groups).
    nuclear_kind : {"nuclear", "column"}, default="nuclear"
        ``"nuclear"`` is the true nuclear norm; ``"column"`` the sum of column norms, as computed by
        the paper's public code. Both equal ``sum_j sqrt(size_j)`` at a hard partition.
    code_length : float, default=2.0
        Weight of the assignment's description length ``sum_j s_j log(P / s_j)`` (nats). It
        prevents the search from fitting validation noise by shuffling items between groups.
    entropy : float, default=0.1
        Weight of the row-entropy penalty of the relaxation (pushes rows towards one-hot).
    objective : {"validation", "evidence"}, default="validation"
        ``"validation"``: the validation loss of the refit, averaged over the splits of ``cv``.
        ``"evidence"``: ``-2 log`` marginal likelihood of the tied linear-Gaussian model on all
        the data (Gaussian prior on the shared values, Gaussian noise, both precisions fitted by
        type-II maximum likelihood); no validation split is held out and ``cv`` is ignored.
    alpha : float, default=1e-6
        Ridge penalty on the shared values, in internal units: the closed-form models fit X
        and y each brought to one global scale (root mean square 1 after removing the offsets
        that the model allows: column means with an intercept, one global mean for the
        shared means), so ``alpha`` does not depend on the data's units.
    fit_intercept : bool, default=True
        Fit a free intercept per output (``model="linear"`` only).
    cv : int, float, cross-validation splitter, iterable or None, default=5
        Train/validation splits of the outer objective: an int is a shuffled K-fold (None: 5),
        a float in (0, 1) a single random hold-out of that fraction; a splitter (e.g.
        ``ShuffleSplit``) or an iterable of (train, validation) index arrays is used as given
        (a one-shot iterator such as a generator is read once, and a later fit with the same
        object reuses its splits). Averaging several splits lowers the variance of the
        objective.
    max_iter : int, default=100
        Outer iterations of the relaxation per restart.
    learning_rate : float, default=0.3
        Adam step size on the logits.
    temperature : tuple of two floats, default=(1.0, 0.05)
        Softmax temperature at the first and last outer iteration (geometric annealing).
    tol : float, default=1e-4
        Relative improvement of the objective below which an iteration counts as stalled.
    n_iter_no_change : int, default=10
        The relaxation stops early after this many consecutive stalled iterations: iterations
        in which its rounded (argmax) partition did not change or its objective did not improve
        by ``tol``.
    n_restarts : int or "auto", default="auto"
        Relaxation restarts from random logits; one more search always starts from ``init``,
        and the partition with the best objective is kept. ``"auto"`` runs 3 restarts when one
        relaxation step is cheap (items x inputs <= 2**16, e.g. a 30 x 32 map) and none above,
        where the searches from ``init`` and (linear map, ``init="auto"``, strongly correlated
        inputs) from two clusters of a ridge estimate are used; and none for a linear map whose
        data lie in the span of a hypothesis that ``init="auto"`` starts from (an F-test, see
        :ref:`hypotheses`).
    init : "auto", "shared", str or array-like, default="auto"
        The partition the search starts from besides the relaxations, as ``KMeans(init=...)``:
        ``"shared"`` the fully shared partition (one group); ``"auto"`` the same, except for
        a linear map whose best coarsening of a convolution hypothesis scores better (see
        ``restart_objectives_``); a named sharing
        built for the model's layer shape (``"shift"``, ``"permutation"``, ``"unshared"``, see
        ``reference``), or a partition of the items (labels or a hard selection matrix).
        ``SharingDiscoverer(init=labels, n_restarts=0, local_search=False).fit(...)`` scores
        that partition: its ``objective_`` is on the same scale as any fit's with the same data
        and ``random_state``, which tells whether a hypothesised sharing beats the one found.
        With ``local_search`` the search is warm-started from it; from many groups (e.g.
        ``"unshared"`` on a large layer) the search is far slower than from the default's
        start, and warns with a rough factor (``EfficiencyWarning``).
    local_search : bool, default=True
        Polish each rounded partition by the exact discrete search
        (:mod:`sharelearn.search.moves`).
    max_search_iter : int, default=1000
        Cap on accepted rounds of the discrete search per start; reaching it raises a
        ``ConvergenceWarning``.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the torch computations run. ``"auto"`` takes CUDA when it is available and the
        CPU otherwise; ``"cuda"`` without CUDA is an error. Inputs and fitted attributes are
        numpy arrays on the host whatever the device.
    dtype : {"float64", "float32"}, default="float64"
        Floating-point precision of the computations. float32 halves the memory and is faster
        on GPUs; offsets and scales are removed in float64 before the cast (see ``alpha``), so
        it keeps the units-invariance of the answer.
    memory_budget : "auto", int or str, default="auto"
        Memory the fit may hold at once: a number of bytes, or a string with a unit such as
        ``"512MiB"`` or ``"2GB"``; ``"auto"`` is half the memory available when the fit starts
        (80% of the free memory of a CUDA device). Before any work the fit estimates what it
        needs at the least (its data, their statistics per split, two search states, the
        search's screen; :meth:`~sharelearn.models.closed_form.ClosedFormModel.memory_need`)
        and raises a ``MemoryError`` that says how much, by part, when that is above the
        budget. Below it, the search rates its candidate moves in blocks of items that fit
        (the same partition as without a budget, slower where blocks are small). With
        ``n_jobs``, every worker holds its own copy of the data, their statistics and its
        search states: the budget is shared among them, and where it cannot hold as many
        workers as ``n_jobs`` asks, fewer run, with a warning.
    reference : array-like, str or None, default=None
        A known partition of the items (labels or a hard selection matrix) used by ``score``,
        or a named one built for the model's own layer shape (see
        :func:`sharelearn.symmetry.named_sharing`): ``"shift"``, ``"permutation"``,
        ``"shared"`` or ``"unshared"``.
    n_jobs : int or None, default=None
        Restarts and searches run in parallel with joblib (``None``: one worker), as many
        as ``memory_budget`` holds.
    n_threads : int or None, default=None
        torch intra-op threads during ``fit``, set for the fit and restored afterwards.
        ``None`` chooses (see :func:`sharelearn._threads.choose_threads`): one thread, which was
        fastest on every problem size measured, unless the environment variable
        ``SHARELEARN_NUM_THREADS`` says otherwise; never more than torch's current count. A
        count above the cores this process may use is lowered to them, with a warning.
    random_state : int, RandomState instance or None, default=None
        Seeds the train/validation splits and the relaxation's random starts. An int gives
        the same partition on every call on the same device;
        ``None`` draws fresh seeds from numpy's global generator.
    verbose : int, default=0
        Show a progress bar over the starts and print one line per start. Silent at 0.

    Attributes
    ----------
    model_ : {"mean", "linear"}
        The model fitted: ``model``, or what ``model="auto"`` chose from the data.
    sharing_partition_ : ndarray of shape (n_items,)
        Canonical group label of each item.
    n_groups_ : int
    selection_matrix_ : ndarray or scipy sparse array of shape (n_items, n_groups_)
        Hard selection matrix (sparse above 10,000 items).
    soft_selection_ : ndarray of shape (n_items, n_candidate_groups) or None
        The annealed soft selection of the winning restart (``None`` if the winning start was
        not a relaxation: ``init``, a hypothesis's coarsening, or any start of a fit that ran no
        relaxation).
    shared_values_ : ndarray of shape (n_groups_,)
        The shared values ``psi`` refitted on all the data.
    means_ : ndarray of shape (n_features,)
        ``model="mean"`` only: the tied means.
    coef_ : ndarray of shape (n_outputs, n_features)
        ``model="linear"`` only: the tied linear map.
    intercept_ : ndarray of shape (n_outputs,)
        ``model="linear"`` only.
    objective_ : float
        Outer objective of the chosen partition, computed on the internally standardised
        data (see ``alpha``), so it is the same whatever the units or
        the offset of X and y. For a linear map, a partition that coarsens one of the
        convolutions of :func:`~sharelearn.symmetry.shift_hypotheses` (or of the same-size maps
        with their borders apart, :func:`~sharelearn.symmetry.border_hypotheses`) is penalised
        as a partition of that convolution's blocks when this is cheaper (docs: "Choosing
        penalties"), and one that coarsens it but for a few entries pays for those exceptions
        by their exact count (:mod:`sharelearn.search.exceptions`).
    validation_loss_ : float or None
        Its mean validation MSE over the splits, in the units of y (``None`` for
        ``objective="evidence"``).
    log_evidence_ : float
        Log marginal likelihood of the chosen partition on all the data, with the precisions at
        their type-II maximum likelihood and without the penalties (reported for both
        objectives), as a density of y in its own units.
    restart_objectives_ : ndarray of shape (n_starts,)
        Objective reached from each start: the relaxations, then ``init`` (with
        ``init="auto"`` and a linear map: the best coarsening of the convolutions the layer's
        shape admits, :func:`~sharelearn.symmetry.shift_hypotheses`, when it scores better than
        the fully shared partition, else the fully shared partition), then, for a linear map
        fitted without relaxations and without such a hypothesis, with ``init="auto"`` and
        strongly correlated inputs, two clusters of a ridge estimate; then, for a linear map,
        the coarsening searches of the two best-scoring hypotheses
        (:mod:`sharelearn.search.coarsening`).
    loss_curve_ : ndarray
        Relaxed objective per outer iteration of the winning restart (empty when the winning
        start was not a relaxation).
    n_iter_ : int
        Iterations of the winning start: its relaxation's outer iterations (none unless it
        was a relaxation) plus its rounds of the discrete search, the last round (which
        found no improving move) included; a start that is only scored counts one. At least
        1, whether or not the fit ran a relaxation.
    n_search_moves_ : int
        Accepted rounds of the discrete search for the winning restart.
    fit_time_ : float
        Wall time of ``fit`` in seconds.
    symmetry_group_ : SymmetryGroup
        The discovered symmetry, named (computed on first access).
    structure_ : SharingStructure
        The discovered sharing in the words of the field (computed on first access): for a
        convolution its kernel, border rule (valid, circular, zero, reflect, nearest, mirror),
        the kernel's own symmetry and the entries that are exceptions, e.g. ``"2-D convolution
        (cross-correlation), 3 x 3 kernel on a 10 x 10 image, same size with reflect or nearest
        borders (the 36 border outputs differ from the interior); kernel symmetric under D_4"``;
        ``kind`` is None when no convolution describes the sharing.
    departures_ : ndarray of bool of shape ``coef_.shape`` (``(n_features, 1)`` for means)
        Where the sharing departs from shift equivariance: the entries whose group is not the
        one the interior kernel gives them (border outputs of reflect, nearest or mirror
        filters, entries changed, a dead input's column); all False for an exact convolution or
        a sharing that is no convolution.
    hypotheses_ : dict of ndarray
        The structured hypotheses scored in the fit (``init="auto"``), with the sharing found
        and the untied map beside them, best objective first, as columns
        (``pandas.DataFrame(est.hypotheses_)``): ``hypothesis``, ``blocks``, ``groups`` and
        ``exceptions`` of its best coarsening known, ``objective``, ``explains`` (its span test
        does not reject at 1% and its tied map explains more than chance),
        ``span_statistic``, ``span_p_value``, ``variance_explained`` (the fraction of the
        targets' variance its tied map explains on all the data), ``signal_p_value`` and
        ``searched`` (whether its coarsenings were searched). The span columns are NaN for
        models without a span test (shared means) or with fewer samples than inputs.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when X has string feature names.

    See Also
    --------
    NetworkSharingDiscoverer : the same for the parameters of a torch module.
    sklearn.cluster.FeatureAgglomeration : pools features by a clustering of their values.

    Examples
    --------
    >>> from sharelearn import SharingDiscoverer
    >>> from sharelearn.datasets import make_shared_means
    >>> X, labels, _ = make_shared_means(100, n_features=6, n_groups=2, random_state=1)
    >>> disc = SharingDiscoverer(model="mean", reference=labels, random_state=0).fit(X)
    >>> disc.n_groups_, disc.score(X)
    (2, 0)

    The default ``model="auto"`` reads the data: with targets it fits the linear map.

    >>> from sharelearn.datasets import make_convolution
    >>> X, Y, truth, W = make_convolution(100, input_shape=6, kernel_size=3, random_state=0)
    >>> disc = SharingDiscoverer(reference=truth, random_state=0).fit(X, Y)
    >>> disc.model_, disc.coef_.shape, disc.score(X)
    ('linear', (4, 6), 0)
    """


    _parameter_constraints = {
        **BaseDiscoverer._parameter_constraints,
        # a name, or a torch module class or instance; the name is checked by
        # closed_form_model, whose message lists the closed forms and points a network (a
        # registry name, a module) at NetworkSharingDiscoverer
        "model": [str, type, torch.nn.Module],
        "objective": [StrOptions({"validation", "evidence"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "memory_budget": [str, numbers.Real],
    }

    def __init__(self, model="auto", *, n_candidate_groups=None, nuclear=2.0,
                 nuclear_kind="nuclear", code_length=2.0, entropy=0.1, objective="validation",
                 alpha=1e-6, fit_intercept=True, cv=5, max_iter=100, learning_rate=0.3,
                 temperature=(1.0, 0.05), tol=1e-4, n_iter_no_change=10, n_restarts="auto",
                 init="auto", local_search=True, max_search_iter=1000, device="cpu",
                 dtype="float64", memory_budget="auto", reference=None, n_jobs=None,
                 n_threads=None, random_state=None, verbose=0, **kwargs):
        self.model = model
        self.n_candidate_groups = n_candidate_groups
        self.nuclear = nuclear
        self.nuclear_kind = nuclear_kind
        self.code_length = code_length
        self.entropy = entropy
        self.objective = objective
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.temperature = temperature
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.n_restarts = n_restarts
        self.init = init
        self.local_search = local_search
        self.max_search_iter = max_search_iter
        self.device = device
        self.dtype = dtype
        self.memory_budget = memory_budget
        self.reference = reference
        self.n_jobs = n_jobs
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self._record_unexpected(kwargs)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the sharing scheme.

        All or nothing: a call that raises leaves the estimator exactly as it was before it,
        and a successful call replaces every fitted attribute (none of an earlier fit with
        another ``model`` survives).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets: required for ``model="linear"``, ignored for ``model="mean"``; with
            ``model="auto"`` they choose the linear map (and their absence the means).

        Returns
        -------
        self : SharingDiscoverer
        """
        self._check_unexpected_kwargs()
        return self._fit_all_or_nothing(X, y)

    def _fit(self, X, y):
        model = closed_form_model(self, y)
        self.model_ = model.name
        dtype, device = self._torch_setup()
        if model.supervised:
            if y is None:
                raise ValueError(f"SharingDiscoverer(model={self.model!r}) requires y to be "
                                 "passed, but the target y is None: call fit(X, y).")
            X, y = validate_numbers(self, X, y, multi_output=True, dtype=np.float64)
            y = self._validate_targets(y, _shown(self))
            self._y_1d = y.ndim == 1
        else:
            X = validate_numbers(self, X, dtype=np.float64, ensure_min_samples=2)
            self._y_1d = False
        _warn_if_standardised_per_feature(X, model)
        rng = check_random_state(self.random_state)
        if model.uses_splits:
            splits = self._splits(X.shape[0], rng, min_train=model.min_train)
        elif X.shape[0] < 2:
            raise ValueError("objective='evidence' needs at least 2 samples.")
        else:
            splits = None
        n_jobs = self._plan_memory(model, X, y, splits, dtype, device)
        model.prepare(X, y, splits, dtype=dtype, device=device)
        n_items, shape = model.n_items, model.layer_shape
        self._reference_labels = self._partition_param("reference", n_items, shape)
        start = self._start_partition(n_items, shape)
        n_restarts = model.auto_restarts() if self.n_restarts == "auto" else self.n_restarts
        self._warn_costly_settings(model, start, n_restarts)
        seeds = rng.randint(2**31, size=n_restarts + 1)
        extra = model.extra_starts(self._init_is_auto(), n_restarts)
        self._run(model, seeds=seeds, n_restarts=n_restarts, start=start, extra_starts=extra,
                  hypotheses=model.hypotheses(), hypothesis_start=self._init_is_auto(),
                  n_jobs=n_jobs)

    def _warn_costly_settings(self, model, start, n_restarts):
        """An EfficiencyWarning, as for the weak penalties, where a setting multiplies the work
        of the default's by 10 or more: a start with many groups, or far more candidate groups
        than the default."""
        from sklearn.exceptions import EfficiencyWarning

        n_groups = np.unique(start).size
        if self.local_search and n_groups > 1:
            # The search merges a pair of groups per round and rates every pair each round.
            factor = model.start_cost_factor(n_groups)
            if factor >= 10:
                shown = repr(self.init) if isinstance(self.init, str) else "a partition"
                whole = " (one per item)" if n_groups == model.n_items else ""
                also = (" and from the convolutions the layer admits" if model.supervised
                        else "")
                warnings.warn(
                    f"init={shown} starts the discrete search from {n_groups} groups{whole}, "
                    "which it merges a pair at a time, rating every pair in every round: "
                    f"roughly {_one_digit(factor)} times the time of the default start. "
                    f"init='auto' (the default) starts from one group{also}, and the search "
                    "opens the groups that pay.", EfficiencyWarning, stacklevel=6)
        if self.n_candidate_groups is not None and n_restarts > 0:
            default = model.default_columns()
            asked = min(int(self.n_candidate_groups), model.n_items)
            factor = asked / default
            if factor >= 10:
                warnings.warn(
                    f"n_candidate_groups={self.n_candidate_groups} gives each relaxation "
                    f"{asked} candidate groups where the default gives {default}: every step "
                    f"costs roughly {_one_digit(factor)} times as much, and a relaxation that "
                    "rounds to many groups starts a long search. Leave n_candidate_groups="
                    "None (the default): the discrete search opens new groups where they pay.",
                    EfficiencyWarning, stacklevel=6)

    def _plan_memory(self, model, X, y, splits, dtype, device):
        """Refuse, before any work, a fit that needs more than ``memory_budget`` even in its
        leanest way of working, saying how much it needs; else let the model plan within it.
        Returns the ``n_jobs`` the fit runs with (:meth:`_workers_within`)."""
        budget = resolve_budget(self.memory_budget, device)
        n_outputs = y.shape[1] if model.supervised and y.ndim == 2 else 1
        itemsize = torch.empty((), dtype=dtype).element_size()
        m, d = model.layer_dims(X.shape[1], n_outputs)
        # the start's groups: init="unshared" holds a column per item in the search's states
        start = self._start_partition(m * d, (m, d))
        groups = 1 if start is None else np.unique(start).size
        need = model.memory_need(X.shape[0], X.shape[1], n_outputs, splits, itemsize,
                                 start_groups=groups)
        if budget is not None and need.minimum > budget:
            n_splits = len(splits) if model.uses_splits and splits else 1
            where = "the device" if device.type == "cuda" else "this machine"
            given = (f"memory_budget={self.memory_budget!r}" if not isinstance(
                self.memory_budget, str) or self.memory_budget != "auto"
                else f"memory_budget='auto' (half the memory available on {where})")
            raise MemoryError(
                f"SharingDiscoverer({_shown(self)}) on {m * d:,} shareable items "
                f"({m} x {d}), {X.shape[0]:,} samples and {n_splits} "
                f"split{'s' if n_splits > 1 else ''} needs at least "
                f"{format_bytes(need.minimum)} ({need.describe()}), "
                f"more than {given} allows ({format_bytes(budget)}). Raise memory_budget if "
                "the machine has the memory; dtype='float32' halves most of it, and fewer "
                "splits (cv) or fewer inputs shrink it."
                + (f" init={self.init!r} starts the search from {groups:,} groups, a column "
                   "of its states each: init='auto' starts from one." if groups > 2 else ""))
        n_jobs, budget = self._workers_within(model, need, budget)
        model.plan_memory(need, budget)
        return n_jobs

    def _workers_within(self, model, need, budget):
        """``(n_jobs, budget of each worker)``: the joblib workers of the restarts and searches
        that ``budget`` holds. Each worker holds its own copy of the data, their statistics and
        its search states (at least ``need.minimum``); the parent keeps the data, their
        statistics and the structured hypotheses' equations. (``n_jobs=4`` under a budget that
        held two such copies ran 4 workers, each planning within the whole budget.)"""
        workers = max(1, effective_n_jobs(self.n_jobs)) if model.parallel_searches else 1
        if budget is None or workers == 1:
            return self.n_jobs, budget
        # (and the structured hypotheses' equations, which the ranking holds in the parent)
        kept = (need.parts["data"] + need.parts["statistics"]
                + need.parts.get("hypotheses", 0))
        fits = int(max(0, budget - kept) // max(1, need.minimum))
        if fits < workers:
            held = max(1, fits)
            warnings.warn(
                f"n_jobs={self.n_jobs} runs {workers} workers, each holding its own copy of the "
                f"data, their statistics and its search states (at least "
                f"{format_bytes(need.minimum)} each), but memory_budget "
                f"({format_bytes(budget)}) holds {fits}: the fit runs "
                f"{'in one process' if held == 1 else f'{held} workers'}. Raise memory_budget, "
                f"or set n_jobs={held} to silence this warning.", UserWarning, stacklevel=6)
            if held == 1:
                return 1, budget
            workers = held
        return workers, (budget - kept) // workers

    @property
    def log_evidence_(self):
        """Log marginal likelihood of the chosen partition on all the data (no penalties), with
        the precisions at their type-II maximum likelihood, as a density of the targets in the
        user's units. Computed on first access from the partition's sufficient statistics
        kept by ``fit``."""
        terms = self.__dict__.get("_evidence_terms")
        if terms is None:
            raise AttributeError("log_evidence_ exists after fitting.")
        if self.__dict__.get("_log_evidence_value") is None:
            self._log_evidence_value = log_evidence(terms)
        return self._log_evidence_value

    # -- using the fitted sharing ----------------------------------------------------------
    def transform(self, X):
        """Pool features by group (``"mean"``) or apply the tied linear map (``"linear"``).

        For ``model="mean"`` each output column is the average of the features of one group, as
        :class:`~sklearn.cluster.FeatureAgglomeration` does; ``inverse_transform`` broadcasts it
        back. For ``model="linear"`` the output is ``X @ coef_.T + intercept_``.
        """
        check_is_fitted(self)
        X = validate_numbers(self, X, reset=False, dtype=np.float64)
        return self._model.transform(self, X)

    @_for_models(_if_supervised(False), _MEAN_ONLY)
    def inverse_transform(self, X):
        """Broadcast group values back to the features (``model="mean"`` only)."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_groups_:
            raise ValueError(f"X must have shape (n_samples, {self.n_groups_}), got {X.shape}.")
        return X[:, self.sharing_partition_]

    @_for_models(_if_supervised(True), _NO_PREDICT)
    def predict(self, X):
        """Output of the tied linear map (``model="linear"``)."""
        check_is_fitted(self)
        out = self.transform(X)
        return out[:, 0] if self._y_1d else out

    def get_feature_names_out(self, input_features=None):
        """Output names: ``sharingdiscoverer0, 1, ...`` (one per group or output)."""
        check_is_fitted(self)
        n_out = self.coef_.shape[0] if self._model.supervised else self.n_groups_
        return np.asarray([f"sharingdiscoverer{i}" for i in range(n_out)], dtype=object)

    def score(self, X, y=None):
        """Greater is better.

        With ``reference`` set: minus the partition distance between the discovered sharing and
        the reference (0 = exact recovery; X and y are ignored), so that a grid search over the
        penalties picks the scheme nearest the truth. Without it: minus the mean squared error of
        the fitted tied model on ``(X, y)`` (``"mean"``: of X around ``means_``).
        """
        by_reference = self._score_reference()
        if by_reference is not None:
            return by_reference
        X = validate_numbers(self, X, reset=False, dtype=np.float64)
        return self._model.score(self, X, y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # "auto" fits the means without a y: a y is optional
        kind = _model_type(self.model)
        tags.target_tags.required = not (kind == "auto"
                                         or (kind is not None and not kind.supervised))
        tags.input_tags.sparse = False
        return tags
