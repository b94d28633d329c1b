"""Command line: ``sharelearn demo`` and ``sharelearn discover`` (also ``python -m sharelearn``).

``demo`` generates a 1-D convolution and discovers its sharing; ``discover`` runs a discovery on
the user's own arrays (``.npy``, ``.npz`` or ``.csv``), prints the partition, the named symmetry
and the objective, and can write the partition (``.npy`` or ``.json``) and a picture (``.png``).
Bad arguments and bad files end in one line ``sharelearn <command>: error: ...`` and exit
status 2, argparse's convention; files and output paths are checked before the fit, so that a
long fit is never lost to a typo. Ctrl-C ends a run with one line and exit status 130. numpy,
torch and the estimators are imported only when a command runs, so ``--help`` and
``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import itertools
import json
import os
import re
import sys
import time
import warnings
import zipfile
from pathlib import Path

from ._version import __version__

PROG = "sharelearn"
# Layers wider or taller than this are not drawn as text (use --output-figure).
_MAX_DRAW = 40
# Group sizes and shared values listed in full up to this many groups.
_MAX_LIST = 30
# Largest seed: numpy's RandomState takes seeds below 2**32.
_MAX_SEED = 2**32 - 1
# Names under which a .npz file's samples and targets are recognised (--x-key, --y-key choose
# any other); numpy.savez(file, X, Y) stores them as arr_0 and arr_1.
_X_NAMES = ("X", "x", "data", "inputs", "features")
_Y_NAMES = ("Y", "y", "target", "targets", "outputs")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


def _group_names(values):
    """A letter per group, ``'.'`` for the group nearest 0 (the structural zeros)."""
    import numpy as np

    symbols = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    zero = int(np.argmin(np.abs(values)))
    return {g: "." if g == zero else next(symbols, str(g)) for g in range(len(values))}


def _draw(labels, shape, values):
    """The weight matrix drawn with one letter per group; the group nearest 0 is drawn as '.'."""
    import numpy as np

    names = _group_names(values)
    grid = np.asarray(labels).reshape(shape)
    width = max(len(v) for v in names.values())
    rows = [" ".join(names[g].rjust(width) for g in row) for row in grid]
    legend = ", ".join(f"{names[g]} = {values[g]:+.3f}" for g in range(len(values)))
    return "\n".join(rows), legend


def _cpu_count():
    """CPU cores this process may run on, to which --threads is lowered: threads beyond them
    only wait for one, and tens of thousands exhaust the process (its next import fails)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


# -- argument types: each raises ArgumentTypeError, which argparse turns into parser.error ------

def _int_between(minimum, maximum=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"must be an integer from {minimum} to {maximum}, got {text!r}")
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


def _delimiter(text):
    """One character; ``\\t`` (typed as two characters) or ``tab`` is a tab."""
    if text in ("\\t", "tab", "TAB"):
        return "\t"
    if len(text) != 1 or text in "\"\n\r" or text.isdigit() or text in ".-+":
        raise argparse.ArgumentTypeError(
            "must be one character that separates the columns, such as ',' or ';' or '\\t' "
            f"for a tab (not a digit, sign, point, quote or newline), got {text!r}")
    return text


_delimiter.__name__ = "delimiter"


# -- the parser -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse's parser that suggests the nearest choice for a misspelt one (Python 3.14's
    ``suggest_on_error``, which the versions this package supports lack)."""

    def error(self, message):
        if "invalid choice: " in message and "(choose from " in message:
            given, listed = message.split("invalid choice: ", 1)[1].split(" (choose from ", 1)
            choices = re.findall(r"'([^']*)'", listed)
            close = difflib.get_close_matches(given.strip("'"), choices, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
        super().error(message)


def _unrecognized(parser, extras):
    """The error for arguments no option takes: the nearest option for a misspelt one, and
    ``--y`` for a second file."""
    options = sorted({s for action in parser._actions for s in action.option_strings
                      if s.startswith("--")})
    hints = []
    for token in extras:
        name = token.split("=", 1)[0]
        if name in options:  # an option of the command written before the command's name
            hints.append(f"{name} is an option of '{parser.prog.split()[-1]}': write it "
                         "after the command's name")
        elif name.startswith("-"):
            close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]}?")
        elif "--y" in options and not hints:
            hints.append(f"the samples come in one file; pass the targets with --y, as in "
                         f"--y {token}")
    hint = f" ({'; '.join(hints)})" if hints else ""
    parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _common_options():
    """Options every command takes: progress and threads."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("running")
    group.add_argument("--quiet", "-q", action="store_true",
                       help="no progress bar (it is shown on stderr only when stderr is a "
                            "terminal)")
    group.add_argument("--threads", type=_int_between(1), metavar="N",
                       help="torch threads for the fit, the estimator's n_threads, lowered "
                            "to the CPU cores this process may use (default: chosen for the "
                            "problem, one thread at the package's sizes, or "
                            "SHARELEARN_NUM_THREADS when set)")
    return common


def build_parser():
    """The ``sharelearn`` parser with its ``demo`` and ``discover`` subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Discover the symmetries of data by learning how a model shares its "
                    "parameters.",
        epilog="Run 'sharelearn COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND",
                                     parser_class=_Parser)
    common = _common_options()

    demo = commands.add_parser(
        "demo", parents=[common], help="discover the sharing of a generated 1-D convolution",
        description="Generate a 1-D cross-correlation, discover which weights it shares, name "
                    "the symmetry of the discovered sharing, and compare with the truth.")
    demo.add_argument("--mode", choices=("circular", "valid"), default="circular",
                      help="circular (wraps around: shift symmetry C_n) or valid (no padding); "
                           "default: %(default)s")
    demo.add_argument("--n-inputs", type=_int_between(1), default=12, metavar="N",
                      help="length of the input signal; default: %(default)s")
    demo.add_argument("--kernel-size", type=_int_between(1), default=3, metavar="K",
                      help="length of the kernel, at most --n-inputs; default: %(default)s")
    demo.add_argument("--n-samples", type=_int_between(5), default=150, metavar="N",
                      help="number of (input, output) samples, at least 5 (one per "
                           "train/validation split); default: %(default)s")
    demo.add_argument("--seed", type=_int_between(0, _MAX_SEED), default=0, metavar="S",
                      help="random seed of the data and of the discovery, from 0 to 2**32 - 1; "
                           "default: %(default)s")
    demo.set_defaults(run=_run_demo, command_parser=demo)

    discover = commands.add_parser(
        "discover", parents=[common], help="discover the sharing in your own arrays",
        description="Discover which parameters of a model of your data share one value: the "
                    "entries of a linear map Y = W X + b (--model linear, the default when "
                    "targets are given) or the feature means (--model mean, the default for X "
                    "alone). Prints the partition, its structure (the kernel of a "
                    "convolution), its named symmetry and the objective.",
        epilog="Examples: 'sharelearn discover data.npz' (arrays X and Y inside); "
               "'sharelearn discover X.csv --y Y.csv --header --layer-shape 6x6 "
               "--output-partition part.json --output-figure part.png'.")
    data = discover.add_argument_group("data")
    data.add_argument("X", help="samples, one row each: a .npy file, a .npz file (its samples "
                                "and targets found by name, see --x-key and --y-key) or a .csv "
                                "file of numbers")
    data.add_argument("--y", metavar="FILE",
                      help="targets, one row per sample (.npy, .npz or .csv), for --model "
                           "linear; default: the targets' array of X's .npz file")
    data.add_argument("--x-key", metavar="KEY",
                      help="name of the samples' array in a .npz file; default: the one of "
                           f"{', '.join(_X_NAMES)} it holds (or its only array)")
    data.add_argument("--y-key", metavar="KEY",
                      help="name of the targets' array in a .npz file; default: the one of "
                           f"{', '.join(_Y_NAMES)} it holds")
    data.add_argument("--header", action="store_true",
                      help="the first line of each .csv file is a header, skipped")
    data.add_argument("--delimiter", type=_delimiter, default=",", metavar="CHAR",
                      help="column separator of .csv files, one character ('\\t' or tab for a "
                           "tab); default: ','")
    model = discover.add_argument_group("model")
    model.add_argument("--model", choices=("mean", "linear"),
                       help="linear: which entries of W in Y = W X + b are equal; mean: which "
                            "feature means are equal (X only); default: linear when targets "
                            "are given, else mean")
    model.add_argument("--nuclear", type=_non_negative_float, metavar="WEIGHT",
                       help="weight of the nuclear-norm penalty, towards few large groups; "
                            "default: the estimator's (2.0)")
    model.add_argument("--code-length", type=_non_negative_float, metavar="WEIGHT",
                       help="weight of the assignment's description length, against fitting "
                            "noise; default: the estimator's (2.0)")
    model.add_argument("--objective", choices=("validation", "evidence"), default="validation",
                       help="validation: held-out loss over 5 splits; evidence: marginal "
                            "likelihood on all the data; default: %(default)s")
    model.add_argument("--seed", type=_int_between(0, _MAX_SEED), default=0, metavar="S",
                       help="random seed of the splits and restarts, from 0 to 2**32 - 1; "
                            "default: %(default)s")
    model.add_argument("--memory-budget", type=_memory_budget, default="auto", metavar="SIZE",
                       help="memory the fit may hold, e.g. 4GiB or 500MB; a fit that needs "
                            "more stops before any work and says how much; default: "
                            "%(default)s (half the memory available)")
    output = discover.add_argument_group("output")
    output.add_argument("--layer-shape", type=_layer_shape, metavar="ROWSxCOLS",
                        help="shape to draw the shareable items on, e.g. 14x16 or 8,8 "
                             "(default: outputs x inputs of W, or one row of means); for a "
                             "linear map it may instead be the inputs' grid (an image's "
                             "height x width), on which the map is read as a convolution")
    output.add_argument("--output-partition", metavar="FILE",
                        help="write the group label of each item (row-major): .npy, or .json "
                             "with the shared values, shape, symmetry, kernel and objective")
    output.add_argument("--output-figure", metavar="FILE",
                        help="draw the partition into a .png file (needs matplotlib)")
    discover.set_defaults(run=_run_discover, command_parser=discover)
    return parser


# -- running a fit ------------------------------------------------------------------------------

def _root_cause(exc):
    """The first exception of ``exc``'s chain: what an import failure really came from."""
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def _import_failure(exc):
    """One line for an ImportError (or a shared library that failed to load): its message and,
    when the chain holds another, the error that caused it."""
    text, root = _first_line(exc), _root_cause(exc)
    if root is not exc:
        text += f" (the import failed with {type(root).__name__}: {_first_line(root)})"
    return text


@contextlib.contextmanager
def _heavy_imports(parser):
    """numpy, torch and the estimators, imported when a command runs; an import that fails is
    reported with its real cause, in one line with exit status 1."""
    try:
        yield
    except (ImportError, OSError) as exc:
        parser.exit(1, f"{parser.prog}: error: an import failed: {_import_failure(exc)}\n")


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
    except (ValueError, OverflowError) as exc:
        parser.error(str(exc).strip().splitlines()[0])
    except MemoryError as exc:  # not a usage error: the machine (or the budget) is too small
        parser.exit(1, f"{parser.prog}: error: {str(exc).strip()}\n")
    return time.perf_counter() - start


def _run_demo(parser, args):
    if args.kernel_size > args.n_inputs:
        parser.error(f"--kernel-size must be at most --n-inputs ({args.n_inputs}), got "
                     f"{args.kernel_size}")

    with _heavy_imports(parser):
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
    print(f"\nDiscovered sharing ({disc.n_groups_} group{'s' * (disc.n_groups_ != 1)}), "
          "weight matrix of group ids:")
    print(drawing)
    print(f"shared values: {legend}")
    distance = partition_distance(disc.sharing_partition_, truth)
    print(f"\npartition distance to the true convolution: {distance} of {W.size} entries"
          f"{' (exact recovery)' if distance == 0 else ''}")
    with _heavy_imports(parser):
        group = disc.symmetry_group_
    print(f"discovered symmetry: {group.name} (order {group.order}) acting on the "
          f"{W.shape[0]} outputs and {W.shape[1]} inputs")
    print(f"structure: {disc.structure_.text}")
    print(f"time: {elapsed:.2f} s")
    return 0


# -- discover: reading the user's files ---------------------------------------------------------

def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _listing(names):
    return ", ".join(map(repr, names)) or "no arrays"


def _file_kind(parser, path, what):
    """``"npy"``, ``"npz"`` or ``"csv"``: the suffix names a format and, for numpy's, the first
    bytes confirm it (numpy would read any other bytes as a pickle and advise unpickling)."""
    file = Path(path)
    if not file.is_file():
        parser.error(f"{what} file {path!r} does not exist" if not file.exists()
                     else f"{what} file {path!r} is not a file")
    suffix = file.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix not in (".npy", ".npz"):
        parser.error(f"{what} file {path!r} must end in .npy, .npz or .csv, got "
                     f"{suffix or 'no suffix'!r}")
    try:
        with open(file, "rb") as fh:
            head = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        parser.error(f"{what} file {path!r} could not be read: {exc.strerror or exc}")
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:4] in _ZIP_MAGICS:
        return "npz"
    parser.error(f"{what} file {path!r} is not a readable {suffix} file: it holds neither an "
                 "array (as numpy.save writes) nor an archive of arrays (as numpy.savez "
                 "writes)")


def _archive_names(parser, path, what):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        parser.error(f"{what} file {path!r} is not a readable .npz file: {_first_line(exc)}")


def _pick_key(parser, names, *, given, recognised, path, label, noun, option):
    """The name of the samples' or targets' array in a .npz file: ``given`` (an error where the
    file lacks it), else the one of the ``recognised`` names it holds, None where it holds
    none, an error where it holds several (no silent choice)."""
    if given is not None:
        if given not in names:
            parser.error(f"{label} file {path!r} has no array named {given!r} (it holds "
                         f"{_listing(names)}); name the {noun}' array with {option}")
        return given
    found = [n for n in recognised if n in names]
    if len(found) > 1:
        parser.error(f"{label} file {path!r} holds several arrays that could be the {noun} "
                     f"({_listing(found)}): choose one with {option}")
    return found[0] if found else None


def _load(parser, path, kind, *, what, key, header, delimiter):
    """The array of one file (``key``: the array of a .npz file), or a one-line usage error
    saying what is wrong with it."""
    import numpy as np

    where = f"array {key!r} of {path!r}" if kind == "npz" else repr(path)
    try:
        if kind == "npy":
            array = np.load(path, allow_pickle=False)
        elif kind == "npz":
            with np.load(path, allow_pickle=False) as archive:
                array = archive[key]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty file: reported below as its shape
                array = np.loadtxt(path, delimiter=delimiter, skiprows=int(header), ndmin=2,
                                   dtype=np.float64)
    except UnicodeDecodeError:
        parser.error(f"{what} file {path!r} is not a readable .csv file: it is not text")
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an array of Python objects, stored as a pickle
            parser.error(f"{what} must hold numbers, but {where} holds Python objects (save "
                         "an array of numbers)")
        hint = "" if header or kind != "csv" else "; if its first line is a header, pass --header"
        parser.error(f"{what} file {path!r} could not be read as numbers: "
                     f"{_first_line(exc)}{hint}")
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        parser.error(f"{what} file {path!r} could not be read: {_first_line(exc)}")
    if array.dtype.kind not in "biuf":
        parser.error(f"{what} must hold numbers, got dtype {array.dtype} in {where}")
    return array


def _read_data(parser, args):
    """X, Y (None without targets), the model, and what to say of them: where each array came
    from and why the model is the one it is."""
    if args.model == "mean" and (args.y is not None or args.y_key is not None):
        option = "--y" if args.y is not None else "--y-key"
        parser.error(f"--model mean takes no targets: drop {option}, or use --model linear")
    x_kind = _file_kind(parser, args.X, "X")
    x_key = y_key = y_kind = None
    unused = []
    if x_kind == "npz":
        names = _archive_names(parser, args.X, "X")
        x_key = _pick_key(parser, names, given=args.x_key, recognised=_X_NAMES, path=args.X,
                          label="X", noun="samples", option="--x-key")
        if x_key is None:
            rest = [n for n in names if n not in _Y_NAMES]
            if "arr_0" in names and set(names) <= {"arr_0", "arr_1"}:  # numpy.savez(f, X, Y)
                x_key = "arr_0"
            elif len(rest) == 1:
                x_key = rest[0]
            else:
                parser.error(f"X file {args.X!r} holds {_listing(names)}, and none is named as "
                             f"the samples ({', '.join(_X_NAMES)}): name the samples' array "
                             "with --x-key")
        others = [n for n in names if n != x_key]
        if args.model == "mean":
            unused = others
        elif args.y is None:
            recognised = _Y_NAMES + (("arr_1",) if x_key == "arr_0" else ())
            y_key = _pick_key(parser, others, given=args.y_key, recognised=recognised,
                              path=args.X, label="X", noun="targets", option="--y-key")
            if y_key is None and args.model == "linear":
                parser.error(f"--model linear needs targets, and X file {args.X!r} holds "
                             f"{_listing(names)}, none named as the targets "
                             f"({', '.join(_Y_NAMES)}): name them with --y-key, or pass "
                             "--y FILE")
            if y_key is None and others:
                parser.error(f"X file {args.X!r} holds {_listing(others)} besides the samples "
                             f"{x_key!r}, and none is named as the targets "
                             f"({', '.join(_Y_NAMES)}): name the targets' array with --y-key "
                             "for a linear map, or pass --model mean to find which feature "
                             "means are equal")
    elif args.x_key is not None:
        parser.error(f"--x-key names an array of a .npz file, but X file {args.X!r} is a "
                     f".{x_kind} file: drop --x-key")
    if args.y is not None:
        y_kind = _file_kind(parser, args.y, "Y")
        if y_kind == "npz":
            y_names = _archive_names(parser, args.y, "Y")
            y_key = _pick_key(parser, y_names, given=args.y_key, recognised=_Y_NAMES,
                              path=args.y, label="Y", noun="targets", option="--y-key")
            if y_key is None and len(y_names) == 1:
                y_key = y_names[0]
            elif y_key is None:
                parser.error(f"Y file {args.y!r} holds {_listing(y_names)}, and none is named "
                             f"as the targets ({', '.join(_Y_NAMES)}): name the targets' "
                             "array with --y-key")
        elif args.y_key is not None:
            parser.error(f"--y-key names an array of a .npz file, but Y file {args.y!r} is a "
                         f".{y_kind} file: drop --y-key")
    elif args.y_key is not None and x_kind != "npz":
        parser.error("--y-key names an array of X's .npz file, but X is a "
                     f".{x_kind} file: pass the targets' file with --y FILE")

    X = _load(parser, args.X, x_kind, what="X", key=x_key, header=args.header,
              delimiter=args.delimiter)
    Y = None
    if y_kind is not None:
        Y = _load(parser, args.y, y_kind, what="Y", key=y_key, header=args.header,
                  delimiter=args.delimiter)
    elif y_key is not None:
        Y = _load(parser, args.X, "npz", what="Y", key=y_key, header=False,
                  delimiter=args.delimiter)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        parser.error(f"X must be a 2-D array (n_samples, n_features) with at least one row and "
                     f"column, got shape {X.shape}")
    model = args.model or ("linear" if Y is not None else "mean")
    if model == "linear":
        if Y is None:
            parser.error("--model linear needs targets: pass --y FILE (or a .npz file holding "
                         f"them as {' or '.join(_Y_NAMES[:2])}), or use --model mean")
        if Y.ndim not in (1, 2) or Y.size == 0:
            parser.error(f"Y must be a 1-D or 2-D array (n_samples[, n_outputs]), got shape "
                         f"{Y.shape}")
        if Y.shape[0] != X.shape[0]:
            parser.error(f"X and Y must have one row per sample, got {X.shape[0]} rows in X "
                         f"and {Y.shape[0]} in Y")
    import numpy as np

    for name, array in (("X", X), ("Y", Y)):
        if array is not None and not np.all(np.isfinite(array)):
            parser.error(f"{name} must not contain NaN or infinity")

    def source(path, key):
        return f"array {key!r} of {Path(path).name}" if key is not None else Path(path).name

    data = f"Data: X {' x '.join(map(str, X.shape))} ({source(args.X, x_key)})"
    if Y is not None:
        data += (f", Y {' x '.join(map(str, Y.shape))} "
                 f"({source(args.y if args.y is not None else args.X, y_key)})")
    if args.model is not None:
        why = "as --model asks"
    elif model == "linear":
        why = "as targets were given (--model mean: X's feature means alone)"
    else:
        why = "as no targets were given (--y FILE gives them, for a linear map)"
    if unused:
        why += f"; {_listing(unused)} of {Path(args.X).name} not used"
    return X, Y, model, data + ".", why


def _check_outputs(parser, args):
    """Output files checked before the fit, so that a long fit is never lost to a typo: the
    suffix, the folder, not an input file, and that the file can be written (tried, leaving
    nothing behind)."""
    inputs = {Path(p).resolve() for p in (args.X, args.y) if p is not None}
    for option, path, suffixes in (("--output-partition", args.output_partition,
                                    (".npy", ".json")),
                                   ("--output-figure", args.output_figure, (".png",))):
        if path is None:
            continue
        file = Path(path)
        if file.is_dir():
            parser.error(f"{option} {path!r} is a folder; name a file, e.g. "
                         f"{str(file / ('partition' + suffixes[0]))!r}")
        if file.suffix.lower() not in suffixes:
            parser.error(f"{option} must end in {' or '.join(suffixes)}, got {path!r}")
        parent = file.resolve().parent
        if not parent.exists():
            parser.error(f"{option}: the folder {str(parent)!r} does not exist")
        if not parent.is_dir():
            parser.error(f"{option}: {str(parent)!r} is a file, not a folder")
        if file.resolve() in inputs:
            parser.error(f"{option} {path!r} is an input file, which the result would replace: "
                         "name another file")
        existed = file.exists()
        try:
            with open(file, "ab"):  # appends nothing: an existing file is left as it is
                pass
        except OSError as exc:
            parser.error(f"{option} {path!r} cannot be written: {exc.strerror or exc}")
        if not existed:
            with contextlib.suppress(OSError):
                file.unlink()
    if args.output_figure is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--output-figure needs matplotlib, which is not installed: "
                     "pip install matplotlib (or pip install \"sharelearn[plot]\")")


def _legend(values):
    """The shared values with the letters of the drawing (by group index past 52 groups)."""
    if len(values) <= 52:
        names = _group_names(values)
        return "shared values: " + ", ".join(
            f"{names[g]} = {values[g]:+.3f}" for g in range(len(values)))
    more = f", ... ({len(values) - _MAX_LIST} more)" if len(values) > _MAX_LIST else ""
    return ("shared values by group: " + ", ".join(f"{v:+.3f}" for v in values[:_MAX_LIST])
            + more)


def _summary_lines(disc, shape):
    """The partition summary: groups and sizes, the drawing of the layer, the shared values."""
    import numpy as np

    labels = disc.sharing_partition_
    values = np.asarray(disc.shared_values_, dtype=float).ravel()
    sizes = np.bincount(labels, minlength=disc.n_groups_)
    shown = ", ".join(str(s) for s in sizes[:_MAX_LIST])
    more = f", ... ({disc.n_groups_ - _MAX_LIST} more)" if disc.n_groups_ > _MAX_LIST else ""
    lines = [f"Discovered sharing: {disc.n_groups_} group{'s' * (disc.n_groups_ != 1)} of "
             f"{labels.size} items, sizes {shown}{more} (group 0 first)"]
    if max(shape) <= _MAX_DRAW and disc.n_groups_ <= 52:
        drawing, _ = _draw(labels, shape, values)
        lines += [f"layer of group ids ({shape[0]} x {shape[1]}):", drawing]
    else:
        lines.append(f"layer: {shape[0]} x {shape[1]}, too large to draw as text "
                     "(--output-figure draws it)")
    lines.append(_legend(values))
    return lines


def _kernel(structure, labels, shape):
    """The kernel of a sharing read as a convolution: the group of each tap (an array of the
    kernel's shape) read at the middle output that sees every tap, and that output; None
    when the sharing is no convolution or no output sees the whole kernel."""
    import numpy as np

    if structure.kind != "convolution" or not structure.kernel_offsets:
        return None
    grid = tuple(structure.grid)
    out_grid = tuple(structure.output_grid or structure.grid)
    wrap = structure.border == "circular"
    centre = []
    for n_in, n_out, (lo, hi) in zip(grid, out_grid, structure.kernel_offsets, strict=True):
        first, last = (0, n_out - 1) if wrap else (max(0, -lo), min(n_out - 1, n_in - 1 - hi))
        if first > last:
            return None
        centre.append((first + last) // 2)
    offsets = [range(lo, hi + 1) for lo, hi in structure.kernel_offsets]
    taps = np.array(list(itertools.product(*offsets)))
    inputs = np.asarray(centre) + taps  # input = output + offset, per axis
    if wrap:
        inputs %= np.asarray(grid)
    row = np.ravel_multi_index(tuple(centre), out_grid)
    cols = np.ravel_multi_index(tuple(inputs.T), grid)
    groups = np.asarray(labels).reshape(shape)[row, cols]
    return groups.reshape([len(r) for r in offsets]), tuple(centre)


def _kernel_lines(kernel, values):
    """The kernel drawn: each tap's group letter (as in the layer) and its value."""
    import numpy as np

    groups, centre = kernel
    names = _group_names(values) if len(values) <= 52 else {g: str(g) for g in
                                                            range(len(values))}
    letters = [names[g] for g in groups.ravel()]
    numbers = [f"{values[g]:+.3f}" for g in groups.ravel()]
    lw, nw = max(map(len, letters)), max(map(len, numbers))
    cells = np.array([f"{a:>{lw}} {v:>{nw}}" for a, v in zip(letters, numbers, strict=True)])
    cells = cells.reshape(groups.shape if groups.ndim == 2 else (1, -1))
    dims = " x ".join(map(str, groups.shape))
    at = ", ".join(map(str, centre))
    return ([f"kernel ({dims} taps, read at output ({at})): each tap's group and value"]
            + ["  " + "   ".join(row) for row in cells])


def _structure_lines(disc, structure, kernel, values, n_rows=6):
    """What the sharing is in words, its kernel, where it departs from shift equivariance,
    and how well each structured hypothesis explains the data (``hypotheses_``, best
    first)."""
    import numpy as np

    lines = [f"structure: {structure.text}"]
    if kernel is not None:
        lines += _kernel_lines(kernel, values)
    departures = (np.zeros((1, 1), bool) if structure.departures is None
                  else np.asarray(structure.departures, dtype=bool))
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


def _write_partition(disc, path, shape, model, *, symmetry, structure, kernel, grid):
    import numpy as np

    labels = np.asarray(disc.sharing_partition_, dtype=np.int64)
    if Path(path).suffix.lower() == ".npy":
        np.save(path, labels)
        return
    values = np.asarray(disc.shared_values_, dtype=float).ravel()
    record = {
        "model": model,
        "layer_shape": list(shape),
        "n_groups": int(disc.n_groups_),
        "labels": labels.tolist(),
        "shared_values": values.tolist(),
        "symmetry": symmetry,
        "structure": None if structure is None else structure.text,
        "objective": float(disc.objective_),
    }
    if grid is not None:
        record["input_grid"] = list(grid)
    if kernel is not None:
        record["kernel"] = {"groups": kernel[0].tolist(), "values": values[kernel[0]].tolist(),
                            "offsets": [list(o) for o in structure.kernel_offsets]}
    with open(path, "w") as fh:
        json.dump(record, fh)
        fh.write("\n")


def _write_figure(disc, path, shape, default_shape, structure=None):
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    from .plotting import SharingDisplay

    if shape == default_shape:
        # the structure read on the grid asked for (--layer-shape), if any
        display = SharingDisplay.from_estimator(disc, show_soft=False, structure=structure)
    else:
        display = SharingDisplay.from_partition(disc.sharing_partition_, shape,
                                                values=disc.shared_values_, name="discovered")
    display.figure_.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(display.figure_)


def _run_discover(parser, args):
    _check_outputs(parser, args)
    X, Y, model, data, why = _read_data(parser, args)  # files checked before numpy's import
    n_outputs = 1 if Y is None or Y.ndim == 1 else Y.shape[1]
    n_items = X.shape[1] * (n_outputs if model == "linear" else 1)
    default_shape = (n_outputs, X.shape[1]) if model == "linear" else (1, X.shape[1])
    shape, grid = default_shape, None
    if args.layer_shape is not None:
        cells = args.layer_shape[0] * args.layer_shape[1]
        if cells == n_items:
            shape = args.layer_shape
        elif model == "linear" and cells == X.shape[1]:
            grid = args.layer_shape  # the inputs' grid: the map is read as a filter on it
        else:
            inputs = f", or the {X.shape[1]} inputs' grid" if model == "linear" else ""
            parser.error(f"--layer-shape {args.layer_shape[0]}x{args.layer_shape[1]} has "
                         f"{cells} cells but the model has {n_items} shareable items: give "
                         f"the shape of the items{inputs}")

    with _heavy_imports(parser):
        import numpy as np

        from . import SharingDiscoverer
        from .symmetry.structure import describe_sharing

    params = dict(model=model, objective=args.objective, random_state=args.seed,
                  memory_budget=args.memory_budget)
    if args.nuclear is not None:
        params["nuclear"] = args.nuclear
    if args.code_length is not None:
        params["code_length"] = args.code_length
    disc = SharingDiscoverer(**params)
    what = "weights of Y = W X + b" if model == "linear" else "feature means"
    print(data)
    print(f"Model: {model}, {why}: {n_items} shareable {what}.", flush=True)
    elapsed = _fit(parser, disc, args, X, Y)

    values = np.asarray(disc.shared_values_, dtype=float).ravel()
    for line in _summary_lines(disc, shape):
        print(line)
    structure = kernel = None
    if model == "linear":
        structure = disc.structure_ if grid is None else describe_sharing(
            disc.sharing_partition_, default_shape, grids=[grid])
        kernel = _kernel(structure, disc.sharing_partition_, default_shape)
        for line in _structure_lines(disc, structure, kernel, values):
            print(line)
    failure = symmetry = None
    try:
        group = disc.symmetry_group_
    except (ImportError, OSError) as exc:  # naming needs igraph; the partition stands
        failure = f"the symmetry could not be named: an import failed: {_import_failure(exc)}"
        print("symmetry: not named (see the error below)")
    else:
        symmetry = group.name
        order = group.order if group.order < 10**12 else f"{float(group.order):.3g}"
        print(f"symmetry: {group.name} (order {order})")
    print(f"objective: {disc.objective_:.4f} ({args.objective}; lower is better)", flush=True)
    try:
        if args.output_partition is not None:
            _write_partition(disc, args.output_partition, shape, model, symmetry=symmetry,
                             structure=structure, kernel=kernel, grid=grid)
            print(f"partition written to {args.output_partition}")
        if args.output_figure is not None:
            _write_figure(disc, args.output_figure, shape, default_shape,
                          structure=structure if grid is not None else None)
            print(f"figure written to {args.output_figure}")
    except OSError as exc:  # the folder went away or the disk filled during the fit
        failure = f"could not write the result: {exc}; the partition is printed above"
    print(f"time: {elapsed:.2f} s")
    if failure is not None:
        parser.exit(1, f"{parser.prog}: error: {failure}\n")
    return 0


def main(argv=None):
    """Run the command line; return the exit status (argparse exits 2 on a usage error, an
    interrupted run returns 130)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args, extras = parser.parse_known_args(argv)
    if args.command is None:  # options only, e.g. --quiet
        parser.print_help(sys.stderr)
        return 2
    if extras:
        _unrecognized(args.command_parser, extras)
    cores = _cpu_count()
    if args.threads is not None and args.threads > cores:
        print(f"{args.command_parser.prog}: note: --threads {args.threads} lowered to {cores}, "
              "the CPU cores this process may use (threads beyond them only wait for one)",
              file=sys.stderr)
        args.threads = cores
    try:
        return args.run(args.command_parser, args)
    except KeyboardInterrupt:  # Ctrl-C: one line, and the shell's status for SIGINT
        newline = "\n" if sys.stderr.isatty() else ""  # past a progress bar's line
        print(f"{newline}{args.command_parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader has gone (| head): stop quietly, as Unix tools do
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
