"""Time of ``sharelearn.symmetry.symmetry_group`` (sharing -> named group), layers up to 100 x 100.

Cases (``n`` is 25, 50 and 100 for the first four, 100 for the others):

* ``identity``: every entry its own group (trivial group; 10,000 groups at n = 100, the largest
  layered graph: 14 layers);
* ``circular_k3``: circular convolution ``n -> n`` with kernel 3 (``C_n``);
* ``deep_sets``: one value on the diagonal, one off it (``S_n``, order ``n!``);
* ``all_shared``: one group (``S_n x S_n``, order ``(n!)^2``);
* ``circular_full``: circular convolution with kernel ``n`` (all offsets distinct, ``C_100``);
* ``valid_k3``: valid convolution 102 -> 100 (trivial: not shift-invariant as a finite layer);
* ``circular_2d``: circular 3 x 3 convolution on 10 x 10 images (``C_10 x C_10``);
* ``valid_2d``: valid 3 x 3 convolution on 10 x 10 images, 64 x 100 (trivial);
* ``rotation``, ``dihedral``: orbit partitions of the 90-degree rotations and of the square's
  symmetries on 10 x 10 images (``C_4``, ``D_4``);
* ``reflection``: orbit partition of the reversal of 100 positions (``C_2``);
* ``random_5``: five groups drawn at random (trivial);
* ``blocks``: one group per 10 x 10 block of the weight matrix (``S_10^20``);
* ``block_diagonal``: ten 10 x 10 diagonal blocks shared, the rest another group (a wreath
  product, described by its order).

Each case checks the expected name and order. ``group_best_s`` / ``group_median_s`` time
``symmetry_group`` (bliss through igraph, plus naming); ``sharing_ms`` times building the
sharing (``shift_sharing`` or ``sharing_from_group``; blank when built by hand).

Usage (from the repository root, with the package importable)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_symmetry.py [--quick]

Writes ``benchmarks/results/symmetry.csv`` (``symmetry_quick.csv`` with ``--quick``: n = 25 and
50 for the scaled cases only, 2 repeats).
"""

from __future__ import annotations

import argparse
import math
import os
import platform

import igraph
import numpy as np
from _common import print_table, time_call, write_csv

import sharelearn
from sharelearn.symmetry import (
    dihedral_generators,
    permutation_generators,
    reflection_generators,
    rotation_generators,
    sharing_from_group,
    shift_sharing,
    symmetry_group,
)


def _by_hand(labels):
    return None, labels


def _timed(func, *args):
    labels, best, _ = time_call(func, *args, repeats=3)
    return best, labels


def scaled_cases(n):
    """(case, shape, builder, expected name, expected order) for an n -> n layer."""
    return [
        ("identity", (n, n), lambda: _by_hand(np.arange(n * n)), "trivial", 1),
        (
            "circular_k3",
            (n, n),
            lambda: _timed(shift_sharing, n, 3, "circular"),
            f"C_{n}",
            n,
        ),
        (
            "deep_sets",
            (n, n),
            lambda: _timed(sharing_from_group, permutation_generators(n), (n, n)),
            f"S_{n}",
            math.factorial(n),
        ),
        (
            "all_shared",
            (n, n),
            lambda: _by_hand(np.zeros(n * n, dtype=np.int64)),
            f"S_{n} x S_{n}",
            math.factorial(n) ** 2,
        ),
    ]


def fixed_cases():
    n, side = 100, 10
    rng = np.random.default_rng(0)
    o, i = np.indices((n, n))
    block_diag = np.where(o // side == i // side, 0, 1).ravel()
    wreath_order = (math.factorial(side) ** 2) ** side * math.factorial(side)
    return [
        (
            "circular_full",
            (n, n),
            lambda: _timed(shift_sharing, n, n, "circular"),
            "C_100",
            100,
        ),
        ("valid_k3", (n, n + 2), lambda: _timed(shift_sharing, n + 2, 3, "valid"), "trivial", 1),
        (
            "circular_2d",
            (n, n),
            lambda: _timed(shift_sharing, (side, side), 3, "circular"),
            "C_10 x C_10",
            100,
        ),
        (
            "valid_2d",
            (64, n),
            lambda: _timed(shift_sharing, (side, side), 3, "valid"),
            "trivial",
            1,
        ),
        (
            "rotation",
            (n, n),
            lambda: _timed(sharing_from_group, rotation_generators(side), (n, n)),
            "C_4",
            4,
        ),
        (
            "dihedral",
            (n, n),
            lambda: _timed(sharing_from_group, dihedral_generators(side), (n, n)),
            "D_4",
            8,
        ),
        (
            "reflection",
            (n, n),
            lambda: _timed(sharing_from_group, reflection_generators(n), (n, n)),
            "C_2",
            2,
        ),
        ("random_5", (n, n), lambda: _by_hand(rng.integers(0, 5, n * n)), "trivial", 1),
        (
            "blocks",
            (n, n),
            lambda: _by_hand((o // side * side + i // side).ravel()),
            "S_10^20",
            math.factorial(side) ** 20,
        ),
        (
            "block_diagonal",
            (n, n),
            lambda: _by_hand(block_diag),
            "order-5.68e137 group acting on 100 outputs and 100 inputs",
            wreath_order,
        ),
    ]


def _order_text(order):
    digits = str(order)
    return digits if len(digits) <= 12 else f"{digits[0]}.{digits[1:4]}e{len(digits) - 1}"


def run(cases, repeats):
    rows = []
    for case, shape, build, name, order in cases:
        sharing_s, labels = build()
        group, best, median = time_call(symmetry_group, labels, shape, repeats=repeats)
        assert group.name == name, (case, group.name, name)
        assert group.order == order, (case, group.order, order)
        rows.append(
            {
                "case": case,
                "n_out": shape[0],
                "n_in": shape[1],
                "n_groups": int(np.unique(labels).size),
                "name": group.name if len(group.name) <= 24 else group.name[:21] + "...",
                "order": _order_text(group.order),
                "n_generators": len(group.generators),
                "sharing_ms": None if sharing_s is None else round(1e3 * sharing_s, 3),
                "group_best_s": round(best, 4),
                "group_median_s": round(median, 4),
            }
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    sizes = [25, 50] if args.quick else [25, 50, 100]

    print(
        f"sharelearn {sharelearn.__version__}, igraph {igraph.__version__}, numpy "
        f"{np.__version__}, python {platform.python_version()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, best of {repeats}"
    )
    cases = [c for n in sizes for c in scaled_cases(n)]
    if not args.quick:
        cases += fixed_cases()
    rows = run(cases, repeats)
    print_table(rows)
    slowest = max(r["group_best_s"] for r in rows)
    print(f"slowest symmetry_group (best of {repeats}): {slowest:.4f} s (target: < 5 s)")
    path = write_csv(rows, "symmetry_quick.csv" if args.quick else "symmetry.csv")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
