"""The closed-form models (sharelearn.models.closed_form, .gaussian): the relaxed data term,
the hard objectives and their exact deltas, the expected-loss relaxation."""

import numpy as np
import pytest
import torch

from sharelearn.models.gaussian import TiedLinearGaussian
from sharelearn.partition import canonical_labels


@pytest.mark.parametrize("make", ["conv_problem", "means_problem"], ids=["linear", "mean"])
@pytest.mark.parametrize("kind", ["nuclear", "column"])
def test_hypergradient_matches_finite_differences(build, make, kind):
    make = getattr(build, make)
    problem, _ = make()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(problem.n_items, 4, generator=gen, dtype=torch.float64)

    def f(Z):
        return build.relaxed_objective(problem, torch.softmax(Z, 1), nuclear_kind=kind,
                                       **build.PENALTIES)

    Z = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(Z), Z)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(8):
        i, j = rng.integers(problem.n_items), rng.integers(4)
        Zp, Zm = logits.clone(), logits.clone()
        Zp[i, j] += eps
        Zm[i, j] -= eps
        fd = (f(Zp) - f(Zm)).item() / (2 * eps)
        # central differences in float64: relative agreement to 1e-5
        assert fd == pytest.approx(grad[i, j].item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("make", ["conv_problem", "means_problem"], ids=["linear", "mean"])
def test_relaxed_objective_equals_search_objective_at_hard_partitions(build, make):
    make = getattr(build, make)
    problem, truth = make()
    objective = build.hard_objective(problem)
    rng = np.random.default_rng(1)
    for labels in (truth, rng.integers(0, 3, problem.n_items), np.arange(problem.n_items)):
        labels = canonical_labels(labels)
        S = build.one_hot(labels, labels.max() + 2)  # one spare empty column, as the search keeps
        soft = build.relaxed_objective(problem, S, **build.PENALTIES).item()
        assert soft == pytest.approx(objective.state(labels).value, rel=1e-10)


def test_shared_means_evidence_is_one_objective_whatever_the_data_offset(build):
    # the shared means' evidence integrates their common level out: relaxation and search agree
    # at hard partitions, and neither changes when every feature moves by one offset
    from sharelearn.models import SharedMeans
    from sharelearn.penalties import Penalties

    Xd, X = build.means_problem(K=5, r=2, n=30, seed=1, return_data=True)
    values = []
    for shift in (0.0, 40.0):
        problem = build.problem_of(Xd, X + shift, fit_intercept=False)
        model = SharedMeans.on_problem(problem, objective="evidence")
        objective = model.hard_objective(Penalties.from_params())
        row = []
        for labels in ([0, 0, 0, 0, 0], [0, 0, 1, 1, 0], [0, 1, 2, 1, 0]):
            labels = canonical_labels(np.array(labels))
            hard = objective.state(labels).value
            soft = model.relaxed_data_term(build.one_hot(labels, labels.max() + 2)).item()
            assert soft == pytest.approx(hard, rel=1e-10)
            row.append(hard)
        values.append(row)
    np.testing.assert_allclose(values[1], values[0], rtol=1e-9)


def test_soft_rows_cost_fit_in_the_expected_loss_relaxation(build):
    # Half-way between two groups with different values is worse than either hard choice.
    problem, truth = build.means_problem(K=2, r=2, n=200)
    hard = build.one_hot(truth, 2)
    soft = hard.clone()
    soft[0] = 0.5
    assert problem.validation_mse(soft) > problem.validation_mse(hard) + 0.5


def test_naive_relaxation_is_indifferent_to_sharing_but_expected_loss_is_not(build):
    # A soft A with as many columns as items, inner problem solved exactly in psi with W = A psi:
    # a generic A is invertible, so it fits like the unshared model whatever A is. The expected
    # loss of the same A is far above the unshared model's: it feels the pull of sharing.
    problem, truth = build.conv_problem(n_in=5, k=3, n=150)
    P = problem.n_items
    gen = torch.Generator().manual_seed(3)
    A = torch.softmax(torch.randn(P, P, generator=gen, dtype=torch.float64) * 2, 1)

    def naive_mse(S):
        # the same statistics, without the variance term of the expected loss
        CS = problem.times_C(S, problem.C_tr)
        G = S.T @ CS
        psi = torch.linalg.solve(G + 1e-9 * torch.eye(S.shape[1], dtype=G.dtype), problem.b_tr @ S)
        W = (psi @ S.T).reshape(problem.n_splits, problem.n_outputs, problem.n_inputs)
        fit = problem.yy_va - 2 * (W * problem.B_va.transpose(1, 2)).sum((1, 2))
        fit = fit + ((W @ problem.C_va) * W).sum((1, 2))
        return float((fit / problem.norm_va).mean())

    unshared = float(problem.validation_mse(torch.eye(P, dtype=torch.float64)))
    assert naive_mse(A) == pytest.approx(unshared, rel=1e-3)
    assert float(problem.validation_mse(A)) > 10 * unshared


def test_exact_move_and_merge_scores_equal_recomputed_objectives(build):
    problem, truth = build.conv_problem(n_in=6, k=3, n=40, seed=2)
    objective = build.hard_objective(problem, 2.0, 2.0)
    labels = canonical_labels(np.random.default_rng(0).integers(0, 4, problem.n_items))
    st = objective.state(labels)
    items = torch.arange(0, problem.n_items, 3)
    targets = (st.lab_t[items] + 1) % st.R
    change = objective.exact_moves(st, items, targets)
    for q in range(len(items)):
        moved = labels.copy()
        moved[int(items[q])] = int(targets[q])
        assert change[q].item() == pytest.approx(
            objective.state(moved).value - st.value, abs=1e-6)
    change, pairs = objective.exact_merges(st)
    for q, (a, b) in enumerate(pairs.tolist()):
        merged = labels.copy()
        merged[merged == b] = a
        assert change[q].item() == pytest.approx(
            objective.state(merged).value - st.value, abs=1e-6)


@pytest.mark.parametrize("make", ["conv_problem", "means_problem"], ids=["linear", "mean"])
def test_expected_loss_equals_the_average_over_every_hard_assignment(build, make):
    # The relaxation's loss is the expectation over independent row draws of a hard S: check it
    # against that average, enumerated, for the general path and the one-input (mean) path.
    make = getattr(build, make)
    problem, _ = make()
    P, r = problem.n_items, 2
    gen = torch.Generator().manual_seed(1)
    S = torch.softmax(torch.randn(P, r, generator=gen, dtype=torch.float64), 1)
    psi = torch.randn(problem.n_splits, r, generator=gen, dtype=torch.float64)
    expected = torch.zeros(problem.n_splits, dtype=torch.float64)
    for code in range(r**P):
        labels = [(code // r**i) % r for i in range(P)]
        weight = torch.prod(S[torch.arange(P), labels])
        expected += weight * problem.expected_sse(build.one_hot(labels, r), psi)
    torch.testing.assert_close(problem.expected_sse(S, psi), expected, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("make", ["conv_problem", "means_problem"], ids=["linear", "mean"])
@pytest.mark.parametrize("objective", ["validation", "evidence"])
def test_a_batch_of_selection_matrices_gives_each_its_own_objective_and_gradient(build, make,
                                                                                 objective):
    make = getattr(build, make)
    problem, _ = make()
    if objective == "evidence":  # one "split" whose training part is all the data
        n = int(problem.n_tr[0] + problem.n_va[0])
        X, Y = make(return_data=True)
        everything = [(np.arange(n), np.arange(n))]
        problem = TiedLinearGaussian(torch.tensor(X), torch.tensor(Y), everything,
                                     fit_intercept=problem.fit_intercept, alpha=1e-6)
    gen = torch.Generator().manual_seed(2)
    Z = torch.randn(3, problem.n_items, 4, generator=gen, dtype=torch.float64)
    Z.requires_grad_(True)
    kw = dict(build.PENALTIES, objective=objective)
    batch = build.relaxed_objective(problem, torch.softmax(Z, -1), **kw)
    (grad,) = torch.autograd.grad(batch.sum(), Z)
    assert batch.shape == (3,)
    for i in range(3):
        Zi = Z[i].detach().clone().requires_grad_(True)
        one = build.relaxed_objective(problem, torch.softmax(Zi, -1), **kw)
        (gi,) = torch.autograd.grad(one, Zi)
        assert one.dim() == 0
        torch.testing.assert_close(batch[i].detach(), one.detach(), rtol=1e-7, atol=1e-7)
        torch.testing.assert_close(grad[i], gi, rtol=1e-6, atol=1e-7)


def test_ridge_solve_in_place_equals_the_copying_solve():
    from sharelearn.models.gaussian import ridge_solve

    gen = torch.Generator().manual_seed(0)
    A = torch.randn(3, 5, 6, 6, generator=gen, dtype=torch.float64)
    G = A @ A.transpose(-1, -2)
    c = torch.randn(3, 5, 6, generator=gen, dtype=torch.float64)
    expected = ridge_solve(G, c, 1e-3)
    G_before = G.clone()
    torch.testing.assert_close(ridge_solve(G.clone(), c, 1e-3, overwrite=True), expected,
                               rtol=0, atol=0)
    torch.testing.assert_close(G, G_before, rtol=0, atol=0)  # the default leaves G alone


@pytest.mark.parametrize("n, d, m", [(30, 8, 5), (12, 40, 3), (50, 1, 7)],
                         ids=["more-samples", "fewer-samples-than-inputs", "one-input"])
def test_hard_statistics_updated_from_a_nearby_partition_equal_fresh_ones(n, d, m):
    """The statistics a search state updates (a few items moved, groups merged, a group split)
    equal those computed from scratch, through C or through the samples."""
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.standard_normal((n, d)))
    Y = torch.tensor(rng.standard_normal((n, m)))
    idx = rng.permutation(n)
    splits = [(np.sort(idx[: n // 2 + f]), np.sort(idx[n // 2 + f:])) for f in range(3)]
    problem = TiedLinearGaussian(X, Y, splits, fit_intercept=True, alpha=0.0)
    assert (problem.X_parts is not None) == (n < d)
    through_C = TiedLinearGaussian(X, Y, splits, fit_intercept=True, alpha=0.0)
    through_C.X_parts = None
    P = m * d
    labels = canonical_labels(rng.integers(0, 4, P))
    R = int(labels.max()) + 2
    near = problem.hard_statistics(labels, R)
    near_state = type("State", (), {"lab_t": torch.as_tensor(labels), "CS": near["CS"],
                                    "CSv": near["CSv"]})()
    every = torch.arange(P)

    def dense(value):  # the products' rows of every item, as one F x P x R array
        return (value.rows(every) if hasattr(value, "rows") else value).numpy()

    kinds = {type(near["CS"]).__name__, type(through_C.hard_statistics(labels, R)["CS"]).__name__}
    assert kinds == ({"ProductsThroughSamples", "ProductsThroughC"} if n < d
                     else {"ProductsThroughC"})
    for key, value in through_C.hard_statistics(labels, R).items():
        np.testing.assert_allclose(dense(near[key]), dense(value), rtol=1e-12, atol=1e-12)
    full = dense(through_C.hard_statistics(labels, R)["CS"])
    # rows read one output row at a time (every item above; one row's items) or gathered
    # item by item (a few items of several rows)
    for items in (torch.arange(d, 2 * d), torch.as_tensor(np.sort(rng.choice(P, 5, False)))):
        np.testing.assert_allclose(near["CS"].rows(items).numpy(), full[:, items.numpy()],
                                   rtol=1e-12, atol=1e-12)
    psi = torch.tensor(rng.standard_normal((3, R)))
    whole = (torch.as_tensor(dense(near["CS"])) @ psi[..., None])[..., 0]
    np.testing.assert_allclose(near["CS"].times(psi).numpy(), whole, rtol=1e-12, atol=1e-12)
    part = slice(d // 2 + 1, P - d - 1)  # from inside the first row to inside a later one
    np.testing.assert_allclose(near["CS"].times(psi, part).numpy(), whole[:, part],
                               rtol=1e-12, atol=1e-12)
    moved = labels.copy()
    moved[rng.integers(0, P, 3)] = rng.integers(0, R, 3)
    merged = np.where(labels == 1, 0, labels)
    split = labels.copy()
    split[rng.choice(np.flatnonzero(labels == 2), 2, replace=False)] = R - 1
    for new in (moved, merged, split):
        new = canonical_labels(new)
        R_new = int(new.max()) + 2
        fresh = through_C.hard_statistics(new, R_new)
        updated = problem.hard_statistics(new, R_new, near=near_state)
        for key in fresh:
            np.testing.assert_allclose(dense(updated[key]), dense(fresh[key]), rtol=1e-10,
                                       atol=1e-10)
