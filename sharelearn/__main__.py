"""Command line: ``python -m sharelearn demo`` discovers the sharing of a 1-D convolution."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _draw(labels, shape, values):
    """The weight matrix drawn with one letter per group; the group nearest 0 is drawn as '.'."""
    symbols = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    zero = int(np.argmin(np.abs(values)))
    names = {g: "." if g == zero else next(symbols, str(g)) for g in range(len(values))}
    grid = np.asarray(labels).reshape(shape)
    width = max(len(v) for v in names.values())
    rows = [" ".join(names[g].rjust(width) for g in row) for row in grid]
    legend = ", ".join(f"{names[g]} = {values[g]:+.3f}" for g in range(len(values)))
    return "\n".join(rows), legend


def demo(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sharelearn demo",
        description="Generate a 1-D cross-correlation, discover which weights it shares, name "
                    "the symmetry of the discovered sharing, and compare with the truth.")
    parser.add_argument("--mode", choices=("circular", "valid"), default="circular")
    parser.add_argument("--n-inputs", type=int, default=12)
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from . import SharingDiscoverer, partition_distance
    from .datasets import make_convolution

    X, Y, truth, W = make_convolution(args.n_samples, input_shape=args.n_inputs,
                                      kernel_size=args.kernel_size, mode=args.mode,
                                      random_state=args.seed)
    print(f"Data: {args.n_samples} samples of y = x (*) kernel + noise ({args.mode}), kernel "
          f"{W[0, :args.kernel_size].astype(int).tolist()}, {W.shape[0]} x {W.shape[1]} = {W.size} "
          "weight entries, nothing told about the structure.")
    start = time.perf_counter()
    disc = SharingDiscoverer(model="linear", random_state=args.seed).fit(X, Y)
    elapsed = time.perf_counter() - start
    drawing, legend = _draw(disc.sharing_partition_, W.shape, disc.shared_values_)
    print(f"\nDiscovered sharing ({disc.n_groups_} groups), weight matrix of group ids:")
    print(drawing)
    print(f"shared values: {legend}")
    distance = partition_distance(disc.sharing_partition_, truth)
    print(f"\npartition distance to the true convolution: {distance} of {W.size} entries"
          f"{' (exact recovery)' if distance == 0 else ''}")
    group = disc.symmetry_group_
    print(f"discovered symmetry: {group.name} (order {group.order}) acting on the "
          f"{W.shape[0]} outputs and {W.shape[1]} inputs")
    if args.mode == "valid":
        print("(a valid correlation's finite layer has no shift symmetry as a permutation group: "
              "its sharing is the band of offsets; try --mode circular)")
    print(f"time: {elapsed:.2f} s")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] != "demo":
        print("usage: python -m sharelearn demo [--n-inputs N] [--kernel-size K] "
              "[--n-samples N] [--seed S]", file=sys.stderr)
        return 2
    return demo(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
