"""The memory a network fit needs: the estimate made before any training against the real peak.

For dense first layers of a few sizes, ``h x h`` images -> ``(h - 2) x (h - 2)`` hidden units
(64 -> 36, 100 -> 64, 144 -> 100, 196 -> 144, 256 -> 196: 2,304 to 50,176 entries, the items:
``share={"dense.weight": None}``), a teacher whose first layer is a 3 x 3 valid convolution
(then ReLU and a random read-out, noise of 0.1 times the signal) gives the targets. Each row is
one ``NetworkSharingDiscoverer`` fit (``loss="mse"``, 300 samples, short retrains and refit:
``SETTINGS``; the rows of each side are in ``PLAN``), with:

* the estimate by part (:mod:`sharelearn.networks.memory`, the fitted ``memory_estimate_``), in
  MiB: what the fit holds throughout (``runtime``, ``data``, ``initialisations``, ``selection
  matrices``, ``hypotheses``) and its phases (``retrains``, ``curvature``, ``linearisation``,
  ``linearised search``, ``refit``), the largest of which adds to them (``estimate_mib``);
* ``rss_increase_mib``: the measured peak of the fit's resident memory above the process's
  before it, in a forked child (``_common.rss_peak_of_call``); ``ratio``: estimate / measured
  (the estimate is meant as an upper bound within a factor of about 2);
* ``structure``: the curvature the evidence used (``hessian_structure_``), and ``fit_s``.

A fit whose estimate exceeds the budget (``memory_budget="auto"``: half the memory available)
is refused before any training: its row records the estimate from the refusal's message,
``structure="refused"``, and in ``fit_s`` how long the refusal took. ``--sizes`` picks the
image sides, ``--quick`` the smallest one.

Writes ``benchmarks/results/network_memory.csv`` (about 10 minutes on a 2-core machine).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import mib, print_table, rss_peak_of_call, write_csv
from torch import nn

SHARE = {"dense.weight": None}
# short retrains and refit: the memory does not grow with the steps, the time does
SETTINGS = dict(loss="mse", search_steps=200, search_inits=4, max_epochs=50, random_state=0,
                n_threads=1)
HELD = ("runtime", "data", "initialisations", "selection matrices", "hypotheses")
PHASES = ("retrains", "curvature", "linearisation", "linearised search", "refit")
PARTS = HELD + PHASES


class Student(nn.Module):
    """Dense ``n_in -> hidden`` (no bias, the shared layer), ReLU, linear read-out."""

    def __init__(self, n_in=64, hidden=36):
        super().__init__()
        self.dense = nn.Linear(n_in, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(torch.relu(self.dense(x)))


def teacher(side, n, seed=0):
    """``(X, y)``: smooth ``side x side`` images and a 3 x 3 valid convolution teacher."""
    from sharelearn.symmetry import shift_sharing

    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, side + 1, side + 1))
    X = (Z[:, :-1, :-1] + Z[:, 1:, :-1] + Z[:, :-1, 1:] + Z[:, 1:, 1:]).reshape(n, -1) / 2
    truth = shift_sharing((side, side), 3)
    zero = np.bincount(truth).argmax()
    taps = np.insert(rng.standard_normal(9), zero, 0.0)
    W = taps[truth].reshape((side - 2) ** 2, side * side)
    clean = np.maximum(X @ W.T, 0) @ (rng.standard_normal(W.shape[0]) / np.sqrt(W.shape[0]))
    return X, clean + 0.1 * clean.std() * rng.standard_normal(n)


def _estimator(side, objective, **kwargs):
    from sharelearn import NetworkSharingDiscoverer

    return NetworkSharingDiscoverer(Student, share=SHARE, objective=objective,
                                    module__n_in=side * side, module__hidden=(side - 2) ** 2,
                                    **{**SETTINGS, **kwargs})


def _fit_and_record(est, X, y, path):
    """The fit, in the measured child: its estimate, structure and time go to ``path``."""
    start = time.perf_counter()
    est.fit(X, y)
    record = {**est.memory_estimate_, "structure": est.hessian_structure_,
              "fit_s": time.perf_counter() - start}
    Path(path).write_text(repr(record))


_PART = re.compile(r"([a-z][a-z ]*?) ([0-9.]+) (bytes|KiB|MiB|GiB)")
_UNIT = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def _parts_of_refusal(message):
    """The estimate's parts, in bytes, from a ``MemoryError``'s message."""
    inside = message[message.index("(", message.index("needs about")) + 1:]
    return {name.replace("then the largest of: ", "").strip(): float(v) * _UNIT[u]
            for name, v, u in _PART.findall(inside.split("), more than")[0])}


def row(side, n, objective, **kwargs):
    X, y = teacher(side, n)
    est = _estimator(side, objective, **kwargs)
    out = {"layer": f"{side * side} -> {(side - 2) ** 2}", "entries": side**2 * (side - 2)**2,
           "n": n, "objective": objective, "settings": " ".join(
               f"{k}={v}" for k, v in kwargs.items() if k != "init") + (
               " init=dense" if "init" in kwargs else "")}
    with tempfile.NamedTemporaryFile(suffix=".txt") as tmp:
        start = time.perf_counter()
        try:
            _, increase = rss_peak_of_call(_fit_and_record, est, X, y, tmp.name)
        except RuntimeError as err:
            if "MemoryError" not in str(err):
                raise
            refused_s = time.perf_counter() - start
            try:
                est.fit(X, y)
            except MemoryError as refusal:
                parts = _parts_of_refusal(str(refusal))
            total = (sum(v for k, v in parts.items() if k in HELD)
                     + max(v for k, v in parts.items() if k in PHASES))
            return {**out, **{p: round(mib(parts.get(p, 0)), 1) for p in PARTS},
                    "estimate_mib": round(mib(total), 1), "rss_increase_mib": None,
                    "ratio": None, "structure": "refused", "fit_s": round(refused_s, 1)}
        record = eval(Path(tmp.name).read_text(), {"nan": float("nan")})  # noqa: S307 - ours
    return {**out, **{p: round(mib(record.get(p, 0)), 1) for p in PARTS},
            "estimate_mib": round(mib(record["total"]), 1),
            "rss_increase_mib": round(mib(increase), 1),
            "ratio": round(record["total"] / increase, 2),
            "structure": record["structure"] or "", "fit_s": round(record["fit_s"], 1)}


def _dense(side):
    return np.arange(side**2 * (side - 2) ** 2)


# the rows of each image side: (objective, settings); the 64 -> 36 layer's dense start scores
# the full curvature at its finest partition, and local_search=False is the lean way a layer
# too large for the linearised search still fits
PLAN = {
    8: [("validation", {}), ("evidence", {}),
        ("evidence", dict(init=_dense(8), local_search=False, hessian_structure="full"))],
    10: [("validation", {})],
    12: [("validation", {})],
    14: [("validation", {}), ("evidence", {}), ("evidence", dict(local_search=False))],
    16: [("validation", {}), ("evidence", dict(local_search=False))],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(PLAN),
                        help="image sides (a side h gives a h^2 -> (h-2)^2 dense layer)")
    parser.add_argument("--n", type=int, default=300, help="samples per fit")
    parser.add_argument("--quick", action="store_true", help="the 8 x 8 images only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # imported before the measured calls: the refit's library would count as the fit's
    import skorch  # noqa: F401

    import sharelearn  # noqa: F401

    rows = []
    for side in [8] if args.quick else args.sizes:
        for objective, kwargs in PLAN.get(side, [("validation", {})]):
            rows.append(row(side, args.n, objective, **kwargs))
            print_table(rows[-1:])
    print_table(rows)
    write_csv(rows, "network_memory.csv")


if __name__ == "__main__":
    main()
