"""Shift (cross-correlation): recovery of a convolution's weight sharing from data.

Data: ``sharelearn.datasets.make_convolution(n_samples, input_shape=..., kernel_size=...,
mode=..., random_state=seed)`` (kernel ``1, 3, 5, ...``, noise 0.1, standard normal inputs). The
truth ties every entry of the dense weight matrix to the kernel tap that lands on it; the
structural zeros form one more group. Fit: ``SharingDiscoverer(model="linear", reference=labels,
random_state=seed).fit(X, Y)``, defaults otherwise (cv=5 shuffled folds of all the samples);
``-score()`` is the partition distance (PD) to the truth. The seed is the ``random_state`` of both
the data and the discoverer.

Cases (10 seeds each, ``--seeds``)
----------------------------------
* ``valid_in3_k2``, ``valid_in5_k3``, ``valid_in7_k3``, ``valid_in10_k3``: valid 1-D
  cross-correlation at the paper's sizes (6, 15, 35, 80 entries), n_samples = 150 (the paper's 50
  train + 100 validation, here used by 5-fold CV);
* ``valid_in70_k3``: 70 -> 68, kernel 3 (4,760 entries), n_samples = 150;
* ``circular_256_k3``: circular 256 -> 256, kernel 3 (65,536 entries), n_samples = 100;
* ``circular2d_16x16_k3x3``: circular 2-D on 16 x 16 images, 3 x 3 kernel (65,536 entries),
  n_samples = 100.

Each fit runs in a forked child process (:func:`_common.rss_peak_of_call`), which gives its peak
resident set size (``rss_peak_MiB``: the child's whole peak, interpreter, torch and the data
included; ``rss_inc_MiB``: that peak minus the child's high-water mark just before the fit). The
wall time per fit is the estimator's ``fit_time_`` (an outer timer around ``fit`` is recorded
too, ``wall_s``). For a wrong partition, ``truth_minus_found`` is the estimator's objective of the
true partition (on the very folds it drew) minus ``objective_``: positive means the objective
itself prefers the wrong partition, negative that the search missed a better one.

Targets: PD = 0 in at least 9 of 10 seeds at every size; time per fit under 5 s at 4,760 entries
and under 60 s at 65,536.

Small-data curve (``curve``)
----------------------------
Valid 1-D, input 64, kernel 3 (62 x 64 = 3,968 entries), n_samples in {20, 30, 40, 60, 100, 200},
10 seeds. PD of sharelearn beside the baseline "clustering the untied estimate": the untied linear
map fitted by ``Ridge(alpha=RidgeCV(alphas=logspace(-6, 4, 41)).alpha_, fit_intercept=True)``,
its entries (1-D values) clustered by ``KMeans`` with the *true* number of groups (4: three taps
and the zeros; a generous oracle-k baseline), PD of those clusters to the truth. Target:
sharelearn PD = 0 at n_samples >= 40. These fits run in the main process (no memory figure).

One small warm-up fit runs in the main process before any timing, so that the forked children
do not each pay the first fit's one-off initialisation. Each case also records
``os.getloadavg()`` (1-minute) at its start: other jobs on the machine inflate the timings.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_shift.py [--quick] [--only NAME ...]

``--quick``: 2 seeds, only the paper's four sizes and the curve at n_samples in {20, 40}.
``--only NAME`` (repeatable): run only the named cases (``curve`` for the whole curve, or
``curve_n40`` for one of its points). Writes ``benchmarks/results/shift.csv`` (summary per case),
``shift_fits.csv`` (one row per fit), ``shift_curve.csv`` (summary per n_samples and method) and
``shift_curve_fits.csv``; ``--quick`` writes ``*_quick.csv``, ``--only`` ``*_only.csv`` (so a
partial run never overwrites the full tables).
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import sklearn
import torch
from _common import RESULTS_DIR, mib, print_table, rss_peak_of_call, write_csv
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold
from sklearn.utils import check_random_state

import sharelearn
from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution
from sharelearn.models import LinearMap
from sharelearn.penalties import Penalties

TARGET_MIN_EXACT_FRACTION = 0.9  # PD = 0 in at least 9 of 10 seeds
TARGET_TIME_S = {4760: 5.0, 65536: 60.0}
CURVE_N_SAMPLES = (20, 30, 40, 60, 100, 200)
CURVE_N_SAMPLES_QUICK = (20, 40)
CURVE_TARGET_MIN_N = 40
RIDGE_ALPHAS = np.logspace(-6, 4, 41)


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: object
    kernel_size: object
    mode: str
    n_samples: int
    small: bool  # part of --quick

    @property
    def n_entries(self):
        n_in = int(np.prod(self.input_shape))
        if self.mode == "valid":
            ins = np.atleast_1d(self.input_shape)
            ks = np.broadcast_to(np.atleast_1d(self.kernel_size), ins.shape)
            n_out = int(np.prod(ins - ks + 1))
        else:
            n_out = n_in
        return n_out * n_in


CASES = [
    Case("valid_in3_k2", 3, 2, "valid", 150, True),
    Case("valid_in5_k3", 5, 3, "valid", 150, True),
    Case("valid_in7_k3", 7, 3, "valid", 150, True),
    Case("valid_in10_k3", 10, 3, "valid", 150, True),
    Case("valid_in70_k3", 70, 3, "valid", 150, False),
    Case("circular_256_k3", 256, 3, "circular", 100, False),
    Case("circular2d_16x16_k3x3", (16, 16), (3, 3), "circular", 100, False),
]


def load1():
    return round(os.getloadavg()[0], 2)


def fit_discoverer(X, Y, labels, seed):
    """Fit; return ``(PD, fit_time_, outer wall time, n_groups_, objective_, partition)``."""
    start = time.perf_counter()
    disc = SharingDiscoverer(model="linear", reference=labels, random_state=seed).fit(X, Y)
    wall = time.perf_counter() - start
    return (0.0 - float(disc.score(X, Y)), float(disc.fit_time_), wall, int(disc.n_groups_),
            float(disc.objective_), np.asarray(disc.sharing_partition_))


def truth_objective(X, Y, labels, found, seed):
    """The estimator's outer objective of the true partition, on the very folds it drew.

    The folds are rebuilt as ``SharingDiscoverer(cv=5, random_state=seed)`` draws them (its first
    rng call); the objective of the *found* partition is returned too, to check that the rebuilt
    objective is the estimator's (it must equal ``objective_``). A truth objective above the
    found one means the objective prefers the wrong partition (not a search failure)."""
    rng = check_random_state(seed)
    kfold = KFold(n_splits=5, shuffle=True, random_state=rng.randint(2**31))
    splits = [(np.asarray(tr), np.asarray(va)) for tr, va in kfold.split(X)]
    defaults = SharingDiscoverer()
    # the estimator's model, prepared on the same folds (it brings X and Y to internal units)
    model = LinearMap(alpha=defaults.alpha)
    model.prepare(X, Y, splits, dtype=torch.float64, device=torch.device("cpu"))
    objective = model.hard_objective(Penalties.from_params(nuclear=defaults.nuclear,
                                                           code_length=defaults.code_length))
    return objective.state(labels).value, objective.state(found).value


def fit_in_child(X, Y, labels, seed):
    """:func:`fit_discoverer` in a forked child; also its RSS peak and increase (bytes)."""
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as fh:
        path = fh.name
    try:
        def call():
            result = fit_discoverer(X, Y, labels, seed)
            with open(path, "wb") as out:
                pickle.dump(result, out)

        rss_peak, rss_inc = rss_peak_of_call(call)
        if rss_peak is None:  # no fork: fit here, no memory figure
            return (*fit_discoverer(X, Y, labels, seed), None, None)
        with open(path, "rb") as fh:
            result = pickle.load(fh)
    finally:
        os.unlink(path)
    return (*result, rss_peak, rss_inc)


def run_case(case, seeds):
    loadavg = load1()
    print(f"[{time.strftime('%H:%M:%S')}] {case.name}: {case.n_entries} entries, "
          f"n_samples={case.n_samples}, load {loadavg}", flush=True)
    fits = []
    for seed in seeds:
        X, Y, labels, _ = make_convolution(case.n_samples, input_shape=case.input_shape,
                                           kernel_size=case.kernel_size, mode=case.mode,
                                           random_state=seed)
        assert labels.size == case.n_entries
        (pd, fit_time, wall, n_groups, objective, found,
         rss_peak, rss_inc) = fit_in_child(X, Y, labels, seed)
        fits.append({"case": case.name, "entries": case.n_entries, "n_samples": case.n_samples,
                     "seed": seed, "pd": pd, "n_groups": n_groups,
                     "true_groups": int(labels.max()) + 1, "fit_time_s": fit_time,
                     "wall_s": wall, "rss_peak_MiB": mib(rss_peak), "rss_inc_MiB": mib(rss_inc),
                     "load1": load1(), **objective_columns(X, Y, labels, found, seed, objective)})
        print(f"    seed {seed}: PD {pd:g}, groups {n_groups}, fit_time_ {fit_time:.3g} s, "
              f"RSS peak {mib(rss_peak) or float('nan'):.0f} MiB", flush=True)
    times = [f["fit_time_s"] for f in fits]
    pds = [f["pd"] for f in fits]
    n_exact = sum(pd == 0 for pd in pds)
    peaks = [f["rss_peak_MiB"] for f in fits if f["rss_peak_MiB"] is not None]
    incs = [f["rss_inc_MiB"] for f in fits if f["rss_inc_MiB"] is not None]
    time_target = TARGET_TIME_S.get(case.n_entries)
    pd_ok = n_exact >= TARGET_MIN_EXACT_FRACTION * len(seeds)
    summary = {
        "case": case.name, "entries": case.n_entries, "n_samples": case.n_samples,
        "seeds": len(seeds), "pd0_seeds": n_exact, "mean_pd": statistics.fmean(pds),
        "max_pd": max(pds), "median_fit_s": statistics.median(times), "max_fit_s": max(times),
        "rss_peak_MiB": max(peaks) if peaks else None,
        "rss_inc_MiB": max(incs) if incs else None,
        "load1_start": loadavg,
        "target_time_s": time_target,
        "pd_target_met": "yes" if pd_ok else "NO",
        "time_target_met": ("" if time_target is None
                            else "yes" if max(times) < time_target else "NO"),
    }
    return summary, fits


def warm_up():
    """One small fit in this process, so that forked children inherit warmed-up torch/sklearn
    state (the first fit of a process pays about 2 s of one-off initialisation)."""
    X, Y, labels, _ = make_convolution(50, input_shape=5, kernel_size=3, random_state=0)
    fit_discoverer(X, Y, labels, 0)


def objective_columns(X, Y, labels, found, seed, objective):
    """``objective_`` and, when the partition is wrong, the truth's objective (same folds)."""
    row = {"objective": objective, "truth_objective": objective, "truth_minus_found": 0.0}
    if partition_distance(found, labels) > 0:
        truth, rebuilt = truth_objective(X, Y, labels, found, seed)
        if not np.isclose(rebuilt, objective, rtol=1e-9, atol=1e-6):
            print(f"    WARNING: rebuilt objective {rebuilt} != objective_ {objective}: the "
                  f"truth_objective column is not on the estimator's folds", flush=True)
        row.update(truth_objective=truth, truth_minus_found=truth - objective)
    return row


def cluster_untied(X, Y, labels, seed):
    """PD of KMeans (true k) clusters of the ridge estimate's entries; and the chosen alpha."""
    alpha = float(RidgeCV(alphas=RIDGE_ALPHAS, fit_intercept=True).fit(X, Y).alpha_)
    coef = Ridge(alpha=alpha, fit_intercept=True).fit(X, Y).coef_  # (n_out, n_in), row-major
    k = int(labels.max()) + 1
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(coef.reshape(-1, 1))
    return float(partition_distance(clusters, labels)), alpha


def run_curve_point(n_samples, seeds):
    loadavg = load1()
    print(f"[{time.strftime('%H:%M:%S')}] curve n_samples={n_samples}, load {loadavg}",
          flush=True)
    fits = []
    for seed in seeds:
        X, Y, labels, _ = make_convolution(n_samples, input_shape=64, kernel_size=3,
                                           mode="valid", random_state=seed)
        pd, fit_time, wall, n_groups, objective, found = fit_discoverer(X, Y, labels, seed)
        start = time.perf_counter()
        pd_base, alpha = cluster_untied(X, Y, labels, seed)
        base_time = time.perf_counter() - start
        fits.append({"n_samples": n_samples, "seed": seed, "entries": labels.size,
                     "pd_sharelearn": pd, "n_groups": n_groups, "fit_time_s": fit_time,
                     **objective_columns(X, Y, labels, found, seed, objective),
                     "pd_cluster_untied": pd_base, "ridge_alpha": alpha,
                     "cluster_time_s": base_time, "load1": load1()})
        print(f"    seed {seed}: PD sharelearn {pd:g} ({fit_time:.3g} s), "
              f"cluster-untied {pd_base:g} (alpha {alpha:.3g})", flush=True)
    rows = []
    for method, pd_key, t_key in (("sharelearn", "pd_sharelearn", "fit_time_s"),
                                  ("cluster_untied", "pd_cluster_untied", "cluster_time_s")):
        pds = [f[pd_key] for f in fits]
        rows.append({"n_samples": n_samples, "method": method, "entries": fits[0]["entries"],
                     "seeds": len(seeds), "pd0_seeds": sum(p == 0 for p in pds),
                     "mean_pd": statistics.fmean(pds), "median_pd": statistics.median(pds),
                     "max_pd": max(pds),
                     "median_time_s": statistics.median(f[t_key] for f in fits),
                     "load1_start": loadavg})
    return rows, fits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds, the paper's four sizes and two points of the curve")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this case (repeatable): "
                             + ", ".join(c.name for c in CASES)
                             + ", curve, curve_n<N>")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds 0..N-1 (default 10, 2 with --quick)")
    args = parser.parse_args(argv)

    n_seeds = args.seeds if args.seeds is not None else (2 if args.quick else 10)
    seeds = list(range(n_seeds))
    cases = [c for c in CASES if c.small or not args.quick]
    curve_ns = list(CURVE_N_SAMPLES_QUICK if args.quick else CURVE_N_SAMPLES)
    if args.only:
        names = {c.name for c in CASES} | {"curve"} | {f"curve_n{n}" for n in CURVE_N_SAMPLES}
        unknown = [n for n in args.only if n not in names and not n.startswith("curve_n")]
        if unknown:
            parser.error(f"unknown case(s) {unknown}; choose from {sorted(names)}")
        cases = [c for c in CASES if c.name in args.only]
        if "curve" not in args.only:
            curve_ns = [int(n[len("curve_n"):]) for n in args.only if n.startswith("curve_n")]
    suffix = "_quick" if args.quick else ""
    suffix += "_only" if args.only else ""

    print(f"sharelearn {sharelearn.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load {os.getloadavg()}", flush=True)

    warm_up()
    case_rows, case_fits = [], []
    for case in cases:
        summary, fits = run_case(case, seeds)
        case_rows.append(summary)
        case_fits.extend(fits)
        # write after every case, so that a long run leaves its results behind
        write_csv(case_rows, f"shift{suffix}.csv")
        write_csv(case_fits, f"shift_fits{suffix}.csv")

    curve_rows, curve_fits = [], []
    for n_samples in curve_ns:
        rows, fits = run_curve_point(n_samples, seeds)
        curve_rows.extend(rows)
        curve_fits.extend(fits)
        write_csv(curve_rows, f"shift_curve{suffix}.csv")
        write_csv(curve_fits, f"shift_curve_fits{suffix}.csv")

    if case_rows:
        print()
        print_table(case_rows, floatfmt=".3g",
                    title="Shift: SharingDiscoverer(model='linear') on make_convolution, "
                          "noise 0.1 (times = fit_time_ per fit, s; memory = max over seeds)")
        bad = [f for f in case_fits if f["pd"] > 0]
        if bad:
            print("\nSeeds with PD > 0:")
            print_table(bad, ["case", "seed", "pd", "n_groups", "true_groups", "fit_time_s",
                              "rss_peak_MiB", "load1", "truth_minus_found"], floatfmt=".4g")
            print("truth_minus_found > 0: the objective prefers the found partition to the truth "
                  "(a modelling error, not a search failure); < 0: the search missed the truth.")
        print(f"Targets: PD = 0 in >= {TARGET_MIN_EXACT_FRACTION:.0%} of seeds at every size; "
              f"time per fit < 5 s at 4,760 entries and < 60 s at 65,536.")
        print(f"CSV: {RESULTS_DIR / f'shift{suffix}.csv'}, "
              f"{RESULTS_DIR / f'shift_fits{suffix}.csv'}")
    if curve_rows:
        print()
        print_table(curve_rows, floatfmt=".3g",
                    title="Small-data curve: valid 1-D, input 64, kernel 3 (3,968 entries); "
                          "cluster_untied = RidgeCV + KMeans(k = true 4)")
        bad = [f for f in curve_fits if f["pd_sharelearn"] > 0]
        if bad:
            print("\nCurve seeds where sharelearn has PD > 0:")
            print_table(bad, ["n_samples", "seed", "pd_sharelearn", "n_groups", "fit_time_s",
                              "pd_cluster_untied", "load1", "truth_minus_found"], floatfmt=".4g")
        ok = all(r["pd0_seeds"] == r["seeds"] for r in curve_rows
                 if r["method"] == "sharelearn" and r["n_samples"] >= CURVE_TARGET_MIN_N)
        print(f"Target: sharelearn PD = 0 at n_samples >= {CURVE_TARGET_MIN_N}: "
              f"{'met' if ok else 'NOT met'}")
        print(f"CSV: {RESULTS_DIR / f'shift_curve{suffix}.csv'}, "
              f"{RESULTS_DIR / f'shift_curve_fits{suffix}.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
