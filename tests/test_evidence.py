"""The marginal-likelihood objective: closed form against numerical integration, recovery."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sharelearn import SharingDiscoverer
from sharelearn.datasets import make_convolution, make_shared_means
from sharelearn.evidence import fit_precisions, neg2_log_evidence
from sharelearn.models.gaussian import TiedLinearGaussian


def _tiny():
    # 2 inputs, 1 output, 6 samples; sharing: both entries in one group (r = 1) or apart (r = 2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2))
    y = X @ np.array([0.7, 0.5]) + 0.3 * rng.standard_normal(6)
    return X, y


@pytest.mark.parametrize("labels", [[0, 0], [0, 1]])
def test_closed_form_evidence_matches_numerical_integration(labels):
    X, y = _tiny()
    alpha, beta = 1.3, 4.0
    A = np.zeros((2, max(labels) + 1))
    A[[0, 1], labels] = 1
    Phi = X @ A

    def integrand(*psi):
        psi = np.array(psi)
        resid = y - Phi @ psi
        like = (beta / (2 * math.pi)) ** (len(y) / 2) * math.exp(-beta / 2 * resid @ resid)
        prior = (alpha / (2 * math.pi)) ** (len(psi) / 2) * math.exp(-alpha / 2 * psi @ psi)
        return like * prior

    bounds = [(-6, 6)] * A.shape[1]
    value, _ = integrate.nquad(integrand, bounds, opts={"epsabs": 1e-13, "epsrel": 1e-9})
    G = torch.tensor(Phi.T @ Phi)
    c = torch.tensor(Phi.T @ y)
    closed = neg2_log_evidence(G, c, torch.tensor(y @ y), len(y), torch.tensor(alpha),
                               torch.tensor(beta))
    assert closed.item() == pytest.approx(-2 * math.log(value), rel=1e-6)


def test_fitted_precisions_maximise_the_evidence():
    X, y = _tiny()
    G, c, yy = torch.tensor(X.T @ X), torch.tensor(X.T @ y), torch.tensor(y @ y)
    a, b = fit_precisions(G, c, yy, 6)
    best = neg2_log_evidence(G, c, yy, 6, a, b).item()
    for fa in (0.5, 0.9, 1.1, 2.0):
        for fb in (0.5, 0.9, 1.1, 2.0):
            assert neg2_log_evidence(G, c, yy, 6, a * fa, b * fb).item() >= best - 1e-9


def test_evidence_prefers_the_true_sharing_and_search_objective_matches_relaxation(build):
    X, Y, truth, _ = make_convolution(40, input_shape=6, kernel_size=3, random_state=0)
    everything = [(np.arange(40), np.arange(40))]
    problem = TiedLinearGaussian(torch.tensor(X), torch.tensor(Y), everything,
                                 fit_intercept=True, alpha=1e-6)
    objective = build.hard_objective(problem, 0.0, 0.0, objective="evidence")
    assert objective.state(truth).value < objective.state(np.arange(truth.size)).value
    assert objective.state(truth).value < objective.state(np.zeros(truth.size, int)).value

    S = torch.zeros(truth.size, truth.max() + 2, dtype=torch.float64)
    S[np.arange(truth.size), truth] = 1
    soft = build.relaxed_objective(problem, S, nuclear=0, code_length=0, entropy=0,
                                   objective="evidence").item()
    assert soft == pytest.approx(objective.state(truth).value, rel=1e-8)


def test_exact_recovery_with_the_evidence_objective():
    X, truth, _ = make_shared_means(20, n_features=6, n_groups=3, random_state=0)
    disc = SharingDiscoverer(objective="evidence", reference=truth, random_state=0).fit(X)
    assert disc.score(X) == 0
    assert disc.validation_loss_ is None and np.isfinite(disc.log_evidence_)
    X, Y, truth, _ = make_convolution(30, input_shape=8, kernel_size=3, random_state=0)
    disc = SharingDiscoverer(model="linear", objective="evidence", reference=truth,
                             random_state=0).fit(X, Y)
    assert disc.score(X) == 0


def test_log_evidence_is_reported_for_the_validation_objective_too():
    X, truth, _ = make_shared_means(40, n_features=4, n_groups=2, random_state=0)
    disc = SharingDiscoverer(random_state=0, n_restarts=1).fit(X)
    ev = SharingDiscoverer(objective="evidence", random_state=0, n_restarts=1).fit(X)
    assert np.isfinite(disc.log_evidence_)
    np.testing.assert_array_equal(disc.sharing_partition_, ev.sharing_partition_)
    assert disc.log_evidence_ == pytest.approx(ev.log_evidence_)


def test_log_evidence_on_access_equals_the_evidence_objective_of_the_partition(build):
    import pickle

    X, Y, _, _ = make_convolution(60, input_shape=6, kernel_size=3, random_state=0)
    disc = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    everything = [(np.arange(60), np.arange(60))]
    problem = TiedLinearGaussian(torch.tensor(X), torch.tensor(Y), everything,
                                 fit_intercept=True, alpha=disc.alpha)
    evidence = build.hard_objective(problem, 0.0, 0.0, objective="evidence")
    expected = -0.5 * evidence.state(disc.sharing_partition_).value
    restored = pickle.loads(pickle.dumps(disc))
    assert disc.log_evidence_ == pytest.approx(expected, rel=1e-9)
    assert restored.log_evidence_ == pytest.approx(expected, rel=1e-9)


def _level_marginal(X, labels, alpha, beta):
    """``-2 log`` of the shared means' evidence with a flat prior on their common level, by
    numerical integration over the level (the groups' values integrate out as Gaussians)."""
    n, K = X.shape
    y = X.reshape(-1)  # sample-major, as the features of each sample follow each other
    Z = np.tile(np.eye(max(labels) + 1)[labels], (n, 1))
    cov = np.eye(n * K) / beta + Z @ Z.T / alpha
    inv, (_, logdet) = np.linalg.inv(cov), np.linalg.slogdet(cov)

    def density(mu):
        r = y - mu
        return math.exp(-0.5 * (r @ inv @ r + logdet + n * K * math.log(2 * math.pi)))

    ones = np.ones(n * K)
    centre = float(ones @ inv @ y / (ones @ inv @ ones))  # where the density peaks
    value, _ = integrate.quad(density, centre - 50, centre + 50, epsabs=0, epsrel=1e-12,
                              points=[centre], limit=200)
    return -2 * math.log(value)


@pytest.mark.parametrize("offset", [0.0, 7.0])
def test_shared_means_evidence_integrates_their_common_level(offset):
    # the objective's evidence of shared means against the common level integrated numerically:
    # equal up to one constant for every sharing, and whatever offset the data have
    from sharelearn.evidence import integrate_level

    rng = np.random.default_rng(0)
    X = np.array([0.0, 0.4, 1.1]) + offset + rng.standard_normal((4, 3))
    n, K = X.shape
    alpha, beta = 0.8, 1.7
    gaps = []
    for labels in ([0, 0, 0], [0, 0, 1], [0, 1, 2]):
        lab = np.array(labels)
        size = np.bincount(lab).astype(float)
        G = torch.tensor(np.diag(n * size))
        c = torch.tensor(np.bincount(lab, weights=X.sum(0)))
        yy = torch.tensor((X**2).sum(), dtype=torch.float64)
        G, c, yy, n_obs, _ = integrate_level(G, c, yy, n * K)
        precisions = torch.tensor([alpha, beta], dtype=torch.float64)
        closed = neg2_log_evidence(G, c, yy, n_obs, *precisions)
        gaps.append(float(closed) - _level_marginal(X, labels, alpha, beta))
    # the constant, -log N: the level's design (a column of N ones) left out of the contrasts
    np.testing.assert_allclose(gaps, -math.log(n * K), atol=1e-9)


@pytest.mark.parametrize("seed", [30, 56, 68])
def test_shared_means_evidence_keeps_two_groups_the_data_tell_apart(seed):
    # K = 5 means in two groups one noise level apart, 20 samples: the evidence of the centred
    # data with a zero-mean prior charged a second group for the level as well, and merged both
    # groups on these draws (65 of 100 draws exact; integrating the level: 74, before the data
    # were centred: 72)
    X, truth, _ = make_shared_means(20, n_features=5, n_groups=2, spacing=1.0,
                                    random_state=seed)
    disc = SharingDiscoverer(objective="evidence", reference=truth, random_state=seed).fit(X)
    assert disc.n_groups_ == 2
    assert disc.score(X) == 0
    # the answer and its evidence do not depend on the data's origin
    moved = SharingDiscoverer(objective="evidence", random_state=seed).fit(X + 1e3)
    np.testing.assert_array_equal(moved.sharing_partition_, disc.sharing_partition_)
    assert moved.log_evidence_ == pytest.approx(disc.log_evidence_, rel=1e-9)
