"""How many intra-op threads a fit runs torch with, chosen per fit and restored afterwards.

torch starts with one intra-op thread per core. The fits of this package are mostly many small
tensor operations, whose cost is the per-operation overhead; spreading each over several
OpenMP threads only adds synchronisation, and when another process holds a core (a test run,
a second fit, a browser) every operation waits for the thread that has no core: on a 2-core
machine shared with another job, the README's first discovery took 0.36 s on one thread and
18 s on torch's default two (``benchmarks/bench_threads.py``, figures in ``docs/results.md``).

:func:`fit_threads` scopes a thread count to one fit: it is chosen by :func:`choose_threads`
from a size hint of the fit, set with :func:`torch.set_num_threads` and restored on exit, also
when the fit raises. The choice, in order:

1. an explicit ``n_threads``, honoured as given up to the cores this process may use;
2. the environment variable ``SHARELEARN_NUM_THREADS`` (a positive integer), the same for
   every fit of the process, with the same bound;
3. otherwise one thread when the work is below ``parallel_work`` (:data:`PARALLEL_WORK` by
   default), else torch's current count. torch's current count is an upper bound of the
   automatic choice, so a user's ``OMP_NUM_THREADS`` (which torch reads at start-up) or
   ``torch.set_num_threads`` is never exceeded, and a fit nested in another fit's scope keeps
   the outer choice.

numpy's BLAS threads (threadpoolctl) are left alone: the fits' numpy work is small, and capping
it measured no difference.

A count above the cores the process may use (``cores``: :func:`usable_cores` by default) is
lowered to them with a ``UserWarning``: threads beyond the cores only wait for one, and torch
starts every thread it is asked for (``n_threads=100000`` started tens of thousands before the
system refused more).
"""

from __future__ import annotations

import numbers
import os
import warnings
from contextlib import contextmanager

import torch

__all__ = ["PARALLEL_WORK", "choose_threads", "fit_threads", "usable_cores"]

#: Work (``n_items * n_inputs`` of a closed-form problem, or a network's parameter count) from
#: which the automatic choice keeps torch's thread count instead of one thread. On this
#: project's 2-core machine, two threads were 2 to 50 times slower than one while another job
#: ran, at every size; at 65,536 items x 256 inputs on a momentarily idle machine they won one
#: of three single fits (by 1.5 times) and lost the other two (``benchmarks/bench_threads.py``).
#: One thread has the smaller worst case, so no size reaches it; ``n_threads`` gives more.
PARALLEL_WORK = float("inf")

ENV_VAR = "SHARELEARN_NUM_THREADS"


def _check_n_threads(n_threads, name):
    if (not isinstance(n_threads, numbers.Integral) or isinstance(n_threads, bool)
            or n_threads < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {n_threads!r}.")
    return int(n_threads)


def usable_cores():
    """The number of CPU cores this process may run on (its affinity mask where the system
    has one, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def _within_cores(count, given, stacklevel, cores=None):
    """``count`` lowered to ``cores`` (None: :func:`usable_cores`), with a warning that names
    ``given``."""
    cores = usable_cores() if cores is None else cores
    if count <= cores:
        return count
    warnings.warn(
        f"{given} asks for {count} threads, but this process may use {cores} "
        f"core{'s' if cores > 1 else ''}; running with {cores}. Threads beyond the cores "
        f"only wait for one: pass at most {cores}, or None to let the fit choose.",
        UserWarning, stacklevel=stacklevel + 1)
    return cores


def _env_threads():
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"The environment variable {ENV_VAR} must be a positive integer, "
                         f"got {value!r}.")
    return count


def choose_threads(work, n_threads=None, *, cores=None, parallel_work=PARALLEL_WORK):
    """The intra-op thread count for a fit of size ``work``.

    Parameters
    ----------
    work : int or float
        A size hint of the fit: ``n_items * n_inputs`` of a closed-form problem (shareable
        weight entries times inputs), or the parameter count of a network.
    n_threads : int or None, default=None
        An explicit count, returned as given up to ``cores`` (above them, lowered to them with
        a ``UserWarning``). None chooses: ``SHARELEARN_NUM_THREADS`` when it is set (bounded
        alike), else one thread below ``parallel_work`` and torch's current count from it.
    cores : int or None, default=None
        The cores a count may use; None: :func:`usable_cores`, those this process may run on.
    parallel_work : float, default=PARALLEL_WORK
        The work from which the automatic choice keeps torch's current count.

    Returns
    -------
    n_threads : int

    Examples
    --------
    >>> from sharelearn._threads import choose_threads
    >>> choose_threads(256 * 16)
    1
    >>> choose_threads(256 * 16, n_threads=1)
    1
    """
    return _choose(work, n_threads, stacklevel=3, cores=cores, parallel_work=parallel_work)


def _choose(work, n_threads, stacklevel, cores=None, parallel_work=PARALLEL_WORK):
    """:func:`choose_threads`, warning ``stacklevel`` frames above its caller."""
    if n_threads is not None:
        count = _check_n_threads(n_threads, "n_threads")
        return _within_cores(count, f"n_threads={count}", stacklevel, cores)
    if (not isinstance(work, numbers.Real) or isinstance(work, bool) or not work >= 0):
        raise ValueError(f"work must be a non-negative number, got {work!r}.")
    from_env = _env_threads()
    if from_env is not None:
        return _within_cores(from_env, f"{ENV_VAR}={from_env}", stacklevel, cores)
    if work < parallel_work:
        return 1
    return torch.get_num_threads()


@contextmanager
def fit_threads(work, n_threads=None, *, cores=None, parallel_work=PARALLEL_WORK):
    """Run the enclosed code with torch's intra-op thread count chosen for a fit.

    The count is :func:`choose_threads` ``(work, n_threads, cores=cores,
    parallel_work=parallel_work)`` (never above the usable cores), set with
    :func:`torch.set_num_threads`; the count found on entry is restored on exit, also when the
    enclosed code raises. torch's count is global to the process: fits run at the same time in
    several Python threads share it.

    Parameters
    ----------
    work : int or float
        The fit's size hint, see :func:`choose_threads`.
    n_threads : int or None, default=None
        An explicit count; None chooses.
    cores, parallel_work :
        See :func:`choose_threads`.

    Yields
    ------
    n_threads : int
        The count in effect inside the block.

    Raises
    ------
    ValueError
        If ``n_threads`` is not a positive integer or None, ``work`` not a non-negative number,
        or ``SHARELEARN_NUM_THREADS`` not a positive integer.

    Examples
    --------
    >>> import torch
    >>> from sharelearn._threads import fit_threads
    >>> before = torch.get_num_threads()
    >>> with fit_threads(1_000) as n:
    ...     torch.get_num_threads() == n == 1
    True
    >>> torch.get_num_threads() == before
    True
    """
    # the warning of a count above the cores points at the caller of the caller of the
    # ``with`` (a sharelearn fit: the user's call of ``fit``, past scikit-learn's wrapper)
    chosen = _choose(work, n_threads, stacklevel=7, cores=cores, parallel_work=parallel_work)
    previous = torch.get_num_threads()
    if chosen != previous:
        torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
