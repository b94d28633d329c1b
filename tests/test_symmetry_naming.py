"""Tests for sharelearn.symmetry.naming: the names symmetry_group gives, checked independently.

Independent references: ``sympy.combinatorics`` (orders, membership and abelian invariants of
small groups) and brute force over every pair of permutations of a small layer's outputs and
inputs (the largest group that keeps a partition, with its exact order and elements).
"""

import itertools
import math
import re

import numpy as np
import pytest

from sharelearn import partition_distance
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
def keeps(labels, shape, p_out, p_in):
    """Whether (p_out, p_in) maps every entry to an entry of the same group."""
    M = np.asarray(labels).reshape(shape)
    return bool(np.array_equal(M[np.ix_(p_out, p_in)], M))


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
    torus = re.fullmatch(r"p1 on the (\d+) x (\d+) torus", name)
    if torus:  # the translations of an h x w torus: C_h x C_w
        h, w = int(torus[1]), int(torus[2])
        assert group.is_abelian and order == h * w
        assert sorted(group.abelian_invariants()) == sorted(
            q for side in (h, w) for q in prime_powers(side))
        return
    if name in ("D_1", "D_2"):  # one or two reflections of an image
        assert group.is_abelian and group.abelian_invariants() == [2] * int(name[2:])
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


def prime_powers(n):
    """The prime-power factors of ``n`` (``12 -> [4, 3]``)."""
    out, p = [], 2
    while n > 1:
        q = 1
        while n % p == 0:
            n //= p
            q *= p
        if q > 1:
            out.append(q)
        p += 1
    return out


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
# round trips for every named family: group -> sharing -> group
# ---------------------------------------------------------------------------
def _families():
    cases = []
    for n in (2, 3, 5, 8):
        cases.append((f"shift-{n}", cyclic_shift_generators(n), (n, n), f"C_{n}"))
    for hw, name in [
        ((2, 4), "C_4 x C_2"),  # too narrow for a torus with reflections: named as a group
        ((3, 3), "p1 on the 3 x 3 torus"),
        ((4, 4), "p1 on the 4 x 4 torus"),
        ((3, 5), "p1 on the 3 x 5 torus"),
        ((4, 6), "p1 on the 4 x 6 torus"),
    ]:
        p = hw[0] * hw[1]
        cases.append((f"shift-{hw}", cyclic_shift_generators(hw), (p, p), name))
    for n in (2, 5, 6):
        cases.append((f"reflect-{n}", reflection_generators(n), (n, n), "C_2"))
    for axis in (0, 1):
        cases.append((f"reflect-3x4-{axis}", reflection_generators((3, 4), axis), (12, 12), "D_1"))
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
def test_round_trip_group_sharing_group(case, to_sympy):
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


@pytest.mark.slow
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
def test_symmetry_group_matches_brute_force_on_random_partitions(
    shape, to_sympy, brute_force_group
):
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


@pytest.mark.slow
def test_large_layers_are_named_quickly():
    n = 100
    deep_sets = symmetry_group(sharing_from_group(permutation_generators(n), (n, n)), (n, n))
    assert deep_sets.name == "S_100"
    assert deep_sets.order == math.factorial(100)
    shared = symmetry_group(np.zeros(n * n, dtype=int), (n, n))
    assert shared.name == "S_100 x S_100"
    assert shared.order == math.factorial(100) ** 2
    conv = symmetry_group(shift_sharing(n, 3, "circular"), (n, n))
    assert (conv.name, conv.order) == ("C_100", 100)
    for p_out, p_in in deep_sets.generators + shared.generators[:5] + conv.generators:
        assert keeps(np.zeros(n * n, dtype=int), (n, n), p_out, p_in)
    assert symmetry_group(np.arange(n * n), (n, n)).name == "trivial"
