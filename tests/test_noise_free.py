"""Noise-free data: an exact map is found whatever the seed, and the objective scores every
sharing that explains the data alike instead of fitting the rounding of its statistics."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from sharelearn import SharingDiscoverer
from sharelearn.datasets import _image_patches
from sharelearn.models.gaussian import diagonal_solve, ridge_solve


def _sobel_on_patches(n=400, shape=(10, 10)):
    """Photo patches through scipy's circular Sobel filter, no noise added; the true sharing
    from the filter's map (equal values, one group)."""
    X = _image_patches(n, shape, np.random.default_rng(0))

    def sobel(image):
        return ndimage.sobel(image.reshape(shape), axis=0, mode="wrap").ravel()

    Y = np.stack([sobel(x) for x in X])
    W = np.stack([sobel(e) for e in np.eye(X.shape[1])], 1)
    _, truth = np.unique(W.ravel(), return_inverse=True)
    return X, Y, truth


def _refinements(truth, n, seed=0):
    """Partitions that split groups of ``truth`` at random: each explains the data as exactly."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lab = truth.copy()
        for group in rng.choice(truth.max() + 1, 2, replace=False):
            members = np.flatnonzero(lab == group)
            lab[members[rng.random(members.size) < 0.5]] = lab.max() + 1
        out.append(lab)
    return out


@pytest.mark.parametrize("diagonal", [False, True])
def test_solve_leaves_a_small_group_exact_beside_a_large_one(diagonal):
    # a consistent system whose groups differ in size by 1e6, as a convolution's zeros and one
    # of its taps: the jitter must not shrink the small group's value by the large one's size
    g = torch.tensor([[4e8, 3e2, 0.0]], dtype=torch.float64)  # the last: an empty group
    psi = torch.tensor([[0.0, 1.5, 0.0]], dtype=torch.float64)
    c = g * psi
    if diagonal:
        found = diagonal_solve(g, c, 0.0)
    else:
        found = ridge_solve(torch.diag_embed(g), c, 0.0)
    assert torch.all(torch.isfinite(found))
    np.testing.assert_allclose(found.numpy(), psi.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_every_exact_sharing_scores_the_same_data_term(build):
    X, Y, truth = _sobel_on_patches()
    problem = build.problem_of(X, Y)
    objective = build.hard_objective(problem)

    def data_term(labels):
        state = objective.state(labels)
        return state.value - float(objective.penalty_term(state.sizes)), state.value

    data, value = data_term(truth)
    for labels in _refinements(truth, 4):
        refined_data, refined_value = data_term(labels)
        # each fits the noise-free data as exactly as the truth: only the penalties differ
        assert refined_data == pytest.approx(data, rel=1e-12)
        assert refined_value > value
    # and a sharing that does not explain the data scores worse
    merged = np.where(truth == truth.max(), truth.max() - 1, truth)
    assert data_term(merged)[0] > data + 1000


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.slow
def test_an_exact_filter_is_found_whatever_the_seed(seed):
    X, Y, truth = _sobel_on_patches()
    disc = SharingDiscoverer(model="linear", reference=truth, random_state=seed).fit(X, Y)
    assert disc.score(X) == 0  # partition distance to the filter's sharing
    assert disc.n_groups_ == truth.max() + 1


def test_noise_keeps_its_objective(build):
    # with 5% noise the floor is never reached: the data term is N log(validation MSE)
    X, Y, truth = _sobel_on_patches()
    Y = Y + 0.05 * Y.std() * np.random.default_rng(1).standard_normal(Y.shape)
    problem = build.problem_of(X, Y)
    state = build.hard_objective(problem).state(truth)
    mse = float(state.mse.mean())
    assert mse > 1e3 * problem.mse_floor
    data = state.value - float(build.hard_objective(problem).penalty_term(state.sizes))
    assert data == pytest.approx(problem.n_obs_train * np.log(mse), rel=1e-12)
