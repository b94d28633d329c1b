"""Tests for sharelearn.symmetry.convolution: the sharing of a convolution and its group.

Independent references: the offsets of every entry counted in Python loops, brute force over the
permutations of a small layer, and ``sympy.combinatorics`` for the cyclic shifts.
"""

import itertools
import math

import numpy as np
import pytest

from sharelearn import partition_distance
from sharelearn.datasets import make_convolution
from sharelearn.symmetry import (
    cyclic_shift_generators,
    sharing_from_group,
    shift_sharing,
    symmetry_group,
)


# ---------------------------------------------------------------------------
# the sharing
# ---------------------------------------------------------------------------
def _conv_labels(input_shape, kernel_size, mode):
    return make_convolution(
        2, input_shape=input_shape, kernel_size=kernel_size, mode=mode, random_state=0
    )[2]


@pytest.mark.parametrize("mode", ["valid", "same", "circular"])
def test_shift_sharing_equals_make_convolution_1d(mode):
    for n in range(1, 9):
        for k in range(1, n + 1):
            expected = _conv_labels(n, k, mode)
            got = shift_sharing(n, k, mode)
            assert partition_distance(got, expected) == 0
            assert np.array_equal(got, expected)
            assert got.dtype == np.int64


@pytest.mark.parametrize("mode", ["valid", "circular"])
@pytest.mark.parametrize("image", [(1, 4), (3, 3), (4, 5), (5, 4), (6, 6), (2, 7)])
def test_shift_sharing_equals_make_convolution_2d(mode, image):
    kernels = {(1, 1), (1, 2), (2, 2), (2, 3), (3, 2), image, (image[0], 1)}
    for kernel in kernels:
        if kernel[0] > image[0] or kernel[1] > image[1]:
            continue
        expected = _conv_labels(image, kernel, mode)
        got = shift_sharing(image, kernel, mode)
        assert partition_distance(got, expected) == 0
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("shape", [5, 8, (3, 4), (4, 4)])
def test_full_circular_kernel_is_the_cyclic_shift_orbit_partition(shape):
    n = math.prod(shape) if isinstance(shape, tuple) else shape
    orbits = sharing_from_group(cyclic_shift_generators(shape), (n, n))
    assert np.array_equal(shift_sharing(shape, shape, "circular"), orbits)



def loop_sharing(input_shape, kernel_shape, mode):
    """Tap of every entry (o, i), counted one axis at a time in Python loops; zeros last."""
    out_shape = [n - k + 1 if mode == "valid" else n
                 for n, k in zip(input_shape, kernel_shape, strict=True)]
    labels, first_seen = [], {}
    for o in itertools.product(*map(range, out_shape)):
        for i in itertools.product(*map(range, input_shape)):
            tap = []
            for a, b, n, k in zip(o, i, input_shape, kernel_shape, strict=True):
                t = (b - a) % n if mode == "circular" else b - a + ((k - 1) // 2 if mode == "same"
                                                                    else 0)
                tap.append(t if 0 <= t < k else None)
            key = None if None in tap else tuple(tap)
            labels.append(first_seen.setdefault(key, len(first_seen)))
    return np.array(labels)


@pytest.mark.parametrize(("input_shape", "kernel_shape", "mode"), [
    *[((n,), (k,), mode) for mode in ("valid", "same", "circular") for n, k in
      [(1, 1), (4, 2), (5, 3), (6, 4), (7, 7)]],
    *[(image, kernel, mode) for mode in ("valid", "circular") for image, kernel in
      [((3, 4), (2, 3)), ((4, 4), (1, 2)), ((2, 5), (2, 5))]],
])
def test_shift_sharing_matches_loops_over_offsets(input_shape, kernel_shape, mode):
    expected = loop_sharing(input_shape, kernel_shape, mode)
    np.testing.assert_array_equal(shift_sharing(input_shape, kernel_shape, mode), expected)


# ---------------------------------------------------------------------------
# the group of a convolution
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 4, 7, 12])
def test_circular_convolution_group_is_cyclic_shift(n, to_sympy):
    for k in range(2, n + 1):
        labels = _conv_labels(n, k, "circular")
        group = symmetry_group(labels, (n, n))
        assert (group.name, group.order) == (f"C_{n}", n)
        shift = to_sympy(cyclic_shift_generators(n), (n, n))
        assert group.as_permutation_group().contains(shift.generators[0])


@pytest.mark.parametrize("image", [(3, 3), (4, 6)])
def test_circular_2d_convolution_group_is_the_torus(image, to_sympy):
    # kernels with distinct taps: the translations of the torus and nothing else, the wallpaper
    # group p1 (C_3 x C_3 and C_12 x C_2 as abstract groups)
    p = image[0] * image[1]
    shifts = to_sympy(cyclic_shift_generators(image), (p, p))
    for kernel in [(2, 2), (2, 3), image]:
        group = symmetry_group(_conv_labels(image, kernel, "circular"), (p, p))
        assert group.name == f"p1 on the {image[0]} x {image[1]} torus"
        assert group.order == p
        assert all(group.as_permutation_group().contains(g) for g in shifts.generators)


def test_valid_convolution_has_no_symmetry(brute_force_group):
    # a valid convolution is not shift-invariant as a finite layer: with two taps or more the
    # only permutations keeping every tap's diagonal are the identities (checked by brute force)
    for n in range(2, 7):
        for k in range(2, n + 1):
            labels = _conv_labels(n, k, "valid")
            shape = (n - k + 1, n)
            group = symmetry_group(labels, shape)
            assert (group.name, group.order, group.generators) == ("trivial", 1, [])
            if n <= 5:
                assert len(brute_force_group(labels, shape)) == 1
    for image, kernel in [((3, 3), 2), ((4, 5), (2, 3)), ((6, 6), 3)]:
        labels = _conv_labels(image, kernel, "valid")
        n_out = len(labels) // (image[0] * image[1])
        assert symmetry_group(labels, (n_out, image[0] * image[1])).name == "trivial"


def test_one_tap_valid_convolution_is_a_set_layer():
    # one tap: the diagonal against the zeros, a Deep Sets layer
    assert symmetry_group(_conv_labels(5, 1, "valid"), (5, 5)).name == "S_5"
    # one tap along the rows of an image: the image rows can be permuted together
    labels = _conv_labels((3, 4), (1, 2), "valid")
    group = symmetry_group(labels, (9, 12))
    assert (group.name, group.order) == ("S_3", 6)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_shift_sharing_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        shift_sharing(5, 2, "full")
    with pytest.raises(ValueError, match="kernel_size"):
        shift_sharing(3, 4, "valid")
    with pytest.raises(ValueError, match="kernel_size"):
        shift_sharing((3, 3), (2, 2, 2), "valid")
    with pytest.raises(ValueError, match="same"):
        shift_sharing((3, 3), 2, "same")
    with pytest.raises(ValueError, match="input_shape"):
        shift_sharing(0, 1, "valid")
