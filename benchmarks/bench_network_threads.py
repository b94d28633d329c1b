"""Module models with ``n_jobs``: the search's candidate retrains in threads.

Fits ``NetworkSharingDiscoverer("sequence")`` on the sum-of-numbers data of
``bench_sum_of_numbers.py`` (paper sizes, same splits and seeds) serially and with ``n_jobs=2``,
and reports the fit times and whether the two fits chose the same partition with the same
objective (they must: each retrain is the same computation in whichever thread it runs). Run it
on an otherwise idle machine: the threaded fit needs both cores.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_network_threads.py [--quick]

``--quick``: alternating L = 4 only. The full run: alternating L = 4, 6, 8, seed 0. Writes
``benchmarks/results/network_threads.csv`` (``*_quick.csv`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os

import torch
from _common import print_table, write_csv

from sharelearn import NetworkSharingDiscoverer
from sharelearn.datasets import make_sum_of_numbers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lengths = [4] if args.quick else [4, 6, 8]
    rows = []
    for length in lengths:
        X, y, truth = make_sum_of_numbers(500, length=length, variant="alternating", noise=0.5,
                                          random_state=0)
        fits = {}
        for n_jobs in (None, 2):
            load = os.getloadavg()[0]
            est = NetworkSharingDiscoverer("sequence", reference=truth, cv=0.6,
                                           validation_fraction=0.5, dtype="float32",
                                           random_state=0, n_jobs=n_jobs).fit(X, y)
            fits[n_jobs] = (est, load)
        (serial, load1), (threaded, load2) = fits[None], fits[2]
        row = dict(L=length, PD=int(-serial.score(X, y)),
                   same=bool((serial.sharing_partition_ == threaded.sharing_partition_).all()
                             and serial.objective_ == threaded.objective_),
                   serial_s=serial.fit_time_, threads2_s=threaded.fit_time_,
                   speedup=serial.fit_time_ / threaded.fit_time_, load1_serial=load1,
                   load1_threads=load2)
        rows.append(row)
        print(row, flush=True)
    print_table(rows, title="\nModule models: serial against n_jobs=2 (threads)")
    write_csv(rows, "network_threads_quick.csv" if args.quick else "network_threads.csv")


if __name__ == "__main__":
    main()
