"""The Laplace approximation of a tied network's marginal likelihood (``objective="evidence"``).

A network whose parameters are tied by a partition is scored by its evidence, as the closed-form
models are (:mod:`sharelearn.evidence`), without a validation split. Around the trained weights,
the network's outputs are linearised in the *shared values* ``psi`` (one value per group and
position of the tied parameters); the other parameters stay at their trained values (the
subnetwork Laplace approximation of Daxberger et al., 2021). With ``J`` the Jacobian of the
``N`` scalar outputs in ``psi`` (one row per sample and output), a prior ``psi ~ N(0, alpha^-1
I)`` and the likelihood of the loss:

* **Gaussian** (``loss="mse"``, noise precision ``beta``), ``hessian_structure="full"``: the
  evidence of the linearised network, which is Bayesian linear regression with the design ``J``
  and the targets ``y - f(x) + J psi`` (:func:`sharelearn.evidence.neg2_log_evidence`). This is
  the Laplace approximation with the generalised Gauss-Newton (GGN) curvature ``beta J^T J`` at
  the linearised model's own mode, so it does not depend on how exactly the network was trained;
  on a linear network the linearisation is exact and so is the value (``tests/test_laplace.py``
  checks it against :class:`sharelearn.SharingDiscoverer`'s ``log_evidence_``).
* **Gaussian**, ``"diag"``: the Laplace approximation at the trained weights with the diagonal
  of the GGN, ``-2 log p = beta SSE - N log beta + N log 2 pi + alpha |psi|^2 - P log alpha +
  sum_i log(alpha + beta g_i)``, ``g = diag(J^T J)``.
* **Categorical** (cross-entropy on logits): the GGN is ``sum_n J_n^T (diag(p_n) - p_n p_n^T)
  J_n`` (the softmax's Hessian); ``-2 log p = 2 NLL + alpha |psi|^2 - P log alpha + log det(alpha
  I + GGN)``, with the eigenvalues (``"full"``) or the diagonal (``"diag"``) of the GGN.

The precisions are chosen by type-II maximum likelihood with MacKay's fixed-point updates on the
curvature's eigenvalues (or diagonal), as for the closed-form evidence. The value is ``-2 log p``,
in the units of the validation objective's ``N log(loss)``.

Why not laplace-torch: it imports torchvision (through torchmetrics), and on a CPU build of torch
the torchvision wheel from the package index fails at import (``operator torchvision::nms does
not exist``, measured with torch 2.13.0+cpu and torchvision 0.28.0), so the package could not be
imported where sharelearn's tests run. The GGN here is the textbook product of Jacobians from
``torch.func``; its log-determinant and precisions reuse :mod:`sharelearn.evidence`.
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call, jacrev

from .._memory import resolve_budget
from ..evidence import fit_precisions, neg2_log_evidence, noise_floor

__all__ = ["CURVATURES", "FULL_CURVATURE_FLOPS", "HESSIAN_STRUCTURES", "JACOBIAN_BLOCK",
           "Curvature", "CurvatureMemoryError", "DiagonalCurvature", "FullCurvature",
           "block_samples", "categorical_evidence", "check_curvature_memory", "curvature",
           "gaussian_evidence", "ggn_statistics", "item_linearisation", "memory_budget",
           "network_evidence", "prior_weight_decay", "saved_entries", "soft_gaussian_evidence",
           "tied_jacobian"]

# The GGN's rows are accumulated over blocks of samples whose Jacobian and the reverse-mode
# passes that make it hold at most this many entries in all (256 MiB in float64), so neither
# the Jacobian of all the samples nor its intermediates are ever held at once (the default of
# every ``block_entries``).
JACOBIAN_BLOCK = 32 * 2**20


class Curvature:
    """One structure of the curvature (the GGN in the shared values), as laplace-torch has one
    class per structure: how its statistics accumulate over blocks of samples, and the
    evidence they give. A new structure (a Kronecker factorisation, say) is one more subclass
    in :data:`CURVATURES`; :func:`ggn_statistics` and the evidences do not change."""

    name = None

    def zeros(self, n_values, device):
        """The empty accumulator of the GGN of ``n_values`` shared values (float64)."""
        raise NotImplementedError

    def gaussian_term(self, Jf):
        """The GGN of a block's rows ``Jf`` (``rows x P``) under unit noise precision."""
        raise NotImplementedError

    def categorical_term(self, J, p, pJ):
        """The softmax's GGN of a block: ``J`` (``n x classes x P``), the probabilities ``p``
        and ``pJ = p_n^T J_n``."""
        raise NotImplementedError

    def gaussian_evidence(self, G, c, yy, sse, psi_sq, n_obs):
        """``(value, alpha, beta)``: see :func:`gaussian_evidence`."""
        raise NotImplementedError

    def eigenvalues(self, G):
        """The eigenvalues (or the stand-ins for them) of the accumulated ``G``."""
        raise NotImplementedError

    def memory(self, n_values):
        """Bytes the structure holds for ``n_values`` shared values."""
        raise NotImplementedError

    def peak_memory(self, n_values):
        """Bytes at the peak of one evaluation of the evidence with ``n_values`` shared values
        (the structure's work space included)."""
        raise NotImplementedError

    def flops(self, n_values, n_rows):
        """Floating-point operations of one evaluation on ``n_rows`` scalar outputs."""
        raise NotImplementedError


class FullCurvature(Curvature):
    """The ``P x P`` GGN: the exact evidence of the linearised network (Gaussian), or its
    eigenvalues' log-determinant (categorical)."""

    name = "full"

    def zeros(self, n_values, device):
        return torch.zeros((n_values, n_values), dtype=torch.float64, device=device)

    def gaussian_term(self, Jf):
        return Jf.T @ Jf

    def categorical_term(self, J, p, pJ):
        return torch.einsum("nkp,nkq->pq", J * p[:, :, None], J) - pJ.T @ pJ

    def gaussian_evidence(self, G, c, yy, sse, psi_sq, n_obs):
        alpha, beta = fit_precisions(G, c, yy, float(n_obs))
        value = neg2_log_evidence(G, c, yy, float(n_obs), alpha, beta)
        return float(value), float(alpha), float(beta)

    def eigenvalues(self, G):
        return torch.linalg.eigvalsh(G)

    def memory(self, n_values):
        return 2 * 8 * n_values**2  # the GGN and its eigenvectors, float64

    def peak_memory(self, n_values):
        # the GGN, the eigenvectors and LAPACK's work space; then the posterior precision, the
        # identity it is made with and its Cholesky factor (P x P each, float64)
        return 5 * 8 * n_values**2

    def flops(self, n_values, n_rows):
        # the GGN's accumulation and its eigendecomposition
        return n_rows * n_values**2 + n_values**3 / 3


class DiagonalCurvature(Curvature):
    """The GGN's diagonal: the Laplace value at the trained weights with ``diag(J^T J)``."""

    name = "diag"

    def zeros(self, n_values, device):
        return torch.zeros(n_values, dtype=torch.float64, device=device)

    def gaussian_term(self, Jf):
        return (Jf**2).sum(0)

    def categorical_term(self, J, p, pJ):
        return (p[:, :, None] * J**2).sum((0, 1)) - (pJ**2).sum(0)

    def gaussian_evidence(self, G, c, yy, sse, psi_sq, n_obs):
        lam = G.clamp_min(0)
        alpha, beta = _mackay(lam, psi_sq, lam.numel(), sse=sse, n_obs=n_obs)
        value = (beta * float(sse) - n_obs * math.log(beta) + n_obs * math.log(2 * math.pi)
                 + alpha * float(psi_sq) - lam.numel() * math.log(alpha)
                 + float(torch.log(alpha + beta * lam).sum()))
        return value, alpha, beta

    def eigenvalues(self, G):
        return G

    def memory(self, n_values):
        return 8 * n_values

    def peak_memory(self, n_values):
        return 4 * 8 * n_values  # the diagonal, the shared values, c and a temporary

    def flops(self, n_values, n_rows):
        return 2 * n_rows * n_values


# The structures by name (``hessian_structure``); "auto" picks "full" where it fits in memory
# and in time (FULL_CURVATURE_FLOPS).
CURVATURES = {c.name: c for c in (FullCurvature(), DiagonalCurvature())}
HESSIAN_STRUCTURES = ("auto", *CURVATURES)

# "auto" takes the full curvature only where one evaluation of it at the finest partition costs
# at most this many floating-point operations (FullCurvature.flops: the GGN's accumulation,
# N P^2, and its eigendecomposition, P^3 / 3). Measured on this project's 2-core machine, one
# thread: torch.linalg.eigh took 4.1 s at P = 2,304 (P^3 / 3 = 4.1e9) and 53 s at 4,608
# (3.3e10), and entry-level sharing scores each partition from 16 initialisations (and 16 more
# for the hypotheses); the dense 9,216-entry evidence fit (3.6e11 flops per evaluation on 1,200
# samples) took 2,729 s. The limit keeps the full curvature up to 2 channels of a 64 -> 36 layer
# (4,608 values: 6.5e10 on 1,500 samples) and takes the diagonal from 4 channels on.
FULL_CURVATURE_FLOPS = 1e11


def curvature(structure):
    """The :class:`Curvature` named ``structure`` (a name of :data:`CURVATURES`, or an
    instance, returned as it is)."""
    return structure if isinstance(structure, Curvature) else CURVATURES[structure]


def memory_budget():
    """Bytes the curvature of one partition may take: the closed-form fits' automatic
    ``memory_budget``, half of the memory available on this machine (4 GiB where it cannot be
    read)."""
    budget = resolve_budget("auto", torch.device("cpu"))
    return 4 * 2**30 if budget is None else budget


class CurvatureMemoryError(MemoryError, ValueError):
    """A curvature that does not fit the memory budget: a ``MemoryError`` (the fit was refused
    before any work), and a ``ValueError`` as this refusal always was."""


def check_curvature_memory(structure, n_values, budget=None, n_rows=0):
    """The structure to use (``"auto"`` resolved) for at most ``n_values`` shared values on
    ``n_rows`` scalar outputs; a :class:`CurvatureMemoryError` saying how much memory ``"full"``
    would need when it does not fit.

    ``"full"`` holds the ``P x P`` GGN and its eigenvectors (``2 P^2`` float64 numbers) at the
    finest partition the search may reach, ``P = n_values``; ``"auto"`` takes it where that
    fits ``budget`` and one evaluation costs at most :data:`FULL_CURVATURE_FLOPS`. (The
    estimator weighs the whole fit's memory instead: :mod:`sharelearn.networks.memory`.)"""
    budget = memory_budget() if budget is None else budget
    full = CURVATURES["full"]
    need = full.memory(n_values)
    if structure == "auto":
        fits = need <= budget and full.flops(n_values, n_rows) <= FULL_CURVATURE_FLOPS
        return "full" if fits else "diag"
    if structure == "full" and need > budget:
        raise CurvatureMemoryError(
            f"hessian_structure='full' needs the {n_values} x {n_values} curvature of the shared "
            f"values at the finest partition, about {need / 2**30:.1f} GiB, more than the "
            f"memory budget of {budget / 2**30:.1f} GiB (half of the memory available); use "
            "hessian_structure='diag', which needs "
            f"{CURVATURES['diag'].memory(n_values) / 2**20:.2f} MiB.")
    return structure


def _jacobian_and_output(outputs, values):
    """The Jacobian of ``outputs`` in the dict ``values`` and the outputs themselves, from one
    evaluation."""

    def with_value(v):
        out = outputs(v)
        return out, out.detach()

    return jacrev(with_value, has_aux=True)(values)


def _saved_counts(outputs, values, X):
    """``(n_out, on_one, per_sample)``: the outputs per sample of ``outputs(values, X)``, the
    entries of the tensors its forward pass on one sample saves for the backward pass, and
    those per sample of ``X`` (the difference between passes on two samples and on one)."""
    count = [0]

    def pack(tensor):
        count[0] += tensor.numel()
        # Only counted: these passes are never differentiated. Keeping the tensor itself made
        # a reference cycle wherever an operation saves its own output (its graph holds the
        # output, which holds the graph), invisible to Python's collector: each call leaked
        # the pass's saved tensors, the tied layer's n_items x n_items selection among them
        # (an identity in item_linearisation: 42 MB per round of the linearised search at
        # 2,304 entries, 6.4 GB at 28,224).
        return None

    def entries(n):
        count[0] = 0
        leaves = {k: v.detach().requires_grad_(True) for k, v in values.items()}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda _: None):
            out = outputs(leaves, X[:n])
        return count[0], out.shape[1]

    one, n_out = entries(1)
    per_sample = entries(2)[0] - one if X.shape[0] > 1 else one
    return n_out, one, max(1, per_sample)


def _saved_per_sample(outputs, values, X):
    """``(n_out, per_sample)``: the outputs per sample of ``outputs(values, X)``, and the
    entries per sample of ``X`` of the tensors its forward pass saves for the backward pass."""
    n_out, _, per_sample = _saved_counts(outputs, values, X)
    return n_out, per_sample


def saved_entries(outputs, values, X):
    """``(constant, per_sample)``: the entries of the tensors that the forward pass of
    ``outputs(values, X[:n])`` saves for its backward pass are about ``constant + n *
    per_sample`` (measured on one and two samples of ``X``; the parameters ``values`` are the
    leaves). What a training step of ``n`` samples holds besides the parameters."""
    _, one, per_sample = _saved_counts(outputs, values, X)
    return max(0, one - per_sample), per_sample


def _jacobian_block(outputs, values, X, n_entries, block_entries=JACOBIAN_BLOCK):
    """The number of samples per block of :func:`tied_jacobian`.

    The Jacobian of a block of ``b`` samples is made of ``b * n_out`` reverse-mode passes
    (one per output), each through the whole block. Each holds gradients of the saved tensors
    of every sample of the block and of the tied parameters' ``n_entries`` entries, about ``b *
    n_out * (b * per_sample + n_entries)`` entries in all, besides the Jacobian's own ``b *
    n_out * n_values``. The largest ``b`` keeping that within ``block_entries`` is used: a
    pass through 1,200 images at once needed 9.4 GB for a 36 x 64 layer and 17 GB for a
    144 x 64 one, and the work, which grows with ``b``, shrinks too."""
    n_values = sum(v.numel() for v in values.values())
    n_out, per_sample = _saved_per_sample(outputs, values, X)
    return block_samples(X.shape[0], n_out, per_sample, n_entries, n_values, block_entries)


def block_samples(n_samples, n_out, per_sample, n_entries, n_values, block_entries=JACOBIAN_BLOCK):
    """The samples per block of a Jacobian (:func:`_jacobian_block`) from the sizes: the
    largest ``b`` with ``b * n_out * (b * per_sample + n_entries + n_values)`` at most
    ``block_entries``, at least 1 and at most ``n_samples``."""
    # b^2 * n_out * per_sample + b * n_out * (n_entries + n_values) <= budget
    a, c = n_out * max(1, per_sample), n_out * (n_entries + n_values)
    b = (-c + math.sqrt(c * c + 4.0 * a * block_entries)) / (2.0 * a)
    return int(min(n_samples, max(1, b)))


def _blocked_jacobians(outputs, values, X, n_entries, block_entries):
    """Yields ``(rows, jacobian, out)`` of ``outputs(values, X[rows])`` in the dict ``values``
    over the blocks of samples of :func:`_jacobian_block`."""
    block = _jacobian_block(outputs, values, X, n_entries, block_entries)
    for start in range(0, X.shape[0], block):
        Xb = X[start:start + block]
        jac, out = _jacobian_and_output(lambda v, Xb=Xb: outputs(v, Xb), values)
        yield slice(start, start + out.shape[0]), jac, out


def tied_jacobian(problem, w, S, X, block_entries=JACOBIAN_BLOCK):
    """Jacobians of the tied network's outputs in its shared values, by blocks of samples
    (at most ``block_entries`` entries held per block: :func:`_jacobian_block`).

    Yields ``(rows, J_block, out_block)``: the sample indices, the Jacobian
    (``n_block x n_outputs x P``, ``P`` = shared values, in the order of ``problem``'s shared
    parameters) and the outputs (``n_block x n_outputs``).
    """
    state = problem._as_dict(w.detach(), S.detach())
    psi = {name: state.pop(name) for name in problem.shared_names}

    def outputs(values, Xb):
        return problem._shape(functional_call(problem.module, {**state, **values}, (Xb,)))

    # the tied parameters' entries: each shared value's slice repeated over the items
    n_entries = S.shape[0] * sum(v.numel() for v in psi.values()) // max(1, S.shape[1])
    for rows, jac, out in _blocked_jacobians(outputs, psi, X, n_entries, block_entries):
        J = torch.cat([jac[name].reshape(out.shape[0], out.shape[1], -1)
                       for name in problem.shared_names], dim=-1)
        yield rows, J.detach(), out.detach()


def item_linearisation(problem, w, S, X, y, block_entries=JACOBIAN_BLOCK):
    """The network at ``(w, S)`` linearised in its items' own values (untied there), on
    ``(X, y)`` (standardised targets): ``(J, target)`` with ``J`` of shape ``(N, n_items,
    item_size)`` (``N`` scalar outputs) and the linearised targets ``y - f + J theta``
    (``theta``: the items' values, ``S psi``), in float64, without gradient.

    A selection ``S`` ties the items by ``theta = S psi``, so the Jacobian in the shared values is
    ``J`` contracted with ``S`` (:func:`soft_gaussian_evidence`), and the linearised targets,
    ``y - f + J_psi psi = y - f + J theta``, do not depend on ``S``.
    """
    S = S.detach()
    n_items = S.shape[0]
    state = problem._as_dict(w.detach(), torch.eye(n_items, dtype=S.dtype, device=S.device))
    items = {name: torch.tensordot(S, state[name], dims=1) for name in problem.shared_names}

    def outputs(values, Xb):
        return problem._shape(functional_call(problem.module, {**state, **values}, (Xb,)))

    parts, outs = [], []
    for _, jac, out in _blocked_jacobians(outputs, items, X,
                                          sum(v.numel() for v in items.values()),
                                          block_entries):
        parts.append(torch.cat([jac[name].reshape(out.numel(), n_items, -1)
                                for name in problem.shared_names], dim=-1).double())
        outs.append(out)
    J, out = torch.cat(parts), torch.cat(outs)
    theta = torch.cat([items[name].reshape(n_items, -1) for name in problem.shared_names],
                      dim=-1).double()
    target = (y.double().reshape(out.shape) - out.double()).reshape(-1) + torch.einsum(
        "nik,ik->n", J, theta)
    return J.detach(), target.detach()


def soft_gaussian_evidence(J, target, S):
    """``-2 log p`` of the linearised network (``"full"`` structure, Gaussian likelihood) tied
    by a soft selection ``S`` (``n_items x r``), differentiable in ``S``; ``J, target`` from
    :func:`item_linearisation`. The precisions are refitted at ``S`` without gradient: the value
    is stationary in them (the envelope theorem), so its gradient in ``S`` is the partial
    one."""
    Jpsi = torch.einsum("nik,ig->ngk", J, S.to(J.dtype)).reshape(J.shape[0], -1)
    G, c = Jpsi.T @ Jpsi, Jpsi.T @ target
    yy, n_obs = target @ target, float(J.shape[0])
    alpha, beta = fit_precisions(G.detach(), c.detach(), yy, n_obs)
    return neg2_log_evidence(G, c, yy, n_obs, alpha, beta)


def _mackay(lam, sq_norm, n_params, *, sse=None, n_obs=None, n_iter=200, tol=1e-9):
    """Type-II maximum-likelihood ``(alpha, beta)`` of the Laplace value at fixed weights, from
    the curvature's eigenvalues or diagonal ``lam`` (of ``J^T J`` for a Gaussian likelihood,
    where ``beta`` is fitted too; of the GGN for a categorical one, ``beta = 1``)."""
    gaussian = sse is not None
    sq_norm = max(float(sq_norm), 1e-300)
    beta = (n_obs / max(float(sse), 1e-300)) if gaussian else 1.0
    if gaussian:
        beta = min(beta, 1.0 / float(noise_floor(torch.tensor(float(sse)), n_obs,
                                                 torch.float64)))
    alpha = n_params / sq_norm
    for _ in range(n_iter):
        gamma = float((beta * lam / (alpha + beta * lam)).sum())
        new_alpha = min(max(gamma, 1e-12) / sq_norm, 1e300)
        new_beta = (max(n_obs - gamma, 1e-12) / max(float(sse), 1e-300)) if gaussian else 1.0
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return alpha, beta


def gaussian_evidence(G, c, yy, sse, psi_sq, n_obs, structure):
    """``-2 log p`` of a Gaussian likelihood from the GGN statistics of one trained network:
    ``G = J^T J`` (``"full"``) or its diagonal (``"diag"``), ``c = J^T (y - f + J psi)``,
    ``yy = |y - f + J psi|^2``, the trained network's ``sse = |y - f|^2`` and ``psi_sq =
    |psi|^2``. Returns ``(value, alpha, beta)``."""
    return curvature(structure).gaussian_evidence(G, c, yy, sse, psi_sq, n_obs)


def categorical_evidence(G, nll, psi_sq, structure):
    """``-2 log p`` of a categorical likelihood from the GGN ``G`` (a matrix for ``"full"``,
    its diagonal for ``"diag"``), the trained network's summed negative log-likelihood ``nll``
    and ``psi_sq = |psi|^2``. Returns ``(value, alpha)``."""
    lam = curvature(structure).eigenvalues(G).clamp_min(0)
    alpha, _ = _mackay(lam, psi_sq, lam.numel())
    value = (2 * float(nll) + alpha * float(psi_sq) - lam.numel() * math.log(alpha)
             + float(torch.log(alpha + lam).sum()))
    return value, alpha


def ggn_statistics(problem, w, S, X, y, *, loss, structure, block_entries=JACOBIAN_BLOCK):
    """The curvature statistics of the network ``problem`` tied by ``S`` at the weights ``w``
    on ``(X, y)``, in float64 (a dict).

    Always ``G`` (the GGN of the summed negative log-likelihood in the shared values, with unit
    noise precision for ``"mse"``: a ``P x P`` matrix for ``"full"``, its diagonal for
    ``"diag"``) and ``psi`` (the shared values). For ``"mse"`` also ``c``, ``yy`` (the
    linearised targets' statistics), ``sse`` and ``n_obs``; for ``"cross_entropy"``, ``nll``.
    """
    if loss not in ("mse", "cross_entropy"):
        raise ValueError(f"The Laplace evidence needs loss='mse' (Gaussian) or a classifier's "
                         f"cross-entropy, got loss={loss!r}.")
    state = problem._as_dict(w.detach(), S.detach())
    psi = torch.cat([state[name].reshape(-1) for name in problem.shared_names]).double()
    n_values = psi.numel()
    shape = curvature(structure)
    G = shape.zeros(n_values, psi.device)
    c = torch.zeros(n_values, dtype=torch.float64, device=psi.device)
    yy = sse = nll = 0.0
    n_obs = 0
    for rows, J, out in tied_jacobian(problem, w, S, X, block_entries):
        J, out = J.double(), out.double()
        if loss == "mse":
            resid = y[rows].double().reshape(out.shape) - out
            Jf = J.reshape(-1, n_values)
            target = resid.reshape(-1) + Jf @ psi  # the linearised network's targets
            G += shape.gaussian_term(Jf)
            c += Jf.T @ target
            yy += float(target @ target)
            sse += float((resid**2).sum())
            n_obs += resid.numel()
        else:
            logp = torch.log_softmax(out, dim=1)
            p = logp.exp()
            nll -= float(logp.gather(1, y[rows].reshape(-1, 1)).sum())
            pJ = torch.einsum("nk,nkp->np", p, J)  # p_n^T J_n
            G += shape.categorical_term(J, p, pJ)
    if loss == "mse":
        return {"G": G, "psi": psi, "c": c, "yy": torch.tensor(yy, dtype=torch.float64),
                "sse": sse, "n_obs": n_obs}
    return {"G": G, "psi": psi, "nll": nll}


def prior_weight_decay(precisions, loss, n_obs):
    """The weight decay of the shared values under the prior that the evidence fitted, in the
    units of the training loss (the mean of ``loss`` over ``n_obs`` observations), for an
    optimizer whose decay adds ``decay * psi`` to the gradient (torch's Adam).

    The negative log posterior is ``beta SSE / 2 + alpha |psi|^2 / 2`` (Gaussian) or ``NLL +
    alpha |psi|^2 / 2`` (categorical); divided by ``beta n_obs / 2`` (the mean squared error)
    or ``n_obs`` (the mean cross-entropy), the prior's term is ``decay |psi|^2 / 2`` with
    ``decay = 2 alpha / (beta n_obs)`` or ``alpha / n_obs``. So the network minimising the
    decayed loss is the posterior mode under the fitted precisions."""
    if loss == "mse":
        return 2.0 * precisions["alpha"] / (precisions["beta"] * n_obs)
    return precisions["alpha"] / n_obs


def network_evidence(problem, w, S, X, y, *, loss, structure):
    """``-2 log p(y)`` of the network ``problem`` tied by ``S`` at its trained weights ``w``, on
    the samples ``(X, y)`` (targets standardised, or class codes for ``"cross_entropy"``), by the
    Laplace approximation of this module's docstring. Computed in float64.

    Returns ``(value, precisions)``: ``precisions`` is a dict with ``alpha`` (and ``beta`` for a
    Gaussian likelihood).
    """
    stats = ggn_statistics(problem, w, S, X, y, loss=loss, structure=structure)
    psi_sq = float(stats["psi"] @ stats["psi"])
    if loss == "mse":
        value, alpha, beta = gaussian_evidence(stats["G"], stats["c"], stats["yy"],
                                               stats["sse"], psi_sq, stats["n_obs"], structure)
        return value, {"alpha": alpha, "beta": beta}
    value, alpha = categorical_evidence(stats["G"], stats["nll"], psi_sq, structure)
    return value, {"alpha": alpha}
