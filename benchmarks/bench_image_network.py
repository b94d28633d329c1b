"""Networks on real images: a convolution discovered as the sharing of a dense layer's entries.

**Teacher** (``--part teacher``; the truth is known). Inputs: the 8 x 8 digits of
``sklearn.datasets.load_digits``, each pixel standardised, in a random order per seed. Targets: a
teacher network whose first layer is a 3 x 3 valid convolution (one or two output channels) with
N(0, 1) taps, then ReLU and a random linear read-out (N(0, 1/36) weights), plus Gaussian noise
of 0.1 times the clean targets' standard deviation. The student has the same architecture with a
*dense* first layer, 64 -> 36 per channel (2,304 or 4,608 entries, the items:
``share={"dense.weight": None}``). It is fitted on the first ``n`` images (500 or 1,500) and
tested on the rest (1,297 or 297). Per fit:

* ``pd``: the partition distance to the teacher's sharing (one group per channel and tap, and
  one of the structural zeros);
* ``reading``: the convolution the found sharing coarsens
  (:func:`sharelearn.symmetry.convolution_reading`);
* ``test_mse`` of the discovered network, beside the same student tied by the true sharing and
  the dense student (the same estimator with ``init`` set to that sharing or to every entry
  apart, ``local_search=False``), in units of the targets' variance;
* ``search_failure``: the true sharing's objective (the same fit's scorer, same
  initialisations) beats the found one's: the search missed; otherwise a miss is the
  objective's preference;
* the fit time.

**Real labels** (``--part labels``): digit classification (10 classes), the first 1,200 images
(per seed's order) fitted and the other 597 tested. ``NetworkSharingClassifier`` with the
student (64 -> 36 dense, ReLU, 36 -> 10) discovering its sharing, beside the hand-built CNN of the
same size (the student tied by the 3 x 3 convolution's sharing) and the dense network. Recorded:
test accuracy, the found sharing's distance to the 3 x 3 convolution's, and its reading.

Writes ``benchmarks/results/image_network*.csv``; ``--quick`` runs one seed of the smallest
settings. Run ``--part teacher --channels 2`` and the others in separate processes to use two
cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import print_table, write_csv
from torch import nn


def digits(seed):
    from sklearn.datasets import load_digits

    data = load_digits()
    X = data.data
    scale = X.std(0)
    X = (X - X.mean(0)) / np.where(scale > 0, scale, 1.0)
    order = np.random.default_rng(seed).permutation(len(X))
    return X[order], data.target[order]


def conv_sharing(n_channels):
    """Labels of a 3 x 3 valid convolution 8 x 8 -> n_channels x 6 x 6 (channel-first rows)."""
    from sharelearn.symmetry import shift_hypotheses

    name = ("valid 3 x 3 kernel, 8 x 8 -> 6 x 6" if n_channels == 1 else
            f"valid 3 x 3 kernel, {n_channels} channels, 8 x 8 -> {n_channels} x 6 x 6")
    return shift_hypotheses((36 * n_channels, 64), max_channels=max(1, n_channels))[name]


def conv_weights(labels, taps):
    """The entries of a convolution's matrix: ``taps`` (in the order of the labels) on its
    groups, and 0 on the structural zeros (its largest group)."""
    zero = np.bincount(labels).argmax()
    values = np.insert(np.asarray(taps, dtype=float), zero, 0.0)
    return values[labels]


def teacher(seed, n_channels, noise=0.1):
    """``(X, y, truth, W)``: the teacher's targets on the seed's order of the digits, its
    sharing and its first layer."""
    X, _ = digits(seed)
    rng = np.random.default_rng(10_000 + seed)
    truth = conv_sharing(n_channels)
    W = conv_weights(truth, rng.standard_normal(9 * n_channels)).reshape(36 * n_channels, 64)
    readout = rng.standard_normal(36 * n_channels) / 6
    clean = np.maximum(X @ W.T, 0) @ readout
    y = clean + noise * clean.std() * rng.standard_normal(len(clean))
    return X, y, truth, W


class Student(nn.Module):
    """Dense 64 -> hidden (no bias, the shared layer), ReLU, linear read-out."""

    def __init__(self, hidden=36, n_outputs=1):
        super().__init__()
        self.dense = nn.Linear(64, hidden, bias=False)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.out(torch.relu(self.dense(x)))


SHARE = {"dense.weight": None}


def _fit(estimator_class, X, y, *, init="auto", local_search=True, **kwargs):
    est = estimator_class(Student, share=SHARE, init=init, local_search=local_search, **kwargs)
    start = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - start


THREADS = {}


def merged_values(found, truth, values):
    """The teacher's values that the found partition puts in one group, per merged group
    (``"0.023+0"``: a tap of 0.023 merged into the zeros), or ``""`` if none are merged."""
    out = []
    for g in np.unique(found):
        members = np.unique(truth[found == g])
        if members.size > 1:
            out.append("+".join(f"{values[t]:.3g}" for t in members))
    return "; ".join(out)


def teacher_rows(seed, n, n_channels, objective):
    from sharelearn import NetworkSharingDiscoverer, partition_distance
    from sharelearn.symmetry import convolution_reading

    X, y, truth, W = teacher(seed, n_channels)
    kwargs = dict(module__hidden=36 * n_channels, loss="mse", objective=objective,
                  random_state=seed, **THREADS)
    found, fit_s = _fit(NetworkSharingDiscoverer, X[:n], y[:n], **kwargs)
    true, _ = _fit(NetworkSharingDiscoverer, X[:n], y[:n], init=truth, local_search=False,
                   **kwargs)
    dense, _ = _fit(NetworkSharingDiscoverer, X[:n], y[:n], init=np.arange(truth.size),
                    local_search=False, **kwargs)
    var = float(np.var(y[n:]))

    def test_mse(est):
        return float(np.mean((est.predict(X[n:]) - y[n:]) ** 2) / var)

    pd = int(partition_distance(found.sharing_partition_, truth))
    values = np.array([W.ravel()[truth == t][0] for t in range(truth.max() + 1)])
    return {"part": "teacher", "channels": n_channels, "n": n, "objective": objective,
            "seed": seed, "pd": pd, "exact": pd == 0, "n_groups": found.n_groups_,
            "reading": convolution_reading(found.sharing_partition_, (truth.size // 64, 64),
                                           max_channels=4),
            "objective_found": round(found.objective_, 2),
            "objective_truth": round(true.objective_, 2),
            "search_failure": bool(pd > 0 and true.objective_ < found.objective_ - 1e-6),
            "test_mse": round(test_mse(found), 4), "test_mse_true_sharing": round(
                test_mse(true), 4), "test_mse_dense": round(test_mse(dense), 4),
            "fit_s": round(fit_s, 1),
            "merged": merged_values(found.sharing_partition_, truth, values),
            "partition": " ".join(map(str, found.sharing_partition_))}


def label_rows(seed, objective, n_fit=1200):
    from sharelearn import NetworkSharingClassifier, partition_distance
    from sharelearn.symmetry import convolution_reading

    X, labels = digits(seed)
    conv = conv_sharing(1)
    kwargs = dict(module__n_outputs=10, objective=objective, random_state=seed, **THREADS)
    out = []
    for name, extra in (("discovered", {}),
                        ("cnn (3 x 3 sharing)", dict(init=conv, local_search=False)),
                        ("dense", dict(init=np.arange(conv.size), local_search=False))):
        est, fit_s = _fit(NetworkSharingClassifier, X[:n_fit], labels[:n_fit],
                          **{**kwargs, **extra})
        accuracy = float(np.mean(est.predict(X[n_fit:]) == labels[n_fit:]))
        out.append({"part": "labels", "network": name, "objective": objective, "seed": seed,
                    "accuracy": round(accuracy, 4), "n_groups": est.n_groups_,
                    "pd_to_conv": int(partition_distance(est.sharing_partition_, conv)),
                    "reading": convolution_reading(est.sharing_partition_, (36, 64),
                                                   max_channels=4),
                    "fit_s": round(fit_s, 1),
                    "partition": " ".join(map(str, est.sharing_partition_))
                    if name == "discovered" else ""})
    return out


def _summary_teacher(rows):
    out = []
    keys = sorted({(r["channels"], r["n"], r["objective"]) for r in rows})
    for channels, n, objective in keys:
        sub = [r for r in rows if (r["channels"], r["n"], r["objective"]) == (channels, n,
                                                                               objective)]
        misses = [r for r in sub if not r["exact"]]
        out.append({
            "channels": channels, "entries": 2304 * channels, "n": n, "objective": objective,
            "exact": f"{sum(r['exact'] for r in sub)}/{len(sub)}",
            "search_failures": sum(r["search_failure"] for r in sub),
            "objective_misses": sum(not r["search_failure"] for r in misses),
            "median_pd": float(np.median([r["pd"] for r in sub])),
            "test_mse": round(float(np.median([r["test_mse"] for r in sub])), 4),
            "true_sharing": round(float(np.median([r["test_mse_true_sharing"] for r in sub])), 4),
            "dense": round(float(np.median([r["test_mse_dense"] for r in sub])), 4),
            "median_fit_s": round(float(np.median([r["fit_s"] for r in sub])), 1),
            "max_fit_s": max(r["fit_s"] for r in sub)})
    return out


def _summary_labels(rows):
    out = []
    for objective in sorted({r["objective"] for r in rows}):
        for network in ("discovered", "cnn (3 x 3 sharing)", "dense"):
            acc = np.array([r["accuracy"] for r in rows
                            if (r["objective"], r["network"]) == (objective, network)])
            if not acc.size:
                continue
            half = (1.96 * acc.std(ddof=1) / np.sqrt(acc.size)) if acc.size > 1 else float("nan")
            pds = [r["pd_to_conv"] for r in rows
                   if (r["objective"], r["network"]) == (objective, network)]
            out.append({"objective": objective, "network": network, "seeds": acc.size,
                        "accuracy": round(float(acc.mean()), 4),
                        "ci95": f"[{acc.mean() - half:.4f}, {acc.mean() + half:.4f}]",
                        "median_pd_to_conv": float(np.median(pds))})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("teacher", "labels"), default="teacher")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, nargs="+", default=[1500, 500])
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--objectives", nargs="+", default=["validation", "evidence"])
    parser.add_argument("--quick", action="store_true",
                        help="one seed, n = 500, one channel")
    parser.add_argument("--tag", default="", help="suffix of the CSV names")
    parser.add_argument("--threads", type=int, default=None,
                        help="n_threads of every fit (default: the package's choice); 1 when "
                             "two runs share two cores")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.n, args.channels = 1, [500], [1]
    if args.threads is not None:
        THREADS["n_threads"] = args.threads
    rows = []
    if args.part == "teacher":
        for n_channels in args.channels:
            for n in args.n:
                for objective in args.objectives:
                    for seed in range(args.seeds):
                        row = teacher_rows(seed, n, n_channels, objective)
                        rows.append(row)
                        write_csv(rows, f"image_network_teacher{args.tag}.csv")  # as it goes
                        print({k: row[k] for k in ("channels", "n", "objective", "seed", "pd",
                                                   "search_failure", "test_mse", "fit_s")},
                              flush=True)
        summary = _summary_teacher(rows)
    else:
        for objective in args.objectives:
            for seed in range(args.seeds):
                for row in label_rows(seed, objective):
                    rows.append(row)
                    print({k: row[k] for k in ("network", "objective", "seed", "accuracy",
                                               "pd_to_conv", "fit_s")}, flush=True)
                write_csv(rows, f"image_network_labels{args.tag}.csv")  # as it goes
        summary = _summary_labels(rows)
    print_table(summary)
    name = f"image_network_{args.part}{args.tag}"
    write_csv(rows, f"{name}.csv")
    print(f"wrote {write_csv(summary, f'{name}_summary.csv')}")


if __name__ == "__main__":
    main()
