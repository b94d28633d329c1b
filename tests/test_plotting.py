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


@pytest.mark.slow
def test_from_estimator_draws_partition_reference_and_soft_selection(linear):
    disc, truth = linear
    display = SharingDisplay.from_estimator(disc, reference=truth)
    assert isinstance(display, SharingDisplay)
    assert display.axes_.shape == (4,)  # the kernel beside the map
    assert display.ax_ is display.axes_[0] and display.kernel_ax_ is display.axes_[1]
    assert display.reference_ax_ is display.axes_[2] and display.soft_ax_ is display.axes_[3]
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


@pytest.mark.slow
def test_reference_takes_the_colours_of_the_matched_groups(linear):
    disc, truth = linear
    display = SharingDisplay.from_estimator(disc, reference=truth, show_soft=False)
    np.testing.assert_array_equal(display.reference_image_.get_array(),
                                  display.image_.get_array())
    assert "distance 0" in display.reference_ax_.get_title()


@pytest.mark.slow
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


# -- the kernel of a sharing read as a convolution ----------------------------------------------
def _values_by_group(labels, weight):
    """The value of each group of a tied map (every entry of a group holds it)."""
    labels, weight = np.asarray(labels), np.asarray(weight).ravel()
    return np.array([weight[labels == g][0] for g in range(labels.max() + 1)])


def _filter_map(kernel, image_shape, mode):
    """The matrix of scipy.ndimage.correlate with ``kernel`` on images of ``image_shape``."""
    from scipy import ndimage

    n = int(np.prod(image_shape))
    basis = np.eye(n).reshape(n, *image_shape)
    return np.stack([ndimage.correlate(b, kernel, mode=mode).ravel() for b in basis], axis=1)


@pytest.mark.parametrize("kwargs, kernel", [
    ({"input_shape": 9, "kernel_size": 3}, [1.0, 3.0, 5.0]),
    ({"input_shape": 12, "kernel_size": 3, "mode": "circular"}, [1.0, 3.0, 5.0]),
    ({"input_shape": 10, "kernel_size": 5, "mode": "same"}, [1.0, 3.0, 5.0, 7.0, 9.0]),
    ({"input_shape": (5, 6), "kernel_size": (2, 3)}, [[1.0, 3.0, 5.0], [7.0, 9.0, 11.0]]),
])
def test_the_kernel_drawn_is_the_filters_kernel(kwargs, kernel):
    from sharelearn.symmetry import describe_sharing

    _, _, truth, W = make_convolution(2, **kwargs, random_state=0)
    values = _values_by_group(truth, W)
    display = SharingDisplay.from_partition(truth, W.shape, values=values,
                                            structure=describe_sharing(truth, W.shape))
    assert display.kernel_ax_ is display.axes_[1]
    np.testing.assert_array_equal(values[display.kernel_groups], kernel)
    written = [float(t.get_text().split("\n")[0]) for t in display.kernel_texts_.ravel()]
    np.testing.assert_allclose(written, np.ravel(kernel))
    # each tap in its group's colour, as on the map
    np.testing.assert_array_equal(display.kernel_image_.get_array(),
                                  display.colors_[np.atleast_2d(display.kernel_groups)])


def test_a_border_filters_kernel_is_read_in_the_interior_and_outvotes_an_exception():
    from sharelearn.symmetry import describe_sharing

    kernel = np.random.default_rng(0).standard_normal((3, 3))
    weight = _filter_map(kernel, (7, 7), "reflect")
    labels = np.unique(weight.round(12), return_inverse=True)[1].ravel()
    weight[24, 24] = 100.0  # an interior entry of the centre tap changed
    labels[24 * 49 + 24] = labels.max() + 1
    structure = describe_sharing(labels, weight.shape)
    assert structure.border == "reflect" and structure.n_exceptions == 1
    values = _values_by_group(canonical_labels(labels), weight)
    display = SharingDisplay.from_partition(labels, weight.shape, values=values,
                                            structure=structure)
    np.testing.assert_allclose(values[display.kernel_groups], kernel)
    assert "reflect" in display.kernel_ax_.get_title()
    # the structure's own tap labels say which taps are tied: the same pattern
    np.testing.assert_array_equal(canonical_labels(display.kernel_groups.ravel()),
                                  canonical_labels(structure.kernel_labels.ravel()))


def test_from_estimator_draws_the_kernel_beside_the_map(linear):
    disc, _ = linear
    display = SharingDisplay.from_estimator(disc, show_soft=False)
    assert display.structure is disc.structure_
    assert [display.ax_, display.kernel_ax_] == list(display.axes_)
    interior = disc.sharing_partition_.reshape(disc.coef_.shape)[2, 2:5]
    np.testing.assert_array_equal(display.kernel_groups, interior)
    written = [float(t.get_text().split("\n")[0]) for t in display.kernel_texts_.ravel()]
    np.testing.assert_allclose(written, disc.shared_values_[interior], atol=0.005)
    assert [t.get_text().split("\n")[1] for t in display.kernel_texts_.ravel()] == [
        f"g{g}" for g in interior]


def test_the_kernel_panel_can_be_left_out_and_counts_among_the_axes(linear):
    disc, truth = linear
    display = SharingDisplay.from_estimator(disc, reference=truth, show_soft=False,
                                            show_kernel=False)
    assert display.kernel_ax_ is None and display.axes_.shape == (2,)
    fig, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match=r"sequence of 3 Axes \(one per panel: partition, "
                                         r"kernel, reference\)"):
        display.plot(ax=axes)
    display = SharingDisplay.from_estimator(disc, reference=truth, show_soft=False,
                                            ax=plt.subplots(1, 3)[1])
    assert display.kernel_ax_ is display.axes_[1] and display.reference_ax_ is display.axes_[2]


@pytest.mark.slow
def test_no_kernel_without_a_convolution(means):
    from sharelearn.symmetry import describe_sharing

    disc, _ = means
    display = SharingDisplay.from_estimator(disc)
    assert display.kernel_groups is None and display.kernel_ax_ is None
    labels = np.arange(12) % 5  # tied at random: no convolution reads it
    structure = describe_sharing(labels, (3, 4))
    assert structure.kind is None
    display = SharingDisplay.from_partition(labels, (3, 4), structure=structure)
    assert display.kernel_groups is None and display.axes_.shape == (1,)


def test_a_structure_of_another_map_is_refused():
    from sharelearn.symmetry import describe_sharing, shift_sharing

    structure = describe_sharing(shift_sharing(8, 3), (6, 8))
    with pytest.raises(ValueError, match=r"structure describes a 6 x 8 map \(48 entries\) but "
                                         r"the partition has 30 items"):
        SharingDisplay(shift_sharing(7, 3)[:30], (5, 6), structure=structure)
    with pytest.raises(TypeError, match="structure must be a SharingStructure"):
        SharingDisplay(shift_sharing(8, 3), (6, 8), structure="valid")


def test_from_estimator_draws_the_kernel_of_a_structure_given(linear):
    from sharelearn.symmetry import describe_sharing

    disc, _ = linear
    with pytest.raises(TypeError, match="structure must be a SharingStructure"):
        SharingDisplay.from_estimator(disc, structure="valid")
    # the map read as a filter on one row of 8 inputs, given explicitly
    structure = describe_sharing(disc.sharing_partition_, disc.coef_.shape, grids=[8])
    display = SharingDisplay.from_estimator(disc, structure=structure, show_soft=False)
    assert display.structure is structure
    np.testing.assert_array_equal(display.kernel_groups,
                                  disc.sharing_partition_.reshape(disc.coef_.shape)[0, :3])


# -- a network's layer ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dense_network():
    """A classifier whose dense 64 -> 36 layer has every entry as an item, fitted briefly from
    the valid 3 x 3 convolution's sharing (the search is not what is tested here)."""
    torch = pytest.importorskip("torch")
    from sharelearn import NetworkSharingClassifier
    from sharelearn.symmetry import shift_sharing

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 64)).astype("float32"), rng.integers(0, 3, 60)
    truth = shift_sharing((8, 8), 3)
    module = torch.nn.Sequential(torch.nn.Linear(64, 36), torch.nn.ReLU(),
                                 torch.nn.Linear(36, 3))
    clf = NetworkSharingClassifier(module, share={"0.weight": None}, init=truth, n_restarts=0,
                                   local_search=False, search_inits=1, max_epochs=5,
                                   dtype="float32", random_state=0).fit(X, y)
    return clf, truth


@pytest.mark.slow
def test_a_networks_dense_layer_is_drawn_by_its_shape(dense_network):
    clf, truth = dense_network
    display = SharingDisplay.from_estimator(clf, show_soft=False)
    assert display.shape == (36, 64)
    assert display.image_.get_array().shape[:2] == (36, 64)
    assert (display.ax_.get_ylabel(), display.ax_.get_xlabel()) == ("output", "input")
    # the values are the tied layer's: every entry holds its group's value
    weight = clf.to_module()[0].weight.detach().numpy()
    np.testing.assert_allclose(display.values[display.labels].reshape(36, 64), weight,
                               rtol=1e-6)
    # and the layer reads as the valid 3 x 3 convolution it was tied as
    assert display.kernel_groups.shape == (3, 3)
    np.testing.assert_array_equal(display.kernel_groups,
                                  canonical_labels(clf.sharing_partition_)[
                                      [0, 1, 2, 8, 9, 10, 16, 17, 18]].reshape(3, 3))
    assert display.kernel_ax_.get_title().startswith("kernel 3 x 3 (valid)")
