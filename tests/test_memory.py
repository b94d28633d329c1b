"""The memory budget of closed-form fits (sharelearn._memory, ClosedFormModel.memory_need)."""

import numpy as np
import pytest
import torch

from sharelearn import SharingDiscoverer
from sharelearn._memory import format_bytes, resolve_budget
from sharelearn.datasets import make_convolution
from sharelearn.models import LinearMap
from sharelearn.models import closed_form as closed_form_module

CPU = torch.device("cpu")


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

    def no_work(*args, **kwargs):
        raise AssertionError("the problem's statistics were built")

    monkeypatch.setattr(closed_form_module, "TiedLinearGaussian", no_work)
    est = SharingDiscoverer(model="linear", memory_budget=need.minimum // 2, random_state=0)
    with pytest.raises(MemoryError) as info:
        est.fit(X, Y)
    message = str(info.value)
    assert f"needs at least {format_bytes(need.minimum)}" in message
    assert "2,304 shareable items (36 x 64)" in message and "statistics" in message
    assert not hasattr(est, "sharing_partition_")


def test_a_tight_budget_screens_in_blocks_and_finds_the_same_partition(monkeypatch):
    # fewer samples than inputs: no span test settles it, the item-wise search runs
    X, Y, _, _ = make_convolution(60, input_shape=(8, 8), kernel_size=3, mode="circular",
                                      random_state=1)
    free = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    blocks = []
    screen = closed_form_module.ValidationObjective.screen_moves

    def spy(self, st, items=slice(None), terms=None):
        pred = screen(self, st, items, terms)
        blocks.append(pred.shape[0])
        return pred

    monkeypatch.setattr(closed_form_module.ValidationObjective, "screen_moves", spy)
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
