"""Training a tied network: full-batch Adam steps on its inner problem, and the checks that a
training went well (finite, not diverged). The relaxation's warm inner steps, the search's
retrains (:mod:`sharelearn.networks.objective`) and the refit (:mod:`sharelearn.networks.refit`)
all train through these.
"""

from __future__ import annotations

import math

import torch

__all__ = ["check_diverged", "check_finite", "inner_steps"]

# A training whose loss ends this many times above where it started (or above 1, about the loss
# of predicting the mean of standardised targets, if that is larger) has diverged: at
# inner_learning_rate=1e8 the retrains ended 1e5 to 1e25 times above their start and the refit
# scored -1e5 in standardised units, while at step sizes up to 1 (a hundred times the default)
# losses spiked to at most about a hundred times their start and then came back down.
_DIVERGED = 100.0


def _adam(w, lr):
    return torch.optim.Adam([w], lr=lr)


def check_finite(value, where):
    if not math.isfinite(value):
        raise FloatingPointError(
            f"The training loss became {value} at {where}; lower inner_learning_rate or check "
            "the module and the data.")


def check_diverged(value, start, where, lr):
    """A ``FloatingPointError`` when a training ended with a loss ``value`` far above its
    ``start`` (``_DIVERGED`` times ``max(start, 1)``): Adam's step size ``lr`` is too large."""
    check_finite(value, where)
    if value > _DIVERGED * max(start, 1.0):
        raise FloatingPointError(
            f"The training diverged at {where}: its loss went from {start:.4g} to {value:.4g}. "
            f"Adam's step size was {lr:g}: lower inner_learning_rate ('auto' uses 0.01, or "
            "0.03 for entry-level sharing).")


def _linear_decay(n_steps):
    return lambda k: max(0.0, 1.0 - k / n_steps)


def inner_steps(problem, w, S, optimizer, n_steps, where, schedule=None):
    """``n_steps`` full-batch Adam steps on the training loss at a fixed selection ``S``."""
    S = S.detach()
    value = float("nan")
    for k in range(n_steps):
        optimizer.zero_grad()
        loss = problem.train_loss(w, S)
        value = float(loss.detach())
        check_finite(value, f"{where}, inner step {k}")
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return value
