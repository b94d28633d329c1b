"""Sphinx extension: figures of the benchmark results, drawn from ``benchmarks/results/*.csv``.

The benchmark scripts print tables and write CSV files; they do not draw. This extension draws
the CSV files at the start of every build (``builder-inited``) into ``docs/_generated/benchmarks/``
and adds each figure at the end of its section of the results page (``source-read``). The page
stays a rendering of ``docs/results.md`` itself, whose Markdown source remains plain enough to
read on GitHub and holds the tables, and the figures follow the CSV files without anyone
regenerating images by hand. A figure whose CSV file is missing is left out.
"""

from __future__ import annotations

import csv
import pathlib

from sphinx.util import logging

logger = logging.getLogger(__name__)

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
OUT = "_generated/benchmarks"

# Which figures close which section of results.md: (heading prefix, [(figure, caption), ...]).
SECTIONS = [
    ("## Shared Gaussian means", [
        ("table1", "Partition distance at rank 1 (mean and 95% CI over the trials), sharelearn "
                   "beside the paper's Table 1. From "
                   "`benchmarks/results/shared_means_table1.csv`."),
    ]),
    ("## Sweeps", [
        ("sweeps", "Partition distance against the number of samples and the rank at K = 5, and "
                   "against K (mean and 95% CI). From "
                   "`benchmarks/results/shared_means_sweeps.csv`."),
    ]),
    ("## Shift", [
        ("shift", "Shift: seeds with exact recovery and median time per fit against the number "
                  "of weight entries. From `benchmarks/results/shift.csv`."),
        ("shift_curve", "Small data: mean partition distance against the number of samples, "
                        "sharelearn beside clustering the untied estimate. From "
                        "`benchmarks/results/shift_curve.csv`."),
    ]),
    ("## Evidence", [
        ("evidence", "Evidence against validation objective: mean partition distance against "
                     "the number of samples. From `benchmarks/results/evidence.csv`."),
    ]),
]


def _read(name):
    path = RESULTS / name
    if not path.exists():
        return None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows or None


def _num(value):
    return float(value) if value not in ("", None) else float("nan")


def _draw_table1(plt, rows):
    import numpy as np

    ks = sorted({int(r["K"]) for r in rows})
    # No sharing (PD K - 1) is in the table; on the same axis it would flatten the comparison.
    methods = [("sharelearn", "sharelearn (5-fold)"), ("sharelearn_30/70", "sharelearn 30/70"),
               ("paper", "paper (Table 1)")]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
    width = 0.26
    for i, (key, label) in enumerate(methods):
        means, errs = [], []
        for k in ks:
            if key == "paper":
                row = next(r for r in rows if int(r["K"]) == k)
                means.append(_num(row["paper_PD"]))
                errs.append(_num(row["paper_PD_pm"]))
            else:
                row = next((r for r in rows if int(r["K"]) == k and r["method"] == key), None)
                means.append(_num(row["PD_mean"]) if row else np.nan)
                errs.append(_num(row["PD_ci95"]) if row else np.nan)
        x = np.arange(len(ks)) + (i - 1) * width
        bars = ax.bar(x, means, width, yerr=errs, label=label, capsize=2)
        ax.bar_label(bars, labels=[f"{m:.3f}" for m in means], padding=2, fontsize="x-small")
    ax.set_xticks(np.arange(len(ks)), [f"K = {k}" for k in ks])
    ax.set_ylabel("partition distance")
    ax.set_title("rank 1, lower is better", fontsize="small")
    ax.legend(fontsize="small", frameon=False, loc="upper left")
    return fig


def _draw_sweeps(plt, rows):
    panels = [("n", "n", "number of samples (rank 1)"), ("rank", "rank", "rank (n = 100)"),
              ("K", "K", "K (rank 1, n = 100)")]
    present = [p for p in panels if any(r["sweep"] == p[0] for r in rows)]
    fig, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present), 2.9),
                             layout="constrained", squeeze=False)
    for ax, (sweep, column, label) in zip(axes[0], present, strict=True):
        sel = sorted((r for r in rows if r["sweep"] == sweep), key=lambda r: _num(r[column]))
        x = [_num(r[column]) for r in sel]
        ax.errorbar(x, [_num(r["PD_mean"]) for r in sel], yerr=[_num(r["PD_ci95"]) for r in sel],
                    marker="o", capsize=2, label="sharelearn")
        ref = [(xi, _num(r["reference_PD"])) for xi, r in zip(x, sel, strict=True)
               if r.get("reference_PD") not in ("", None)]
        if ref:
            ax.plot(*zip(*ref, strict=True), "s--", color="grey", label="reference code")
            ax.legend(fontsize="small", frameon=False)
        ax.set_xlabel(label)
    axes[0][0].set_ylabel("partition distance")
    return fig


def _draw_shift(plt, rows):
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    names = [r["case"] for r in rows]
    exact = [_num(r["pd0_seeds"]) / _num(r["seeds"]) for r in rows]
    left.barh(range(len(rows)), exact, color="tab:blue")
    left.set_yticks(range(len(rows)), [f"{n} ({int(_num(r['entries']))})"
                                       for n, r in zip(names, rows, strict=True)],
                    fontsize="small")
    left.invert_yaxis()
    left.set_xlim(0, 1)
    left.set_xlabel("fraction of seeds with PD = 0")
    # cases of one size differ in shape (1-D, 2-D, circular): points, not a line
    right.loglog([_num(r["entries"]) for r in rows], [_num(r["median_fit_s"]) for r in rows],
                 "o", alpha=0.8)
    right.set_xlabel("weight entries")
    right.set_ylabel("median time per fit (s)")
    return fig


def _draw_shift_curve(plt, rows):
    fig, ax = plt.subplots(figsize=(5.0, 3.0), layout="constrained")
    for method, label in (("sharelearn", "sharelearn"),
                          ("cluster_untied", "cluster the untied estimate")):
        sel = sorted((r for r in rows if r["method"] == method), key=lambda r: _num(r["n_samples"]))
        if sel:
            # PD 0 cannot be drawn on a log axis: draw PD + 1
            ax.plot([_num(r["n_samples"]) for r in sel], [_num(r["mean_pd"]) + 1 for r in sel],
                    "o-", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("number of samples")
    ax.set_ylabel("mean partition distance + 1")
    ax.legend(fontsize="small", frameon=False)
    return fig


def _draw_evidence(plt, rows):
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    n_cols = min(3, len(tasks))
    n_rows = -(-len(tasks) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.3 * n_cols, 2.6 * n_rows),
                             layout="constrained", squeeze=False, sharex=False)
    for ax, task in zip(axes.ravel(), tasks, strict=False):
        sel = sorted((r for r in rows if r["task"] == task), key=lambda r: _num(r["n_samples"]))
        x = [_num(r["n_samples"]) for r in sel]
        for objective in ("validation", "evidence"):
            ax.errorbar(x, [_num(r[f"pd_{objective}"]) for r in sel],
                        yerr=[_num(r[f"ci_{objective}"]) for r in sel], marker="o", capsize=2,
                        label=objective)
        ax.set_title(task, fontsize="small")
        ax.set_xlabel("number of samples", fontsize="small")
    for ax in axes.ravel()[len(tasks):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("partition distance")
    axes[0][0].legend(fontsize="small", frameon=False)
    return fig


FIGURES = {
    "table1": ("shared_means_table1.csv", _draw_table1),
    "sweeps": ("shared_means_sweeps.csv", _draw_sweeps),
    "shift": ("shift.csv", _draw_shift),
    "shift_curve": ("shift_curve.csv", _draw_shift_curve),
    "evidence": ("evidence.csv", _draw_evidence),
}


def draw_figures(app):
    """Draw every figure whose CSV file exists; remember which were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(app.srcdir) / OUT
    out.mkdir(parents=True, exist_ok=True)
    drawn = set()
    for name, (csv_name, draw) in FIGURES.items():
        rows = _read(csv_name)
        if rows is None:
            logger.info(f"benchmark_figures: {csv_name} not found, figure {name!r} left out")
            continue
        fig = draw(plt, rows)
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
        drawn.add(name)
    app.env_benchmark_figures = drawn


def _figure_block(name, caption):
    return f"\n```{{figure}} /{OUT}/{name}.png\n:alt: {name}\n\n{caption}\n```\n"


def add_figures(app, docname, source):
    """Close each section of the results page with its figures."""
    if docname != "results":
        return
    drawn = getattr(app, "env_benchmark_figures", set())
    lines = source[0].split("\n")
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    inserts = []
    for prefix, figures in SECTIONS:
        start = next((i for i in headings if lines[i].startswith(prefix)), None)
        if start is None:
            continue
        end = next((i for i in headings if i > start), len(lines))
        blocks = "".join(_figure_block(n, c) for n, c in figures if n in drawn)
        if blocks:
            inserts.append((end, blocks))
    for end, blocks in sorted(inserts, reverse=True):
        lines.insert(end, blocks)
    source[0] = "\n".join(lines)


def setup(app):
    app.connect("builder-inited", draw_figures)
    app.connect("source-read", add_figures)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
