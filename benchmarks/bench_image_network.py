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
* ``search_failure``: the true sharing's objective beats the found one's: the engine missed;
  otherwise a miss is the objective's preference. The truth is scored twice, with the fit's
  initialisations (``objective_truth``) and again with the teacher's own parameters as the
  first one (``objective_truth_best``, the better of the two): a truth that the retrains from
  random initialisations fail to train would otherwise pass for an objective miss;
* resolvability (:func:`resolvability`): ``min_se_truth``, how many standard errors apart the
  closest two true groups are (a seed is *resolvable* at 5 or more, as in
  ``bench_realistic.py``), ``max_se_merged``, the farthest apart two true groups that the found
  sharing merges, and ``faithful``: the found sharing is the truth with only groups merged
  that are less than 5 standard errors apart;
* the fit time.

``--rescore CSV...`` recomputes the resolvability columns of results already written.

**Real labels** (``--part labels``): digit classification (10 classes), the first 1,200 images
(per seed's order) fitted and the other 597 tested. ``NetworkSharingClassifier`` with the
student (64 -> 36 dense, ReLU, 36 -> 10) discovering its sharing, beside the hand-built CNN of the
same size (the student tied by the 3 x 3 convolution's sharing) and the dense network. Recorded:
test accuracy and log loss, the found sharing's distance to the 3 x 3 convolution's, and its
reading.
``--nuclear`` and ``--code-length`` set the penalties' weights (default: the estimator's); each
row records its objective value, and the summary counts the seeds where the convolution's
sharing scored better than the one found (``conv_scores_better``: a search failure).

**Capacity** (``--part capacity``, under a minute alone): the hand-built CNN and the dense network
with 1, 2 and 4 output channels, trained in plain torch on the same splits, no sharing
discovered: whether the CNN of a width can match the dense network of that width at all.

Writes ``benchmarks/results/image_network*.csv``; ``--quick`` runs one seed of the smallest
settings. Run ``--part teacher --channels 2`` and the others in separate processes to use two
cores.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from _common import merged_pairs, min_se_apart, print_table, write_csv
from torch import nn

NOISE = 0.1  # times the standard deviation of the teacher's clean targets
RESOLVABLE_SE = 5.0  # two groups this many standard errors apart are resolvable (as in
#                      bench_realistic.py)


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


def teacher(seed, n_channels, noise=NOISE):
    """``(X, y, truth, W, readout, noise_sd)``: the teacher's targets on the seed's order of the
    digits, its sharing, first layer, read-out and noise level."""
    X, _ = digits(seed)
    rng = np.random.default_rng(10_000 + seed)
    truth = conv_sharing(n_channels)
    W = conv_weights(truth, rng.standard_normal(9 * n_channels)).reshape(36 * n_channels, 64)
    readout = rng.standard_normal(36 * n_channels) / 6
    clean = np.maximum(X @ W.T, 0) @ readout
    noise_sd = noise * float(clean.std())
    y = clean + noise_sd * rng.standard_normal(len(clean))
    return X, y, truth, W, readout, noise_sd


def group_values(truth, W):
    """The teacher's value of each group of its sharing (0 for the structural zeros)."""
    return np.array([W.ravel()[truth == t][0] for t in range(truth.max() + 1)])


def group_standard_errors(X, truth, W, readout, noise_sd):
    """Standard errors of the differences of every two groups' values (the taps and the zeros'
    group) for the student tied by the true sharing, at the teacher's parameters, on all of
    ``X``: ``SE^2 = sigma^2 c^T (J^T J)^+ c`` with ``J`` the Jacobian of the network's outputs
    in its free parameters (the group values, the read-out and its bias). Scaling every tap up
    and the read-out down by the same factor leaves the network unchanged (a direction of
    ``J``'s null space); the pseudo-inverse holds that scale fixed. The linear benchmark's
    measure (``bench_realistic.group_standard_errors``), linearised at the teacher."""
    m, d = W.shape
    r = int(truth.max()) + 1
    lab = truth.reshape(m, d)
    pre = X @ W.T
    gate = (pre > 0) * readout  # d output / d pre-activation of each hidden unit
    J_values = np.zeros((len(X), r))
    for j in range(m):  # hidden unit j's entries, summed by group
        J_values += gate[:, j, None] * np.stack(
            [X[:, lab[j] == g].sum(1) for g in range(r)], axis=1)
    J = np.hstack([J_values, np.maximum(pre, 0), np.ones((len(X), 1))])
    cov = noise_sd**2 * np.linalg.pinv(J.T @ J)[:r, :r]
    var = np.diag(cov)
    return np.sqrt(np.maximum(var[:, None] + var[None, :] - 2 * cov, 1e-300))


class Student(nn.Module):
    """Dense 64 -> hidden (no bias, the shared layer), ReLU, linear read-out."""

    def __init__(self, hidden=36, n_outputs=1):
        super().__init__()
        self.dense = nn.Linear(64, hidden, bias=False)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.out(torch.relu(self.dense(x)))


SHARE = {"dense.weight": None}


def _fit(estimator_class, X, y, *, module=Student, init="auto", local_search=True, **kwargs):
    est = estimator_class(module, share=SHARE, init=init, local_search=local_search, **kwargs)
    start = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - start


THREADS = {}


def teacher_student(W, readout, y_fit):
    """The student at the teacher's parameters, for targets standardised as the estimator
    standardises ``y_fit``: a first initialisation at the optimum, so that the truth's score
    does not depend on retrains from random initialisations reaching it."""
    mean, scale = float(y_fit.mean()), float(y_fit.std())
    student = Student(hidden=W.shape[0])
    with torch.no_grad():
        student.dense.weight.copy_(torch.as_tensor(W))
        student.out.weight.copy_(torch.as_tensor(readout / scale)[None])
        student.out.bias.fill_(-mean / scale)
    return student


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

    X, y, truth, W, readout, _ = teacher(seed, n_channels)
    kwargs = dict(loss="mse", objective=objective, random_state=seed, **THREADS)
    hidden = dict(module__hidden=36 * n_channels)
    found, fit_s = _fit(NetworkSharingDiscoverer, X[:n], y[:n], **kwargs, **hidden)
    true, _ = _fit(NetworkSharingDiscoverer, X[:n], y[:n], init=truth, local_search=False,
                   **kwargs, **hidden)
    # the truth's best score known: from the fit's initialisations or from the teacher's own
    true_value = min(true.objective_, _fit(
        NetworkSharingDiscoverer, X[:n], y[:n], module=teacher_student(W, readout, y[:n]),
        init=truth, local_search=False, **kwargs)[0].objective_)
    dense, _ = _fit(NetworkSharingDiscoverer, X[:n], y[:n], init=np.arange(truth.size),
                    local_search=False, **kwargs, **hidden)
    var = float(np.var(y[n:]))

    def test_mse(est):
        return float(np.mean((est.predict(X[n:]) - y[n:]) ** 2) / var)

    pd = int(partition_distance(found.sharing_partition_, truth))
    values = group_values(truth, W)
    return {"part": "teacher", "channels": n_channels, "n": n, "objective": objective,
            "seed": seed, "pd": pd, "exact": pd == 0, "n_groups": found.n_groups_,
            "reading": convolution_reading(found.sharing_partition_, (truth.size // 64, 64),
                                           max_channels=4),
            "objective_found": round(found.objective_, 2),
            "objective_truth": round(true.objective_, 2),
            "objective_truth_best": round(true_value, 2),
            "search_failure": bool(pd > 0 and true_value < found.objective_ - 1e-6),
            "test_mse": round(test_mse(found), 4), "test_mse_true_sharing": round(
                test_mse(true), 4), "test_mse_dense": round(test_mse(dense), 4),
            "fit_s": round(fit_s, 1),
            "merged": merged_values(found.sharing_partition_, truth, values),
            "partition": " ".join(map(str, found.sharing_partition_)),
            **resolvability(seed, n, n_channels, found.sharing_partition_)}


def resolvability(seed, n, n_channels, found):
    """How far apart the teacher's groups are for ``n`` samples, and what ``found`` merged:

    * ``min_se_truth``: the closest two true groups, in standard errors of their difference
      (:func:`group_standard_errors`); the seed is *resolvable* at ``RESOLVABLE_SE`` or more;
    * ``max_se_merged``: the farthest apart two true groups that ``found`` merges (0 if none);
    * ``faithful``: ``found`` is the truth with only groups merged that are less than
      ``RESOLVABLE_SE`` apart (every resolvable distinction kept, none invented).
    """
    X, _, truth, W, readout, noise_sd = teacher(seed, n_channels)
    se = group_standard_errors(X[:n], truth, W, readout, noise_sd)
    values = group_values(truth, W)
    pairs = merged_pairs(truth, found)
    far = max((abs(values[g] - values[h]) / se[g, h] for g, h in pairs), default=0.0)
    coarsens = all(np.unique(found[truth == g]).size == 1 for g in range(truth.max() + 1))
    return {"min_se_truth": round(min_se_apart(values, se), 2),
            "max_se_merged": round(float(far), 2),
            "faithful": bool(coarsens and far < RESOLVABLE_SE)}


def label_rows(seed, objective, n_fit=1200, penalties=None):
    """The discovered, CNN and dense networks of one seed; ``penalties`` (a dict of
    ``nuclear`` and ``code_length``, default the estimator's) weight the objective of all three
    (the CNN and the dense network are trained at a fixed sharing, which the penalties do not
    change; their ``objective_value`` says whether the search missed a sharing its objective
    prefers)."""
    from sklearn.metrics import log_loss

    from sharelearn import NetworkSharingClassifier, partition_distance
    from sharelearn.symmetry import convolution_reading

    X, labels = digits(seed)
    conv = conv_sharing(1)
    penalties = dict(penalties or {})
    weights = ", ".join(f"{k}={v:g}" for k, v in sorted(penalties.items())) or "default"
    kwargs = dict(module__n_outputs=10, objective=objective, random_state=seed, **THREADS,
                  **penalties)
    out = []
    for name, extra in (("discovered", {}),
                        ("cnn (3 x 3 sharing)", dict(init=conv, local_search=False)),
                        ("dense", dict(init=np.arange(conv.size), local_search=False))):
        est, fit_s = _fit(NetworkSharingClassifier, X[:n_fit], labels[:n_fit],
                          **{**kwargs, **extra})
        accuracy = float(np.mean(est.predict(X[n_fit:]) == labels[n_fit:]))
        test_log_loss = log_loss(labels[n_fit:], est.predict_proba(X[n_fit:]),
                                 labels=est.classes_)
        out.append({"part": "labels", "network": name, "objective": objective,
                    "penalties": weights, "seed": seed, "accuracy": round(accuracy, 4),
                    "test_log_loss": round(float(test_log_loss), 4),
                    "objective_value": round(float(est.objective_), 2),
                    "n_groups": est.n_groups_,
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
            "faithful": f"{sum(r['faithful'] for r in sub)}/{len(sub)}",
            "resolvable": sum(r["min_se_truth"] >= RESOLVABLE_SE for r in sub),
            "exact_resolvable": sum(r["exact"] for r in sub
                                    if r["min_se_truth"] >= RESOLVABLE_SE),
            "max_se_merged": max(r["max_se_merged"] for r in sub),
            "search_failures": sum(r["search_failure"] for r in sub),
            "objective_misses": sum(not r["search_failure"] for r in misses),
            "median_pd": float(np.median([r["pd"] for r in sub])),
            "test_mse": round(float(np.median([r["test_mse"] for r in sub])), 4),
            "true_sharing": round(float(np.median([r["test_mse_true_sharing"] for r in sub])), 4),
            "dense": round(float(np.median([r["test_mse_dense"] for r in sub])), 4),
            "median_fit_s": round(float(np.median([r["fit_s"] for r in sub])), 1),
            "max_fit_s": max(r["fit_s"] for r in sub)})
    return out


class ConvStudent(nn.Module):
    """The student with its first layer a 3 x 3 valid convolution of ``channels`` channels
    (no bias), 8 x 8 -> channels x 6 x 6, as a plain torch CNN."""

    def __init__(self, channels=1, n_outputs=10):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, bias=False)
        self.out = nn.Linear(36 * channels, n_outputs)

    def forward(self, x):
        return self.out(torch.relu(self.conv(x.reshape(-1, 1, 8, 8)).flatten(1)))


def capacity_rows(seed, channels, n_fit=1200, steps=600):
    """How well the hand-built CNN and the dense network of ``channels`` channels can do on the
    digits' labels, trained in plain torch (no sharing discovered): full-batch Adam (step 0.01,
    weight decay 1e-4) on the first 80% of the ``n_fit`` images, the step of lowest
    cross-entropy on the other 20% kept; test accuracy on the images after ``n_fit``."""
    X, labels = digits(seed)
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(labels)
    n_train = int(0.8 * n_fit)
    out = []
    for name, make in (("cnn (3 x 3 sharing)", lambda: ConvStudent(channels)),
                       ("dense", lambda: Student(36 * channels, n_outputs=10))):
        torch.manual_seed(seed)
        net = make()
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-4)
        best, state = float("inf"), None
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(X[:n_train]), y[:n_train]).backward()
            optimizer.step()
            with torch.no_grad():
                value = float(nn.functional.cross_entropy(net(X[n_train:n_fit]),
                                                          y[n_train:n_fit]))
            if value < best:
                best, state = value, {k: v.clone() for k, v in net.state_dict().items()}
        net.load_state_dict(state)
        with torch.no_grad():
            accuracy = float((net(X[n_fit:]).argmax(1) == y[n_fit:]).float().mean())
        out.append({"part": "capacity", "channels": channels, "network": name, "seed": seed,
                    "accuracy": round(accuracy, 4),
                    "validation_deviance": round(2 * (n_fit - n_train) * best, 1)})
    return out


def _mean_ci(values):
    """``(mean, "[low, high]")``: the mean of ``values`` and its normal 95% interval (nan
    bounds for one value)."""
    values = np.asarray(values, dtype=float)
    half = (1.96 * values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 \
        else float("nan")
    mean = float(values.mean())
    return round(mean, 4), f"[{mean - half:.4f}, {mean + half:.4f}]"


def _summary_capacity(rows):
    out = []
    for channels in sorted({r["channels"] for r in rows}):
        for network in ("cnn (3 x 3 sharing)", "dense"):
            acc = [r["accuracy"] for r in rows
                   if (r["channels"], r["network"]) == (channels, network)]
            mean, ci = _mean_ci(acc)
            out.append({"channels": channels, "network": network, "seeds": len(acc),
                        "accuracy": mean, "ci95": ci})
    return out


def _conv_scores_better(rows, found):
    """Of the discovered rows ``found``, in how many seeds the CNN's sharing scored better than
    the one found under the same objective and penalties (a search failure against the
    convolution), as ``"k/n"``; ``""`` for other rows or rows without objective values."""
    if not found or found[0]["network"] != "discovered" or "objective_value" not in found[0]:
        return ""
    cnn = {(r["objective"], r["penalties"], r["seed"]): float(r["objective_value"])
           for r in rows if r["network"] == "cnn (3 x 3 sharing)"}
    pairs = [(float(r["objective_value"]), cnn[key]) for r in found
             if (key := (r["objective"], r["penalties"], r["seed"])) in cnn]
    return f"{sum(c < f for f, c in pairs)}/{len(pairs)}" if pairs else ""


def _summary_labels(rows):
    out = []
    for objective in sorted({r["objective"] for r in rows}):
        # per weighting of the penalties: the discovered network, then the fixed sharings
        for weights, network in itertools.product(
                sorted({r.get("penalties", "") for r in rows}),
                ("discovered", "cnn (3 x 3 sharing)", "dense")):
            sub = [r for r in rows if (r["objective"], r["network"]) == (objective, network)
                   and r.get("penalties", "") == weights]
            if not sub:
                continue
            mean, ci = _mean_ci([r["accuracy"] for r in sub])
            out.append({"objective": objective, "network": network, "penalties": weights,
                        "seeds": len(sub), "accuracy": mean, "ci95": ci,
                        "test_log_loss": (round(float(np.mean([float(r["test_log_loss"])
                                                               for r in sub])), 4)
                                          if all("test_log_loss" in r for r in sub) else None),
                        "median_pd_to_conv": float(np.median([r["pd_to_conv"] for r in sub])),
                        "conv_scores_better": _conv_scores_better(rows, sub),
                        "median_fit_s": round(float(np.median([r["fit_s"] for r in sub])), 1)})
    return out


def rescore(paths):
    """Add :func:`resolvability`'s columns to teacher results from their partitions, and write
    each file's summary again."""
    import csv

    for path in paths:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "partition" not in rows[0]:
            raise SystemExit(f"{path}: no 'partition' column to rescore")
        for row in rows:
            for key in ("channels", "n", "seed", "pd"):
                row[key] = int(row[key])
            for key in ("test_mse", "test_mse_true_sharing", "test_mse_dense", "fit_s"):
                row[key] = float(row[key])
            row["exact"] = row["pd"] == 0
            row["search_failure"] = row["search_failure"] == "True"
            found = np.array(row["partition"].split(), dtype=np.int64)
            row.update(resolvability(row["seed"], row["n"], row["channels"], found))
        path = Path(path).resolve()  # (write_csv writes an absolute path where it says)
        write_csv(rows, path)
        summary = _summary_teacher(rows)
        print_table(summary, title=path.name)
        write_csv(summary, path.with_name(path.stem + "_summary.csv"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("teacher", "labels", "capacity"),
                        default="teacher")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed, ..., first-seed + seeds - 1 (to split a run "
                             "between processes)")
    parser.add_argument("--n", type=int, nargs="+", default=[1500, 500])
    parser.add_argument("--channels", type=int, nargs="+", default=None,
                        help="output channels of the first layer (teacher: 1 2; capacity: 1 2 4)")
    parser.add_argument("--objectives", nargs="+", default=["validation", "evidence"])
    parser.add_argument("--quick", action="store_true",
                        help="one seed, n = 500, one channel")
    parser.add_argument("--tag", default="", help="suffix of the CSV names")
    parser.add_argument("--threads", type=int, default=None,
                        help="n_threads of every fit (default: the package's choice); 1 when "
                             "two runs share two cores")
    parser.add_argument("--nuclear", type=float, default=None,
                        help="--part labels: the nuclear-norm weight of every fit's objective "
                             "(default: the estimator's)")
    parser.add_argument("--code-length", type=float, default=None,
                        help="--part labels: the code-length weight of every fit's objective "
                             "(default: the estimator's)")
    parser.add_argument("--rescore", metavar="CSV", nargs="+",
                        help="recompute the resolvability columns and the summary of teacher "
                             "results already written (rows with a partition), fitting nothing")
    args = parser.parse_args()
    if args.rescore:
        return rescore(args.rescore)
    if args.quick:
        args.seeds, args.n, args.channels = 1, [500], [1]
    if args.part == "teacher" and args.channels is None:
        args.channels = [1, 2]
    if args.threads is not None:
        THREADS["n_threads"] = args.threads
    rows = []
    if args.part == "teacher":
        for n_channels in args.channels:
            for n in args.n:
                for objective in args.objectives:
                    for seed in range(args.first_seed, args.first_seed + args.seeds):
                        row = teacher_rows(seed, n, n_channels, objective)
                        rows.append(row)
                        write_csv(rows, f"image_network_teacher{args.tag}.csv")  # as it goes
                        print({k: row[k] for k in ("channels", "n", "objective", "seed", "pd",
                                                   "search_failure", "test_mse", "fit_s")},
                              flush=True)
        summary = _summary_teacher(rows)
    elif args.part == "capacity":
        for n_channels in args.channels or [1, 2, 4]:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows.extend(capacity_rows(seed, n_channels))
        summary = _summary_capacity(rows)
    else:
        penalties = {k: v for k, v in (("nuclear", args.nuclear),
                                       ("code_length", args.code_length)) if v is not None}
        for objective in args.objectives:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for row in label_rows(seed, objective, penalties=penalties):
                    rows.append(row)
                    print({k: row[k] for k in ("network", "objective", "seed", "accuracy",
                                               "test_log_loss", "pd_to_conv", "fit_s")},
                          flush=True)
                write_csv(rows, f"image_network_labels{args.tag}.csv")  # as it goes
        summary = _summary_labels(rows)
    print_table(summary)
    name = f"image_network_{args.part}{args.tag}"
    write_csv(rows, f"{name}.csv")
    print(f"wrote {write_csv(summary, f'{name}_summary.csv')}")


if __name__ == "__main__":
    main()
