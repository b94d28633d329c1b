"""Moves scored from one inverse by low-rank updates (``sharelearn._linalg``): they agree with
solving each moved system, and the searches that screen with them make the exact choices."""

import numpy as np
import pytest
import torch

from sharelearn._linalg import moved_solutions, moved_squared_errors, ridge_solve, spare_inverse
from sharelearn.search.coarsening import HypothesisBlocks, SharingFamily
from sharelearn.search.moves import exact_move_changes
from sharelearn.symmetry import shift_sharing


def _blocks(K=7, R=4, F=2, seed=0):
    """Random block normal equations (``F x K x K``, training and validation) and an
    assignment of the ``K`` blocks to ``R - 1`` groups with one group of a single block."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        Z = rng.standard_normal((F, 3 * K, K))
        out += [torch.tensor(Z.transpose(0, 2, 1) @ Z), torch.tensor(rng.standard_normal((F, K)))]
    a = np.array([0, 0, 1, 1, 1, 2, 0][:K])  # group 2 holds block 5 alone
    return (*out, a, R)


def _grouped(GH, cH, a, R):
    B = torch.zeros(a.size, R, dtype=GH.dtype)
    B[np.arange(a.size), a] = 1
    return B.T @ GH @ B, cH @ B


def _solve_each(GH, cH, GHv, cHv, assignments, R, alpha):
    """Solutions and validation squared errors (less ``||y||^2``) of each assignment, solved."""
    sols, sses = [], []
    for a in assignments:
        G, c = _grouped(GH, cH, a, R)
        Gv, cv = _grouped(GHv, cHv, a, R)
        psi = ridge_solve(G, c, alpha)
        sols.append(psi)
        sses.append(-2 * (psi * cv).sum(-1) + (psi[..., None, :] @ Gv @ psi[..., None])[..., 0, 0])
    return torch.stack(sols), torch.stack(sses)


@pytest.mark.parametrize("kind", ["to a group", "to the spare", "emptying", "merge"])
def test_moved_solutions_agree_with_solving_each_moved_system(kind):
    GH, cH, GHv, cHv, a, R = _blocks()
    alpha = 1e-6
    G, c = _grouped(GH, cH, a, R)
    Gv, cv = _grouped(GHv, cHv, a, R)
    if kind == "merge":  # group 2 (block 5) into group 0, as a move of the whole group
        s, t = torch.tensor([2, 1]), torch.tensor([0, 0])
        m, g, v = G[:, s].transpose(0, 1), G[:, s, s].T, c[:, s].T
        mv, gv, vv = Gv[:, s].transpose(0, 1), Gv[:, s, s].T, cv[:, s].T
        moved = [np.where(a == 2, 0, a), np.where(a == 1, 0, a)]
        emptied = torch.ones(2, dtype=torch.bool)
    else:
        b = {"to a group": [0, 3], "to the spare": [0, 2], "emptying": [5, 5]}[kind]
        t = {"to a group": [1, 2], "to the spare": [R - 1, R - 1], "emptying": [0, 1]}[kind]
        b, t = torch.tensor(b), torch.tensor(t)
        s = torch.as_tensor(a)[b]
        B = torch.zeros(a.size, R, dtype=GH.dtype)
        B[np.arange(a.size), a] = 1
        m, mv = (GH @ B)[:, b].transpose(0, 1), (GHv @ B)[:, b].transpose(0, 1)
        g, gv, v, vv = GH[:, b, b].T, GHv[:, b, b].T, cH[:, b].T, cHv[:, b].T
        moved = []
        for bi, ti in zip(b.tolist(), t.tolist(), strict=True):
            moved.append(a.copy())
            moved[-1][bi] = ti
        emptied = torch.as_tensor(np.bincount(a, minlength=R))[s] == 1
    inv, psi, d0 = spare_inverse(G, c, alpha)
    sol = moved_solutions(inv, psi, d0, s, t, m, g, v, emptied)
    sse = moved_squared_errors(sol, s, t, Gv, cv, 0.0, mv, gv, vv)
    want_sol, want_sse = _solve_each(GH, cH, GHv, cHv, moved, R, alpha)
    np.testing.assert_allclose(sol.numpy(), want_sol.numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sse.numpy(), want_sse.numpy(), rtol=1e-8)
    if kind in ("emptying", "merge"):  # the emptied group's value is 0, as in the solve
        assert bool(emptied.all())
        assert float(sol[0, :, int(s[0])].abs().max()) < 1e-9


def _patch_objective(build, seed=0, shape=(6, 6)):
    from sharelearn.datasets import _image_patches

    rng = np.random.default_rng(seed)
    blocks = shift_sharing(shape, 3, "circular")
    values = rng.standard_normal(blocks.max() + 1) * (rng.random(blocks.max() + 1) < 0.3)
    W = values[blocks].reshape(int(np.prod(shape)), -1)
    X = _image_patches(200, shape, rng)
    Y = X @ W.T
    Y += 0.05 * Y.std() * rng.standard_normal(Y.shape)
    return build.hard_objective(build.problem_of(X, Y)), blocks


def test_approximate_moves_agree_with_exact_moves_and_keep_their_order_below_the_bar(build):
    objective, blocks = _patch_objective(build)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, blocks.size)
    st = objective.state(labels)
    items, targets = objective.best_screened(st, 300)
    exact = objective.exact_moves(st, items, targets)
    approx = objective.approximate_moves(st, items, targets)
    np.testing.assert_allclose(approx.numpy(), exact.numpy(), atol=1e-6 * abs(st.value))
    for q in (0.2, 0.6):
        bar = float(torch.quantile(exact, q))
        mixed = exact_move_changes(objective, st, items, targets, below=bar).numpy()
        below = exact.numpy() < bar
        assert 0 < below.sum() < below.size
        np.testing.assert_array_equal(mixed < bar, below)  # the same moves improve
        # in the same order as the exact changes
        np.testing.assert_array_equal(np.argsort(mixed[below], kind="stable"),
                                      np.argsort(exact.numpy()[below], kind="stable"))
        np.testing.assert_allclose(mixed, exact.numpy(), atol=1e-6 * abs(st.value))


def test_the_evidence_has_no_approximate_moves(build):
    X, Y = build.conv_problem(return_data=True)
    evidence = build.hard_objective(build.problem_of(X, Y), objective="evidence")
    st = evidence.state(np.zeros(X.shape[1] * Y.shape[1], dtype=np.int64))
    assert evidence.approximate_moves(st, torch.tensor([0]), torch.tensor([1])) is None


def test_screened_coarsening_rounds_choose_what_solving_every_candidate_chooses(build):
    objective, blocks = _patch_objective(build, seed=2)
    family = SharingFamily({"circular": blocks})
    screened = HypothesisBlocks(objective, family, 0)
    solved = HypothesisBlocks(objective, family, 0, screen=False)
    assert screened.screen and not solved.screen
    rng = np.random.default_rng(0)
    K = family.n_blocks(0)
    for a in [np.arange(K), rng.integers(0, 3, K), rng.integers(0, 12, K), np.zeros(K, int)]:
        a = np.unique(a, return_inverse=True)[1]
        value, choice = screened.best_candidate(a)
        want_value, want_choice = solved.best_candidate(a)
        assert value == want_value
        np.testing.assert_array_equal(choice, want_choice)


def test_screened_merges_choose_the_pair_that_solving_every_pair_chooses(build):
    from sharelearn.search.moves import best_merge

    objective, blocks = _patch_objective(build, seed=3)
    rng = np.random.default_rng(4)
    for n_groups in (20, 40):
        st = objective.state(rng.integers(0, n_groups, blocks.size))
        change, pairs = objective.exact_merges(st)
        want = int(torch.argmin(change))
        approx = objective.approximate_merges(st, pairs[:, 0], pairs[:, 1])
        np.testing.assert_allclose(approx.numpy(), change.numpy(), atol=1e-6 * abs(st.value))
        assert best_merge(objective, st) == (float(change[want]), int(pairs[want, 0]),
                                             int(pairs[want, 1]))
