"""Partitions of shareable items, selection matrices, and the partition distance.

A sharing scheme over ``P`` items is a partition of ``range(P)``. Everywhere in sharelearn a
partition is a 1-D integer array of group labels, one per item. Labels are arbitrary
non-negative integers on input; the *canonical form* numbers the groups ``0..r-1`` in the order
in which they first appear, so two label arrays describe the same partition exactly when their
canonical forms are equal.

The same partition as a *selection matrix* ``A`` (``P x r``, one 1 per row) maps shared values
to items: ``theta = A @ psi``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

from ._validation import check_int

__all__ = [
    "bell_number",
    "canonical_labels",
    "enumerate_partitions",
    "groups",
    "labels_to_selection",
    "n_groups",
    "partition_distance",
    "selection_to_labels",
]

# Above this many items a selection matrix is returned sparse unless asked otherwise.
_SPARSE_THRESHOLD = 10_000
# enumerate_partitions materialises Bell(n) rows; Bell(11) = 678,570 is the largest we allow.
_MAX_ENUMERATE = 11


def _as_labels(labels, name="labels"):
    """Validate a 1-D array of non-negative integer labels and return it as int64."""
    if sp.issparse(labels):
        raise ValueError(f"{name} must be a 1-D array of group labels, got a sparse matrix.")
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of group labels, got an array of shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"{name} must contain at least one item, got an empty array.")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold integer group labels, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must hold integer group labels, got NaN or infinity.")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer group labels, got non-integer values.")
    if arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative group labels, got {arr.min()}.")
    if arr.max() > np.iinfo(np.int64).max:
        # relabel instead of overflowing: only the partition matters, not the label values
        arr = np.unique(arr, return_inverse=True)[1].ravel()
    return arr.astype(np.int64, copy=False)


def canonical_labels(labels):
    """Renumber group labels ``0..r-1`` in order of first appearance.

    Parameters
    ----------
    labels : array-like of shape (n_items,)
        Non-negative integer group labels.

    Returns
    -------
    canonical : ndarray of shape (n_items,), dtype int64
        The same partition with groups numbered by first appearance.

    Examples
    --------
    >>> from sharelearn import canonical_labels
    >>> canonical_labels([7, 7, 2, 9, 2]).tolist()
    [0, 0, 1, 2, 1]
    """
    arr = _as_labels(labels)
    _, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
    # rank of each group's first appearance
    order = np.empty(first.size, dtype=np.int64)
    order[np.argsort(first, kind="stable")] = np.arange(first.size)
    return order[inverse.ravel()]


def n_groups(labels):
    """Number of groups in a partition.

    Examples
    --------
    >>> from sharelearn.partition import n_groups
    >>> n_groups([3, 3, 0, 5])
    3
    """
    return int(np.unique(_as_labels(labels)).size)


def groups(labels):
    """The items of each group, as index arrays in canonical group order.

    Examples
    --------
    >>> from sharelearn.partition import groups
    >>> [g.tolist() for g in groups([1, 0, 1, 2])]
    [[0, 2], [1], [3]]
    """
    canon = canonical_labels(labels)
    order = np.argsort(canon, kind="stable")
    bounds = np.cumsum(np.bincount(canon))[:-1]
    return np.split(order, bounds)


def labels_to_selection(labels, *, sparse=None, dtype=np.float64):
    """Hard selection matrix ``A`` (``n_items x n_groups``) of a partition.

    Row ``i`` has a single 1, in the column of item ``i``'s canonical group.

    Parameters
    ----------
    labels : array-like of shape (n_items,)
        Group labels.
    sparse : bool or None, default=None
        Return a ``scipy.sparse.csr_array``. ``None`` chooses sparse above 10,000 items.
    dtype : numpy dtype, default=float64

    Examples
    --------
    >>> from sharelearn import labels_to_selection
    >>> labels_to_selection([0, 1, 0], dtype=int)
    array([[1, 0],
           [0, 1],
           [1, 0]])
    """
    canon = canonical_labels(labels)
    n_items, r = canon.size, int(canon.max()) + 1
    if sparse is None:
        sparse = n_items > _SPARSE_THRESHOLD
    if sparse:
        data = np.ones(n_items, dtype=dtype)
        return sp.csr_array((data, (np.arange(n_items), canon)), shape=(n_items, r))
    A = np.zeros((n_items, r), dtype=dtype)
    A[np.arange(n_items), canon] = 1
    return A


def _as_selection(A, name, hard):
    if sp.issparse(A):
        A = sp.csr_array(A)
        values = A.data
        shape = A.shape
    else:
        A = np.asarray(A)
        values = A
        shape = A.shape
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D selection matrix, got shape {shape}.")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {shape}.")
    if values.dtype == bool:
        values = values.astype(np.int8)
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise ValueError(f"{name} must hold real numbers, got dtype {values.dtype}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must not contain NaN or infinity.")
    if hard:
        if np.any((values != 0) & (values != 1)):
            raise ValueError(f"{name} must be a hard selection matrix with 0/1 entries.")
        per_row = np.asarray(A.sum(axis=1)).ravel()
        bad = np.flatnonzero(per_row != 1)
        if bad.size:
            raise ValueError(
                f"{name} must have exactly one 1 per row (a hard selection matrix); "
                f"row {bad[0]} has {int(per_row[bad[0]])}."
            )
    return A


def selection_to_labels(A, *, hard=False):
    """Partition of a soft or hard selection matrix by row-wise argmax.

    Parameters
    ----------
    A : array-like or sparse matrix of shape (n_items, n_columns)
        Selection matrix. Soft rows (e.g. a row-softmax) are rounded to their largest entry;
        ties go to the lowest column.
    hard : bool, default=False
        Require every row to be one-hot and raise ``ValueError`` otherwise.

    Returns
    -------
    labels : ndarray of shape (n_items,)
        Canonical labels. Empty columns do not create groups.

    Examples
    --------
    >>> from sharelearn import selection_to_labels
    >>> selection_to_labels([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]).tolist()
    [0, 1, 0]
    """
    A = _as_selection(A, "A", hard)
    if sp.issparse(A):
        raw = np.asarray(A.argmax(axis=1)).ravel()
    else:
        raw = np.argmax(A, axis=1)
    return canonical_labels(raw)


def _to_partition(x, name):
    """Labels from either a label vector or a hard selection matrix."""
    if sp.issparse(x) or np.ndim(x) == 2:
        return selection_to_labels(_as_selection(x, name, hard=True))
    return canonical_labels(_as_labels(x, name))


def partition_distance(a, b):
    """Least number of items that must change group for partition ``a`` to equal ``b``.

    It equals ``P`` minus the largest total overlap of a one-to-one matching between the groups
    of ``a`` and those of ``b``. The matching is an assignment problem on the contingency table
    of the two partitions. The table is kept sparse, and the problem is split into the
    connected components of the groups' overlap graph, each solved exactly with the Hungarian
    method. Memory is ``O(P + r_a * r_b)`` at worst.

    Parameters
    ----------
    a, b : array-like of shape (n_items,) or (n_items, n_groups)
        Group labels, or hard selection matrices (dense or scipy sparse).

    Returns
    -------
    distance : int
        0 when the partitions are identical up to relabelling.

    Examples
    --------
    >>> from sharelearn import partition_distance
    >>> partition_distance([0, 0, 1, 1], [5, 5, 2, 2])
    0
    >>> partition_distance([0, 0, 0, 1], [0, 0, 1, 1])
    1
    """
    la = _to_partition(a, "a")
    lb = _to_partition(b, "b")
    if la.size != lb.size:
        raise ValueError(
            f"a and b must partition the same number of items, got {la.size} and {lb.size}."
        )
    ra, rb = int(la.max()) + 1, int(lb.max()) + 1
    # Non-zero cells of the contingency table.
    if ra * rb <= 4 * la.size + 1024:
        counts = np.bincount(la * rb + lb, minlength=ra * rb)
        cells = np.flatnonzero(counts)
        counts = counts[cells]
    else:
        cells, counts = np.unique(la * rb + lb, return_counts=True)
    rows, cols = np.divmod(cells, rb)

    # Groups linked by a non-zero overlap form components; matchings never gain across them.
    graph = sp.coo_array(
        (np.ones(cells.size, dtype=np.int8), (rows, ra + cols)), shape=(ra + rb, ra + rb)
    )
    _, component = connected_components(graph, directed=False)
    edge_comp = component[rows]
    edges_per_comp = np.bincount(edge_comp)
    single = edges_per_comp[edge_comp] == 1
    matched = int(counts[single].sum())
    if not np.all(single):
        multi = ~single
        order = np.argsort(edge_comp[multi], kind="stable")
        m_rows, m_cols = rows[multi][order], cols[multi][order]
        m_counts, m_comp = counts[multi][order], edge_comp[multi][order]
        starts = np.flatnonzero(np.r_[True, m_comp[1:] != m_comp[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], m_comp.size], strict=True):
            r_u, r_idx = np.unique(m_rows[lo:hi], return_inverse=True)
            c_u, c_idx = np.unique(m_cols[lo:hi], return_inverse=True)
            table = np.zeros((r_u.size, c_u.size), dtype=np.int64)
            table[r_idx, c_idx] = m_counts[lo:hi]
            ri, ci = linear_sum_assignment(table, maximize=True)
            matched += int(table[ri, ci].sum())
    return int(la.size - matched)


def bell_number(n):
    """Number of partitions of ``n`` items (the Bell number), exactly.

    Examples
    --------
    >>> from sharelearn.partition import bell_number
    >>> [bell_number(n) for n in range(7)]
    [1, 1, 2, 5, 15, 52, 203]
    """
    n = check_int(n, "n", min_value=0)
    row = [1]
    for _ in range(n):
        nxt = [row[-1]]
        for value in row:
            nxt.append(nxt[-1] + value)
        row = nxt
    return row[0]


def enumerate_partitions(n):
    """Every partition of ``n`` items, in canonical form, in lexicographic order.

    Parameters
    ----------
    n : int
        Number of items, 1 to 11 (``Bell(11) = 678,570`` rows).

    Returns
    -------
    partitions : ndarray of shape (bell_number(n), n), dtype int64
        One canonical label vector per row.

    Examples
    --------
    >>> from sharelearn.partition import enumerate_partitions
    >>> enumerate_partitions(3).tolist()
    [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [0, 1, 2]]
    """
    n = check_int(n, "n", min_value=1, max_value=_MAX_ENUMERATE)
    parts = np.zeros((1, 1), dtype=np.int64)
    top = np.zeros(1, dtype=np.int64)  # largest label used so far in each row
    for _ in range(1, n):
        # a row whose largest label is m extends with any label 0..m+1
        n_children = top + 2
        parent = np.repeat(np.arange(parts.shape[0]), n_children)
        offsets = np.arange(parent.size) - np.repeat(np.cumsum(n_children) - n_children, n_children)
        parts = np.column_stack([parts[parent], offsets])
        top = np.maximum(top[parent], offsets)
    return parts
