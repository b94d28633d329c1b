"""SharingDiscoverer: learn which of a model's parameters are tied together."""

from __future__ import annotations

import numbers
import time
import warnings

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, ShuffleSplit, check_cv
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .bilevel import run_restart
from .inner import TiedLinearGaussian, ridge_solve
from .partition import _to_partition, labels_to_selection, partition_distance
from .search import EvidenceObjective, HardObjective
from .symmetry import named_sharing, symmetry_group

__all__ = ["SharingDiscoverer"]

_MODELS = ("mean", "linear")
# The relaxation holds a few P x r tensors; above this many entries the candidate count shrinks.
_RELAXATION_BUDGET = 2**20
# n_restarts="auto" relaxes only while one step (O(items x inputs x groups)) stays cheap. Above
# it the search from the shared partition reached the same objective 100x faster (measured on
# valid 70 -> 68, 4,760 entries, and the 64-input small-data curve: benchmarks/bench_shift.py).
_AUTO_RESTART_BUDGET = 2**16


def _is_model(name):
    """Method available only for one built-in model (``hasattr`` reflects it)."""
    return lambda est: est.model == name


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
    starts, rounded by argmax, and polished by an exact discrete search (one-item moves and merges
    of groups); the best partition is refitted on all the data.

    Parameters
    ----------
    model : {"mean", "linear"}, default="mean"
        ``"mean"``: unsupervised, ``fit(X)``; items are the ``n_features`` means.
        ``"linear"``: supervised, ``fit(X, y)`` for ``y = W x + b``; items are the entries of
        ``W`` (``n_outputs x n_features``, row-major). The intercept ``b`` has one free value per
        output: it is never shared and never penalised (it is removed by centring each training
        split), see ``fit_intercept``.
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
    alpha : float, default=1e-6
        Ridge penalty on the shared values.
    fit_intercept : bool, default=True
        Fit a free intercept per output (``model="linear"`` only).
    cv : int, float or cross-validation splitter, default=5
        Train/validation splits of the outer objective: an int is a shuffled K-fold, a float in
        (0, 1) a single random hold-out of that fraction; a splitter (e.g. ``ShuffleSplit``) or
        an iterable of (train, validation) index arrays is used as given. Averaging several
        splits lowers the variance of the objective.
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
        Relaxation restarts from random logits; one more search always starts from the fully
        shared partition, and the partition with the best objective is kept. ``"auto"`` runs 3
        restarts when one relaxation step is cheap (items x inputs <= 2**16, e.g. a 30 x 32 map)
        and none above, where the search from the shared partition alone is used.
    local_search : bool, default=True
        Polish each rounded partition by the exact discrete search.
    max_search_iter : int, default=1000
        Cap on accepted rounds of the discrete search per start; reaching it raises a
        ``ConvergenceWarning``.
    device : {"cpu", "cuda", "auto"}, default="cpu"
    dtype : {"float64", "float32"}, default="float64"
    reference : array-like, str or None, default=None
        A known partition of the items (labels or a hard selection matrix) used by ``score``,
        or a named one built for the model's own layer shape (see
        :func:`sharelearn.symmetry.named_sharing`): ``"shift"``, ``"permutation"``,
        ``"shared"`` or ``"unshared"``.
    n_jobs : int or None, default=None
        Restarts run in parallel with joblib.
    random_state : int, RandomState instance or None, default=None
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
    shared_values_ : ndarray of shape (n_groups_,)
        The shared values ``psi`` refitted on all the data.
    means_ : ndarray of shape (n_features,)
        ``model="mean"`` only: the tied means.
    coef_ : ndarray of shape (n_outputs, n_features)
        ``model="linear"`` only: the tied linear map.
    intercept_ : ndarray of shape (n_outputs,)
        ``model="linear"`` only.
    objective_ : float
        Outer objective of the chosen partition.
    validation_loss_ : float or None
        Its mean validation MSE over the splits (``None`` for ``objective="evidence"``).
    log_evidence_ : float
        Log marginal likelihood of the chosen partition on all the data, with the precisions at
        their type-II maximum likelihood and without the penalties (reported for both
        objectives).
    restart_objectives_ : ndarray of shape (n_restarts + 1,)
        Objective reached from each start (the last from the shared start).
    loss_curve_ : ndarray
        Relaxed objective per outer iteration of the winning restart.
    n_iter_ : int
        Outer iterations of the winning restart.
    n_search_moves_ : int
        Accepted rounds of the discrete search for the winning restart.
    fit_time_ : float
        Wall time of ``fit`` in seconds.
    symmetry_group_ : SymmetryGroup
        The discovered symmetry, named (computed on first access).
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
        "model": [StrOptions(set(_MODELS))],
        "n_groups": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "nuclear": [Interval(numbers.Real, 0, None, closed="left")],
        "nuclear_kind": [StrOptions({"nuclear", "column"})],
        "code_length": [Interval(numbers.Real, 0, None, closed="left")],
        "entropy": [Interval(numbers.Real, 0, None, closed="left")],
        "objective": [StrOptions({"validation", "evidence"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "cv": [Interval(numbers.Integral, 2, None, closed="left"),
               Interval(numbers.Real, 0, 1, closed="neither"), "cv_object"],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "temperature": [tuple],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_restarts": [Interval(numbers.Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "local_search": ["boolean"],
        "max_search_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "dtype": [StrOptions({"float64", "float32"})],
        "reference": ["array-like", "sparse matrix", str, None],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, model="mean", *, n_groups=None, nuclear=2.0, nuclear_kind="nuclear",
                 code_length=2.0, entropy=0.1, objective="validation", alpha=1e-6,
                 fit_intercept=True, cv=5,
                 max_iter=100, learning_rate=0.3, temperature=(1.0, 0.05), tol=1e-4,
                 n_iter_no_change=10, n_restarts="auto", local_search=True,
                 max_search_iter=1000, device="cpu", dtype="float64", reference=None,
                 n_jobs=None, random_state=None, verbose=0):
        self.model = model
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
        self.local_search = local_search
        self.max_search_iter = max_search_iter
        self.device = device
        self.dtype = dtype
        self.reference = reference
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # -- data -------------------------------------------------------------------------------
    def _validate_temperature(self):
        t = self.temperature
        if len(t) != 2 or not all(isinstance(v, numbers.Real) and v > 0 for v in t):
            raise ValueError("temperature must be a tuple (start, end) of two positive numbers, "
                             f"got {t!r}.")
        return float(t[0]), float(t[1])

    def _design(self, X, y):
        """The tied linear-Gaussian form of the chosen model: inputs, targets, intercept."""
        if self.model == "mean":
            return np.ones((X.shape[0], 1)), X, False
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, Y, self.fit_intercept

    def _splits(self, n_samples, rng):
        cv = self.cv
        if isinstance(cv, numbers.Integral):
            splitter = KFold(n_splits=int(cv), shuffle=True, random_state=rng.randint(2**31))
        elif isinstance(cv, numbers.Real):
            splitter = ShuffleSplit(n_splits=1, test_size=float(cv),
                                    random_state=rng.randint(2**31))
        else:
            splitter = check_cv(cv)  # wraps an iterable of (train, validation) index pairs
        dummy = np.zeros((n_samples, 1))
        try:
            splits = [(np.asarray(tr), np.asarray(va)) for tr, va in splitter.split(dummy)]
        except ValueError as err:
            raise ValueError(f"cv={cv!r} cannot split {n_samples} samples: {err}") from None
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

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets, required for ``model="linear"``, ignored for ``model="mean"``.

        Returns
        -------
        self : SharingDiscoverer
        """
        start_time = time.perf_counter()
        temperature = self._validate_temperature()
        device = _resolve_device(self.device)
        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        if self.model == "linear":
            if y is None:
                raise ValueError("SharingDiscoverer(model='linear') requires y to be passed, "
                                 "but the target y is None: call fit(X, y).")
            X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                                 dtype=np.float64)
            if y.ndim > 2:
                raise ValueError(f"y must be 1-D or 2-D, got {y.ndim} dimensions.")
            self._y_1d = y.ndim == 1
        else:
            X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        Xd, Y, intercept = self._design(X, y)
        n_items = self._n_items(X.shape[1], Y.shape[1])
        reference = None
        layer_shape = (Y.shape[1], Xd.shape[1])
        if isinstance(self.reference, str):
            reference = named_sharing(self.reference, layer_shape)
        elif self.reference is not None:
            reference = _to_partition(self.reference, "reference")
            if reference.size != n_items:
                raise ValueError(f"reference partitions {reference.size} items, but the model "
                                 f"has {n_items} shareable items.")
        rng = check_random_state(self.random_state)
        everything = [(np.arange(X.shape[0]), np.arange(X.shape[0]))]
        evidence = self.objective == "evidence"
        if evidence and X.shape[0] < 2:
            raise ValueError("objective='evidence' needs at least 2 samples.")
        splits = everything if evidence else self._splits(X.shape[0], rng)
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
        starts = ["relax"] * n_restarts + ["shared"]
        common = dict(
            n_columns=n_columns, max_iter=self.max_iter, learning_rate=self.learning_rate,
            temperature=temperature, tol=self.tol, n_iter_no_change=self.n_iter_no_change,
            penalties=dict(nuclear=self.nuclear, code_length=self.code_length,
                           entropy=self.entropy, nuclear_kind=self.nuclear_kind,
                           objective=self.objective),
            search=self.local_search, search_max_iter=self.max_search_iter)
        tasks = (delayed(run_restart)(problem, objective, start=s, seed=seed, **common)
                 for s, seed in zip(starts, seeds, strict=True))
        results = Parallel(n_jobs=self.n_jobs, return_as="generator")(tasks)
        if self.verbose:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(starts), desc="SharingDiscoverer restarts")
        results = list(results)
        if self.verbose:
            for i, r in enumerate(results):
                print(f"[SharingDiscoverer] start {i} ({r['start']}): objective "
                      f"{r['value']:.4f}, {r['n_iter']} relaxation steps, "
                      f"{r['n_moves']} search rounds")
        values = np.array([r["value"] for r in results])
        best = results[int(np.argmin(values))]
        if not best["converged"]:
            warnings.warn(
                f"The discrete search stopped at its cap of {common['search_max_iter']} rounds "
                "while moves still improved the objective; the partition may not be a local "
                "optimum.", ConvergenceWarning, stacklevel=2)

        labels = best["labels"]
        self.sharing_partition_ = labels
        self.n_groups_ = int(labels.max()) + 1
        self.selection_matrix_ = labels_to_selection(labels)
        self.soft_selection_ = best["soft"]
        self.objective_ = best["value"]
        if evidence:
            self.validation_loss_ = None
            self.log_evidence_ = self._log_evidence(objective, labels)
        else:
            self.validation_loss_ = float(objective.state(labels)["fit"].mean())
            full = TiedLinearGaussian(Xt, Yt, everything, fit_intercept=intercept,
                                      alpha=self.alpha)
            self.log_evidence_ = self._log_evidence(EvidenceObjective(full, 0, 0), labels)
        self.restart_objectives_ = values
        self.loss_curve_ = best["curve"]
        self.n_iter_ = best["n_iter"]
        self.n_search_moves_ = best["n_moves"]
        self._reference_labels = reference
        self._symmetry_group = None
        self._refit(Xd, Y, intercept, labels, dtype, device)
        self.fit_time_ = time.perf_counter() - start_time
        return self

    @staticmethod
    def _log_evidence(objective, labels):
        """Log marginal likelihood of a hard partition on all the data (no penalties)."""
        plain = EvidenceObjective(objective.problem, 0.0, 0.0)
        return -0.5 * plain.state(labels)["value"]

    def _refit(self, Xd, Y, intercept, labels, dtype, device):
        """Shared values of the chosen partition, fitted on all the data."""
        everything = [(np.arange(Xd.shape[0]), np.arange(Xd.shape[0]))]
        Xt = torch.tensor(Xd, dtype=dtype, device=device)
        Yt = torch.tensor(Y, dtype=dtype, device=device)
        full = TiedLinearGaussian(Xt, Yt, everything, fit_intercept=intercept, alpha=self.alpha)
        stats = full.hard_statistics(labels, self.n_groups_)
        psi = ridge_solve(stats["G"][0], stats["c"][0], self.alpha)
        psi = psi.cpu().numpy().astype(np.float64)
        W = psi[labels].reshape(Y.shape[1], Xd.shape[1])
        self.shared_values_ = psi
        if self.model == "mean":
            self.means_ = W[:, 0]
        else:
            self.coef_ = W
            b = full.y_mean[0].cpu().numpy() - W @ full.x_mean[0].cpu().numpy()
            self.intercept_ = b.astype(np.float64)

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

    @available_if(_is_model("mean"))
    def inverse_transform(self, X):
        """Broadcast group values back to the features (``model="mean"`` only)."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_groups_:
            raise ValueError(f"X must have shape (n_samples, {self.n_groups_}), got {X.shape}.")
        return X[:, self.sharing_partition_]

    @available_if(_is_model("linear"))
    def predict(self, X):
        """Output of the tied linear map (``model="linear"`` only)."""
        check_is_fitted(self)
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
        the fitted tied model on ``(X, y)`` (``"mean"``: of X around ``means_``).
        """
        check_is_fitted(self)
        if self._reference_labels is not None:
            return -partition_distance(self.sharing_partition_, self._reference_labels)
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
        tags.target_tags.required = self.model == "linear"
        tags.input_tags.sparse = False
        return tags
