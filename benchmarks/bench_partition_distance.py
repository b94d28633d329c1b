"""Time and memory of ``sharelearn.partition_distance`` as the number of items grows.

Cases, each at P = 10^4, 10^5 and 10^6 items:

* ``random``: two independent uniformly random partitions with 1,000 groups each (one big
  component in the overlap graph: a dense 1,000 x 1,000 assignment problem);
* ``moved_1pct``: a random 1,000-group partition against a copy in which 1% of the items moved to
  another group;
* ``singletons``: all singletons against all singletons with 10 items merged into one group
  (about P x P groups pairs: the sparse contingency path, distance 9).

Timing is the best (and median) of ``--repeats`` calls on inputs built beforehand. Peak memory is
measured on separate calls, see ``benchmarks/_common.py``: ``traced_MiB`` is tracemalloc's peak
of Python/NumPy allocations, ``rss_inc_MiB`` the increase of the peak resident set size of a
forked child running one call (a few MiB of it are copy-on-write noise; the script prints the
figure for a no-op call), ``rss_peak_MiB`` that child's whole peak.

Usage (from the repository root, with the package importable)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_partition_distance.py [--quick]

Writes ``benchmarks/results/partition_distance.csv`` (``partition_distance_quick.csv`` with
``--quick``, a smoke run at P = 10^3 and 10^4 with 2 repeats).
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
import scipy
from _common import (
    measure_peak_memory,
    mib,
    print_table,
    rss_peak_of_call,
    time_call,
    write_csv,
)

import sharelearn
from sharelearn import partition_distance

N_GROUPS = 1_000
N_MERGED = 10


def case_random(n_items, rng):
    a = rng.integers(0, N_GROUPS, size=n_items)
    b = rng.integers(0, N_GROUPS, size=n_items)
    return a, b, None


def case_moved(n_items, rng):
    a = rng.integers(0, N_GROUPS, size=n_items)
    b = a.copy()
    n_moved = n_items // 100
    moved = rng.choice(n_items, size=n_moved, replace=False)
    # a non-zero shift modulo N_GROUPS always lands in a different group
    b[moved] = (a[moved] + rng.integers(1, N_GROUPS, size=n_moved)) % N_GROUPS
    return a, b, n_moved  # an upper bound: moving them back is one way to match


def case_singletons(n_items, rng):
    a = np.arange(n_items)
    b = a.copy()
    merged = rng.choice(n_items, size=N_MERGED, replace=False)
    b[merged] = merged[0]
    return a, b, N_MERGED - 1  # exact: one of the ten keeps its group


CASES = {"random": case_random, "moved_1pct": case_moved, "singletons": case_singletons}


def run(sizes, repeats, seed=0):
    rows = []
    for name, make in CASES.items():
        for n_items in sizes:
            rng = np.random.default_rng(seed)
            a, b, bound = make(n_items, rng)
            distance, best, median = time_call(partition_distance, a, b, repeats=repeats)
            if name == "singletons":
                assert distance == bound, (name, n_items, distance)
            elif bound is not None:
                assert distance <= bound, (name, n_items, distance)
            memory = measure_peak_memory(partition_distance, a, b)
            row = {
                "case": name,
                "n_items": n_items,
                "groups_a": int(np.unique(a).size),
                "groups_b": int(np.unique(b).size),
                "distance": distance,
                "best_ms": 1e3 * best,
                "median_ms": 1e3 * median,
                "traced_MiB": mib(memory.traced_peak_bytes),
                "rss_inc_MiB": mib(memory.rss_increase_bytes),
                "rss_peak_MiB": mib(memory.rss_peak_bytes),
                "input_MiB": mib(a.nbytes + b.nbytes),
            }
            rows.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case")
    args = parser.parse_args(argv)
    sizes = [10**3, 10**4] if args.quick else [10**4, 10**5, 10**6]
    repeats = args.repeats or (2 if args.quick else 5)

    print(
        f"sharelearn {sharelearn.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"python {platform.python_version()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, best of {repeats}"
    )
    floor = mib(rss_peak_of_call(lambda: None)[1])
    print(f"rss_inc_MiB of a no-op call (copy-on-write noise floor of the fork): {floor:.3f}")
    rows = run(sizes, repeats)
    print_table(rows, floatfmt=".3f")
    name = "partition_distance_quick.csv" if args.quick else "partition_distance.csv"
    path = write_csv(rows, name)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
