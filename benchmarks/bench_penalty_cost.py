"""Fit time across penalty settings, against the default's on the same data (issue 16, item 5).

For each case, every pair ``(nuclear, code_length)`` in ``{0, 0.5, 2, 8}^2`` is fitted with the
otherwise default estimator (``random_state=0``), and its fit time is divided by the default
setting's (``nuclear=2, code_length=2``) on the same data. ``nuclear=0, code_length=0`` leaves the
number of groups unbounded (the estimator warns with an ``EfficiencyWarning``); it is reported
but kept apart from the maximum over the bounded settings. Target: every setting within 5 times
the default's time.

Cases: the grid-search example's convolution (12 inputs, kernel 3, n = 150), a 64-input valid
convolution with random taps on independent inputs (n = 200), the same on AR(0.9) signals, 8 x 8
image patches (n = 300), and a hard case outside every hypothesis: a 10 x 12 map tied by a random
partition into 4 groups (values -2, -0.5, 1, 3; independent inputs, noise 0.1, n = 200), whose
data lie in no convolution's span, so the searches from the relaxations and the shared partition
run as they do without hypotheses.

Usage::

    PYTHONPATH=. python benchmarks/bench_penalty_cost.py [--quick] [--only NAME]

Writes ``benchmarks/results/penalty_cost.csv`` (``_quick``, ``_only`` with those options), one
row per fit, and prints a table per case.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import print_table, write_csv

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution

WEIGHTS = (0.0, 0.5, 2.0, 8.0)


def random_map(n_samples=200, n_inputs=12, n_outputs=10, random_state=0):
    """A map tied by a random partition into 4 groups: ``(X, Y, truth, None)``."""
    rng = np.random.default_rng(random_state)
    truth = rng.integers(0, 4, size=n_outputs * n_inputs)
    values = np.array([-2.0, -0.5, 1.0, 3.0])
    X = rng.normal(size=(n_samples, n_inputs))
    Y = X @ values[truth].reshape(n_outputs, n_inputs).T + 0.1 * rng.normal(
        size=(n_samples, n_outputs))
    return X, Y, truth, None


def cases(quick):
    out = [("conv 12 k3 n=150", dict(n_samples=150, input_shape=12, kernel_size=3,
                                      random_state=0))]
    if not quick:
        realistic = dict(kernel="random", relative_noise=True, random_state=0)
        out += [
            ("1-D 64 k5 iid n=200", dict(n_samples=200, input_shape=64, kernel_size=5,
                                         **realistic)),
            ("1-D 64 k5 AR0.9 n=200", dict(n_samples=200, input_shape=64, kernel_size=5,
                                           correlation=0.9, **realistic)),
            ("images 8x8 3x3 n=300", dict(n_samples=300, input_shape=(8, 8), kernel_size=3,
                                          inputs="images", **realistic)),
            ("random 4-group map 12 inputs n=200", dict(generator=random_map)),
        ]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first case only")
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    args = parser.parse_args()
    rows = []
    for name, params in cases(args.quick):
        if args.only and args.only not in name:
            continue
        params = dict(params)
        X, Y, truth, _ = params.pop("generator", make_convolution)(**params)
        fits = []
        for nuclear in WEIGHTS:
            for code in WEIGHTS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    est = SharingDiscoverer(model="linear", nuclear=nuclear, code_length=code,
                                            random_state=0).fit(X, Y)
                    elapsed = time.perf_counter() - start
                fits.append(dict(case=name, nuclear=nuclear, code_length=code,
                                 pd=partition_distance(est.sharing_partition_, truth),
                                 n_groups=est.n_groups_, time_s=elapsed))
        default = next(f["time_s"] for f in fits if f["nuclear"] == 2.0
                       and f["code_length"] == 2.0)
        for f in fits:
            f["ratio"] = f["time_s"] / default
        rows += fits
        bounded = [f["ratio"] for f in fits if f["nuclear"] or f["code_length"]]
        print_table(fits, ["nuclear", "code_length", "pd", "n_groups", "time_s", "ratio"],
                    title=f"{name}: default {default:.2f} s; worst bounded setting "
                          f"{max(bounded):.1f}x, unbounded (0, 0) "
                          f"{fits[0]['ratio']:.1f}x")
    suffix = "_quick" if args.quick else ""
    if args.only:
        suffix += "_only"
    write_csv(rows, f"penalty_cost{suffix}.csv")


if __name__ == "__main__":
    main()
