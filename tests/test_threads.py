"""The thread count of a fit: chosen, scoped to the fit, restored, overridable."""

import os
import warnings

import pytest
import torch

from sharelearn._threads import ENV_VAR, PARALLEL_WORK, choose_threads, fit_threads


@pytest.fixture(autouse=True)
def _two_threads_outside(monkeypatch):
    """Every test starts from torch at 2 threads and no override, on 4 usable cores whatever
    the machine's, and leaves torch's count as found."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr("sharelearn._threads.usable_cores", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_small_work_runs_on_one_thread_and_restores():
    with fit_threads(256 * 16) as n:
        assert n == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_restored_after_an_exception():
    with pytest.raises(RuntimeError, match="inside"), fit_threads(10):
        assert torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_override_is_honoured_above_and_below_the_current_count():
    with fit_threads(10, n_threads=3) as n:
        assert n == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2
    with fit_threads(10**12, n_threads=1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_environment_variable_overrides_the_choice_but_not_the_argument(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "3")
    with fit_threads(10):
        assert torch.get_num_threads() == 3
    with fit_threads(10, n_threads=1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_current_count_bounds_the_automatic_choice(monkeypatch):
    # large work keeps torch's count (what OMP_NUM_THREADS or torch.set_num_threads set)
    monkeypatch.setattr("sharelearn._threads.PARALLEL_WORK", 100)
    torch.set_num_threads(1)
    assert choose_threads(10**6) == 1
    torch.set_num_threads(2)
    assert choose_threads(10**6) == 2
    assert choose_threads(99) == 1


def test_nested_scopes_keep_the_outer_choice():
    with fit_threads(10, n_threads=3):
        with fit_threads(10**6, n_threads=None) as inner:
            assert inner == torch.get_num_threads()
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2


def test_no_work_reaches_parallel_threshold_by_default():
    assert PARALLEL_WORK > 65_536 * 256


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_override_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match=r"n_threads must be a positive integer or None, got"):
        with fit_threads(10, n_threads=bad):
            pass
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [-1, float("nan"), "big", None])
def test_bad_work_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="work must be a non-negative number, got"):
        choose_threads(bad)


@pytest.mark.parametrize("bad", ["0", "two", "-3"])
def test_bad_environment_variable_is_a_clear_value_error(monkeypatch, bad):
    monkeypatch.setenv(ENV_VAR, bad)
    with pytest.raises(ValueError, match=f"{ENV_VAR} must be a positive integer, got"):
        choose_threads(10)


@pytest.mark.parametrize("where", ["argument", "environment"])
def test_a_count_above_the_cores_is_lowered_to_them_with_a_warning(monkeypatch, where):
    # n_threads=100000 started 32,115 threads before the system refused more
    if where == "environment":
        monkeypatch.setenv(ENV_VAR, "100000")
    n_threads = 100_000 if where == "argument" else None
    with pytest.warns(UserWarning, match=r"asks for 100000 threads, but this process may use "
                                         r"4 cores; running with 4\. .* pass at most 4"):
        with fit_threads(10, n_threads=n_threads) as n:
            assert n == 4 and torch.get_num_threads() == 4
    assert torch.get_num_threads() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cores themselves are fine
        assert choose_threads(10, n_threads=4) == 4


def test_usable_cores_are_the_processes_own(monkeypatch):
    from sharelearn import _threads

    monkeypatch.undo()  # the real function, not the fixture's 4
    cores = _threads.usable_cores()
    expected = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count())
    assert cores == expected >= 1
