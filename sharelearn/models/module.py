"""A torch module whose parameters are shared (``NetworkSharingDiscoverer(module=...)``).

The model type of networks: it puts the parts of :mod:`sharelearn.networks` together behind the
model protocol (:class:`~sharelearn.models.base.SharingModel`). The items are the slices (or
entries) of the module's parameters named by ``share``
(:func:`sharelearn.networks.tying.check_share`). The inner problem has no closed form: the
network is trained by gradient descent (:mod:`sharelearn.networks.training`).

* **Relaxation.** :class:`~sharelearn.networks.relaxed.NetworkRelaxation` (or the evidence's
  :class:`~sharelearn.networks.relaxed.EvidenceRelaxation`): a differentiable function of ``S``
  through the implicit hypergradient.
* **Search.** Partitions are scored by short retrains (the hard objective
  :class:`~sharelearn.networks.objective.NetworkValidationObjective`, or
  :class:`~sharelearn.networks.objective.NetworkEvidenceObjective`) with the moves of
  :mod:`sharelearn.search.network`. The entries of one matrix (more than
  ``ENTRY_SEARCH_ITEMS``) are searched from the best of their convolution hypotheses (ranked by
  retrains: :mod:`sharelearn.networks.hypotheses`) by linearised proposals
  (:mod:`sharelearn.search.linearised`), one retrain per round.
* **Refit.** The chosen partition's retrains are trained further with skorch, and the partition
  is checked against its best merge on a hold-out
  (:func:`sharelearn.networks.refit.holdout_merges`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from joblib import effective_n_jobs

from ..networks.laplace import check_curvature_memory, prior_weight_decay
from ..networks.objective import NetworkEvidenceObjective, NetworkValidationObjective
from ..networks.problem import TiedNetworkProblem
from ..networks.refit import holdout_merges, refit_best
from ..networks.relaxed import EvidenceRelaxation, NetworkRelaxation
from ..networks.tying import _parametrization_names, check_share
from ..search.hypotheses import search_surrogate
from ..search.linearised import LinearisedProposal
from ..search.network import network_moves
from ..symmetry.convolution import shift_hypotheses
from .base import SharingModel
from .linear import LinearMap

__all__ = ["ModuleModel"]

# The refit fine-tunes an already trained network: at the full step size its first Adam steps
# could throw it off its minimum (measured: test MAE 0.37 instead of 0.06 at L = 4).
_REFIT_LR_FACTOR = 0.1
# Entry-level sharing of one matrix with more items than this is searched by linearised proposals
# (one retrain per round) from the best of its convolution hypotheses; below, by retrained
# candidate moves (a round of one-item moves is n_items x n_groups retrains).
ENTRY_SEARCH_ITEMS = 64
# initialisations per retrain for search_inits="auto": slices, and entry-level sharing (a tied
# 64 -> 36 -> 1 network reached the noise floor from 2 to 9 of 16 initialisations; 3 suffice
# for the sum of numbers, see the estimator's documentation)
_AUTO_INITS = {False: 3, True: 16}
# steps per retrain for search_steps="auto": slices, and entry-level sharing (a 36 -> 25 -> 1
# network tied by a 2 x 2 convolution with taps of one sign stalled above the shared network's
# score after 200 steps from all 16 initialisations, and fit after 1,000)
_AUTO_STEPS = {False: 200, True: 1000}
# Adam's step size for inner_learning_rate="auto": slices, and entry-level sharing (a tied value
# moves by about the step size per step whatever its gradient, and N(0, 1) taps are far from a
# layer's initial scale: 2-channel 3 x 3 tying of a 64 -> 72 -> 1 network, 1,000 steps from 16
# initialisations, reached a validation MSE under 0.0125 from 8 at 0.01 and from 11 at 0.03)
_AUTO_LR = {False: 0.01, True: 0.03}
# Entry-level sharing: the structured hypotheses scored in full (those whose scores decide where
# the search starts) are also retrained from this many times search_inits more initialisations.
# A 64 -> 72 -> 1 network tied by the teacher's 2-channel 3 x 3 convolution (digits, seed 4)
# scored -3,770 from 16 initialisations, -4,133 from 32 and 48 (from the teacher's own
# parameters: -4,105); the search had left the truth for a partition scoring -3,886 that merges
# taps 40 to 90 standard errors apart.
_RESERVE_INITS = 1
# the refit trains at most this many of the search's retrains of the chosen partition
_MAX_REFITS = 3
# ridge of the local linear model's closed form (SharingDiscoverer's default)
_LOCAL_ALPHA = 1e-6
# output channels that a dense layer's convolution hypotheses may have (each reading is one
# screened retrain: up to 4 channels gave 44 readings of a 36 x 64 layer and a 72 s screen, up
# to 2 give 16)
_MAX_CHANNELS = 2


class ModuleModel(SharingModel):
    """The sharing of a torch module's parameters.

    Parameters
    ----------
    module : torch.nn.Module subclass or instance
        A class is built as ``module(**module_kwargs)`` (seeded); an instance is deep-copied.
    module_kwargs : dict
    share : dict or None
        ``{parameter name: axis or None}`` (see :func:`sharelearn.networks.tying.check_share`).
    loss, weight_decay, inner_steps, inner_learning_rate, hypergrad, hypergrad_iter,
    neumann_alpha, search_steps, search_inits, max_epochs, patience, n_jobs, verbose :
        As documented by :class:`sharelearn.NetworkSharingDiscoverer`.
    """

    relax_batch = 1
    parallel_searches = False  # the starts share the search's cache of retrained partitions
    name = "module"
    supervised = True
    # The refit of a partition from its retrains (:func:`sharelearn.networks.refit.refit_best`),
    # and the bytes the evidence's curvature may take (None: half the available memory,
    # :func:`sharelearn.networks.laplace.memory_budget`): attributes, so that a test or a
    # subclass can give others.
    refit_best = staticmethod(refit_best)
    curvature_budget = None

    _PARAMS = ("loss", "weight_decay", "inner_steps", "inner_learning_rate", "hypergrad",
               "hypergrad_iter", "neumann_alpha", "search_steps", "search_inits", "max_epochs",
               "patience", "n_jobs", "verbose", "objective", "hessian_structure")
    # parameters a model built directly (not by an estimator) may leave out
    _DEFAULTS = {"objective": "validation", "hessian_structure": "auto"}

    def __init__(self, module, module_kwargs, share, **params):
        self.module, self.module_kwargs, self.share = module, dict(module_kwargs), share
        for name in self._PARAMS:
            setattr(self, name, params[name] if name not in self._DEFAULTS
                    else params.get(name, self._DEFAULTS[name]))
        self.warmup_steps = 10 * self.inner_steps

    @property
    def by_evidence(self):
        """Whether partitions are scored by the Laplace evidence instead of a validation loss."""
        return self.objective == "evidence"

    def auto_restarts(self):
        # (entry-level sharing runs none: the estimator asks again after prepare)
        # with the evidence, the search from init finds the sum of numbers' sharing alone
        # (tests/test_laplace.py); relaxations of it run when n_restarts asks for them
        return 0 if self.by_evidence else 1

    def check_likelihood(self):
        """The Laplace evidence needs a likelihood with curvature: an error otherwise."""
        if self.loss not in ("mse", "cross_entropy"):
            raise ValueError(f"objective='evidence' needs a Gaussian likelihood, loss='mse' "
                             f"(or NetworkSharingClassifier), got loss={self.loss!r}: the L1 "
                             "loss has no curvature for the Laplace approximation.")

    def check_restarts(self, n_restarts):
        """Relaxations that the objective cannot run: an error before any training (after
        :meth:`prepare`, which resolves the curvature's structure)."""
        if self.by_evidence and n_restarts > 0 and (self.classifies
                                                    or self.structure != "full"):
            why = ("the classifier's" if self.classifies
                   else "hessian_structure='auto' resolved to 'diag' (the full curvature does "
                   "not fit the memory budget or would take too long; see hessian_structure_ "
                   "and verbose)" if self.hessian_structure == "auto"
                   else "hessian_structure='diag'")
            raise ValueError(
                "The relaxation of the Laplace evidence is the linearised network's exact "
                "evidence, which needs loss='mse' and hessian_structure='full'; with "
                f"{why} evidence only hard partitions are scored, so n_restarts must be 0 or "
                f"'auto', got {n_restarts}.")

    @property
    def classifies(self):
        """Whether the targets are class codes (a cross-entropy loss on the module's logits)."""
        return self.loss == "cross_entropy"

    @classmethod
    def from_estimator(cls, est):
        model = cls(est.module, est._module_kwargs(), est.share,
                    **{name: getattr(est, name) for name in cls._PARAMS})
        # the refit's hold-out check of merges is part of the search
        model.local_search, model.max_search_iter = est.local_search, est.max_search_iter
        model.owner = type(est).__name__  # the estimator that messages name
        return model

    # -- the module ----------------------------------------------------------------------------
    integer_inputs = False  # the inputs may have any shape (SequenceModel: 2-D token ids)

    def raw_inputs(self, X):
        """``X`` before scikit-learn's validation: as given (a model may read it first, to
        keep what the validation would lose)."""
        return X

    def check_inputs(self, X, fitted=None):
        """Model-specific checks of validated inputs (``fitted``: the fitted model, when
        predicting); returns the inputs to use."""
        return X.astype(np.int64) if X.dtype.kind in "iub" else X

    def build(self, X, n_outputs, seed):
        """The untied module of the fit: built from the class (seeded) or copied."""
        kwargs, module = self.module_kwargs, self.module
        if isinstance(module, torch.nn.Module):
            if kwargs:
                raise ValueError("module__* keyword arguments are passed to a module class, but "
                                 f"module is an instance of {type(module).__name__}; pass the "
                                 "class instead or drop " + ", ".join(
                                     f"module__{k}" for k in kwargs) + ".")
            return copy.deepcopy(module)
        if not (isinstance(module, type) and issubclass(module, torch.nn.Module)):
            raise ValueError("module must be a torch.nn.Module subclass or instance, or "
                             f"'sequence', got {module!r}.")
        return self._construct(module, kwargs, seed)

    @staticmethod
    def _construct(cls, kwargs, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            try:
                return cls(**kwargs)
            except (TypeError, ValueError, RuntimeError) as err:
                # a wrong keyword, or a size torch refuses (a negative dimension)
                raise ValueError(f"Could not build {cls.__name__} with the keyword "
                                 f"arguments {kwargs}: {err}") from None

    def other_initialisations(self, X, n_outputs, seeds):
        """The untied module at other initialisations (see ``search_inits``): built from the
        class with other seeds, or copies of an instance whose submodules' ``reset_parameters``
        are called with other seeds (none for an instance without any)."""
        if not isinstance(self.module, torch.nn.Module):
            return [self.build(X, n_outputs, seed) for seed in seeds]

        def resets(module):
            return [m.reset_parameters for m in module.modules()
                    if callable(getattr(m, "reset_parameters", None))]

        if not resets(self.module):
            return []
        out = []
        for seed in seeds:
            module = copy.deepcopy(self.module)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                for reset in resets(module):
                    reset()
            out.append(module)
        return out

    def resolved_share(self):
        if self.share is not None:
            return dict(self.share)
        raise ValueError("A module model needs share, e.g. share={'weight': 0} to share the "
                         "slices of the parameter 'weight' along axis 0.")

    def check_output(self, module, X_few, n_outputs):
        try:
            with torch.no_grad():
                out = module(X_few)
        except (RuntimeError, IndexError, TypeError, ValueError) as err:
            raise ValueError(f"The module {type(module).__name__} failed on a batch of X: "
                             f"{err}") from None
        if not isinstance(out, torch.Tensor) or out.shape[0] != X_few.shape[0] or \
                out.reshape(out.shape[0], -1).shape[1] != n_outputs:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            what = "logits (one per class)" if self.classifies else "predictions (one per target)"
            raise ValueError(f"The module must map a batch of n samples to n x {n_outputs} "
                             f"{what}, got {shape} for n = {X_few.shape[0]}.")

    # -- the protocol --------------------------------------------------------------------------
    def prepare(self, X, Y, splits, *, dtype, device, rng=None, seed=None):
        """``splits``: ``(train, validation, stop)`` index arrays (``stop``: the refit's
        early-stopping hold-out or None); ``seed`` builds the module, ``rng`` draws the seeds of
        the other initialisations (a network needs both)."""
        train, val, stop = splits
        n_outputs = int(Y.max()) + 1 if self.classifies else Y.shape[1]
        template = self.build(X, n_outputs, seed)
        if not isinstance(template, torch.nn.Module):
            raise ValueError(f"module built a {type(template).__name__}, not a "
                             "torch.nn.Module.")
        self.share_ = self.resolved_share()
        self.n_items = check_share(template, self.share_)[0]
        self.matrix_shape = self._shared_matrix_shape(template)
        self.layer_shape = self.matrix_shape or (self.n_items, 1)
        n_inits = (_AUTO_INITS[self.entry_level] if self.search_inits == "auto"
                   else int(self.search_inits))
        self.n_search_steps = (_AUTO_STEPS[self.entry_level] if self.search_steps == "auto"
                               else int(self.search_steps))
        self.lr = (_AUTO_LR[self.entry_level] if self.inner_learning_rate == "auto"
                   else float(self.inner_learning_rate))
        template = template.to(device=device, dtype=dtype)
        self.templates = [template] + [
            t.to(device=device, dtype=dtype) for t in self.other_initialisations(
                X, n_outputs, rng.randint(2**31, size=n_inits - 1))]
        self.reserve = [t.to(device=device, dtype=dtype) for t in self.other_initialisations(
            X, n_outputs, rng.randint(2**31, size=_RESERVE_INITS * n_inits))] \
            if self.entry_level else []
        self.dtype, self.device = dtype, device

        fit_rows = np.concatenate([train, val])
        x_dtype = torch.int64 if X.dtype == np.int64 else dtype
        # copies on the device: the user's arrays are never shared with torch
        Xt = torch.tensor(X, dtype=x_dtype, device=device)
        if self.classifies:
            # Y: class codes 0..n_classes-1 (each class seen); the module returns the logits
            self.target_mean = self.target_scale = None
            Yt = torch.tensor(Y.reshape(-1), dtype=torch.int64, device=device)
            self.n_obs = len(train)
        else:
            mean = Y[fit_rows].mean(0)
            scale = Y[fit_rows].std(0)
            self.target_mean, self.target_scale = mean, np.where(scale > 0, scale, 1.0)
            Yt = torch.tensor((Y - mean) / self.target_scale, dtype=dtype, device=device)
            self.n_obs = len(train) * Y.shape[1]
        self.check_output(template, Xt[:2], n_outputs)
        self.data = (Xt[train], Yt[train], Xt[val], Yt[val])
        if self.by_evidence:
            self.check_likelihood()
            # the evidence needs no validation split: every partition is trained on all the
            # fitting samples (the pair is passed twice to keep the problem's shape)
            self.data = (Xt[fit_rows], Yt[fit_rows]) * 2
            self.n_obs = len(fit_rows) * (1 if self.classifies else Y.shape[1])
            per_item = sum(template.get_parameter(name).numel() // self.n_items
                           for name in self.share_)
            self.structure = check_curvature_memory(self.hessian_structure,
                                                    self.n_items * per_item,
                                                    budget=self.curvature_budget)
        self.fit_data = (Xt[fit_rows], Yt[fit_rows])
        self.stop_data = None if stop is None else (Xt[stop], Yt[stop])

    def _shared_matrix_shape(self, template):
        """``(n_out, n_in)`` when the items are the entries of one 2-D parameter, else None."""
        if len(self.share_) != 1:
            return None
        (name, axis), = self.share_.items()
        param = template.get_parameter(name)
        return tuple(param.shape) if axis is None and param.dim() == 2 else None

    @property
    def entry_level(self):
        """Whether the items are the many entries of one matrix (searched by linearised
        proposals from its convolution hypotheses)."""
        return self.matrix_shape is not None and self.n_items > ENTRY_SEARCH_ITEMS

    def hypotheses(self):
        # A dense layer's entries: the convolutions its shape admits, with up to _MAX_CHANNELS
        # output channels (sharelearn.symmetry.shift_hypotheses); each is scored by retraining
        # the network tied by it, and the best leads the search (sharelearn.outer).
        if not self.entry_level:
            return {}
        return shift_hypotheses(self.matrix_shape, max_channels=_MAX_CHANNELS)

    def tied_problem(self, S):
        """The inner problem of the fit's network tied by ``S``."""
        return TiedNetworkProblem(self.templates[0], self.share_, S, *self.data, loss=self.loss,
                                  weight_decay=self.weight_decay)

    def relaxation(self, S0):
        kind = EvidenceRelaxation if self.by_evidence else NetworkRelaxation
        return kind(self.tied_problem(S0[0]), S0[0], lr=self.lr,
                    warmup_steps=self.warmup_steps, inner_steps=self.inner_steps,
                    loss=self.loss, n_obs=self.n_obs, hypergrad=self.hypergrad,
                    hypergrad_iter=self.hypergrad_iter, neumann_alpha=self.neumann_alpha)

    def hard_objective(self, penalties):
        # the hypotheses' block-wise penalties are the objective's (penalty_change): the
        # loop's ranking, the linearised proposals and the refit's objective_ read them there
        self.penalties = penalties
        kwargs = dict(steps=self.n_search_steps, lr=self.lr, loss=self.loss,
                      weight_decay=self.weight_decay, n_obs=self.n_obs, penalties=penalties,
                      dtype=self.dtype, device=self.device,
                      n_jobs=max(1, effective_n_jobs(self.n_jobs)), reserve=self.reserve,
                      hypotheses=self.hypotheses())
        if self.by_evidence:
            kind, kwargs["hessian_structure"] = NetworkEvidenceObjective, self.structure
        else:
            kind = NetworkValidationObjective
        self._search_objective = kind(self.templates, self.share_, self.data, **kwargs)
        return self._search_objective

    def search_moves(self, max_iter):
        if self.entry_level:
            return [LinearisedProposal(self._search_local)]
        return network_moves()

    def _search_local(self, J, target, splits, labels):
        """The closed-form search of the network's local linear model (design ``J``) from
        ``labels``, with the layer's hypotheses, under the fit's penalties and objective: the
        search of that closed form from ``labels`` with no relaxation
        (:func:`~sharelearn.search.hypotheses.search_surrogate`)."""
        # only the hypotheses that the current partition coarsens: their block-wise penalties
        # price the proposals, and each other hypothesis would add its block equations to
        # every round (with all 44 readings of a 36 x 64 layer a round took about 8 s)
        family = self._search_objective.family
        hypotheses = {} if family is None else {
            family.names[h]: family.labels[h] for h in range(len(family))
            if family.blocks_of(h, labels) is not None}
        local = _LocalLinearMap(hypotheses, fit_intercept=True, objective=self.objective,
                                alpha=_LOCAL_ALPHA)
        local.prepare(J, target, splits, dtype=torch.float64, device=self.device)
        return search_surrogate(local, self.penalties, labels, hypotheses=hypotheses,
                                max_iter=self.max_search_iter)

    def refit(self, labels, objective):
        X_fit, y_fit = self.fit_data
        X_stop, y_stop = self.stop_data if self.stop_data is not None else (None, None)

        def refit(labels_):
            # The refit starts from the search's retrains of the partition (one per
            # initialisation; the best on the hold-out is kept): from the raw initialisation,
            # full-batch training sometimes sat on a plateau until early stopping ended it
            # (measured at L = 10: test MAE 1.8 against 0.06).
            kwargs = dict(X=X_fit, y=y_fit, X_stop=X_stop, y_stop=y_stop, loss=self.loss,
                          weight_decay=self.weight_decay, max_epochs=self.max_epochs,
                          patience=self.patience, device=self.device, verbose=self.verbose)
            if self.by_evidence:
                kwargs["decay"] = self.prior_decay(objective, labels_)
            best = self.refit_best(objective.trained_modules(labels_)[:_MAX_REFITS],
                                       lr=_REFIT_LR_FACTOR * self.lr, **kwargs)
            if self.by_evidence and X_stop is not None:
                # The evidence's retrains have no hold-out to stop them, and a partition with
                # many groups overfits there (the 2,304 entries of a dense 64 -> 36 layer on
                # 1,200 digits: test error 11 times the variance); fine-tuning cannot bring
                # such a start back. Refits from the initialisations, under the fitted prior
                # and early-stopped, compete on the hold-out (0.094 times the variance there).
                fresh = self.refit_best(objective.initial_modules(labels_, _MAX_REFITS),
                                            lr=self.lr, **kwargs)
                if fresh[2] < best[2]:
                    best = fresh
            return best

        n_merged = 0
        # the hold-out check compares hold-out losses; the evidence has no need of it
        # (entry-level sharing: the local linear search has merged what it does not separate,
        # and every merge here would be retrained from every initialisation)
        if (self.local_search and X_stop is not None and not self.by_evidence
                and not self.entry_level):
            labels, (fitted, history, _), n_merged = holdout_merges(
                objective, labels, refit, n_obs=self.n_obs, max_iter=self.max_search_iter)
            if self.verbose and n_merged:
                n_groups = int(labels.max()) + 1
                print(f"[{type(self).__name__}] {n_merged} merge(s) of groups kept on the "
                      f"hold-out: {n_groups} group{'' if n_groups == 1 else 's'}")
        else:
            fitted, history, _ = refit(labels)
        by_evidence = {}
        if self.by_evidence:
            # -2 log p of the standardised targets; the density of y in its own units has the
            # Jacobian of the standardisation (none for class labels)
            log_scale = 0.0 if self.classifies else float(
                np.log(self.target_scale).sum()) * (self.n_obs // len(self.target_scale))
            by_evidence = {"log_evidence_": -0.5 * float(objective.data_value(labels)) - log_scale,
                           "prior_precision_": float(objective.precisions(labels)["alpha"])}
        return labels, dict(
            **by_evidence,
            objective_=float(objective(labels)) + objective.penalty_change(labels),
            validation_loss_=(None if self.by_evidence
                              else float(objective.validation_loss(labels))),
            target_mean_=self.target_mean,
            target_scale_=self.target_scale,
            history_=history,
            _extra_moves=n_merged,
            _module_template=copy.deepcopy(self.templates[0]).cpu(),
            _module_state={k: v.detach().cpu().numpy().copy()
                           for k, v in fitted.state_dict().items()},
            _module_share_=self.share_,
        )

    def prior_decay(self, objective, labels):
        """The refit's weight decay of the shared values (``objective="evidence"``): the prior
        that the evidence of the partition's best retrain fitted
        (:func:`sharelearn.networks.laplace.prior_weight_decay`), so that the refit seeks the
        posterior mode instead of the likelihood's."""
        decay = prior_weight_decay(objective.precisions(labels), self.loss, self.n_obs)
        return {name: decay for name in _parametrization_names(self.share_, "original")}

    def release(self):
        for name in ("templates", "reserve", "data", "fit_data", "stop_data", "_search_objective"):
            self.__dict__.pop(name, None)


class _LocalLinearMap(LinearMap):
    """The closed-form model of a network's local linear model: its items are the layer's
    entries, whatever shape the local design has, so its hypotheses are the layer's."""

    def __init__(self, hypotheses, **kwargs):
        super().__init__(**kwargs)
        self._layer_hypotheses = hypotheses

    def hypotheses(self):
        return self._layer_hypotheses
