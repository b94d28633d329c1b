"""Tests for sharelearn.symmetry.generators: named generating sets and the sharing of a group.

The orbits of a group are checked against ``sympy.combinatorics``, which lists its elements.
"""

import itertools

import numpy as np
import pytest

from sharelearn.symmetry import (
    cyclic_shift_generators,
    dihedral_generators,
    permutation_generators,
    reflection_generators,
    rotation_generators,
    sharing_from_group,
)


# ---------------------------------------------------------------------------
# group -> sharing
# ---------------------------------------------------------------------------
def test_sharing_from_group_trivial_group_is_all_singletons():
    assert sharing_from_group([], (2, 3)).tolist() == [0, 1, 2, 3, 4, 5]


def test_sharing_from_group_orbits_match_sympy_orbits_of_pairs(to_sympy):
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_out, n_in = rng.integers(1, 5, size=2)
        gens = [(rng.permutation(n_out), rng.permutation(n_in)) for _ in range(rng.integers(1, 3))]
        labels = sharing_from_group(gens, (n_out, n_in)).reshape(n_out, n_in)
        # reference orbit of every entry: apply all group elements (sympy enumerates them)
        group = to_sympy(gens, (n_out, n_in))
        for o, i in itertools.product(range(n_out), range(n_in)):
            orbit = {(g(o), g(n_out + i) - n_out) for g in group.generate()}
            same = {
                (a, b) for a in range(n_out) for b in range(n_in) if labels[a, b] == labels[o, i]
            }
            assert orbit == same


def test_sharing_from_group_accepts_lists_and_returns_canonical_int64():
    labels = sharing_from_group([([1, 0], [1, 0])], (2, 2))
    assert labels.dtype == np.int64
    assert labels.tolist() == [0, 1, 1, 0]


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("generators", "match"),
    [
        ([([0, 0, 1], [0, 1])], r"generators\[0\]\[0\].*not a permutation"),
        ([([0, 1, 2], [0, 2])], r"generators\[0\]\[1\].*value 2"),
        ([([0, 1, 2], [1, 0]), ([0, 1], [1, 0])], r"generators\[1\]\[0\].*length 3"),
        ([([0, 1, 2], [-1, 0])], r"generators\[0\]\[1\].*value -1"),
        ([([0.0, 1.0, 2.0], [0, 1])], r"generators\[0\]\[0\].*integers"),
        ([([0, 1, 2],)], r"generators\[0\] must be a pair"),
        ([5], r"generators\[0\] must be a pair"),
        ("abc", r"generators must be a list"),
        (3, r"generators must be a list"),
    ],
)
def test_sharing_from_group_rejects_bad_generators(generators, match):
    with pytest.raises(ValueError, match=match):
        sharing_from_group(generators, (3, 2))


def test_constructors_reject_bad_input():
    with pytest.raises(ValueError, match="square"):
        rotation_generators((3, 4))
    with pytest.raises(ValueError, match="square"):
        dihedral_generators((2, 3))
    with pytest.raises(ValueError, match="axis"):
        reflection_generators((3, 4), axis=2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        permutation_generators(0)
    with pytest.raises(ValueError, match="shape"):
        cyclic_shift_generators((2, 2, 2))
    assert reflection_generators((1, 4), axis=0) == []
    assert rotation_generators(1) == [] and dihedral_generators((1, 1)) == []


def test_shape_messages_say_what_is_wrong():
    # one shape check for the generators and the convolutions: a wrong length is named as such
    # (the generators' earlier message only repeated what a shape may be)
    with pytest.raises(ValueError, match=r"shape=\(2, 2, 2\) must have 1 or 2 dimensions, got 3\."):
        cyclic_shift_generators((2, 2, 2))
    with pytest.raises(ValueError, match=r"shape must be a positive int or a tuple of 1 or 2 "
                                         r"positive ints, got 'ab'\."):
        reflection_generators("ab")
    with pytest.raises(ValueError, match=r"side must describe a square image, got shape \(3, 4\)"):
        rotation_generators((3, 4))
