"""Realistic shift tasks: random-valued kernels, correlated inputs, natural-image patches.

Every case is a valid cross-correlation with kernel taps drawn N(0, 1) and noise 0.1 x std of the
noise-free targets (``make_convolution(kernel="random", relative_noise=True)``):

* 1-D, 64 inputs, k = 5: independent inputs and AR(1) inputs with coefficient 0.9;
* 2-D 3 x 3 on 8 x 8 images, independent inputs;
* 3 x 3 on 8 x 8, 10 x 10 and 16 x 16 patches of scikit-learn's sample photographs.

Each fit is classified against the truth on the estimator's own objective, obtained through the
public API (``init=truth, n_restarts=0, local_search=False``, same data and ``random_state``):

* exact: partition distance 0;
* search failure: the truth scores better than what came back (the engine failed);
* objective miss: the returned partition scores better than the truth (the objective prefers
  it); ``min_se_merged`` is how many standard errors apart the closest two true groups that the
  returned partition merges are (``inf`` when it merges none).

``min_se_truth`` is the smallest distance between two true groups in standard errors of the
difference of their least-squares estimates (docs/method.md, "what resolvable means"): the
case is resolvable when it is 5 or more. Peak memory is the resident-set high-water mark of the
fit, run in a forked child.

    python benchmarks/bench_realistic.py [--quick] [--seeds N] [--objective validation|evidence]
        [--no-memory] [--only TEXT]

A single ``--objective`` writes ``realistic_<objective>.csv`` (so that the two can run side by
side, one per core).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from _common import (
    RESOLVABLE_SE,
    group_standard_errors,
    merged_pairs,
    mib,
    min_se_apart,
    print_table,
    rss_peak_of_call,
    true_values,
    write_csv,
)

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution

NOISE = 0.1  # times the standard deviation of the noise-free targets


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: tuple
    kernel_size: tuple
    inputs: str
    correlation: float
    n_samples: int


def cases(quick):
    ns_1d, ns_2d, ns_img = (100, 200, 500), (200, 500, 1000), (300, 1000, 2000)
    out = []
    for n in ns_1d:
        out.append(Case(f"1-D 64 k5 iid n={n}", (64,), (5,), "normal", 0.0, n))
        out.append(Case(f"1-D 64 k5 AR0.9 n={n}", (64,), (5,), "normal", 0.9, n))
    for n in ns_2d:
        out.append(Case(f"2-D 8x8 3x3 iid n={n}", (8, 8), (3, 3), "normal", 0.0, n))
    for size in (8, 10, 16):
        for n in ns_img:
            out.append(Case(f"images {size}x{size} 3x3 n={n}", (size, size), (3, 3), "images",
                            0.0, n))
    if quick:
        keep = {"1-D 64 k5 iid n=100", "1-D 64 k5 AR0.9 n=200", "2-D 8x8 3x3 iid n=200",
                "images 8x8 3x3 n=300", "images 10x10 3x3 n=1000"}
        out = [c for c in out if c.name in keep]
    return out


def make(case, seed):
    return make_convolution(case.n_samples, input_shape=case.input_shape,
                            kernel_size=case.kernel_size, mode="valid", kernel="random",
                            inputs=case.inputs, correlation=case.correlation, noise=NOISE,
                            relative_noise=True, random_state=seed)


def fit(X, Y, seed, objective, **params):
    est = SharingDiscoverer(model="linear", objective=objective, random_state=seed, **params)
    return est.fit(X, Y)


def run_case(case, seeds, objective, memory):
    rows = []
    for seed in seeds:
        X, Y, truth, weight = make(case, seed)
        noise_sd = NOISE * float((X @ weight.T).std())
        se = group_standard_errors(X, Y, truth, noise_sd)
        values = true_values(truth, weight)
        start = time.perf_counter()
        est = fit(X, Y, seed, objective)
        elapsed = time.perf_counter() - start
        found = est.sharing_partition_
        pd = partition_distance(found, truth)
        truth_value = fit(X, Y, seed, objective, init=truth, n_restarts=0,
                          local_search=False).objective_
        tol = 1e-9 * max(1.0, abs(truth_value))
        merged = merged_pairs(truth, found) if pd else []
        peak = rss_peak_of_call(fit, X, Y, seed, objective)[0] if memory else None
        rows.append(dict(
            case=case.name, seed=seed, entries=truth.size, pd=pd, n_groups=est.n_groups_,
            true_groups=int(truth.max()) + 1, objective=est.objective_,
            truth_objective=truth_value,
            search_failure=bool(pd and truth_value < est.objective_ - tol),
            objective_miss=bool(pd and truth_value >= est.objective_ - tol),
            min_se_truth=min_se_apart(values, se),
            min_se_merged=min_se_apart(values, se, merged) if merged else np.inf,
            time_s=elapsed, peak_mib=mib(peak)))
    return rows


def summarise(case, rows):
    pds = np.array([r["pd"] for r in rows])
    times = np.array([r["time_s"] for r in rows])
    misses = [r for r in rows if r["objective_miss"]]
    resolvable = [r for r in rows if r["min_se_truth"] >= RESOLVABLE_SE]
    peaks = [r["peak_mib"] for r in rows if r["peak_mib"] is not None]
    return dict(
        case=case.name, entries=rows[0]["entries"], seeds=len(rows),
        exact=int(np.sum(pds == 0)), mean_pd=float(pds.mean()),
        search_failures=sum(r["search_failure"] for r in rows),
        objective_misses=len(misses),
        miss_min_se=min((r["min_se_merged"] for r in misses), default=np.inf),
        resolvable=len(resolvable),
        exact_resolvable=sum(r["pd"] == 0 for r in resolvable),
        median_s=float(np.median(times)), max_s=float(times.max()),
        peak_mib=max(peaks) if peaks else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 cases, 3 seeds")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--objective", choices=("validation", "evidence", "both"),
                        default="both")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory refit in a forked child")
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (3 if args.quick else 10)
    objectives = ("validation", "evidence") if args.objective == "both" else (args.objective,)
    summary, fits = [], []
    start = time.perf_counter()
    for objective in objectives:
        for case in cases(args.quick):
            if args.only and args.only not in case.name:
                continue
            rows = run_case(case, range(n_seeds), objective, memory=not args.no_memory)
            for r in rows:
                r["objective_kind"] = objective
            fits += rows
            row = {"objective_kind": objective, **summarise(case, rows)}
            summary.append(row)
            print_table([row], floatfmt=".3g")
    print_table(summary, floatfmt=".3g", title="Realistic shift tasks")
    suffix = ("_quick" if args.quick else "") + (
        "" if args.objective == "both" else f"_{args.objective}")
    write_csv(summary, f"realistic{suffix}.csv")
    write_csv(fits, f"realistic_fits{suffix}.csv")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
