"""Tests for sharelearn.symmetry.structure: sharings read back as convolutions.

The maps are built here by scipy.ndimage and numpy themselves (each filter applied to every unit
image), and their sharings are read off by equal values; the expected answers come from how
those maps were made, not from running the code under test.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi

from sharelearn.datasets import make_convolution
from sharelearn.partition import canonical_labels
from sharelearn.symmetry import (
    SharingStructure,
    border_sharing,
    describe_sharing,
    image_group_generators,
    shift_sharing,
    symmetry_group,
)

MODES = ["reflect", "nearest", "mirror", "constant", "wrap"]
BORDER = {"reflect": "reflect", "nearest": "nearest", "mirror": "mirror", "constant": "zero",
          "wrap": "circular"}
SCIPY_MODE = {v: k for k, v in BORDER.items()}


def filter_matrix(apply, shape):
    """The dense matrix of a linear filter on images of ``shape``: column i is the response
    to the i-th unit image."""
    n = int(np.prod(shape))
    eye = np.eye(n)
    return np.stack([apply(eye[i].reshape(shape)).ravel() for i in range(n)], axis=1)


def value_labels(weight):
    """One group per distinct value (rounded to 1e-10)."""
    rounded = np.round(np.asarray(weight, dtype=float).ravel(), 10)
    return canonical_labels(np.unique(rounded, return_inverse=True)[1].ravel())


def same_partition(a, b):
    return np.array_equal(canonical_labels(a), canonical_labels(b))


RNG_KERNEL = np.random.default_rng(7).normal(size=(3, 3))
GAUSS = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0


def correlate_labels(kernel, mode, shape=(8, 8)):
    weight = filter_matrix(lambda x: ndi.correlate(x, kernel, mode=mode), shape)
    return value_labels(weight), weight


# ---------------------------------------------------------------------------
# border_sharing against scipy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("shape", "kernel_size"),
                         [((7,), 3), ((6,), 4), ((3,), 5), ((5, 6), 3), ((4, 5), (2, 3)),
                          ((3, 3), 5)])
def test_border_sharing_is_the_sharing_of_scipys_correlate(mode, shape, kernel_size):
    rng = np.random.default_rng(0)
    k_shape = (kernel_size,) * len(shape) if isinstance(kernel_size, int) else kernel_size
    kernel = rng.integers(1, 10**6, size=k_shape) + rng.random(k_shape)  # generic taps
    weight = filter_matrix(lambda x: ndi.correlate(x, kernel, mode=mode), shape)
    got = border_sharing(shape[0] if len(shape) == 1 else shape, kernel_size, mode)
    assert got.shape == (weight.size,)
    assert same_partition(got, value_labels(weight))


def test_border_sharing_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode='same' is not a boundary mode"):
        border_sharing(5, 3, "same")
    with pytest.raises(ValueError, match="kernel_size=.* has 1 dimensions"):
        border_sharing((4, 4), (3,), "reflect")
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        border_sharing(4, 0, "wrap")


# ---------------------------------------------------------------------------
# same-size maps of scipy.ndimage.correlate, read back
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel", [RNG_KERNEL, GAUSS], ids=["random", "gaussian"])
def test_scipy_border_modes_are_read_back(mode, kernel):
    labels, _ = correlate_labels(kernel, mode)
    s = describe_sharing(labels, (64, 64))
    assert isinstance(s, SharingStructure)
    assert s.kind == "convolution" and s.ndim == 2
    assert s.grid == (8, 8) and s.output_grid == (8, 8) and s.kernel_shape == (3, 3)
    assert s.n_exceptions == 0
    # the named border is the mode itself or one that scipy says gives the same map
    assert BORDER[mode] in s.equivalent_borders
    assert s.border == s.equivalent_borders[0]
    for border in s.equivalent_borders:
        assert same_partition(correlate_labels(kernel, SCIPY_MODE[border])[0], labels)
    if mode in ("reflect", "nearest"):  # 3 wide: the two coincide, and the text says so
        assert set(s.equivalent_borders) == {"reflect", "nearest"}
        assert "reflect or nearest borders" in s.text
    else:
        assert s.border == BORDER[mode]
    assert "3 x 3 kernel on a 8 x 8 image" in str(s) and s.describe() == s.text


@pytest.mark.parametrize("mode", ["reflect", "nearest", "mirror"])
def test_wide_kernels_tell_the_border_modes_apart(mode):
    kernel = np.random.default_rng(3).normal(size=(5, 5))
    labels, _ = correlate_labels(kernel, mode)
    s = describe_sharing(labels, (64, 64))
    assert (s.border, s.kernel_shape, s.equivalent_borders) == (BORDER[mode], (5, 5),
                                                               (BORDER[mode],))


def test_reflect_departures_are_the_border_entries_that_differ_from_zero_padding():
    labels, reflect = correlate_labels(RNG_KERNEL, "reflect")
    _, zero = correlate_labels(RNG_KERNEL, "constant")
    s = describe_sharing(labels, (64, 64))
    differ = ~np.isclose(reflect, zero, rtol=0, atol=1e-12)
    assert differ.any()
    np.testing.assert_array_equal(s.departures, differ)
    # only the outputs on the image's edge differ, and the text counts them
    edge = np.ones((8, 8), dtype=bool)
    edge[1:-1, 1:-1] = False
    np.testing.assert_array_equal(s.departures.any(axis=1), edge.ravel())
    assert f"the {edge.sum()} border outputs differ" in s.text


@pytest.mark.parametrize("mode", ["constant", "wrap"])
def test_zero_padding_and_circular_borders_do_not_depart(mode):
    s = describe_sharing(correlate_labels(RNG_KERNEL, mode)[0], (64, 64))
    assert s.departures.shape == (64, 64) and not s.departures.any()


def test_kernel_symmetry_of_a_gaussian_and_of_sobel():
    gauss = filter_matrix(lambda x: ndi.gaussian_filter(x, 1.0, truncate=1.0, mode="constant"),
                          (8, 8))
    s = describe_sharing(value_labels(gauss), (64, 64))
    assert s.kernel_shape == (3, 3)
    assert s.kernel_symmetry == "symmetric under D_4 (all rotations and reflections)"
    # sobel(axis=0): a derivative down the rows, smoothed along them: only left-right mirrored
    for mode in ("constant", "wrap", "reflect"):
        sobel = filter_matrix(lambda x, m=mode: ndi.sobel(x, axis=0, mode=m), (8, 8))
        s = describe_sharing(value_labels(sobel), (64, 64))
        assert s.kernel_shape == (3, 3)
        assert s.kernel_symmetry == "mirror-symmetric left-right"
    sobel_cols = filter_matrix(lambda x: ndi.sobel(x, axis=1, mode="constant"), (8, 8))
    assert describe_sharing(value_labels(sobel_cols), (64, 64)).kernel_symmetry \
        == "mirror-symmetric up-down"
    assert describe_sharing(correlate_labels(RNG_KERNEL, "constant")[0],
                            (64, 64)).kernel_symmetry == ""


# ---------------------------------------------------------------------------
# valid convolutions, exceptions and dead inputs
# ---------------------------------------------------------------------------
def test_a_valid_convolution_is_named_a_convolution_not_trivial():
    labels = shift_sharing((8, 8), 3)
    s = describe_sharing(labels, (36, 64))
    assert (s.kind, s.border, s.kernel_shape, s.grid, s.output_grid) == (
        "convolution", "valid", (3, 3), (8, 8), (6, 6))
    assert s.n_exceptions == 0 and not s.departures.any()
    group = symmetry_group(labels, (36, 64))
    assert group.name == "trivial"
    text = group.describe()
    assert text != "trivial" and "convolution" in text and "3 x 3 kernel, 8 x 8 -> 6 x 6" in text


def test_one_entry_moved_to_its_own_group_is_one_exception():
    labels = shift_sharing((8, 8), 3).copy()
    entry = 10 * 64 + 13  # output 10 (pixel (1, 4)) reads input 13 through a tap
    weight_before = labels[entry]
    labels[entry] = labels.max() + 1
    s = describe_sharing(labels, (36, 64))
    assert (s.kind, s.border, s.kernel_shape) == ("convolution", "valid", (3, 3))
    assert s.n_exceptions == 1
    expected = np.zeros((36, 64), dtype=bool)
    expected[10, 13] = True
    np.testing.assert_array_equal(s.departures, expected)
    np.testing.assert_array_equal(s.exceptions, expected)
    assert "1 entry departs" in s.text
    assert weight_before != labels[entry]


def test_a_dead_input_is_reported():
    labels = shift_sharing((8, 8), 3).reshape(36, 64).copy()
    zeros = labels[0, -1]  # output 0 never reads the last input: the zeros' group
    dead = 3 * 8 + 4  # pixel (3, 4), read by nine outputs
    labels[:, dead] = zeros
    s = describe_sharing(labels.ravel(), (36, 64))
    assert (s.kind, s.kernel_shape) == ("convolution", (3, 3))
    assert s.dead_inputs == (dead,)
    assert s.n_exceptions == 9
    assert s.departures[:, dead].sum() == 9 and s.departures.sum() == 9
    assert f"input {dead} (pixel (3, 4)) is never read" in s.text


def test_random_labels_are_no_convolution():
    rng = np.random.default_rng(0)
    for labels in (rng.integers(0, 5, 64 * 64), np.arange(64 * 64), np.zeros(64 * 64, int)):
        s = describe_sharing(labels, (64, 64))
        assert s.kind is None and s.border is None and s.kernel_shape is None
        assert s.text.startswith("no convolution describes this sharing")
    # a Deep Sets layer is one tap on the diagonal: not read as a convolution
    assert describe_sharing(1 - np.eye(9, dtype=int).ravel(), (9, 9)).kind is None


# ---------------------------------------------------------------------------
# 1-D: numpy's convolutions
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [3, 4, 5])
def test_numpy_convolve_same_and_full(k):
    n = 16
    v = np.random.default_rng(k).normal(size=k)
    same = np.stack([np.convolve(e, v, "same") for e in np.eye(n)], axis=1)
    s = describe_sharing(value_labels(same), same.shape)
    assert (s.kind, s.ndim, s.grid, s.kernel_shape, s.border) == (
        "convolution", 1, (n,), (k,), "zero")
    assert s.text.startswith(f"1-D convolution, kernel {k} on {n} positions")
    full = np.stack([np.convolve(e, v, "full") for e in np.eye(n)], axis=1)
    s = describe_sharing(value_labels(full), full.shape)
    assert (s.grid, s.output_grid, s.kernel_shape, s.border) == ((n,), (n + k - 1,), (k,),
                                                                "full")
    assert f"{n} -> {n + k - 1} (full)" in s.text
    valid = np.stack([np.convolve(e, v, "valid") for e in np.eye(n)], axis=1)
    s = describe_sharing(value_labels(valid), valid.shape)
    assert s.text == f"1-D convolution, kernel {k}, {n} -> {n - k + 1} (valid)"


def test_a_symmetric_1d_kernel_is_mirror_symmetric():
    v = np.array([1.0, 3.0, 1.0])
    same = np.stack([np.convolve(e, v, "same") for e in np.eye(12)], axis=1)
    assert describe_sharing(value_labels(same), (12, 12)).kernel_symmetry == "mirror-symmetric"


def test_grids_restrict_the_readings_and_are_checked():
    labels = correlate_labels(RNG_KERNEL, "constant", shape=(4, 9))[0]
    assert describe_sharing(labels, (36, 36), grids=[(4, 9)]).grid == (4, 9)
    assert describe_sharing(labels, (36, 36), grids=(6, 6)).kind is None
    with pytest.raises(ValueError, match="grids must list input grids of n_in = 36 cells"):
        describe_sharing(labels, (36, 36), grids=[(5, 7)])
    with pytest.raises(ValueError, match="labels has 10 entries but shape"):
        describe_sharing(np.zeros(10, int), (36, 36))


# ---------------------------------------------------------------------------
# the group's names and descriptions
# ---------------------------------------------------------------------------
def test_circular_sobel_contains_pm_and_splits():
    weight = filter_matrix(lambda x: ndi.sobel(x, axis=0, mode="wrap"), (10, 10))
    labels = value_labels(weight)
    matrix = labels.reshape(100, 100)
    # pm (translations and the left-right reflection) keeps the sharing, and the group is larger
    for p_out, p_in in image_group_generators("pm", (10, 10)):
        assert np.array_equal(matrix[np.ix_(p_out, p_in)], matrix)
    group = symmetry_group(labels, (100, 100))
    assert group.order > 200 and group.order % 200 == 0
    assert group.name == "pm on the 10 x 10 torus; the map also splits into independent parts"
    text = group.describe()
    assert "2 independent parts" in text and "circular (wrap) borders" in text


def test_zero_padded_laplacian_keeps_d4_and_says_it_is_a_convolution():
    weight = filter_matrix(lambda x: ndi.laplace(x, mode="constant"), (10, 10))
    group = symmetry_group(value_labels(weight), (100, 100))
    assert group.name == "D_4"
    text = group.describe()
    assert text.startswith("D_4: ")
    assert "3 x 3 kernel on a 10 x 10 image, same size with zero padding" in text
    assert group.structure().kernel_symmetry.startswith("symmetric under D_4")


@pytest.mark.parametrize("k", [5, 7])
def test_a_circular_kernel_at_offsets_from_zero_is_a_convolution(k):
    # make_convolution's circular maps put the kernel at offsets 0..k-1: a centred kernel of
    # 2k - 1 taps, which for k >= 5 was beyond the readings tried ("leaves 64 of the 4096
    # entries unexplained")
    _, _, truth, _ = make_convolution(20, input_shape=64, kernel_size=k, mode="circular",
                                      random_state=0)
    s = describe_sharing(truth, (64, 64))
    assert s.kind == "convolution" and s.kernel_shape == (k,)
    assert s.border == "circular" and s.n_exceptions == 0
    assert s.kernel_offsets == ((0, k - 1),)
