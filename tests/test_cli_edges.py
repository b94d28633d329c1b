"""The command line's edges (issue 34): output paths checked before the fit, Ctrl-C, threads,
import failures, seeds, unreadable files, misspelt options, targets found in a .npz file by
name, the model chosen and said, and the kernel of a map drawn as text.

Each error is one line ``sharelearn <command>: error: ...`` with exit status 2 and nothing on
stdout (no fit ran). Most cases run ``main`` in this process; a subprocess only where the
process itself is the subject (its imports, its exit status on SIGINT).
"""

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import sharelearn
from sharelearn import SharingDiscoverer
from sharelearn.__main__ import _MAX_SEED, _cpu_count, build_parser, main
from sharelearn.datasets import make_convolution, make_shared_means


def usage_error(capsys, args, *fragments, command="discover", absent=()):
    """``main(args)`` ends in one error line holding every fragment, before any fit."""
    with pytest.raises(SystemExit) as exc:
        main([command, *map(str, args)])
    captured = capsys.readouterr()
    assert exc.value.code == 2, captured.err
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if ": error: " in line]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"sharelearn {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    for fragment in absent:
        assert fragment not in lines[0], lines[0]
    assert captured.out == ""
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("edges")
    X, Y, truth, W = make_convolution(80, input_shape=6, kernel_size=2, random_state=0)
    np.savez(d / "conv.npz", X=X, Y=Y)
    Xm, _, _ = make_shared_means(60, n_features=4, n_groups=2, random_state=1)
    np.save(d / "means.npy", Xm)
    return dict(dir=d, X=X, Y=Y, truth=truth, W=W)


# -- item 9: outputs checked before the fit, Ctrl-C, threads, import failures ------------------

def test_an_output_path_that_is_a_folder_is_refused_before_the_fit(capsys, data):
    folder = data["dir"] / "out.json"
    folder.mkdir(exist_ok=True)
    usage_error(capsys, [data["dir"] / "means.npy", "--output-partition", folder],
                "--output-partition", "is a folder", "name a file")
    figure_folder = data["dir"] / "fig.png"
    figure_folder.mkdir(exist_ok=True)
    usage_error(capsys, [data["dir"] / "means.npy", "--output-figure", figure_folder],
                "--output-figure", "is a folder")
    usage_error(capsys, [data["dir"] / "means.npy", "--output-figure", data["dir"]],
                "--output-figure", "is a folder", "partition.png")


def test_an_output_path_that_cannot_be_written_is_refused_before_the_fit(capsys, data,
                                                                         tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        target = Path("/sys/sharelearn_partition.json")  # root may write anywhere but sysfs
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "partition.json"
    usage_error(capsys, [data["dir"] / "means.npy", "--output-partition", target],
                "--output-partition", "cannot be written")
    assert not target.exists()


def test_an_output_inside_a_file_or_onto_an_input_is_refused(capsys, data):
    means = data["dir"] / "means.npy"
    usage_error(capsys, [means, "--output-partition", means / "part.json"],
                "is a file, not a folder")
    before = means.read_bytes()
    usage_error(capsys, [means, "--output-partition", means], "is an input file")
    assert means.read_bytes() == before


def test_the_write_probe_leaves_no_file_behind_and_existing_files_unchanged(capsys, data):
    # a later usage error (a bad --layer-shape) after the paths were tried: nothing written
    new = data["dir"] / "never.json"
    old = data["dir"] / "old.json"
    old.write_text("keep me")
    usage_error(capsys, [data["dir"] / "means.npy", "--output-partition", new,
                         "--layer-shape", "3x3"], "--layer-shape 3x3")
    usage_error(capsys, [data["dir"] / "means.npy", "--output-partition", old,
                         "--layer-shape", "3x3"], "--layer-shape 3x3")
    assert not new.exists()
    assert old.read_text() == "keep me"


@pytest.mark.parametrize("delimiter", ["", ";;", "5", "\n"])
def test_a_bad_delimiter_is_a_clear_error(capsys, data, delimiter):
    usage_error(capsys, [data["dir"] / "means.npy", "--delimiter", delimiter],
                "argument --delimiter", "one character", repr(delimiter))


def test_a_tab_delimiter_can_be_typed(tmp_path):
    parser = build_parser()
    for typed in ("\\t", "tab", "\t"):
        assert parser.parse_args(["discover", "x.csv", "--delimiter", typed]).delimiter == "\t"
    X = np.arange(12.0).reshape(4, 3)
    np.savetxt(tmp_path / "x.csv", X, delimiter="\t")
    from sharelearn.__main__ import _load

    read = _load(parser, str(tmp_path / "x.csv"), "csv", what="X", key=None, header=False,
                 delimiter=parser.parse_args(["discover", "x", "--delimiter", "\\t"]).delimiter)
    np.testing.assert_array_equal(read, X)


@pytest.mark.parametrize("command", ["demo", "discover"])
def test_threads_beyond_the_cores_are_lowered_with_a_note(capsys, monkeypatch, data, command):
    """torch starts every thread asked for: --threads 100000 once started 32,115, and the
    next import failed. The fit gets the cores instead, and the user is told."""
    seen = []

    def record(self, *args, **kwargs):
        seen.append(self.n_threads)
        raise KeyboardInterrupt  # ends the run here, with status 130

    monkeypatch.setattr(SharingDiscoverer, "fit", record)
    args = [data["dir"] / "means.npy"] if command == "discover" else ["--n-inputs", "4"]
    cores = _cpu_count()
    for asked, used in (("100000", cores), (str(cores), cores), ("1", 1)):
        assert main([command, *map(str, args), "--quiet", "--threads", asked]) == 130
        err = capsys.readouterr().err
        assert seen.pop() == used
        note = f"sharelearn {command}: note: --threads {asked} lowered to {cores}"
        assert (note in err) == (asked == "100000"), err
    usage_error(capsys, [*args, "--threads", "0"], "argument --threads", ">= 1",
                command=command)


@pytest.mark.slow
def test_ctrl_c_during_a_fit_is_one_line_and_status_130(tmp_path, data):
    """A real SIGINT, sent from inside the fit: no traceback, nothing written, 130."""
    out = tmp_path / "part.json"
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from sharelearn import SharingDiscoverer
        from sharelearn.__main__ import main

        def fit(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)  # the interrupt arrives first

        SharingDiscoverer.fit = fit
        sys.exit(main(["discover", {str(data["dir"] / "means.npy")!r}, "--quiet",
                       "--output-partition", {str(out)!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["sharelearn discover: interrupted"]
    assert not out.exists()


def test_ctrl_c_in_process_returns_130(capsys, monkeypatch, data):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SharingDiscoverer, "fit", interrupted)
    assert main(["discover", str(data["dir"] / "means.npy"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "sharelearn discover: interrupted"


def test_an_import_failure_names_its_real_cause_and_keeps_the_result(capsys, monkeypatch,
                                                                      data, tmp_path):
    """The symmetry's naming imports igraph after the fit; when that import fails (as it did
    with tens of thousands of threads), the cause is said and the partition still written."""
    def failing(self):
        try:
            raise OSError("libgomp: Thread creation failed: Resource temporarily unavailable")
        except OSError as cause:
            raise ImportError("symmetry_group needs the 'igraph' package") from cause

    monkeypatch.setattr(SharingDiscoverer, "symmetry_group_", property(failing))
    out = tmp_path / "part.json"
    with pytest.raises(SystemExit) as exc:
        main(["discover", str(data["dir"] / "means.npy"), "--quiet",
              "--output-partition", str(out)])
    captured = capsys.readouterr()
    assert exc.value.code == 1
    assert "Traceback" not in captured.err
    (line,) = [x for x in captured.err.splitlines() if ": error: " in x]
    assert line.startswith("sharelearn discover: error: the symmetry could not be named")
    assert "igraph" in line and "Thread creation failed" in line
    record = json.loads(out.read_text())
    assert record["symmetry"] is None and len(record["labels"]) == 4
    assert "symmetry: not named" in captured.out


def test_a_failed_import_before_the_fit_names_its_cause(capsys, monkeypatch, data):
    broken = types.ModuleType("sharelearn.symmetry.structure")

    def __getattr__(name):
        try:
            raise OSError("libtorch_cpu.so: cannot open shared object file")
        except OSError as cause:
            raise ImportError("the estimators could not be loaded") from cause

    broken.__getattr__ = __getattr__
    monkeypatch.setitem(sys.modules, "sharelearn.symmetry.structure", broken)
    with pytest.raises(SystemExit) as exc:
        main(["discover", str(data["dir"] / "means.npy"), "--quiet"])
    captured = capsys.readouterr()
    assert exc.value.code == 1 and captured.out == ""
    assert captured.err.strip() == (
        "sharelearn discover: error: an import failed: the estimators could not be loaded (the "
        "import failed with OSError: libtorch_cpu.so: cannot open shared object file)")


# -- item 10: the seed named as --seed; unreadable files said so -------------------------------

@pytest.mark.parametrize("command", ["demo", "discover"])
@pytest.mark.parametrize("seed", [str(_MAX_SEED + 1), "99999999999"])
def test_a_seed_out_of_range_is_reported_as_the_seed_option(capsys, data, command, seed):
    args = [data["dir"] / "means.npy"] if command == "discover" else []
    usage_error(capsys, [*args, "--seed", seed], "argument --seed",
                f"from 0 to {_MAX_SEED}", repr(seed), command=command,
                absent=("random_state", "SharingDiscoverer"))


def test_the_largest_seed_is_taken():
    assert build_parser().parse_args(["demo", "--seed", str(_MAX_SEED)]).seed == _MAX_SEED


def data_file_of(folder):
    np.save(folder / "X.npy", np.ones((4, 2)))
    return folder / "X.npy"


@pytest.mark.parametrize("name", ["noise.npz", "noise.npy"])
def test_random_bytes_are_not_a_readable_numpy_file(capsys, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(300))
    suffix = name.split(".")[1]
    usage_error(capsys, [path], f"is not a readable .{suffix} file", "numpy.save",
                absent=("allow_pickle", "pickle"))
    usage_error(capsys, [data_file_of(tmp_path), "--y", path], f"Y file {str(path)!r} is not "
                f"a readable .{suffix} file")


def test_an_array_of_objects_is_not_numbers(capsys, tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[1, "a"], [None, 2.0]], dtype=object), allow_pickle=True)
    usage_error(capsys, [path], "X must hold numbers", "Python objects",
                absent=("allow_pickle",))
    np.savez(tmp_path / "objects.npz", X=np.ones((3, 2)),
             Y=np.array([[1, "a"]] * 3, dtype=object))
    usage_error(capsys, [tmp_path / "objects.npz"], "Y must hold numbers", "'Y'",
                "Python objects", absent=("allow_pickle",))


# -- item 11: fast answers, misspelt options, a second file ------------------------------------

def _imports_after(code):
    """The heavy modules a fresh interpreter holds after ``code`` (which exits via argparse)."""
    script = code + textwrap.dedent("""
        import sys
        heavy = sorted(m for m in ("torch", "numpy", "sklearn", "scipy") if m in sys.modules)
        print(",".join(heavy))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["discover", "--help"],
                                  ["discover", "missing.npy"]])
def test_the_command_line_module_imports_nothing_heavy_to_answer(argv):
    """``sharelearn/__main__.py`` itself: loaded under a bare package (no ``__init__``), its
    --help, --version and a missing file need neither numpy nor torch."""
    package_dir = str(Path(sharelearn.__file__).parent)
    code = textwrap.dedent(f"""
        import contextlib, io, sys, types
        package = types.ModuleType("sharelearn")
        package.__path__ = [{package_dir!r}]
        sys.modules["sharelearn"] = package
        from sharelearn.__main__ import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                main({argv!r})
            except SystemExit:
                pass
    """)
    assert _imports_after(code) == ""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["discover", "missing.npy"]])
def test_python_m_sharelearn_answers_without_torch(argv):
    """As a user runs it: ``python -m sharelearn --help`` imports the package, whose
    estimators (torch, scikit-learn) must wait until a fit needs them."""
    code = textwrap.dedent(f"""
        import contextlib, io, runpy, sys
        sys.argv = ["sharelearn", *{argv!r}]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                runpy.run_module("sharelearn", run_name="__main__", alter_sys=True)
            except SystemExit:
                pass
    """)
    heavy = _imports_after(code)
    assert "torch" not in heavy and "sklearn" not in heavy, heavy


def test_a_misspelt_option_suggests_the_right_one(capsys, data):
    usage_error(capsys, [data["dir"] / "means.npy", "--ouput-figure", "p.png"],
                "unrecognized arguments: --ouput-figure p.png", "did you mean --output-figure?")
    usage_error(capsys, [data["dir"] / "means.npy", "--layer-shpe=2x2"],
                "did you mean --layer-shape?")
    usage_error(capsys, ["--kernel-sise", "3"], "did you mean --kernel-size?",
                command="demo")


def test_a_misspelt_choice_or_command_suggests_the_right_one(capsys, data):
    usage_error(capsys, [data["dir"] / "means.npy", "--model", "linera"],
                "invalid choice: 'linera'", "did you mean 'linear'?")
    with pytest.raises(SystemExit):
        main(["discovr", "x.npy"])
    err = capsys.readouterr().err
    assert "sharelearn: error: " in err and "did you mean 'discover'?" in err


def test_a_second_file_points_to_the_y_option(capsys, data):
    usage_error(capsys, [data["dir"] / "means.npy", data["dir"] / "Y.csv"],
                "unrecognized arguments", "pass the targets with --y",
                f"--y {data['dir'] / 'Y.csv'}")


def test_an_option_before_the_command_says_where_it_goes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "demo"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert "sharelearn demo: error: unrecognized arguments: --quiet (--quiet is an option of "\
        "'demo': write it after the command's name)" in err


# -- item 2: targets found by name; the model chosen and said ----------------------------------

def _discover(capsys, args):
    assert main(["discover", *map(str, args), "--quiet"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("save", [
    lambda path, X, Y: np.savez(path, x=X, y=Y),
    lambda path, X, Y: np.savez(path, data=X, target=Y),
    lambda path, X, Y: np.savez(path, X, Y),  # arr_0 and arr_1
])
def test_targets_under_other_names_select_the_linear_model(capsys, tmp_path, data, save):
    path = tmp_path / "named.npz"
    save(path, data["X"], data["Y"])
    out = _discover(capsys, [path, "--output-partition", tmp_path / "p.npy"])
    assert "Model: linear, as targets were given" in out
    assert "30 shareable weights" in out
    with np.load(path) as archive:
        x_name, y_name = archive.files
    assert f"(array {x_name!r} of named.npz), Y 80 x 5 (array {y_name!r} of named.npz)" in out
    from sharelearn import partition_distance

    assert partition_distance(np.load(tmp_path / "p.npy"), data["truth"]) == 0


def test_an_archive_whose_targets_are_not_recognised_asks_which(capsys, tmp_path, data):
    path = tmp_path / "extras.npz"
    np.savez(path, X=data["X"], W=data["W"], truth=data["truth"])
    usage_error(capsys, [path], "holds 'W', 'truth' besides the samples 'X'",
                "none is named as the targets", "--y-key", "--model mean")
    usage_error(capsys, [path, "--model", "linear"], "--model linear needs targets",
                "--y-key")
    both = tmp_path / "both.npz"
    np.savez(both, X=data["X"], Y=data["Y"], target=data["Y"])
    usage_error(capsys, [both], "several arrays that could be the targets",
                "'Y', 'target'", "--y-key")


def test_the_mean_model_on_an_archive_with_targets_says_they_are_unused(capsys, data):
    out = _discover(capsys, [data["dir"] / "conv.npz", "--model", "mean"])
    assert "Model: mean, as --model asks; 'Y' of conv.npz not used" in out
    assert "6 shareable feature means" in out


def test_key_options_on_files_without_arrays_are_refused(capsys, data):
    usage_error(capsys, [data["dir"] / "means.npy", "--x-key", "X"],
                "--x-key names an array of a .npz file", "drop --x-key")
    usage_error(capsys, [data["dir"] / "means.npy", "--y-key", "Y"],
                "--y-key names an array", "--y FILE")
    usage_error(capsys, [data["dir"] / "conv.npz", "--model", "mean", "--y-key", "Y"],
                "--model mean takes no targets: drop --y-key")


# -- item 12: the kernel drawn, --layer-shape as the inputs' grid -------------------------------

def _kernel_rows(out):
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("kernel ("))
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        rows.append([float(v) for v in line.split()[1::2]])
    return lines[start], np.array(rows)


@pytest.mark.slow
def test_a_large_map_prints_its_kernel_instead_of_nothing(capsys, tmp_path):
    X, Y, truth, W = make_convolution(100, input_shape=(7, 7), kernel_size=3, mode="circular",
                                      random_state=0)
    np.savez(tmp_path / "c77.npz", X=X, Y=Y)
    out = _discover(capsys, [tmp_path / "c77.npz", "--output-partition",
                             tmp_path / "c77.json"])
    assert "layer: 49 x 49, too large to draw as text" in out
    assert "not drawn as text" not in out
    head, kernel = _kernel_rows(out)
    assert head.startswith("kernel (3 x 3 taps")
    # the taps as the map holds them: row (r, c) of the map, columns (r + a, c + b) wrapped
    record = json.loads((tmp_path / "c77.json").read_text())
    (ra, _), (ca, _) = record["kernel"]["offsets"]
    r, c = (int(v) for v in head.split("output (")[1].split(")")[0].split(","))
    expected = np.array([[W[r * 7 + c, ((r + a) % 7) * 7 + (c + b) % 7]
                          for b in range(ca, ca + 3)] for a in range(ra, ra + 3)])
    np.testing.assert_allclose(kernel, expected, atol=0.05)
    np.testing.assert_allclose(record["kernel"]["values"], expected, atol=0.05)


def test_layer_shape_as_the_inputs_grid_reads_the_map_on_it(capsys, tmp_path):
    X, Y, truth, W = make_convolution(120, input_shape=(4, 4), kernel_size=3, mode="valid",
                                      random_state=2)
    np.savez(tmp_path / "v44.npz", X=X, Y=Y)
    out = _discover(capsys, [tmp_path / "v44.npz", "--layer-shape", "4x4",
                             "--output-partition", tmp_path / "v44.json"])
    assert "layer of group ids (4 x 16):" in out  # the map itself is drawn as before
    assert "3 x 3 kernel, 4 x 4 -> 2 x 2 (valid)" in out
    _, kernel = _kernel_rows(out)
    # a valid kernel sits at the top left of the first output's row
    expected = W[0].reshape(4, 4)[:3, :3]
    np.testing.assert_allclose(kernel, expected, atol=0.05)
    record = json.loads((tmp_path / "v44.json").read_text())
    assert record["input_grid"] == [4, 4] and record["layer_shape"] == [4, 16]
    np.testing.assert_allclose(record["kernel"]["values"], expected, atol=0.05)


def test_a_layer_shape_that_fits_neither_says_both_choices(capsys, data):
    usage_error(capsys, [data["dir"] / "conv.npz", "--layer-shape", "4x4"],
                "has 16 cells but the model has 30 shareable items",
                "or the 6 inputs' grid")


@pytest.mark.slow
def test_the_figure_draws_the_structure_read_on_the_grid_asked_for(capsys, tmp_path,
                                                                    monkeypatch):
    from sharelearn import plotting

    X, Y, _, _ = make_convolution(120, input_shape=(4, 4), kernel_size=3, mode="valid",
                                  random_state=2)
    np.savez(tmp_path / "v44.npz", X=X, Y=Y)
    drawn = {}
    original = plotting.SharingDisplay.from_estimator.__func__

    def spy(cls, estimator, **kwargs):
        drawn["structure"] = kwargs.get("structure")
        return original(cls, estimator, **kwargs)

    monkeypatch.setattr(plotting.SharingDisplay, "from_estimator", classmethod(spy))
    _discover(capsys, [tmp_path / "v44.npz", "--layer-shape", "4x4",
                       "--output-figure", tmp_path / "v44.png"])
    assert (tmp_path / "v44.png").exists()
    structure = drawn["structure"]
    assert structure is not None and structure.grid == (4, 4)
    assert structure.kernel_shape == (3, 3)
