"""What the inner problem of a tied network is: its losses as functions of ``(w, S)``.

:class:`TiedNetworkProblem` gives the training and validation losses of the network tied by a
selection matrix ``S`` as functions of one flat parameter vector ``w``; how it is solved lives
in :mod:`sharelearn.networks.training`, how it is differentiated in :mod:`sharelearn.hypergrad`.
:func:`network_data_term` turns a network's loss into the outer objective's data term.
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call

from ..penalties import data_term
from .tying import _parametrization_names, tie_parameters

__all__ = ["LOSS_FLOOR", "TiedNetworkProblem", "network_data_term"]


# The floor of a regression loss in the data term: a network's loss on noise-free data can be 0.
LOSS_FLOOR = 1e-12


def _loss_function(name):
    if name == "l1":
        return lambda out, y: (out - y).abs().mean()
    if name == "cross_entropy":
        return lambda out, y: torch.nn.functional.cross_entropy(out, y)
    return lambda out, y: ((out - y) ** 2).mean()


def network_data_term(loss, n_obs, value):
    """The data term of the outer objective for a network's mean ``loss`` ``value`` (a tensor
    or a float) over ``n_obs`` observations.

    A regression loss gives ``n_obs * log(value)`` (:func:`sharelearn.penalties.data_term`: the
    likelihood with the noise scale fitted). The cross-entropy is already a negative
    log-likelihood per label, so it gives the deviance ``2 * n_obs * value``, -2 log-likelihood:
    the units of the Gaussian ``n_obs * log(MSE)``, where a spurious free parameter gains
    about 1.
    """
    if loss == "cross_entropy":
        return 2.0 * n_obs * value
    return data_term(n_obs, value, LOSS_FLOOR)


class TiedNetworkProblem:
    """The inner problem of a tied network: losses as functions of ``(w, S)``.

    ``w`` is the flat vector of all the module's trainable parameters (with the tied ones stored
    as their shared values ``psi``) and ``S`` the selection matrix (``n_items x n_groups``, soft
    or hard). The training loss adds ``weight_decay * |w|^2 / 2``; it is what the inner solver
    minimises and what the implicit differentiation differentiates.

    Parameters
    ----------
    module : torch.nn.Module
        Untied module (copied; never modified).
    share : dict
    selection : torch.Tensor of shape (n_items, n_groups)
        Initial selection, also used to set the initial shared values.
    X_train, y_train, X_val, y_val : torch.Tensor
        Data already on the device; targets 2-D and standardised, or 1-D class codes for
        ``"cross_entropy"``.
    loss : {"l1", "mse", "cross_entropy"}
    weight_decay : float
    """

    def __init__(self, module, share, selection, X_train, y_train, X_val, y_val, *, loss="l1",
                 weight_decay=0.0):
        self.module = tie_parameters(copy.deepcopy(module), share, selection)
        self.share = share
        self.selection_names = _parametrization_names(share, "0.selection")
        params = dict(self.module.named_parameters())
        self.names = list(params)
        self.shapes = [p.shape for p in params.values()]
        self.sizes = [p.numel() for p in params.values()]
        self.shared_names = _parametrization_names(share, "original")
        self.X_train, self.y_train, self.X_val, self.y_val = X_train, y_train, X_val, y_val
        self.loss_fn = _loss_function(loss)
        self.weight_decay = float(weight_decay)

    def initial_vector(self):
        """The module's current parameters as one flat vector (a copy)."""
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()]).clone()

    def item_gradients(self, w, S):
        """Gradient of the training loss in each item's own values, at ``(w, S)``.

        Returns a tensor of shape ``(n_items, item_size)``: row ``i`` is the derivative of the
        training loss in item ``i`` of every tied parameter (concatenated), as if the items
        were untied there (tied by the identity, each item set to its group's value). Items of
        one group have the same values, but their gradients differ where the data pull them
        apart; at a stationary point of the tied problem the gradients of a group's items sum
        to (about) zero.
        """
        S = S.detach()
        n_items = S.shape[0]
        state = self._as_dict(w.detach(), torch.eye(n_items, dtype=S.dtype, device=S.device))
        items = {name: torch.tensordot(S, state[name], dims=1).requires_grad_(True)
                 for name in self.shared_names}
        state.update(items)
        out = functional_call(self.module, state, (self.X_train,))
        grads = torch.autograd.grad(self.loss_fn(self._shape(out), self.y_train),
                                    list(items.values()))
        return torch.cat([g.reshape(n_items, -1) for g in grads], dim=1)

    def _as_dict(self, w, S):
        chunks = torch.split(w, self.sizes)
        state = {n: c.reshape(s) for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}
        for name in self.selection_names:
            state[name] = S
        return state

    def output(self, w, S, X):
        return functional_call(self.module, self._as_dict(w, S), (X,))

    def train_loss(self, w, S):
        value = self.loss_fn(self._shape(self.output(w, S, self.X_train)), self.y_train)
        if self.weight_decay:
            value = value + 0.5 * self.weight_decay * (w * w).sum()
        return value

    def val_loss(self, w, S):
        return self.loss_fn(self._shape(self.output(w, S, self.X_val)), self.y_val)

    @staticmethod
    def _shape(out):
        return out.reshape(out.shape[0], -1)

    def load(self, w, S):
        """Write ``w`` and ``S`` into the module (for a refit or for returning it)."""
        with torch.no_grad():
            state = self._as_dict(w, S)
            for name, p in self.module.named_parameters():
                p.copy_(state[name])
            for name in self.selection_names:
                self.module.get_buffer(name).copy_(S)
        return self.module
