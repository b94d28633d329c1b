"""The thread count of a fit: chosen, scoped to the fit, restored, overridable; and a fit spread
over joblib's threads. The cores a count may use are given (``cores=4``) wherever the test asks
for more threads than one, whatever the machine's."""

import os
import warnings

import numpy as np
import pytest
import torch
from joblib import parallel_config
from sklearn.base import clone

from sharelearn import SharingDiscoverer
from sharelearn._threads import ENV_VAR, PARALLEL_WORK, choose_threads, fit_threads, usable_cores
from sharelearn.datasets import make_shared_means


@pytest.fixture(autouse=True)
def _two_threads_outside(monkeypatch):
    """Every test starts from torch at 2 threads and no override, and leaves torch's count as
    found."""
    monkeypatch.delenv(ENV_VAR, raising=False)
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
    with fit_threads(10, n_threads=3, cores=4) as n:
        assert n == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2
    with fit_threads(10**12, n_threads=1, cores=4):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_environment_variable_overrides_the_choice_but_not_the_argument(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "3")
    with fit_threads(10, cores=4):
        assert torch.get_num_threads() == 3
    with fit_threads(10, n_threads=1, cores=4):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_current_count_bounds_the_automatic_choice():
    # large work keeps torch's count (what OMP_NUM_THREADS or torch.set_num_threads set)
    torch.set_num_threads(1)
    assert choose_threads(10**6, parallel_work=100) == 1
    torch.set_num_threads(2)
    assert choose_threads(10**6, parallel_work=100) == 2
    assert choose_threads(100, parallel_work=100) == 2
    assert choose_threads(99, parallel_work=100) == 1
    assert choose_threads(10**6) == 1  # by default no work reaches PARALLEL_WORK
    with fit_threads(10**6, parallel_work=100) as n:
        assert n == 2 == torch.get_num_threads()


def test_nested_scopes_keep_the_outer_choice():
    with fit_threads(10, n_threads=3, cores=4):
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
        with fit_threads(10, n_threads=n_threads, cores=4) as n:
            assert n == 4 and torch.get_num_threads() == 4
    assert torch.get_num_threads() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cores themselves are fine
        assert choose_threads(10, n_threads=4, cores=4) == 4


def test_usable_cores_are_the_processes_own():
    cores = usable_cores()
    expected = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count())
    assert cores == expected >= 1


def test_by_default_a_count_is_bounded_by_the_usable_cores():
    cores = usable_cores()
    with pytest.warns(UserWarning, match=f"this process may use {cores} core"):
        assert choose_threads(10, n_threads=cores + 1) == cores


def test_a_fit_spread_over_workers_chooses_as_the_serial_fit():
    # n_jobs spreads a fit's relaxations and searches over joblib's workers; threads start at
    # once where its default worker processes take seconds (the slow lane compares those too)
    X, _, _ = make_shared_means(80, n_features=5, n_groups=2, random_state=0)
    serial = SharingDiscoverer(model="mean", random_state=3, n_restarts=2, max_iter=20).fit(X)
    with parallel_config("threading"):
        parallel = clone(serial).set_params(n_jobs=2).fit(X)
    np.testing.assert_array_equal(serial.restart_objectives_, parallel.restart_objectives_)
    np.testing.assert_array_equal(serial.sharing_partition_, parallel.sharing_partition_)
    assert torch.get_num_threads() == 2
