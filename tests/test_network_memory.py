"""The memory budget of network fits and the curvature "auto" chooses
(sharelearn.networks.memory, NetworkSharingDiscoverer's memory_budget and hessian_structure_):
refusals before any training, the lean structure within a budget, the choice by time."""

import gc

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sharelearn import NetworkSharingClassifier, NetworkSharingDiscoverer
from sharelearn.datasets import make_sum_of_numbers
from sharelearn.networks import TiedNetworkProblem, laplace
from sharelearn.networks.memory import NetworkShapes, choose_structure, network_memory
from sharelearn.partition import labels_to_selection

# a small sequence network whose evidence fit takes about a second
SMALL = dict(module__embedding_dim=16, module__hidden=8, search_steps=40, max_epochs=40,
             validation_fraction=0.5, random_state=0)


def _sum_data(n=60, length=3):
    X, y, _ = make_sum_of_numbers(n, length=length, random_state=0)
    return X, y


class Counting(nn.Module):
    """Dense 16 -> 9 (144 entries: entry-level sharing), ReLU, read-out; records the number of
    samples of every forward pass, so a test can tell a training (all the samples at once)
    from the checks' passes on one or two samples."""

    batches = []

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(16, 9, bias=False)
        self.out = nn.Linear(9, 1)

    def forward(self, x):
        Counting.batches.append(x.shape[0])
        return self.out(torch.relu(self.dense(x)))


def _image_data(n=80):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 16))
    return X, np.maximum(X[:, :9], 0).sum(1) + 0.1 * rng.standard_normal(n)


# -- refusals before any training -------------------------------------------------------------
def test_a_tiny_budget_is_refused_before_any_training_naming_the_parts():
    X, y = _image_data()
    Counting.batches.clear()
    est = NetworkSharingDiscoverer(Counting, share={"dense.weight": None}, loss="mse",
                                   memory_budget="1MiB", random_state=0)
    with pytest.raises(MemoryError) as info:
        est.fit(X, y)
    message = str(info.value)
    assert message.startswith("NetworkSharingDiscoverer(objective='validation') on 144 shared "
                              "entries (9 x 16), 80 samples needs about ")
    for part in ("runtime", "data", "initialisations", "retrains", "linearisation",
                 "linearised search", "refit"):
        assert f"{part} " in message
    assert "more than memory_budget='1MiB' allows (1.00 MiB)" in message
    assert "refused before any training" in message and "local_search=False" in message
    # only the checks' passes on one or two samples ran: nothing was trained
    assert Counting.batches and max(Counting.batches) <= 2
    assert not hasattr(est, "sharing_partition_") and not hasattr(est, "hessian_structure_")


def test_an_explicit_full_curvature_over_the_budget_is_an_error_naming_its_need():
    X, y = _sum_data()
    kwargs = dict(objective="evidence", loss="mse", **SMALL)
    diag = NetworkSharingDiscoverer("sequence", hessian_structure="diag", **kwargs).fit(X, y)
    budget = diag.memory_estimate_["total"] + 2**20
    est = NetworkSharingDiscoverer("sequence", hessian_structure="full", memory_budget=budget,
                                   **kwargs)
    # a MemoryError, and the ValueError this refusal always was
    with pytest.raises(MemoryError, match=r"hessian_structure='full'\) on 3 shareable items") \
            as info:
        est.fit(X, y)
    assert isinstance(info.value, ValueError)
    assert "curvature " in str(info.value)
    assert "hessian_structure='diag' needs about" in str(info.value)


# -- the lean structure within a budget ---------------------------------------------------------
def test_a_budget_between_the_structures_takes_the_diagonal_and_its_partition(capsys):
    X, y = _sum_data()
    kwargs = dict(objective="evidence", loss="mse", **SMALL)
    diag = NetworkSharingDiscoverer("sequence", hessian_structure="diag", **kwargs).fit(X, y)
    full = NetworkSharingDiscoverer("sequence", **kwargs).fit(X, y)
    assert full.hessian_structure_ == "full" and diag.hessian_structure_ == "diag"
    lean, rich = diag.memory_estimate_["total"], full.memory_estimate_["total"]
    assert full.memory_estimate_["curvature"] > diag.memory_estimate_["curvature"]
    assert lean < rich
    auto = NetworkSharingDiscoverer("sequence", memory_budget=(lean + rich) // 2, verbose=1,
                                    **kwargs).fit(X, y)
    assert auto.hessian_structure_ == "diag"
    np.testing.assert_array_equal(auto.sharing_partition_, diag.sharing_partition_)
    assert auto.objective_ == pytest.approx(diag.objective_)
    assert auto.memory_estimate_ == diag.memory_estimate_
    out = capsys.readouterr().out
    assert "[NetworkSharingDiscoverer] hessian_structure='auto': using 'diag', the full " \
           "curvature of 408 values would need" in out
    assert "more than the memory budget of" in out


def test_hessian_structure_says_what_the_fit_used():
    X, y = _sum_data()
    validation = NetworkSharingDiscoverer("sequence", **SMALL).fit(X, y)
    assert validation.hessian_structure_ is None
    assert "curvature" not in validation.memory_estimate_
    assert validation.memory_estimate_["total"] > validation.memory_estimate_["data"] > 0
    clf = NetworkSharingClassifier("sequence", objective="evidence", **SMALL)
    clf.fit(X, np.where(y > np.median(y), "large", "small"))
    assert clf.hessian_structure_ == "full"


# -- the parameter ----------------------------------------------------------------------------
@pytest.mark.parametrize("budget", ["auto", " AUTO ", 2**40, "512MiB", "2 GB", "1.5GiB",
                                    float("inf"), "inf", 1e12])
def test_budget_forms_are_taken_and_the_parameters_are_not_changed(budget):
    X, y = _sum_data(40)
    X0, y0 = X.copy(), y.copy()
    est = NetworkSharingDiscoverer("sequence", objective="evidence", loss="mse",
                                   memory_budget=budget, **SMALL)
    params = clone(est).get_params()
    est.fit(X, y)
    assert est.hessian_structure_ == "full"
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    after = est.get_params()
    assert after.keys() == params.keys()
    for key, value in params.items():
        assert after[key] is value or after[key] == value, key
    assert est.hessian_structure == "auto" and est.memory_budget is budget


@pytest.mark.parametrize("budget, error, match", [
    ("lots", ValueError, "memory_budget must be 'auto', a positive number of bytes"),
    ("-1GB", ValueError, "memory_budget must be 'auto'"),
    (0, ValueError, "memory_budget must be 'auto'"),
    (True, ValueError, "memory_budget must be 'auto'"),
    (float("nan"), ValueError, "memory_budget must be 'auto'"),
    ([1], InvalidParameterError, "'memory_budget' parameter"),
])
def test_bad_budgets_fail_before_any_training(budget, error, match):
    X, y = _sum_data(40)
    est = NetworkSharingDiscoverer("sequence", memory_budget=budget, **SMALL)
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "sharing_partition_")


def test_the_module_instance_given_is_not_trained_or_changed():
    X, y = _image_data()
    module = Counting()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    est = NetworkSharingDiscoverer(module, share={"dense.weight": None}, loss="mse",
                                   memory_budget="1MiB")
    with pytest.raises(MemoryError):
        est.fit(X, y)
    assert est.module is module and est.memory_budget == "1MiB"
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key])


# -- the estimate and the choice by time --------------------------------------------------------
def _layer(n_out, n_in, n=1200):
    """The shapes of a fit of a dense ``n_in -> n_out`` layer's entries with a read-out."""
    entries = n_out * n_in
    return NetworkShapes(
        n_params=entries + n_out + 1, n_entries=entries, n_items=entries, n_groups=19,
        n_inits=16, n_reserve=16, n_rows=n + n // 4, n_fit=n, n_train=n, n_outputs=1,
        sample_entries=n_in + 1, saved_constant=entries + n_out, saved_per_sample=n_in + 3 * n_out,
        itemsize=8, linearised=False)


def test_auto_takes_the_diagonal_of_a_large_layer_by_its_time():
    # 4 channels of a 64 -> 36 layer: 9,216 values; the full curvature fits 10 GiB easily
    large = _layer(144, 64)
    structure, need, why = choose_structure("auto", large, 10 * 2**30)
    assert structure == "diag" and need.structure == "diag"
    assert "flops" in why and "above the limit" in why
    assert network_memory(large, structure="full").total < 10 * 2**30
    assert laplace.check_curvature_memory("auto", 9216, budget=10 * 2**30) == "diag"
    # one channel (2,304) and two (4,608) keep the full curvature
    for n_out in (36, 72):
        structure, need, why = choose_structure("auto", _layer(n_out, 64), 10 * 2**30)
        assert structure == "full" and "fits the memory budget" in why
    # by memory: the full curvature of one channel beyond a budget that holds the diagonal
    small = _layer(36, 64)
    budget = network_memory(small, structure="diag").total + 2**20
    assert network_memory(small, structure="full").total > budget
    structure, _, why = choose_structure("auto", small, budget)
    assert structure == "diag" and "more than the memory budget" in why
    # an explicit structure is kept whatever it costs
    assert choose_structure("full", large, None)[0] == "full"


def test_the_estimate_grows_with_what_the_fit_holds():
    base = _layer(36, 64)
    need = network_memory(base, structure="full")
    assert need.total == sum(need.held.values()) + max(need.phases.values())
    more = network_memory(_layer(36, 64, n=2400), structure="full")
    assert more.held["data"] == pytest.approx(2 * need.held["data"])
    assert more.phases["retrains"] > need.phases["retrains"]
    # the full curvature grows with the square of the values, the diagonal linearly
    wide = network_memory(_layer(72, 64), structure="full")
    assert wide.phases["curvature"] > need.phases["curvature"]
    full, diag = laplace.CURVATURES["full"], laplace.CURVATURES["diag"]
    assert full.peak_memory(4608) == 4 * full.peak_memory(2304) > full.memory(2304)
    assert diag.peak_memory(4608) == 2 * diag.peak_memory(2304)
    lean = network_memory(base, structure="diag")
    assert lean.phases["curvature"] < need.phases["curvature"]


# -- the linearisation leaves nothing behind -------------------------------------------------------
def test_the_linearisation_keeps_no_tensor_once_it_returns():
    # It measured its samples' saved tensors with a hook that kept them, and an operation
    # that saves its own output made a cycle the collector cannot see: every call left the
    # n_items x n_items identity it ties the items by (6.4 GB at 28,224 entries).
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(12, 10, bias=False), nn.ReLU(), nn.Linear(10, 1)).double()
    n_items = 120
    S = torch.as_tensor(labels_to_selection(np.arange(n_items) % 7, sparse=False))
    X, y = torch.randn(30, 12, dtype=torch.float64), torch.randn(30, 1, dtype=torch.float64)
    problem = TiedNetworkProblem(module, {"0.weight": None}, S, X, y, X, y, loss="mse")
    w = problem.initial_vector()

    def squares():
        gc.collect()
        return sum(1 for o in gc.get_objects()
                   if type(o) is torch.Tensor and o.shape == (n_items, n_items))

    before = squares()
    for _ in range(3):
        laplace.item_linearisation(problem, w, S, X, y)
    assert squares() == before
