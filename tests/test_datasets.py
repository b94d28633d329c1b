"""Tests for sharelearn.datasets.

Every generator's ground truth is checked against a construction written
independently here (explicit loops, numpy / scipy correlation routines).

Conventions checked (the module's docstring states them):

* cross-correlation ``y[o] = sum_t k[t] * x[o + t - pad]`` -- the same as
  ``np.correlate(x, k, 'valid')`` and ``scipy.signal.correlate2d(x, k, 'valid')``;
* 'same' pads ``(k - 1) // 2`` zeros on the left and ``k // 2`` on the right,
  i.e. ``y = np.correlate(x, k, 'full')[k // 2 : k // 2 + n]``; this equals
  ``np.correlate(x, k, 'same')`` for odd ``k`` only (NumPy puts the extra zero
  on the left for even ``k``);
* 'circular' has no centring: ``y[o] = sum_t k[t] * x[(o + t) % n]``, which
  is ``scipy.ndimage.correlate(x, k, mode='wrap')`` (centred on ``k // 2``)
  rolled back by ``k // 2``;
* images are flattened row-major.
"""

import numpy as np
import pytest
from scipy import ndimage, signal

from sharelearn.datasets import (
    make_convolution,
    make_equivariant_map,
    make_shared_means,
    make_sum_of_numbers,
)
from sharelearn.partition import canonical_labels


# ---------------------------------------------------------------------------
# helpers written independently of the module
# ---------------------------------------------------------------------------
def assert_canonical(labels):
    labels = np.asarray(labels)
    assert labels.ndim == 1
    assert labels.dtype == np.int64
    seen = []
    for v in labels.tolist():
        if v not in seen:
            seen.append(v)
    assert seen == list(range(len(seen)))


def same_partition(a, b):
    """True when two label vectors describe the same partition."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def hand_tap_labels_1d(n, k, mode):
    """Tap id (or -1) of every weight entry by explicit loops."""
    n_out = n - k + 1 if mode == "valid" else n
    pad = (k - 1) // 2 if mode == "same" else 0
    taps = -np.ones((n_out, n), dtype=int)
    for o in range(n_out):
        for t in range(k):
            i = o + t - pad
            if mode == "circular":
                i %= n
            if 0 <= i < n:
                assert taps[o, i] == -1
                taps[o, i] = t
    return taps


def hand_weight_1d(kernel, n, mode):
    taps = hand_tap_labels_1d(n, len(kernel), mode)
    weight = np.zeros(taps.shape)
    for o in range(taps.shape[0]):
        for i in range(n):
            if taps[o, i] >= 0:
                weight[o, i] = kernel[taps[o, i]]
    return weight


def correlate_1d(x, k, mode):
    n, m = len(x), len(k)
    if mode == "valid":
        return np.correlate(x, k, "valid")
    if mode == "same":
        return np.correlate(x, k, "full")[m // 2 : m // 2 + n]
    return sum(k[t] * np.roll(x, -t) for t in range(m))


# ---------------------------------------------------------------------------
# canonical labels (partition.canonical_labels, which replaced a private copy here)
# ---------------------------------------------------------------------------
def test_labels_are_renumbered_by_first_appearance():
    out = canonical_labels([7, 7, 0, 3, 0, 7, 9])
    assert out.tolist() == [0, 0, 1, 2, 1, 0, 3]
    assert out.dtype == np.int64
    labels = make_sum_of_numbers(3, length=5, variant="alternating", random_state=0)[2]
    assert labels.tolist() == [0, 1, 0, 1, 0] and labels.dtype == np.int64


# ---------------------------------------------------------------------------
# make_convolution
# ---------------------------------------------------------------------------
def test_valid_1d_weight_by_hand():
    X, Y, labels, weight = make_convolution(4, input_shape=5, kernel_size=3, random_state=0)
    expected = np.zeros((3, 5))
    for o in range(3):
        for t in range(3):
            expected[o, o + t] = 2 * t + 1
    np.testing.assert_array_equal(weight, expected)
    # taps 0,1,2 and the zeros; in row-major order tap 0 comes first, then tap 1,
    # tap 2, then the first structural zero at (0, 3).
    assert labels.tolist() == [0, 1, 2, 3, 3, 3, 0, 1, 2, 3, 3, 3, 0, 1, 2]


@pytest.mark.parametrize(
    "n, k, mode",
    [
        (5, 3, "valid"),
        (7, 1, "valid"),
        (6, 6, "valid"),
        (7, 3, "same"),
        (8, 4, "same"),
        (5, 2, "same"),
        (5, 5, "same"),
        (6, 3, "circular"),
        (4, 4, "circular"),
        (5, 2, "circular"),
    ],
)
def test_1d_matches_independent_construction(n, k, mode):
    X, Y, labels, weight = make_convolution(
        6, input_shape=n, kernel_size=k, mode=mode, kernel="random", noise=0.0, random_state=3
    )
    n_out = n - k + 1 if mode == "valid" else n
    assert X.shape == (6, n) and Y.shape == (6, n_out)
    assert weight.shape == (n_out, n) and labels.shape == (n_out * n,)
    # recover the kernel from the first row that holds every tap
    taps = hand_tap_labels_1d(n, k, mode)
    row = next(o for o in range(n_out) if np.sum(taps[o] >= 0) == k)
    kernel = np.zeros(k)
    kernel[taps[row][taps[row] >= 0]] = weight[row][taps[row] >= 0]
    np.testing.assert_array_equal(weight, hand_weight_1d(kernel, n, mode))
    assert same_partition(labels, taps.ravel())
    assert_canonical(labels)
    for s in range(X.shape[0]):
        np.testing.assert_allclose(Y[s], correlate_1d(X[s], kernel, mode), atol=1e-12)
    np.testing.assert_array_equal(Y, X @ weight.T)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_same_odd_matches_numpy_same(k):
    X, Y, _, _ = make_convolution(
        3, input_shape=7, kernel_size=k, mode="same", noise=0.0, random_state=1
    )
    kernel = 2.0 * np.arange(k) + 1
    for s in range(3):
        np.testing.assert_allclose(Y[s], np.correlate(X[s], kernel, "same"))
        np.testing.assert_allclose(Y[s], signal.correlate(X[s], kernel, "same"))


def test_same_even_puts_extra_zero_on_the_right():
    _, _, _, weight = make_convolution(1, input_shape=4, kernel_size=2, mode="same")
    # kernel [1, 3]: pad left 0, right 1 -> y[o] = x[o] + 3 x[o + 1]
    expected = np.array([[1, 3, 0, 0], [0, 1, 3, 0], [0, 0, 1, 3], [0, 0, 0, 1.0]])
    np.testing.assert_array_equal(weight, expected)


@pytest.mark.parametrize("shape, ksize", [((4, 5), (2, 3)), ((3, 3), 3), ((5, 4), (1, 2))])
def test_2d_valid_matches_correlate2d(shape, ksize):
    X, Y, labels, weight = make_convolution(
        4, input_shape=shape, kernel_size=ksize, noise=0.0, random_state=2
    )
    kh, kw = (ksize, ksize) if isinstance(ksize, int) else ksize
    h, w = shape
    kernel = (2.0 * np.arange(kh * kw) + 1).reshape(kh, kw)
    out = (h - kh + 1, w - kw + 1)
    assert weight.shape == (out[0] * out[1], h * w)
    for s in range(4):
        img = X[s].reshape(h, w)
        ref = signal.correlate2d(img, kernel, mode="valid")
        np.testing.assert_allclose(Y[s].reshape(out), ref)
    has_zeros = weight.size > out[0] * out[1] * kh * kw  # each output row holds every tap once
    check_labels_reproduce_weight(labels, weight, kh * kw, has_zeros)


@pytest.mark.parametrize("shape, ksize", [((4, 5), (2, 3)), ((3, 3), 3), ((4, 4), (4, 1))])
def test_2d_circular_matches_ndimage_wrap(shape, ksize):
    X, Y, labels, weight = make_convolution(
        4,
        input_shape=shape,
        kernel_size=ksize,
        mode="circular",
        kernel="random",
        noise=0.0,
        random_state=5,
    )
    kh, kw = (ksize, ksize) if isinstance(ksize, int) else ksize
    h, w = shape
    # output 0 = pixel (0, 0) reads input pixels (s, t): recover the kernel from row 0
    kernel = weight[0].reshape(h, w)[:kh, :kw]
    assert weight.shape == (h * w, h * w)
    for s in range(4):
        img = X[s].reshape(h, w)
        by_roll = sum(
            kernel[a, b] * np.roll(img, (-a, -b), axis=(0, 1)) for a in range(kh) for b in range(kw)
        )
        by_ndimage = np.roll(
            ndimage.correlate(img, kernel, mode="wrap"), (-(kh // 2), -(kw // 2)), axis=(0, 1)
        )
        np.testing.assert_allclose(Y[s].reshape(h, w), by_roll, atol=1e-12)
        np.testing.assert_allclose(Y[s].reshape(h, w), by_ndimage, atol=1e-12)
    has_zeros = (kh, kw) != (h, w)
    assert np.unique(labels).size == kh * kw + has_zeros


def check_labels_reproduce_weight(labels, weight, n_taps, has_zeros):
    flat = weight.ravel()
    assert labels.shape == flat.shape
    assert_canonical(labels)
    for g in np.unique(labels):
        assert np.unique(flat[labels == g]).size == 1
    assert np.unique(labels).size == n_taps + int(has_zeros)


@pytest.mark.parametrize(
    "n, k, mode, has_zeros",
    [
        (5, 3, "valid", True),
        (3, 3, "valid", False),
        (1, 1, "valid", False),
        (6, 3, "same", True),
        (1, 1, "same", False),
        (6, 3, "circular", True),
        (5, 5, "circular", False),
    ],
)
def test_labels_reproduce_default_weight(n, k, mode, has_zeros):
    _, _, labels, weight = make_convolution(2, input_shape=n, kernel_size=k, mode=mode)
    check_labels_reproduce_weight(labels, weight, k, has_zeros)
    # default kernel values 1, 3, 5, ... are distinct and nonzero: the groups are
    # exactly the level sets of the weight, the zero group where weight == 0
    assert same_partition(labels, weight.ravel())
    if has_zeros:
        zero_group = labels[np.flatnonzero(weight.ravel() == 0)[0]]
        np.testing.assert_array_equal(labels == zero_group, weight.ravel() == 0)


def test_labels_follow_taps_not_values():
    _, _, labels, weight = make_convolution(
        2, input_shape=5, kernel_size=3, kernel=[2.0, 2.0, 0.0], noise=0.0
    )
    assert same_partition(labels, hand_tap_labels_1d(5, 3, "valid").ravel())
    assert np.unique(labels).size == 4
    _, _, labels2d, _ = make_convolution(
        2, input_shape=(3, 4), kernel_size=2, mode="circular", kernel=np.ones((2, 2))
    )
    assert np.unique(labels2d).size == 5


def test_user_kernel_and_tuple_shapes():
    kernel = np.array([[1.0, -2.0], [0.5, 4.0]])
    _, _, _, w1 = make_convolution(1, input_shape=(3, 3), kernel_size=(2, 2), kernel=kernel)
    _, _, _, w2 = make_convolution(1, input_shape=[3, 3], kernel_size=2, kernel=kernel.tolist())
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(w1[0], [1.0, -2.0, 0, 0.5, 4.0, 0, 0, 0, 0])
    _, _, _, w3 = make_convolution(1, input_shape=(5,), kernel_size=(2,), kernel=[1.0, 2.0])
    _, _, _, w4 = make_convolution(1, input_shape=5, kernel_size=2, kernel=[1.0, 2.0])
    np.testing.assert_array_equal(w3, w4)


def test_weight_matches_loops_in_every_mode():
    kernel = np.array([0.3, -1.2, 2.0])
    for mode in ("valid", "same", "circular"):
        weight = make_convolution(1, input_shape=6, kernel_size=3, mode=mode, kernel=kernel)[3]
        np.testing.assert_array_equal(weight, hand_weight_1d(kernel, 6, mode))


def test_convolution_noise_and_reproducibility():
    kw = dict(input_shape=6, kernel_size=3, kernel="random")
    a = make_convolution(2000, noise=0.1, random_state=0, **kw)
    b = make_convolution(2000, noise=0.1, random_state=0, **kw)
    c = make_convolution(2000, noise=0.1, random_state=1, **kw)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[3], c[3])
    resid = a[1] - a[0] @ a[3].T
    assert 0.09 < resid.std() < 0.11
    d = make_convolution(3, noise=0.5, random_state=np.random.default_rng(0))
    e = make_convolution(3, noise=0.5, random_state=np.random.RandomState(0))
    assert d[0].shape == e[0].shape == (3, 8)
    assert all(x.dtype == np.float64 for x in (a[0], a[1], a[3]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=3, kernel_size=5), r"kernel_size=5 must be <= n_in=3"),
        (dict(input_shape=3, kernel_size=4, mode="circular"), "kernel_size"),
        (dict(input_shape=(3, 4), kernel_size=(2, 5)), "kernel_size"),
        (dict(mode="full"), r"mode='full'.*'valid', 'same', 'circular'"),
        (dict(input_shape=(4, 4), kernel_size=2, mode="same"), "mode='same'"),
        (dict(input_shape=6, kernel_size=(2, 2)), "kernel_size"),
        (dict(input_shape=(2, 2, 2)), "input_shape"),
        (dict(input_shape=0), "input_shape"),
        (dict(input_shape="abc"), "input_shape"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(kernel_size=2.5), "kernel_size"),
        (dict(kernel=[1.0, 2.0]), "kernel"),
        (dict(kernel=[1.0, np.nan, 2.0]), "kernel"),
        (dict(kernel="gaussian"), "kernel"),
        (dict(input_shape=(3, 3), kernel_size=2, kernel=np.ones(4)), "kernel"),
        (dict(n_samples=0), "n_samples"),
        (dict(noise=-0.1), "noise"),
        (dict(random_state="seed"), "random_state"),
    ],
)
def test_make_convolution_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_convolution(**kwargs)


def test_shape_messages_say_how_many_dimensions():
    # the sequences accepted have 1 or 2 items, and a wrong length is named as such (an earlier
    # message spoke of "a tuple of positive ints", which a 3-tuple is too)
    with pytest.raises(ValueError, match=r"input_shape must be a positive int or a tuple of 1 or 2 "
                                         r"positive ints, got 'abc'\."):
        make_convolution(input_shape="abc")
    with pytest.raises(ValueError, match=r"input_shape=\(2, 2, 2\) must have 1 or 2 dimensions, "
                                         r"got 3\."):
        make_convolution(input_shape=(2, 2, 2))


# ---------------------------------------------------------------------------
# make_shared_means
# ---------------------------------------------------------------------------
def test_shared_means_recovery():
    X, labels, means = make_shared_means(
        20000, n_features=6, n_groups=3, spacing=3.0, noise=1.0, random_state=0
    )
    assert X.shape == (20000, 6) and labels.shape == (6,) and means.shape == (6,)
    assert_canonical(labels)
    assert np.unique(labels).size == 3
    # every group has a single mean and the means are exactly {0, 3, 6}
    for g in range(3):
        assert np.unique(means[labels == g]).size == 1
    np.testing.assert_array_equal(np.sort(np.unique(means)), [0.0, 3.0, 6.0])
    assert same_partition(labels, means)
    np.testing.assert_allclose(X.mean(axis=0), means, atol=0.05)
    np.testing.assert_allclose(X.std(axis=0), 1.0, atol=0.05)


@pytest.mark.parametrize("n_features, n_groups", [(1, 1), (5, 1), (5, 5), (7, 3)])
def test_shared_means_every_group_used(n_features, n_groups):
    for seed in range(10):
        X, labels, means = make_shared_means(
            3, n_features=n_features, n_groups=n_groups, spacing=1.5, random_state=seed
        )
        assert_canonical(labels)
        assert np.unique(labels).size == n_groups
        assert set(np.unique(means).tolist()) == {1.5 * j for j in range(n_groups)}


def test_shared_means_assignment_is_random_and_reproducible():
    parts = {
        tuple(make_shared_means(2, n_features=6, n_groups=2, random_state=s)[1]) for s in range(20)
    }
    assert len(parts) > 1
    a = make_shared_means(5, n_groups=2, random_state=7)
    b = make_shared_means(5, n_groups=2, random_state=7)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    X, _, means = make_shared_means(4, n_groups=3, noise=0.0, random_state=np.random.default_rng(1))
    np.testing.assert_array_equal(X, np.tile(means, (4, 1)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_features=5, n_groups=7), r"n_groups=7 must be <= n_features=5"),
        (dict(n_groups=0), "n_groups"),
        (dict(n_features=0), "n_features"),
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=2.0), "n_samples"),
        (dict(noise=-1.0), "noise"),
        (dict(spacing=np.inf), "spacing"),
        (dict(spacing="3"), "spacing"),
    ],
)
def test_make_shared_means_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shared_means(**kwargs)


# ---------------------------------------------------------------------------
# make_sum_of_numbers
# ---------------------------------------------------------------------------
def test_sum_of_numbers_shared():
    X, y, labels = make_sum_of_numbers(3000, length=5, noise=0.5, random_state=0)
    assert X.shape == (3000, 5) and y.shape == (3000,)
    assert X.dtype == np.int64 and y.dtype == np.float64
    assert X.min() == 1 and X.max() == 9
    assert set(np.unique(X).tolist()) == set(range(1, 10))
    resid = y - X.sum(axis=1)
    assert np.all(np.abs(resid) <= 0.5)
    assert resid.min() < -0.4 and resid.max() > 0.4
    assert labels.tolist() == [0] * 5 and labels.dtype == np.int64


def test_sum_of_numbers_alternating():
    X, y, labels = make_sum_of_numbers(
        500, length=5, variant="alternating", noise=0.0, random_state=1
    )
    expected = X[:, 0] - X[:, 1] + X[:, 2] - X[:, 3] + X[:, 4]
    np.testing.assert_array_equal(y, expected)
    assert labels.tolist() == [0, 1, 0, 1, 0]
    assert_canonical(labels)
    _, _, lab2 = make_sum_of_numbers(1, length=2, variant="alternating")
    assert lab2.tolist() == [0, 1]


def test_sum_of_numbers_reproducible():
    a = make_sum_of_numbers(10, random_state=3)
    b = make_sum_of_numbers(10, random_state=3)
    c = make_sum_of_numbers(10, random_state=4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    X, y, _ = make_sum_of_numbers(10, length=1, noise=0.0, random_state=np.random.default_rng(0))
    np.testing.assert_array_equal(y, X[:, 0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(length=0), "length"),
        (dict(length=1, variant="alternating"), r"length=1 must be >= 2"),
        (dict(variant="product"), r"variant='product'.*'shared', 'alternating'"),
        (dict(noise=-0.5), "noise"),
        (dict(n_samples=-3), "n_samples"),
        (dict(random_state=1.5), "random_state"),
    ],
)
def test_make_sum_of_numbers_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sum_of_numbers(**kwargs)


# -- realistic inputs --------------------------------------------------------------------------
def test_ar1_inputs_have_unit_variance_and_the_asked_correlation():
    X, Y, labels, weight = make_convolution(4000, input_shape=16, kernel_size=3, correlation=0.9,
                                            random_state=0)
    np.testing.assert_allclose(X.std(0), 1.0, atol=0.06)
    lag1 = np.mean([np.corrcoef(X[:, i], X[:, i + 1])[0, 1] for i in range(15)])
    lag2 = np.mean([np.corrcoef(X[:, i], X[:, i + 2])[0, 1] for i in range(14)])
    assert lag1 == pytest.approx(0.9, abs=0.02) and lag2 == pytest.approx(0.81, abs=0.03)
    # the targets are still the correlation of these inputs with the kernel
    assert np.std(Y - X @ weight.T) == pytest.approx(0.1, rel=0.05)


def test_2d_ar1_inputs_correlate_along_both_axes():
    X, *_ = make_convolution(3000, input_shape=(6, 6), kernel_size=2, correlation=0.8,
                             random_state=0)
    images = X.reshape(-1, 6, 6)
    across_rows = np.corrcoef(images[:, 2, 3], images[:, 3, 3])[0, 1]
    across_cols = np.corrcoef(images[:, 3, 2], images[:, 3, 3])[0, 1]
    assert across_rows == pytest.approx(0.8, abs=0.04)
    assert across_cols == pytest.approx(0.8, abs=0.04)


def test_image_patches_are_natural_and_globally_standardised():
    X, Y, labels, weight = make_convolution(500, input_shape=(8, 8), kernel_size=3,
                                            inputs="images", kernel="random", random_state=0)
    assert X.shape == (500, 64) and Y.shape == (500, 36)
    assert X.mean() == pytest.approx(0.0, abs=1e-12) and X.std() == pytest.approx(1.0)
    # neighbouring pixels of photographs correlate strongly; the design is ill-conditioned
    assert np.corrcoef(X[:, 0], X[:, 1])[0, 1] > 0.8
    assert np.linalg.cond(X.T @ X) > 1e3
    again = make_convolution(500, input_shape=(8, 8), kernel_size=3, inputs="images",
                             kernel="random", random_state=0)[0]
    np.testing.assert_array_equal(X, again)


def test_relative_noise_is_a_fraction_of_the_targets_spread():
    X, Y, _, weight = make_convolution(2000, input_shape=12, kernel_size=3, kernel="random",
                                       noise=0.1, relative_noise=True, random_state=0)
    clean = X @ weight.T
    assert np.std(Y - clean) == pytest.approx(0.1 * clean.std(), rel=0.05)


@pytest.mark.parametrize("kwargs, match", [
    (dict(inputs="photos"), "inputs must be 'normal' or 'images'"),
    (dict(correlation=1.0), r"correlation must lie in \(-1, 1\)"),
    (dict(inputs="images"), "needs a 2-D input_shape"),
    (dict(input_shape=(500, 8), kernel_size=2, inputs="images"), "larger than the sample"),
])
def test_realistic_inputs_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_convolution(10, **{"input_shape": 8, "kernel_size": 3, **kwargs})


# ---------------------------------------------------------------------------
# make_equivariant_map
# ---------------------------------------------------------------------------
def _image_move(shape, turn, flip):
    """Pixel permutation of an h x w image: a quarter turn and/or a left-right flip, about the
    centre (written here with numpy's own rot90 and fliplr)."""
    grid = np.arange(shape[0] * shape[1]).reshape(shape)
    moved = np.rot90(grid, turn) if turn else grid
    moved = np.fliplr(moved) if flip else moved
    perm = np.empty(grid.size, dtype=int)
    perm[moved.ravel()] = grid.ravel()  # pixel grid[x] moves to where it lands in `moved`
    return perm


@pytest.mark.parametrize(("group", "shape"), [("p4m", (6, 6)), ("p4", (8, 8)), ("pmm", (4, 6)),
                                              ("pgg", (4, 6)), ("D_4", (7, 7)), ("C_2", (4, 5))])
def test_equivariant_map_has_the_promised_sharing(group, shape):
    from sharelearn.symmetry import image_group_generators, sharing_from_group

    n = shape[0] * shape[1]
    X, Y, labels, W = make_equivariant_map(40, group=group, image_shape=shape, noise=0.0,
                                           random_state=0)
    assert X.shape == Y.shape == (40, n) and W.shape == (n, n) and labels.shape == (n * n,)
    assert np.array_equal(labels, sharing_from_group(image_group_generators(group, shape),
                                                     (n, n)))
    assert np.array_equal(labels, canonical_labels(labels))
    # one value per orbit, different orbits different values (normal draws)
    values = W.ravel()
    for g in range(labels.max() + 1):
        assert np.all(values[labels == g] == values[labels == g][0])
    assert np.unique(values).size == labels.max() + 1
    np.testing.assert_allclose(Y, X @ W.T)
    # equivariance: every generator moves inputs and outputs alike
    for p_out, p_in in image_group_generators(group, shape):
        assert np.array_equal(W[np.ix_(p_out, p_in)], W)


def test_p4m_map_commutes_with_turning_and_flipping_images():
    # around the torus the rotation about pixel (0, 0) and numpy's rotation about the centre
    # differ by a translation, which p4m also contains
    *_, W = make_equivariant_map(1, group="p4m", image_shape=(6, 6), random_state=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(36)
    for turn, flip in [(1, False), (2, False), (0, True), (3, True)]:
        p = _image_move((6, 6), turn, flip)
        moved_x = np.empty(36)
        moved_x[p] = x
        expected = np.empty(36)
        expected[p] = W @ x
        np.testing.assert_allclose(W @ moved_x, expected)


def test_equivariant_map_noise_values_and_reproducibility():
    a = make_equivariant_map(30, group="p2", image_shape=(4, 4), noise=0.0, random_state=1)
    b = make_equivariant_map(30, group="p2", image_shape=(4, 4), noise=0.5, random_state=1)
    np.testing.assert_array_equal(a[0], b[0])  # same inputs
    np.testing.assert_array_equal(a[3], b[3])  # same map
    residual = b[1] - b[0] @ b[3].T
    assert 0.4 < residual.std() < 0.6
    n_orbits = a[2].max() + 1
    values = np.arange(n_orbits, dtype=float)
    *_, labels, W = make_equivariant_map(5, group="p2", image_shape=(4, 4), values=values)
    np.testing.assert_array_equal(W.ravel(), values[labels])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"group": "p3"}, "not a known image group"),
     ({"group": "p4", "image_shape": (4, 6)}, "square"),
     ({"image_shape": (6,)}, "image_shape must be a pair"),
     ({"values": "uniform"}, "values='uniform' is not supported"),
     ({"values": [1.0, 2.0]}, r"expected shape \(10,\)"),
     ({"values": [np.nan] * 10}, "finite"),
     ({"noise": -1.0}, "noise must be >= 0"),
     ({"n_samples": 0}, "n_samples must be >= 1")],
)
def test_make_equivariant_map_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_equivariant_map(**kwargs)


def test_equivariant_map_with_a_window_is_local_and_keeps_the_symmetry():
    from sharelearn.symmetry import image_group_generators, symmetry_group

    X, Y, labels, W = make_equivariant_map(20, group="p4m", image_shape=(6, 6), kernel_size=3,
                                           noise=0.0, random_state=0)
    # entry (o, i) is non-zero only when i is within one row and one column of o, around the
    # torus (checked by explicit loops)
    for o in range(36):
        for i in range(36):
            dr = min((i // 6 - o // 6) % 6, (o // 6 - i // 6) % 6)
            dc = min((i % 6 - o % 6) % 6, (o % 6 - i % 6) % 6)
            assert (W[o, i] != 0) == (dr <= 1 and dc <= 1)
    # centre, edge neighbours, corners and the zeros
    assert labels.max() + 1 == 4
    for p_out, p_in in image_group_generators("p4m", (6, 6)):
        assert np.array_equal(W[np.ix_(p_out, p_in)], W)
    assert symmetry_group(labels, W.shape).name == "p4m on the 6 x 6 torus"
    # without translations the window is about each output pixel, with no wrapping
    *_, labels, W = make_equivariant_map(5, group="D_4", image_shape=(5, 5), kernel_size=3,
                                         random_state=0)
    assert W[0, 24] == 0 and W[0, 6] != 0
    assert symmetry_group(labels, W.shape).name == "D_4"
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        make_equivariant_map(group="p1", image_shape=(6, 6), kernel_size=4)
    with pytest.raises(ValueError, match="kernel_size must be <= 6"):
        make_equivariant_map(group="p1", image_shape=(6, 6), kernel_size=7)
