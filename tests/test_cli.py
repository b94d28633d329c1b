"""The command line, run as a user runs it: ``python -m sharelearn ...`` in a subprocess.

Usage errors must be one line ``sharelearn <command>: error: ...`` on stderr with exit status
2, never a traceback. Each subprocess pays torch's import (seconds), so the tables of errors go
through ``main`` in this process (argparse's ``SystemExit(2)`` and stderr are the same), and a
few of each kind, and every discovery, run as subprocesses.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from sharelearn import __version__
from sharelearn.__main__ import main
from sharelearn.datasets import make_convolution, make_shared_means


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sharelearn", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, check=False)


def assert_usage_error(proc, command, *fragments, before_fit=True):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(error_lines) == 1, proc.stderr
    assert error_lines[0].startswith(f"sharelearn {command}: error: ")
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]
    if before_fit:
        assert proc.stdout == ""


def usage_error_in_process(capsys, command, args, *fragments, before_fit=True):
    """``main`` raises SystemExit(2) after one error line, as the subprocess would."""
    with pytest.raises(SystemExit) as exc:
        main([command, *map(str, args)])
    captured = capsys.readouterr()
    proc = subprocess.CompletedProcess([], exc.value.code, captured.out, captured.err)
    assert_usage_error(proc, command, *fragments, before_fit=before_fit)


# -- demo (in process: its output is the main job's) ----------------------------------------

def test_demo_recovers_draws_and_names_the_circular_convolution(capsys):
    assert main(["demo", "--n-inputs", "6", "--kernel-size", "2", "--n-samples", "80"]) == 0
    out = capsys.readouterr().out
    assert "partition distance to the true convolution: 0 of 36 entries (exact recovery)" in out
    assert "A B . . . ." in out  # the first row of a kernel-2 correlation
    assert "discovered symmetry: C_6 (order 6)" in out
    assert "time:" in out


def test_demo_valid_mode(capsys):
    args = ["demo", "--mode", "valid", "--n-inputs", "6", "--kernel-size", "2",
            "--n-samples", "80", "--threads", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 of 30 entries (exact recovery)" in out
    assert "discovered symmetry: trivial" in out


# -- help and version -------------------------------------------------------------------------

def test_help_lists_every_command_with_a_description():
    for flag in ("--help", "-h"):
        proc = run(flag)
        assert proc.returncode == 0 and proc.stderr == ""
        assert proc.stdout.startswith("usage: sharelearn")
        assert "demo      discover the sharing of a generated 1-D convolution" in proc.stdout
        assert "discover  discover the sharing in your own arrays" in proc.stdout


def test_every_option_of_every_command_is_described():
    from sharelearn.__main__ import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"demo", "discover"}
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_command_help_goes_to_stdout():
    proc = run("discover", "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: sharelearn discover")
    assert "--output-figure FILE" in proc.stdout and "--layer-shape" in proc.stdout


def test_version():
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"sharelearn {__version__}"


def test_no_arguments_prints_help_and_exits_2():
    proc = run()
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: sharelearn")
    assert "demo" in proc.stderr and "discover" in proc.stderr


# -- usage errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragments", [
    (["--kernel-size", "20"], ["--kernel-size must be at most --n-inputs (12), got 20"]),
    (["--n-samples", "3"], ["argument --n-samples", "integer >= 5", "'3'"]),
    (["--n-inputs", "-4"], ["argument --n-inputs", "integer >= 1", "'-4'"]),
    (["--seed", "-1"], ["argument --seed", "integer >= 0"]),
    (["--n-inputs", "six"], ["must be an integer, got 'six'"]),
    (["--threads", "0"], ["argument --threads"]),
    (["--mode", "same"], ["argument --mode: invalid choice: 'same'"]),
])
def test_demo_bad_values_are_one_line_usage_errors(capsys, args, fragments):
    usage_error_in_process(capsys, "demo", args, *fragments)


def test_demo_bad_values_in_a_subprocess():
    assert_usage_error(run("demo", "--kernel-size", "20"), "demo", "--kernel-size")
    assert_usage_error(run("demo", "--n-samples", "3"), "demo", "--n-samples")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small data sets on disk, and malformed files."""
    d = tmp_path_factory.mktemp("data")
    X, Y, truth, _ = make_convolution(80, input_shape=6, kernel_size=2, random_state=0)
    np.savez(d / "conv.npz", X=X, Y=Y)
    np.savez(d / "conv_keys.npz", a=X, b=Y)
    np.save(d / "conv_X.npy", X)
    np.savetxt(d / "conv_Y.csv", Y, delimiter=",", header=",".join(f"y{i}" for i in range(5)),
               comments="")
    np.save(d / "short_Y.npy", Y[:-1])
    Xm, truth_m, _ = make_shared_means(100, n_features=6, n_groups=2, random_state=1)
    np.save(d / "means.npy", Xm)
    np.save(d / "flat.npy", Xm[:, 0])
    np.save(d / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    (d / "words.csv").write_text("1.0,2.0\n3.0,oops\n")
    (d / "header.csv").write_text("a,b\n1.0,2.0\n3.0,4.0\n")
    (d / "notes.txt.gz").write_text("x")
    (d / "broken.npy").write_bytes(b"not an array")
    (d / "broken.npz").write_bytes(b"not a zip")
    return dict(dir=d, truth=truth, truth_means=truth_m, **{p.name: p for p in d.iterdir()})


@pytest.mark.parametrize("make_args, fragments", [
    (lambda f: [f["dir"] / "missing.npy"], ["X file", "missing.npy", "does not exist"]),
    (lambda f: [f["dir"]], ["is not a file"]),
    (lambda f: [f["notes.txt.gz"]], ["must end in .npy, .npz or .csv, got '.gz'"]),
    (lambda f: [f["flat.npy"]], ["X must be a 2-D array", "got shape (100,)"]),
    (lambda f: [f["strings.npy"]], ["X must hold numbers, got dtype <U1"]),
    (lambda f: [f["words.csv"]], ["could not be read as numbers", "oops"]),
    (lambda f: [f["header.csv"]], ["could not be read as numbers", "pass --header"]),
    (lambda f: [f["broken.npy"]], ["X file", "is not a readable .npy file"]),
    (lambda f: [f["broken.npz"]], ["X file", "is not a readable .npz file"]),
    (lambda f: [f["conv_keys.npz"]], ["holds 'a', 'b', and none is named as the samples",
                                      "--x-key"]),
    (lambda f: [f["conv_keys.npz"], "--x-key", "a", "--model", "linear"],
     ["--model linear needs targets", "--y-key"]),
    (lambda f: [f["conv_X.npy"], "--y", f["short_Y.npy"]],
     ["one row per sample, got 80 rows in X and 79 in Y"]),
    (lambda f: [f["conv_X.npy"], "--y", f["conv_Y.csv"]],
     ["Y file", "could not be read as numbers", "pass --header"]),
    (lambda f: [f["means.npy"], "--y", f["short_Y.npy"], "--model", "mean"],
     ["--model mean takes no targets"]),
    (lambda f: [f["means.npy"], "--layer-shape", "4x4"],
     ["--layer-shape 4x4 has 16 cells but the model has 6 shareable items"]),
    (lambda f: [f["means.npy"], "--layer-shape", "4-4"],
     ["argument --layer-shape", "two positive integers"]),
    (lambda f: [f["means.npy"], "--nuclear", "-1"], ["argument --nuclear", ">= 0"]),
    (lambda f: [f["means.npy"], "--output-partition", f["dir"] / "p.txt"],
     ["--output-partition must end in .npy or .json"]),
    (lambda f: [f["means.npy"], "--output-figure", f["dir"] / "nowhere" / "p.png"],
     ["--output-figure: the folder", "does not exist"]),
])
def test_discover_bad_files_and_values_are_one_line_usage_errors(capsys, files, make_args,
                                                                fragments):
    usage_error_in_process(capsys, "discover", make_args(files), *fragments)


def test_discover_bad_files_in_a_subprocess(files):
    assert_usage_error(run("discover", files["dir"] / "missing.npy"), "discover",
                       "does not exist")
    assert_usage_error(run("discover", files["conv_keys.npz"]), "discover",
                       "none is named as the samples")


def test_discover_reports_the_estimators_value_error_as_a_usage_error(capsys, files):
    # the estimator's 5-fold cv cannot split 3 samples: the error comes from the fit, and
    # must still be one line
    d = files["dir"]
    np.save(d / "tiny.npy", np.load(files["means.npy"])[:3])
    usage_error_in_process(capsys, "discover", [d / "tiny.npy", "--quiet"], "cv=5",
                           before_fit=False)


# -- discover end to end --------------------------------------------------------------------

@pytest.mark.slow
def test_discover_that_needs_more_memory_than_its_budget_says_how_much(files):
    proc = run("discover", files["conv.npz"], "--memory-budget", "1KiB", "--quiet")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("sharelearn discover: error: SharingDiscoverer(model='linear')")
    assert "needs at least" in proc.stderr and "(1.00 KiB)" in proc.stderr
    bad = run("discover", files["conv.npz"], "--memory-budget", "plenty", "--quiet")
    assert_usage_error(bad, "discover", "memory_budget must be 'auto'")


@pytest.mark.slow
def test_discover_linear_map_from_npz_writes_json_and_png(files):
    out_json, out_png = files["dir"] / "conv.json", files["dir"] / "conv.png"
    proc = run("discover", files["conv.npz"], "--output-partition", out_json,
               "--output-figure", out_png)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert "Data: X 80 x 6 (array 'X' of conv.npz), Y 80 x 5 (array 'Y' of conv.npz)." in out
    assert "Model: linear, as targets were given" in out
    assert "30 shareable weights of Y = W X + b." in out
    assert "Discovered sharing: 3 groups of 30 items, sizes 5, 5, 20" in out
    assert "A B . . . ." in out and "shared values: A = +1.0" in out
    assert "symmetry: trivial (order 1)" in out
    assert "structure: 1-D convolution" in out and "(valid)" in out
    assert "how well each structure explains the data (best objective first):" in out
    assert "the sharing found" in out and "span p" in out
    assert "objective: " in out and "(validation; lower is better)" in out
    record = json.loads(out_json.read_text())
    assert record["structure"].startswith("1-D convolution")
    assert record["model"] == "linear" and record["layer_shape"] == [5, 6]
    assert record["n_groups"] == 3 and len(record["shared_values"]) == 3
    from sharelearn import partition_distance

    assert partition_distance(np.array(record["labels"]), files["truth"]) == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_discover_means_from_npy_with_evidence_and_layer_shape(files):
    out_npy = files["dir"] / "means_part.npy"
    proc = run("discover", files["means.npy"], "--layer-shape", "2,3", "--objective",
               "evidence", "--nuclear", "1", "--code-length", "1", "--seed", "3",
               "--output-partition", out_npy, "--quiet")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Model: linear" not in out
    assert "Model: mean, as no targets were given" in out and "6 shareable feature means" in out
    assert "layer of group ids (2 x 3):" in out
    assert "(evidence; lower is better)" in out
    labels = np.load(out_npy)
    assert labels.shape == (6,) and labels.dtype.kind == "i"
    assert f"Discovered sharing: {labels.max() + 1} group" in out


@pytest.mark.slow
def test_discover_csv_with_header_and_separate_targets(capsys, files):
    d = files["dir"]
    X = np.load(files["conv_X.npy"])
    np.savetxt(d / "conv_X.csv", X, delimiter=";", header="a;b;c;d;e;f", comments="")
    # Y's csv uses commas: the one delimiter applies to both files, so this is an error
    usage_error_in_process(capsys, "discover", [d / "conv_X.csv", "--y", files["conv_Y.csv"],
                                                "--header", "--delimiter", ";"],
                           "Y file", "could not be read as numbers")
    np.savetxt(d / "conv_X.csv", X, delimiter=",", header="a,b,c,d,e,f", comments="")
    proc = run("discover", d / "conv_X.csv", "--y", files["conv_Y.csv"], "--header",
               "--output-partition", d / "csv_part.npy")
    assert proc.returncode == 0, proc.stderr
    from sharelearn import partition_distance

    assert partition_distance(np.load(d / "csv_part.npy"), files["truth"]) == 0
