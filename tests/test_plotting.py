"""SharingDisplay draws what the estimator found, and refuses what it cannot draw."""

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sharelearn import SharingDiscoverer, canonical_labels  # noqa: E402
from sharelearn.datasets import make_convolution, make_shared_means  # noqa: E402
from sharelearn.plotting import SharingDisplay  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def linear():
    X, Y, truth, W = make_convolution(120, input_shape=8, kernel_size=3, random_state=0)
    disc = SharingDiscoverer(model="linear", n_restarts=1, random_state=0).fit(X, Y)
    return disc, truth


@pytest.fixture(scope="module")
def means():
    X, truth, _ = make_shared_means(80, n_features=6, n_groups=3, random_state=2)
    disc = SharingDiscoverer(model="mean", reference=truth, n_restarts=1, random_state=0).fit(X)
    return disc, truth


def _n_colours(image):
    return np.unique(image.get_array().reshape(-1, 4), axis=0).shape[0]


def test_from_estimator_draws_partition_reference_and_soft_selection(linear):
    disc, truth = linear
    display = SharingDisplay.from_estimator(disc, reference=truth)
    assert isinstance(display, SharingDisplay)
    assert display.axes_.shape == (3,)
    assert display.ax_ is display.axes_[0]
    assert display.reference_ax_ is display.axes_[1] and display.soft_ax_ is display.axes_[2]
    assert display.figure_ is display.ax_.figure
    assert display.image_.get_array().shape[:2] == disc.coef_.shape
    assert _n_colours(display.image_) == disc.n_groups_
    np.testing.assert_array_equal(display.soft_image_.get_array(), disc.soft_selection_)


def test_cell_text_is_the_shared_value_of_the_cell(linear):
    disc, _ = linear
    display = SharingDisplay.from_estimator(disc, show_soft=False)
    assert display.texts_.shape == disc.coef_.shape
    written = np.array([[float(t.get_text()) for t in row] for row in display.texts_])
    expected = disc.shared_values_[disc.sharing_partition_].reshape(disc.coef_.shape)
    np.testing.assert_allclose(written, expected, atol=0.005)
    assert not any(t.get_text().startswith("-0.00") for t in display.texts_.ravel())


def test_reference_takes_the_colours_of_the_matched_groups(linear):
    disc, truth = linear
    display = SharingDisplay.from_estimator(disc, reference=truth, show_soft=False)
    np.testing.assert_array_equal(display.reference_image_.get_array(),
                                  display.image_.get_array())
    assert "distance 0" in display.reference_ax_.get_title()


def test_means_are_a_column_and_the_estimators_reference_is_used(means):
    disc, truth = means
    display = SharingDisplay.from_estimator(disc)
    assert display.image_.get_array().shape[:2] == (6, 1)
    assert display.reference_image_ is not None  # from disc.reference
    assert _n_colours(display.image_) == disc.n_groups_
    assert [float(t.get_text()) for t in display.texts_[:, 0]] == pytest.approx(
        disc.means_, abs=0.005)


def test_named_reference_is_built_for_the_layer(linear):
    disc, truth = linear
    display = SharingDisplay.from_estimator(disc, reference="shift", show_soft=False)
    ref = canonical_labels(display.reference)
    np.testing.assert_array_equal(ref, canonical_labels(truth))


def test_one_axes_draws_the_partition_alone(linear):
    disc, truth = linear
    fig, ax = plt.subplots()
    display = SharingDisplay.from_estimator(disc, reference=truth, ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    assert display.axes_.shape == (1,)
    assert display.reference_image_ is None and display.soft_image_ is None
    assert len(fig.axes) == 1


def test_plot_again_on_given_axes():
    display = SharingDisplay([0, 1, 1, 0], (2, 2), reference=[0, 0, 1, 1])
    fig, axes = plt.subplots(1, 2)
    display.plot(ax=axes)
    assert list(display.axes_) == list(axes) and display.texts_ is None
    with pytest.raises(ValueError, match="sequence of 2 Axes"):
        display.plot(ax=[axes[0]])


def test_from_partition_many_groups_get_distinct_colours_and_no_text():
    labels = np.arange(30 * 40)  # 1,200 groups, beyond the text threshold
    display = SharingDisplay.from_partition(labels, (30, 40), values=np.linspace(-1, 1, 1200))
    assert _n_colours(display.image_) == 1200
    assert display.texts_ is None


def test_legend_replaces_text_on_large_maps():
    labels = np.arange(400) % 3
    display = SharingDisplay.from_partition(labels, (20, 20), values=[0.0, 1.5, -2.0])
    assert display.texts_ is None
    legend = display.ax_.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["0.00", "1.50", "-2.00"]


@pytest.mark.parametrize("shape, match", [
    ((2, 2), "has 4 cells but the partition has 6 items"),
    ((3,), "pair"),
    (6, "pair"),
    ((0, 6), "pair"),
    ((2.0, 3), "pair"),
    ("2x3", "pair"),
])
def test_bad_shape_is_a_value_error(shape, match):
    with pytest.raises(ValueError, match=match):
        SharingDisplay.from_partition([0, 0, 1, 1, 2, 2], shape)


@pytest.mark.parametrize("kwargs, match", [
    ({"values": [1.0, 2.0]}, "one number per group"),
    ({"reference": [0, 1, 0]}, "reference partitions 3 items"),
    ({"soft_selection": np.ones((5, 2))}, "soft_selection must have shape"),
])
def test_mismatched_inputs_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SharingDisplay([0, 0, 1, 1, 2, 2], (2, 3), **kwargs)


def test_bad_plot_arguments_are_value_errors():
    display = SharingDisplay([0, 1, 1, 0], (2, 2))
    with pytest.raises(ValueError, match="one colour per group"):
        display.plot(colors=["red"])
    with pytest.raises(ValueError, match="max_text_items"):
        display.plot(max_text_items=-1)


def test_unfitted_estimator_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SharingDisplay.from_estimator(SharingDiscoverer())


def test_missing_matplotlib_gives_an_install_hint(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r"pip install .*sharelearn\[plot\]"):
        SharingDisplay.from_partition([0, 1], (1, 2))


def test_no_module_of_sharelearn_imports_matplotlib_when_imported():
    # A fresh interpreter would show this directly but costs seconds to import torch; every
    # import of matplotlib in the package must sit inside a function, so check the module level.
    import ast
    import pathlib

    import sharelearn

    def module_level_imports(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # runs only when called
            if isinstance(node, ast.Import):
                yield node.lineno, [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                yield node.lineno, [node.module or ""]
            else:
                yield from module_level_imports(ast.iter_child_nodes(node))

    offenders = [
        f"{path.name}:{line}"
        for path in pathlib.Path(sharelearn.__file__).parent.glob("*.py")
        for line, names in module_level_imports(ast.parse(path.read_text()).body)
        if any(n.split(".")[0] == "matplotlib" for n in names)
    ]
    assert offenders == []
