"""Tests for sharelearn.symmetry: group -> sharing -> group, and naming the group.

Independent references used here:

* ``sympy.combinatorics`` (installed with torch) for the order of the group a list of generators
  generates, for membership, and for abelian invariants of small groups;
* brute force over every pair of permutations of a small layer's outputs and inputs, for the
  largest group that keeps a partition (its exact order and elements);
* ``sharelearn.datasets.make_convolution`` for the sharing of a convolution.
"""

import itertools
import math
import re

import numpy as np
import pytest
from sympy.combinatorics import Permutation, PermutationGroup

from sharelearn import partition_distance
from sharelearn.datasets import make_convolution
from sharelearn.symmetry import (
    SymmetryGroup,
    cyclic_shift_generators,
    dihedral_generators,
    permutation_generators,
    reflection_generators,
    rotation_generators,
    sharing_from_group,
    shift_sharing,
    symmetry_group,
)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def to_sympy(generators, shape):
    """The generated group on n_out + n_in points (outputs first), via sympy."""
    n_out, n_in = shape
    perms = [
        Permutation(np.concatenate([np.asarray(a), n_out + np.asarray(b)]).tolist())
        for a, b in generators
    ]
    return PermutationGroup(perms or [Permutation(n_out + n_in - 1)])


def keeps(labels, shape, p_out, p_in):
    """Whether (p_out, p_in) maps every entry to an entry of the same group."""
    M = np.asarray(labels).reshape(shape)
    return bool(np.array_equal(M[np.ix_(p_out, p_in)], M))


def brute_force_group(labels, shape):
    """Every (p_out, p_in) keeping the partition (small layers only)."""
    n_out, n_in = shape
    M = np.asarray(labels).reshape(shape)
    outs = [np.array(p) for p in itertools.permutations(range(n_out))]
    ins = [np.array(p) for p in itertools.permutations(range(n_in))]
    return [(a, b) for a in outs for b in ins if np.array_equal(M[np.ix_(a, b)], M)]


def invariant_factor_name(primary):
    """Reference name of an abelian group from sympy's prime-power invariants."""
    by_prime = {}
    for q in primary:
        p = min(d for d in range(2, q + 1) if q % d == 0)
        by_prime.setdefault(p, []).append(q)
    cols = [sorted(v, reverse=True) for v in by_prime.values()]
    length = max((len(c) for c in cols), default=0)
    factors = [math.prod(c[i] for c in cols if i < len(c)) for i in range(length)]
    parts, i = [], 0
    while i < len(factors):
        j = i
        while j < len(factors) and factors[j] == factors[i]:
            j += 1
        parts += [f"C_{factors[i]}^{j - i}"] if j - i >= 3 else [f"C_{factors[i]}"] * (j - i)
        i = j
    return " x ".join(parts) if parts else "trivial"


def check_name_against_sympy(name, group):
    """The name is consistent with the group as sympy sees it (small groups only)."""
    order = group.order()
    if order == 1:
        assert name == "trivial"
        return
    if group.is_abelian:
        assert name == invariant_factor_name(group.abelian_invariants())
        return
    assert name != "trivial" and not name.startswith("C_")
    factors = [f.strip() for f in name.split(" x ")] if not name.startswith("order-") else []
    if not factors:
        assert name.startswith(f"order-{order} group acting on")
        return
    total = 1
    for f in factors:
        base, _, power = f.partition("^")
        count = int(power) if power else 1
        if base.startswith("S_"):
            total *= math.factorial(int(base[2:])) ** count
        elif base.startswith("A_"):
            total *= (math.factorial(int(base[2:])) // 2) ** count
        elif base.startswith("D_"):
            total *= (2 * int(base[2:])) ** count
        elif base.startswith("C_"):
            total *= int(base[2:]) ** count
        else:  # pragma: no cover - an unexpected name
            raise AssertionError(f"unexpected factor {f!r} in {name!r}")
    assert total == order, (name, order)
    if re.fullmatch(r"D_\d+", name):
        k = int(name[2:])
        assert any(g.order() == k for g in group.generate())
    if re.fullmatch(r"S_\d+", name):
        k = int(name[2:])
        assert any(len(orbit) == k for orbit in group.orbits())


def product_generators(out_gens, in_gens, shape):
    """A group acting on outputs and inputs independently: G_out x G_in."""
    n_out, n_in = shape
    gens = [(np.asarray(g), np.arange(n_in)) for g in out_gens]
    gens += [(np.arange(n_out), np.asarray(g)) for g in in_gens]
    return gens


def transposition_and_cycle(n):
    """Generators of S_n (none for n = 1)."""
    if n == 1:
        return []
    if n == 2:
        return [np.array([1, 0])]
    swap = np.arange(n)
    swap[[0, 1]] = [1, 0]
    return [swap, np.roll(np.arange(n), -1)]


# ---------------------------------------------------------------------------
# group -> sharing
# ---------------------------------------------------------------------------
def test_sharing_from_group_trivial_group_is_all_singletons():
    assert sharing_from_group([], (2, 3)).tolist() == [0, 1, 2, 3, 4, 5]


def test_sharing_from_group_orbits_match_sympy_orbits_of_pairs():
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
# round trips for every named family: group -> sharing -> group
# ---------------------------------------------------------------------------
def _families():
    cases = []
    for n in (2, 3, 5, 8):
        cases.append((f"shift-{n}", cyclic_shift_generators(n), (n, n), f"C_{n}"))
    for hw, name in [
        ((2, 4), "C_4 x C_2"),
        ((3, 3), "C_3 x C_3"),
        ((4, 4), "C_4 x C_4"),
        ((3, 5), "C_15"),
        ((4, 6), "C_12 x C_2"),
    ]:
        p = hw[0] * hw[1]
        cases.append((f"shift-{hw}", cyclic_shift_generators(hw), (p, p), name))
    for n in (2, 5, 6):
        cases.append((f"reflect-{n}", reflection_generators(n), (n, n), "C_2"))
    for axis in (0, 1):
        cases.append((f"reflect-3x4-{axis}", reflection_generators((3, 4), axis), (12, 12), "C_2"))
    for h in (2, 3, 4, 5):
        cases.append((f"rotate-{h}", rotation_generators(h), (h * h, h * h), "C_4"))
        cases.append((f"dihedral-{h}", dihedral_generators(h), (h * h, h * h), "D_4"))
    for n, name in [(1, "trivial"), (2, "C_2"), (3, "S_3"), (4, "S_4"), (6, "S_6")]:
        cases.append((f"sets-{n}", permutation_generators(n), (n, n), name))
    # independent actions on outputs and inputs: a direct product recognised through orbits
    for (m, n), name in [((3, 4), "S_4 x S_3"), ((2, 2), "C_2 x C_2"), ((1, 5), "S_5")]:
        gens = product_generators(transposition_and_cycle(m), transposition_and_cycle(n), (m, n))
        cases.append((f"all-shared-{m}x{n}", gens, (m, n), name))
    return cases


@pytest.mark.parametrize("case", _families(), ids=lambda c: c[0])
def test_round_trip_group_sharing_group(case):
    _, gens, shape, expected_name = case
    sharing = sharing_from_group(gens, shape)
    group = symmetry_group(sharing, shape)
    reference = to_sympy(gens, shape)

    assert isinstance(group, SymmetryGroup)
    assert group.order == reference.order()
    assert group.name == expected_name
    # same order and contains every original generator: the very same group
    recovered = group.as_permutation_group()
    assert recovered.order() == group.order
    for g in reference.generators:
        assert recovered.contains(g)
    # the recovered group's sharing is the input sharing
    again = group.sharing()
    assert partition_distance(again, sharing) == 0
    assert np.array_equal(again, sharing)
    for p_out, p_in in group.generators:
        assert keeps(sharing, shape, p_out, p_in)
    check_name_against_sympy(group.name, recovered)


def test_all_shared_layer_is_a_product_of_symmetric_groups():
    group = symmetry_group(np.zeros(12, dtype=int), (3, 4))
    assert group.name == "S_4 x S_3"
    assert group.order == 144
    assert symmetry_group(np.zeros(7, dtype=int), (1, 7)).name == "S_7"
    assert symmetry_group([0], (1, 1)).name == "trivial"


def test_identity_sharing_is_trivial():
    group = symmetry_group(np.arange(20), (4, 5))
    assert (group.name, group.order, group.generators) == ("trivial", 1, [])
    assert np.array_equal(group.sharing(), np.arange(20))


def test_repeated_factors_use_powers():
    # 9 x 9 layer, one group per 3 x 3 block: each block of outputs and of inputs is free
    o, i = np.indices((9, 9))
    group = symmetry_group((o // 3 * 3 + i // 3).ravel(), (9, 9))
    assert group.name == "S_3^6"
    assert group.order == 6**6


# ---------------------------------------------------------------------------
# the group is the largest one: brute force on small layers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (3, 4)])
def test_symmetry_group_matches_brute_force_on_random_partitions(shape):
    rng = np.random.default_rng(sum(shape))
    n_items = shape[0] * shape[1]
    for trial in range(40):
        if trial % 2:
            labels = rng.integers(0, rng.integers(1, 4), size=n_items)
        else:  # orbit partitions of random groups: more symmetry
            gens = [
                (rng.permutation(shape[0]), rng.permutation(shape[1]))
                for _ in range(rng.integers(1, 3))
            ]
            labels = sharing_from_group(gens, shape)
        group = symmetry_group(labels, shape)
        elements = brute_force_group(labels, shape)
        assert group.order == len(elements)
        for p_out, p_in in group.generators:
            assert keeps(labels, shape, p_out, p_in)
        reference = to_sympy(elements, shape)
        assert group.as_permutation_group().order() == reference.order()
        check_name_against_sympy(group.name, reference)


def test_group_can_be_larger_than_the_generating_group():
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


def test_unrecognised_groups_are_described():
    # circular 2-D convolution with a 1 x 2 kernel: each image row shifts on its own and the rows
    # can be permuted, C_3 wr S_3 of order 3^3 * 3! = 162
    labels = shift_sharing((3, 3), (1, 2), "circular")
    group = symmetry_group(labels, (9, 9))
    assert group.order == 162 == len(brute_force_group_small_rows(labels))
    assert group.name == "order-162 group acting on 9 outputs and 9 inputs"


def brute_force_group_small_rows(labels):
    """Elements of C_3 wr S_3 on a 3 x 3 image that keep ``labels`` (checked one by one)."""
    found = []
    grid = np.arange(9).reshape(3, 3)
    for rows in itertools.permutations(range(3)):
        for shifts in itertools.product(range(3), repeat=3):
            p = np.empty(9, dtype=int)
            for r in range(3):
                p[grid[r]] = grid[rows[r], (np.arange(3) + shifts[r]) % 3]
            assert keeps(labels, (9, 9), p, p)
            found.append(p)
    return found


# ---------------------------------------------------------------------------
# convolutions
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


@pytest.mark.parametrize("n", [3, 4, 7, 12])
def test_circular_convolution_group_is_cyclic_shift(n):
    for k in range(2, n + 1):
        labels = _conv_labels(n, k, "circular")
        group = symmetry_group(labels, (n, n))
        assert (group.name, group.order) == (f"C_{n}", n)
        shift = to_sympy(cyclic_shift_generators(n), (n, n))
        assert group.as_permutation_group().contains(shift.generators[0])


@pytest.mark.parametrize(("image", "name"), [((3, 3), "C_3 x C_3"), ((4, 6), "C_12 x C_2")])
def test_circular_2d_convolution_group_is_the_torus(image, name):
    p = image[0] * image[1]
    for kernel in [(2, 2), (2, 3), image]:
        group = symmetry_group(_conv_labels(image, kernel, "circular"), (p, p))
        assert (group.name, group.order) == (name, p)


def test_valid_convolution_has_no_symmetry():
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


def test_large_layers_are_named_quickly():
    n = 100
    deep_sets = symmetry_group(sharing_from_group(permutation_generators(n), (n, n)), (n, n))
    assert deep_sets.name == "S_100"
    assert deep_sets.order == math.factorial(100)
    shared = symmetry_group(np.zeros(n * n, dtype=int), (n, n))
    assert shared.name == "S_100 x S_100"
    assert shared.order == math.factorial(100) ** 2
    conv = symmetry_group(_conv_labels(n, 3, "circular"), (n, n))
    assert (conv.name, conv.order) == ("C_100", 100)
    for p_out, p_in in deep_sets.generators + shared.generators[:5] + conv.generators:
        assert keeps(np.zeros(n * n, dtype=int), (n, n), p_out, p_in)
    assert symmetry_group(np.arange(n * n), (n, n)).name == "trivial"


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
