"""Tests for sharelearn.partition.

The partition distance (METHOD.md section 1) is the least number of items that must change group
for one partition to equal the other, i.e. ``P`` minus the largest total overlap of a one-to-one
matching between the groups. It is checked here against references written independently of the
module:

* brute force: the maximum over every permutation of the (zero-padded) contingency table;
* breadth-first search over single-item moves (a second, independent definition);
* ``scipy.optimize.linear_sum_assignment`` on a dense contingency table built with ``np.add.at``;
* block-structured partitions, whose distance is the sum of the blocks' distances.
"""

import itertools
import math
import warnings
from collections import deque
from functools import cache

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from sharelearn.partition import (
    bell_number,
    canonical_labels,
    enumerate_partitions,
    groups,
    labels_to_selection,
    n_groups,
    partition_distance,
    selection_to_labels,
)

# Hypothesis: no example database in the tree, no per-example deadline (first calls are slower).
SETTINGS = settings(deadline=None, database=None, max_examples=100)


# ---------------------------------------------------------------------------
# references written independently of the module
# ---------------------------------------------------------------------------
def ref_canonical(labels):
    """Canonical form by an explicit first-appearance dictionary."""
    first = {}
    return np.array([first.setdefault(v, len(first)) for v in np.asarray(labels).tolist()])


def same_partition(a, b):
    """True when two label vectors put the same items together."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist(), strict=True))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


@cache
def _permutations(n):
    return np.array(list(itertools.permutations(range(n))), dtype=np.intp)


def brute_distances(a_rows, b_rows, chunk=2000):
    """Distance of each row pair by trying every one-to-one matching of groups.

    ``a_rows`` and ``b_rows`` are ``(N, n)`` arrays of labels in ``0..n-1``. The ``n x n``
    contingency table has zero rows/columns for unused labels; a matching that pairs a group
    with an unused label scores 0 there, so the maximum over all ``n!`` permutations is the
    maximum over all injective matchings of the real groups.
    """
    a_rows, b_rows = np.atleast_2d(a_rows), np.atleast_2d(b_rows)
    n_pairs, n = a_rows.shape
    perms = _permutations(n)
    eye = np.eye(n, dtype=np.int64)
    out = np.empty(n_pairs, dtype=np.int64)
    for lo in range(0, n_pairs, chunk):
        ea, eb = eye[a_rows[lo : lo + chunk]], eye[b_rows[lo : lo + chunk]]
        table = np.einsum("pig,pih->pgh", ea, eb)  # (N, n, n) contingency tables
        overlap = table[:, np.arange(n), perms].sum(axis=-1).max(axis=-1)
        out[lo : lo + chunk] = n - overlap
    return out


def move_distances(n):
    """All-pairs least number of single-item moves between partitions of ``n`` items, by BFS.

    A move takes one item out of its group and puts it into another existing group or into a
    new group of its own.
    """

    def canon(t):
        return tuple(ref_canonical(t).tolist())

    def neighbours(state):
        labels = set(state)
        for i, current in enumerate(state):
            for target in labels | {max(labels) + 1}:
                if target != current:
                    yield canon(state[:i] + (target,) + state[i + 1 :])

    states = [tuple(row) for row in enumerate_partitions(n).tolist()]
    dist = {}
    for start in states:
        seen = {start: 0}
        queue = deque([start])
        while queue:
            s = queue.popleft()
            for t in neighbours(s):
                if t not in seen:
                    seen[t] = seen[s] + 1
                    queue.append(t)
        assert len(seen) == len(states)
        for end, d in seen.items():
            dist[start, end] = d
    return dist


def lsa_distance(a, b):
    """``P`` minus the optimal assignment on a dense contingency table."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    ri, ci = linear_sum_assignment(table, maximize=True)
    return int(a.size - table[ri, ci].sum())


def ref_bell(n):
    """Bell numbers by B(m+1) = sum_k C(m, k) B(k), in exact integers."""
    bell = [1]
    for m in range(n):
        bell.append(sum(math.comb(m, k) * bell[k] for k in range(m + 1)))
    return bell[n]


# ---------------------------------------------------------------------------
# hypothesis strategies
# ---------------------------------------------------------------------------
def label_lists(n, max_label=9):
    return st.lists(st.integers(0, max_label), min_size=n, max_size=n).map(
        lambda v: np.array(v, dtype=np.int64)
    )


def label_tuples(k, max_items=30):
    """``k`` label arrays over the same number of items."""
    return st.integers(1, max_items).flatmap(
        lambda n: st.integers(0, 9).flatmap(
            lambda m: st.tuples(*(label_lists(n, m) for _ in range(k)))
        )
    )


@st.composite
def relabelled(draw, labels):
    """The same partition with group labels sent through a random injective map."""
    canon = ref_canonical(labels)
    k = int(canon.max()) + 1
    dtype, high = draw(
        st.sampled_from(
            [
                (np.int64, 2**63 - 1),
                (np.uint64, 2**63 - 1),
                (np.int16, 2**15 - 1),
                (np.uint8, 255),
                (np.float64, 2**53),
                (np.float32, 2**24),
            ]
        )
    )
    values = draw(st.lists(st.integers(0, high), min_size=k, max_size=k, unique=True))
    return np.array(values, dtype=dtype)[canon]


# ---------------------------------------------------------------------------
# partition distance: exhaustive checks against the definitions
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.slow
def test_distance_all_pairs_match_brute_force(n):
    parts = enumerate_partitions(n)
    ia, ib = np.divmod(np.arange(len(parts) ** 2), len(parts))
    expected = brute_distances(parts[ia], parts[ib])
    got = np.array([partition_distance(parts[i], parts[j]) for i, j in zip(ia, ib, strict=True)])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_distance_random_pairs_of_six_items_match_brute_force():
    parts = enumerate_partitions(6)
    rng = np.random.default_rng(0)
    ia, ib = rng.integers(0, len(parts), size=(2, 3000))
    expected = brute_distances(parts[ia], parts[ib])
    got = np.array([partition_distance(parts[i], parts[j]) for i, j in zip(ia, ib, strict=True)])
    np.testing.assert_array_equal(got, expected)
    assert expected.max() >= 4  # the sample reaches far-apart pairs, not only near neighbours


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_distance_equals_least_number_of_single_item_moves(n):
    parts = enumerate_partitions(n)
    moves = move_distances(n)
    for a, b in itertools.product(parts, repeat=2):
        expected = moves[tuple(a.tolist()), tuple(b.tolist())]
        assert partition_distance(a, b) == expected
        # the two independent definitions agree with each other as well
        assert brute_distances(a, b)[0] == expected


def test_distance_small_examples():
    assert partition_distance([0], [7]) == 0
    assert partition_distance([0, 0, 1, 1], [1, 1, 0, 0]) == 0
    # one group against singletons: all but one item must move
    assert partition_distance(np.zeros(9, dtype=int), np.arange(9)) == 8
    # contingency table [[3, 1], [3, 0]]: taking the largest cell a0-b0 first matches 3 items,
    # the optimum a0-b1 + a1-b0 matches 4, so the distance is 3, not 4
    a = [0, 0, 0, 0, 1, 1, 1]
    b = [0, 0, 0, 1, 0, 0, 0]
    assert partition_distance(a, b) == brute_distances(a, b)[0] == 3
    assert isinstance(partition_distance(a, b), int)


# ---------------------------------------------------------------------------
# enumerate_partitions and bell_number
# ---------------------------------------------------------------------------
# Bell numbers B(0..10), OEIS A000110 (https://oeis.org/A000110).
BELL_A000110 = [1, 1, 2, 5, 15, 52, 203, 877, 4140, 21147, 115975]


def test_bell_numbers_match_oeis_a000110():
    assert [bell_number(n) for n in range(len(BELL_A000110))] == BELL_A000110
    assert bell_number(np.int64(5)) == 52


def test_bell_numbers_are_exact_for_large_n():
    for n in (11, 20, 40, 60):
        value = bell_number(n)
        assert isinstance(value, int)
        assert value == ref_bell(n)
    assert bell_number(11) == 678570


@pytest.mark.parametrize("n", range(1, 9))
def test_enumerate_partitions_lists_every_partition_once(n):
    parts = enumerate_partitions(n)
    assert parts.shape == (bell_number(n), n)
    assert parts.dtype == np.int64
    # distinct rows
    assert np.unique(parts, axis=0).shape[0] == parts.shape[0]
    # canonical: a restricted growth string, each label at most one above the prefix maximum
    assert np.all(parts[:, 0] == 0)
    prefix_max = np.maximum.accumulate(parts, axis=1)
    assert np.all(parts[:, 1:] <= prefix_max[:, :-1] + 1)
    # lexicographic order, as documented
    order = np.lexsort(parts.T[::-1])
    np.testing.assert_array_equal(order, np.arange(parts.shape[0]))
    if n <= 5:
        for row in parts:
            np.testing.assert_array_equal(canonical_labels(row), row)


def test_enumerate_partitions_matches_set_partitions_by_recursion():
    def set_partitions(items):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for part in set_partitions(rest):
            for i in range(len(part)):
                yield part[:i] + [[first] + part[i]] + part[i + 1 :]
            yield [[first]] + part

    for n in range(1, 7):
        expected = set()
        for part in set_partitions(list(range(n))):
            labels = [0] * n
            for g, block in enumerate(part):
                for item in block:
                    labels[item] = g
            expected.add(tuple(ref_canonical(labels).tolist()))
        assert {tuple(r) for r in enumerate_partitions(n).tolist()} == expected


# ---------------------------------------------------------------------------
# hypothesis: metric properties, invariances, bounds, input forms
# ---------------------------------------------------------------------------
@SETTINGS
@given(label_tuples(3))
@pytest.mark.slow
def test_distance_is_a_metric(abc):
    a, b, c = abc
    dab, dba = partition_distance(a, b), partition_distance(b, a)
    assert partition_distance(a, a) == 0
    assert dab == dba
    assert partition_distance(a, c) <= dab + partition_distance(b, c)
    assert (dab == 0) == np.array_equal(canonical_labels(a), canonical_labels(b))
    assert (dab == 0) == same_partition(a, b)


@SETTINGS
@given(label_tuples(2), st.data())
@pytest.mark.slow
def test_distance_is_invariant_to_relabelling(ab, data):
    a, b = ab
    d = partition_distance(a, b)
    a2, b2 = data.draw(relabelled(a)), data.draw(relabelled(b))
    assert partition_distance(a2, b) == d
    assert partition_distance(a, b2) == d
    assert partition_distance(a2, b2) == d
    np.testing.assert_array_equal(canonical_labels(a2), canonical_labels(a))
    assert n_groups(a2) == n_groups(a)


@SETTINGS
@given(label_tuples(2))
def test_distance_bounds(ab):
    a, b = ab
    d = partition_distance(a, b)
    assert 0 <= d <= a.size - 1
    # each move changes the number of groups by at most one
    assert d >= abs(n_groups(a) - n_groups(b))
    # pairing groups that carry the same raw label is one admissible matching
    assert d <= int(np.sum(a != b))
    # pairing only the largest overlapping pair is another
    table = np.zeros((a.max() + 1, b.max() + 1), dtype=int)
    np.add.at(table, (a, b), 1)
    assert d <= a.size - table.max()


@SETTINGS
@given(label_tuples(2, max_items=15))
def test_distance_matches_brute_force_on_random_labels(ab):
    a, b = ab
    a_c, b_c = ref_canonical(a), ref_canonical(b)
    if a.size <= 7:
        assert partition_distance(a, b) == brute_distances(a_c, b_c)[0]
    assert partition_distance(a, b) == lsa_distance(a, b)


SPARSE_FORMATS = [sp.csr_array, sp.csc_array, sp.coo_array, sp.csr_matrix, sp.lil_matrix]


@SETTINGS
@given(label_tuples(2), st.sampled_from(SPARSE_FORMATS), st.data())
@pytest.mark.slow
def test_distance_agrees_between_labels_and_selection_matrices(ab, fmt, data):
    a, b = ab
    d = partition_distance(a, b)
    A_dense = labels_to_selection(a, sparse=False)
    B_sparse = labels_to_selection(b, sparse=True)
    assert partition_distance(A_dense, b) == d
    assert partition_distance(a, B_sparse) == d
    assert partition_distance(A_dense, B_sparse) == d
    assert partition_distance(fmt(A_dense), fmt(B_sparse.toarray())) == d
    # a selection matrix is unique only up to its columns: permute them and add empty ones
    extra = data.draw(st.integers(0, 3))
    padded = np.hstack([A_dense, np.zeros((a.size, extra))])
    perm = np.array(data.draw(st.permutations(range(padded.shape[1]))))
    shuffled = padded[:, perm]
    assert partition_distance(shuffled, b) == d
    assert partition_distance(sp.csr_array(shuffled), b) == d
    assert partition_distance(shuffled.astype(bool), b) == d
    assert partition_distance(shuffled.astype(np.int8), b) == d
    np.testing.assert_array_equal(selection_to_labels(shuffled, hard=True), ref_canonical(a))


@SETTINGS
@given(label_tuples(1))
def test_canonical_labels_is_idempotent_and_preserves_the_partition(a):
    (a,) = a
    canon = canonical_labels(a)
    assert canon.dtype == np.int64
    assert canon.shape == a.shape
    np.testing.assert_array_equal(canon, ref_canonical(a))
    np.testing.assert_array_equal(canonical_labels(canon), canon)
    assert same_partition(a, canon)
    assert n_groups(a) == len(set(a.tolist())) == int(canon.max()) + 1


def test_canonical_labels_examples():
    np.testing.assert_array_equal(canonical_labels([7, 7, 2, 9, 2]), [0, 0, 1, 2, 1])
    np.testing.assert_array_equal(canonical_labels([5]), [0])
    np.testing.assert_array_equal(canonical_labels([3.0, 1.0, 3.0]), [0, 1, 0])
    big = np.array([2**62, 5, 2**62 + 1, 5], dtype=np.int64)
    np.testing.assert_array_equal(canonical_labels(big), [0, 1, 2, 1])


# ---------------------------------------------------------------------------
# conversions
# ---------------------------------------------------------------------------
@SETTINGS
@given(label_tuples(1), st.sampled_from([True, False]))
def test_selection_round_trip(a, sparse):
    (a,) = a
    A = labels_to_selection(a, sparse=sparse)
    canon = ref_canonical(a)
    assert A.shape == (a.size, len(set(a.tolist())))
    if sparse:
        assert sp.issparse(A)
        dense = A.toarray()
    else:
        assert isinstance(A, np.ndarray)
        dense = A
    assert dense.dtype == np.float64
    np.testing.assert_array_equal(dense, np.eye(A.shape[1])[canon])
    np.testing.assert_array_equal(selection_to_labels(A), canon)
    np.testing.assert_array_equal(selection_to_labels(A, hard=True), canon)


def test_labels_to_selection_sparse_default_threshold():
    rng = np.random.default_rng(1)
    at_threshold = labels_to_selection(rng.integers(0, 50, size=10_000))
    above = labels_to_selection(rng.integers(0, 50, size=10_001))
    assert isinstance(at_threshold, np.ndarray)
    assert sp.issparse(above)
    assert isinstance(labels_to_selection(np.arange(20_000) % 7, sparse=False), np.ndarray)
    assert sp.issparse(labels_to_selection([0, 1, 0], sparse=True))
    np.testing.assert_array_equal(selection_to_labels(above), canonical_labels(above.indices))


def test_labels_to_selection_dtype():
    A = labels_to_selection([2, 0, 2], dtype=int)
    assert A.dtype == np.dtype(int)
    np.testing.assert_array_equal(A, [[1, 0], [0, 1], [1, 0]])
    S = labels_to_selection([2, 0, 2], sparse=True, dtype=np.float32)
    assert S.dtype == np.float32
    np.testing.assert_array_equal(S.toarray(), A)


def test_soft_selection_argmax_ties_go_to_the_lowest_column():
    soft = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.1, 0.8, 0.1],
            [0.0, 0.5, 0.5],  # tie between columns 1 and 2 -> 1 (the second row's group)
            [0.4, 0.2, 0.4],  # tie between columns 0 and 2 -> 0 (the first row's group)
            [1 / 3, 1 / 3, 1 / 3],  # three-way tie -> 0
        ]
    )
    expected = [0, 1, 1, 0, 0]  # ties to the highest column would give [0, 1, 2, 2, 2]
    np.testing.assert_array_equal(selection_to_labels(soft), expected)
    np.testing.assert_array_equal(selection_to_labels(sp.csr_array(soft)), expected)
    # sparse rows whose stored entries are all negative: an implicit zero wins
    neg = sp.csr_array(np.array([[-1.0, 0.0, -2.0], [0.0, -1.0, -3.0], [2.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(selection_to_labels(neg), [0, 1, 1])
    # empty columns do not create groups
    np.testing.assert_array_equal(selection_to_labels([[0, 0, 1], [0, 1, 0], [0, 0, 1]]), [0, 1, 0])


@SETTINGS
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.integers(1, 5).flatmap(
            lambda m: st.lists(
                st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0]), min_size=m, max_size=m),
                min_size=n,
                max_size=n,
            )
        )
    ),
    st.sampled_from(SPARSE_FORMATS),
)
def test_soft_selection_dense_and_sparse_agree_with_first_argmax(rows, fmt):
    A = np.array(rows)
    expected = ref_canonical(np.argmax(A, axis=1))  # numpy returns the first maximum
    np.testing.assert_array_equal(selection_to_labels(A), expected)
    np.testing.assert_array_equal(selection_to_labels(fmt(A)), expected)


@SETTINGS
@given(label_tuples(1))
def test_groups_cover_every_item_once(a):
    (a,) = a
    gs = groups(a)
    canon = ref_canonical(a)
    assert len(gs) == n_groups(a) == canon.max() + 1
    np.testing.assert_array_equal(np.sort(np.concatenate(gs)), np.arange(a.size))
    for k, g in enumerate(gs):
        assert g.size > 0
        assert np.all(np.diff(g) > 0)
        assert np.all(canon[g] == k)
    # canonical group order: groups sorted by their first item
    assert [int(g[0]) for g in gs] == sorted(int(g[0]) for g in gs)


def test_groups_and_n_groups_examples():
    assert [g.tolist() for g in groups([1, 0, 1, 2])] == [[0, 2], [1], [3]]
    assert [g.tolist() for g in groups([4])] == [[0]]
    assert n_groups([3, 3, 0, 5]) == 3
    assert n_groups(np.arange(1000) * 7) == 1000
    assert isinstance(n_groups([1, 1]), int)


# ---------------------------------------------------------------------------
# large partitions and the connected-components path
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_large_random_partitions_match_dense_assignment():
    rng = np.random.default_rng(2)
    n_items = 200_000
    a = rng.integers(0, 300, size=n_items)
    b = rng.integers(0, 300, size=n_items)
    expected = lsa_distance(a, b)
    assert partition_distance(a, b) == expected
    # relabel with large values and check the selection-matrix route as well
    ids = rng.choice(2**62, size=300, replace=False)
    assert partition_distance(ids[a], b) == expected
    assert partition_distance(labels_to_selection(a), labels_to_selection(b)) == expected


def test_near_identical_partitions_with_many_singletons():
    rng = np.random.default_rng(3)
    n_items = 50_000
    a = np.arange(n_items)
    b = a.copy()
    # merge 40 random items into 7 groups; everything else stays a singleton
    chosen = rng.choice(n_items, size=40, replace=False)
    b[chosen] = b[chosen[rng.integers(0, 7, size=40)]]
    b[chosen[:7]] = chosen[:7]  # the 7 group heads keep their own label
    r_b = len(set(b.tolist()))
    # against all singletons, each group of b keeps one item: d = P - r_b
    assert partition_distance(a, b) == n_items - r_b
    assert partition_distance(b, a) == n_items - r_b
    perm = rng.permutation(n_items)
    assert partition_distance(a[perm], b[perm]) == n_items - r_b
    # near-identical but not all singletons: move 25 items of a 2-item-group partition
    c = np.arange(n_items) // 2
    d = c.copy()
    moved = rng.choice(n_items, size=25, replace=False)
    d[moved] = n_items + np.arange(25)  # each moved item into a fresh singleton
    assert partition_distance(c, d) == 25


def test_block_structured_partitions_sum_block_distances():
    """Blocks of items that no group crosses: the distance is the sum over blocks.

    Many blocks hold several groups on both sides, so the overlap graph has many multi-group
    components; singleton blocks keep the contingency table too large for a dense count.
    """
    rng = np.random.default_rng(4)
    a_parts, b_parts, expected = [], [], 0
    offset_a = offset_b = 0
    for _ in range(1500):
        size = int(rng.integers(1, 7))
        a_blk = ref_canonical(rng.integers(0, size, size=size))
        b_blk = ref_canonical(rng.integers(0, size, size=size))
        expected += int(brute_distances(a_blk, b_blk)[0])
        a_parts.append(a_blk + offset_a)
        b_parts.append(b_blk + offset_b)
        offset_a += a_blk.max() + 1
        offset_b += b_blk.max() + 1
    n_single = 20_000
    a_parts.append(offset_a + np.arange(n_single))
    b_parts.append(offset_b + np.arange(n_single))
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    assert expected > 500
    assert partition_distance(a, b) == expected
    # shuffle the items and relabel the groups: nothing may depend on contiguity or label order
    perm = rng.permutation(a.size)
    a_ids = rng.choice(2**62, size=a.max() + 1, replace=False)
    b_ids = rng.permutation(b.max() + 1)
    assert partition_distance(a_ids[a[perm]], b_ids[b[perm]]) == expected
    assert partition_distance(b[perm], a[perm]) == expected


def test_medium_components_match_dense_assignment():
    # a few dozen multi-group components of moderate size, checked against one dense assignment
    rng = np.random.default_rng(5)
    block = rng.integers(0, 30, size=20_000)
    a = block * 50 + rng.integers(0, 8, size=block.size)
    b = block * 50 + rng.integers(0, 6, size=block.size)
    expected = lsa_distance(a, b)
    assert partition_distance(a, b) == expected
    assert expected > 0


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
BAD_LABELS = [
    pytest.param(np.zeros((2, 2, 2), dtype=int), "1-D", id="3-D"),
    pytest.param(np.int64(3), "1-D", id="0-D"),
    pytest.param(np.array([], dtype=int), "at least one item", id="empty"),
    pytest.param([], "at least one item", id="empty-list"),
    pytest.param([0, -1, 2], "non-negative", id="negative"),
    pytest.param([0.0, 1.5], "non-integer", id="non-integer-float"),
    pytest.param([0.0, np.nan], "NaN", id="nan"),
    pytest.param([0.0, np.inf], "infinity", id="inf"),
    pytest.param(np.array(["a", "b"]), "dtype", id="string"),
    pytest.param(np.array([True, False]), "dtype", id="bool"),
    pytest.param(np.array([1 + 0j, 2 + 0j]), "dtype", id="complex"),
    pytest.param(np.array([0, None], dtype=object), "dtype", id="object"),
    pytest.param(sp.csr_array(np.array([[0, 1]])), "sparse", id="sparse"),
]


@pytest.mark.parametrize(("labels", "match"), BAD_LABELS)
def test_bad_labels_raise(labels, match):
    for func in (canonical_labels, n_groups, groups, labels_to_selection):
        with pytest.raises(ValueError, match=match):
            func(labels)


@pytest.mark.parametrize(("labels", "match"), BAD_LABELS[:-1])  # sparse input is a matrix there
def test_bad_labels_raise_in_partition_distance(labels, match):
    with pytest.raises(ValueError, match=match):
        partition_distance(labels, [0, 1])
    with pytest.raises(ValueError, match=match):
        partition_distance([0, 1], labels)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="same number of items"):
        partition_distance([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="same number of items"):
        partition_distance(labels_to_selection([0, 1, 1]), [0, 1])
    with pytest.raises(ValueError, match="same number of items"):
        partition_distance([0, 1], sp.csr_array(np.eye(3)))


NOT_ONE_HOT = [
    pytest.param(np.array([[1.0, 1.0], [0.0, 1.0]]), "exactly one 1 per row", id="two-ones"),
    pytest.param(np.array([[1.0, 0.0], [0.0, 0.0]]), "exactly one 1 per row", id="zero-ones"),
    pytest.param(np.array([[1.0, 0.0], [0.5, 0.5]]), "0/1 entries", id="half"),
    pytest.param(np.array([[1.0, 0.0], [2.0, 0.0]]), "0/1 entries", id="two"),
    pytest.param(np.array([[1.0, 0.0], [-1.0, 1.0]]), "0/1 entries", id="negative"),
    pytest.param(np.array([[1.0, 0.0], [np.nan, 1.0]]), "NaN", id="nan"),
]


@pytest.mark.parametrize("as_sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize(("A", "match"), NOT_ONE_HOT)
def test_non_hard_selection_matrices_raise(A, match, as_sparse):
    M = sp.csr_array(A) if as_sparse else A
    with pytest.raises(ValueError, match=match):
        selection_to_labels(M, hard=True)
    with pytest.raises(ValueError, match=match):
        partition_distance(M, [0, 1])
    with pytest.raises(ValueError, match=match):
        partition_distance([0, 1], M)


def test_soft_selection_accepts_soft_rows_but_not_nan():
    np.testing.assert_array_equal(selection_to_labels([[0.5, 0.5], [0.2, 0.8]]), [0, 1])
    for M in (np.array([[np.nan, 1.0]]), sp.csr_array(np.array([[np.nan, 1.0]]))):
        with pytest.raises(ValueError, match="NaN"):
            selection_to_labels(M)
    with pytest.raises(ValueError, match="at least one row"):
        selection_to_labels(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="2-D"):
        selection_to_labels(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="real numbers"):
        selection_to_labels(np.array([["a", "b"]]))


@pytest.mark.parametrize(
    ("func", "arg", "match"),
    [
        (enumerate_partitions, 0, ">= 1"),
        (enumerate_partitions, 12, "<= 11"),
        (enumerate_partitions, 2.5, "integer"),
        (enumerate_partitions, True, "integer"),
        (bell_number, -1, ">= 0"),
        (bell_number, 3.0, "integer"),
    ],
)
def test_bad_sizes_raise(func, arg, match):
    with pytest.raises(ValueError, match=match):
        func(arg)


def test_inputs_are_not_mutated():
    rng = np.random.default_rng(6)
    inputs = [
        rng.integers(3, 9, size=50),
        rng.integers(3, 9, size=50).astype(np.float64),
        rng.integers(3, 9, size=50).astype(np.uint16),
    ]
    other = rng.integers(0, 4, size=50)
    for labels in inputs:
        before = labels.copy()
        canon = canonical_labels(labels)
        assert not np.shares_memory(canon, labels)
        n_groups(labels)
        groups(labels)
        labels_to_selection(labels, sparse=False)
        labels_to_selection(labels, sparse=True)
        partition_distance(labels, other)
        partition_distance(other, labels)
        np.testing.assert_array_equal(labels, before)
        assert labels.dtype == before.dtype
    soft = rng.random((50, 4))
    soft_before = soft.copy()
    selection_to_labels(soft)
    np.testing.assert_array_equal(soft, soft_before)
    hard = labels_to_selection(other, sparse=False)
    hard_sparse = sp.csr_array(hard)
    hard_before, sparse_before = hard.copy(), hard_sparse.copy()
    partition_distance(hard, hard_sparse)
    selection_to_labels(hard_sparse, hard=True)
    np.testing.assert_array_equal(hard, hard_before)
    assert (hard_sparse != sparse_before).nnz == 0
    np.testing.assert_array_equal(hard_sparse.indices, sparse_before.indices)


# ---------------------------------------------------------------------------
# labels at or above 2**63 must keep their groups apart (no int64 overflow)
# ---------------------------------------------------------------------------
def test_float_labels_beyond_int64_keep_groups_apart_or_raise():
    labels = np.array([1e19, 2e19, 1e19])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        canon = canonical_labels(labels)
    np.testing.assert_array_equal(canon, [0, 1, 0])


def test_uint64_labels_beyond_int64_in_partition_distance():
    labels = np.array([2**63, 1, 2**64 - 1], dtype=np.uint64)
    assert partition_distance(labels, [0, 1, 2]) == 0
