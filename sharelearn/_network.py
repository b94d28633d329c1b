"""NetworkSharingDiscoverer: learn which parameters of a torch module are tied together."""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np
import torch
from scipy.special import log_softmax, softmax
from sklearn.base import ClassifierMixin, _fit_context, is_classifier
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._base import BaseDiscoverer, _without_bools, validate_numbers
from ._memory import format_bytes, resolve_budget
from ._scaling import check_network_targets
from .hypergrad import SOLVERS
from .models import NETWORK_MODELS, LinearMap, network_model
from .networks import tie_parameters
from .networks.laplace import HESSIAN_STRUCTURES, CurvatureMemoryError
from .networks.memory import choose_structure, network_memory, network_shapes
from .partition import labels_to_selection

__all__ = ["NetworkSharingClassifier", "NetworkSharingDiscoverer"]


class NetworkSharingDiscoverer(BaseDiscoverer):
    """Discover which parameters of a torch module share their values, from data.

    The items are slices (or entries) of the module's parameters, named by ``share``; a
    partition of them ties each group to one shared value, and the partition is chosen to
    minimise ``N log(validation loss of the network trained with that sharing) + penalties``
    (the penalties of :class:`SharingDiscoverer`). The network is trained by gradient descent:
    the relaxation's hypergradient comes from implicit differentiation
    (:mod:`sharelearn.hypergrad`), the discrete search scores partitions by short retrains of
    the hard-shared network (:mod:`sharelearn.networks.objective`,
    :mod:`sharelearn.search.network`), and the chosen network is refitted with skorch. Targets
    are standardised per output.

    **Entry-level sharing of a dense layer** (``share={"layer.weight": None}`` on one matrix of
    more than 64 entries, thousands in practice) is searched differently, so that a round does
    not cost one retrain per candidate move: the convolutions the matrix can be read as, with
    1 or 2 output channels (:func:`sharelearn.symmetry.shift_hypotheses`), are scored by
    retraining the network tied by each (first a short screen, then the two best in full), the
    best one starts the search if it beats ``init``, and each round of the search linearises
    the tied network in the entries and searches that local linear model in closed form
    (:mod:`sharelearn.search.linearised`), keeping its proposal if one retrain confirms it.
    Partitions that coarsen a convolution are charged its block-wise penalties, as
    :class:`SharingDiscoverer` charges them. :func:`sharelearn.symmetry.convolution_reading`
    names the convolution a found sharing is.

    Parameters
    ----------
    module : "sequence", torch.nn.Module subclass or instance, default="sequence"
        ``"sequence"``: the built-in :class:`sharelearn.networks.SequenceNetwork` (embedding ->
        per-position linear layer -> ReLU -> sum over positions -> linear) on integer token
        sequences ``X`` (``n_samples x L``), whose items are its ``L`` per-position layers. Its
        sizes are routed as ``module__embedding_dim`` (default 500) and ``module__hidden``
        (default 50); ``length`` and ``n_tokens`` (``max(X) + 1``) come from the data (given as
        ``module__...``, they must agree with it). A floating-point ``X`` is refused: numeric
        features (pixels, measurements) need a module with a dense layer (see
        :class:`NetworkSharingClassifier` for an image example); token ids stored as floats
        are passed as ``X.astype(int)``.
        A module class is built as ``module(**module__kwargs)`` (keyword arguments given to
        this estimator as ``module__name=value``, skorch-style, so that ``set_params`` and grid
        search reach them); a module instance is deep-copied and never trained in place. Both
        need ``share``. The module maps a batch of ``X`` to predictions shaped like ``y``.
    share : dict or None, default=None
        What to share, ``{parameter name: axis or None}``. With an int axis the items are the
        slices of that parameter along the axis (e.g. ``{"weight": 0}`` for a per-position
        weight of shape ``(L, out, in)``); with ``None`` every entry is an item. All listed
        parameters are tied by the one partition, so they must have the same number of items.
        ``None`` is only valid for ``"sequence"``, where it means
        ``{"position_weight": 0, "position_bias": 0}``.
    n_candidate_groups : int or None, default=None
        Number of candidate groups (columns of the relaxed selection matrix); ``None`` uses one
        per item, capped at 16. The discrete search may still open new groups beyond it.
    nuclear, nuclear_kind, code_length, entropy :
        The penalties, as for :class:`SharingDiscoverer`.
    loss : {"l1", "mse"}, default="l1"
        Training and validation loss on standardised targets (each output centred and scaled to
        unit variance on the fitting samples).
    weight_decay : float, default=1e-6
        Weight decay on all the network's parameters in the inner training loss.
    cv : int, float, cross-validation splitter, iterable or None, default=5
        The train/validation split of the outer objective: only the first split of ``cv`` is
        used (one network per split would multiply the cost); see :class:`SharingDiscoverer`.
    max_iter, learning_rate, temperature, tol, n_iter_no_change :
        The relaxation, as for :class:`SharingDiscoverer`.
    n_restarts : int or "auto", default="auto"
        Relaxation restarts from random logits (``"auto"``: 1, none with the evidence or for
        entry-level sharing); one more search always starts from ``init``, and the partition
        with the best objective is kept.
    init : "auto", "shared", str or array-like, default="auto"
        The partition the search starts from besides the relaxations (see
        :class:`SharingDiscoverer`). For entry-level sharing, ``"auto"`` also scores the
        matrix's convolution hypotheses, and the best replaces the shared start if it scores
        better.
    local_search : bool, default=True
        Polish each rounded partition by the search of :mod:`sharelearn.search.network`
        (merges, splits along the items' gradients, one-item moves), then, with a hold-out
        (``validation_fraction``), the check of :func:`sharelearn.networks.refit.holdout_merges`,
        which keeps the best merge of two groups of the chosen partition if the refits score it
        no worse on the hold-out. Entry-level sharing is polished by linearised proposals
        instead (:mod:`sharelearn.search.linearised`), without the hold-out check.
    max_search_iter : int, default=1000
        Cap on accepted rounds of the discrete search per start; reaching it raises a
        ``ConvergenceWarning``.
    inner_steps : int, default=10
        Full-batch Adam steps of the network per outer step, warm-started from the previous
        outer step (plus ``10 * inner_steps`` warm-up steps before the first).
    inner_learning_rate : float or "auto", default="auto"
        Adam step size of the network (inner steps, search retrains, refit). ``"auto"``: 0.01,
        or 0.03 for entry-level sharing (a tied value moves about one step size per step,
        and a convolution's taps lie far from a dense layer's initial scale). A training whose
        loss ends more than 100 times above its start (or above 1, about the loss of predicting
        the mean) has diverged: the fit stops with a ``FloatingPointError`` that says so, as it
        does for a loss that is not finite.
    hypergrad : {"cg", "neumann", "exact", "identity"}, default="cg"
        Linear solver of the implicit hypergradient, see :mod:`sharelearn.hypergrad`.
        ``"exact"`` forms the Hessian (small networks only).
    hypergrad_iter : int, default=10
        Conjugate-gradient iterations or Neumann terms.
    neumann_alpha : float, default=0.01
        Step-size factor ``alpha`` of the Neumann series (needs ``alpha < 2 / lambda_max``).
    search_steps : int or "auto", default="auto"
        Full-batch Adam steps (step size decaying linearly to 0) of each short retrain that
        scores a partition in the discrete search (a proxy for the outer objective; see
        :mod:`sharelearn.networks.objective`). ``"auto"``: 200, or 1,000 for entry-level sharing.
    search_inits : int or "auto", default="auto"
        Initialisations each partition is retrained from in the search; its score is the best
        of them (they are trained together, as one batch, where ``torch.func.vmap`` can batch
        the module). ``"auto"``: 3, or 16 for entry-level sharing, whose tied networks stall
        in poor local minima from most initialisations. The first is the fit's own network;
        the others are built from the module class with other seeds, or, for a module
        instance, are copies whose submodules' ``reset_parameters`` are called with other
        seeds (an instance without any is retrained from its own initialisation only). One
        retrain from one initialisation sometimes stalls, which can make the search keep a
        spurious group; each extra initialisation adds the cost of one retrain per scored
        partition. Measured on the sum-of-numbers misses of one initialisation, the true
        partition beat the found one for 93-100% of pairs of initialisations and for every
        triple (see ``docs/models.md``). With entry-level sharing, the structured
        hypotheses that decide where the search starts are retrained from as many more
        initialisations again, and each proposal of the search also from the network it was
        made from.
    max_epochs : int, default=1000
        Epochs (full-batch) of the final refit with skorch, which fine-tunes the search's
        retrains of the chosen partition (one per initialisation, see ``search_inits``, at most
        the best 3) at a
        tenth of ``inner_learning_rate``, decaying linearly to 0 over the epochs; if a refit
        never beats its start on the early-stopping hold-out, the start is kept, and of the
        refits the one with the lowest hold-out loss is kept. Without a hold-out
        (``validation_fraction=None``) only the best retrain is refitted.
    validation_fraction : float or None, default=0.2
        Fraction of the samples held out of the search and used only by the final refit: to
        early-stop it (patience ``patience``, best epoch restored) and to confirm the search's
        partition against its best merge (see ``local_search``). ``None`` trains the refit for
        ``max_epochs`` on all the samples, without that check.
    patience : int, default=100
        Epochs without improvement before the refit stops.
    objective : {"validation", "evidence"}, default="validation"
        How the search scores a partition. ``"validation"``: ``N log`` of the validation loss of
        its short retrains (above). ``"evidence"``: ``-2`` times the Laplace approximation of the
        marginal likelihood of the network trained on all the fitting samples (no validation
        split; ``cv`` is not used), over the shared values, with the generalised Gauss-Newton
        curvature and the prior and noise precisions fitted by type-II maximum likelihood
        (:mod:`sharelearn.networks.laplace`). It needs ``loss="mse"`` (or the classifier). With
        ``n_restarts="auto"`` only the search runs; relaxations of the evidence (``n_restarts``
        of 1 or more) need ``loss="mse"`` and the full curvature. The hold-out check of merges
        is skipped. The final refit trains the shared values under the prior that the evidence
        fitted (weight decay ``2 alpha / (beta N)``, or ``alpha / N`` for the classifier, in
        place of ``weight_decay``), so it seeks the posterior mode, and with a hold-out it also
        starts from the initialisations: the search's retrains, which no hold-out stops, can
        overfit where the partition has many groups. Sets ``log_evidence_`` and
        ``prior_precision_``.
    hessian_structure : {"auto", "full", "diag"}, default="auto"
        The curvature of the Laplace evidence (``objective="evidence"`` only): ``"full"``, the
        whole GGN of the shared values (exact on a linear network), ``"diag"``, its diagonal.
        ``"auto"``: ``"full"`` when the fit with the finest partition's curvature fits
        ``memory_budget`` and one evaluation of that curvature (the GGN's accumulation and its
        eigendecomposition, about ``N P^2 + P^3 / 3`` operations for ``P`` shared values and
        ``N`` scalar outputs) costs at most 1e11 operations (about 100 s on one core: 2
        channels of a 64 -> 36 layer, 4,608 values, keep it; 4 channels, 9,216, do not), else
        ``"diag"``; ``hessian_structure_`` says which was used, and ``verbose`` says why.
        ``"full"`` where it does not fit the budget is an error that says how much it would
        need (a ``MemoryError`` that is also a ``ValueError``). (A Kronecker factorisation is
        not offered: tying entries of a layer mixes the rows of its factors.)
    device, dtype, reference, n_threads, random_state, verbose :
        As for :class:`SharingDiscoverer`; ``random_state`` also seeds the networks'
        initialisations.
    memory_budget : "auto", int or str, default="auto"
        Memory the fit may hold at once: a number of bytes, or a string with a unit such as
        ``"512MiB"`` or ``"2GB"``; ``"auto"`` is half the memory available when the fit starts
        (80% of the free memory of a CUDA device); an infinite amount (``float("inf")`` or
        ``"inf"``) sets no limit. After the networks are built and the data copied, and before
        any training, the fit estimates what it will hold by part
        (:mod:`sharelearn.networks.memory`): what it keeps throughout (the runtime's own
        memory, the data and their hold-out copies, the initialisations, the selection
        matrices of the scored partitions, the structured hypotheses) and the largest of its
        phases (the batched retrains with their parameters, Adam's state and activations; the
        evidence's curvature of the finest partition; the linearisation of a dense layer's
        entries and the closed-form search of that local linear model; the relaxations; the
        refit). Measured on whole fits, the estimate is an upper bound of the peak resident
        memory within a factor of about 1.5 (``benchmarks/bench_network_memory.py``). Where the
        full curvature does not fit, ``hessian_structure="auto"`` takes the diagonal; where
        nothing fits, the fit raises a ``MemoryError`` that gives the need by part, the budget,
        and the settings that shrink it. ``memory_estimate_`` keeps the estimate.
    n_jobs : int or None, default=None
        The restarts run in turn, sharing the search's cache of scored partitions; each round
        of the search retrains its candidate partitions in ``n_jobs`` threads (the same
        partitions and scores as serially; each runs torch on the fit's ``n_threads``, one by
        default, so the threads do not oversubscribe the cores).
    **module_kwargs
        ``module__name=value``: keyword arguments of the module class.

    Attributes
    ----------
    sharing_partition_, n_groups_, selection_matrix_, soft_selection_, restart_objectives_,
    loss_curve_, n_iter_, fit_time_, symmetry_group_ :
        As for :class:`SharingDiscoverer`; the items are the slices (or entries) declared by
        ``share``.
    objective_ : float
        Objective of the chosen partition (its search retrains' validation loss).
    validation_loss_ : float or None
        The validation ``loss`` (standardised targets) of the search's short retrain (None for
        ``objective="evidence"``).
    log_evidence_ : float
        ``objective="evidence"`` only: the Laplace log marginal likelihood of the chosen
        partition's search retrain (no penalties), as a density of ``y`` in its own units.
    prior_precision_ : float
        ``objective="evidence"`` only: the precision ``alpha`` of the prior of the shared values
        that the evidence fitted (standardised targets). The final refit trains the shared
        values under this prior (see ``objective``).
    hessian_structure_ : {"full", "diag"} or None
        The curvature the evidence used (``hessian_structure="auto"`` resolved; see
        ``memory_budget``); None for ``objective="validation"``, which uses none.
    memory_estimate_ : dict
        The bytes the fit was estimated to hold, by part (see ``memory_budget``), with their
        ``"total"``: the parts held throughout plus the largest phase.
    n_search_moves_ : int
        Accepted rounds of the discrete search for the winning restart, plus the merges
        accepted on the hold-out.
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The target standardisation.
    history_ : list of dict
        Per-epoch ``train_loss`` and ``valid_loss`` of the final refit.
    n_features_in_ : int

    See Also
    --------
    SharingDiscoverer : the same for closed-form models (shared means, a linear map).

    Examples
    --------
    >>> from sharelearn import NetworkSharingDiscoverer
    >>> from sharelearn.datasets import make_sum_of_numbers
    >>> X, y, truth = make_sum_of_numbers(200, length=3, random_state=0)
    >>> net = NetworkSharingDiscoverer("sequence", module__embedding_dim=8, module__hidden=8,
    ...                                search_steps=50, max_epochs=50, reference=truth,
    ...                                random_state=0).fit(X, y)
    >>> net.sharing_partition_.shape
    (3,)
    """

    _parameter_constraints = _without_bools({
        **BaseDiscoverer._parameter_constraints,
        "module": [StrOptions({"sequence"}), type, torch.nn.Module],
        "share": [dict, None],
        "loss": [StrOptions({"l1", "mse"})],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "inner_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "inner_learning_rate": [Interval(numbers.Real, 0, None, closed="neither"),
                                StrOptions({"auto"})],
        "hypergrad": [StrOptions(set(SOLVERS))],
        "hypergrad_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "neumann_alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "search_steps": [Interval(numbers.Integral, 1, None, closed="left"),
                         StrOptions({"auto"})],
        "search_inits": [Interval(numbers.Integral, 1, None, closed="left"),
                         StrOptions({"auto"})],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "patience": [Interval(numbers.Integral, 1, None, closed="left")],
        "objective": [StrOptions({"validation", "evidence"})],
        "hessian_structure": [StrOptions(set(HESSIAN_STRUCTURES))],
        "memory_budget": [str, numbers.Real],
    })
    _PRIVATE_FIT_STATE = BaseDiscoverer._PRIVATE_FIT_STATE + (
        "_n_tokens", "_module_share_", "_module_template", "_module_state")

    def __init__(self, module="sequence", *, share=None, n_candidate_groups=None,
                 nuclear=2.0, nuclear_kind="nuclear", code_length=2.0, entropy=0.1, loss="l1",
                 weight_decay=1e-6, cv=5, max_iter=100, learning_rate=0.3,
                 temperature=(1.0, 0.05), tol=1e-4, n_iter_no_change=10, n_restarts="auto",
                 init="auto", local_search=True, max_search_iter=1000, inner_steps=10,
                 inner_learning_rate="auto", hypergrad="cg", hypergrad_iter=10,
                 neumann_alpha=0.01, search_steps="auto", search_inits="auto", max_epochs=1000,
                 validation_fraction=0.2, patience=100, objective="validation",
                 hessian_structure="auto", device="cpu", dtype="float64",
                 memory_budget="auto", reference=None, n_jobs=None, n_threads=None,
                 random_state=None, verbose=0, **module_kwargs):
        self.module = module
        self.share = share
        self.n_candidate_groups = n_candidate_groups
        self.nuclear = nuclear
        self.nuclear_kind = nuclear_kind
        self.code_length = code_length
        self.entropy = entropy
        self.loss = loss
        self.weight_decay = weight_decay
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
        self.objective = objective
        self.hessian_structure = hessian_structure
        self.device = device
        self.dtype = dtype
        self.memory_budget = memory_budget
        self.reference = reference
        self.n_jobs = n_jobs
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self._record_unexpected(module_kwargs)

    # -- module__ keyword arguments, routed skorch-style ---------------------------------------
    @staticmethod
    def _is_module_key(key):
        return key.startswith("module__") and key != "module__"

    def _record_unexpected(self, kwargs):
        """``module__*`` keys are stored for the module's constructor (and reach ``get_params``,
        ``set_params`` and grid search); any other unknown key is reported by ``fit``."""
        for key, value in kwargs.items():
            if self._is_module_key(key):
                setattr(self, key, value)
            else:
                super()._record_unexpected({key: value})

    def _module_kwargs(self):
        return {k[len("module__"):]: v for k, v in vars(self).items()
                if k.startswith("module__")}

    def get_params(self, deep=True):
        """Get parameters, including the ``module__*`` keyword arguments of the module."""
        params = super().get_params(deep=deep)
        params.update({k: v for k, v in vars(self).items() if k.startswith("module__")})
        return params

    # -- the fit -------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn the sharing scheme and train the tied network.

        All or nothing: a call that raises, or is interrupted (Ctrl-C), leaves the estimator
        exactly as it was before it.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs of the module (integer token ids for ``module="sequence"``).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : NetworkSharingDiscoverer
        """
        self._check_unexpected_kwargs("Keyword arguments of the module's constructor are "
                                      "passed as module__<name>=value.")
        return self._fit_all_or_nothing(X, y)

    def _check_X(self, model, X, y=None, *, reset):
        """Validated inputs: numeric dtypes kept (integer tokens stay integers), anything else
        float64; then the model's own checks."""
        numeric = [np.float64, np.float32, np.int64, np.int32, np.int16, np.int8, np.uint8,
                   np.uint16, np.uint32, np.uint64, np.bool_]
        X = model.raw_inputs(X)
        kwargs = dict(reset=reset, dtype=numeric, allow_nd=not model.integer_inputs)
        if y is None:
            X = validate_numbers(self, X, **kwargs)
        else:
            regression = not is_classifier(self)
            X, y = validate_numbers(self, X, y, multi_output=regression,
                                    y_numeric=regression, **kwargs)
        X = model.check_inputs(X, None if reset else self)
        return X if y is None else (X, y)

    def _fit(self, X, y):
        if y is None:
            raise ValueError("NetworkSharingDiscoverer requires y to be passed, but the target "
                             "y is None: call fit(X, y).")
        model = network_model(self)
        dtype, device = self._torch_setup()
        budget = resolve_budget(self.memory_budget, device)
        X, y = self._check_X(model, X, y, reset=True)
        Y, classes = self._targets(y)
        rng = check_random_state(self.random_state)
        splits = self._module_splits(X.shape[0], rng, classes)
        n_restarts = model.auto_restarts() if self.n_restarts == "auto" else int(self.n_restarts)
        module_seed, *seeds = rng.randint(2**31, size=n_restarts + 2)
        # The curvature is chosen below with every part of the fit; a cap on the curvature
        # alone (ModuleModel.curvature_budget, a test's or a subclass's) still applies in
        # prepare, which builds the networks and copies the data but trains nothing.
        cap = model.curvature_budget
        model.curvature_budget = math.inf if cap is None else cap
        model.prepare(X, Y, splits, dtype=dtype, device=device, rng=rng, seed=module_seed)
        if self.n_restarts == "auto" and model.entry_level:
            n_restarts = 0  # the hypotheses and the linearised search do the work
        n_items, shape = model.n_items, model.layer_shape
        self._reference_labels = self._partition_param("reference", n_items, shape, "module")
        start = self._start_partition(n_items, shape, "module")
        hypotheses = model.hypotheses()
        structure, need = self._plan_memory(model, budget, X, n_restarts=n_restarts,
                                            start=start, hypotheses=hypotheses,
                                            capped=cap is not None)
        model.check_restarts(n_restarts)
        self._run(model, seeds=seeds, n_restarts=n_restarts, start=start,
                  hypotheses=hypotheses, hypothesis_start=self._init_is_auto())
        self.hessian_structure_ = structure
        self.memory_estimate_ = {**need.parts, "total": need.total}

    def _plan_memory(self, model, budget, X, *, n_restarts, start, hypotheses, capped):
        """The fit's memory, estimated by part before any training
        (:mod:`sharelearn.networks.memory`): the curvature of the evidence chosen within
        ``budget`` (bytes; None: no limit) and by time, or a ``MemoryError`` naming the need by
        part when even the leanest way does not fit. Returns the curvature used (None for
        ``objective="validation"``) and the estimate (a ``NetworkMemoryNeed``)."""
        start_groups = 1 if start is None else int(np.unique(start).size)
        hypothesis_groups = max((int(np.max(h)) + 1 for h in hypotheses.values()), default=1)
        n_columns = (self.n_candidate_groups if self.n_candidate_groups is not None
                     else model.default_columns())
        linearised = model.entry_level and self.local_search
        shapes = network_shapes(
            templates=model.templates, reserve=model.reserve, share=model.share_,
            n_items=model.n_items, data=model.data, fit_data=model.fit_data,
            stop_data=model.stop_data, n_groups=max(start_groups, hypothesis_groups),
            linearised=linearised, n_hypotheses=len(hypotheses), n_relaxations=n_restarts,
            n_columns=min(int(n_columns), model.n_items), relax_evidence=model.by_evidence)
        surrogate = self._surrogate_memory(model, shapes) if linearised else 0
        structure, why = None, None
        if model.by_evidence:
            requested = self.hessian_structure
            if capped and requested == "auto":
                requested = model.structure  # the curvature's own cap decided (in prepare)
            structure, need, why = choose_structure(requested, shapes, budget,
                                                    surrogate=surrogate)
            model.structure = structure
        else:
            need = network_memory(shapes, surrogate=surrogate)
        name = type(self).__name__
        if budget is not None and need.total > budget:
            # an explicit full curvature that does not fit stays the ValueError it always was
            error = (CurvatureMemoryError if self.hessian_structure == "full"
                     and model.by_evidence else MemoryError)
            raise error(self._memory_message(model, X, need, budget, shapes, surrogate))
        if self.verbose:
            limit = "no limit" if budget is None else f"a budget of {format_bytes(budget)}"
            print(f"[{name}] memory: about {format_bytes(need.total)} needed, {limit} "
                  f"({need.describe()})")
            if structure is not None:
                print(f"[{name}] hessian_structure={self.hessian_structure!r}: using "
                      f"{structure!r}, {why}")
        return structure, need

    @staticmethod
    def _surrogate_memory(model, shapes):
        """Bytes of the closed form that searches the local linear model of a dense layer's
        entries (:meth:`~sharelearn.models.closed_form.ClosedFormModel.memory_need`): a linear
        map from the ``n_items`` entries to one output, on a row per fitting sample and output,
        in float64 (one split, or none for the evidence)."""
        per_sample = shapes.n_outputs
        n_train = model.data[0].shape[0] * per_sample
        n_rows = shapes.n_fit * per_sample
        splits = None if model.by_evidence else [(np.arange(n_train),
                                                  np.arange(n_train, n_rows))]
        need = LinearMap().memory_need(n_rows, shapes.n_items, 1, splits, 8,
                                       start_groups=shapes.n_groups)
        # its statistics are stacked from those of each split part (a second copy while they
        # are made), and its search runs without a plan (every item screened at once): at
        # 6,400 entries the search's peak was 2.1 times the statistics (1.3 GB), 1.05 times
        # this figure
        return need.minimum + 3 * need.parts["statistics"] // 2

    def _memory_message(self, model, X, need, budget, shapes, surrogate):
        """The refusal of a fit that does not fit ``memory_budget``: what it needs by part, the
        budget, and what would make it smaller."""
        name = type(self).__name__
        where = "the device" if model.device.type == "cuda" else "this machine"
        given = (f"memory_budget={self.memory_budget!r}" if not isinstance(
            self.memory_budget, str) or self.memory_budget.strip().lower() != "auto"
            else f"memory_budget='auto' (half the memory available on {where})")
        items = (f"{model.n_items:,} shared entries ({model.matrix_shape[0]} x "
                 f"{model.matrix_shape[1]})" if model.matrix_shape is not None
                 else f"{model.n_items:,} shareable items")
        settings = [f"objective={self.objective!r}"]
        if need.structure is not None:
            settings.append(f"hessian_structure={self.hessian_structure!r}" + (
                "" if need.structure == self.hessian_structure
                else f", here {need.structure!r}"))
        advice = ["Raise memory_budget if the machine has the memory"]
        if need.structure == "full":
            lean = network_memory(shapes, structure="diag", surrogate=surrogate)
            advice.append(f"hessian_structure='diag' needs about {format_bytes(lean.total)}")
        if "linearised search" in need.phases:
            advice.append("local_search=False skips the linearised search of the entries, "
                          "whose closed form needs "
                          f"{format_bytes(need.phases['linearised search'])}, most of it "
                          f"two {model.n_items:,} x {model.n_items:,} matrices and their "
                          "copies (the best convolution hypothesis is then kept as found)")
        if self.dtype == "float64":
            advice.append("dtype='float32' halves the network's parts")
        advice.append(f"fewer samples (here {X.shape[0]:,}) shrink the data, the retrains "
                      "and the linearisation")
        if model.templates and len(model.templates) > 1:
            advice.append(f"fewer search_inits (here {len(model.templates)}) shrink the "
                          "retrains")
        return (f"{name}({', '.join(settings)}) on {items}, {X.shape[0]:,} samples needs "
                f"about {format_bytes(need.total)} ({need.describe()}), more than {given} "
                f"allows ({format_bytes(budget)}). The fit was refused before any training. "
                + "; ".join(advice) + ".")

    def _targets(self, y):
        """``(Y, classes)``: the targets as the model takes them (2-D floats) and the samples'
        class codes for stratified splits (None for a regressor)."""
        y = self._validate_targets(y, "a network")
        self._y_1d = y.ndim == 1
        Y = y.reshape(-1, 1) if self._y_1d else y
        check_network_targets(Y)
        return Y, None

    def _module_splits(self, n_samples, rng, classes=None):
        """(train, validation, early-stopping) indices; only the first cv split is used. With
        ``classes`` (a classifier's class codes) the splits are stratified where every class
        has samples enough for it."""
        everything = np.arange(n_samples)
        stop = None
        if self.validation_fraction is not None:
            splitter = ShuffleSplit
            if classes is not None:
                n_stop = int(np.ceil(self.validation_fraction * n_samples))
                counts = np.bincount(classes)
                if counts.min() >= 2 and min(n_stop, n_samples - n_stop) >= len(counts):
                    splitter = StratifiedShuffleSplit
            try:
                fit, stop = next(splitter(
                    n_splits=1, test_size=self.validation_fraction,
                    random_state=rng.randint(2**31)).split(everything, classes))
            except ValueError as err:
                raise ValueError(f"validation_fraction={self.validation_fraction} cannot hold "
                                 f"out samples from {n_samples}: {err}") from None
            if len(fit) < 2:
                raise ValueError(f"Too few samples: validation_fraction="
                                 f"{self.validation_fraction} leaves {len(fit)} of "
                                 f"{n_samples} for the train/validation split; need 2.")
        else:
            fit = everything
        tr, va = self._splits(len(fit), rng, classes=None if classes is None else
                              np.unique(classes[fit], return_inverse=True)[1])[0]
        return fit[tr], fit[va], stop

    # -- using the fitted network ---------------------------------------------------------------
    def to_module(self):
        """The fitted network with its hard sharing, as a new CPU module.

        The tied parameters stay parametrized (:func:`sharelearn.networks.tie_parameters`), so
        training it further keeps the discovered sharing.

        Returns
        -------
        module : torch.nn.Module
        """
        check_is_fitted(self)
        module = copy.deepcopy(self._module_template)
        dtype = next(iter(self._module_state.values())).dtype
        hard = torch.as_tensor(labels_to_selection(self.sharing_partition_, sparse=False),
                               dtype=torch.float64 if dtype == np.float64 else torch.float32)
        tie_parameters(module, self._module_share_, hard)
        module.load_state_dict({k: torch.from_numpy(v.copy())
                                for k, v in self._module_state.items()})
        return module

    def _outputs(self, X):
        """The fitted network's raw outputs on ``X`` (numpy, ``n_samples x n_outputs``)."""
        check_is_fitted(self)
        X = self._check_X(self._model, X, reset=False)
        module = self.to_module()
        dtype = next(module.parameters()).dtype
        Xt = torch.tensor(X, dtype=torch.int64 if X.dtype == np.int64 else dtype)
        with torch.no_grad():
            out = module(Xt)
        return out.reshape(out.shape[0], -1).numpy().astype(np.float64)

    def predict(self, X):
        """Predictions of the fitted network, in the targets' units."""
        out = self._outputs(X) * self.target_scale_ + self.target_mean_
        return out[:, 0] if self._y_1d else out

    def score(self, X, y=None):
        """Greater is better.

        With ``reference`` set: minus the partition distance between the discovered sharing and
        the reference (0 = exact recovery; X and y are ignored). Without it: minus the held-out
        ``loss`` (mean absolute error for ``"l1"``, MSE for ``"mse"``) in the targets' own units.
        """
        by_reference = self._score_reference()
        if by_reference is not None:
            return by_reference
        if y is None:
            raise ValueError("score of NetworkSharingDiscoverer without a reference requires "
                             "y.")
        pred = self.predict(X)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != pred.shape:
            raise ValueError(f"y must have shape {pred.shape}, got {y.shape}.")
        err = y - pred
        return -float(np.mean(np.abs(err) if self.loss == "l1" else err ** 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True  # y may have several columns (n_outputs)
        tags.input_tags.sparse = False
        kind = NETWORK_MODELS.get(self.module) if isinstance(self.module, str) else None
        if kind is not None and kind.integer_inputs:
            # token ids: the estimator checks then draw non-negative integer X
            tags.input_tags.categorical = True
            tags.input_tags.positive_only = True
        return tags


class NetworkSharingClassifier(ClassifierMixin, NetworkSharingDiscoverer):
    """Discover which parameters of a torch module share their values, from labelled data.

    The classification counterpart of :class:`NetworkSharingDiscoverer`: the module maps a batch
    of ``X`` to one logit per class, is trained with the cross-entropy, and the outer objective's
    data term is the validation deviance, ``2 N`` times the mean cross-entropy (``-2`` times the
    log-likelihood of the ``N`` training labels; the units of the regression's ``N log MSE``),
    plus the same penalties. Labels may be any values :func:`numpy.unique` sorts (strings
    included); ``classes_`` holds them, in the order of the module's outputs. The early-stopping
    hold-out and an int ``cv`` are stratified by class where every class has samples enough.

    Parameters
    ----------
    module, share, n_candidate_groups, nuclear, nuclear_kind, code_length, entropy, \
weight_decay, cv, max_iter, learning_rate, temperature, tol, n_iter_no_change, n_restarts, \
init, local_search, max_search_iter, inner_steps, inner_learning_rate, hypergrad, \
hypergrad_iter, neumann_alpha, search_steps, search_inits, max_epochs, validation_fraction, \
patience, objective, hessian_structure, device, dtype, memory_budget, reference, n_jobs, \
n_threads, random_state, verbose, **module_kwargs :
        As for :class:`NetworkSharingDiscoverer`; the module (``"sequence"`` included) is built
        with one output per class.
    loss : {"cross_entropy"}, default="cross_entropy"
        The training and validation loss on the logits.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    sharing_partition_, n_groups_, selection_matrix_, soft_selection_, objective_, \
restart_objectives_, loss_curve_, n_iter_, n_search_moves_, history_, fit_time_, \
symmetry_group_, n_features_in_ :
        As for :class:`NetworkSharingDiscoverer`; ``validation_loss_`` is the mean
        cross-entropy of the search's retrains on the validation samples.
    log_evidence_ : float
        ``objective="evidence"`` only: the Laplace log marginal likelihood of the labels under
        the chosen partition's search retrain.
    prior_precision_ : float
        ``objective="evidence"`` only: as for :class:`NetworkSharingDiscoverer`.
    hessian_structure_, memory_estimate_ :
        As for :class:`NetworkSharingDiscoverer`.

    See Also
    --------
    NetworkSharingDiscoverer : the same for regression targets.

    Examples
    --------
    >>> import numpy as np
    >>> from sharelearn import NetworkSharingClassifier
    >>> from sharelearn.datasets import make_sum_of_numbers
    >>> X, s, truth = make_sum_of_numbers(200, length=3, random_state=0)
    >>> y = np.where(s > np.median(s), "large", "small")
    >>> clf = NetworkSharingClassifier("sequence", module__embedding_dim=8, module__hidden=8,
    ...                                search_steps=50, max_epochs=50, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['large', 'small'], dtype='<U5')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)

    Images are numeric features, not token ids: the built-in ``"sequence"`` network refuses
    them, and a module with a dense layer takes them, with ``share`` naming what it may tie.
    Here the items are the dense layer's hidden units (its weight's rows and their biases),
    and the search finds which units the digits let be copies of one another; with
    ``share={"dense.weight": None}`` every entry of the layer is an item instead, and the
    search looks for the convolution inside it (see the gallery's dense-to-convolution
    example).

    >>> import torch
    >>> from sklearn.datasets import load_digits
    >>> from torch import nn
    >>> X, y = load_digits(return_X_y=True)  # 8 x 8 images as 64 pixel values
    >>> NetworkSharingClassifier().fit(X, y)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: NetworkSharingClassifier(module='sequence') reads X as integer token ids ...
    >>> class ImageNet(nn.Module):
    ...     def __init__(self, hidden=4, n_classes=10):
    ...         super().__init__()
    ...         self.dense = nn.Linear(64, hidden)
    ...         self.out = nn.Linear(hidden, n_classes)
    ...
    ...     def forward(self, x):
    ...         return self.out(torch.relu(self.dense(x)))
    >>> clf = NetworkSharingClassifier(ImageNet, share={"dense.weight": 0, "dense.bias": 0},
    ...                                n_restarts=0, search_steps=30, search_inits=1,
    ...                                max_epochs=50, dtype="float32", random_state=0)
    >>> clf.fit(X[:300] / 16, y[:300]).sharing_partition_.shape  # one label per hidden unit
    (4,)
    >>> clf.predict_proba(X[300:302] / 16).shape
    (2, 10)
    """

    _parameter_constraints = {
        **NetworkSharingDiscoverer._parameter_constraints,
        "loss": [StrOptions({"cross_entropy"})],
    }

    def __init__(self, module="sequence", *, share=None, n_candidate_groups=None,
                 nuclear=2.0, nuclear_kind="nuclear", code_length=2.0, entropy=0.1,
                 loss="cross_entropy", weight_decay=1e-6, cv=5, max_iter=100,
                 learning_rate=0.3, temperature=(1.0, 0.05), tol=1e-4, n_iter_no_change=10,
                 n_restarts="auto", init="auto", local_search=True, max_search_iter=1000,
                 inner_steps=10, inner_learning_rate="auto", hypergrad="cg", hypergrad_iter=10,
                 neumann_alpha=0.01, search_steps="auto", search_inits="auto", max_epochs=1000,
                 validation_fraction=0.2, patience=100, objective="validation",
                 hessian_structure="auto", device="cpu", dtype="float64",
                 memory_budget="auto", reference=None, n_jobs=None, n_threads=None,
                 random_state=None, verbose=0, **module_kwargs):
        params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__(**params.pop("module_kwargs"), **params)

    def _targets(self, y):
        check_classification_targets(y)
        self._y_1d = True
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError("NetworkSharingClassifier needs samples of at least 2 classes; "
                             f"y holds one class only: {classes.tolist()[0]!r}.")
        self.classes_ = classes
        return codes.reshape(-1, 1), codes

    def predict_proba(self, X):
        """Class probabilities of the fitted network (softmax of its logits).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        return softmax(self._outputs(X), axis=1)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return log_softmax(self._outputs(X), axis=1)

    def predict(self, X):
        """The most probable class of each sample (labels from ``classes_``)."""
        logits = self._outputs(X)  # checks that the classifier is fitted first
        return self.classes_[np.argmax(logits, axis=1)]

    def score(self, X, y=None, sample_weight=None):
        """Greater is better.

        With ``reference`` set: minus the partition distance between the discovered sharing and
        the reference (0 = exact recovery; X and y are ignored). Without it: the accuracy on
        ``(X, y)`` (scikit-learn's classifier score).
        """
        by_reference = self._score_reference()
        if by_reference is not None:
            return by_reference
        if y is None:
            raise ValueError("score of NetworkSharingClassifier without a reference requires "
                             "y.")
        return ClassifierMixin.score(self, X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        tags.classifier_tags.multi_class = True
        return tags
