"""The built-in network of the sum-of-numbers experiment (``module="sequence"``)."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

__all__ = ["SEQUENCE_SHARE", "SequenceNetwork"]


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
