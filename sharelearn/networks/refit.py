"""The refit of the chosen partition with skorch, and its check against merges on a hold-out.

The final network of the chosen partition is trained further by skorch (callbacks for early
stopping, step-size decay and history) on the training and validation samples, early-stopped on
a separate hold-out, from the best checkpoint of its search retrain from each initialisation;
the refit with the lowest hold-out loss is kept. Before that network is returned, the partition
is checked against its best merge on that hold-out (:func:`holdout_merges`).
"""

from __future__ import annotations

import copy
import functools
import math

import torch

from ..partition import canonical_labels
from ..search.network import best_candidate, merges
from .problem import _loss_function, network_data_term
from .training import _linear_decay, check_diverged, check_finite

__all__ = ["holdout_merges", "refit_best", "refit_network"]

# holdout_merges refits a merge only if the search's retrains of it reached a validation loss at
# most this factor above the partition's: between initialisations the best of three retrains
# of one partition varied by up to about 7% (sum of numbers, L = 4), so a merge 25% worse has
# really lost something, and refitting it would only cost time.
_HOLDOUT_CHECK_RATIO = 1.25


def _penalised(loss_name, loss, labels, penalties, n_obs):
    """The search's objective of a hard partition whose ``loss_name`` loss is ``loss``: the
    data term (:func:`sharelearn.networks.network_data_term`) plus the penalties."""
    return network_data_term(loss_name, n_obs, loss) + penalties.of_labels(labels)


def holdout_merges(objective, labels, refit, *, n_obs, max_iter):
    """Confirm the search's partition against its best merge on the early-stopping hold-out.

    The search ranks partitions by retrains scored on the validation rows, and picks the best
    of many: its choice is optimistic, and the retrains' noise (a few units of the objective,
    measured between initialisations) is of the order of one group's penalty, so it can keep a
    spurious extra group. The hold-out rows took no part in that choice. This step refits the
    chosen partition and the merge of two of its groups that the search scored best, scores
    both as ``n_obs * log(hold-out loss) + penalties`` (the search's objective, on the
    hold-out) and keeps the merge if it scores no worse; it repeats from the merge, at most
    ``max_iter`` times. A merge whose retrains' validation loss is more than
    ``_HOLDOUT_CHECK_RATIO`` times the partition's is not refitted (the check stops).

    Parameters
    ----------
    objective : NetworkValidationObjective
    labels : ndarray of shape (n_items,)
    refit : callable
        ``refit(labels) -> (module, history, hold-out loss)``.
    n_obs : int
        The unit of the data term (as in the search).
    max_iter : int

    Returns
    -------
    labels, (module, history, hold-out loss), n_merged
    """
    labels = canonical_labels(labels)

    def value(labels_, fitted_):
        return _penalised(objective.loss, fitted_[2], labels_, objective.penalties, n_obs)

    fitted = refit(labels)
    current = value(labels, fitted)
    for n_merged in range(max_iter):
        # the first partition's merges were scored in the search's last round (cached)
        _, candidate = best_candidate(objective, merges(labels))
        if candidate is None:
            return labels, fitted, n_merged
        if (objective.validation_loss(candidate)
                > _HOLDOUT_CHECK_RATIO * objective.validation_loss(labels)):
            return labels, fitted, n_merged
        other = refit(candidate)
        other_value = value(candidate, other)
        if other_value > current:
            return labels, fitted, n_merged
        labels, fitted, current = candidate, other, other_value
    return labels, fitted, max_iter


def refit_network(module, *, X, y, X_stop, y_stop, lr, loss, weight_decay, max_epochs, patience,
                  device, verbose, decay=None):
    """Train ``module`` (already tied) with skorch, early-stopped on ``(X_stop, y_stop)``.

    ``weight_decay`` applies to every parameter but those named in ``decay`` (a dict of
    parameter names, as in ``named_parameters``, to their own weight decay).

    Returns the trained module and skorch's history as a list of dicts.
    """
    from skorch import NeuralNet, NeuralNetRegressor
    from skorch.callbacks import LRScheduler
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    # the same linear decay as the search's retrains (see NetworkValidationObjective)
    callbacks = [("decay", LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR,
                                       lr_lambda=_linear_decay(max_epochs)))]
    train_split = None
    if X_stop is not None:
        train_split = predefined_split(Dataset(X_stop, y_stop))
        callbacks.append(("stop", _early_stopping()(monitor="valid_loss", patience=patience,
                                                    load_best=True)))
    # class codes train the logits through torch's cross-entropy: skorch's plain NeuralNet
    # (its classifier would read the output as probabilities and needs no extra checks here)
    net_class, criterion = {"l1": (NeuralNetRegressor, torch.nn.L1Loss),
                            "mse": (NeuralNetRegressor, torch.nn.MSELoss),
                            "cross_entropy": (NeuralNet, torch.nn.CrossEntropyLoss)}[loss]
    net = _interruptible(net_class)(
        module, criterion=criterion,
        optimizer=torch.optim.Adam, optimizer__weight_decay=weight_decay, lr=lr,
        optimizer__param_groups=[(name, {"weight_decay": value})
                                 for name, value in (decay or {}).items()],
        max_epochs=max_epochs, batch_size=-1, train_split=train_split, callbacks=callbacks,
        iterator_train=_FullBatch, iterator_valid=_FullBatch, device=device,
        verbose=int(verbose > 1))
    net.set_params(callbacks=callbacks + [("finite", _StopOnNonFinite())])
    start_loss, start_state = math.inf, None
    if X_stop is not None:
        criterion = _loss_function(loss)
        with torch.no_grad():
            out = module(X_stop)
            start_loss = float(criterion(out.reshape(out.shape[0], -1), y_stop))
        start_state = copy.deepcopy(module.state_dict())
    try:
        net.fit(X, y)
    except _Interrupted as err:
        raise err.__cause__ from None  # the user's Ctrl-C, as it was raised
    history = [{k: v for k, v in row.items() if k in ("epoch", "train_loss", "valid_loss")}
               for row in net.history]
    if X_stop is None and history:
        # (with a hold-out, a refit that never beats its start is replaced by the start below)
        check_diverged(history[-1]["train_loss"], history[0]["train_loss"],
                       f"the refit's last epoch ({history[-1]['epoch']})", lr)
    best = min((row.get("valid_loss", math.inf) for row in history), default=math.inf)
    if start_loss < best:
        # The refit never beat its (already trained) start on the hold-out: keep the start.
        net.module_.load_state_dict(start_state)
    return net.module_, history


def refit_best(modules, *, X, y, X_stop, y_stop, loss, **kwargs):
    """:func:`refit_network` from each of ``modules`` (the search's retrains of one partition
    from its initialisations); the refit with the lowest loss on the early-stopping hold-out
    ``(X_stop, y_stop)`` is kept. Without a hold-out only the first module is refitted.

    Returns the module, its history and its hold-out loss (None without a hold-out).
    """
    if X_stop is None:
        module, history = refit_network(modules[0], X=X, y=y, X_stop=None, y_stop=None,
                                        loss=loss, **kwargs)
        return module, history, None
    criterion, best = _loss_function(loss), None
    for start in modules:
        module, history = refit_network(start, X=X, y=y, X_stop=X_stop, y_stop=y_stop,
                                        loss=loss, **kwargs)
        with torch.no_grad():
            out = module(X_stop)
            value = float(criterion(out.reshape(out.shape[0], -1), y_stop))
        if best is None or value < best[2]:
            best = (module, history, value)
    return best


# skorch ends a training early by raising KeyboardInterrupt from its EarlyStopping callback, and
# its fit catches every KeyboardInterrupt, so a user's Ctrl-C ended the refit as early stopping
# does and the estimator's fit returned as if nothing had happened. The refit tells the two
# apart: its early stopping raises _Stopped instead, which ends the training as skorch would, and
# a KeyboardInterrupt leaves skorch's fit as _Interrupted, re-raised as the interrupt.
class _Interrupted(Exception):
    """A ``KeyboardInterrupt`` raised in skorch's training loop (its cause)."""


class _Stopped(Exception):
    """The refit's early stopping: the hold-out loss has not improved for ``patience`` epochs."""


@functools.cache
def _early_stopping():
    """skorch's ``EarlyStopping`` that stops by raising :class:`_Stopped`."""
    from skorch.callbacks import EarlyStopping

    class Stopping(EarlyStopping):
        def on_epoch_end(self, net, **kwargs):
            try:
                super().on_epoch_end(net, **kwargs)
            except KeyboardInterrupt:
                if self.misses_ == self.patience:  # its own signal to stop
                    raise _Stopped() from None
                raise

    Stopping.__name__ = Stopping.__qualname__ = "EarlyStopping"
    return Stopping


@functools.cache
def _interruptible(net_class):
    """``net_class`` whose training loop ends on :class:`_Stopped` and lets a
    ``KeyboardInterrupt`` out (as :class:`_Interrupted`)."""

    class Interruptible(net_class):
        def fit_loop(self, *args, **kwargs):
            try:
                return super().fit_loop(*args, **kwargs)
            except _Stopped:
                return self
            except KeyboardInterrupt as err:
                raise _Interrupted() from err

    Interruptible.__name__ = Interruptible.__qualname__ = net_class.__name__
    return Interruptible


class _FullBatch:
    """skorch iterator yielding the whole data set as one batch.

    torch's DataLoader indexes and collates sample by sample; for full-batch training of a
    small network that tripled the refit's time per epoch (measured: about 20 ms against 5 ms at
    L = 4), and the data are already tensors on the device.
    """

    def __init__(self, dataset, **kwargs):
        self.dataset = dataset

    def __iter__(self):
        yield self.dataset.X, self.dataset.y

    def __len__(self):
        return 1


def _StopOnNonFinite():
    from skorch.callbacks import Callback

    class StopOnNonFinite(Callback):
        """Stop the refit at the first epoch whose training loss is not finite."""

        def on_epoch_end(self, net, **kwargs):
            value = net.history[-1, "train_loss"]
            check_finite(float(value), f"refit epoch {net.history[-1, 'epoch']}")

    return StopOnNonFinite()
