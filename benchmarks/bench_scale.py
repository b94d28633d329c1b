"""Scale: dense maps between images of up to 32 x 32 pixels (a million entries), time and memory.

Two families of cases, each a ``SharingDiscoverer(model="linear", random_state=seed)`` fit with the
defaults:

* **circular**: ``make_convolution(100, input_shape=(s, s), kernel_size=(3, 3), mode="circular",
  random_state=seed)``, the 3 x 3 kernel of values 1, 3, ..., 17 on ``s x s`` images,
  ``s^4`` entries (65,536 at 16 x 16, 331,776 at 24 x 24, 1,048,576 at 32 x 32), 100 samples:
  fewer samples than inputs;
* **images**: valid 3 x 3 cross-correlations with random N(0, 1) taps on ``s x s`` patches of
  scikit-learn's sample photographs, noise 0.1 x the spread of the noise-free targets
  (``make_convolution(n, input_shape=(s, s), kernel="random", inputs="images",
  relative_noise=True)``), ``n = 1.5 x`` the number of inputs (1,536 at 32 x 32: 921,600
  entries).

Each fit runs in its own process, which reports its peak resident memory (``ru_maxrss``: the
whole process, Python and torch included). Recorded per fit: the partition distance to the truth,
the fit time, the peak memory, and whether the truth scores better than what came back on the
fit's own objective (a search failure) or not (an objective miss). With a CUDA device the same
fits run with ``device="cuda"`` too (time, and whether the partition equals the CPU's); without
one, the GPU rows are written as not run. Threads: the estimator's default (one per fit on this
machine).

Also recorded: the fit's least memory need as estimated before any work (``need_mib``,
:meth:`~sharelearn.models.closed_form.ClosedFormModel.memory_need`). After the table, the 32 x
32 circular fit runs under several ``memory_budget`` values (``--budgets``): above the need the
search screens its moves in blocks; below it the fit is refused before any work
(``scale_budget.csv``).

Writes ``benchmarks/results/scale.csv`` (``scale_quick.csv`` with ``--quick``: 16 x 16 and
24 x 24, one seed) and, with matplotlib, ``docs/_static/scale.png``: time against entries on
log-log axes with the fitted exponent of each family.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np
from _common import print_table, write_csv

SIDES = (16, 24, 32)


def _data(family, side, seed):
    from sharelearn.datasets import make_convolution

    if family == "circular":
        return make_convolution(100, input_shape=(side, side), kernel_size=(3, 3),
                                mode="circular", random_state=seed)[:3]
    n = int(1.5 * side * side)
    return make_convolution(n, input_shape=(side, side), kernel_size=(3, 3), kernel="random",
                            inputs="images", relative_noise=True, random_state=seed)[:3]


def _fit(family, side, seed, device, queue, budget="auto"):
    """One fit in this (fresh) process; puts its figures on ``queue``."""
    from sharelearn import SharingDiscoverer, partition_distance

    X, Y, truth = _data(family, side, seed)
    est = SharingDiscoverer(model="linear", random_state=seed, device=device,
                            memory_budget=budget)
    start = time.perf_counter()
    try:
        est.fit(X, Y)
    except MemoryError as err:  # refused before any work: report how fast, and the message
        queue.put({"refused": str(err), "fit_s": round(time.perf_counter() - start, 3),
                   "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                     / 1024)})
        return
    fit_s = time.perf_counter() - start
    pd = int(partition_distance(est.sharing_partition_, truth))
    truth_objective = None
    if pd:
        truth_objective = SharingDiscoverer(model="linear", random_state=seed, device=device,
                                            init=truth, n_restarts=0,
                                            local_search=False).fit(X, Y).objective_
    from sharelearn.models import LinearMap

    n = X.shape[0]
    folds = np.array_split(np.arange(n), 5)  # the default 5-fold's part sizes
    need = LinearMap().memory_need(n, X.shape[1], Y.shape[1],
                                   [(np.arange(n - len(f)), f) for f in folds], 8)
    queue.put({
        "need_mib": round(need.minimum / 2**20),
        "pd": pd, "fit_s": round(fit_s, 2), "n_groups": int(est.n_groups_),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "search_failure": bool(truth_objective is not None
                               and truth_objective < est.objective_ - 1e-9),
        "labels": est.sharing_partition_.tolist(),
    })


def run_one(family, side, seed, device, budget="auto"):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fit, args=(family, side, seed, device, queue, budget))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 x 16 and 24 x 24, one seed")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per case (default 3)")
    parser.add_argument("--families", default="circular,images",
                        help="comma-separated: circular, images")
    parser.add_argument("--budgets", default="auto,600MiB,300MiB",
                        help="memory_budget values of the 32 x 32 circular fit run after the "
                             "table (not with --quick)")
    parser.add_argument("--budgets-only", action="store_true",
                        help="only the memory_budget runs")
    args = parser.parse_args(argv)
    if args.budgets_only:
        budget_rows = run_budgets(args.budgets.split(","))
        print_table(budget_rows)
        print(f"wrote {write_csv(budget_rows, 'scale_budget.csv')}")
        return
    import torch

    sides = SIDES[:2] if args.quick else SIDES
    seeds = args.seeds or (1 if args.quick else 3)
    cuda = torch.cuda.is_available()
    rows = []
    name = "scale_quick.csv" if args.quick else "scale.csv"
    for family in args.families.split(","):
        for side in sides:
            for seed in range(seeds):
                cpu = run_one(family, side, seed, "cpu")
                X_shape = _data(family, side, seed)[0].shape if family == "images" else None
                entries = side**4 if family == "circular" else (side - 2) ** 2 * side**2
                row = {"family": family, "image": f"{side}x{side}", "entries": entries,
                       "n_samples": 100 if family == "circular" else X_shape[0], "seed": seed,
                       "pd": cpu["pd"], "search_failure": cpu["search_failure"],
                       "n_groups": cpu["n_groups"], "cpu_fit_s": cpu["fit_s"],
                       "cpu_peak_mib": cpu["peak_mib"], "need_mib": cpu["need_mib"]}
                if cuda:
                    gpu = run_one(family, side, seed, "cuda")
                    row.update(gpu_fit_s=gpu["fit_s"], gpu_same_partition=gpu["labels"]
                               == cpu["labels"], cpu_over_gpu=round(cpu["fit_s"] / gpu["fit_s"],
                                                                    2))
                else:
                    row.update(gpu_fit_s="not run (no CUDA device)", gpu_same_partition="",
                               cpu_over_gpu="")
                rows.append(row)
                print(f"  {family} {side}x{side} seed {seed}: PD {row['pd']}, "
                      f"{row['cpu_fit_s']} s, {row['cpu_peak_mib']} MiB", flush=True)
                write_csv(rows, name)
    print_table(rows)
    print(f"wrote {write_csv(rows, name)}")
    if not args.quick:
        _plot(rows)
        budget_rows = run_budgets(args.budgets.split(","))
        print_table(budget_rows)
        print(f"wrote {write_csv(budget_rows, 'scale_budget.csv')}")


def run_budgets(budgets, side=32, seed=0):
    """The 32 x 32 circular fit under each ``memory_budget``: a budget above the fit's least
    need is met by screening in blocks; one below it is refused before any work."""
    rows = []
    for budget in budgets:
        out = run_one("circular", side, seed, "cpu", budget)
        row = {"image": f"{side}x{side}", "seed": seed, "memory_budget": budget,
               "fit_s": out["fit_s"], "peak_mib": out["peak_mib"]}
        if "refused" in out:
            row.update(pd="refused", n_groups="", message=out["refused"])
        else:
            row.update(pd=out["pd"], n_groups=out["n_groups"], message="")
        rows.append(row)
        print(f"  budget {budget}: {row['pd']}, {row['fit_s']} s, {row['peak_mib']} MiB",
              flush=True)
        write_csv(rows, "scale_budget.csv")
    return rows


def _plot(rows):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for family, marker in (("circular", "o"), ("images", "s")):
        sub = [r for r in rows if r["family"] == family]
        if not sub:
            continue
        x = np.array([r["entries"] for r in sub], dtype=float)
        y = np.array([r["cpu_fit_s"] for r in sub], dtype=float)
        slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
        ax.loglog(x, y, marker, label=f"{family}: time ~ entries^{slope:.2f}", alpha=0.7)
        grid = np.geomspace(x.min(), x.max(), 20)
        ax.loglog(grid, np.exp(intercept) * grid**slope, "-", color="grey", lw=0.8)
    ax.set_xlabel("entries of the dense map")
    ax.set_ylabel("fit time on one CPU thread (s)")
    ax.legend()
    ax.grid(True, which="both", lw=0.3)
    path = Path(__file__).resolve().parents[1] / "docs" / "_static" / "scale.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
