"""The memory budget of closed-form fits (sharelearn._memory, ClosedFormModel.memory_need,
MemoryPlan): refusals before any work, and the blocks the search and the relaxation work in.

What a fit does is observed through an injected model type: a subclass of the model registered
as the estimator's ``model`` name (the registry of model types, ``CLOSED_FORM_MODELS``), whose
public methods record their calls, or those of its hard objectives."""

import warnings

import numpy as np
import pytest
import torch

from sharelearn import SharingDiscoverer
from sharelearn._memory import format_bytes, resolve_budget
from sharelearn.datasets import make_convolution, make_shared_means
from sharelearn.models import CLOSED_FORM_MODELS, LinearMap, SharedMeans

CPU = torch.device("cpu")


def inject(monkeypatch, model_type):
    """Fit ``model_type`` (a subclass of a registered model) where the estimator is asked for
    its base's name."""
    monkeypatch.setitem(CLOSED_FORM_MODELS, model_type.name, model_type)


class Unprepared(LinearMap):
    """A linear map that fails the test when a fit prepares it (builds its problem's
    statistics): a refusal must come first."""

    def prepare(self, *args, **kwargs):
        raise AssertionError("the problem's statistics were built")


def spied(base, spy):
    """A subclass of the model type ``base`` whose every hard objective is handed to
    ``spy(objective)`` (which wraps its public methods) before the search uses it."""

    class Spied(base):
        def hard_objective(self, penalties):
            objective = super().hard_objective(penalties)
            spy(objective)
            return objective

    return Spied


def after(objective, name, record):
    """Wrap the method ``name`` of ``objective``: ``record(args, result)`` after each call."""
    method = getattr(objective, name)

    def call(*args, **kwargs):
        out = method(*args, **kwargs)
        record(args, out)
        return out

    setattr(objective, name, call)


@pytest.mark.parametrize("value, expected", [
    (2**20, 2**20), (1.5e9, 1_500_000_000), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9),
    ("1.5 GiB", int(1.5 * 2**30)), ("4096", 4096), ("3kib", 3 * 1024)])
def test_budgets_are_read_in_bytes(value, expected):
    assert resolve_budget(value, CPU) == expected


@pytest.mark.parametrize("value", ["lots", "5 parsecs", "-1GB", "0", 0, -5, "GiB", True])
def test_a_budget_that_is_not_an_amount_is_refused(value):
    with pytest.raises(ValueError, match="memory_budget must be 'auto', a positive number"):
        resolve_budget(value, CPU)


def test_the_automatic_budget_is_half_the_available_memory():
    budget = resolve_budget("auto", CPU)
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f
                         if line.startswith("MemAvailable:"))
    # the machine's free memory moves between the two readings
    assert 0.3 * available < budget < 0.7 * available


def test_format_bytes():
    assert format_bytes(512) == "512 bytes"
    assert format_bytes(3 * 2**20) == "3.00 MiB"
    assert format_bytes(12.5 * 2**30) == "12.5 GiB"


def _splits(n, k=5):
    folds = np.array_split(np.arange(n), k)
    return [(np.setdiff1d(np.arange(n), f), f) for f in folds]


def test_the_need_grows_with_the_problem_and_halves_in_float32():
    small = LinearMap().memory_need(100, 64, 62, _splits(100), 8)
    wide = LinearMap().memory_need(100, 256, 254, _splits(100), 8)
    assert wide.minimum > 5 * small.minimum  # 16 times the entries
    single = LinearMap().memory_need(100, 256, 254, _splits(100), 4)
    assert 0.45 < single.minimum / wide.minimum < 0.6
    # fewer samples than inputs keep C S through the samples: a column costs F n m numbers,
    # not 2 F m d
    few = LinearMap().memory_need(40, 256, 254, _splits(40), 8)
    many = LinearMap().memory_need(400, 256, 254, _splits(400), 8)
    assert few.per_column == 2 * 8 * 5 * 40 * 254
    assert many.per_column == 2 * 8 * 2 * 5 * 254 * 256


def test_a_fit_that_cannot_fit_says_how_much_it_needs_before_any_work(monkeypatch):
    X, Y, _, _ = make_convolution(60, input_shape=(8, 8), kernel_size=3, random_state=0)
    need = LinearMap().memory_need(60, 64, 36, _splits(60), 8)
    inject(monkeypatch, Unprepared)
    est = SharingDiscoverer(model="linear", memory_budget=need.minimum // 2, random_state=0)
    with pytest.raises(MemoryError) as info:
        est.fit(X, Y)
    message = str(info.value)
    assert f"needs at least {format_bytes(need.minimum)}" in message
    assert "2,304 shareable items (36 x 64)" in message and "statistics" in message
    assert not hasattr(est, "sharing_partition_")


@pytest.mark.slow
def test_a_tight_budget_screens_in_blocks_and_finds_the_same_partition(monkeypatch):
    # fewer samples than inputs: no span test settles it, the item-wise search runs
    X, Y, _, _ = make_convolution(60, input_shape=(8, 8), kernel_size=3, mode="circular",
                                      random_state=1)
    free = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    blocks = []
    inject(monkeypatch, spied(LinearMap, lambda objective: after(
        objective, "screen_moves", lambda args, ratings: blocks.append(ratings.shape[0]))))
    need = LinearMap().memory_need(60, 64, 64, _splits(60), 8)
    tight = SharingDiscoverer(model="linear", random_state=0,
                              memory_budget=need.minimum + 1).fit(X, Y)
    assert blocks and max(blocks) <= 1536  # blocks of 1,024 to 1,536 of the 4,096 items
    np.testing.assert_array_equal(tight.sharing_partition_, free.sharing_partition_)
    assert tight.objective_ == pytest.approx(free.objective_, rel=1e-12)


def test_the_screen_in_blocks_keeps_the_best_moves(build):
    problem, truth = build.conv_problem(n_in=12, k=3, n=40, seed=2)
    objective = build.hard_objective(problem)
    st = objective.state(np.zeros(problem.n_items, dtype=int))
    whole = objective.screen_moves(st)
    items, targets = objective.best_screened(st, 40)
    objective.screen_block = lambda n_columns: 7  # blocks of 7 items
    b_items, b_targets = objective.best_screened(st, 40)
    expected = torch.topk(whole.reshape(-1), 40, largest=False).values
    torch.testing.assert_close(whole[b_items, b_targets], expected, rtol=0, atol=0)
    torch.testing.assert_close(whole[items, targets], expected, rtol=0, atol=0)
    spare = objective.spare_ratings(st)
    torch.testing.assert_close(spare, whole[:, st.R - 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", [float("inf"), np.inf, "inf", " Infinity ", "1e400GB", "1e300GB"])
def test_an_infinite_budget_sets_no_limit(value):
    assert resolve_budget(value, CPU) is None


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), "-inf", "nan GB"])
def test_a_budget_that_is_not_a_positive_amount_is_refused(value):
    with pytest.raises(ValueError, match="memory_budget must be 'auto', a positive number"):
        resolve_budget(value, CPU)


def test_a_budget_beyond_floats_is_read_as_it_is():
    assert resolve_budget(10**400, CPU) == 10**400
    assert format_bytes(10**400) == "inf GiB"


def test_a_fit_with_an_infinite_budget_runs_without_a_limit():
    X, Y, _, _ = make_convolution(40, input_shape=6, kernel_size=3, random_state=0)
    limited = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    for budget in (float("inf"), "1e400GB"):
        est = SharingDiscoverer(model="linear", memory_budget=budget, random_state=0).fit(X, Y)
        assert est._model.memory_plan is None  # no limit: nothing is blocked
        np.testing.assert_array_equal(est.sharing_partition_, limited.sharing_partition_)


def _exact_systems(monkeypatch, base):
    """Fit ``base`` (a model type) recording the bytes of every batch of refitted normal
    equations the search's exact scores form (``F x R x R`` for each candidate scored at once:
    the one-item moves, the merges of every pair, the blocks of merges), and the pairs of each
    block of merges scored apart: ``(sizes, merge_blocks)``."""
    sizes, merge_blocks = [], []

    def systems(st, n_candidates):
        sizes.append(n_candidates * st.G.numel() * st.G.element_size())

    def merge_block(args, change):
        merge_blocks.append(args[1].numel())
        systems(args[0], args[1].numel())

    def spy(objective):
        after(objective, "exact_moves", lambda args, change: systems(args[0], len(args[1])))
        after(objective, "exact_merges", lambda args, out: out[0] is not None and systems(
            args[0], out[0].numel()))
        after(objective, "merge_changes", merge_block)

    inject(monkeypatch, spied(base, spy))
    return sizes, merge_blocks


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.EfficiencyWarning")  # init="unshared"
@pytest.mark.slow
def test_the_unshared_start_scores_its_moves_in_blocks_within_the_budget(monkeypatch):
    # issue 34: init="unshared" on a 5 x 5 circular map (625 items) formed the rank-2 update of
    # 512 candidates at once, 512 x 5 x 626 x 626 numbers (8 GB), whatever the budget. Here a
    # circular convolution of 7 inputs (49 items): 51 MB at once, and the budget lets eight
    # candidates through.
    X, Y, _, _ = make_convolution(60, input_shape=7, kernel_size=3, mode="circular",
                                  random_state=0)
    params = dict(model="linear", init="unshared", n_restarts=0, random_state=0)
    free = SharingDiscoverer(memory_budget=float("inf"), **params).fit(X, Y)
    need = LinearMap().memory_need(60, 7, 7, _splits(60), 8, start_groups=49)
    budget = need.minimum + 7 * need.candidate * 50**2  # eight candidates at the start
    sizes, _ = _exact_systems(monkeypatch, LinearMap)
    tight = SharingDiscoverer(memory_budget=budget, **params).fit(X, Y)
    assert max(sizes) <= budget - need.held(50)
    assert max(sizes) < 512 * 5 * 50 * 50 * 8 / 32
    np.testing.assert_array_equal(tight.sharing_partition_, free.sharing_partition_)
    assert tight.objective_ == pytest.approx(free.objective_, rel=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.EfficiencyWarning")  # init="unshared"
def test_merges_of_many_groups_are_scored_in_blocks_within_the_budget(monkeypatch):
    # issue 34: the shared means of many distinct features reach tens of groups, and every pair
    # was merged at once (at 60 groups, 1,770 pairs of 5 x 61 x 61 systems: 1 GB; at 700
    # features, terabytes)
    X, _, _ = make_shared_means(30, n_features=40, n_groups=40, spacing=4.0, random_state=0)
    params = dict(model="mean", init="unshared", n_restarts=0, random_state=0)
    free = SharingDiscoverer(memory_budget=float("inf"), **params).fit(X)
    need = SharedMeans().memory_need(30, 40, 1, _splits(30), 8, start_groups=40)
    budget = need.minimum + 20 * need.candidate * 41**2
    sizes, merge_blocks = _exact_systems(monkeypatch, SharedMeans)
    tight = SharingDiscoverer(memory_budget=budget, **params).fit(X)
    assert max(sizes) <= budget - need.held(41)
    assert merge_blocks  # some rounds scored their merges in blocks, not all at once
    assert free.n_groups_ > 20  # the merges were scored at many groups
    np.testing.assert_array_equal(tight.sharing_partition_, free.sharing_partition_)
    assert tight.objective_ == pytest.approx(free.objective_, rel=1e-12)


def test_a_start_with_a_group_per_item_counts_its_states_and_their_systems():
    base = LinearMap().memory_need(200, 25, 25, _splits(200), 8)
    unshared = LinearMap().memory_need(200, 25, 25, _splits(200), 8, start_groups=625)
    # two states' C S (F x P x R, training and validation) and G, Gv (F x R x R), and one
    # candidate's systems, at R = 626 columns instead of 3
    grown = unshared.parts["search states"] - base.parts["search states"]
    assert grown >= 8 * 5 * (2 * 2 * 625 + 2 * 2 * 626) * (626 - 3)
    assert unshared.parts["data"] == base.parts["data"]
    assert unshared.parts["search states"] > 100 * base.parts["search states"]
    # the screen and the candidates are then blocked around the states at 626 columns
    budget = unshared.minimum
    assert unshared.candidate_block(budget, 626, 512) == 1
    assert unshared.candidate_block(budget + 10 * unshared.candidate * 626**2, 626, 512) == 11


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.EfficiencyWarning")  # 256 columns
def test_a_relaxation_that_does_not_fit_is_refused_before_its_first_step(monkeypatch):
    X, Y, _, _ = make_convolution(60, input_shape=(4, 4), kernel_size=3, mode="circular",
                                  random_state=0)
    need = LinearMap().memory_need(60, 16, 16, _splits(60), 8)
    one = need.relaxation_bytes(1, 256)
    steps = []

    class Counted(LinearMap):
        def relaxed_data_term(self, S):
            steps.append(S.shape)
            return super().relaxed_data_term(S)

    inject(monkeypatch, Counted)
    est = SharingDiscoverer(model="linear", n_restarts=1, n_candidate_groups=256,
                            memory_budget=need.minimum + one // 2, random_state=0)
    with pytest.raises(MemoryError, match=r"Relaxing one restart with 256 candidate groups "
                                          r"\(n_candidate_groups\) on 256 shareable items"):
        est.fit(X, Y)
    assert not steps and not hasattr(est, "sharing_partition_")


def test_restarts_are_relaxed_in_batches_that_fit_the_budget():
    model = LinearMap()
    need = model.memory_need(60, 16, 16, _splits(60), 8)
    model.n_items = need.n_items
    model.plan_memory(need, None)
    assert model.batch_size(4) == 2**20 // (256 * 4)  # no budget: the relaxation's own cap
    # beside the data, their statistics and the hypotheses' equations (built before)
    held = need.parts["data"] + need.parts["statistics"] + need.parts["hypotheses"]
    model.plan_memory(need, held + 3 * need.relaxation_bytes(1, 4))
    assert model.batch_size(4) == 3
    model.plan_memory(need, held + need.relaxation_bytes(1, 4) // 2)
    assert model.batch_size(4) == 1  # and relaxation() refuses it
    with pytest.raises(MemoryError, match="set n_restarts=0"):
        model.relaxation(torch.zeros(1, 256, 4))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.EfficiencyWarning")  # init="unshared"
def test_a_start_that_does_not_fit_is_refused_before_any_work(monkeypatch):
    # init="unshared" starts the search from a group per item: its states hold C S and the
    # normal equations at P + 1 columns (F x P x (P + 1) and F x (P + 1)^2 numbers each)
    X, Y, _, _ = make_convolution(60, input_shape=(4, 4), kernel_size=3, mode="circular",
                                  random_state=0)
    shared = LinearMap().memory_need(60, 16, 16, _splits(60), 8)
    unshared = LinearMap().memory_need(60, 16, 16, _splits(60), 8, start_groups=256)
    inject(monkeypatch, Unprepared)
    budget = (shared.minimum + unshared.minimum) // 2
    est = SharingDiscoverer(model="linear", init="unshared", memory_budget=budget,
                            random_state=0)
    with pytest.raises(MemoryError) as info:
        est.fit(X, Y)
    assert f"needs at least {format_bytes(unshared.minimum)}" in str(info.value)
    assert not hasattr(est, "sharing_partition_")


class Planned(LinearMap):
    """A linear map that records the budget its fit plans within."""

    budgets = []

    def plan_memory(self, need, budget):
        Planned.budgets.append(budget)
        super().plan_memory(need, budget)


@pytest.mark.parametrize("copies", [1, 2])
def test_parallel_workers_share_the_budget_and_fewer_run_where_it_holds_fewer(monkeypatch,
                                                                             copies):
    X, Y, _, _ = make_convolution(60, input_shape=(6, 6), kernel_size=3, random_state=0)
    need = LinearMap().memory_need(60, 36, 16, _splits(60), 8)
    kept = need.parts["data"] + need.parts["statistics"] + need.parts["hypotheses"]
    budget = kept + copies * need.minimum + need.minimum // 2  # holds `copies` workers
    serial = SharingDiscoverer(model="linear", n_restarts=0, random_state=0).fit(X, Y)
    inject(monkeypatch, Planned)
    Planned.budgets = []
    est = SharingDiscoverer(model="linear", n_restarts=0, n_jobs=2, memory_budget=budget,
                            random_state=0)
    if copies == 1:
        with pytest.warns(UserWarning, match=r"n_jobs=2 runs 2 workers.*holds 1: the fit "
                                             r"runs in one process"):
            est.fit(X, Y)
        assert Planned.budgets == [budget]  # one process plans within the whole budget
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X, Y)
        assert not [w for w in caught if "n_jobs" in str(w.message)]  # two copies fit
        assert Planned.budgets == [(budget - kept) // 2]
    np.testing.assert_array_equal(est.sharing_partition_, serial.sharing_partition_)


def test_the_need_counts_the_block_equations_of_the_largest_hypotheses_kept():
    # an 8 x 8 map: its point-group readings have 1,024 blocks (two) and 528; the ranking keeps
    # three hypotheses' equations (F x K x K, training and validation)
    need = LinearMap().memory_need(100, 64, 64, _splits(100), 8)
    assert need.parts["hypotheses"] == 8 * 2 * 5 * (1024**2 + 1024**2 + 528**2)
    assert need.minimum == sum(need.parts.values())
    means = SharedMeans().memory_need(100, 64, None, None, 8)
    assert "hypotheses" not in means.parts  # no structured hypotheses
    # a fit whose budget holds everything but them is refused before any work, naming them
    X, Y, _, _ = make_convolution(100, input_shape=(8, 8), kernel_size=3, mode="circular",
                                  random_state=0)
    with pytest.raises(MemoryError, match=r"hypotheses \d+(\.\d+)? MiB"):
        SharingDiscoverer(model="linear", random_state=0,
                          memory_budget=need.minimum - need.parts["hypotheses"] // 2).fit(X, Y)
