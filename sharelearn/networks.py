"""Sharing inside torch modules: the tying parametrization, the built-in sequence network, and
the inner problem of a tied network.

A module's parameter is tied by :func:`tie_parameters`, which registers a
:class:`TiedParameter` parametrization (``torch.nn.utils.parametrize``) on it: the module then
stores only the shared values ``psi`` (one slice, or one entry, per group) and rebuilds the full
parameter as ``A @ psi`` on every access, so the user's module class is left unchanged and
further training keeps the sharing. The selection matrix ``A`` is a buffer of the
parametrization, so a *soft* selection can be swapped in functionally
(:func:`torch.func.functional_call`) during the bi-level optimisation.

:class:`TiedNetworkProblem` is "what the inner problem is": the training and validation losses
of the tied network as functions of a flat parameter vector and a selection matrix. How it is
solved lives in :mod:`sharelearn.nettrain`; how it is differentiated in :mod:`sharelearn.hypergrad`.
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from .penalties import data_term

__all__ = [
    "LOSS_FLOOR",
    "SEQUENCE_SHARE",
    "SequenceNetwork",
    "TiedNetworkProblem",
    "TiedParameter",
    "check_share",
    "network_data_term",
    "tie_parameters",
]


class TiedParameter(nn.Module):
    """Parametrization ``theta = A @ psi`` over the items of one parameter.

    Parameters
    ----------
    selection : torch.Tensor of shape (n_items, n_groups)
        Hard or soft selection matrix (a buffer, so it moves with the module).
    shape : tuple of int
        Shape of the full parameter.
    axis : int or None
        Items are the slices along ``axis``; ``None``: every entry is an item.
    """

    def __init__(self, selection, shape, axis):
        super().__init__()
        self.register_buffer("selection", selection)
        self.shape = tuple(shape)
        self.axis = axis

    def forward(self, psi):
        if self.axis is None:
            return (self.selection @ psi).reshape(self.shape)
        items = torch.tensordot(self.selection, psi, dims=1)
        return torch.movedim(items, 0, self.axis)

    def right_inverse(self, theta):
        items = theta.reshape(-1) if self.axis is None else torch.movedim(theta, self.axis, 0)
        S = self.selection.to(theta.dtype)
        if self.axis is None and _is_hard(S):
            # A hard group of entries starts at its first entry's value: the average of k
            # freshly drawn entries would shrink the layer's initial scale by sqrt(k) (a 3 x 3
            # convolution read in a 36 x 64 dense layer: groups of 36 entries started 6 times
            # too small, and 0 of 6 initialisations reached the noise floor, against 2 of 6
            # from members). Slices keep the average: on the sum-of-numbers network (L = 6,
            # alternating) the true partition's retrain scored -350 from averaged position
            # layers and -312 from one position's layer.
            return items[S.argmax(0)]
        # Otherwise a group starts at the average of its items (weighted by a soft selection).
        mass = S.sum(0).clamp_min(1e-12)
        psi = torch.tensordot(S.T, items, dims=1)
        return psi / mass.reshape((-1,) + (1,) * (psi.dim() - 1))


def _get_parameter(module, name):
    try:
        return module.get_parameter(name)
    except AttributeError:
        return None


def check_share(module, share):
    """Validate a sharing declaration against a module; return the item count of each entry.

    ``share`` maps a parameter name (dotted, as in ``named_parameters``) to an axis (items are
    the slices along it) or ``None`` (items are single entries). Every declared parameter is
    tied by the same partition, so all must have the same number of items.
    """
    if not isinstance(share, dict) or not share:
        raise ValueError("share must be a non-empty dict mapping parameter names to an axis "
                         f"(int) or None, got {share!r}.")
    available = [n for n, _ in module.named_parameters()]
    sizes = []
    for name, axis in share.items():
        param = _get_parameter(module, name) if isinstance(name, str) else None
        if param is None:
            raise ValueError(
                f"The module {type(module).__name__} has no parameter {name!r} declared in "
                f"share; its parameters are {available}.")
        if axis is None:
            sizes.append(param.numel())
            continue
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"share[{name!r}] must be an int axis or None, got {axis!r}.")
        if not -param.dim() <= axis < param.dim():
            raise ValueError(f"share[{name!r}]={axis} is out of range for the parameter of "
                             f"shape {tuple(param.shape)}.")
        sizes.append(param.shape[axis])
    if len(set(sizes)) != 1:
        detail = ", ".join(f"{n!r}: {s}" for n, s in zip(share, sizes, strict=True))
        raise ValueError("All parameters in share are tied by one partition, so they must have "
                         f"the same number of items; got {detail}.")
    return sizes


def tie_parameters(module, share, selection):
    """Tie the declared parameters of ``module`` in place by a selection matrix.

    Parameters
    ----------
    module : torch.nn.Module
    share : dict
        ``{parameter name: axis or None}``.
    selection : torch.Tensor of shape (n_items, n_groups)

    Returns
    -------
    module : torch.nn.Module
        The same module, parametrized.
    """
    check_share(module, share)
    for name, axis in share.items():
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        param = getattr(owner, attr)
        ax = None if axis is None else int(axis) % param.dim()
        sel = selection.to(device=param.device, dtype=param.dtype)
        parametrize.register_parametrization(owner, attr, TiedParameter(sel, param.shape, ax))
    return module


def _parametrization_names(share, leaf):
    """Names of one entry (``leaf``) of the tied parameters' parametrizations: the selection
    buffers (``"0.selection"``, for ``functional_call``) or the shared values ``psi``
    (``"original"``, as in ``named_parameters``)."""
    names = []
    for name in share:
        owner_name, _, attr = name.rpartition(".")
        prefix = f"{owner_name}." if owner_name else ""
        names.append(f"{prefix}parametrizations.{attr}.{leaf}")
    return names


class SequenceNetwork(nn.Module):
    """The network of the sum-of-numbers experiment (permutation invariance).

    Token embedding -> per-position linear layer -> ReLU -> sum over positions -> linear. The
    per-position layer has a weight of shape ``(length, hidden, embedding_dim)`` and a bias of
    shape ``(length, hidden)``; sharing ties their slices along axis 0 across positions.

    Because a position's layer only ever sees the embedding of one of ``n_tokens`` tokens, it is
    applied to the embedding table (``n_tokens`` rows) rather than to every sequence and then
    looked up: the same function, ``n_samples / n_tokens`` times cheaper.

    Parameters
    ----------
    length : int
        Sequence length ``L``.
    n_tokens : int, default=10
        Vocabulary size (tokens are ``0..n_tokens-1``).
    embedding_dim : int, default=500
    hidden : int, default=50
    n_outputs : int, default=1

    Examples
    --------
    >>> import torch
    >>> from sharelearn.networks import SequenceNetwork
    >>> net = SequenceNetwork(3, embedding_dim=8, hidden=4)
    >>> net(torch.tensor([[1, 2, 3], [4, 5, 6]])).shape
    torch.Size([2, 1])
    """

    def __init__(self, length, n_tokens=10, embedding_dim=500, hidden=50, n_outputs=1):
        super().__init__()
        sizes = dict(length=length, n_tokens=n_tokens, embedding_dim=embedding_dim,
                     hidden=hidden, n_outputs=n_outputs)
        for name, value in sizes.items():
            # torch takes 0 (a layer without units: a constant network) and fails on a negative
            # size with its own message
            if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
                    or value < 1):
                raise ValueError(f"SequenceNetwork's {name} must be a positive int, got "
                                 f"{value!r}.")
        self.length = int(length)
        self.embedding = nn.Embedding(n_tokens, embedding_dim)
        self.position_weight = nn.Parameter(torch.empty(length, hidden, embedding_dim))
        self.position_bias = nn.Parameter(torch.empty(length, hidden))
        self.output = nn.Linear(hidden, n_outputs)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the per-position layer as ``nn.Linear`` draws its own (the embedding and the
        output layer reset themselves)."""
        bound = 1.0 / math.sqrt(self.position_weight.shape[-1])
        with torch.no_grad():
            self.position_weight.uniform_(-bound, bound)
            self.position_bias.uniform_(-bound, bound)

    def forward(self, X):
        table = torch.einsum("te,lhe->lth", self.embedding.weight, self.position_weight)
        table = table + self.position_bias[:, None, :]
        positions = torch.arange(X.shape[1], device=X.device)
        hidden = torch.relu(table[positions[None, :], X])  # (n, L, hidden)
        return self.output(hidden.sum(1))


SEQUENCE_SHARE = {"position_weight": 0, "position_bias": 0}


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


def _is_hard(S):
    """Whether a selection matrix is hard: 0/1 entries, one 1 per row, every column used."""
    return bool(((S == 0) | (S == 1)).all() and (S.sum(1) == 1).all() and (S.sum(0) > 0).all())
