"""Command line: ``sharelearn demo`` and ``sharelearn discover`` (also ``python -m sharelearn``).

``demo`` generates a 1-D convolution and discovers its sharing; ``discover`` runs a discovery on
the user's own arrays (``.npy``, ``.npz`` or ``.csv``), prints the partition, the named symmetry
and the objective, and can write the partition (``.npy`` or ``.json``) and a picture (``.png``).
Bad arguments and bad files end in one line ``sharelearn <command>: error: ...`` and exit
status 2, argparse's convention. torch is imported only when a command runs, so ``--help`` is
instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ._version import __version__

PROG = "sharelearn"
# Layers wider or taller than this are not drawn as text (use --output-figure).
_MAX_DRAW = 40
# Group sizes and shared values listed in full up to this many groups.
_MAX_LIST = 30


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


# -- argument types: each raises ArgumentTypeError, which argparse turns into parser.error ------

def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value
    parse.__name__ = "integer"
    return parse


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


_non_negative_float.__name__ = "number"


def _memory_budget(text):
    """``--memory-budget``: ``auto`` or an amount, checked before any work."""
    if text.strip().lower() != "auto":
        from ._memory import resolve_budget

        try:
            resolve_budget(text, None)  # an amount: no device is read
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return text


_memory_budget.__name__ = "memory budget"


def _layer_shape(text):
    parts = text.lower().replace("x", ",").replace("*", ",").split(",")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 2 or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"must be two positive integers such as 14x16 or 8,8, got {text!r}")
    return dims


_layer_shape.__name__ = "layer shape"


# -- the parser -------------------------------------------------------------------------------

def _common_options():
    """Options every command takes: progress and threads."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("running")
    group.add_argument("--quiet", "-q", action="store_true",
                       help="no progress bar (it is shown on stderr only when stderr is a "
                            "terminal)")
    group.add_argument("--threads", type=_int_at_least(1), metavar="N",
                       help="torch threads for the fit, the estimator's n_threads (default: "
                            "chosen for the problem, one thread at the package's sizes, or "
                            "SHARELEARN_NUM_THREADS when set)")
    return common


def build_parser():
    """The ``sharelearn`` parser with its ``demo`` and ``discover`` subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Discover the symmetries of data by learning how a model shares its "
                    "parameters.",
        epilog="Run 'sharelearn COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    common = _common_options()

    demo = commands.add_parser(
        "demo", parents=[common], help="discover the sharing of a generated 1-D convolution",
        description="Generate a 1-D cross-correlation, discover which weights it shares, name "
                    "the symmetry of the discovered sharing, and compare with the truth.")
    demo.add_argument("--mode", choices=("circular", "valid"), default="circular",
                      help="circular (wraps around: shift symmetry C_n) or valid (no padding); "
                           "default: %(default)s")
    demo.add_argument("--n-inputs", type=_int_at_least(1), default=12, metavar="N",
                      help="length of the input signal; default: %(default)s")
    demo.add_argument("--kernel-size", type=_int_at_least(1), default=3, metavar="K",
                      help="length of the kernel, at most --n-inputs; default: %(default)s")
    demo.add_argument("--n-samples", type=_int_at_least(5), default=150, metavar="N",
                      help="number of (input, output) samples, at least 5 (one per "
                           "train/validation split); default: %(default)s")
    demo.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S",
                      help="random seed of the data and of the discovery; default: "
                           "%(default)s")
    demo.set_defaults(run=_run_demo, command_parser=demo)

    discover = commands.add_parser(
        "discover", parents=[common], help="discover the sharing in your own arrays",
        description="Discover which parameters of a model of your data share one value: the "
                    "feature means (--model mean, X only) or the entries of a linear map "
                    "Y = W X + b (--model linear). Prints the partition, its named symmetry "
                    "and the objective.",
        epilog="Examples: 'sharelearn discover data.npz' (arrays X and Y inside); "
               "'sharelearn discover X.csv --y Y.csv --header --layer-shape 6x6 "
               "--output-partition part.json --output-figure part.png'.")
    data = discover.add_argument_group("data")
    data.add_argument("X", help="samples, one row each: a .npy file, a .npz file (array "
                                "--x-key, with the targets as --y-key when present) or a .csv "
                                "file of numbers")
    data.add_argument("--y", metavar="FILE",
                      help="targets, one row per sample (.npy, .npz or .csv), for --model "
                           "linear; default: the --y-key array of X's .npz file")
    data.add_argument("--x-key", default="X", metavar="KEY",
                      help="name of the samples' array in a .npz file; default: %(default)s")
    data.add_argument("--y-key", default="Y", metavar="KEY",
                      help="name of the targets' array in a .npz file; default: %(default)s")
    data.add_argument("--header", action="store_true",
                      help="the first line of each .csv file is a header, skipped")
    data.add_argument("--delimiter", default=",", metavar="CHAR",
                      help="column separator of .csv files; default: ','")
    model = discover.add_argument_group("model")
    model.add_argument("--model", choices=("mean", "linear"),
                       help="mean: which feature means are equal (X only); linear: which "
                            "entries of W in Y = W X + b are equal; default: linear when "
                            "targets are given, else mean")
    model.add_argument("--nuclear", type=_non_negative_float, metavar="WEIGHT",
                       help="weight of the nuclear-norm penalty, towards few large groups; "
                            "default: the estimator's (2.0)")
    model.add_argument("--code-length", type=_non_negative_float, metavar="WEIGHT",
                       help="weight of the assignment's description length, against fitting "
                            "noise; default: the estimator's (2.0)")
    model.add_argument("--objective", choices=("validation", "evidence"), default="validation",
                       help="validation: held-out loss over 5 splits; evidence: marginal "
                            "likelihood on all the data; default: %(default)s")
    model.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S",
                       help="random seed of the splits and restarts; default: %(default)s")
    model.add_argument("--memory-budget", type=_memory_budget, default="auto", metavar="SIZE",
                       help="memory the fit may hold, e.g. 4GiB or 500MB; a fit that needs "
                            "more stops before any work and says how much; default: "
                            "%(default)s (half the memory available)")
    output = discover.add_argument_group("output")
    output.add_argument("--layer-shape", type=_layer_shape, metavar="ROWSxCOLS",
                        help="shape to draw the shareable items on, e.g. 14x16 or 8,8 "
                             "(default: outputs x inputs of W, or one row of means)")
    output.add_argument("--output-partition", metavar="FILE",
                        help="write the group label of each item (row-major): .npy, or .json "
                             "with the shared values, shape, symmetry and objective")
    output.add_argument("--output-figure", metavar="FILE",
                        help="draw the partition into a .png file (needs matplotlib)")
    discover.set_defaults(run=_run_discover, command_parser=discover)
    return parser


# -- running a fit ------------------------------------------------------------------------------

def _fit(parser, estimator, args, X, Y):
    """``estimator.fit`` on ``--threads`` (None: the estimator's choice), with its progress bar
    when stderr is a terminal and ``--quiet`` is off (its per-start lines then go to stderr
    too, keeping stdout for the result); its ValueError is reported as a usage error."""
    verbose = int(not args.quiet and sys.stderr.isatty())
    estimator.set_params(verbose=verbose, n_threads=args.threads)
    try:
        with contextlib.ExitStack() as stack:
            if verbose:
                stack.enter_context(contextlib.redirect_stdout(sys.stderr))
            start = time.perf_counter()
            estimator.fit(X, Y)
    except ValueError as exc:
        parser.error(str(exc).strip().splitlines()[0])
    except MemoryError as exc:  # not a usage error: the machine (or the budget) is too small
        parser.exit(1, f"{parser.prog}: error: {str(exc).strip()}\n")
    return time.perf_counter() - start


def _run_demo(parser, args):
    if args.kernel_size > args.n_inputs:
        parser.error(f"--kernel-size must be at most --n-inputs ({args.n_inputs}), got "
                     f"{args.kernel_size}")

    from . import SharingDiscoverer, partition_distance
    from .datasets import make_convolution

    try:
        X, Y, truth, W = make_convolution(args.n_samples, input_shape=args.n_inputs,
                                          kernel_size=args.kernel_size, mode=args.mode,
                                          random_state=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"Data: {args.n_samples} samples of y = x (*) kernel + noise ({args.mode}), kernel "
          f"{W[0, :args.kernel_size].astype(int).tolist()}, {W.shape[0]} x {W.shape[1]} = {W.size} "
          "weight entries, nothing told about the structure.", flush=True)
    disc = SharingDiscoverer(model="linear", random_state=args.seed)
    elapsed = _fit(parser, disc, args, X, Y)
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
    print(f"structure: {disc.structure_.text}")
    print(f"time: {elapsed:.2f} s")
    return 0


# -- discover: reading the user's files ---------------------------------------------------------

def _read_array(parser, path, *, what, key, header, delimiter):
    """The array of one file, or a one-line usage error saying what is wrong with it."""
    file = Path(path)
    if not file.is_file():
        parser.error(f"{what} file {path!r} does not exist" if not file.exists()
                     else f"{what} file {path!r} is not a file")
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(file, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                if key not in archive.files:
                    option = "--x-key" if what == "X" else "--y-key"
                    parser.error(f"{what} file {path!r} has no array named {key!r} (it holds "
                                 f"{', '.join(map(repr, archive.files)) or 'none'}); name one "
                                 f"with {option}")
                array = archive[key]
        elif suffix in (".csv", ".txt"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty file: reported below as its shape
                array = np.loadtxt(file, delimiter=delimiter, skiprows=int(header), ndmin=2,
                                   dtype=np.float64)
        else:
            parser.error(f"{what} file {path!r} must end in .npy, .npz or .csv, got "
                         f"{suffix or 'no suffix'!r}")
    except ValueError as exc:
        hint = "" if header or suffix not in (".csv", ".txt") else (
            "; if its first line is a header, pass --header")
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        parser.error(f"{what} file {path!r} could not be read as numbers: {detail}{hint}")
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        parser.error(f"{what} file {path!r} could not be read: {exc}")
    if array.dtype.kind not in "biuf":
        parser.error(f"{what} must hold numbers, got dtype {array.dtype} in {path!r}")
    return array


def _read_data(parser, args):
    X = _read_array(parser, args.X, what="X", key=args.x_key, header=args.header,
                    delimiter=args.delimiter)
    Y = None
    if args.y is not None:
        Y = _read_array(parser, args.y, what="Y", key=args.y_key, header=args.header,
                        delimiter=args.delimiter)
    elif args.model != "mean" and Path(args.X).suffix.lower() == ".npz":
        with np.load(args.X, allow_pickle=False) as archive:
            if args.y_key in archive.files:
                Y = _read_array(parser, args.X, what="Y", key=args.y_key, header=False,
                                delimiter=args.delimiter)
    model = args.model or ("linear" if Y is not None else "mean")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        parser.error(f"X must be a 2-D array (n_samples, n_features) with at least one row and "
                     f"column, got shape {X.shape}")
    if model == "linear":
        if Y is None:
            parser.error("--model linear needs targets: pass --y FILE (or a .npz file holding "
                         f"{args.y_key!r}), or use --model mean")
        if Y.ndim not in (1, 2) or Y.size == 0:
            parser.error(f"Y must be a 1-D or 2-D array (n_samples[, n_outputs]), got shape "
                         f"{Y.shape}")
        if Y.shape[0] != X.shape[0]:
            parser.error(f"X and Y must have one row per sample, got {X.shape[0]} rows in X "
                         f"and {Y.shape[0]} in Y")
    elif args.y is not None:
        parser.error("--model mean takes no targets: drop --y, or use --model linear")
    else:
        Y = None
    for name, array in (("X", X), ("Y", Y)):
        if array is not None and not np.all(np.isfinite(array)):
            parser.error(f"{name} must not contain NaN or infinity")
    return X, Y, model


def _check_outputs(parser, args):
    """Output files checked before the fit, so that a long fit is not lost to a typo."""
    for option, path, suffixes in (("--output-partition", args.output_partition,
                                    (".npy", ".json")),
                                   ("--output-figure", args.output_figure, (".png",))):
        if path is None:
            continue
        if Path(path).suffix.lower() not in suffixes:
            parser.error(f"{option} must end in {' or '.join(suffixes)}, got {path!r}")
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            parser.error(f"{option}: the folder {str(parent)!r} does not exist")
    if args.output_figure is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--output-figure needs matplotlib, which is not installed: "
                     "pip install matplotlib (or pip install \"sharelearn[plot]\")")


def _summary_lines(disc, shape):
    """The partition summary: groups and sizes, the drawing of the layer, the shared values."""
    labels = disc.sharing_partition_
    values = np.asarray(disc.shared_values_, dtype=float).ravel()
    sizes = np.bincount(labels, minlength=disc.n_groups_)
    shown = ", ".join(str(s) for s in sizes[:_MAX_LIST])
    more = f", ... ({disc.n_groups_ - _MAX_LIST} more)" if disc.n_groups_ > _MAX_LIST else ""
    lines = [f"Discovered sharing: {disc.n_groups_} group{'s' * (disc.n_groups_ != 1)} of "
             f"{labels.size} items, sizes {shown}{more} (group 0 first)"]
    if max(shape) <= _MAX_DRAW and disc.n_groups_ <= 52:
        drawing, legend = _draw(labels, shape, values)
        lines += [f"layer of group ids ({shape[0]} x {shape[1]}):", drawing,
                  f"shared values: {legend}"]
    else:
        listed = ", ".join(f"{v:+.3f}" for v in values[:_MAX_LIST])
        lines += [f"(a {shape[0]} x {shape[1]} layer with {disc.n_groups_} groups is not drawn "
                  "as text; see --output-figure)",
                  f"shared values by group: {listed}{more}"]
    return lines


def _structure_lines(disc, n_rows=6):
    """What the sharing is in words, where it departs from shift equivariance, and how well
    each structured hypothesis explains the data (``hypotheses_``, best first)."""
    structure = disc.structure_
    lines = [f"structure: {structure.text}"]
    departures = disc.departures_
    if departures.any():
        rows = np.flatnonzero(departures.any(1))
        listed = ", ".join(map(str, rows[:12])) + (", ..." if rows.size > 12 else "")
        lines.append(f"departures from shift equivariance: {int(departures.sum())} entries in "
                     f"{rows.size} output rows ({listed})")
    table = disc.hypotheses_
    structured = [i for i, name in enumerate(table["hypothesis"])
                  if name not in ("the sharing found", "no sharing (every entry free)")]
    if not structured:
        return lines
    lines.append("how well each structure explains the data (best objective first):")
    lines.append(f"  {'hypothesis':<58} {'groups':>6} {'except.':>7} {'objective':>13} "
                 f"{'variance':>9} {'span p':>7}")
    for i in range(min(n_rows, len(table["hypothesis"]))):
        explained = table["variance_explained"][i]
        lines.append(
            f"  {str(table['hypothesis'][i])[:58]:<58} {table['groups'][i]:>6} "
            f"{table['exceptions'][i]:>7} {table['objective'][i]:>13.1f} "
            f"{100 * explained:>8.2f}% {table['span_p_value'][i]:>7.3f}")
    if not any(table["explains"][i] for i in structured):
        signal = [table["signal_p_value"][i] for i in structured]
        if signal and min(signal) > 0.01:
            lines.append("no structure explains the targets better than chance")
        else:
            lines.append("no structured hypothesis explains the data: each is rejected by its "
                         "span test at the 1% level")
    return lines


def _write_partition(disc, path, shape, model):
    labels = np.asarray(disc.sharing_partition_, dtype=np.int64)
    if Path(path).suffix.lower() == ".npy":
        np.save(path, labels)
        return
    record = {
        "model": model,
        "layer_shape": list(shape),
        "n_groups": int(disc.n_groups_),
        "labels": labels.tolist(),
        "shared_values": np.asarray(disc.shared_values_, dtype=float).ravel().tolist(),
        "symmetry": disc.symmetry_group_.name,
        "structure": disc.structure_.text,
        "objective": float(disc.objective_),
    }
    with open(path, "w") as fh:
        json.dump(record, fh)
        fh.write("\n")


def _write_figure(disc, path, shape, default_shape):
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    from .plotting import SharingDisplay

    if shape == default_shape:
        display = SharingDisplay.from_estimator(disc, show_soft=False)
    else:
        display = SharingDisplay.from_partition(disc.sharing_partition_, shape,
                                                values=disc.shared_values_, name="discovered")
    display.figure_.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(display.figure_)


def _run_discover(parser, args):
    _check_outputs(parser, args)
    X, Y, model = _read_data(parser, args)
    n_outputs = 1 if Y is None or Y.ndim == 1 else Y.shape[1]
    n_items = X.shape[1] * (n_outputs if model == "linear" else 1)
    default_shape = (n_outputs, X.shape[1]) if model == "linear" else (1, X.shape[1])
    shape = args.layer_shape or default_shape
    if shape[0] * shape[1] != n_items:
        parser.error(f"--layer-shape {shape[0]}x{shape[1]} has {shape[0] * shape[1]} cells but "
                     f"the model has {n_items} shareable items")

    from . import SharingDiscoverer

    params = dict(model=model, objective=args.objective, random_state=args.seed,
                  memory_budget=args.memory_budget)
    if args.nuclear is not None:
        params["nuclear"] = args.nuclear
    if args.code_length is not None:
        params["code_length"] = args.code_length
    disc = SharingDiscoverer(**params)
    what = "weights" if model == "linear" else "means"
    print(f"Data: X {X.shape[0]} x {X.shape[1]}" + (
        "" if Y is None else f", Y {' x '.join(map(str, Y.shape))}") +
        f"; model {model!r}: {n_items} shareable {what}.", flush=True)
    elapsed = _fit(parser, disc, args, X, Y)

    for line in _summary_lines(disc, shape):
        print(line)
    if model == "linear":
        for line in _structure_lines(disc):
            print(line)
    group = disc.symmetry_group_
    order = group.order if group.order < 10**12 else f"{float(group.order):.3g}"
    print(f"symmetry: {group.name} (order {order})")
    print(f"objective: {disc.objective_:.4f} ({args.objective}; lower is better)")
    if args.output_partition is not None:
        _write_partition(disc, args.output_partition, shape, model)
        print(f"partition written to {args.output_partition}")
    if args.output_figure is not None:
        _write_figure(disc, args.output_figure, shape, default_shape)
        print(f"figure written to {args.output_figure}")
    print(f"time: {elapsed:.2f} s")
    return 0


def main(argv=None):
    """Run the command line; return the exit status (argparse exits 2 on a usage error)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:  # options only, e.g. --quiet
        parser.print_help(sys.stderr)
        return 2
    return args.run(args.command_parser, args)


if __name__ == "__main__":
    sys.exit(main())
