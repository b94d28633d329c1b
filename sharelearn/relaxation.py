"""The relaxation's parts: the soft selection, its annealing, its optimizer, its stopping rule.

A soft selection matrix ``S`` (``P x r``) is a row-wise softmax of free logits at a temperature:
``S = softmax(Z / T)``. Annealing ``T`` towards 0 hardens the rows. The loop that uses these
parts is :func:`sharelearn.outer.relax`; the penalties of the relaxed objective are in
:mod:`sharelearn.penalties`. Everything here also takes a batch of selection matrices
(``B x P x r``), one per restart: the restarts of a fit relax together.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["Adam", "EarlyStopping", "soft_selection", "temperature_at"]


def soft_selection(logits, temperature):
    """Row-wise softmax of ``logits / temperature``."""
    return torch.softmax(logits / temperature, dim=-1)


def temperature_at(step, n_steps, start, end):
    """Geometric annealing schedule from ``start`` (step 0) to ``end`` (last step)."""
    if n_steps <= 1 or start == end:
        return float(end if n_steps <= 1 else start)
    return float(start * math.exp(math.log(end / start) * step / (n_steps - 1)))


class Adam:
    """Adam (Kingma and Ba, 2015) on the relaxation's logits tensor.

    ``torch.optim`` is not used here on purpose: the first optimizer built in a process imports
    ``torch._dynamo``, which took 3 to 7 s on a 2-core CPU (measured with torch 2.13), longer than
    a whole fit of a small problem. The update below is the textbook one with bias correction.
    """

    def __init__(self, param, lr, betas=(0.9, 0.999), eps=1e-8):
        self.param, self.lr, self.betas, self.eps = param, float(lr), betas, eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    def zero_grad(self):
        self.param.grad = None

    @torch.no_grad()
    def step(self):
        g = self.param.grad
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(g, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        self.param.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))

    def keep(self, index):
        """Go on with the rows ``index`` of the parameter (a batch of restarts, some of which
        stopped) and of the moment estimates; returns the new parameter."""
        self.param = self.param.detach()[index].requires_grad_(True)
        self.m, self.v = self.m[index], self.v[index]
        return self.param


class EarlyStopping:
    """The relaxation's stopping rule, for a batch of restarts.

    A step of a restart is stalled when its rounded (argmax) partition did not change or its
    objective did not improve by ``tol`` (relative); annealing only hardens rows from then on, so
    a restart stops after ``n_iter_no_change`` stalled steps in a row. ``curves[i]`` records every
    objective value of restart ``i``.
    """

    def __init__(self, tol, n_iter_no_change, n_restarts=1):
        self.tol, self.n_iter_no_change = tol, n_iter_no_change
        self.curves = [[] for _ in range(n_restarts)]
        self.best = np.full(n_restarts, np.inf)
        self.stall = np.zeros(n_restarts, dtype=np.int64)
        self.rounded = [None] * n_restarts

    @property
    def curve(self):
        """The objective values of the first (or only) restart."""
        return self.curves[0]

    def __call__(self, values, S, index=None):
        """Record one step of the restarts ``index`` (objective ``values[j]`` and selection
        ``S[j]`` for restart ``index[j]``); returns a boolean array: which of them stop now.
        Without ``index``: one restart, a scalar value and a ``P x r`` ``S``; returns a bool."""
        if index is None:
            return bool(self([values], S[None], [0])[0])
        values = np.asarray(values, dtype=float)
        now = S.detach().argmax(-1).cpu().numpy()
        stop = np.zeros(len(index), dtype=bool)
        for j, i in enumerate(index):
            best = self.best[i]
            improved = np.isfinite(best) and \
                values[j] < best - self.tol * max(1.0, abs(best))
            self.curves[i].append(float(values[j]))
            self.best[i] = min(best, values[j])
            stalled = self.rounded[i] is not None and (
                np.array_equal(now[j], self.rounded[i]) or not improved)
            self.stall[i] = self.stall[i] + 1 if stalled else 0
            self.rounded[i] = now[j]
            stop[j] = self.stall[i] >= self.n_iter_no_change
        return stop
