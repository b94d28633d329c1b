"""The relaxed data term of a network: a differentiable function of the soft selection.

:class:`NetworkRelaxation` keeps one flat parameter vector and one Adam state, warm-started
across outer steps: each step runs ``inner_steps`` full-batch Adam steps on the training loss at
the current soft selection, then returns ``n_obs * log(validation loss)`` through
:class:`ImplicitDataTerm`, a ``torch.autograd.Function`` whose backward is the implicit
hypergradient (:mod:`sharelearn.hypergrad`). :class:`EvidenceRelaxation` returns the evidence of
the network linearised at each step instead. The outer loop sees an ordinary differentiable
function of ``S``.
"""

from __future__ import annotations

import torch

from ..hypergrad import implicit_hypergradient
from .laplace import item_linearisation, soft_gaussian_evidence
from .problem import network_data_term
from .training import check_diverged, check_finite, inner_steps

__all__ = ["EvidenceRelaxation", "ImplicitDataTerm", "NetworkRelaxation"]


class ImplicitDataTerm(torch.autograd.Function):
    """``relaxation.value_and_hypergradient(S)`` as a differentiable function of ``S``: the
    forward pass returns the value, the backward pass multiplies the incoming gradient by the
    implicit hypergradient computed with it (the inner problem, its solver and the implicit
    derivative stay three separate things: :class:`NetworkRelaxation`, its Adam steps and
    :func:`sharelearn.hypergrad.implicit_hypergradient`)."""

    @staticmethod
    def forward(ctx, S, relaxation):
        with torch.enable_grad():  # the inner steps train the network
            value, hypergradient = relaxation.value_and_hypergradient(S.detach())
        ctx.save_for_backward(hypergradient)
        return S.new_tensor(value)

    @staticmethod
    def backward(ctx, grad_output):
        (hypergradient,) = ctx.saved_tensors
        return grad_output * hypergradient, None


class NetworkRelaxation:
    """The relaxed data term of one restart of a network (a batch of one selection).

    Built with the first soft selection ``S0`` (which sets the shared values' start), it trains
    the network ``warmup_steps`` Adam steps; each call ``(S) -> value`` (``S``: ``1 x P x r``)
    trains it ``inner_steps`` more at ``S`` and returns ``n_obs * log(validation loss)``,
    differentiable in ``S`` by the implicit hypergradient.

    Parameters
    ----------
    problem : TiedNetworkProblem
        The network tied by ``S0`` (:mod:`sharelearn.networks.problem`).
    S0 : torch.Tensor of shape (n_items, r)
    lr, warmup_steps, inner_steps : float, int, int
        Adam's step size, the steps before the first value and the steps before each value.
    loss, n_obs :
        The data term's loss and unit (:func:`~sharelearn.networks.problem.network_data_term`).
    hypergrad, hypergrad_iter, neumann_alpha :
        The implicit hypergradient's solver (:func:`sharelearn.hypergrad.
        implicit_hypergradient`).
    """

    def __init__(self, problem, S0, *, lr, warmup_steps, inner_steps, loss, n_obs, hypergrad,
                 hypergrad_iter, neumann_alpha):
        self.problem = problem
        self.lr, self.inner_steps, self.loss, self.n_obs = lr, inner_steps, loss, n_obs
        self.hypergrad, self.hypergrad_iter = hypergrad, hypergrad_iter
        self.neumann_alpha = neumann_alpha
        self.w = self.problem.initial_vector().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.w], lr=lr)
        self.step = 0
        with torch.no_grad():
            self.start_loss = float(self.problem.train_loss(self.w, S0))
        self._train(S0, warmup_steps, "the warm-up")

    def _train(self, S, n_steps, where):
        """``n_steps`` Adam steps at ``S``; an error if the training loss diverged from its
        start (:func:`~sharelearn.networks.training.check_diverged`)."""
        value = inner_steps(self.problem, self.w, S, self.optimizer, n_steps, where)
        check_diverged(value, self.start_loss, where, self.lr)

    def _outer_loss(self, w, S):
        return network_data_term(self.loss, self.n_obs, self.problem.val_loss(w, S))

    def value_and_hypergradient(self, S):
        self._train(S, self.inner_steps, f"outer step {self.step}")
        hypergradient, value = implicit_hypergradient(
            self.problem.train_loss, self._outer_loss, self.w, S, self.hypergrad,
            n_iter=self.hypergrad_iter, alpha=self.neumann_alpha)
        check_finite(value, f"outer step {self.step} (validation loss)")
        self.step += 1
        return value, hypergradient.detach()

    def __call__(self, S):
        if S.shape[0] != 1:
            raise ValueError("a network relaxes one restart at a time.")
        return ImplicitDataTerm.apply(S[0], self)[None]


class EvidenceRelaxation(NetworkRelaxation):
    """The relaxed Laplace evidence of one restart (``objective="evidence"``, ``loss="mse"``,
    full curvature).

    Each call ``(S) -> value`` trains the network ``inner_steps`` more at the soft selection
    ``S`` on all the fitting samples, linearises it there in its items' values
    (:func:`~sharelearn.networks.laplace.item_linearisation`) and returns the evidence of the
    linearised network tied by ``S`` (:func:`~sharelearn.networks.laplace.
    soft_gaussian_evidence`), differentiable in ``S``. The linearisation point is held fixed in
    the derivative (the Gauss-Newton approximation: the network's second derivatives are
    dropped, as in the GGN itself); the linearised model's own fit to the data is re-solved at
    every ``S``, so the gradient weighs
    the fit against the number of shared values.
    """

    def __call__(self, S):
        if S.shape[0] != 1:
            raise ValueError("a network relaxes one restart at a time.")
        self._train(S[0], self.inner_steps, f"outer step {self.step}")
        J, target = item_linearisation(self.problem, self.w, S[0], self.problem.X_train,
                                       self.problem.y_train)
        value = soft_gaussian_evidence(J, target, S[0])
        check_finite(float(value.detach()), f"outer step {self.step} (Laplace evidence)")
        self.step += 1
        return value[None]
