"""The closed-form models' shared base.

A closed-form model is a tied linear map fitted by least squares on X and y in internal units
(:mod:`sharelearn._scaling`): the inner problem is :class:`~sharelearn.models.gaussian.
TiedLinearGaussian`, whose shared values have a closed form, so the relaxation differentiates
through the solve exactly and the search scores its candidates exactly from the normal
equations (the hard objectives: :mod:`sharelearn.models.objectives`; the memory planning:
:mod:`sharelearn.models.planning`). :class:`ClosedFormModel` implements the model protocol
(:class:`~sharelearn.models.base.SharingModel`) for both :class:`~sharelearn.models.means.
SharedMeans` and :class:`~sharelearn.models.linear.LinearMap`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..evidence import fit_precisions, integrate_level, neg2_log_evidence
from ..penalties import data_term
from ..search.moves import closed_form_moves
from .base import SharingModel
from .gaussian import TiedLinearGaussian, ridge_solve
from .objectives import EvidenceObjective, ValidationObjective
from .planning import _MIN_COLUMNS, _MIN_SCREEN_BLOCK, MemoryNeed, MemoryPlan

__all__ = ["ClosedFormModel"]

# The relaxation holds a few P x r tensors; above this many entries the candidate count shrinks.
_RELAXATION_BUDGET = 2**20  # also bounds a batch of restarts relaxed together
# n_restarts="auto" relaxes only while one step (O(items x inputs x groups)) stays cheap. Above
# it the search from the shared partition reached the same objective 100x faster (measured on
# valid 70 -> 68, 4,760 entries, and the 64-input small-data curve: benchmarks/bench_shift.py).
_AUTO_RESTART_BUDGET = 2**16


class ClosedFormModel(SharingModel):
    """A tied linear map fitted in closed form; subclasses say what the map is
    (:meth:`design`) and what a fit reports (:meth:`map_attributes`).

    Parameters
    ----------
    objective : {"validation", "evidence"}
        The data term: ``N log`` of the mean validation MSE over the splits, or ``-2 log``
        evidence of the tied linear-Gaussian model on all the data.
    alpha : float
        Ridge penalty on the shared values, in internal units.
    """

    #: Which structured hypotheses a fit builds in full on a large layer, given to the hard
    #: objectives (a :class:`~sharelearn.search.coarsening.Shortlist`; None: its defaults). A
    #: model type may set its own.
    shortlist = None

    def __init__(self, *, objective="validation", alpha=1e-6):
        self.objective = objective
        self.alpha = alpha

    @classmethod
    def on_problem(cls, problem, **params):
        """A model around an already built :class:`~sharelearn.models.gaussian.
        TiedLinearGaussian` (its data used as they are, without the internal units): to score
        partitions or relax selections of a problem built by hand."""
        model = cls(**params)
        model.problem, model.n_items = problem, problem.n_items
        model.layer_shape = (problem.n_outputs, problem.n_inputs)
        model.dtype, model.device = problem.dtype, problem.device
        return model

    # -- what subclasses define ----------------------------------------------------------------
    def design(self, X, y):
        """``(inputs, targets, fit_intercept, units)`` in internal units."""
        raise NotImplementedError

    def map_attributes(self, psi, W, full):
        """The fitted attributes of the shared values ``psi`` and map ``W`` (internal units)."""
        raise NotImplementedError

    def layer_dims(self, n_features, n_outputs):
        """``(n_outputs, n_inputs)`` of the tied map that data with ``n_features`` columns and
        ``n_outputs`` targets give (the shared means: one constant input, a target per
        feature)."""
        return n_outputs, n_features

    def memory_need(self, n_samples, n_features, n_outputs, splits, itemsize, *,
                    start_groups=None):
        """The bytes a fit on such data holds at its peak, by part, in its leanest way of working
        (:class:`MemoryNeed`), from the shapes alone: before any work.

        Counted: the data and their split statistics (``X^T X`` and ``X^T y`` per split part,
        the curvature of every entry), two search states (the current one and a candidate) with
        ``C S`` and the normal equations for ``_MIN_COLUMNS`` columns, or for the
        ``start_groups`` groups of the start and the spare (``init="unshared"``: a column per
        item), with one candidate scored exactly at once (``F x R x R`` systems), and the screen
        of one-item moves (six ``F x n`` arrays and ``n x R`` ratings for a block of ``n`` items,
        at least ``_MIN_SCREEN_BLOCK``: larger blocks where the budget allows). The relaxation,
        which holds no search state, is priced apart (``MemoryNeed.relaxation``). Counted too:
        the block equations of the structured hypotheses that the ranking keeps, three at most
        (``2 F K^2`` numbers each for ``K`` blocks, the three largest of
        :meth:`hypothesis_blocks`: an 8 x 8 map's 1,024-block point-group readings take 84 MB
        each with 5 splits). Not counted: Python and torch themselves, and the hypotheses'
        labels (``8 P`` bytes each)."""
        m, d = self.layer_dims(n_features, n_outputs)
        P = m * d
        if not self.uses_splits or splits is None:
            splits = [(np.arange(n_samples), np.arange(n_samples))]
        F = len(splits)
        n_tr = max(len(tr) for tr, _ in splits)
        n_va = max(len(va) for _, va in splits)
        through_samples = max(n_tr, n_va) < d and d > 1
        stats = itemsize * (2 * F * d * d + 4 * F * P) + 8 * P
        if through_samples:  # the centred parts
            stats += itemsize * F * (n_tr + n_va) * d
        per_column = itemsize * (F * (n_tr + n_va) * m if through_samples else 2 * F * P)
        per_state = itemsize * F * P + 16 * P  # a cached gradient, the labels twice
        # G and Gv of each state: F x R x R each
        per_square = itemsize * 2 * F
        # A candidate scored exactly holds its refitted G and Gv and the solve's copy, and the
        # evidence's eigendecompositions; measured: 3 (validation) and 5 (evidence, F = 1)
        # times F R^2 numbers for the one-item moves, 4.2 and 6 to 8 for the merges.
        candidate = itemsize * (4 * F + 4)
        # A relaxed restart holds a few dozen P x r tensors (the logits, the selection, Adam's
        # moments, the autograd graph of C S): measured 16 to 22 F P r numbers with validation
        # splits and 47 to 73 P r with the evidence (linear map), 7 F and 29 P r for the shared
        # means
        relaxation = itemsize * ((64 + 16 * F) if d > 1 else (32 + 4 * F))
        # the screen: six F x n arrays and the n x R ratings for n items at once, and the
        # penalty change of leaving each item's group
        item, item_column = itemsize * 6 * F + 16, itemsize
        smallest = min(P, _MIN_SCREEN_BLOCK)
        R = max(_MIN_COLUMNS, 1 + int(start_groups or 0))
        # the ranking keeps the equations of its two best hypotheses and the coarser one
        kept = sum(K * K for K in self.hypothesis_blocks((m, d))[:3])
        hypotheses = {"hypotheses": itemsize * 2 * F * kept} if kept else {}
        return MemoryNeed(
            parts={"data": n_samples * (d + m) * (8 + itemsize), "statistics": stats,
                   **hypotheses,
                   "search states": (2 * (per_state + per_column * R + per_square * R * R)
                                     + candidate * R * R),
                   "screen": itemsize * P + smallest * (item + item_column * R)},
            per_column=2 * per_column, screen_item=item, screen_item_column=item_column,
            n_items=P, per_column_squared=2 * per_square, candidate=candidate,
            relaxation=relaxation, columns=R)

    # -- the protocol --------------------------------------------------------------------------
    @property
    def free_level(self):
        """Whether the evidence integrates the targets' common level out under a flat prior
        (:func:`~sharelearn.evidence.integrate_level`): for the shared means, whose design is one
        constant input and whose features share one offset. Their evidence is then the same
        whatever that offset (the data's origin, or the grand mean they are centred by), and a
        sharing pays the prior for its groups' contrasts, not for the level too."""
        return getattr(self, "name", None) == "mean"

    @property
    def uses_splits(self):
        """Whether the objective needs train/validation splits (the evidence uses all data)."""
        return self.objective != "evidence"

    def prepare(self, X, y, splits, *, dtype, device, rng=None, seed=None):
        Xd, Y, intercept, units = self.design(X, y)
        if not self.uses_splits:
            splits = [(np.arange(X.shape[0]), np.arange(X.shape[0]))]
        self.Xd, self.Y, self.intercept, self.units = Xd, Y, intercept, units
        self.dtype, self.device = dtype, device
        # copies: the user's arrays are never shared with torch
        self.problem = TiedLinearGaussian(torch.tensor(Xd, dtype=dtype, device=device),
                                          torch.tensor(Y, dtype=dtype, device=device), splits,
                                          fit_intercept=intercept, alpha=self.alpha)
        self.n_items = self.problem.n_items
        self.layer_shape = (Y.shape[1], Xd.shape[1])

    def default_columns(self):
        return max(2, min(self.n_items, 16, _RELAXATION_BUDGET // self.n_items))

    def auto_restarts(self):
        return 3 if self.n_items * self.problem.n_inputs <= _AUTO_RESTART_BUDGET else 0

    def batch_size(self, n_columns):
        """Most restarts relaxed together: a batch holds a few ``B x P x r`` tensors, within
        the memory budget (at least one: :meth:`relaxation` refuses one that does not fit)."""
        most = max(1, _RELAXATION_BUDGET // (self.n_items * n_columns))
        plan = self.__dict__.get("memory_plan")
        return most if plan is None else max(1, min(most, plan.relaxations(n_columns)))

    def relaxation(self, S0):
        plan = self.__dict__.get("memory_plan")
        if plan is not None:  # before the first step, which holds most of the relaxation
            plan.check_relaxation(S0[..., 0, 0].numel(), S0.shape[-1])
        return self.relaxed_data_term  # stateless: S0 is not needed

    def relaxed_data_term(self, S):
        """The data term of soft selections ``S`` (``P x r`` or a batch ``B x P x r``): ``N log``
        of the expected validation MSE (a soft row costs its expected loss), or ``-2 log p(y | S)``
        of the expected model on all the data, with the precisions at their type-II maximum
        likelihood. At a hard ``S`` it equals the hard objective's data term."""
        problem = self.problem
        if self.objective == "evidence":
            G, c = problem.normal_equations(S)
            G, c = G[..., 0, :, :], c[..., 0, :]
            yy = problem.yy_tr[0].expand(G.shape[:-2])
            n_obs = float(problem.n_tr[0]) * problem.n_outputs
            if self.free_level:
                G, c, yy, n_obs, _ = integrate_level(G, c, yy, n_obs)
            alpha, beta = fit_precisions(G.detach(), c.detach(), yy.detach(), n_obs)
            return neg2_log_evidence(G, c, yy, n_obs, alpha, beta)
        return data_term(problem.n_obs_train, problem.validation_mse(S), problem.mse_floor)

    def hard_objective(self, penalties):
        screen_block = self.__dict__.get("screen_block")
        if self.objective == "evidence":
            return EvidenceObjective(self.problem, penalties, screen_block=screen_block,
                                     shortlist=self.shortlist, free_level=self.free_level)
        return ValidationObjective(self.problem, penalties, screen_block=screen_block,
                                   shortlist=self.shortlist)

    def hypothesis_blocks(self, layer_shape):
        """The block counts of the structured hypotheses of a layer of ``layer_shape``
        (:meth:`hypotheses`), largest first, for the memory estimate; none by default."""
        return []

    def plan_memory(self, need, budget):
        """Work within ``budget`` bytes (None: no limit) given the fit's ``need``
        (:meth:`memory_need`): the search's screen rates its moves in blocks of items that fit,
        its exact scores are computed in blocks of candidates that fit, and the restarts are
        relaxed in batches that fit (:class:`MemoryPlan`)."""
        self.memory_plan = None if budget is None else MemoryPlan(need, budget)
        self.screen_block = self.memory_plan

    def search_moves(self, max_iter):
        return closed_form_moves(max_iter=max_iter)

    def refit(self, labels, objective):
        """Shared values of the chosen partition, fitted on all the (internal) data, and mapped
        back to the user's units; also what ``log_evidence_`` needs, computed on first access
        (the precisions' fixed point costs more than a whole fit of a small problem)."""
        n_groups = int(labels.max()) + 1
        Xd, Y = self.Xd, self.Y
        if self.uses_splits:
            everything = [(np.arange(Xd.shape[0]), np.arange(Xd.shape[0]))]
            full = TiedLinearGaussian(torch.tensor(Xd, dtype=self.dtype, device=self.device),
                                      torch.tensor(Y, dtype=self.dtype, device=self.device),
                                      everything, fit_intercept=self.intercept,
                                      alpha=self.alpha)
        else:  # the evidence's problem holds all the data already
            full = self.problem
        stats = full.hard_statistics(labels, n_groups)
        evidence = (stats["G"][0], stats["c"][0], full.yy_tr[0],
                    float(full.n_tr[0]) * full.n_outputs)
        if self.free_level:
            evidence = integrate_level(*evidence)[:4]
        terms = tuple(np.asarray(torch.as_tensor(t).detach().cpu(), dtype=np.float64)
                      for t in evidence) + (np.log(self.units.y_scale),)
        psi = ridge_solve(stats["G"][0], stats["c"][0], self.alpha)
        psi = psi.cpu().numpy().astype(np.float64)
        W = psi[labels].reshape(Y.shape[1], Xd.shape[1])
        attributes = self.map_attributes(psi, W, full)
        attributes["validation_loss_"] = (None if not self.uses_splits else float(
            objective.state(labels).mse.mean()) * self.units.y_scale ** 2)
        attributes["_evidence_terms"] = terms
        return labels, attributes

    def release(self):
        for name in ("Xd", "Y", "problem"):
            self.__dict__.pop(name, None)
