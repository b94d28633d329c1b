"""SharingDiscoverer: learn which of a model's parameters are tied together."""

from __future__ import annotations

import copy
import difflib
import functools
import numbers
import time
import types
import warnings
import weakref

import numpy as np
import scipy.sparse as sp
import torch
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning, EfficiencyWarning
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import nettrain
from ._scaling import standardize
from ._threads import fit_threads
from .bilevel import discover
from .evidence import fit_precisions, neg2_log_evidence
from .hypergrad import SOLVERS
from .inner import TiedLinearGaussian, ridge_solve
from .networks import (
    SEQUENCE_SHARE,
    SequenceNetwork,
    TiedNetworkProblem,
    check_share,
    tie_parameters,
)
from .partition import _to_partition, canonical_labels, labels_to_selection, partition_distance
from .search import EvidenceObjective, HardObjective, input_correlation, ridge_clusters
from .symmetry import named_sharing, symmetry_group

__all__ = ["SharingDiscoverer"]

_MODELS = ("mean", "linear", "sequence")
_CLOSED_FORM = ("mean", "linear")
# The relaxation holds a few P x r tensors; above this many entries the candidate count shrinks.
_RELAXATION_BUDGET = 2**20  # also bounds a batch of restarts relaxed together
# The refit fine-tunes an already trained network: at the full step size its first Adam steps
# could throw it off its minimum (measured: test MAE 0.37 instead of 0.06 at L = 4).
_REFIT_LR_FACTOR = 0.1
# n_restarts="auto" relaxes only while one step (O(items x inputs x groups)) stays cheap. Above
# it the search from the shared partition reached the same objective 100x faster (measured on
# valid 70 -> 68, 4,760 entries, and the 64-input small-data curve: benchmarks/bench_shift.py).
_AUTO_RESTART_BUDGET = 2**16
# Inputs count as strongly correlated when the largest eigenvalue of their correlation matrix is
# above this fraction of their number (independent inputs: (1 + sqrt(d / n))^2 / d, 0.03 to 0.15
# on the benchmarks' shift tasks; AR(0.9) signals of 64 inputs about 0.3; image patches 0.6-0.9).
_CORRELATED_INPUTS = 0.2
# What a fit leaves besides its public ``*_`` attributes; a new fit removes all of it first.
_PRIVATE_FIT_STATE = ("_y_1d", "_evidence_terms", "_log_evidence_value", "_reference_labels",
                      "_symmetry_group", "_n_tokens", "_module_share_", "_module_template",
                      "_module_state")
# A token vocabulary this large whose ids are mostly unused makes an embedding of mostly dead rows.
_LARGE_VOCABULARY = 1024


def _is_model(name):
    """Method available only for one built-in model (``hasattr`` reflects it)."""
    return lambda est: isinstance(est.model, str) and est.model == name


def _is_closed_form(est):
    return isinstance(est.model, str) and est.model in _CLOSED_FORM


def _predicts(est):
    return not _is_model("mean")(est)


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
            raise AttributeError(f"SharingDiscoverer(model={obj.model!r}) has no "
                                 f"{self.fn.__name__}: {self.advice}")
        return types.MethodType(self.fn, obj)


_NO_PREDICT = ("model='mean' learns which feature means are equal and has no target to "
               "predict; use transform (the features pooled by group) or means_, or fit "
               "model='linear' with a y to predict.")
_NO_TRANSFORM = ("a network model predicts but does not transform; use predict, or "
                 "to_module() for the tied network.")
_MEAN_ONLY = "inverse_transform broadcasts the groups of model='mean' back to its features."


def _best_start(results, cap, stacklevel):
    """The start with the lowest objective and every start's objective; a ConvergenceWarning
    (pointing ``stacklevel`` frames up: the user's call of ``fit``, past scikit-learn's
    ``_fit_context`` wrapper) when the search of any start stopped at its cap: a start that
    stopped early may have been beaten only because it stopped."""
    values = np.array([r["value"] for r in results])
    winner = int(np.argmin(values))
    best = results[winner]
    capped = [i for i, r in enumerate(results) if not r["converged"]]
    if capped:
        which = ("the winning start" if winner in capped
                 else f"{len(capped)} of {len(results)} starts")
        warnings.warn(
            f"The discrete search stopped at its cap of {cap} rounds ({which}) while moves "
            "still improved the objective; the partition may not be a local optimum. Raise "
            "max_search_iter.", ConvergenceWarning, stacklevel=stacklevel)
    return best, values


def _warn_sparse_vocabulary(X):
    """Warn when the token ids of ``X`` leave most rows of the embedding unused."""
    n_tokens = int(X.max()) + 1
    n_used = np.unique(X).size
    if n_tokens > _LARGE_VOCABULARY and 4 * n_used < n_tokens:
        warnings.warn(
            f"X holds {n_used} distinct token ids but the largest is {n_tokens - 1}, so the "
            f"embedding gets {n_tokens} rows, {n_tokens - n_used} of them never used, and the "
            "fit grows with every row. Relabel the tokens to 0..n-1 first, e.g. "
            "np.unique(X, return_inverse=True)[1].reshape(X.shape), or pass "
            "module__n_tokens explicitly.", EfficiencyWarning, stacklevel=5)


# Splits read from a one-shot iterator (a generator) given as cv, kept so that a second fit with
# the same cv object sees the same splits instead of an exhausted iterator.
_ITERATOR_SPLITS = weakref.WeakKeyDictionary()


def _reusable_splits(cv):
    """``cv`` as a list of (train, validation) pairs; a one-shot iterator is read only once."""
    if iter(cv) is not cv:  # a list, tuple or other re-iterable container
        return list(cv)
    try:
        return _ITERATOR_SPLITS[cv]
    except KeyError:
        pass
    except TypeError:  # an iterator that cannot be weakly referenced: read it, do not keep it
        return list(cv)
    splits = list(cv)
    _ITERATOR_SPLITS[cv] = splits
    return splits


def _check_split(pair, n_samples):
    """One (train, validation) pair as integer index arrays within ``range(n_samples)``."""
    try:
        tr, va = pair
    except (TypeError, ValueError):
        raise ValueError(f"each split must be a (train, validation) pair of index arrays, "
                         f"got {pair!r}.") from None
    out = []
    for name, idx in (("train", tr), ("validation", va)):
        idx = np.asarray(idx)
        if idx.dtype == bool and idx.shape == (n_samples,):
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ValueError(f"the {name} indices of a split must be a 1-D array of integers "
                             f"(or a boolean mask of length {n_samples}), got dtype "
                             f"{idx.dtype} and shape {idx.shape}.")
        if idx.size and (idx.min() < -n_samples or idx.max() >= n_samples):
            raise ValueError(f"the {name} indices of a split must lie in [0, {n_samples}), got "
                             f"values from {idx.min()} to {idx.max()}.")
        out.append(idx.astype(np.int64) % n_samples)
    return tuple(out)


def _warn_if_standardised_per_feature(X, model):
    """Warn when every feature has mean 0 and standard deviation 1 to rounding: the mark of a
    per-feature standardisation (``StandardScaler``), which rarely leaves a sharing intact."""
    if X.shape[1] < 2 or X.shape[0] < 3:
        return
    mean, std = X.mean(0), X.std(0)
    tol = 1e-7
    if not (np.all(np.abs(mean) <= tol) and (np.all(np.abs(std - 1) <= tol)
                                             or np.all(np.abs(X.std(0, ddof=1) - 1) <= tol))):
        return
    if model == "mean":
        why = ("centring each feature makes every mean 0, so there is nothing left to share, "
               "and scaling each feature by its own spread changes which means are equal")
    else:
        why = ("scaling each input by its own spread multiplies each column of the weights "
               "by its own factor, so weights that were equal no longer are (unless the inputs "
               "had equal spreads already)")
    warnings.warn(
        f"Every feature of X has mean 0 and standard deviation 1: X looks standardised per "
        f"feature (e.g. by StandardScaler). For model={model!r}, {why}. Fit on the raw "
        "features, or scale all of them by one number; the fit removes offsets and one global "
        "scale by itself.", UserWarning, stacklevel=5)


def _work_hint(X, y):
    """A size hint of a fit for the thread choice: inputs squared times outputs (the cost of a
    closed-form problem's statistics), from the shapes alone, before any validation."""
    def trailing(a):  # the size of one sample, where the array-like says its shape
        shape = getattr(a, "shape", None)
        return int(np.prod(shape[1:])) if shape is not None and len(shape) > 1 else 1

    return float(trailing(X)) ** 2 * trailing(y)


def _resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; "
                         "use device='cpu' or device='auto'.")
    return torch.device(device)


class SharingDiscoverer(TransformerMixin, BaseEstimator):
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

    Networks (``model="sequence"`` or a torch module) are trained by gradient descent instead:
    the relaxation's hypergradient comes from implicit differentiation
    (:mod:`sharelearn.hypergrad`), the discrete search scores partitions by a short retrain of
    the hard-shared network, and the chosen network is refitted with skorch
    (:mod:`sharelearn.nettrain`). There ``N log`` of the validation loss (``loss``) replaces
    ``N log`` of the validation MSE.

    Parameters
    ----------
    model : {"mean", "linear", "sequence"}, torch.nn.Module subclass or instance, default="mean"
        ``"mean"``: unsupervised, ``fit(X)``; items are the ``n_features`` means.
        ``"linear"``: supervised, ``fit(X, y)`` for ``y = W x + b``; items are the entries of
        ``W`` (``n_outputs x n_features``, row-major). The intercept ``b`` has one free value per
        output: it is never shared and never penalised (it is removed by centring each training
        split), see ``fit_intercept``.
        ``"sequence"``: supervised, ``X`` holds integer token sequences (``n_samples x L``);
        the network :class:`sharelearn.networks.SequenceNetwork` (embedding -> per-position
        linear layer -> ReLU -> sum over positions -> linear), whose items are its ``L``
        per-position layers. Its sizes are routed as ``module__embedding_dim`` (default 500)
        and ``module__hidden`` (default 50); ``length`` and ``n_tokens`` (``max(X) + 1``) come
        from the data unless given as ``module__...``.
        A module class is built as ``model(**module__kwargs)`` (keyword arguments given to
        this estimator as ``module__name=value``, skorch-style, so that ``set_params`` and grid
        search reach them); a module instance is deep-copied and never trained in place. Both
        need ``share``. The module maps a batch of ``X`` to predictions shaped like ``y``.
    share : dict or None, default=None
        Module models: what to share, ``{parameter name: axis or None}``. With an int axis
        the items are the slices of that parameter along the axis (e.g. ``{"weight": 0}`` for a
        per-position weight of shape ``(L, out, in)``); with ``None`` every entry is an item.
        All listed parameters are tied by the one partition, so they must have the same number
        of items. ``None`` is only valid for ``"sequence"``, where it means
        ``{"position_weight": 0, "position_bias": 0}``. Ignored by the closed-form models.
    n_groups : int or None, default=None
        Number of candidate groups (columns of the relaxed selection matrix). ``None`` uses one per
        item, capped at 16 and so that items x groups stays below about one million entries. The
        discrete search may still open new groups beyond it.
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
        Closed-form models only: module models raise ``NotImplementedError``.
    alpha : float, default=1e-6
        Ridge penalty on the shared values, in internal units: the closed-form models fit X
        and y each brought to one global scale (root mean square 1 after removing the offsets
        that the model allows: column means with an intercept, one global mean for the
        shared means), so ``alpha`` does not depend on the data's units. Module models: weight
        decay on all the network's parameters in the inner training loss.
    fit_intercept : bool, default=True
        Fit a free intercept per output (``model="linear"`` only).
    cv : int, float, cross-validation splitter, iterable or None, default=5
        Train/validation splits of the outer objective: an int is a shuffled K-fold (None: 5),
        a float in (0, 1) a single random hold-out of that fraction; a splitter (e.g.
        ``ShuffleSplit``) or an iterable of (train, validation) index arrays is used as given
        (a one-shot iterator such as a generator is read once, and a later fit with the same
        object reuses its splits). Averaging several
        splits lowers the variance of the objective. Module models use only the first split
        (one network per split would multiply the cost).
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
        inputs) from two clusters of a ridge estimate are used. Module models: ``"auto"`` is 1
        restart.
    init : "auto", "shared", str or array-like, default="auto"
        The partition the search starts from besides the relaxations, as ``KMeans(init=...)``:
        ``"auto"`` and ``"shared"`` the fully shared partition (one group), a named sharing
        built for the model's layer shape (``"shift"``, ``"permutation"``, ``"unshared"``, see
        ``reference``), or a partition of the items (labels or a hard selection matrix).
        ``SharingDiscoverer(init=labels, n_restarts=0, local_search=False).fit(...)`` scores
        that partition: its ``objective_`` is on the same scale as any fit's with the same data
        and ``random_state``, which tells whether a hypothesised sharing beats the one found.
        With ``local_search`` the search is warm-started from it.
    local_search : bool, default=True
        Polish each rounded partition by the exact discrete search. Module models: the search
        of :func:`sharelearn.nettrain.network_search` (merges, splits along the items'
        gradients, one-item moves), then, with a hold-out (``validation_fraction``), the
        check of :func:`sharelearn.nettrain.holdout_merges`, which keeps the best merge of two
        groups of the chosen partition if the refits score it no worse on the hold-out.
    max_search_iter : int, default=1000
        Cap on accepted rounds of the discrete search per start; reaching it raises a
        ``ConvergenceWarning``.
    loss : {"l1", "mse"}, default="l1"
        Module models: training and validation loss on standardised targets (each output
        centred and scaled to unit variance on the fitting samples).
    inner_steps : int, default=10
        Module models: full-batch Adam steps of the network per outer step, warm-started from
        the previous outer step (plus ``10 * inner_steps`` warm-up steps before the first).
    inner_learning_rate : float, default=0.01
        Module models: Adam step size of the network (inner steps, search retrains, refit).
    hypergrad : {"cg", "neumann", "exact", "identity"}, default="cg"
        Module models: linear solver of the implicit hypergradient, see
        :mod:`sharelearn.hypergrad`. ``"exact"`` forms the Hessian (small networks only).
    hypergrad_iter : int, default=10
        Conjugate-gradient iterations or Neumann terms.
    neumann_alpha : float, default=0.01
        Step-size factor ``alpha`` of the Neumann series (needs ``alpha < 2 / lambda_max``).
    search_steps : int, default=200
        Module models: full-batch Adam steps (step size decaying linearly to 0) of each short
        retrain that scores a partition in the discrete search (a proxy for the outer
        objective; see :mod:`sharelearn.nettrain`).
    search_inits : int, default=3
        Module models: initialisations each partition is retrained from in the search; its
        score is the best of them. The first is the fit's own network; the others are built
        from the module class with other seeds, or, for a module instance, are copies whose
        submodules' ``reset_parameters`` are called with other seeds (an instance without any
        is retrained from its own initialisation only). One retrain from one initialisation
        sometimes stalls, which can make the search keep a spurious group; each extra
        initialisation adds the cost of one retrain per scored partition. Measured on the
        sum-of-numbers misses of one initialisation, the true partition beat the found one for
        93-100% of pairs of initialisations and for every triple (see ``docs/models.md``).
    max_epochs : int, default=1000
        Module models: epochs (full-batch) of the final refit with skorch, which fine-tunes the
        search's retrains of the chosen partition (one per initialisation, see
        ``search_inits``) at a tenth of ``inner_learning_rate``, decaying linearly to 0 over the
        epochs; if a refit never beats its start on the early-stopping hold-out, the start is
        kept, and of the refits the one with the lowest hold-out loss is kept. Without a
        hold-out (``validation_fraction=None``) only the best retrain is refitted.
    validation_fraction : float or None, default=0.2
        Module models: fraction of the samples held out of the search and used only by the
        final refit: to early-stop it (patience ``patience``, best epoch restored) and to
        confirm the search's partition against its best merge (see ``local_search``). ``None``
        trains the refit for ``max_epochs`` on all the samples, without that check.
    patience : int, default=100
        Module models: epochs without improvement before the refit stops.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the torch computations run. ``"auto"`` takes CUDA when it is available and the
        CPU otherwise; ``"cuda"`` without CUDA is an error. Inputs and fitted attributes are
        numpy arrays on the host whatever the device.
    dtype : {"float64", "float32"}, default="float64"
        Floating-point precision of the computations. float32 halves the memory and is faster
        on GPUs; offsets and scales are removed in float64 before the cast (see ``alpha``), so
        it keeps the units-invariance of the answer.
    reference : array-like, str or None, default=None
        A known partition of the items (labels or a hard selection matrix) used by ``score``,
        or a named one built for the model's own layer shape (see
        :func:`sharelearn.symmetry.named_sharing`): ``"shift"``, ``"permutation"``,
        ``"shared"`` or ``"unshared"``.
    n_jobs : int or None, default=None
        Closed-form models: restarts run in parallel with joblib. Module models: the restarts
        run in turn, sharing the search's cache of scored partitions, and each round of the
        search retrains its candidate partitions in ``n_jobs`` threads (the same partitions
        and scores as serially; each runs torch on the fit's ``n_threads``, one by default,
        so the threads do not oversubscribe the cores).
    n_threads : int or None, default=None
        torch intra-op threads during ``fit``, set for the fit and restored afterwards.
        ``None`` chooses (see :func:`sharelearn._threads.choose_threads`): one thread, which was
        fastest on every problem size measured, unless the environment variable
        ``SHARELEARN_NUM_THREADS`` says otherwise; never more than torch's current count.
    random_state : int, RandomState instance or None, default=None
        Seeds the train/validation splits, the relaxation's random starts and the networks'
        initialisations. An int gives the same partition on every call on the same device;
        ``None`` draws fresh seeds from numpy's global generator.
    verbose : int, default=0
        Show a progress bar over the starts and print one line per start. Silent at 0.

    Attributes
    ----------
    sharing_partition_ : ndarray of shape (n_items,)
        Canonical group label of each item.
    n_groups_ : int
    selection_matrix_ : ndarray or scipy sparse array of shape (n_items, n_groups_)
        Hard selection matrix (sparse above 10,000 items).
    soft_selection_ : ndarray of shape (n_items, n_candidate_groups) or None
        The annealed soft selection of the winning restart (``None`` if it started shared).
        Module models: the items are the slices (or entries) declared by ``share``.
    shared_values_ : ndarray of shape (n_groups_,)
        The shared values ``psi`` refitted on all the data.
    means_ : ndarray of shape (n_features,)
        ``model="mean"`` only: the tied means.
    coef_ : ndarray of shape (n_outputs, n_features)
        ``model="linear"`` only: the tied linear map.
    intercept_ : ndarray of shape (n_outputs,)
        ``model="linear"`` only.
    objective_ : float
        Outer objective of the chosen partition. Closed-form models compute it on the
        internally standardised data (see ``alpha``), so it is the same whatever the units or
        the offset of X and y.
    validation_loss_ : float or None
        Its mean validation MSE over the splits, in the units of y (``None`` for
        ``objective="evidence"``). Module models: the validation ``loss`` (standardised
        targets) of the search's short retrain.
    log_evidence_ : float
        Log marginal likelihood of the chosen partition on all the data, with the precisions at
        their type-II maximum likelihood and without the penalties (reported for both
        objectives), as a density of y in its own units. Closed-form models only.
    restart_objectives_ : ndarray of shape (n_starts,)
        Objective reached from each start: the relaxations, then ``init`` (the shared
        partition by default), then, for a linear map fitted without relaxations, with
        ``init="auto"`` and strongly correlated inputs, two clusters of a ridge estimate.
    loss_curve_ : ndarray
        Relaxed objective per outer iteration of the winning restart.
    n_iter_ : int
        Outer iterations of the winning restart.
    n_search_moves_ : int
        Accepted rounds of the discrete search for the winning restart (module models: plus
        the merges accepted on the hold-out).
    fit_time_ : float
        Wall time of ``fit`` in seconds.
    symmetry_group_ : SymmetryGroup
        The discovered symmetry, named (computed on first access).
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        Module models only: the target standardisation.
    history_ : list of dict
        Module models only: per-epoch ``train_loss`` and ``valid_loss`` of the final refit.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when X has string feature names.

    See Also
    --------
    sklearn.cluster.FeatureAgglomeration : pools features by a clustering of their values.

    Examples
    --------
    >>> from sharelearn import SharingDiscoverer
    >>> from sharelearn.datasets import make_shared_means
    >>> X, labels, _ = make_shared_means(100, n_features=6, n_groups=2, random_state=1)
    >>> disc = SharingDiscoverer(model="mean", reference=labels, random_state=0).fit(X)
    >>> disc.n_groups_, disc.score(X)
    (2, 0)
    """

    _parameter_constraints = {
        "model": [StrOptions(set(_MODELS)), type, torch.nn.Module],
        "share": [dict, None],
        "n_groups": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "nuclear": [Interval(numbers.Real, 0, None, closed="left")],
        "nuclear_kind": [StrOptions({"nuclear", "column"})],
        "code_length": [Interval(numbers.Real, 0, None, closed="left")],
        "entropy": [Interval(numbers.Real, 0, None, closed="left")],
        "objective": [StrOptions({"validation", "evidence"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "cv": [Interval(numbers.Real, 0, 1, closed="neither"), "cv_object"],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "temperature": [tuple],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_restarts": [Interval(numbers.Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "init": [str, "array-like", "sparse matrix"],
        "local_search": ["boolean"],
        "max_search_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "loss": [StrOptions({"l1", "mse"})],
        "inner_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "inner_learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "hypergrad": [StrOptions(set(SOLVERS))],
        "hypergrad_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "neumann_alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "search_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "search_inits": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "patience": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "dtype": [StrOptions({"float64", "float32"})],
        "reference": ["array-like", "sparse matrix", str, None],
        "n_jobs": [numbers.Integral, None],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, model="mean", *, share=None, n_groups=None, nuclear=2.0,
                 nuclear_kind="nuclear", code_length=2.0, entropy=0.1, objective="validation",
                 alpha=1e-6, fit_intercept=True, cv=5,
                 max_iter=100, learning_rate=0.3, temperature=(1.0, 0.05), tol=1e-4,
                 n_iter_no_change=10, n_restarts="auto", init="auto", local_search=True,
                 max_search_iter=1000, loss="l1", inner_steps=10, inner_learning_rate=0.01,
                 hypergrad="cg", hypergrad_iter=10, neumann_alpha=0.01, search_steps=200,
                 search_inits=3, max_epochs=1000, validation_fraction=0.2, patience=100,
                 device="cpu",
                 dtype="float64", reference=None, n_jobs=None, n_threads=None,
                 random_state=None, verbose=0, **kwargs):
        self.model = model
        self.share = share
        self.n_groups = n_groups
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
        self.loss = loss
        self.inner_steps = inner_steps
        self.inner_learning_rate = inner_learning_rate
        self.hypergrad = hypergrad
        self.hypergrad_iter = hypergrad_iter
        self.neumann_alpha = neumann_alpha
        self.search_steps = search_steps
        self.search_inits = search_inits
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.dtype = dtype
        self.reference = reference
        self.n_jobs = n_jobs
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self._set_module_params(kwargs)

    # -- module__ keyword arguments, routed skorch-style ---------------------------------------
    @staticmethod
    def _is_module_key(key):
        return key.startswith("module__") and key != "module__"

    def _set_module_params(self, params):
        for key, value in params.items():
            if self._is_module_key(key):
                setattr(self, key, value)
            else:
                # scikit-learn's estimator checks require that __init__ and set_params never
                # raise (check_do_not_raise_errors_in_init_or_set_params), so fit reports it
                self._unexpected_kwargs = [*getattr(self, "_unexpected_kwargs", []), key]

    def _check_unexpected_kwargs(self):
        bad = getattr(self, "_unexpected_kwargs", [])
        if not bad:
            return
        known = list(super().get_params(deep=False))
        hints = []
        for key in bad:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
        raise TypeError(
            f"SharingDiscoverer got unexpected keyword argument{'s' if len(bad) > 1 else ''} "
            f"{', '.join(hints)}. Keyword arguments of a module model's constructor are "
            "passed as module__<name>=value.")

    def _module_kwargs(self):
        return {k[len("module__"):]: v for k, v in vars(self).items()
                if k.startswith("module__")}

    def get_params(self, deep=True):
        """Get parameters, including the ``module__*`` keyword arguments of a module model."""
        params = super().get_params(deep=deep)
        params.update({k: v for k, v in vars(self).items() if k.startswith("module__")})
        return params

    def set_params(self, **params):
        """Set parameters; ``module__*`` keys are stored for the module's constructor."""
        known = super().get_params(deep=False)
        self._set_module_params({k: params.pop(k) for k in list(params) if k not in known})
        return super().set_params(**params)

    # -- data -------------------------------------------------------------------------------
    def _validate_temperature(self):
        t = self.temperature
        if len(t) != 2 or not all(isinstance(v, numbers.Real) and np.isfinite(v) and v > 0
                                  for v in t):
            raise ValueError("temperature must be a tuple (start, end) of two finite positive "
                             f"numbers, got {t!r}.")
        return float(t[0]), float(t[1])

    def _design(self, X, y):
        """The tied linear-Gaussian form of the chosen model in internal units (see
        :mod:`sharelearn._scaling`): inputs, targets, intercept, and the units."""
        if self.model == "mean":
            _, Y, units = standardize(None, X, center_x="none", center_y="global")
            return np.ones((X.shape[0], 1)), Y, False, units
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        center = "columns" if self.fit_intercept else "none"
        Xs, Ys, units = standardize(X, Y, center_x=center, center_y=center)
        return Xs, Ys, self.fit_intercept, units

    def _splits(self, n_samples, rng):
        cv = self.cv
        if cv is None:  # scikit-learn's convention: the default 5-fold
            cv = 5
        if isinstance(cv, numbers.Integral):
            splitter = KFold(n_splits=int(cv), shuffle=True, random_state=rng.randint(2**31))
        elif isinstance(cv, numbers.Real):
            splitter = ShuffleSplit(n_splits=1, test_size=float(cv),
                                    random_state=rng.randint(2**31))
        else:
            splitter = cv
        shown = f"cv={cv!r}" if isinstance(cv, numbers.Real) else f"cv ({type(cv).__name__})"
        try:
            # a splitter, or an iterable of (train, validation) index pairs
            pairs = (splitter.split(np.zeros((n_samples, 1))) if hasattr(splitter, "split")
                     else _reusable_splits(splitter))
            splits = [_check_split(pair, n_samples) for pair in pairs]
        except ValueError as err:
            raise ValueError(f"{shown} cannot split {n_samples} samples: {err}") from None
        if not splits:
            raise ValueError(f"{shown} gave no (train, validation) splits; pass an int, a "
                             "splitter or a non-empty list of (train, validation) pairs.")
        min_train = 2 if (self.model == "linear" and self.fit_intercept) else 1
        for tr, va in splits:
            if len(tr) < min_train or len(va) < 1:
                raise ValueError(
                    f"Too few samples to split: n_samples={n_samples} gives a split with "
                    f"{len(tr)} training and {len(va)} validation samples; need at least "
                    f"{min_train} and 1.")
        return splits

    def _n_items(self, n_features, n_outputs):
        return n_features if self.model == "mean" else n_features * n_outputs

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
            Targets, required for ``model="linear"``, ignored for ``model="mean"``.

        Returns
        -------
        self : SharingDiscoverer
        """
        self._check_unexpected_kwargs()
        saved = dict(vars(self))
        try:
            self._forget_fit()
            start_time = time.perf_counter()
            with fit_threads(_work_hint(X, y), self.n_threads):
                if not _is_closed_form(self):
                    return self._fit_module(X, y, start_time)
                return self._fit_closed_form(X, y, start_time)
        except BaseException:
            vars(self).clear()
            vars(self).update(saved)
            raise

    def _forget_fit(self):
        """Remove everything an earlier fit left (public ``*_`` attributes and private state)."""
        params = set(self.get_params(deep=False))
        for name in list(vars(self)):
            public_fitted = name.endswith("_") and not name.startswith("_")
            if (public_fitted and name not in params) or name in _PRIVATE_FIT_STATE:
                del self.__dict__[name]

    def _validate_targets(self, y):
        """``y`` as a float64 array of 1 or 2 dimensions (sparse y densified; numeric strings
        converted as numpy converts them, other strings rejected)."""
        if sp.issparse(y):
            y = y.toarray()
        try:
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        except ValueError as err:
            raise ValueError(f"y must hold numbers for model={self.model!r}: {err}") from None
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D, got {y.ndim} dimensions.")
        return y

    def _fit_closed_form(self, X, y, start_time):
        temperature = self._validate_temperature()
        device = _resolve_device(self.device)
        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        if self.model == "linear":
            if y is None:
                raise ValueError("SharingDiscoverer(model='linear') requires y to be passed, "
                                 "but the target y is None: call fit(X, y).")
            X, y = validate_data(self, X, y, multi_output=True, dtype=np.float64)
            y = self._validate_targets(y)
            y_1d = y.ndim == 1
        else:
            X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
            y_1d = False
        _warn_if_standardised_per_feature(X, self.model)
        Xd, Y, intercept, units = self._design(X, y)
        n_items = self._n_items(X.shape[1], Y.shape[1])
        reference = self._partition_param("reference", n_items, (Y.shape[1], Xd.shape[1]))
        start = self._start_partition(n_items, (Y.shape[1], Xd.shape[1]))
        rng = check_random_state(self.random_state)
        everything = [(np.arange(X.shape[0]), np.arange(X.shape[0]))]
        evidence = self.objective == "evidence"
        if evidence and X.shape[0] < 2:
            raise ValueError("objective='evidence' needs at least 2 samples.")
        splits = everything if evidence else self._splits(X.shape[0], rng)
        self._warn_unbounded_penalties(n_items)
        # copies: the user's arrays are never shared with torch
        Xt = torch.tensor(Xd, dtype=dtype, device=device)
        Yt = torch.tensor(Y, dtype=dtype, device=device)
        problem = TiedLinearGaussian(Xt, Yt, splits, fit_intercept=intercept, alpha=self.alpha)
        objective = (EvidenceObjective if evidence else HardObjective)(
            problem, self.nuclear, self.code_length)

        n_columns = self.n_groups
        if n_columns is None:
            n_columns = max(2, min(n_items, 16, _RELAXATION_BUDGET // n_items))
        n_columns = min(int(n_columns), n_items)
        n_restarts = self.n_restarts
        if n_restarts == "auto":
            n_restarts = 3 if n_items * Xd.shape[1] <= _AUTO_RESTART_BUDGET else 0
        seeds = rng.randint(2**31, size=n_restarts + 1)
        # Without relaxations the shared start alone is weak on strongly correlated inputs
        # (smooth signals, images); a ridge estimate's two clusters are one more start there
        # (not when the user chose the start). On independent inputs the shared start finds
        # the same partitions faster (measured: benchmarks/bench_shift.py).
        extra = ([ridge_clusters(problem)] if n_restarts == 0 and Xd.shape[1] > 1
                 and isinstance(self.init, str) and self.init == "auto"
                 and input_correlation(problem) > _CORRELATED_INPUTS else [])
        results = discover(
            problem, objective, seeds, n_relax=n_restarts, start=start, extra_starts=extra,
            batch_size=max(1, _RELAXATION_BUDGET // (n_items * n_columns)),
            search=self.local_search, search_max_iter=self.max_search_iter,
            n_jobs=self.n_jobs, verbose=self.verbose,
            n_columns=n_columns, max_iter=self.max_iter, learning_rate=self.learning_rate,
            temperature=temperature, tol=self.tol, n_iter_no_change=self.n_iter_no_change,
            penalties=dict(nuclear=self.nuclear, code_length=self.code_length,
                           entropy=self.entropy, nuclear_kind=self.nuclear_kind,
                           objective=self.objective))
        if self.verbose:
            for i, r in enumerate(results):
                print(f"[SharingDiscoverer] start {i} ({r['start']}): objective "
                      f"{r['value']:.4f}, {r['n_iter']} relaxation steps, "
                      f"{r['n_moves']} search rounds")
        best, values = _best_start(results, self.max_search_iter, stacklevel=5)

        labels = best["labels"]
        self.sharing_partition_ = labels
        self.n_groups_ = int(labels.max()) + 1
        self.selection_matrix_ = labels_to_selection(labels)
        self.soft_selection_ = best["soft"]
        self.objective_ = best["value"]
        self.validation_loss_ = (None if evidence else float(
            objective.state(labels)["fit"].mean()) * units.y_scale ** 2)
        self.restart_objectives_ = values
        self.loss_curve_ = best["curve"]
        self.n_iter_ = best["n_iter"]
        self.n_search_moves_ = best["n_moves"]
        self._y_1d = y_1d
        self._reference_labels = reference
        self._symmetry_group = None
        self._refit(Xd, Y, intercept, units, labels, dtype, device)
        self.fit_time_ = time.perf_counter() - start_time
        return self

    def _partition_param(self, name, n_items, layer_shape):
        """The partition given as parameter ``name`` (``reference`` or ``init``: labels, a
        hard selection matrix or a named sharing) as labels of the model's items; None when it
        is None."""
        value = getattr(self, name)
        if isinstance(value, str):
            try:
                return named_sharing(value, layer_shape)
            except ValueError as err:
                raise ValueError(f"{name}={value!r}: {err}") from None
        if value is None:
            return None
        labels = _to_partition(value, name)
        if labels.size != n_items:
            owner = "model" if _is_closed_form(self) else "module"
            raise ValueError(f"{name} partitions {labels.size} items, but the {owner} "
                             f"has {n_items} shareable items.")
        return labels

    def _start_partition(self, n_items, layer_shape):
        """The partition the search starts from besides the relaxations (see ``init``)."""
        if isinstance(self.init, str) and self.init == "auto":
            return np.zeros(n_items, dtype=np.int64)
        return self._partition_param("init", n_items, layer_shape)

    def _warn_unbounded_penalties(self, n_items):
        """Without nuclear and code-length penalties nothing bounds the number of groups."""
        if self.local_search and self.nuclear == 0 and self.code_length == 0 and n_items > 16:
            warnings.warn(
                "With nuclear=0 and code_length=0 nothing in the objective limits the number "
                f"of groups: the discrete search may open up to one group per item ({n_items} "
                "here), each round costing more as groups multiply, and may take far longer "
                "than with the default penalties. Give either penalty a positive weight.",
                EfficiencyWarning, stacklevel=5)

    @property
    def log_evidence_(self):
        """Log marginal likelihood of the chosen partition on all the data (no penalties), with
        the precisions at their type-II maximum likelihood, as a density of the targets in the
        user's units. Closed-form models only; computed on first access from the partition's
        sufficient statistics kept by ``fit``."""
        terms = self.__dict__.get("_evidence_terms")
        if terms is None:
            raise AttributeError("log_evidence_ exists after fitting a closed-form model "
                                 "(model='mean' or model='linear').")
        if self.__dict__.get("_log_evidence_value") is None:
            *stats, log_scale = terms
            G, c, yy, n_obs = (torch.as_tensor(t, dtype=torch.float64) for t in stats)
            alpha, beta = fit_precisions(G, c, yy, float(n_obs))
            # the fit ran on Y / y_scale: the density of Y has the Jacobian y_scale^-N
            self._log_evidence_value = float(
                -0.5 * neg2_log_evidence(G, c, yy, float(n_obs), alpha, beta)
                - float(n_obs) * float(log_scale))
        return self._log_evidence_value

    def _refit(self, Xd, Y, intercept, units, labels, dtype, device):
        """Shared values of the chosen partition, fitted on all the (internal) data, and
        mapped back to the user's units."""
        everything = [(np.arange(Xd.shape[0]), np.arange(Xd.shape[0]))]
        Xt = torch.tensor(Xd, dtype=dtype, device=device)
        Yt = torch.tensor(Y, dtype=dtype, device=device)
        full = TiedLinearGaussian(Xt, Yt, everything, fit_intercept=intercept, alpha=self.alpha)
        stats = full.hard_statistics(labels, self.n_groups_)
        # what log_evidence_ needs, computed on first access: the precisions' fixed point costs
        # more than a whole fit of a small problem
        self._evidence_terms = tuple(np.asarray(t.detach().cpu(), dtype=np.float64) for t in (
            stats["G"][0], stats["c"][0], full.yy_tr[0], full.n_tr[0] * full.n_outputs)) + (
            np.log(units.y_scale),)
        self._log_evidence_value = None
        psi = ridge_solve(stats["G"][0], stats["c"][0], self.alpha)
        psi = psi.cpu().numpy().astype(np.float64)
        W = psi[labels].reshape(Y.shape[1], Xd.shape[1])
        if self.model == "mean":
            # the features are the targets of a constant input: one global offset and scale
            self.shared_values_ = psi * units.y_scale + units.y_offset
            self.means_ = W[:, 0] * units.y_scale + units.y_offset
        else:
            self.shared_values_ = psi * units.weight_scale
            self.coef_ = W * units.weight_scale
            b = full.y_mean[0].cpu().numpy() - W @ full.x_mean[0].cpu().numpy()
            x_offset = np.broadcast_to(units.x_offset, (Xd.shape[1],))
            self.intercept_ = (units.y_offset + units.y_scale * b - self.coef_ @ x_offset
                               ).astype(np.float64)

    # -- module models ----------------------------------------------------------------------
    def _check_module_X(self, X, y=None, *, reset):
        """Validated inputs of a module model: int64 tokens for "sequence", else as given."""
        sequence = self.model == "sequence"
        # numeric dtypes are kept (integer tokens stay integers); anything else becomes float64
        numeric = [np.float64, np.float32, np.int64, np.int32, np.int16, np.int8, np.uint8,
                   np.uint16, np.uint32, np.uint64, np.bool_]
        kwargs = dict(reset=reset, dtype=numeric, allow_nd=not sequence)
        if y is None:
            X = validate_data(self, X, **kwargs)
        else:
            X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, **kwargs)
        if X.dtype.kind not in "iub":
            if sequence:
                if not np.all(X == np.round(X)):
                    raise ValueError("model='sequence' needs X to hold integer token ids "
                                     "(one sequence per row), got non-integer values.")
        if sequence:
            X = X.astype(np.int64)
            if X.min() < 0:
                raise ValueError("Negative values in data passed to SharingDiscoverer("
                                 "model='sequence'): X must hold non-negative integer token "
                                 f"ids, got {X.min()}.")
            if not reset and X.max() >= self._n_tokens:
                raise ValueError(f"X holds token {X.max()}, but the network was fitted with "
                                 f"{self._n_tokens} tokens (0..{self._n_tokens - 1}).")
        elif X.dtype.kind in "iub":
            X = X.astype(np.int64)
        return X if y is None else (X, y)

    def _build_module(self, X, n_outputs, seed):
        """The untied module of the fit: built from the class (seeded) or copied."""
        kwargs = self._module_kwargs()
        model = self.model
        if isinstance(model, torch.nn.Module):
            if kwargs:
                raise ValueError("module__* keyword arguments are passed to a module class, but "
                                 f"model is an instance of {type(model).__name__}; pass the "
                                 "class instead or drop " + ", ".join(
                                     f"module__{k}" for k in kwargs) + ".")
            return copy.deepcopy(model)
        if model == "sequence":
            if "n_tokens" not in kwargs:
                _warn_sparse_vocabulary(X)
            kwargs = {"length": X.shape[1], "n_tokens": int(X.max()) + 1,
                      "n_outputs": n_outputs, **kwargs}
            model = SequenceNetwork
        elif not issubclass(model, torch.nn.Module):
            raise ValueError("model must be 'mean', 'linear', 'sequence', a torch.nn.Module "
                             f"subclass or a module instance, got the class {model.__name__}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            try:
                return model(**kwargs)
            except TypeError as err:
                raise ValueError(f"Could not build {model.__name__} with the keyword "
                                 f"arguments {kwargs}: {err}") from None

    def _other_initialisations(self, X, n_outputs, seeds):
        """The untied module at other initialisations (see ``search_inits``)."""
        if not isinstance(self.model, torch.nn.Module):
            return [self._build_module(X, n_outputs, seed) for seed in seeds]

        def resets(module):
            return [m.reset_parameters for m in module.modules()
                    if callable(getattr(m, "reset_parameters", None))]

        if not resets(self.model):
            return []
        out = []
        for seed in seeds:
            module = copy.deepcopy(self.model)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                for reset in resets(module):
                    reset()
            out.append(module)
        return out

    def _module_share(self):
        if self.share is not None:
            return dict(self.share)
        if self.model == "sequence":
            return dict(SEQUENCE_SHARE)
        raise ValueError("A module model needs share, e.g. share={'weight': 0} to share the "
                         "slices of the parameter 'weight' along axis 0.")

    def _module_splits(self, n_samples, rng):
        """(train, validation, early-stopping) indices; only the first cv split is used."""
        everything = np.arange(n_samples)
        stop = None
        if self.validation_fraction is not None:
            try:
                fit, stop = next(ShuffleSplit(
                    n_splits=1, test_size=self.validation_fraction,
                    random_state=rng.randint(2**31)).split(everything))
            except ValueError as err:
                raise ValueError(f"validation_fraction={self.validation_fraction} cannot hold "
                                 f"out samples from {n_samples}: {err}") from None
            if len(fit) < 2:
                raise ValueError(f"Too few samples: validation_fraction="
                                 f"{self.validation_fraction} leaves {len(fit)} of "
                                 f"{n_samples} for the train/validation split; need 2.")
        else:
            fit = everything
        tr, va = self._splits(len(fit), rng)[0]
        return fit[tr], fit[va], stop

    def _fit_module(self, X, y, start_time):
        if self.objective == "evidence":
            raise NotImplementedError(
                "objective='evidence' (the marginal likelihood) is implemented for the "
                "closed-form models 'mean' and 'linear' only, not for module models; use "
                "objective='validation'.")
        if y is None:
            raise ValueError("A module model requires y to be passed, but the target y is "
                             "None: call fit(X, y).")
        temperature = self._validate_temperature()
        device = _resolve_device(self.device)
        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        X, y = self._check_module_X(X, y, reset=True)
        y = self._validate_targets(y)
        y_1d = y.ndim == 1
        Y = y.reshape(-1, 1) if y_1d else y
        rng = check_random_state(self.random_state)
        train, val, stop = self._module_splits(X.shape[0], rng)
        n_restarts = 1 if self.n_restarts == "auto" else int(self.n_restarts)
        module_seed, *seeds = rng.randint(2**31, size=n_restarts + 2)
        template = self._build_module(X, Y.shape[1], module_seed)
        if not isinstance(template, torch.nn.Module):
            raise ValueError(f"model built a {type(template).__name__}, not a torch.nn.Module.")
        share = self._module_share()
        n_items = check_share(template, share)[0]
        template = template.to(device=device, dtype=dtype)
        templates = [template] + [
            t.to(device=device, dtype=dtype) for t in self._other_initialisations(
                X, Y.shape[1], rng.randint(2**31, size=self.search_inits - 1))]

        reference = self._partition_param("reference", n_items, (n_items, 1))
        start_labels = self._start_partition(n_items, (n_items, 1))

        fit_rows = np.concatenate([train, val])
        mean = Y[fit_rows].mean(0)
        scale = Y[fit_rows].std(0)
        scale = np.where(scale > 0, scale, 1.0)
        x_dtype = torch.int64 if X.dtype == np.int64 else dtype
        # copies on the device: the user's arrays are never shared with torch
        Xt = torch.tensor(X, dtype=x_dtype, device=device)
        Yt = torch.tensor((Y - mean) / scale, dtype=dtype, device=device)
        self._check_module_output(template, Xt[:2], Y.shape[1])
        data = (Xt[train], Yt[train], Xt[val], Yt[val])
        n_obs = len(train) * Y.shape[1]

        n_columns = self.n_groups
        if n_columns is None:
            n_columns = max(2, min(n_items, 16))
        n_columns = min(int(n_columns), n_items)
        penalties = dict(nuclear=self.nuclear, code_length=self.code_length,
                         entropy=self.entropy, nuclear_kind=self.nuclear_kind)
        scorer = nettrain.RetrainScorer(
            templates, share, data, steps=self.search_steps, lr=self.inner_learning_rate,
            loss=self.loss, weight_decay=self.alpha, n_obs=n_obs, nuclear=self.nuclear,
            code_length=self.code_length, dtype=dtype, device=device,
            n_jobs=effective_n_jobs(self.n_jobs))

        def make_problem(S):
            return TiedNetworkProblem(template, share, S, *data, loss=self.loss,
                                      weight_decay=self.alpha)

        starts = ["relax"] * n_restarts + ["shared"]
        if self.verbose:
            from tqdm.auto import tqdm

            starts_iter = tqdm(starts, desc="SharingDiscoverer restarts")
        else:
            starts_iter = starts
        results = []
        for start, seed in zip(starts_iter, seeds, strict=True):
            if start == "shared":
                labels = start_labels
                soft, curve, n_iter = None, np.empty(0), 0
            else:
                soft, curve, n_iter = nettrain.relax_network(
                    make_problem, n_items=n_items, n_columns=n_columns, seed=seed,
                    max_iter=self.max_iter, learning_rate=self.learning_rate,
                    temperature=temperature, tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change, penalties=penalties, n_obs=n_obs,
                    inner_steps_per_outer=self.inner_steps,
                    warmup_steps=10 * self.inner_steps, inner_lr=self.inner_learning_rate,
                    solver=self.hypergrad, solver_iter=self.hypergrad_iter,
                    neumann_alpha=self.neumann_alpha, dtype=dtype, device=device)
                labels = canonical_labels(soft.argmax(1))
            if self.local_search:
                labels, value, n_moves, converged = nettrain.network_search(
                    scorer, labels, max_iter=self.max_search_iter)
            else:
                value, n_moves, converged = scorer(labels), 0, True
            results.append(dict(labels=labels, value=float(value), soft=soft, curve=curve,
                                n_iter=n_iter, n_moves=n_moves, converged=converged))
            if self.verbose:
                print(f"[SharingDiscoverer] start {len(results) - 1} ({start}): objective "
                      f"{value:.4f}, {n_iter} relaxation steps, {n_moves} search rounds")
        best, values = _best_start(results, self.max_search_iter, stacklevel=5)
        labels = best["labels"]
        n_groups = int(labels.max()) + 1

        def refit(labels_):
            # The refit starts from the search's retrains of the partition (one per
            # initialisation; the best on the hold-out is kept): from the raw initialisation,
            # full-batch training sometimes sat on a plateau until early stopping ended it
            # (measured at L = 10: test MAE 1.8 against 0.06).
            return nettrain.refit_best(
                scorer.trained_modules(labels_), X=Xt[fit_rows], y=Yt[fit_rows],
                X_stop=None if stop is None else Xt[stop],
                y_stop=None if stop is None else Yt[stop],
                lr=_REFIT_LR_FACTOR * self.inner_learning_rate, loss=self.loss,
                weight_decay=self.alpha, max_epochs=self.max_epochs, patience=self.patience,
                device=device, verbose=self.verbose)

        n_merged = 0
        if self.local_search and stop is not None:
            labels, (fitted, history, _), n_merged = nettrain.holdout_merges(
                scorer, labels, refit, n_obs=n_obs, max_iter=self.max_search_iter)
            n_groups = int(labels.max()) + 1
            if self.verbose and n_merged:
                print(f"[SharingDiscoverer] {n_merged} merge(s) of groups kept on the hold-out: "
                      f"{n_groups} groups")
        else:
            fitted, history, _ = refit(labels)

        # Everything succeeded: only now is the estimator's fitted state written.
        fitted_state = dict(
            sharing_partition_=labels,
            n_groups_=n_groups,
            selection_matrix_=labels_to_selection(labels),
            soft_selection_=best["soft"],
            objective_=float(scorer(labels)),
            validation_loss_=float(scorer.validation_loss(labels)),
            restart_objectives_=values,
            loss_curve_=best["curve"],
            n_iter_=best["n_iter"],
            n_search_moves_=best["n_moves"] + n_merged,
            target_mean_=mean,
            target_scale_=scale,
            history_=history,
        )
        for name, value in fitted_state.items():
            setattr(self, name, value)
        self._y_1d = y_1d
        self._n_tokens = (int(template.embedding.num_embeddings) if self.model == "sequence"
                          else None)
        self._module_share_ = share
        self._module_template = copy.deepcopy(template).cpu()
        self._module_state = {k: v.detach().cpu().numpy().copy()
                              for k, v in fitted.state_dict().items()}
        self._reference_labels = reference
        self._symmetry_group = None
        self.fit_time_ = time.perf_counter() - start_time
        return self

    @staticmethod
    def _check_module_output(module, X_few, n_outputs):
        try:
            with torch.no_grad():
                out = module(X_few)
        except (RuntimeError, IndexError, TypeError, ValueError) as err:
            raise ValueError(f"The module {type(module).__name__} failed on a batch of X: "
                             f"{err}") from None
        if not isinstance(out, torch.Tensor) or out.shape[0] != X_few.shape[0] or \
                out.reshape(out.shape[0], -1).shape[1] != n_outputs:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"The module must map a batch of n samples to n x {n_outputs} "
                             f"predictions (one per target), got {shape} for n = "
                             f"{X_few.shape[0]}.")

    def to_module(self):
        """The fitted network with its hard sharing, as a new CPU module.

        The tied parameters stay parametrized (:func:`sharelearn.networks.tie_parameters`), so
        training it further keeps the discovered sharing. Module models only.

        Returns
        -------
        module : torch.nn.Module
        """
        check_is_fitted(self)
        if _is_closed_form(self):
            raise AttributeError(f"to_module is available for module models only, not for "
                                 f"model={self.model!r}.")
        module = copy.deepcopy(self._module_template)
        dtype = next(iter(self._module_state.values())).dtype
        hard = torch.as_tensor(labels_to_selection(self.sharing_partition_, sparse=False),
                               dtype=torch.float64 if dtype == np.float64 else torch.float32)
        tie_parameters(module, self._module_share_, hard)
        module.load_state_dict({k: torch.from_numpy(v.copy())
                                for k, v in self._module_state.items()})
        return module

    def _predict_module(self, X):
        check_is_fitted(self)
        X = self._check_module_X(X, reset=False)
        module = self.to_module()
        dtype = next(module.parameters()).dtype
        Xt = torch.tensor(X, dtype=torch.int64 if X.dtype == np.int64 else dtype)
        with torch.no_grad():
            out = module(Xt)
        out = out.reshape(out.shape[0], -1).numpy().astype(np.float64)
        out = out * self.target_scale_ + self.target_mean_
        return out[:, 0] if self._y_1d else out

    # -- using the fitted sharing ----------------------------------------------------------
    def transform(self, X):
        """Pool features by group (``"mean"``) or apply the tied linear map (``"linear"``).

        For ``model="mean"`` each output column is the average of the features of one group, as
        :class:`~sklearn.cluster.FeatureAgglomeration` does; ``inverse_transform`` broadcasts it
        back. For ``model="linear"`` the output is ``X @ coef_.T + intercept_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if self.model == "mean":
            counts = np.bincount(self.sharing_partition_, minlength=self.n_groups_)
            return (X @ self.selection_matrix_) / counts
        return X @ self.coef_.T + self.intercept_

    @_for_models(_is_model("mean"), _MEAN_ONLY)
    def inverse_transform(self, X):
        """Broadcast group values back to the features (``model="mean"`` only)."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_groups_:
            raise ValueError(f"X must have shape (n_samples, {self.n_groups_}), got {X.shape}.")
        return X[:, self.sharing_partition_]

    @_for_models(_predicts, _NO_PREDICT)
    def predict(self, X):
        """Output of the tied linear map or of the fitted network (not for ``"mean"``)."""
        check_is_fitted(self)
        if not _is_closed_form(self):
            return self._predict_module(X)
        out = self.transform(X)
        return out[:, 0] if self._y_1d else out

    @property
    def symmetry_group_(self):
        """The largest group of output and input permutations that keeps the discovered
        sharing (:class:`sharelearn.symmetry.SymmetryGroup`, with ``.name`` and ``.order``).

        Computed on first access. The layer is ``coef_`` (``n_outputs x n_features``) for
        ``"linear"`` and the column of means (``n_features x 1``) for ``"mean"``.
        """
        check_is_fitted(self)
        if getattr(self, "_symmetry_group", None) is None:
            shape = (self.coef_.shape if self.model == "linear"
                     else (self.sharing_partition_.size, 1))
            self._symmetry_group = symmetry_group(self.sharing_partition_, shape)
        return self._symmetry_group

    @_for_models(_is_closed_form, _NO_TRANSFORM)
    def get_feature_names_out(self, input_features=None):
        """Output names: ``sharingdiscoverer0, 1, ...`` (one per group or output)."""
        check_is_fitted(self)
        n_out = self.n_groups_ if self.model == "mean" else self.coef_.shape[0]
        return np.asarray([f"sharingdiscoverer{i}" for i in range(n_out)], dtype=object)

    def score(self, X, y=None):
        """Greater is better.

        With ``reference`` set: minus the partition distance between the discovered sharing and
        the reference (0 = exact recovery; X and y are ignored), so that a grid search over the
        penalties picks the scheme nearest the truth. Without it: minus the mean squared error of
        the fitted tied model on ``(X, y)`` (``"mean"``: of X around ``means_``); for module
        models minus the held-out ``loss`` (mean absolute error for ``"l1"``, MSE for ``"mse"``)
        in the targets' own units.
        """
        check_is_fitted(self)
        if self._reference_labels is not None:
            return -partition_distance(self.sharing_partition_, self._reference_labels)
        if not _is_closed_form(self):
            if y is None:
                raise ValueError("score of a module model without a reference requires y.")
            pred = self.predict(X)
            y = np.asarray(y, dtype=np.float64)
            if y.shape != pred.shape:
                raise ValueError(f"y must have shape {pred.shape}, got {y.shape}.")
            err = y - pred
            return -float(np.mean(np.abs(err) if self.loss == "l1" else err ** 2))
        if self.model == "mean":
            X = validate_data(self, X, reset=False, dtype=np.float64)
            return -float(np.mean((X - self.means_) ** 2))
        if y is None:
            raise ValueError("score of model='linear' without a reference requires y.")
        pred = self.transform(X)
        y = np.asarray(y, dtype=np.float64)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if Y.shape != pred.shape:
            raise ValueError(f"y must have {pred.shape[0]} rows and {pred.shape[1]} outputs, "
                             f"got shape {y.shape}.")
        return -float(np.mean((Y - pred) ** 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = not _is_model("mean")(self)
        tags.input_tags.sparse = False
        if _is_model("sequence")(self):
            # token ids: the estimator checks then draw non-negative integer X
            tags.input_tags.categorical = True
            tags.input_tags.positive_only = True
        if not _is_closed_form(self):
            tags.transformer_tags = None
        return tags


# Networks predict but do not transform. The descriptor is applied after the class is built:
# set_output's wrapping of ``transform`` (done when the class is created) would hide it.
SharingDiscoverer.transform = _for_models(_is_closed_form, _NO_TRANSFORM)(
    SharingDiscoverer.transform)
SharingDiscoverer.fit_transform = _for_models(_is_closed_form, _NO_TRANSFORM)(
    TransformerMixin.fit_transform)
