"""The discovery engine: exact hypergradients, one objective for relaxation and search, and the
evidence for each design choice (where it fails without its ingredient, and succeeds with it)."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.bilevel import relaxed_objective
from sharelearn.datasets import make_convolution, make_shared_means
from sharelearn.inner import TiedLinearGaussian
from sharelearn.partition import canonical_labels, labels_to_selection
from sharelearn.search import HardObjective, local_search

PENALTIES = dict(nuclear=2.0, code_length=2.0, entropy=0.1)


def _problem(X, Y, *, fit_intercept=True, n_splits=5, seed=0):
    splits = list(KFold(n_splits, shuffle=True, random_state=seed).split(X))
    return TiedLinearGaussian(torch.tensor(X), torch.tensor(Y), splits,
                              fit_intercept=fit_intercept, alpha=1e-6)


def _conv_problem(n_in=5, k=3, n=60, seed=0, return_data=False):
    X, Y, labels, _ = make_convolution(n, input_shape=n_in, kernel_size=k, random_state=seed)
    return (X, Y) if return_data else (_problem(X, Y), labels)


def _means_problem(K=4, r=2, n=40, seed=0, return_data=False):
    X, labels, _ = make_shared_means(n, n_features=K, n_groups=r, random_state=seed)
    if return_data:
        return np.ones((n, 1)), X
    return _problem(np.ones((n, 1)), X, fit_intercept=False), labels


def _one_hot(labels, n_columns):
    S = torch.zeros(len(labels), n_columns, dtype=torch.float64)
    S[np.arange(len(labels)), labels] = 1
    return S


@pytest.mark.parametrize("make", [_conv_problem, _means_problem], ids=["linear", "mean"])
@pytest.mark.parametrize("kind", ["nuclear", "column"])
def test_hypergradient_matches_finite_differences(make, kind):
    problem, _ = make()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(problem.n_items, 4, generator=gen, dtype=torch.float64)

    def f(Z):
        return relaxed_objective(problem, torch.softmax(Z, 1), nuclear_kind=kind, **PENALTIES)

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


@pytest.mark.parametrize("make", [_conv_problem, _means_problem], ids=["linear", "mean"])
def test_relaxed_objective_equals_search_objective_at_hard_partitions(make):
    problem, truth = make()
    objective = HardObjective(problem, PENALTIES["nuclear"], PENALTIES["code_length"])
    rng = np.random.default_rng(1)
    for labels in (truth, rng.integers(0, 3, problem.n_items), np.arange(problem.n_items)):
        labels = canonical_labels(labels)
        S = _one_hot(labels, labels.max() + 2)  # one spare empty column, as the search keeps
        soft = relaxed_objective(problem, S, **PENALTIES).item()
        assert soft == pytest.approx(objective.state(labels)["value"], rel=1e-10)


def test_soft_rows_cost_fit_in_the_expected_loss_relaxation():
    # Half-way between two groups with different values is worse than either hard choice.
    problem, truth = _means_problem(K=2, r=2, n=200)
    hard = _one_hot(truth, 2)
    soft = hard.clone()
    soft[0] = 0.5
    assert problem.validation_mse(soft) > problem.validation_mse(hard) + 0.5


def test_naive_relaxation_is_indifferent_to_sharing_but_expected_loss_is_not():
    # A soft A with as many columns as items, inner problem solved exactly in psi with W = A psi:
    # a generic A is invertible, so it fits like the unshared model whatever A is. The expected
    # loss of the same A is far above the unshared model's: it feels the pull of sharing.
    problem, truth = _conv_problem(n_in=5, k=3, n=150)
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


def test_exact_move_and_merge_scores_equal_recomputed_objectives():
    problem, truth = _conv_problem(n_in=6, k=3, n=40, seed=2)
    objective = HardObjective(problem, 2.0, 2.0)
    labels = canonical_labels(np.random.default_rng(0).integers(0, 4, problem.n_items))
    st = objective.state(labels)
    items = torch.arange(0, problem.n_items, 3)
    targets = (st["lab_t"][items] + 1) % st["R"]
    change = objective.exact_moves(st, items, targets)
    for q in range(len(items)):
        moved = labels.copy()
        moved[int(items[q])] = int(targets[q])
        assert change[q].item() == pytest.approx(
            objective.state(moved)["value"] - st["value"], abs=1e-6)
    change, pairs = objective.exact_merges(st)
    for q, (a, b) in enumerate(pairs.tolist()):
        merged = labels.copy()
        merged[merged == b] = a
        assert change[q].item() == pytest.approx(
            objective.state(merged)["value"] - st["value"], abs=1e-6)


def test_code_length_stops_the_search_from_fitting_noise_through_the_assignment():
    # 12 inputs, kernel 3: 120 entries, 90 of them structural zeros. Without the code length the
    # search splits the zeros into sub-groups chosen to fit validation noise: it finds a partition
    # with a better objective than the truth, far from it. With it, the truth is the optimum.
    X, Y, truth, _ = make_convolution(150, input_shape=12, kernel_size=3, random_state=0)
    problem = _problem(X, Y)
    start = np.zeros(problem.n_items, dtype=int)
    without = HardObjective(problem, 2.0, 0.0)
    found, value, _, _ = local_search(without, start)
    assert value < without.state(truth)["value"]
    assert partition_distance(found, truth) > 20
    with_code = HardObjective(problem, 2.0, 2.0)
    found, value, _, _ = local_search(with_code, start)
    assert partition_distance(found, truth) == 0


def test_relaxation_alone_fails_at_scale_where_the_search_recovers():
    X, Y, truth, _ = make_convolution(150, input_shape=12, kernel_size=3, random_state=1)
    common = dict(model="linear", reference=truth, random_state=0, n_restarts=1)
    relax_only = SharingDiscoverer(local_search=False, **common).fit(X, Y)
    assert relax_only.restart_objectives_[0] < relax_only.restart_objectives_[1]  # not useless
    assert -relax_only.score(X) > 5
    assert SharingDiscoverer(**common).fit(X, Y).score(X) == 0


def test_exact_recovery_of_a_small_convolution_and_shared_means():
    X, Y, truth, _ = make_convolution(150, input_shape=5, kernel_size=3, random_state=0)
    disc = SharingDiscoverer(model="linear", reference=truth, random_state=0).fit(X, Y)
    assert disc.score(X) == 0
    assert disc.n_groups_ == 4
    X, truth, means = make_shared_means(100, n_features=6, n_groups=3, random_state=4)
    disc = SharingDiscoverer(model="mean", reference=truth, random_state=0).fit(X)
    assert disc.score(X) == 0
    assert np.abs(disc.means_ - means).max() < 0.2


@pytest.mark.slow
def test_fewer_samples_than_inputs_clustering_fails_the_bilevel_objective_recovers():
    # valid convolution, 64 inputs, kernel 3 (3,968 entries), 40 samples: the untied map is not
    # identifiable; quantising its minimum-norm estimate into 4 values misses the scheme.
    from sklearn.cluster import KMeans

    X, Y, truth, _ = make_convolution(40, input_shape=64, kernel_size=3, random_state=0)
    W_untied = np.linalg.lstsq(X - X.mean(0), Y - Y.mean(0), rcond=None)[0].T
    km = KMeans(4, n_init=10, random_state=0).fit(W_untied.reshape(-1, 1))
    assert partition_distance(km.labels_, truth) > 100
    disc = SharingDiscoverer(model="linear", reference=truth, random_state=0).fit(X, Y)
    assert disc.score(X) == 0
    np.testing.assert_allclose(np.sort(np.unique(np.round(disc.coef_, 1))), [0, 1, 3, 5])


def test_selection_helpers_agree_with_fitted_matrices():
    X, truth, _ = make_shared_means(60, n_features=5, n_groups=2, random_state=0)
    disc = SharingDiscoverer(model="mean", random_state=0, n_restarts=1).fit(X)
    A = labels_to_selection(disc.sharing_partition_)
    np.testing.assert_array_equal(A, disc.selection_matrix_)
    np.testing.assert_allclose(A @ disc.shared_values_, disc.means_)


def _small_data_fit(seed, objective, monkeypatch=None, disable=()):
    """Valid convolution, 64 inputs, kernel 3, 20 samples (3,968 entries): search from the shared
    partition only, with some search moves switched off."""
    import sharelearn.search as search

    for name in disable:
        monkeypatch.setattr(search, name, lambda *args, **kwargs: None)
    X, Y, truth, _ = make_convolution(20, input_shape=64, kernel_size=3, random_state=seed)
    disc = SharingDiscoverer(model="linear", objective=objective, n_restarts=0, reference=truth,
                             random_state=seed).fit(X, Y)
    return disc, truth


def test_sign_blind_split_stalls_on_merged_groups_the_signed_split_recovers(monkeypatch):
    # Seed 4, evidence: the search merges the taps 3 and 5 into one group of value 4 and the tap 1
    # into the zeros. The items of the merged group want opposite changes (+1 and -1), so every
    # new group of the sign-blind split mixes them and keeps the value 4: the search stalls.
    # (The untied split, tried after it, recovers there too: both are switched off to see it.)
    disc, truth = _small_data_fit(4, "evidence", monkeypatch,
                                  ["_best_signed_split", "_best_untied_split"])
    assert disc.n_groups_ == 2 and disc.score(None) == -124
    monkeypatch.undo()
    disc, truth = _small_data_fit(4, "evidence", monkeypatch, ["_best_signed_split"])
    assert disc.score(None) == 0
    monkeypatch.undo()
    disc, truth = _small_data_fit(4, "evidence")
    assert disc.score(None) == 0


def test_greedy_regrowth_of_a_row_is_trapped_by_correlated_inputs_the_row_beam_is_not():
    # Seed 7, 20 samples: inputs 38 and 47 are correlated (r = 0.59), so with the rest of the
    # layer exact and row 45 reset, the best single entry for the value 5 is the wrong input 38,
    # and a greedy regrowth (beam of width 1) ends in a wrong row. A beam of 8 keeps the true row.
    import sharelearn.search as search

    X, Y, truth, _ = make_convolution(20, input_shape=64, kernel_size=3, random_state=7)
    rng = np.random.RandomState(7)
    kfold = KFold(5, shuffle=True, random_state=rng.randint(2**31))
    problem = TiedLinearGaussian(torch.tensor(X), torch.tensor(Y), list(kfold.split(X)),
                                 fit_intercept=True, alpha=1e-6)
    objective = HardObjective(problem, 2.0, 2.0)
    background = np.bincount(truth).argmax()
    start = truth.reshape(62, 64).copy()
    start[45] = background
    st = objective.state(start.ravel())
    grad_t = (st["CS"] @ st["psi"][..., None])[..., 0] - problem.b_tr
    _, _, scale = objective._scoring_gradient(st, grad_t)
    f, sizes = objective._size_cost, st["sizes"]
    pen = f(sizes + 1) - f(sizes) + f(sizes[background] - 1) - f(sizes[background])
    scoring = (problem.C_va, problem.B_va.transpose(1, 2), st["psi"], background, scale, pen)
    taps = [g for g in range(4) if g != background]
    greedy, _, _ = search._row_beam(st, 45, 1, scoring, taps)
    beam, gain, _ = search._row_beam(st, 45, 8, scoring, taps)
    true_row = truth.reshape(62, 64)[45]
    assert not np.array_equal(greedy, true_row) and greedy[38] != background
    np.testing.assert_array_equal(beam, true_row)
    assert gain < 0  # better than the reset row


def test_row_beam_recovers_where_greedy_search_leaves_wrong_rows(monkeypatch):
    disc, _ = _small_data_fit(7, "evidence", monkeypatch, ["_resolve_rows"])
    assert disc.score(None) < 0
    monkeypatch.undo()
    disc, _ = _small_data_fit(7, "evidence")
    assert disc.score(None) == 0


@pytest.mark.parametrize("make", [_conv_problem, _means_problem], ids=["linear", "mean"])
def test_expected_loss_equals_the_average_over_every_hard_assignment(make):
    # The relaxation's loss is the expectation over independent row draws of a hard S: check it
    # against that average, enumerated, for the general path and the one-input (mean) path.
    problem, _ = make()
    P, r = problem.n_items, 2
    gen = torch.Generator().manual_seed(1)
    S = torch.softmax(torch.randn(P, r, generator=gen, dtype=torch.float64), 1)
    psi = torch.randn(problem.n_splits, r, generator=gen, dtype=torch.float64)
    expected = torch.zeros(problem.n_splits, dtype=torch.float64)
    for code in range(r**P):
        labels = [(code // r**i) % r for i in range(P)]
        weight = torch.prod(S[torch.arange(P), labels])
        expected += weight * problem.expected_sse(_one_hot(labels, r), psi)
    torch.testing.assert_close(problem.expected_sse(S, psi), expected, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("make", [_conv_problem, _means_problem], ids=["linear", "mean"])
@pytest.mark.parametrize("objective", ["validation", "evidence"])
def test_a_batch_of_selection_matrices_gives_each_its_own_objective_and_gradient(make,
                                                                                 objective):
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
    kw = dict(PENALTIES, objective=objective)
    batch = relaxed_objective(problem, torch.softmax(Z, -1), **kw)
    (grad,) = torch.autograd.grad(batch.sum(), Z)
    assert batch.shape == (3,)
    for i in range(3):
        Zi = Z[i].detach().clone().requires_grad_(True)
        one = relaxed_objective(problem, torch.softmax(Zi, -1), **kw)
        (gi,) = torch.autograd.grad(one, Zi)
        assert one.dim() == 0
        torch.testing.assert_close(batch[i].detach(), one.detach(), rtol=1e-7, atol=1e-7)
        torch.testing.assert_close(grad[i], gi, rtol=1e-6, atol=1e-7)


def test_restarts_relaxed_together_match_each_relaxed_alone():
    from sharelearn.bilevel import relax

    problem, _ = _conv_problem(n_in=6, k=3, n=40, seed=3)
    params = dict(n_columns=6, max_iter=60, learning_rate=0.3, temperature=(1.0, 0.05),
                  tol=1e-4, n_iter_no_change=10,
                  penalties=dict(PENALTIES, nuclear_kind="nuclear", objective="validation"))
    seeds = [11, 12, 13, 14]
    together = relax(problem, seeds, **params)
    steps = {n_iter for _, _, n_iter in together}
    assert len(steps) > 1  # the restarts stop at different steps: each leaves the batch alone
    for seed, (soft, curve, n_iter) in zip(seeds, together, strict=True):
        [(soft1, curve1, n_iter1)] = relax(problem, [seed], **params)
        assert n_iter == n_iter1 == len(curve)
        np.testing.assert_allclose(curve, curve1, rtol=1e-9)
        np.testing.assert_allclose(soft, soft1, atol=1e-9)


def test_each_start_ends_where_its_own_search_would():
    # discover() searches each distinct rounded partition once and does not search again from
    # where an earlier search converged: every start must still report its own search's result.
    from sharelearn.bilevel import discover

    problem, _ = _means_problem(K=6, r=3, n=60, seed=0)
    objective = HardObjective(problem, 2.0, 2.0)
    results = discover(problem, objective, [1, 2, 3], n_relax=3, batch_size=3,
                       search=True, search_max_iter=100, n_columns=6, max_iter=100,
                       learning_rate=0.3, temperature=(1.0, 0.05), tol=1e-4,
                       n_iter_no_change=10,
                       penalties=dict(PENALTIES, nuclear_kind="nuclear", objective="validation"))
    assert [r["start"] for r in results] == ["relax"] * 3 + ["shared"]
    rounded = {r["rounded"].tobytes() for r in results}
    ends = {r["labels"].tobytes() for r in results}
    assert rounded & ends  # some start is where a search ended: the shortcut is exercised
    for r in results:
        labels, value, _, converged = local_search(objective, r["rounded"], max_iter=100)
        assert converged and r["converged"]
        np.testing.assert_array_equal(r["labels"], labels)
        assert r["value"] == value


def test_no_relaxation_steps_rounds_the_random_logits():
    from sharelearn.bilevel import relax

    problem, _ = _means_problem(K=4, r=2, n=60)
    [(soft, curve, n_iter)] = relax(
        problem, [7], n_columns=4, max_iter=0, learning_rate=0.3, temperature=(1.0, 0.05),
        tol=1e-4, n_iter_no_change=10,
        penalties=dict(PENALTIES, nuclear_kind="nuclear", objective="validation"))
    logits = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert n_iter == 0 and curve.size == 0
    np.testing.assert_allclose(soft, torch.softmax(logits / 0.05, 1).numpy())
    X, _, _ = make_shared_means(60, n_features=4, n_groups=2, random_state=0)
    est = SharingDiscoverer(max_iter=0, random_state=0).fit(X)  # and a fit goes through
    assert est.n_iter_ == 0


# -- correlated inputs: realistic signals and images -------------------------------------------
def _realistic(seed, **kwargs):
    return make_convolution(kernel="random", relative_noise=True, random_state=seed, **kwargs)


def _truth_objective(X, Y, truth, seed):
    """The estimator's objective of the true partition (same folds, through ``init``)."""
    return SharingDiscoverer(model="linear", init=truth, n_restarts=0, local_search=False,
                             random_state=seed).fit(X, Y).objective_


def test_smooth_signals_the_untied_split_recovers_a_merged_group():
    # AR(0.9) inputs, taps N(0, 1): the one-item and signed splits rate each entry at its
    # neighbours' fixed values, which on correlated inputs mostly measures their compensation;
    # the search stopped 125 units above the truth (partition distance 30). Fitting the group's
    # entries freely, row by row, finds the split.
    X, Y, truth, _ = _realistic(1, n_samples=200, input_shape=64, kernel_size=5,
                                correlation=0.9)
    disc = SharingDiscoverer(model="linear", reference=truth, random_state=1).fit(X, Y)
    assert disc.score(X) == 0
    assert disc.objective_ == pytest.approx(_truth_objective(X, Y, truth, 1), abs=1e-6)


def test_image_patches_the_shared_start_is_not_the_only_start():
    # 8 x 8 patches of photographs (cond(X^T X) ~ 1e5): from the fully shared partition no
    # single move, merge or split pays and the fit ended with one group, 9,600 units above the
    # truth. Two clusters of a ridge estimate start the search where the large taps are apart;
    # it ends below the truth (three taps are within one standard error of another: the
    # objective rightly merges them).
    X, Y, truth, _ = _realistic(0, n_samples=300, input_shape=(8, 8), kernel_size=3,
                                inputs="images")
    disc = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    assert disc.n_groups_ > 1
    assert disc.objective_ <= _truth_objective(X, Y, truth, 0)


def test_untied_values_solve_each_rows_group_entries_jointly():
    from sharelearn.search import untied_values

    X, Y, _, _ = make_convolution(60, input_shape=7, kernel_size=3, random_state=0)
    problem = TiedLinearGaussian(torch.tensor(X), torch.tensor(Y),
                                 [(np.arange(40), np.arange(40, 60))], fit_intercept=True,
                                 alpha=1e-6)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=5 * 7)
    values = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    items, free = untied_values(problem, labels, values, 1, ridge=0.0)
    # by hand: each row's entries of group 1 fitted by least squares, the others held fixed
    C, B = problem.C_tr[0].numpy(), problem.B_tr[0].numpy()
    W = values.numpy()[labels].reshape(5, 7)
    expected = {}
    for o in range(5):
        S = np.flatnonzero(labels.reshape(5, 7)[o] == 1)
        if S.size:
            others = np.where(labels.reshape(5, 7)[o] == 1, 0.0, W[o])
            sol = np.linalg.solve(C[np.ix_(S, S)], B[S, o] - C[S] @ others)
            expected.update({o * 7 + k: v for k, v in zip(S, sol, strict=True)})
    assert sorted(items.tolist()) == sorted(expected)
    np.testing.assert_allclose(free, [expected[i] for i in items], rtol=1e-8)
