"""What a network's fit will hold and cost, estimated from its shapes before any training.

A fit of :class:`sharelearn.NetworkSharingDiscoverer` goes through phases that follow one
another: the batched retrains that score partitions, the Laplace evidence of each retrain
(``objective="evidence"``), the linearised search of a dense layer's entries (a closed form on
the network's local linear model), the relaxations, and the final refit. What the fit keeps
throughout (the data and its hold-out copies, the initialisations, the hypotheses, the
selection matrices of the scored partitions) adds to the largest phase. :func:`network_memory`
prices each from :class:`NetworkShapes`, which :func:`network_shapes` reads off a prepared model
with one forward pass of two samples; :func:`choose_structure` picks the curvature of the
evidence by its memory and its time (:data:`~sharelearn.networks.laplace.FULL_CURVATURE_FLOPS`).

The figures were calibrated against the peak resident memory of whole fits, measured in a forked
process (``benchmarks/bench_network_memory.py``): the tensors of each part, in the numbers of
copies that the code makes of them, and what torch and Python themselves add in a fit
(``runtime``), so that the estimate is an upper bound of the peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call

from .._memory import format_bytes
from .laplace import CURVATURES, FULL_CURVATURE_FLOPS, block_samples, saved_entries

__all__ = ["NetworkMemoryNeed", "NetworkShapes", "choose_structure",
           "network_memory", "network_shapes"]

# What Python and torch add to the resident memory in a fit, whatever its size: code and
# kernels run for the first time, the allocators' pools and what their fragments keep. Measured
# in a forked child of a process that had imported sharelearn, torch and skorch: 116 MiB for a
# fit of 3 items of a small sequence network, 114 MiB before the first linearised round of a
# 64 -> 36 layer's fit, and 160 to 260 MiB besides the fit's tensors in the whole of it (the
# same fit measured three times: its resident memory drifts up by some 70 MiB over the rounds).
_RUNTIME = 256 * 2**20
# The phases' working memory in units of what they hold, from measured peaks (see the module's
# docstring): a batched retrain holds each initialisation's parameters, gradient, Adam's two
# moments, its best checkpoint and its tied copy of the module; its backward pass allocates
# gradients of the saved activations as large as them.
_RETRAIN_COPIES = 6
_BACKWARD_FACTOR = 2
# the refit (skorch): the module, its gradient, Adam's moments, the early-stopping copy and the
# search's retrains it starts from (at most 3, models/module.py)
_REFIT_COPIES = 8
# partitions whose selection matrices the search's cache holds at the largest size counted (the
# start, the two hypotheses scored in full and a proposal)
_CACHED_PARTITIONS = 4


@dataclass(frozen=True)
class NetworkShapes:
    """The sizes of a prepared network fit that its memory and time depend on.

    ``n_params``: trainable entries of the untied module; ``n_entries``: entries of the tied
    parameters (every item), so ``n_entries`` shared values at the finest partition;
    ``n_groups``: the most groups a selection matrix of the fit is counted with (the start,
    the hypotheses); ``n_inits``, ``n_reserve``: initialisations per retrain, and the more for
    the hypotheses; ``n_rows``, ``n_fit``, ``n_train``: samples in all, fitting (train and
    validation), and trained on by a retrain; ``n_outputs``: scalar outputs per sample;
    ``sample_entries``: numbers per sample of ``X`` and ``y``; ``saved_constant``,
    ``saved_per_sample``: entries a forward pass saves for its backward pass, besides and per
    sample; ``itemsize``: bytes per number of the fit's dtype; ``linearised``: whether the
    entries of a dense layer are searched by linearised proposals
    (:mod:`sharelearn.search.linearised`).
    """

    n_params: int
    n_entries: int
    n_items: int
    n_groups: int
    n_inits: int
    n_reserve: int
    n_rows: int
    n_fit: int
    n_train: int
    n_outputs: int
    sample_entries: int
    saved_constant: int
    saved_per_sample: int
    itemsize: int
    linearised: bool = False
    n_hypotheses: int = 0
    n_relaxations: int = 0
    n_columns: int = 1
    relax_evidence: bool = False

    @property
    def n_values(self):
        """Shared values at the finest partition (every item its own group)."""
        return self.n_entries


@dataclass
class NetworkMemoryNeed:
    """The bytes a network fit holds at its peak, by part: ``held`` throughout the fit, and the
    ``phases``, which follow one another (the peak is the held parts and the largest phase).
    ``structure``: the curvature counted (None: no evidence)."""

    held: dict
    phases: dict
    structure: str | None = None

    @property
    def parts(self):
        """Every part, held ones first."""
        return {**self.held, **self.phases}

    @property
    def total(self):
        return sum(self.held.values()) + max(self.phases.values(), default=0)

    def describe(self):
        held = ", ".join(f"{name} {format_bytes(b)}" for name, b in self.held.items())
        phases = ", ".join(f"{name} {format_bytes(b)}" for name, b in self.phases.items())
        return f"{held}; then the largest of: {phases}" if phases else held


def _saved_by_module(module, X):
    """``(constant, per_sample)``: entries the forward pass of ``module`` on ``X`` saves for
    its backward pass, measured on one and two samples (no training)."""
    params = {name: p.detach() for name, p in module.named_parameters()}

    def outputs(values, Xb):
        out = functional_call(module, values, (Xb,))
        return out.reshape(out.shape[0], -1)

    return saved_entries(outputs, params, X)


def network_shapes(*, templates, reserve, share, n_items, data, fit_data, stop_data, n_groups,
                   linearised, n_hypotheses, n_relaxations, n_columns, relax_evidence):
    """The :class:`NetworkShapes` of a prepared fit (:class:`sharelearn.models.module.
    ModuleModel`'s ``templates``, ``reserve``, ``share_``, ``data``, ``fit_data``,
    ``stop_data``): one forward pass of the first template on two samples, no training."""
    template = templates[0]
    param = next(template.parameters())
    X_train = data[0]
    n_stop = 0 if stop_data is None else stop_data[0].shape[0]
    X_fit, y_fit = fit_data
    constant, per_sample = _saved_by_module(template, X_train[:2])
    with torch.no_grad():
        out = template(X_train[:1])
    y_entries = y_fit[:1].numel()
    return NetworkShapes(
        n_params=sum(p.numel() for p in template.parameters()),
        n_entries=sum(template.get_parameter(name).numel() for name in share),
        n_items=n_items, n_groups=max(1, min(n_groups, n_items)),
        n_inits=len(templates), n_reserve=len(reserve),
        n_rows=X_fit.shape[0] + n_stop, n_fit=X_fit.shape[0], n_train=X_train.shape[0],
        n_outputs=out[:1].numel(),
        sample_entries=X_fit[:1].numel() + y_entries,
        saved_constant=constant, saved_per_sample=per_sample,
        itemsize=param.element_size(), linearised=bool(linearised),
        n_hypotheses=int(n_hypotheses), n_relaxations=int(n_relaxations),
        n_columns=int(n_columns), relax_evidence=bool(relax_evidence))


def _activations(s, n_samples):
    """Bytes of one initialisation's forward and backward pass on ``n_samples`` samples."""
    return (_BACKWARD_FACTOR * s.itemsize
            * (s.saved_constant + n_samples * s.saved_per_sample))


def _jacobian_bytes(s, n_values):
    """Bytes of one block of a Jacobian in ``n_values`` values (the evidence's shared values,
    or a linearisation's items): the reverse-mode passes through the block, at most
    ``JACOBIAN_BLOCK`` entries (:func:`~sharelearn.networks.laplace.block_samples`), and the
    block's Jacobian in float64."""
    rows = block_samples(s.n_fit, s.n_outputs, s.saved_per_sample, s.n_entries, n_values)
    passes = rows * s.n_outputs * (rows * s.saved_per_sample + s.n_entries + n_values)
    return passes * s.itemsize + 8 * rows * s.n_outputs * n_values


def network_memory(shapes, *, structure=None, surrogate=0):
    """The :class:`NetworkMemoryNeed` of a fit of ``shapes``.

    ``structure``: the curvature of the Laplace evidence (None: ``objective="validation"``),
    counted at the finest partition the search may reach; ``surrogate``: the bytes of the
    closed form that searches the local linear model of a dense layer's entries
    (:meth:`sharelearn.models.closed_form.ClosedFormModel.memory_need`, which the estimator
    supplies: this package does not import the models).
    """
    s = shapes
    b = s.itemsize
    held = {
        "runtime": _RUNTIME,
        # the validated inputs (float64), and the fit's copies on the device: all the rows,
        # the train and validation rows, the fitting rows again, the hold-out
        "data": s.n_rows * s.sample_entries * (8 + 3 * b),
        "initialisations": (s.n_inits + s.n_reserve + 2) * s.n_params * b,
        "selection matrices": _CACHED_PARTITIONS * s.n_items * s.n_groups * b,
    }
    if s.n_hypotheses:
        # their labels, kept by the model, the objective and the ranking, with their indexes
        held["hypotheses"] = 4 * 8 * s.n_hypotheses * s.n_items
    batch = max(s.n_inits + 1, s.n_reserve)  # the batched retrains: the proposal's own start too
    phases = {"retrains": batch * (_RETRAIN_COPIES * s.n_params * b
                                   + _activations(s, s.n_train))}
    if structure is not None:
        phases["curvature"] = (CURVATURES[structure].peak_memory(s.n_values)
                               + _jacobian_bytes(s, s.n_values))
    # the local linear model's design, one row per fitting sample and output, one column per
    # item (float64): joined from its blocks (twice), then searched by the closed form
    design = 8 * s.n_fit * s.n_outputs * s.n_entries
    if s.linearised:
        phases["linearisation"] = 2 * design + _jacobian_bytes(s, s.n_entries)
        phases["linearised search"] = design + int(surrogate)
    if s.n_relaxations:
        relaxed = (_RETRAIN_COPIES * s.n_params * b + 3 * _activations(s, s.n_train)
                   + 4 * s.n_items * s.n_columns * b)
        if s.relax_evidence:  # the items' Jacobian on every fitting sample, and its GGN
            per_item = s.n_entries // max(1, s.n_items)
            relaxed += (2 * design + _jacobian_bytes(s, s.n_entries)
                        + 3 * 8 * (s.n_columns * per_item) ** 2)
        phases["relaxation"] = relaxed
    phases["refit"] = _REFIT_COPIES * s.n_params * b + _activations(s, s.n_rows)
    return NetworkMemoryNeed(held=held, phases=phases, structure=structure)


def choose_structure(requested, shapes, budget, *, surrogate=0):
    """``(structure, need, reason)``: the curvature of the evidence a fit of ``shapes`` uses,
    its :class:`NetworkMemoryNeed`, and why (a sentence, for ``verbose``).

    ``"auto"`` takes ``"full"`` where the whole fit with it fits ``budget`` (bytes; None: no
    limit) and one evaluation of it at the finest partition costs at most
    :data:`~sharelearn.networks.laplace.FULL_CURVATURE_FLOPS`, else ``"diag"``. An explicit
    structure is kept whatever it costs; the estimator refuses it if it does not fit.
    """
    n_values, n_rows = shapes.n_values, shapes.n_fit * shapes.n_outputs
    if requested != "auto":
        need = network_memory(shapes, structure=requested, surrogate=surrogate)
        return requested, need, f"hessian_structure={requested!r} as asked"
    full = network_memory(shapes, structure="full", surrogate=surrogate)
    flops = CURVATURES["full"].flops(n_values, n_rows)
    if budget is not None and full.total > budget:
        why = (f"the full curvature of {n_values:,} values would need "
               f"{format_bytes(full.total)} in all, more than the memory budget of "
               f"{format_bytes(budget)}")
    elif flops > FULL_CURVATURE_FLOPS:
        why = (f"one evaluation of the full curvature of {n_values:,} values would cost about "
               f"{flops:.1e} flops (the GGN's accumulation and its eigendecomposition), above "
               f"the limit of {FULL_CURVATURE_FLOPS:.0e}")
    else:
        return "full", full, (f"the full curvature of {n_values:,} values fits the memory "
                              f"budget and costs about {flops:.1e} flops per evaluation")
    diag = network_memory(shapes, structure="diag", surrogate=surrogate)
    return "diag", diag, why

