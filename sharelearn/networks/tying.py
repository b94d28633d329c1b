"""The tying of a torch module's parameters: ``theta = A @ psi`` as a parametrization.

A module's parameter is tied by :func:`tie_parameters`, which registers a
:class:`TiedParameter` parametrization (``torch.nn.utils.parametrize``) on it: the module then
stores only the shared values ``psi`` (one slice, or one entry, per group) and rebuilds the full
parameter as ``A @ psi`` on every access, so the user's module class is left unchanged and
further training keeps the sharing. The selection matrix ``A`` is a buffer of the
parametrization, so a *soft* selection can be swapped in functionally
(:func:`torch.func.functional_call`) during the bi-level optimisation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["TiedParameter", "check_share", "tie_parameters"]


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


def _is_hard(S):
    """Whether a selection matrix is hard: 0/1 entries, one 1 per row, every column used."""
    return bool(((S == 0) | (S == 1)).all() and (S.sum(1) == 1).all() and (S.sum(0) > 0).all())
