"""Every example of the gallery runs in its quick mode and prints what it promises."""

import pathlib
import runpy

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # no display in the tests
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.fixture(autouse=True)
def _quick_and_headless(monkeypatch):
    monkeypatch.setenv("SHARELEARN_EXAMPLES_QUICK", "1")
    # the examples end with plt.show() for interactive use; Agg would warn that it cannot show
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    yield
    plt.close("all")


def test_the_gallery_is_complete():
    names = {p.stem for p in EXAMPLES}
    assert {"plot_quickstart", "plot_shared_means", "plot_shift_1d_2d", "plot_grid_search",
            "plot_gaussian_sweeps", "plot_sum_of_numbers", "plot_symmetry_naming",
            "plot_custom_module", "plot_rotation_equivariance",
            "plot_dense_to_convolution"} <= names
    header = EXAMPLES[0].parent / "GALLERY_HEADER.rst"
    assert header.exists(), "sphinx-gallery needs a header for the examples directory"


# What each example must print, beyond its partition distance: the recoveries it claims.
PROMISES = {
    "plot_quickstart.py": ["partition distance to the truth: 0"],
    "plot_shared_means.py": ["partition distance: 0"],
    "plot_shift_1d_2d.py": ["1-D: 224 entries, 4 groups, partition distance 0",
                            "2-D: 225 entries, 10 groups, partition distance 0"],
    "plot_grid_search.py": ["partition distance of the best: 0.0"],
    "plot_gaussian_sweeps.py": ["partition distance against rank (n = 100)"],
    "plot_sum_of_numbers.py": ["shared: found [0, 0, 0, 0], truth [0, 0, 0, 0], partition "
                               "distance 0",
                               "alternating: found [0, 1, 0, 1], truth [0, 1, 0, 1], partition "
                               "distance 0"],
    "plot_custom_module.py": ["found [0, 1, 0, 1, 0, 1], truth [0, 1, 0, 1, 0, 1], partition "
                              "distance 0",
                              "stored weight rows: (2, 16) -> full weight: (6, 16)",
                              "positions of one group still share their row: True"],
    "plot_dense_to_convolution.py": ["groups of 2304 entries",
                                     "read as: valid 3 x 3 kernel, 8 x 8 -> 6 x 6"],
    "plot_preprocessing.py": ["linear, GlobalScaler (centred, one scale):\n   4 groups, "
                              "partition distance 0",
                              "   warning: Every feature of X has mean 0",
                              "mean, GlobalScaler (one scale, not centred):\n   2 groups, "
                              "partition distance 0"],
    "plot_symmetry_naming.py": ["discovered symmetry: C_8 of order 8",
                                "discovered symmetry: S_6 of order 720"],
    "plot_rotation_equivariance.py": ["symmetric kernel: 4 groups, partition distance 0",
                                      "discovered symmetry: p4m on the 6 x 6 torus (order 288)",
                                      "rotation by 90 degrees",
                                      "plain kernel: 10 groups, partition distance 0",
                                      "discovered symmetry: p1 on the 6 x 6 torus (order 36)"],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "partition distance" in out
    for promise in PROMISES.get(path.name, []):
        assert promise in out, f"{path.name} did not print {promise!r}"
    # a gallery entry shows at least one figure (it is also its thumbnail)
    assert plt.get_fignums(), f"{path.name} draws no figure"
