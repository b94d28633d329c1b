"""Small helpers shared by the benchmark scripts: timing, peak memory, a table and a CSV.

Two different peak-memory numbers are offered, and they measure different things:

``traced_peak_bytes`` (``tracemalloc``)
    The largest amount of memory held at once, during the call, by allocations made through
    Python's allocator hooks: Python objects and NumPy array buffers (NumPy reports its data
    allocations to ``tracemalloc``). Memory that C/C++/Fortran code gets straight from ``malloc``
    or ``new`` without telling Python (for example the work space inside some SciPy routines)
    is *not* counted. Only what the call allocates is counted, not what existed before it.
    Tracing slows Python allocations down, so never time a call while tracing it.

``rss_peak_bytes`` / ``rss_increase_bytes`` (``resource.getrusage(...).ru_maxrss``)
    The operating system's high-water mark of the resident set size: every page the process
    touched, whoever allocated it (Python, NumPy, SciPy's C++ code, BLAS, the interpreter itself).
    ``ru_maxrss`` is a *process-lifetime* maximum and never goes down, so to get a number for one
    call the call is run in a forked child process (POSIX only; ``None`` elsewhere).
    ``rss_peak_bytes`` is the child's whole peak (interpreter and inherited data included);
    ``rss_increase_bytes`` is that peak minus the child's high-water mark just before the call,
    i.e. roughly what the call added. Memory the allocator reuses from earlier frees does not
    raise RSS, so the increase can underestimate the call's own allocations.
"""

from __future__ import annotations

import csv
import os
import pickle
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# ru_maxrss is in kilobytes on Linux and the BSDs, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def time_call(func, *args, repeats=5, **kwargs):
    """Run ``func(*args, **kwargs)`` ``repeats`` times; return ``(result, best_s, median_s)``."""
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return result, min(times), statistics.median(times)


def process_peak_rss_bytes():
    """The current process's lifetime peak resident set size, in bytes (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


def traced_peak_bytes(func, *args, **kwargs):
    """Peak bytes held by Python/NumPy allocations during one call (``tracemalloc``)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        func(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return peak - base


def rss_peak_of_call(func, *args, **kwargs):
    """``(rss_peak_bytes, rss_increase_bytes)`` of one call run in a forked child process.

    Returns ``(None, None)`` where ``os.fork`` is not available. The call's result is discarded;
    an exception in the child is re-raised here as ``RuntimeError``.
    """
    if not hasattr(os, "fork"):
        return None, None
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: measure, report through the pipe, exit without cleanup handlers
        try:
            os.close(read_fd)
            before = process_peak_rss_bytes()
            try:
                func(*args, **kwargs)
                message = (process_peak_rss_bytes(), before, None)
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                message = (None, None, repr(err))
            with os.fdopen(write_fd, "wb") as pipe:
                pickle.dump(message, pipe)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    peak, before, error = pickle.loads(data)
    if error is not None:
        raise RuntimeError(f"the measured call failed in the child process: {error}")
    return peak, peak - before


@dataclass
class MemoryPeak:
    """Both peak-memory measures of one call; see the module docstring for what each counts."""

    traced_peak_bytes: int
    rss_peak_bytes: int | None
    rss_increase_bytes: int | None


def measure_peak_memory(func, *args, **kwargs):
    """Measure one call's peak memory both ways (two separate runs of the call)."""
    traced = traced_peak_bytes(func, *args, **kwargs)
    rss_peak, rss_increase = rss_peak_of_call(func, *args, **kwargs)
    return MemoryPeak(traced, rss_peak, rss_increase)


def mib(n_bytes):
    """Bytes to MiB (``None`` stays ``None``)."""
    return None if n_bytes is None else n_bytes / 2**20


def _cell(value, floatfmt):
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, floatfmt)
    return str(value)


def format_table(rows, columns=None, floatfmt=".4g"):
    """Rows (dicts) as a text table: numbers right-aligned, text left-aligned."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else []
    cells = [[_cell(row.get(c), floatfmt) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows)
        for c in columns
    ]

    def line(values):
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def print_table(rows, columns=None, floatfmt=".4g", title=None):
    """Print :func:`format_table`, optionally under a title."""
    if title:
        print(title)
    print(format_table(rows, columns, floatfmt))


def write_csv(rows, filename, columns=None):
    """Write rows (dicts) to ``benchmarks/results/<filename>``, creating the folder; return it."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else []
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / filename
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


RESOLVABLE_SE = 5.0  # two groups this many standard errors apart are resolvable (docs/method.md)


def group_standard_errors(X, Y, labels, noise_sd):
    """Standard errors of the differences of every pair of true groups' least-squares values
    (tied model with an intercept, all the data): ``SE^2 = sigma^2 c^T (A^T X^T X A)^-1 c``."""
    Xc = X - X.mean(0)
    m, d = Y.shape[1], X.shape[1]
    r = int(labels.max()) + 1
    lab = labels.reshape(m, d)
    C = Xc.T @ Xc
    G = np.zeros((r, r))
    for o in range(m):  # A_o: d x r one-hot block of output o
        A = np.zeros((d, r))
        A[np.arange(d), lab[o]] = 1.0
        G += A.T @ C @ A
    cov = noise_sd**2 * np.linalg.pinv(G)
    var = np.diag(cov)
    se = np.sqrt(np.maximum(var[:, None] + var[None, :] - 2 * cov, 1e-300))
    return se


def true_values(labels, weight):
    flat = weight.ravel()
    r = int(labels.max()) + 1
    return np.array([flat[labels == g][0] for g in range(r)])


def min_se_apart(values, se, pairs=None):
    """Smallest ``|v_g - v_h| / SE_gh`` over ``pairs`` (all pairs of groups by default)."""
    r = len(values)
    if pairs is None:
        pairs = [(g, h) for g in range(r) for h in range(g + 1, r)]
    if not pairs:
        return np.inf
    return float(min(abs(values[g] - values[h]) / se[g, h] for g, h in pairs))


def merged_pairs(truth, found):
    """Pairs of true groups whose items the found partition puts mostly in one group."""
    r = int(truth.max()) + 1
    # each true group's majority group in the found partition
    major = [np.bincount(found[truth == g]).argmax() for g in range(r)]
    return [(g, h) for g in range(r) for h in range(g + 1, r) if major[g] == major[h]]
