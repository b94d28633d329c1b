"""Tests for sharelearn.symmetry.group: the SymmetryGroup object, symmetry_group's semantics and
input checks, and named_sharing."""

import math

import numpy as np
import pytest

from sharelearn.symmetry import (
    named_sharing,
    rotation_generators,
    sharing_from_group,
    shift_sharing,
    symmetry_group,
)


# ---------------------------------------------------------------------------
# the result object
# ---------------------------------------------------------------------------
def test_symmetry_group_object():
    group = symmetry_group(shift_sharing(6, 2, "circular"), (6, 6))
    text = repr(group)
    assert "C_6" in text and "order=6" in text
    assert group.shape == (6, 6)
    for p_out, p_in in group.generators:
        assert p_out.dtype == np.int64 and p_in.dtype == np.int64
        assert sorted(p_out.tolist()) == list(range(6))
    assert group.as_permutation_group().is_cyclic
    trivial = symmetry_group(np.arange(6), (2, 3))
    assert trivial.as_permutation_group().order() == 1


def test_identity_sharing_is_trivial():
    group = symmetry_group(np.arange(20), (4, 5))
    assert (group.name, group.order, group.generators) == ("trivial", 1, [])
    assert np.array_equal(group.sharing(), np.arange(20))


def test_group_can_be_larger_than_the_generating_group(to_sympy):
    # independent actions on outputs and inputs leave whole blocks shared: the sharing is kept
    # by every permutation inside each block, far more than the generating C_4 x C_2
    rot = rotation_generators(3)[0][0]
    flip = np.arange(4)[::-1].copy()
    gens = [(rot, np.arange(4)), (np.arange(9), flip)]
    sharing = sharing_from_group(gens, (9, 4))
    group = symmetry_group(sharing, (9, 4))
    assert to_sympy(gens, (9, 4)).order() == 8
    assert group.order == math.factorial(4) ** 2 * 2 * 2
    assert group.name == "S_4 x S_4 x C_2 x C_2"
    assert np.array_equal(group.sharing(), sharing)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3,), (0, 2), (2, 2, 2), "ab", 4, (2.5, 2)])
def test_bad_layer_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        sharing_from_group([], shape)
    with pytest.raises(ValueError, match="shape"):
        symmetry_group([0, 0, 0, 0], shape)


@pytest.mark.parametrize(
    ("partition", "match"),
    [
        (np.zeros(5, dtype=int), r"partition has 5 labels but shape=\(2, 3\)"),
        (np.zeros((2, 3), dtype=int), "partition must be a 1-D"),
        ([0, 1, -1, 0, 0, 0], "partition must hold non-negative"),
        ([0.5, 0, 0, 0, 0, 0], "partition must hold integer"),
        ([], "partition must contain at least one"),
    ],
)
def test_symmetry_group_rejects_bad_partition(partition, match):
    with pytest.raises(ValueError, match=match):
        symmetry_group(partition, (2, 3))


# ---------------------------------------------------------------------------
# named sharings
# ---------------------------------------------------------------------------
def test_named_sharings():
    assert named_sharing("shared", (2, 3)).tolist() == [0] * 6
    assert named_sharing("unshared", (2, 2)).tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(named_sharing("shift", (2, 4)), shift_sharing(4, 3, "valid"))
    np.testing.assert_array_equal(named_sharing("shift", (4, 4)), shift_sharing(4, 4, "circular"))
    assert named_sharing("permutation", (3, 3)).tolist() == [0, 1, 1, 1, 0, 1, 1, 1, 0]
    assert symmetry_group(named_sharing("permutation", (4, 4)), (4, 4)).name == "S_4"


@pytest.mark.parametrize(("name", "shape", "match"), [
    ("shift", (3, 2), r"'shift' needs n_outputs <= n_features, got shape \(3, 2\)"),
    ("permutation", (2, 3), r"'permutation' needs a square layer, got shape \(2, 3\)"),
    ("circulant", (2, 2), "'circulant' is not a known sharing; expected one of 'shift', "),
    ("shared", (0, 2), r"shape\[0\] must be >= 1"),
])
def test_named_sharing_rejects_bad_input(name, shape, match):
    with pytest.raises(ValueError, match=match):
        named_sharing(name, shape)
