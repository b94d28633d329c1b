"""The network estimators' edges: features given to the token network, token ids out of range,
the network's sizes and parameters checked before any training, a diverging training, and
Ctrl-C in the middle of a fit (issue 34)."""

import re

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sharelearn import NetworkSharingClassifier, NetworkSharingDiscoverer
from sharelearn.datasets import make_sum_of_numbers
from sharelearn.networks import SequenceNetwork, check_share

TINY = dict(module__embedding_dim=2, module__hidden=2, max_iter=2, inner_steps=1,
            search_steps=5, max_epochs=5, local_search=False, n_restarts=1, dtype="float32",
            random_state=0)
ESTIMATORS = [NetworkSharingDiscoverer, NetworkSharingClassifier]


@pytest.fixture(scope="module")
def tokens():
    X, s, truth = make_sum_of_numbers(40, length=3, random_state=0)
    return X, s, (s > np.median(s)).astype(int)


def _targets(cls, tokens):
    X, s, labels = tokens
    return s if cls is NetworkSharingDiscoverer else labels


def _unfitted(est):
    return not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


# -- features are not token ids ------------------------------------------------------------------
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_images_given_to_the_token_network_are_refused_with_the_dense_alternative(cls):
    X, y = load_digits(return_X_y=True)  # whole numbers 0..16, stored as floats
    est = cls()
    with pytest.raises(ValueError, match=r"reads X as integer token ids") as info:
        est.fit(X, y)
    message = str(info.value)
    assert cls.__name__ in message and "X.astype(int)" in message
    assert _unfitted(est)
    # the one-line alternative of the message is a module that takes these images
    code = re.search(r"e\.g\. \w+\((nn\.Sequential\(.*?\)\)), share=(\{.*?\})", message)
    n_out = 10
    module = eval(code.group(1), {"nn": nn, "n_classes": n_out, "n_targets": n_out})
    share = eval(code.group(2))
    assert check_share(module, share) == [module[0].weight.numel()]
    with torch.no_grad():
        assert module(torch.as_tensor(X[:3], dtype=torch.float32)).shape == (3, n_out)


def test_non_integer_features_name_a_value_and_a_fitted_network_refuses_floats(tokens):
    X, s, _ = tokens
    with pytest.raises(ValueError, match=r"non-integer values, e\.g\. \d+\.5"):
        NetworkSharingDiscoverer().fit(X + 0.5, s)
    est = NetworkSharingDiscoverer(**TINY).fit(X, s)
    with pytest.raises(ValueError, match="integer token ids"):
        est.predict(X.astype(np.float64))


@pytest.mark.slow
def test_token_ids_without_a_dtype_or_as_objects_stay_integers(tokens):
    X, s, _ = tokens
    by_ints = NetworkSharingDiscoverer(**TINY).fit(X, s)
    for given in (X.tolist(), X.astype(object)):
        est = NetworkSharingDiscoverer(**TINY).fit(given, s)
        np.testing.assert_array_equal(est.predict(given), by_ints.predict(X))


@pytest.mark.parametrize("big", [
    np.array([[2**64 - 1, 0, 1]], dtype=np.uint64),
    np.array([[10**30, 0, 1]], dtype=object),
])
def test_token_ids_beyond_int64_are_too_large_not_negative(tokens, big):
    X, s, _ = tokens
    X = np.concatenate([big, X[1:].astype(big.dtype)])
    with pytest.raises(ValueError, match=r"X holds token id \d+, too large: .* 0\.\.n_tokens"):
        NetworkSharingDiscoverer(**TINY).fit(X, s)


def test_float_token_ids_beyond_int64_are_too_large(tokens):
    X, s, _ = tokens
    X = X.astype(np.float64)
    X[0, 0] = 1e300
    with pytest.raises(ValueError, match=r"too large for token ids, up to 1e\+300"):
        NetworkSharingDiscoverer(**TINY).fit(X, s)


def test_a_vocabulary_whose_embedding_cannot_fit_is_refused(tokens):
    X, s, _ = tokens
    X = X.copy()
    X[0, 0] = 2**40  # an embedding of 2**40 rows
    est = NetworkSharingDiscoverer(**TINY)
    with pytest.raises(ValueError, match=r"embedding of token ids 0\.\.1099511627776 would have"):
        est.fit(X, s)
    assert _unfitted(est)


# -- the network's sizes ----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"module__length": 5}, r"module__length=5, but X has 3 columns"),
    ({"module__hidden": 0}, r"module__hidden must be a positive int, got 0"),
    ({"module__embedding_dim": -1}, r"module__embedding_dim must be a positive int, got -1"),
    ({"module__hidden": True}, r"module__hidden must be a positive int, got True"),
    ({"module__n_tokens": 3}, r"module__n_tokens=3, but X holds token id 9"),
])
def test_sequence_sizes_that_do_not_fit_the_data_are_refused(tokens, kwargs, match):
    X, s, _ = tokens
    est = NetworkSharingDiscoverer(**{**TINY, **kwargs})
    with pytest.raises(ValueError, match=match):
        est.fit(X, s)
    assert _unfitted(est)


def test_sequence_network_refuses_sizes_torch_would_take_or_fail_on():
    for kwargs in ({"hidden": 0}, {"embedding_dim": -1}, {"n_tokens": 2.5}):
        name, value = next(iter(kwargs.items()))
        with pytest.raises(ValueError, match=f"{name} must be a positive int, got {value}"):
            SequenceNetwork(3, **kwargs)


class Dense(nn.Module):
    def __init__(self, n_in=3, hidden=4):
        super().__init__()
        self.dense = nn.Linear(n_in, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(torch.relu(self.dense(x)))


def test_a_module_that_torch_cannot_build_is_a_clear_error():
    X = np.random.default_rng(0).standard_normal((30, 3))
    est = NetworkSharingDiscoverer(Dense, share={"dense.weight": 0}, module__hidden=-1)
    with pytest.raises(ValueError, match=r"Could not build Dense with the keyword arguments "
                                         r"\{'hidden': -1\}: .*negative"):
        est.fit(X, X.sum(1))


@pytest.mark.parametrize("name", ["n_candidate_groups", "search_steps", "max_epochs",
                                  "inner_steps"])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_a_bool_is_not_an_int_parameter(tokens, cls, name):
    est = cls(**{**TINY, name: True})
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter .* Got True"):
        est.fit(tokens[0], _targets(cls, tokens))
    assert _unfitted(est)


# -- a diverging training -----------------------------------------------------------------------
@pytest.mark.parametrize("path", [dict(n_restarts=1),  # the relaxation's warm-up
                                  dict(n_restarts=0, search_inits=1),  # one retrain
                                  dict(n_restarts=0, search_inits=2)],  # retrains as a batch
                         ids=["relaxation", "retrain", "batched-retrains"])
def test_a_step_size_that_diverges_stops_the_fit_and_names_the_parameter(tokens, path):
    X, s, _ = tokens
    est = NetworkSharingDiscoverer(**{**TINY, **path, "inner_learning_rate": 1e8})
    with pytest.raises(FloatingPointError, match=r"diverged .* lower inner_learning_rate"):
        est.fit(X, s)
    assert _unfitted(est)


def test_a_large_step_size_that_still_trains_is_not_called_diverged(tokens):
    X, s, _ = tokens
    # a hundred times the default: the loss spikes on the way and comes back down
    est = NetworkSharingDiscoverer(**{**TINY, "inner_learning_rate": 1.0}).fit(X, s)
    assert np.isfinite(est.objective_)


# -- Ctrl-C ------------------------------------------------------------------------------------
class Interrupting(nn.Module):
    """``y = v . sum_l relu(w_l x_l + b_l)``, whose forward pass raises ``KeyboardInterrupt``
    (as Ctrl-C would) at call ``calls["stop"]`` (counted across all its copies)."""

    calls = {"n": 0, "stop": None}

    def __init__(self, length=3, hidden=3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(length, hidden))
        self.bias = nn.Parameter(torch.zeros(length, hidden))
        self.out = nn.Linear(hidden, 1)

    def forward(self, X):
        self.calls["n"] += 1
        if self.calls["n"] == self.calls["stop"]:
            raise KeyboardInterrupt
        return self.out(torch.relu(X[:, :, None] * self.weight + self.bias).sum(1))


@pytest.mark.slow
def test_ctrl_c_propagates_from_any_stage_and_leaves_the_estimator_as_it_was():
    X = np.random.default_rng(0).standard_normal((40, 3))
    y = X.sum(1)
    est = NetworkSharingDiscoverer(Interrupting, share={"weight": 0, "bias": 0},
                                   n_restarts=0, search_inits=1, search_steps=10,
                                   max_epochs=30, patience=100, local_search=False,
                                   dtype="float32", random_state=0)
    Interrupting.calls.update(n=0, stop=None)
    est.fit(X, y)
    n_calls, n_epochs = Interrupting.calls["n"], len(est.history_)
    assert n_epochs == 30  # the refit ran every epoch: the last calls are the refit's
    fitted = dict(vars(est))
    # interrupted in the search's retrains, then in the refit's last epochs
    for stop in (n_calls // 4, n_calls - 3):
        Interrupting.calls.update(n=0, stop=stop)
        with pytest.raises(KeyboardInterrupt):
            est.fit(X, y)
        assert vars(est).keys() == fitted.keys()
        for key, value in fitted.items():
            assert vars(est)[key] is value, key
        fresh = clone(est)
        Interrupting.calls.update(n=0, stop=stop)
        with pytest.raises(KeyboardInterrupt):
            fresh.fit(X, y)
        assert _unfitted(fresh) and not hasattr(fresh, "_module_state")
    Interrupting.calls.update(n=0, stop=None)


def test_an_embedding_too_wide_for_memory_names_its_parameter():
    X = np.random.default_rng(0).integers(0, 5, (20, 3))
    y = X.sum(1).astype(float)
    est = NetworkSharingDiscoverer("sequence", module__embedding_dim=10**12, max_iter=1,
                                   random_state=0)
    with pytest.raises(ValueError, match=r"module__embedding_dim=1000000000000"):
        est.fit(X, y)
