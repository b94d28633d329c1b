"""Sum of numbers (permutation invariance): recovery of a network's sharing across positions.

Data: ``sharelearn.datasets.make_sum_of_numbers(500, length=L, variant=..., noise=0.5,
random_state=seed)`` (digits 1..9, target noise U(-0.5, 0.5)), split as in the paper: 250
early-stopping sequences (``validation_fraction=0.5``), and of the other 250, 100 train and 150
validation (``cv=0.6``). Test: 100,000 noise-free sequences
(``make_sum_of_numbers(100_000, noise=0, random_state=10_000 + seed)``).

Fit: ``NetworkSharingDiscoverer("sequence", reference=labels, cv=0.6, validation_fraction=0.5,
dtype="float32", random_state=seed)``, defaults otherwise (embedding 500, hidden 50, L1 loss on
standardised targets, 1 relaxation restart plus the search from the shared start, conjugate-
gradient hypergradients, each partition the search scores retrained from 3 initialisations).
``-score()`` is the partition distance (PD) to the truth: ``"shared"`` (rank 1, every position
in one group) or ``"alternating"`` (rank 2, signs +1, -1, ...).

Baselines, trained independently of the discoverer: a new network initialised from seeds the
discoverer does not use (``10**6 + 10 * seed + i``), tied by the *oracle* (true) sharing or by
*no sharing* (every position its own layer), trained by the package's recipe (``search_inits``
short retrains, the skorch refit from each with the same epochs and early stopping, the best on
the early-stopping rows kept) on the same train, validation and early-stopping rows. Each row
reports the test MAE of the three and the discoverer's MAE relative to the oracle's. ``fit_s``
is the estimator's ``fit_time_``. Each case also records ``os.getloadavg()`` (1-minute) at its
start: other jobs on the machine inflate the timings.

Targets: PD = 0 in all fits; test MAE within 10% of the oracle's; under 60 s per fit at L = 4.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_sum_of_numbers.py [--quick]
        [--lengths 2 4 ...] [--seeds N] [--variants shared alternating] [--no-baselines]

``--quick``: L in {2, 4}, 1 seed. The full run is L in {2, 4, 6, 8, 10}, 5 seeds, both variants
(50 fits). Writes ``benchmarks/results/sum_of_numbers_fits.csv`` (one row per fit) and
``sum_of_numbers.csv`` (summary per L and variant); ``--quick`` writes ``*_quick.csv`` and a
run with any of ``--lengths``/``--seeds``/``--variants`` ``*_partial.csv``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from _common import print_table, write_csv
from sklearn.utils import check_random_state

from sharelearn import NetworkSharingDiscoverer
from sharelearn.datasets import make_sum_of_numbers
from sharelearn.models import network_model
from sharelearn.models.module import _REFIT_LR_FACTOR
from sharelearn.networks.objective import NetworkValidationObjective
from sharelearn.networks.refit import refit_best
from sharelearn.penalties import Penalties

N_SAMPLES = 500
N_TEST = 100_000
BASELINE_SEED = 1_000_000  # the baselines' networks: seeds 10**6 + 10 * seed + i


def _test_mae(module, est, X_test, y_test):
    module = module.cpu().eval()
    with torch.no_grad():
        out = module(torch.as_tensor(X_test)).numpy()[:, 0].astype(np.float64)
    pred = out * est.target_scale_[0] + est.target_mean_[0]
    return float(np.mean(np.abs(pred - y_test)))


def _baseline_mae(est, X, y, labels, X_test, y_test, seed):
    """Train a fixed sharing independently of the discoverer: a new network (initialised from
    seeds the discoverer does not use), tied by ``labels`` and trained by the package's recipe
    (``search_inits`` short retrains, the skorch refit from each, the best on the early-stopping
    rows kept) on the discoverer's samples: the same train, validation and early-stopping rows."""
    train, val, stop = est._module_splits(X.shape[0], check_random_state(seed))
    Y = ((y - est.target_mean_[0]) / est.target_scale_[0]).astype(np.float32)[:, None]
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    t0 = time.perf_counter()
    model = network_model(est)  # builds the module as the fit does
    templates = [model.build(X, 1, BASELINE_SEED + 10 * seed + i)
                 for i in range(est.search_inits)]
    penalties = Penalties.from_params(nuclear=est.nuclear, code_length=est.code_length)
    scorer = NetworkValidationObjective(
        templates, est._module_share_, (Xt[train], Yt[train], Xt[val], Yt[val]),
        steps=est.search_steps, lr=est.inner_learning_rate, loss=est.loss,
        weight_decay=est.weight_decay, n_obs=len(train), penalties=penalties,
        dtype=torch.float32, device="cpu")
    fit = np.concatenate([train, val])
    module, _, _ = refit_best(scorer.trained_modules(labels), X=Xt[fit], y=Yt[fit],
                              X_stop=Xt[stop], y_stop=Yt[stop],
                              lr=_REFIT_LR_FACTOR * est.inner_learning_rate,
                              loss=est.loss, weight_decay=est.weight_decay,
                              max_epochs=est.max_epochs, patience=est.patience, device="cpu",
                              verbose=0)
    return _test_mae(module, est, X_test, y_test), time.perf_counter() - t0


def run_case(length, variant, seed, baselines):
    X, y, truth = make_sum_of_numbers(N_SAMPLES, length=length, variant=variant,
                                      random_state=seed)
    X_test, y_test, _ = make_sum_of_numbers(N_TEST, length=length, variant=variant, noise=0.0,
                                            random_state=10_000 + seed)
    load = os.getloadavg()[0]
    est = NetworkSharingDiscoverer("sequence", reference=truth, cv=0.6,
                                   validation_fraction=0.5, dtype="float32",
                                   random_state=seed)
    t0 = time.perf_counter()
    est.fit(X, y)
    wall = time.perf_counter() - t0
    mae = _test_mae(est.to_module(), est, X_test, y_test)
    row = dict(L=length, variant=variant, seed=seed, PD=int(-est.score(X, y)),
               found="".join(map(str, est.sharing_partition_)), mae=mae, fit_s=est.fit_time_,
               wall_s=wall, load1=load)
    if baselines:
        row["oracle_mae"], row["oracle_s"] = _baseline_mae(est, X, y, truth, X_test, y_test,
                                                           seed)
        row["unshared_mae"], _ = _baseline_mae(est, X, y, np.arange(length), X_test, y_test,
                                               seed)
        row["mae_vs_oracle"] = mae / row["oracle_mae"]
    return row


def summarise(rows, baselines):
    out = []
    keys = sorted({(r["variant"], r["L"]) for r in rows}, key=lambda k: (k[0] != "shared", k))
    for variant, length in keys:
        sel = [r for r in rows if r["variant"] == variant and r["L"] == length]
        summary = dict(variant=variant, L=length, fits=len(sel),
                       PD0=sum(r["PD"] == 0 for r in sel),
                       mean_PD=statistics.fmean(r["PD"] for r in sel),
                       mae=statistics.fmean(r["mae"] for r in sel),
                       fit_s_mean=statistics.fmean(r["fit_s"] for r in sel),
                       fit_s_max=max(r["fit_s"] for r in sel))
        if baselines:
            summary["oracle_mae"] = statistics.fmean(r["oracle_mae"] for r in sel)
            summary["unshared_mae"] = statistics.fmean(r["unshared_mae"] for r in sel)
            summary["mae_vs_oracle"] = statistics.fmean(r["mae_vs_oracle"] for r in sel)
        out.append(summary)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lengths", type=int, nargs="+")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--variants", nargs="+", choices=["shared", "alternating"])
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--suffix", default=None,
                        help="suffix of the CSV names (e.g. to run the variants in two "
                             "processes); default '', '_quick' or '_partial'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lengths = args.lengths or ([2, 4] if args.quick else [2, 4, 6, 8, 10])
    n_seeds = args.seeds or (1 if args.quick else 5)
    variants = args.variants or ["shared", "alternating"]
    baselines = not args.no_baselines
    suffix = "_quick" if args.quick else (
        "_partial" if (args.lengths or args.seeds or args.variants) else "")
    if args.suffix is not None:
        suffix = args.suffix

    # warm-up: the first fit pays torch's one-off initialisation
    X, y, _ = make_sum_of_numbers(60, length=2, random_state=0)
    NetworkSharingDiscoverer("sequence", max_iter=2, search_steps=5, max_epochs=5,
                             module__embedding_dim=4, module__hidden=2).fit(X, y)

    rows = []
    for variant in variants:
        for length in lengths:
            for seed in range(n_seeds):
                row = run_case(length, variant, seed, baselines)
                rows.append(row)
                print(f"{variant:11s} L={length:2d} seed={seed} PD={row['PD']} "
                      f"found={row['found']} mae={row['mae']:.4f} "
                      + (f"oracle={row['oracle_mae']:.4f} unshared={row['unshared_mae']:.4f} "
                         if baselines else "")
                      + f"fit={row['fit_s']:.1f}s load={row['load1']:.2f}", flush=True)
                write_csv(rows, f"sum_of_numbers_fits{suffix}.csv")
    summary = summarise(rows, baselines)
    print_table(summary, title="\nSum of numbers: sharelearn NetworkSharingDiscoverer('sequence')")
    write_csv(summary, f"sum_of_numbers{suffix}.csv")


if __name__ == "__main__":
    main()
