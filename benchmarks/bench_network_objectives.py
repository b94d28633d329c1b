"""Networks: the validation objective against the Laplace evidence, for regression and classes.

The sum-of-numbers network (``module="sequence"``, embedding 16, hidden 8: small, so that every
fit takes seconds) on ``make_sum_of_numbers(n, length=4, variant=..., random_state=seed)``, the
``"alternating"`` sum (truth ``[0, 1, 0, 1]``) and the ``"shared"`` one (``[0, 0, 0, 0]``), 3
seeds. Settings:

* ``regressor, validation``: ``NetworkSharingDiscoverer`` with its defaults (L1 loss);
* ``regressor, evidence (full)`` and ``(diag)``: ``objective="evidence", loss="mse"`` with
  ``hessian_structure="full"`` or ``"diag"``;
* ``regressor, evidence + relaxation``: the full evidence with two relaxations and no search
  (``n_restarts=2, local_search=False``): what the relaxation finds by itself;
* ``classifier, validation`` and ``classifier, evidence``: ``NetworkSharingClassifier`` on the
  terciles of the sum (three classes, string labels).

Regressors fit 400 sequences; classifiers fit 400 of 600 and are scored on the other 200.
Recorded per fit: the partition distance to the truth, exact recovery, the held-out accuracy
(classifiers) and the fit time. Writes ``benchmarks/results/network_objectives.csv``.
"""

from __future__ import annotations

import time

import numpy as np
from _common import print_table, write_csv

SMALL = dict(module__embedding_dim=16, module__hidden=8, search_steps=100, max_epochs=200,
             validation_fraction=0.5, dtype="float32")
SETTINGS = {
    "regressor, validation": ("regressor", dict(cv=0.6)),
    "regressor, evidence (full)": ("regressor", dict(objective="evidence", loss="mse",
                                                     hessian_structure="full")),
    "regressor, evidence (diag)": ("regressor", dict(objective="evidence", loss="mse",
                                                     hessian_structure="diag")),
    "regressor, evidence + relaxation": ("regressor", dict(
        objective="evidence", loss="mse", hessian_structure="full", n_restarts=2,
        local_search=False, max_iter=30)),
    "classifier, validation": ("classifier", dict(cv=0.6)),
    "classifier, evidence": ("classifier", dict(objective="evidence")),
}


def _terciles(s):
    return np.array(["low", "mid", "high"])[np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))]


def main():
    from sharelearn import NetworkSharingClassifier, NetworkSharingDiscoverer, partition_distance
    from sharelearn.datasets import make_sum_of_numbers

    rows = []
    for setting, (kind, kwargs) in SETTINGS.items():
        for variant in ("alternating", "shared"):
            for seed in range(3):
                n = 600 if kind == "classifier" else 400
                X, s, truth = make_sum_of_numbers(n, length=4, variant=variant,
                                                  random_state=seed)
                start = time.perf_counter()
                if kind == "classifier":
                    y = _terciles(s)
                    est = NetworkSharingClassifier("sequence", random_state=seed,
                                                   **{**SMALL, **kwargs}).fit(X[:400], y[:400])
                    accuracy = float(np.mean(est.predict(X[400:]) == y[400:]))
                else:
                    est = NetworkSharingDiscoverer("sequence", random_state=seed,
                                                   **{**SMALL, **kwargs}).fit(X, s)
                    accuracy = None
                fit_s = time.perf_counter() - start
                pd = int(partition_distance(est.sharing_partition_, truth))
                rows.append({"setting": setting, "variant": variant, "seed": seed, "pd": pd,
                             "exact": pd == 0, "partition": str(est.sharing_partition_.tolist()),
                             "heldout_accuracy": accuracy, "fit_s": round(fit_s, 2)})
                print(f"  {setting}, {variant}, seed {seed}: PD {pd}, {fit_s:.1f} s", flush=True)
    summary = []
    for setting in SETTINGS:
        for variant in ("alternating", "shared"):
            sub = [r for r in rows if (r["setting"], r["variant"]) == (setting, variant)]
            acc = [r["heldout_accuracy"] for r in sub if r["heldout_accuracy"] is not None]
            summary.append({"setting": setting, "variant": variant,
                            "exact": f"{sum(r['exact'] for r in sub)}/{len(sub)}",
                            "heldout_accuracy": round(float(np.mean(acc)), 3) if acc else "",
                            "median_fit_s": round(float(np.median([r["fit_s"] for r in sub])),
                                                  1)})
    print_table(summary)
    write_csv(rows, "network_objectives.csv")
    print(f"wrote {write_csv(summary, 'network_objectives_summary.csv')}")


if __name__ == "__main__":
    main()
