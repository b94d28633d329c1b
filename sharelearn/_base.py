"""What every sharelearn estimator shares: parameters, validation, the fit's orchestration.

An estimator validates its parameters and data, builds a model of :mod:`sharelearn.models`,
hands it to the one outer loop (:func:`sharelearn.outer.discover`) and sets the fitted
attributes the model returns; the mathematics lives in the models, the loop and the search.
:class:`SharingDiscoverer` (closed-form models) and :class:`NetworkSharingDiscoverer` (torch
modules) are the two families over this base.
"""

from __future__ import annotations

import difflib
import numbers
import time
import warnings
import weakref

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._threads import fit_threads
from .outer import discover
from .partition import _to_partition, labels_to_selection, partition_distance
from .penalties import Penalties
from .symmetry import named_sharing, symmetry_group

__all__ = ["BaseDiscoverer"]

def _best_start(results, cap, stacklevel):
    """The start with the lowest objective and every start's objective; a ConvergenceWarning
    (pointing ``stacklevel`` frames up: the user's call of ``fit``, past scikit-learn's
    ``_fit_context`` wrapper) when the search of any start stopped at its cap: a start that
    stopped early may have been beaten only because it stopped."""
    values = np.array([r.value for r in results])
    winner = int(np.argmin(values))
    best = results[winner]
    capped = [i for i, r in enumerate(results) if not r.converged]
    if capped:
        which = ("the winning start" if winner in capped
                 else f"{len(capped)} of {len(results)} starts")
        warnings.warn(
            f"The discrete search stopped at its cap of {cap} rounds ({which}) while moves "
            "still improved the objective; the partition may not be a local optimum. Raise "
            "max_search_iter.", ConvergenceWarning, stacklevel=stacklevel)
    return best, values


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


def validate_numbers(estimator, X="no_validation", y="no_validation", **kwargs):
    """scikit-learn's ``validate_data``, whose error for text that is no number names the
    array that holds it (numpy's own says only "could not convert string to float")."""
    try:
        return validate_data(estimator, X, y, **kwargs)
    except ValueError as err:
        if "could not convert" not in str(err):
            raise
        try:  # which array holds the text: X, or else y
            check_array(X, dtype=np.float64, ensure_2d=False, allow_nd=True,
                        ensure_all_finite=False, ensure_min_samples=0, ensure_min_features=0)
            name = "y"
        except ValueError:
            name = "X"
        advice = ("Encode text as numbers first (e.g. with sklearn.preprocessing."
                  "OrdinalEncoder)." if name == "X" else "Class labels are targets of "
                  "NetworkSharingClassifier.")
        raise ValueError(f"{name} must hold numbers for {type(estimator).__name__}: {err}. "
                         f"{advice}") from None


def _work_hint(X, y):
    """A size hint of a fit for the thread choice: inputs squared times outputs (the cost of a
    closed-form problem's statistics), from the shapes alone, before any validation."""
    def trailing(a):  # the size of one sample, where the array-like says its shape
        shape = getattr(a, "shape", None)
        return int(np.prod(shape[1:])) if shape is not None and len(shape) > 1 else 1

    return float(trailing(X)) ** 2 * trailing(y)


class _Integer(Interval):
    """An interval of ints that refuses ``True`` and ``False``, which Python counts as the ints
    1 and 0 (``n_candidate_groups=True`` ran as 1)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)


def _without_bools(constraints):
    """``constraints`` with every interval of ints made an :class:`_Integer`."""
    return {name: [_Integer(c.type, c.left, c.right, closed=c.closed)
                   if isinstance(c, Interval) and c.type is numbers.Integral else c
                   for c in options]
            for name, options in constraints.items()}


def _resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; "
                         "use device='cpu' or device='auto'.")
    return torch.device(device)




class BaseDiscoverer(BaseEstimator):
    """Base of the sharelearn estimators (not for direct use).

    Subclasses define ``__init__`` (scikit-learn reads the parameters from its signature),
    ``_fit(X, y, rng)`` returning ``(model, start, extra_starts, seeds, fitted)`` after
    validating the data, and the prediction methods.
    """

    _parameter_constraints = _without_bools({
        "n_candidate_groups": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "nuclear": [Interval(numbers.Real, 0, None, closed="left")],
        "nuclear_kind": [StrOptions({"nuclear", "column"})],
        "code_length": [Interval(numbers.Real, 0, None, closed="left")],
        "entropy": [Interval(numbers.Real, 0, None, closed="left")],
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
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "dtype": [StrOptions({"float64", "float32"})],
        "reference": ["array-like", "sparse matrix", str, None],
        # joblib's convention: -1 all cores, -2 all but one, ...; 0 means nothing
        "n_jobs": [Interval(numbers.Integral, None, -1, closed="right"),
                   Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    })

    # What a fit leaves besides its public ``*_`` attributes; a new fit removes all of it first.
    _PRIVATE_FIT_STATE = ("_y_1d", "_evidence_terms", "_log_evidence_value",
                          "_reference_labels", "_symmetry_group", "_structure", "_model")

    # -- the fit ---------------------------------------------------------------------------------
    def _fit_all_or_nothing(self, X, y):
        """Run the fit; a call that raises leaves the estimator exactly as it was before it, and
        a successful call replaces every fitted attribute."""
        saved = dict(vars(self))
        try:
            self._forget_fit()
            start_time = time.perf_counter()
            with fit_threads(_work_hint(X, y), self.n_threads):
                self._fit(X, y)
            self.fit_time_ = time.perf_counter() - start_time
            return self
        except BaseException:
            vars(self).clear()
            vars(self).update(saved)
            raise

    def _forget_fit(self):
        """Remove everything an earlier fit left (public ``*_`` attributes and private state)."""
        params = set(self.get_params(deep=False))
        for name in list(vars(self)):
            public_fitted = name.endswith("_") and not name.startswith("_")
            if (public_fitted and name not in params) or name in self._PRIVATE_FIT_STATE:
                del self.__dict__[name]

    def _run(self, model, *, seeds, n_restarts, start, extra_starts=(), hypotheses=None,
             hypothesis_start=True, n_jobs=None):
        """The outer loop on a prepared model, then the model's refit; sets the fitted
        attributes common to every model and those the model returns. ``n_jobs``: the workers
        the memory budget holds (None: ``self.n_jobs``)."""
        temperature = self._validate_temperature()
        n_columns = (self.n_candidate_groups if self.n_candidate_groups is not None
                     else model.default_columns())
        n_columns = min(int(n_columns), model.n_items)
        penalties = Penalties.from_params(nuclear=self.nuclear, code_length=self.code_length,
                                          entropy=self.entropy, nuclear_kind=self.nuclear_kind)
        self._warn_unbounded_penalties(model.n_items)
        objective, results, hypotheses_scored = discover(
            model, penalties, seeds, n_relax=n_restarts, n_columns=n_columns, start=start,
            extra_starts=extra_starts, hypotheses=hypotheses, hypothesis_start=hypothesis_start,
            relax_if_explained=not (isinstance(self.n_restarts, str) and self.n_restarts == "auto"),
            search=self.local_search,
            search_max_iter=self.max_search_iter,
            n_jobs=self.n_jobs if n_jobs is None else n_jobs, verbose=self.verbose,
            max_iter=self.max_iter, learning_rate=self.learning_rate, temperature=temperature,
            tol=self.tol, n_iter_no_change=self.n_iter_no_change)
        if self.verbose:
            for i, r in enumerate(results):
                print(f"[{type(self).__name__}] start {i} ({r.kind}): objective "
                      f"{r.value:.4f}, {r.n_iter} relaxation steps, {r.n_moves} search rounds")
        best, values = _best_start(results, self.max_search_iter, stacklevel=7)
        labels, fitted = model.refit(best.labels, objective)
        extra_moves = fitted.pop("_extra_moves", 0)
        attributes = dict(
            sharing_partition_=labels,
            n_groups_=int(labels.max()) + 1,
            selection_matrix_=labels_to_selection(labels),
            soft_selection_=best.soft,
            objective_=best.value,
            restart_objectives_=values,
            loss_curve_=best.curve,
            # relaxation steps, then search rounds (the last, which found no improving move,
            # included); a start only scored counts one, so n_iter_ >= 1 as scikit-learn has it
            n_iter_=best.n_iter + best.n_moves + int(best.converged),
            n_search_moves_=best.n_moves + extra_moves,
        )
        attributes.update(fitted)
        attributes["hypotheses_"] = _hypothesis_table(model, hypotheses_scored, labels,
                                                      best.value)
        model.release()
        # everything succeeded: only now is the fitted state written
        for name, value in attributes.items():
            setattr(self, name, value)
        self._model = model
        self._symmetry_group = None
        self._structure = None

    def _warn_unbounded_penalties(self, n_items):
        """Without nuclear and code-length penalties nothing bounds the number of groups."""
        if self.local_search and self.nuclear == 0 and self.code_length == 0 and n_items > 16:
            from sklearn.exceptions import EfficiencyWarning

            warnings.warn(
                "With nuclear=0 and code_length=0 nothing in the objective limits the number "
                f"of groups: the discrete search may open up to one group per item ({n_items} "
                "here), each round costing more as groups multiply, and may take far longer "
                "than with the default penalties. Give either penalty a positive weight.",
                EfficiencyWarning, stacklevel=7)

    # -- parameters and data ----------------------------------------------------------------------
    def _record_unexpected(self, kwargs):
        """Keep unknown keyword arguments (name -> value) for ``fit`` and ``clone`` to report:
        scikit-learn's estimator checks require that ``__init__`` and ``set_params`` never
        raise (check_do_not_raise_errors_in_init_or_set_params)."""
        if kwargs:
            self._unexpected_kwargs = {**getattr(self, "_unexpected_kwargs", {}), **kwargs}

    def get_params(self, deep=True):
        """Get parameters; unknown keyword arguments given to ``__init__`` or ``set_params``
        are included, so that an estimator rebuilt from them (``clone``) still reports them."""
        params = super().get_params(deep=deep)
        params.update(getattr(self, "_unexpected_kwargs", {}))
        return params

    def set_params(self, **params):
        """Set parameters; unknown ones are reported by ``fit`` (with the closest name)."""
        known = BaseEstimator.get_params(self, deep=False)
        self._record_unexpected({k: params.pop(k) for k in list(params) if k not in known})
        return BaseEstimator.set_params(self, **params)

    def __sklearn_clone__(self):
        """``sklearn.base.clone``, which ``cross_val_score``, ``GridSearchCV`` and the other
        model-selection tools call before any fit: an unknown keyword argument raises the
        TypeError that ``fit`` raises, instead of running a search in which every fit fails."""
        self._check_unexpected_kwargs()
        return super().__sklearn_clone__()

    def _unexpected_advice(self):
        """What the error on an unknown keyword says besides the closest name."""
        if "module" in self._get_param_names():  # the network estimators
            return ("Keyword arguments of the module's constructor are passed as "
                    "module__<name>=value.")
        return ("The parameters of networks (share, loss, module__<name>, ...) belong to "
                "NetworkSharingDiscoverer.")

    def _check_unexpected_kwargs(self, advice=None):
        """A TypeError naming each unknown keyword argument and the closest parameter."""
        bad = list(getattr(self, "_unexpected_kwargs", {}))
        if not bad:
            return
        if advice is None:
            advice = self._unexpected_advice()
        known = list(BaseEstimator.get_params(self, deep=False))
        hints = []
        for key in bad:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
        raise TypeError(
            f"{type(self).__name__} got unexpected keyword argument{'s' if len(bad) > 1 else ''}"
            f" {', '.join(hints)}. {advice}")

    def _validate_temperature(self):
        t = self.temperature
        if len(t) != 2 or not all(isinstance(v, numbers.Real) and np.isfinite(v) and v > 0
                                  for v in t):
            raise ValueError("temperature must be a tuple (start, end) of two finite positive "
                             f"numbers, got {t!r}.")
        return float(t[0]), float(t[1])

    def _torch_setup(self):
        """``(dtype, device)`` of the fit."""
        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        return dtype, _resolve_device(self.device)

    def _validate_targets(self, y, what):
        """``y`` as a float64 array of 1 or 2 dimensions (sparse y densified; numeric strings
        converted as numpy converts them, other strings rejected)."""
        if sp.issparse(y):
            y = y.toarray()
        try:
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        except ValueError as err:
            raise ValueError(f"y must hold numbers for {what}: {err}") from None
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D, got {y.ndim} dimensions.")
        return y

    def _splits(self, n_samples, rng, min_train=1, classes=None):
        """The (train, validation) pairs of ``cv``; ``classes`` (class codes of the samples, for
        a classifier): an int ``cv`` is stratified when every class has at least ``cv``
        samples, as scikit-learn's ``check_cv`` does for classifiers."""
        cv = self.cv
        if cv is None:  # scikit-learn's convention: the default 5-fold
            cv = 5
        if isinstance(cv, numbers.Integral):
            stratify = classes is not None and np.bincount(classes).min() >= int(cv)
            splitter = (StratifiedKFold if stratify else KFold)(
                n_splits=int(cv), shuffle=True, random_state=rng.randint(2**31))
        elif isinstance(cv, numbers.Real):
            splitter = ShuffleSplit(n_splits=1, test_size=float(cv),
                                    random_state=rng.randint(2**31))
        else:
            splitter = cv
        shown = f"cv={cv!r}" if isinstance(cv, numbers.Real) else f"cv ({type(cv).__name__})"
        # a network first holds out its early-stopping samples: cv splits what is left
        held = getattr(self, "validation_fraction", None)
        if held is None:
            what, advice = f"{n_samples} samples", "Pass more samples or a smaller cv."
        else:
            what = (f"the {n_samples} samples left once validation_fraction={held!r} has held "
                    "out the early-stopping samples")
            advice = ("Pass more samples, a smaller cv, or a smaller validation_fraction "
                      "(None holds out nothing).")
        try:
            # a splitter, or an iterable of (train, validation) index pairs
            pairs = (splitter.split(np.zeros((n_samples, 1)), classes)
                     if hasattr(splitter, "split") else _reusable_splits(splitter))
            splits = [_check_split(pair, n_samples) for pair in pairs]
        except ValueError as err:
            raise ValueError(f"{shown} cannot split {what}: {err} {advice}") from None
        if not splits:
            raise ValueError(f"{shown} gave no (train, validation) splits; pass an int, a "
                             "splitter or a non-empty list of (train, validation) pairs.")
        for tr, va in splits:
            if len(tr) < min_train or len(va) < 1:
                raise ValueError(
                    f"Too few samples to split: {shown} on {what} gives a split with "
                    f"{len(tr)} training and {len(va)} validation samples; need at least "
                    f"{min_train} and 1. {advice}")
        return splits

    def _partition_param(self, name, n_items, layer_shape, owner="model"):
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
            raise ValueError(f"{name} partitions {labels.size} items, but the {owner} "
                             f"has {n_items} shareable items.")
        return labels

    def _start_partition(self, n_items, layer_shape, owner="model"):
        """The partition the search starts from besides the relaxations (see ``init``)."""
        if self._init_is_auto():
            return np.zeros(n_items, dtype=np.int64)
        return self._partition_param("init", n_items, layer_shape, owner)

    def _init_is_auto(self):
        return isinstance(self.init, str) and self.init == "auto"

    # -- what every fitted estimator answers ------------------------------------------------------
    def _score_reference(self):
        """Minus the partition distance to ``reference``, or None without one."""
        check_is_fitted(self)
        if self._reference_labels is None:
            return None
        return -partition_distance(self.sharing_partition_, self._reference_labels)

    def _layer_shape(self):
        return self._model.layer_shape

    @property
    def symmetry_group_(self):
        """The largest group of output and input permutations that keeps the discovered
        sharing (:class:`sharelearn.symmetry.SymmetryGroup`, with ``.name`` and ``.order``).

        Computed on first access, for the layer the items form (``coef_``'s shape for a linear
        map, a column of means for shared means, the matrix's shape for the entries of one
        matrix of a network, ``(n_items, 1)`` for other network items).
        """
        check_is_fitted(self)
        if getattr(self, "_symmetry_group", None) is None:
            self._symmetry_group = symmetry_group(self.sharing_partition_, self._layer_shape())
        return self._symmetry_group

    @property
    def structure_(self):
        """The discovered sharing read as a convolution, in the words of the field
        (:class:`sharelearn.symmetry.SharingStructure`): ``kind`` (``"convolution"`` or None),
        ``kernel_shape``, ``border`` (valid, full, circular, zero, reflect, nearest, mirror),
        ``kernel_symmetry``, ``n_exceptions`` and ``text``, e.g. ``"2-D convolution
        (cross-correlation), 3 x 3 kernel on a 10 x 10 image, same size with reflect or nearest
        borders ..."``. Computed on first access (:func:`sharelearn.symmetry.describe_sharing`).
        """
        check_is_fitted(self)
        if getattr(self, "_structure", None) is None:
            from .symmetry.structure import describe_sharing

            self._structure = describe_sharing(self.sharing_partition_, self._layer_shape())
        return self._structure

    @property
    def departures_(self):
        """Where the discovered sharing departs from shift equivariance: a boolean mask of the
        layer's shape (``coef_``'s for a linear map), True at the entries whose group is not
        the one a convolution with the interior kernel gives them (the border outputs of a
        reflect, nearest or mirror filter, entries changed, a dead input's column). All False
        when the sharing is an exact convolution, or is no convolution at all
        (``structure_.kind is None``)."""
        structure = self.structure_
        if structure.departures is None:
            return np.zeros(self._layer_shape(), dtype=bool)
        return np.array(structure.departures, dtype=bool)



# The level of the span tests in ``hypotheses_["explains"]`` (as the models' own test uses).
_EXPLAINS_LEVEL = 0.01


def _hypothesis_table(model, rows, labels, value):
    """``hypotheses_``: the structured hypotheses scored in the fit, with the sharing found and
    the untied map beside them, as a dict of columns (``pandas.DataFrame(est.hypotheses_)``),
    best objective first."""
    rows = [dict(r) for r in rows]
    P = labels.size
    n_groups = int(labels.max()) + 1
    rows.append({"hypothesis": "the sharing found", "labels": labels, "blocks": n_groups,
                 "groups": n_groups, "exceptions": 0, "objective": float(value),
                 "searched": True})
    rows.append({"hypothesis": "no sharing (every entry free)", "labels": np.arange(P),
                 "blocks": P, "groups": P, "exceptions": 0, "objective": np.nan,
                 "searched": False})
    stats = model.span_statistics([r["labels"] for r in rows]) if rows else None
    nan = float("nan")
    for i, r in enumerate(rows):
        s = stats[i] if stats is not None else {}
        r["span_statistic"] = s.get("statistic", nan)
        r["span_p_value"] = s.get("p_value", nan)
        r["variance_explained"] = s.get("explained", nan)
        r["signal_p_value"] = s.get("signal_p_value", nan)
        r["explains"] = bool(r["span_p_value"] > _EXPLAINS_LEVEL
                             and r["signal_p_value"] < _EXPLAINS_LEVEL)
        del r["labels"]
    rows.sort(key=lambda r: (np.isnan(r["objective"]), r["objective"]))
    columns = ["hypothesis", "blocks", "groups", "exceptions", "objective", "explains",
               "span_statistic", "span_p_value", "variance_explained", "signal_p_value",
               "searched"]
    return {c: np.array([r[c] for r in rows], dtype=object if c == "hypothesis" else None)
            for c in columns}
