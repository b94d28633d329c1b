"""Training tied networks (sharelearn.networks.objective and .refit): the search's retrain
scores, the refit, and the hold-out check of merges."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sharelearn.datasets import make_sum_of_numbers
from sharelearn.networks import SequenceNetwork
from sharelearn.networks.objective import NetworkValidationObjective
from sharelearn.networks.refit import holdout_merges, refit_best, refit_network
from sharelearn.penalties import Penalties
from sharelearn.search import SearchState

SHARE = {"position_weight": 0, "position_bias": 0}


def _retrain_kwargs(n_obs, **kw):
    return dict(dict(steps=30, lr=0.01, loss="l1", weight_decay=0.0, n_obs=n_obs,
                     penalties=Penalties.from_params(nuclear=2.0, code_length=2.0),
                     dtype=torch.float32, device="cpu"), **kw)


@pytest.mark.slow
def test_search_score_is_the_best_retrain_over_initialisations():
    X, y, truth = make_sum_of_numbers(200, length=4, variant="alternating", random_state=1)
    Xt, Yt = torch.as_tensor(X), torch.as_tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    data = (Xt[:80], Yt[:80, None], Xt[80:], Yt[80:, None])
    inits = []
    for seed in range(3):
        torch.manual_seed(seed)
        inits.append(SequenceNetwork(4, embedding_dim=8, hidden=4))
    kw = _retrain_kwargs(80)
    alone = [NetworkValidationObjective(t, SHARE, data, **kw).validation_loss(truth) for t in inits]
    assert len(set(alone)) == 3  # the initialisations really differ
    together = NetworkValidationObjective(inits, SHARE, data, **kw)
    # (the batched retrains round differently in float32 from the one-by-one ones)
    assert together.validation_loss(truth) == pytest.approx(min(alone), rel=1e-5)
    # the search's best checkpoint comes from the winning initialisation
    module = together.trained_modules(truth)[0]
    with torch.no_grad():
        loss = (module(data[2]) - data[3]).abs().mean().item()
    assert loss == pytest.approx(min(alone), rel=1e-5)
    # the score is n_obs * log(loss) plus the hard partition's penalties
    penalty = Penalties.from_params(nuclear=2.0, code_length=2.0).of_labels(truth)
    assert together(truth) == pytest.approx(80 * np.log(min(alone)) + penalty)
    # the search's state of a partition: canonical labels and that score (labels renamed)
    state = together.state(1 - truth)
    assert isinstance(state, SearchState)
    np.testing.assert_array_equal(state.labels, truth)
    assert state.value == together(truth)


@pytest.mark.slow
def test_threaded_retrains_score_as_the_serial_ones(build):
    scorer, truth = build.sequence_scorer(4, "alternating", 1, steps=30)
    threaded, _ = build.sequence_scorer(4, "alternating", 1, steps=30, n_jobs=2)
    candidates = [truth, np.zeros(4, int), np.array([0, 1, 2, 1]), np.arange(4), truth]
    threaded.prefetch(candidates)
    assert len(threaded._cache) == 4  # each distinct partition retrained once
    for c in candidates:
        assert threaded(c) == scorer(c)


def test_refit_keeps_the_start_with_the_lowest_holdout_loss():
    X, y, _ = make_sum_of_numbers(120, length=3, random_state=2)
    Xt, Yt = torch.as_tensor(X), torch.as_tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    starts = []
    for seed in range(3):
        torch.manual_seed(seed)
        starts.append(SequenceNetwork(3, embedding_dim=8, hidden=4))
    kw = dict(X=Xt[:80], y=Yt[:80, None], X_stop=Xt[80:], y_stop=Yt[80:, None], loss="l1",
              lr=0.01, weight_decay=0.0, max_epochs=15, patience=5, device="cpu", verbose=0)
    losses = []
    for start in starts:
        module, _ = refit_network(copy.deepcopy(start), **kw)
        with torch.no_grad():
            losses.append((module(kw["X_stop"]) - kw["y_stop"]).abs().mean().item())
    assert len(set(losses)) == 3
    module, history, value = refit_best([copy.deepcopy(s) for s in starts], **kw)
    assert value == pytest.approx(min(losses), rel=1e-6)
    assert len(history) > 0
    # without a hold-out only the first start is refitted
    kw.update(X_stop=None, y_stop=None)
    assert refit_best([copy.deepcopy(s) for s in starts], **kw)[2] is None


def test_holdout_merges_keep_a_merge_that_scores_no_worse_on_the_holdout():
    penalties = Penalties.from_params(nuclear=2.0, code_length=2.0)
    truth, spurious = np.array([0, 1, 0, 1]), np.array([0, 1, 2, 1])
    # the search's scores: the truth is the best merge of the spurious partition
    proxy = {(0, 1, 0, 1): -10.0, (0, 0, 1, 0): -5.0, (0, 1, 1, 1): -4.0, (0, 0, 0, 0): 0.0}
    retrain = {(0, 1, 2, 1): 0.100, (0, 1, 0, 1): 0.101, (0, 0, 1, 0): 0.2, (0, 1, 1, 1): 0.2,
               (0, 0, 0, 0): 0.12}
    scorer = type("Scorer", (SimpleNamespace,), {
        "__call__": lambda self, labels: proxy[tuple(labels)],
        "validation_loss": lambda self, labels: retrain[tuple(labels)],
        "prefetch": lambda self, candidates: None})(penalties=penalties, loss="l1")
    holdout = {(0, 1, 0, 1): 0.10, (0, 1, 2, 1): 0.099, (0, 0, 0, 0): 0.9}
    calls = []

    def refit(labels):
        calls.append(tuple(labels))
        return "module", [], holdout[tuple(labels)]

    # a hold-out loss 1% lower does not pay for one more group: the merge into the truth is kept
    labels, fitted, n_merged = holdout_merges(scorer, spurious, refit, n_obs=100, max_iter=5)
    assert np.array_equal(labels, truth) and n_merged == 1 and fitted[2] == 0.10
    # the truth's own (only) merge was refitted too, and refused
    assert calls == [(0, 1, 2, 1), (0, 1, 0, 1), (0, 0, 0, 0)]
    assert 100 * np.log(0.9) + penalties.of_labels(np.zeros(4, int)) > \
        100 * np.log(0.1) + penalties.of_labels(truth)
    # a merge that is much worse on the hold-out is refused
    holdout[(0, 1, 0, 1)] = 0.2
    labels, fitted, n_merged = holdout_merges(scorer, spurious, refit, n_obs=100, max_iter=5)
    assert np.array_equal(labels, spurious) and n_merged == 0 and fitted[2] == 0.099
    # max_iter caps the merges
    holdout[(0, 1, 0, 1)] = 0.10
    labels, _, n_merged = holdout_merges(scorer, spurious, refit, n_obs=100, max_iter=0)
    assert np.array_equal(labels, spurious) and n_merged == 0
    # a merge whose search retrains are far worse is not even refitted
    retrain[(0, 0, 0, 0)] = 0.9
    calls.clear()
    labels, _, n_merged = holdout_merges(scorer, spurious, refit, n_obs=100, max_iter=5)
    assert np.array_equal(labels, truth) and calls == [(0, 1, 2, 1), (0, 1, 0, 1)]


class _Stopper(torch.nn.Module):
    """A linear map whose forward raises ``KeyboardInterrupt`` (as Ctrl-C would) at call
    ``stop``."""

    def __init__(self, n_in, n_out, stop=None):
        super().__init__()
        self.linear = torch.nn.Linear(n_in, n_out)
        self.calls, self.stop = 0, stop

    def forward(self, X):
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return self.linear(X)


def _refit_data(loss):
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.standard_normal((60, 3)), dtype=torch.float32)
    y = (X.sum(1) > 0).long() if loss == "cross_entropy" else X.sum(1, keepdim=True)
    return dict(X=X[:40], y=y[:40], X_stop=X[40:], y_stop=y[40:], loss=loss,
                weight_decay=0.0, device="cpu", verbose=0)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_refit_lets_ctrl_c_out_and_still_stops_early(loss):
    n_out = 2 if loss == "cross_entropy" else 1
    # skorch's early stopping raises KeyboardInterrupt itself: it must still end the refit,
    # here after patience epochs without a better hold-out loss (a step size of 0)
    _, history = refit_network(_Stopper(3, n_out), lr=0.0, max_epochs=50, patience=4,
                               **_refit_data(loss))
    assert len(history) == 5
    # a KeyboardInterrupt in the 3rd epoch (2 calls an epoch, after the start's hold-out loss)
    module = _Stopper(3, n_out, stop=6)
    with pytest.raises(KeyboardInterrupt):
        refit_network(module, lr=0.01, max_epochs=50, patience=4, **_refit_data(loss))
    assert module.calls == 6


def test_a_refit_that_diverges_without_a_holdout_is_an_error():
    kw = dict(_refit_data("mse"), X_stop=None, y_stop=None)
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match=r"diverged at the refit's last epoch"):
        refit_network(_Stopper(3, 1), lr=1e8, max_epochs=20, patience=4, **kw)
    torch.manual_seed(0)
    module, history = refit_network(_Stopper(3, 1), lr=0.01, max_epochs=20, patience=4, **kw)
    assert len(history) == 20
