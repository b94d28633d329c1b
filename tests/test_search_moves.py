"""The closed-form search (sharelearn.search, sharelearn.search.moves, sharelearn.search.starts)."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold

from sharelearn import partition_distance
from sharelearn.datasets import make_convolution
from sharelearn.models import LinearMap
from sharelearn.models.gaussian import TiedLinearGaussian
from sharelearn.penalties import Penalties
from sharelearn.search import local_search
from sharelearn.search.moves import (
    RowResolve,
    SignedSplit,
    UntiedSplit,
    closed_form_moves,
    row_beam,
)
from sharelearn.search.starts import untied_values


@pytest.mark.slow
def test_code_length_stops_the_search_from_fitting_noise_through_the_assignment(build):
    # 12 inputs, kernel 3: 120 entries, 90 of them structural zeros. Without the code length the
    # search splits the zeros into sub-groups chosen to fit validation noise: it finds a partition
    # with a better objective than the truth, far from it. With it, the truth is the optimum.
    X, Y, truth, _ = make_convolution(150, input_shape=12, kernel_size=3, random_state=0)
    problem = build.problem_of(X, Y)
    start = np.zeros(problem.n_items, dtype=int)
    without = build.hard_objective(problem, 2.0, 0.0)
    found, value, _, _ = local_search(without, start, closed_form_moves())
    assert value < without.state(truth).value
    assert partition_distance(found, truth) > 20
    with_code = build.hard_objective(problem, 2.0, 2.0)
    found, value, _, _ = local_search(with_code, start, closed_form_moves())
    assert partition_distance(found, truth) == 0


def _small_data_search(seed, without=()):
    """Valid convolution, 64 inputs, kernel 3, 20 samples (3,968 entries), evidence objective:
    the search from the shared partition, with the moves of the classes ``without`` left out.
    Returns the partition distance to the truth."""
    X, Y, truth, _ = make_convolution(20, input_shape=64, kernel_size=3, random_state=seed)
    model = LinearMap(objective="evidence")
    model.prepare(X, Y, None, dtype=torch.float64, device=torch.device("cpu"))
    objective = model.hard_objective(Penalties.from_params(nuclear=2.0, code_length=2.0))
    moves = [m for m in closed_form_moves(max_iter=1000) if not isinstance(m, tuple(without))]
    labels, _, _, _ = local_search(objective, np.zeros(model.n_items, dtype=int), moves,
                                   max_iter=1000)
    return partition_distance(labels, truth)


@pytest.mark.slow
def test_sign_blind_split_stalls_on_merged_groups_the_signed_split_recovers():
    # Seed 4: the search merges the taps 3 and 5 into one group of value 4 and the tap 1 into
    # the zeros. The items of the merged group want opposite changes (+1 and -1), so every new
    # group of the sign-blind split mixes them and keeps the value 4: the search stalls.
    # (The untied split, tried after it, recovers there too: both are left out to see it.)
    assert _small_data_search(4, without=(SignedSplit, UntiedSplit)) == 124
    assert _small_data_search(4, without=(SignedSplit,)) == 0
    assert _small_data_search(4) == 0


@pytest.mark.slow
def test_row_beam_recovers_where_greedy_search_leaves_wrong_rows():
    assert _small_data_search(7, without=(RowResolve,)) > 0
    assert _small_data_search(7) == 0


def test_greedy_regrowth_of_a_row_is_trapped_by_correlated_inputs_the_row_beam_is_not(build):
    # Seed 7, 20 samples: inputs 38 and 47 are correlated (r = 0.59), so with the rest of the
    # layer exact and row 45 reset, the best single entry for the value 5 is the wrong input 38,
    # and a greedy regrowth (beam of width 1) ends in a wrong row. A beam of 8 keeps the true row.
    X, Y, truth, _ = make_convolution(20, input_shape=64, kernel_size=3, random_state=7)
    rng = np.random.RandomState(7)
    kfold = KFold(5, shuffle=True, random_state=rng.randint(2**31))
    problem = TiedLinearGaussian(torch.tensor(X), torch.tensor(Y), list(kfold.split(X)),
                                 fit_intercept=True, alpha=1e-6)
    objective = build.hard_objective(problem, 2.0, 2.0)
    background = np.bincount(truth).argmax()
    start = truth.reshape(62, 64).copy()
    start[45] = background
    st = objective.state(start.ravel())
    grad_t = objective.training_gradient(st)
    _, _, scale = objective.scoring_gradient(st, grad_t)
    f, sizes = objective.size_cost, st.sizes
    pen = f(sizes + 1) - f(sizes) + f(sizes[background] - 1) - f(sizes[background])
    scoring = (problem.C_va, problem.B_va.transpose(1, 2), st.psi, background, scale, pen)
    taps = [g for g in range(4) if g != background]
    greedy, _, _ = row_beam(st, 45, 1, scoring, taps)
    beam, gain, _ = row_beam(st, 45, 8, scoring, taps)
    true_row = truth.reshape(62, 64)[45]
    assert not np.array_equal(greedy, true_row) and greedy[38] != background
    np.testing.assert_array_equal(beam, true_row)
    assert gain < 0  # better than the reset row


def test_the_driver_stops_at_its_cap_and_says_so(build):
    problem, truth = build.conv_problem(n_in=6, k=3, n=60, seed=1)
    objective = build.hard_objective(problem)
    start = np.zeros(problem.n_items, dtype=int)
    labels, value, n_accepted, converged = local_search(objective, start, closed_form_moves(),
                                                        max_iter=1)
    assert (n_accepted, converged) == (1, False)
    assert value < objective.state(start).value
    labels, value, n_accepted, converged = local_search(objective, start, [], max_iter=5)
    assert (n_accepted, converged) == (0, True) and value == objective.state(start).value


class _Counting:
    """A move that counts its proposals and delegates them."""

    def __init__(self, move, counts):
        self.move, self.counts = move, counts

    def applies(self, objective):
        return self.move.applies(objective)

    def propose(self, objective, state):
        self.counts.append(state.labels.tobytes())
        return self.move.propose(objective, state)


@pytest.mark.slow
def test_a_search_stops_where_an_earlier_one_found_no_move(build):
    problem, _ = build.conv_problem(n_in=6, k=3, n=60, seed=1)
    objective = build.hard_objective(problem)
    start = np.zeros(problem.n_items, dtype=int)
    fixed = set()
    plain = local_search(objective, start, closed_form_moves())
    labels, value, n_accepted, converged = local_search(objective, start, closed_form_moves(),
                                                        fixed_points=fixed)
    assert converged and n_accepted > 0 and fixed == {labels.tobytes()}
    np.testing.assert_array_equal(labels, plain[0])
    assert (value, n_accepted) == plain[1:3]
    # searched again, the same path stops on reaching the known end: no move is tried there
    proposals = []
    again = local_search(objective, start, [_Counting(m, proposals) for m in closed_form_moves()],
                         fixed_points=fixed)
    np.testing.assert_array_equal(again[0], labels)
    assert again[1:] == (value, n_accepted, True)
    assert labels.tobytes() not in proposals
    # without the set, every move is tried once more at the end and none helps
    proposals.clear()
    local_search(objective, start, [_Counting(m, proposals) for m in closed_form_moves()])
    n_moves = sum(m.applies(objective) for m in closed_form_moves())
    assert proposals.count(labels.tobytes()) == n_moves


def test_untied_values_solve_each_rows_group_entries_jointly():
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


def test_rowwise_split_opens_a_group_of_one_entry_per_row(build):
    # The truth with one tap merged into the zeros, on smooth (AR 0.9) signals: the rowwise
    # split must open a group of at most one entry per row, and the objective must improve
    # towards the truth.
    from sharelearn.search.moves import RowwiseSplit

    X, Y, truth, _ = make_convolution(300, input_shape=16, kernel_size=3, random_state=0,
                                      correlation=0.9)
    problem = build.problem_of(X, Y)
    objective = build.hard_objective(problem)
    zero = np.bincount(truth).argmax()
    tap = next(g for g in range(truth.max() + 1) if g != zero)
    merged = np.where(truth == tap, zero, truth)
    state = objective.state(merged)
    new = RowwiseSplit().propose(objective, state)
    assert new is not None and new.value < state.value
    layout = new.labels.reshape(14, 16)
    opened = [g for g in np.unique(new.labels)
              if np.all(merged[new.labels == g] == zero) and (new.labels == g).sum() < 100]
    assert len(opened) == 1
    assert (layout == opened[0]).sum(1).max() == 1  # at most one entry per row
    assert partition_distance(new.labels, truth) < partition_distance(merged, truth)


class _Blocks:
    """A memory plan that lets ``n`` candidates be scored exactly at once."""

    def __init__(self, n):
        self.n = n

    def __call__(self, n_columns):  # the screen: all items at once
        return 2**62

    def candidates(self, n_columns, n_candidates):
        return min(self.n, n_candidates)


def test_pairs_come_in_blocks_in_the_order_of_all_pairs():
    from sharelearn.search.moves import _pair_blocks

    for r, block in [(2, 1), (5, 3), (7, 100), (9, 1), (12, 7)]:
        blocks = list(_pair_blocks(r, block, "cpu"))
        assert max(a.numel() for a, _ in blocks) <= block
        every = torch.triu_indices(r, r, offset=1)
        torch.testing.assert_close(torch.cat([a for a, _ in blocks]), every[0], rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([b for _, b in blocks]), every[1], rtol=0, atol=0)


@pytest.mark.parametrize("objective_kind", ["validation", "evidence"])
@pytest.mark.parametrize("kind", ["linear", "mean"])
def test_exact_scores_in_blocks_equal_the_scores_at_once(build, objective_kind, kind):
    from sharelearn.search.moves import best_merge, exact_move_changes

    problem, _ = (build.conv_problem(n_in=10, k=3, n=40, seed=1) if kind == "linear"
                  else build.means_problem(K=14, r=4, n=30))
    objective = build.hard_objective(problem, objective=objective_kind)
    labels = np.random.default_rng(0).integers(0, 7, size=problem.n_items)
    st = objective.state(labels)
    items = torch.arange(problem.n_items)
    targets = (st.lab_t + 1) % (st.R - 1)
    whole = objective.exact_moves(st, items, targets)
    change, pairs = objective.exact_merges(st)
    at_once = best_merge(objective, st)
    best = int(torch.argmin(change))
    assert at_once == (float(change[best]), int(pairs[best, 0]), int(pairs[best, 1]))
    objective.screen_block = _Blocks(4)
    # the evidence fits its precisions until the whole batch has converged (tol 1e-7)
    rtol = 0 if objective_kind == "validation" else 1e-6
    torch.testing.assert_close(exact_move_changes(objective, st, items, targets), whole,
                               rtol=rtol, atol=rtol)
    blocked = best_merge(objective, st)
    assert blocked[1:] == at_once[1:]
    assert blocked[0] == pytest.approx(at_once[0], rel=1e-12, abs=rtol)


@pytest.mark.slow
def test_a_search_in_blocks_finds_what_the_search_at_once_finds(build):
    problem, _ = build.conv_problem(n_in=5, k=3, n=40, seed=3)
    objective = build.hard_objective(problem)
    start = np.arange(problem.n_items)  # every item alone: merges and moves at many groups
    found, value, _, _ = local_search(objective, start, closed_form_moves(resets=False))
    objective.screen_block = _Blocks(10)
    blocked, blocked_value, _, _ = local_search(objective, start,
                                                closed_form_moves(resets=False))
    np.testing.assert_array_equal(blocked, found)
    assert blocked_value == pytest.approx(value, rel=1e-12)
