"""NetworkSharingDiscoverer: module models and module="sequence" on sum of numbers, to_module(),
parameters, bad input; and SharingDiscoverer pointing network models at it."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn
from torch.nn.utils import parametrize

from sharelearn import NetworkSharingDiscoverer, SharingDiscoverer
from sharelearn.datasets import make_sum_of_numbers
from sharelearn.models import ModuleModel, network_model
from sharelearn.networks import SequenceNetwork

# Small sizes keep a fit at about a second; the paper's sizes are the defaults (benchmark).
SMALL = dict(module__embedding_dim=16, module__hidden=8, max_iter=20, search_steps=100,
             max_epochs=200, cv=0.6, validation_fraction=0.5, dtype="float32")


class PositionwiseSum(nn.Module):
    """``y = v . sum_l relu(w_l x_l + b_l)``: a per-position weight of shape (L, hidden)."""

    def __init__(self, length=4, hidden=8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(length, hidden))
        self.bias = nn.Parameter(torch.zeros(length, hidden))
        self.out = nn.Linear(hidden, 1)

    def forward(self, X):
        return self.out(torch.relu(X[:, :, None] * self.weight + self.bias).sum(1))


MODULE_FAST = dict(share={"weight": 0, "bias": 0}, max_iter=5, search_steps=30,
                   max_epochs=30, n_restarts=1, dtype="float32", random_state=0)


@pytest.fixture(scope="module")
def float_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 4))
    return X, X.sum(1) + 0.1 * rng.standard_normal(80)


@pytest.fixture(scope="module")
def fitted_sequence():
    X, y, truth = make_sum_of_numbers(500, length=4, variant="alternating", random_state=0)
    est = NetworkSharingDiscoverer("sequence", reference=truth, random_state=0, **SMALL).fit(X, y)
    return est, X, y, truth


@pytest.fixture(scope="module")
def fitted_module(float_data):
    X, y = float_data
    return NetworkSharingDiscoverer(PositionwiseSum, **MODULE_FAST).fit(X, y)


def _no_fitted_attributes(est):
    return not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


# -- network models are not SharingDiscoverer's ------------------------------------------------
@pytest.mark.parametrize("model", ["sequence", PositionwiseSum, PositionwiseSum()],
                         ids=["sequence", "class", "instance"])
def test_sharing_discoverer_points_network_models_at_network_sharing_discoverer(model):
    X = np.random.default_rng(0).normal(size=(20, 4))
    est = SharingDiscoverer(model=model)
    with pytest.raises(ValueError, match=r"use NetworkSharingDiscoverer\(module="):
        est.fit(X, X.sum(1))
    assert _no_fitted_attributes(est)


def test_network_parameters_are_unexpected_keywords_of_sharing_discoverer():
    X = np.random.default_rng(0).normal(size=(20, 3))
    for kwargs in ({"share": {"weight": 0}}, {"search_steps": 5}, {"module__hidden": 3}):
        with pytest.raises(TypeError, match="belong to NetworkSharingDiscoverer"):
            SharingDiscoverer(model="mean", **kwargs).fit(X)


def test_closed_form_parameters_are_unexpected_keywords_of_the_network_estimator(float_data):
    # the ridge `alpha` of networks is `weight_decay`; the targets are standardised
    X, y = float_data
    for kwargs in ({"alpha": 1e-3}, {"fit_intercept": False}):
        name = next(iter(kwargs))
        est = NetworkSharingDiscoverer(PositionwiseSum, **kwargs, **MODULE_FAST)
        with pytest.raises(TypeError, match=f"NetworkSharingDiscoverer got unexpected keyword "
                                            f"argument '{name}'"):
            est.fit(X, y)
        assert _no_fitted_attributes(est)
    assert "weight_decay" in NetworkSharingDiscoverer().get_params()


# -- the sequence network ----------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["shared", "alternating"])
@pytest.mark.slow
def test_sequence_exact_recovery_at_length_4(variant, fitted_sequence):
    if variant == "alternating":
        est, X, y, truth = fitted_sequence
    else:
        X, y, truth = make_sum_of_numbers(500, length=4, variant=variant, random_state=0)
        est = NetworkSharingDiscoverer("sequence", reference=truth, random_state=0,
                                       **SMALL).fit(X, y)
    assert est.score(X, y) == 0  # minus the partition distance
    np.testing.assert_array_equal(est.sharing_partition_, truth)
    Xt, yt, _ = make_sum_of_numbers(2000, length=4, variant=variant, noise=0.0, random_state=1)
    assert np.mean(np.abs(est.predict(Xt) - yt)) < 0.6  # digits sum to 4..36


def test_sequence_fitted_attributes_are_numpy(fitted_sequence):
    est, X, y, _ = fitted_sequence
    for name, value in vars(est).items():
        assert not isinstance(value, torch.Tensor), name
        # the untrained template is kept privately, on the CPU, for to_module()
        assert name.startswith("_") or not isinstance(value, nn.Module), name
    for name in ("sharing_partition_", "selection_matrix_", "soft_selection_", "loss_curve_",
                 "restart_objectives_", "target_mean_", "target_scale_"):
        assert isinstance(getattr(est, name), np.ndarray), name
    assert est.n_features_in_ == 4
    assert est.n_groups_ == 2 and est.selection_matrix_.shape == (4, 2)
    assert isinstance(est.objective_, float) and est.n_iter_ >= 1
    assert est.predict(X[:5]).shape == (5,)
    assert est.history_ and "valid_loss" in est.history_[0]


def test_to_module_is_cpu_tied_and_predicts_like_the_estimator(fitted_sequence):
    est, X, _, truth = fitted_sequence
    module = est.to_module()
    assert isinstance(module, SequenceNetwork)
    assert all(p.device.type == "cpu" for p in module.parameters())
    W = module.position_weight.detach()
    torch.testing.assert_close(W[0], W[2])
    torch.testing.assert_close(W[1], W[3])
    assert not torch.equal(W[0], W[1])
    with torch.no_grad():
        out = module(torch.as_tensor(X[:7])).numpy()[:, 0]
    np.testing.assert_allclose(out * est.target_scale_ + est.target_mean_, est.predict(X[:7]),
                               rtol=1e-6, atol=1e-5)
    # training it further keeps the sharing, and does not touch the estimator
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    module(torch.as_tensor(X[:7])).sum().backward()
    opt.step()
    W = module.position_weight.detach()
    torch.testing.assert_close(W[0], W[2])
    assert not torch.equal(W, est.to_module().position_weight.detach())


def test_pickle_round_trip_of_a_fitted_network(fitted_sequence):
    est, X, y, _ = fitted_sequence
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(X[:20]), est.predict(X[:20]))


def test_score_without_reference_is_minus_heldout_mae(fitted_sequence):
    est, X, y, _ = fitted_sequence
    plain = clone(est).set_params(reference=None)
    plain.__dict__.update({k: v for k, v in vars(est).items() if k.endswith("_")
                           or k.startswith("_")})
    plain._reference_labels = None
    assert plain.score(X, y) == pytest.approx(-np.mean(np.abs(y - est.predict(X))))


def test_sequence_needs_integer_tokens():
    X, y, _ = make_sum_of_numbers(40, length=4, random_state=0)
    with pytest.raises(ValueError, match="integer token ids"):
        NetworkSharingDiscoverer("sequence", **SMALL).fit(X + 0.5, y)
    with pytest.raises(ValueError, match="Negative values"):
        NetworkSharingDiscoverer("sequence", **SMALL).fit(X - 5, y)


def test_a_mostly_unused_token_vocabulary_warns():
    from sklearn.exceptions import EfficiencyWarning

    X, y, _ = make_sum_of_numbers(60, length=2, random_state=0)
    X = X.copy()
    X[0, 0] = 5000
    est = NetworkSharingDiscoverer("sequence", module__embedding_dim=2, module__hidden=2,
                                   max_iter=1, search_steps=2, max_epochs=2, local_search=False,
                                   n_restarts=1, dtype="float32", random_state=0)
    with pytest.warns(EfficiencyWarning, match="embedding gets 5001 rows"):
        est.fit(X, y)


# -- module models -----------------------------------------------------------------------------
@pytest.mark.slow
def test_module_instance_is_never_trained_in_place(float_data):
    X, y = float_data
    torch.manual_seed(0)
    user = PositionwiseSum()
    before = {k: v.clone() for k, v in user.state_dict().items()}
    est = NetworkSharingDiscoverer(user, **MODULE_FAST).fit(X, y)
    after = user.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not parametrize.is_parametrized(user)
    assert est.sharing_partition_.shape == (4,)
    assert est.predict(X).shape == (80,)
    assert est.score(X, y) < 0


@pytest.mark.slow
def test_module_class_kwargs_are_routed_and_grid_searchable(float_data):
    X, y = float_data
    est = NetworkSharingDiscoverer(PositionwiseSum, module__hidden=5, **MODULE_FAST)
    params = est.get_params(deep=True)
    assert params["module__hidden"] == 5 and params["module"] is PositionwiseSum
    twin = clone(est)
    assert twin.get_params()["module__hidden"] == 5
    twin.set_params(module__hidden=6, nuclear=1.0)
    assert twin.module__hidden == 6 and est.module__hidden == 5
    twin.fit(X, y)
    assert twin.to_module().out.in_features == 6
    assert "module__hidden=6" in repr(twin)


def test_unknown_keywords_fail_at_fit_module_keywords_are_routed(float_data):
    # scikit-learn's checks require __init__ and set_params never to raise, so fit reports them
    X, y = float_data
    for est in (NetworkSharingDiscoverer(PositionwiseSum, bogus=1, **MODULE_FAST),
                NetworkSharingDiscoverer(PositionwiseSum, **MODULE_FAST).set_params(bogus=1)):
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'bogus'\. Keyword"):
            est.fit(X, y)
        assert not hasattr(est, "sharing_partition_")
    est = NetworkSharingDiscoverer(module="sequence", module__hidden=8).set_params(
        module__hidden=9)
    assert est.get_params()["module__hidden"] == 9
    assert clone(est).module__hidden == 9


@pytest.mark.slow
def test_same_random_state_gives_the_same_partition(float_data, fitted_module):
    X, y = float_data
    b = NetworkSharingDiscoverer(PositionwiseSum, **MODULE_FAST).fit(X, y)
    np.testing.assert_array_equal(fitted_module.sharing_partition_, b.sharing_partition_)
    np.testing.assert_array_equal(fitted_module.predict(X), b.predict(X))


@pytest.mark.slow
def test_threaded_search_chooses_as_the_serial_one(float_data, fitted_module):
    X, y = float_data
    parallel = NetworkSharingDiscoverer(PositionwiseSum, n_jobs=2, **MODULE_FAST).fit(X, y)
    np.testing.assert_array_equal(parallel.sharing_partition_, fitted_module.sharing_partition_)
    assert parallel.objective_ == fitted_module.objective_
    np.testing.assert_array_equal(parallel.restart_objectives_,
                                  fitted_module.restart_objectives_)


@pytest.mark.parametrize("share, match", [
    ({"kernel": 0}, "has no parameter 'kernel'"),
    ({"weight": 0, "out.weight": 0}, "same number of items"),
    ({"weight": 3}, "out of range"),
    (None, "needs share"),
])
def test_bad_share_declaration(float_data, share, match):
    X, y = float_data
    est = NetworkSharingDiscoverer(PositionwiseSum, **{**MODULE_FAST, "share": share})
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert _no_fitted_attributes(est)


def test_sharing_axis_size_must_match_the_reference(float_data):
    X, y = float_data
    est = NetworkSharingDiscoverer(PositionwiseSum, reference=[0, 0, 1], **MODULE_FAST)
    with pytest.raises(ValueError, match="reference partitions 3 items, but the module has 4"):
        est.fit(X, y)


def test_nan_loss_stops_with_the_step_and_leaves_nothing_fitted(float_data):
    X, y = float_data
    est = NetworkSharingDiscoverer(PositionwiseSum,
                                   **{**MODULE_FAST, "inner_learning_rate": 1e30})
    with pytest.raises(FloatingPointError, match=r"became (nan|inf) at .*step \d+"):
        est.fit(X, y)
    assert _no_fitted_attributes(est)


def test_module_output_shape_and_bad_kwargs_are_value_errors(float_data):
    X, y = float_data
    with pytest.raises(ValueError, match="predictions"):
        NetworkSharingDiscoverer(PositionwiseSum, **MODULE_FAST).fit(X, np.c_[y, y, y])
    with pytest.raises(ValueError, match="Could not build PositionwiseSum"):
        NetworkSharingDiscoverer(PositionwiseSum, module__depth=3, **MODULE_FAST).fit(X, y)
    with pytest.raises(ValueError, match="module class"):
        NetworkSharingDiscoverer(PositionwiseSum(), module__hidden=3, **MODULE_FAST).fit(X, y)
    with pytest.raises(TypeError, match="module__"):
        NetworkSharingDiscoverer(PositionwiseSum, hidden=3, **MODULE_FAST).fit(X, y)


@pytest.mark.parametrize("solver", ["exact", "cg", "neumann", "identity"])
@pytest.mark.slow
def test_every_hypergradient_solver_runs_in_the_estimator(float_data, solver):
    X, y = float_data
    est = NetworkSharingDiscoverer(PositionwiseSum, hypergrad=solver, local_search=False,
                                   module__hidden=2, **{**MODULE_FAST, "max_iter": 3})
    est.fit(X, y)
    # the first start is the relaxation, which used the solver at every outer step
    assert est.restart_objectives_.shape == (2,)
    assert np.isfinite(est.restart_objectives_).all()


def test_other_initialisations_of_a_module_instance(float_data):
    net = PositionwiseSum(length=4, hidden=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model = network_model(NetworkSharingDiscoverer(net, **MODULE_FAST))
    assert type(model) is ModuleModel
    others = model.other_initialisations(None, 1, [5, 6])
    assert len(others) == 2
    for name, value in net.state_dict().items():  # the user's module is untouched
        torch.testing.assert_close(value, before[name])
    # PositionwiseSum's own weight has no reset_parameters; its output layer has
    assert not torch.equal(others[0].out.weight, net.out.weight)
    assert not torch.equal(others[0].out.weight, others[1].out.weight)
    torch.testing.assert_close(others[0].weight, net.weight)

    class NoReset(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4, 2))

        def forward(self, X):
            return (X[:, :, None] * self.weight).sum((1, 2))[:, None]

    no_reset = network_model(NetworkSharingDiscoverer(NoReset(), **MODULE_FAST))
    assert no_reset.other_initialisations(None, 1, [5]) == []
    X, y = float_data
    # search_inits is validated like every other parameter
    with pytest.raises(ValueError, match="search_inits"):
        NetworkSharingDiscoverer(net, search_inits=0, **MODULE_FAST).fit(X, y)


def test_a_failed_fit_leaves_a_fitted_estimator_as_it_was(float_data, fitted_module):
    X, y = float_data
    # a network estimator whose second fit fails
    est = clone(fitted_module)
    est.__dict__.update({k: v for k, v in vars(fitted_module).items()
                         if k.endswith("_") or k.startswith("_")})
    before = dict(vars(est))
    est.set_params(reference=[0, 0, 1])
    with pytest.raises(ValueError, match="reference partitions 3 items"):
        est.fit(X, y)
    for key in ("sharing_partition_", "n_features_in_", "history_", "_module_state",
                "_module_template"):
        assert vars(est)[key] is before[key]
    # a closed-form estimator asked to fit a module
    est = SharingDiscoverer(model="linear", random_state=0, n_restarts=0).fit(X, y)
    before = dict(vars(est))
    est.set_params(model=PositionwiseSum)
    with pytest.raises(ValueError, match="NetworkSharingDiscoverer"):
        est.fit(X, y)
    for key in ("coef_", "sharing_partition_", "n_features_in_", "_evidence_terms"):
        assert vars(est)[key] is before[key]
    assert not hasattr(est, "history_")


def test_init_gives_a_module_models_starting_partition(float_data):
    X, y = float_data
    est = NetworkSharingDiscoverer(PositionwiseSum, init=[0, 0, 1, 1], local_search=False,
                                   **{**MODULE_FAST, "n_restarts": 0}).fit(X, y)
    np.testing.assert_array_equal(est.sharing_partition_, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="init partitions 3 items, but the module has 4"):
        NetworkSharingDiscoverer(PositionwiseSum, init=[0, 0, 1], **MODULE_FAST).fit(X, y)
