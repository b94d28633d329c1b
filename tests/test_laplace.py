"""The Laplace evidence of tied networks (sharelearn.networks.laplace) and objective="evidence"
for module models: exact on linear networks, the GGN and the precisions checked against independent
computations, and the estimators' use of it."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.base import is_classifier
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sharelearn import NetworkSharingClassifier, NetworkSharingDiscoverer, SharingDiscoverer
from sharelearn.datasets import make_sum_of_numbers
from sharelearn.models import SequenceModel
from sharelearn.networks import TiedNetworkProblem, laplace
from sharelearn.partition import labels_to_selection

SMALL = dict(module__embedding_dim=16, module__hidden=8, search_steps=100, max_epochs=200,
             validation_fraction=0.5, dtype="float32")


def _linear_problem(labels, X, Y, loss="mse", seed=0):
    torch.manual_seed(seed)
    module = nn.Linear(X.shape[1], Y.shape[1] if Y.ndim == 2 else int(Y.max()) + 1,
                       bias=False).double()
    S = torch.as_tensor(labels_to_selection(labels, sparse=False), dtype=torch.float64)
    Xt = torch.tensor(X)
    Yt = torch.tensor(Y) if loss == "mse" else torch.tensor(Y, dtype=torch.int64)
    problem = TiedNetworkProblem(module, {"weight": None}, S, Xt, Yt, Xt, Yt, loss=loss)
    return problem, problem.initial_vector(), S, Xt, Yt


def _tied_map_data(seed, n=50, d=6, m=4, k=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=m * d)
    X = rng.standard_normal((n, d))
    Y = X @ rng.standard_normal(k)[labels].reshape(m, d).T + 0.3 * rng.standard_normal((n, m))
    return X, Y, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_laplace_of_a_linear_network_is_the_closed_form_evidence(seed):
    X, Y, labels = _tied_map_data(seed)
    closed = SharingDiscoverer(model="linear", objective="evidence", fit_intercept=False,
                               init=labels, n_restarts=0, local_search=False).fit(X, Y)
    for partition in (labels, closed.sharing_partition_, np.arange(labels.size) % 2):
        problem, w, S, Xt, Yt = _linear_problem(partition, X, Y, seed=seed)
        value, _ = laplace.network_evidence(problem, w, S, Xt, Yt, loss="mse",
                                            structure="full")
        if partition is labels:
            # the untrained network: the linearisation of a linear network is exact anywhere
            assert -0.5 * value == pytest.approx(closed.log_evidence_, rel=1e-6)
        assert np.isfinite(value)


def test_the_estimators_laplace_evidence_equals_the_closed_form_on_a_linear_network():
    X, Y, labels = _tied_map_data(3, n=80)
    # the network standardises each output: data already centred and scaled so keep it exact
    X, Y = X - X.mean(0), (Y - Y.mean(0)) / Y.std(0)
    closed = SharingDiscoverer(model="linear", objective="evidence", fit_intercept=False,
                               init=labels, n_restarts=0, local_search=False).fit(X, Y)
    net = NetworkSharingDiscoverer(nn.Linear, module__in_features=6, module__out_features=4,
                                   module__bias=False, share={"weight": None},
                                   objective="evidence", loss="mse", hessian_structure="full",
                                   init=labels, local_search=False, search_steps=20,
                                   validation_fraction=None,
                                   max_epochs=5, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(net.sharing_partition_, closed.sharing_partition_)
    assert net.log_evidence_ == pytest.approx(closed.log_evidence_, rel=1e-6)
    assert net.validation_loss_ is None


def test_ggn_of_a_softmax_regression_is_its_hessian():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = rng.integers(0, 3, size=40)
    labels = np.array([0, 1, 1, 2, 0, 2, 1, 1, 0])  # 3 classes x 3 inputs
    problem, w, S, Xt, yt = _linear_problem(labels, X, y, loss="cross_entropy")
    stats = laplace.ggn_statistics(problem, w, S, Xt, yt, loss="cross_entropy",
                                   structure="full")
    psi = stats["psi"].clone()

    def nll(values):
        weight = (S @ values).reshape(3, 3)
        return torch.nn.functional.cross_entropy(Xt @ weight.T, yt, reduction="sum")

    hessian = torch.autograd.functional.hessian(nll, psi)
    np.testing.assert_allclose(stats["G"].numpy(), hessian.numpy(), rtol=1e-10, atol=1e-10)
    assert stats["nll"] == pytest.approx(float(nll(psi)), rel=1e-12)
    diag = laplace.ggn_statistics(problem, w, S, Xt, yt, loss="cross_entropy",
                                  structure="diag")["G"]
    np.testing.assert_allclose(diag.numpy(), np.diag(hessian.numpy()), rtol=1e-10)


def test_a_curvature_structure_is_a_class_that_the_statistics_and_evidence_use():
    # a structure given as an instance (as a new one would be) serves as its name does; one
    # that keeps only the first value's curvature shows that nothing else decides the shape
    class FirstOnly(laplace.DiagonalCurvature):
        name = "first"

        def gaussian_term(self, Jf):
            term = super().gaussian_term(Jf)
            return torch.cat([term[:1], torch.zeros_like(term[1:])])

    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 2))
    problem, w, S, Xt, Yt = _linear_problem(np.array([0, 1, 1, 0, 2, 2]), X, Y)
    by_name = laplace.ggn_statistics(problem, w, S, Xt, Yt, loss="mse", structure="diag")
    by_class = laplace.ggn_statistics(problem, w, S, Xt, Yt, loss="mse",
                                      structure=laplace.CURVATURES["diag"])
    torch.testing.assert_close(by_class["G"], by_name["G"], rtol=0, atol=0)
    first = laplace.ggn_statistics(problem, w, S, Xt, Yt, loss="mse", structure=FirstOnly())
    assert first["G"][0] == by_name["G"][0] and not first["G"][1:].any()
    psi_sq = float(by_name["psi"] @ by_name["psi"])
    args = (by_name["G"], by_name["c"], by_name["yy"], by_name["sse"], psi_sq, by_name["n_obs"])
    assert laplace.gaussian_evidence(*args, laplace.DiagonalCurvature()) == \
        laplace.gaussian_evidence(*args, "diag")


@pytest.mark.parametrize("loss, structure", [("mse", "diag"), ("cross_entropy", "full"),
                                             ("cross_entropy", "diag")])
def test_fitted_precisions_maximise_the_laplace_value(loss, structure):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 4))
    labels = np.array([0, 1, 1, 0, 2, 2, 0, 1, 1, 2, 0, 0])
    if loss == "mse":
        Y = X @ rng.standard_normal((4, 3)) + 0.5 * rng.standard_normal((60, 3))
    else:
        Y = rng.integers(0, 3, size=60)
    problem, w, S, Xt, Yt = _linear_problem(labels, X, Y, loss=loss)
    stats = laplace.ggn_statistics(problem, w, S, Xt, Yt, loss=loss, structure=structure)
    psi_sq = float(stats["psi"] @ stats["psi"])
    if loss == "mse":
        value, alpha, beta = laplace.gaussian_evidence(stats["G"], stats["c"], stats["yy"],
                                                       stats["sse"], psi_sq, stats["n_obs"],
                                                       structure)
        lam, sse, n = stats["G"].numpy(), stats["sse"], stats["n_obs"]

        def neg2(log_prec):
            a, b = np.exp(log_prec)
            return (b * sse - n * np.log(b) + n * np.log(2 * np.pi) + a * psi_sq
                    - lam.size * np.log(a) + np.log(a + b * lam).sum())
        start = np.log([alpha, beta])
    else:
        value, alpha = laplace.categorical_evidence(stats["G"], stats["nll"], psi_sq, structure)
        G = stats["G"].numpy()
        lam = np.linalg.eigvalsh(G) if structure == "full" else G

        def neg2(log_prec):
            a = np.exp(log_prec[0])
            return (2 * stats["nll"] + a * psi_sq - lam.size * np.log(a)
                    + np.log(a + lam).sum())
        start = np.log([alpha])
    assert value == pytest.approx(neg2(start), rel=1e-10)
    best = minimize(neg2, start + 1.0, method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    assert value <= best.fun + 1e-7
    np.testing.assert_allclose(np.exp(best.x), np.exp(start), rtol=1e-3)


@pytest.mark.parametrize("variant, truth", [("alternating", [0, 1, 0, 1]),
                                            ("shared", [0, 0, 0, 0])])
@pytest.mark.slow
def test_evidence_recovers_the_sum_of_numbers_sharing(variant, truth):
    X, y, reference = make_sum_of_numbers(400, length=4, variant=variant, random_state=0)
    est = NetworkSharingDiscoverer("sequence", objective="evidence", loss="mse",
                                   reference=reference, random_state=0, **SMALL).fit(X, y)
    np.testing.assert_array_equal(est.sharing_partition_, truth)
    assert est.loss_curve_.size == 0 and len(est.restart_objectives_) == 1  # no relaxation
    assert np.isfinite(est.log_evidence_)


@pytest.mark.slow
def test_the_evidence_refit_reaches_the_posterior_mode_under_the_fitted_prior():
    # a linear network: the refit's decay must land on the ridge solution with the evidence's
    # own ratio alpha / beta, visibly apart from the least-squares fit on so few samples
    X, Y, labels = _tied_map_data(1, n=10)
    X, Y = X - X.mean(0), (Y - Y.mean(0)) / Y.std(0)
    problem, w, S, Xt, Yt = _linear_problem(labels, X, Y)
    _, precisions = laplace.network_evidence(problem, w, S, Xt, Yt, loss="mse",
                                             structure="full")
    # the design of the shared values: output j of sample i sums its row's inputs by group
    J = np.stack([np.kron(np.eye(4), X) @ (labels == g) for g in range(3)], axis=1)
    y = Y.T.reshape(-1)
    ridge = precisions["alpha"] / precisions["beta"] * np.eye(3)
    mode = (J @ np.linalg.solve(J.T @ J + ridge, J.T @ y)).reshape(4, -1).T
    least_squares = (J @ np.linalg.lstsq(J, y, rcond=None)[0]).reshape(4, -1).T
    net = NetworkSharingDiscoverer(nn.Linear, module__in_features=6, module__out_features=4,
                                   module__bias=False, share={"weight": None},
                                   objective="evidence", loss="mse", hessian_structure="full",
                                   init=labels, local_search=False, validation_fraction=None,
                                   max_epochs=2000, random_state=0).fit(X, Y)
    assert net.prior_precision_ == pytest.approx(precisions["alpha"], rel=1e-6)
    assert np.abs(mode - least_squares).max() > 5e-3
    np.testing.assert_allclose(net.predict(X), mode, atol=1e-6)


@pytest.mark.slow
def test_the_evidence_refit_keeps_the_best_start_on_the_hold_out(monkeypatch):
    # the search's retrains (fine-tuned) and the initialisations (at the full step size) are
    # both refitted under the fitted prior; the one best on the hold-out is the estimator's
    calls, refit_best = [], SequenceModel.refit_best

    def recording(modules, **kwargs):
        out = refit_best(modules, **kwargs)
        calls.append((kwargs["lr"], kwargs["decay"], out))
        return out

    # the model's refit is an attribute of the model type: a recording one is injected there
    monkeypatch.setattr(SequenceModel, "refit_best", staticmethod(recording))
    X, y, reference = make_sum_of_numbers(200, length=4, variant="alternating", random_state=0)
    est = NetworkSharingDiscoverer("sequence", objective="evidence", loss="mse",
                                   init=[0, 1, 0, 1], local_search=False, random_state=0,
                                   **SMALL).fit(X, y)
    (lr_tuned, decay, tuned), (lr_fresh, decay_fresh, fresh) = calls
    assert lr_fresh == pytest.approx(10 * lr_tuned)
    # the decay (its value is checked against the posterior mode above) is on the shared
    # values alone: the read-out keeps weight_decay
    assert decay == decay_fresh
    assert sorted(decay) == ["parametrizations.position_bias.original",
                             "parametrizations.position_weight.original"]
    assert len(set(decay.values())) == 1 and decay[sorted(decay)[0]] > 100 * est.weight_decay
    best = min((tuned, fresh), key=lambda out: out[2])[0]
    for name, tensor in best.state_dict().items():
        np.testing.assert_array_equal(est._module_state[name], tensor.detach().cpu().numpy())


@pytest.mark.slow
def test_classifier_evidence_recovers_the_sharing_of_terciles():
    X, s, reference = make_sum_of_numbers(400, length=4, variant="alternating", random_state=1)
    y = np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))
    clf = NetworkSharingClassifier("sequence", objective="evidence", reference=reference,
                                   random_state=1, **SMALL).fit(X, y)
    np.testing.assert_array_equal(clf.sharing_partition_, [0, 1, 0, 1])
    assert clf.log_evidence_ < 0  # a probability of the labels
    assert isinstance(clf.prior_precision_, float) and clf.prior_precision_ > 0


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(loss="l1"), ValueError, "needs a Gaussian likelihood, loss='mse'"),
    (dict(loss="mse", hessian_structure="kron"), InvalidParameterError,
     "'hessian_structure' parameter"),
])
def test_settings_the_evidence_cannot_use_fail_before_training(kwargs, error, match):
    X, y, _ = make_sum_of_numbers(60, length=3, random_state=0)
    est = NetworkSharingDiscoverer("sequence", objective="evidence", **{**SMALL, **kwargs})
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "sharing_partition_")


def test_a_full_curvature_too_large_says_how_much_it_needs(monkeypatch):
    assert laplace.check_curvature_memory("auto", 1000, budget=2**30) == "full"
    assert laplace.check_curvature_memory("auto", 10**5, budget=2**30) == "diag"
    with pytest.raises(ValueError, match=r"about 149.0 GiB, more than the memory budget of "
                                         r"1.0 GiB .* use hessian_structure='diag'"):
        laplace.check_curvature_memory("full", 10**5, budget=2**30)
    # through the estimator, before any training: the sequence network's 4 items of 136
    # values need 4 x 136 = 544 values at the finest partition
    monkeypatch.setattr(SequenceModel, "curvature_budget", 2**20)
    X, y, _ = make_sum_of_numbers(60, length=4, random_state=0)
    est = NetworkSharingDiscoverer("sequence", objective="evidence", loss="mse",
                                   hessian_structure="full", **SMALL)
    with pytest.raises(ValueError, match="the 544 x 544 curvature"):
        est.fit(X, y)


def test_soft_evidence_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    n, n_items, k, r = 40, 6, 2, 3
    J = torch.tensor(rng.standard_normal((n, n_items, k)))
    target = torch.tensor(rng.standard_normal(n)) + torch.einsum(
        "nik,ik->n", J, torch.tensor(rng.standard_normal((n_items, k))))
    logits = torch.tensor(rng.standard_normal((n_items, r)))
    S = torch.softmax(logits, 1).requires_grad_(True)
    value = laplace.soft_gaussian_evidence(J, target, S)
    (grad,) = torch.autograd.grad(value, S)
    eps = 1e-6
    numeric = np.zeros((n_items, r))
    for i in range(n_items):
        for g in range(r):
            E = torch.zeros(n_items, r, dtype=torch.float64)
            E[i, g] = eps
            numeric[i, g] = float(laplace.soft_gaussian_evidence(J, target, S.detach() + E)
                                  - laplace.soft_gaussian_evidence(J, target,
                                                                   S.detach() - E)) / (2 * eps)
    # the precisions are refitted at every S: the gradient is the partial one (envelope)
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-4, atol=1e-5)


def test_soft_evidence_at_a_hard_selection_is_the_hard_partitions_evidence():
    X, Y, labels = _tied_map_data(4)
    problem, w, S, Xt, Yt = _linear_problem(labels, X, Y)
    hard, _ = laplace.network_evidence(problem, w, S, Xt, Yt, loss="mse", structure="full")
    J, target = laplace.item_linearisation(problem, w, S, Xt, Yt)
    assert float(laplace.soft_gaussian_evidence(J, target, S)) == pytest.approx(hard, rel=1e-9)


@pytest.mark.slow
def test_relaxations_of_the_evidence_run_where_the_curvature_is_full():
    X, y, reference = make_sum_of_numbers(400, length=4, variant="alternating", random_state=1)
    est = NetworkSharingDiscoverer("sequence", objective="evidence", loss="mse", n_restarts=1,
                                   max_iter=30, reference=reference, random_state=1,
                                   **SMALL).fit(X, y)
    np.testing.assert_array_equal(est.sharing_partition_, [0, 1, 0, 1])
    # one relaxation and the start's search, both scored by the evidence
    assert len(est.restart_objectives_) == 2 and np.isfinite(est.restart_objectives_).all()
    # where only the diagonal fits, or for the classifier, relaxations are refused before
    # training
    for est in (NetworkSharingDiscoverer("sequence", objective="evidence", loss="mse",
                                         hessian_structure="diag", n_restarts=1, **SMALL),
                NetworkSharingClassifier("sequence", objective="evidence", n_restarts=1,
                                         **SMALL)):
        with pytest.raises(ValueError, match="n_restarts must be 0 or 'auto', got 1"):
            est.fit(X, (y > np.median(y)) if is_classifier(est) else y)


class _Hidden(nn.Module):
    """A one-hidden-layer ReLU network whose first layer's entries are tied."""

    def __init__(self, d=6, hidden=5, n_out=3):
        super().__init__()
        self.first = nn.Linear(d, hidden, bias=False)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.out(torch.relu(self.first(x)))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_blocks_of_samples_give_the_curvature_of_all_samples_at_once(loss):
    rng = np.random.default_rng(5)
    X = torch.tensor(rng.standard_normal((70, 6)))
    y = (torch.tensor(rng.standard_normal((70, 3))) if loss == "mse"
         else torch.tensor(rng.integers(0, 3, size=70)))
    labels = rng.integers(0, 4, size=30)
    S = torch.as_tensor(labels_to_selection(labels, sparse=False), dtype=torch.float64)
    torch.manual_seed(0)
    problem = TiedNetworkProblem(_Hidden().double(), {"first.weight": None}, S, X, y, X, y,
                                 loss=loss)
    w = problem.initial_vector()

    def outputs(values, Xb):
        return problem._shape(torch.func.functional_call(problem.module, values, (Xb,)))

    whole = laplace.ggn_statistics(problem, w, S, X, y, loss=loss, structure="full")
    # the items' linearisation (the relaxation's, Gaussian likelihood only)
    item_J, item_target = laplace.item_linearisation(problem, w, S, X, y) if loss == "mse" \
        else (None, None)
    # a budget of a few blocks' passes: the samples are split, and nothing changes
    params = dict(problem.module.named_parameters())
    assert 1 < laplace._jacobian_block(outputs, params, X, 30, block_entries=4000) < 70
    blocked = laplace.ggn_statistics(problem, w, S, X, y, loss=loss, structure="full",
                                     block_entries=4000)
    for key, value in whole.items():
        np.testing.assert_allclose(np.asarray(blocked[key]), np.asarray(value), rtol=1e-12)
    if loss != "mse":
        return
    J, target = laplace.item_linearisation(problem, w, S, X, y, block_entries=4000)
    np.testing.assert_allclose(J.numpy(), item_J.numpy(), rtol=1e-12)
    np.testing.assert_allclose(target.numpy(), item_target.numpy(), rtol=1e-12)


def test_the_block_shrinks_as_passes_grow():
    # more outputs, more saved entries per sample or more tied entries: fewer samples a block
    X = torch.zeros(10_000, 4)

    def outputs(width, n_out):
        def f(values, Xb):
            return (Xb.sum(1, keepdim=True) * values["v"]).repeat(1, width)[:, :n_out] ** 2
        return f

    values = {"v": torch.ones(3)}
    base = laplace._jacobian_block(outputs(10, 2), values, X, 100)
    assert laplace._jacobian_block(outputs(10, 8), values, X, 100) < base
    assert laplace._jacobian_block(outputs(10, 2), values, X, 10**6) < base
    assert laplace._jacobian_block(outputs(10, 2), values, X[:5], 100) == 5
