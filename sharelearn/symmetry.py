"""Name the symmetry behind a parameter-sharing scheme: group -> sharing -> group.

A linear layer with ``n_in`` inputs and ``n_out`` outputs has ``n_out * n_in`` weight entries,
numbered row-major (entry ``(o, i)`` is item ``o * n_in + i``). A permutation group acting on the
outputs and on the inputs acts on the entries by ``(o, i) -> (p_out[o], p_in[i])``, and the layer
is equivariant to the group exactly when its weights are constant on the orbits of that action
(Ravanbakhsh et al., 2017; METHOD.md section 4). This module goes both ways:

* :func:`sharing_from_group` turns generators of a group into its *orbit partition* (a sharing
  scheme, in canonical labels);
* :func:`symmetry_group` turns a sharing scheme into the *largest* group it is equivariant to,
  with its exact order, a generating set and a readable name (``"C_100"``, ``"D_4"``,
  ``"S_100 x S_100"``, ...).

Named generating sets for the usual layouts (a layer ``n -> n`` or ``h x w -> h x w`` whose
outputs and inputs share one layout) are given by :func:`cyclic_shift_generators`,
:func:`reflection_generators`, :func:`rotation_generators`, :func:`dihedral_generators` and
:func:`permutation_generators`. :func:`shift_sharing` gives the sharing of a convolution directly,
for every mode of :func:`sharelearn.datasets.make_convolution`; it equals that function's labels.

Conventions
-----------
* A permutation is an integer array with ``perm[i]`` the image of ``i``.
* A generator is a pair ``(out_perm, in_perm)``; a group is given by a list of generators.
* Images are flattened row-major, on the output side and on the input side, as in
  :func:`sharelearn.datasets.make_convolution`.

The group of a sharing
----------------------
The symmetry group of a partition of the ``n_out x n_in`` entries is the set of pairs
``(p_out, p_in)`` with ``label[p_out[o], p_in[i]] == label[o, i]`` for every entry: the
colour-preserving automorphisms of the complete bipartite graph ``K_{n_out, n_in}`` whose edges
are coloured by group, that map outputs to outputs and inputs to inputs. Colours are never
permuted: a symmetry must keep every entry in its own group. The group is *the largest* one the
sharing is equivariant to. Its orbit partition refines the sharing (each orbit lies inside one
group) and equals it exactly when the sharing is an orbit partition; the zero group of a
convolution with a kernel smaller than the input, for example, merges several orbits. The group can
also be larger than a group the sharing was built from, e.g. when that group acts on the outputs
and on the inputs independently, leaving whole blocks of entries shared. Two consequences worth
knowing:

* a *valid* (non-circular) convolution is not invariant under any translation of a finite index
  set: every kernel tap ties output ``o`` to input ``o + t``, and keeping two taps forces both
  permutations to be the identity along that axis. The group of a valid convolution's sharing is
  therefore trivial as soon as the kernel has at least two taps along every axis longer than one.
  A kernel with a single tap along an axis lets the lines along that axis be permuted together on
  outputs and inputs (a 1-D one-tap kernel is a diagonal sharing: ``S_n``). Translation is a
  *partial* symmetry of such a layer, which is why :func:`shift_sharing` builds its sharing
  directly rather than from a group. The same holds for ``'same'`` zero padding;
* a *circular* convolution is invariant under the cyclic shifts, and, when the kernel has at least
  two taps along every axis longer than one, under nothing else: its group is ``C_n`` (1-D) or
  ``C_h x C_w`` (2-D), written in invariant-factor form (``C_15`` for ``3 x 5``, ``C_12 x C_2``
  for ``4 x 6``). A one-tap kernel gives ``S_n`` again; a ``1 x k`` kernel on an image gives a
  larger (wreath-product) group, reported by its order.

Library choice
--------------
The automorphism search uses ``igraph``'s binding of **bliss** (Junttila and Kaski), through
``Graph.automorphism_group`` (a generating set) and ``Graph.count_automorphisms`` (the exact order,
computed with multi-precision integers). bliss accepts vertex colours but not edge colours, so the
coloured bipartite graph is encoded in *layers*: with the ``r`` groups numbered ``0..r-1`` (the
largest group gets ``0``), ``L = max(1, ceil(log2 r))`` copies of the ``n_out + n_in`` vertices
are stacked, copy ``b`` of output ``o`` is joined to copy ``b`` of input ``i`` when bit ``b`` of
the entry's group is set, and the copies of each vertex are joined in a path. Vertex colours tell
the layers and the two sides apart, so an automorphism of the layered graph moves whole columns of
copies and keeps every bit of every entry's group: it is exactly a colour-preserving symmetry of
the layer. The graph has ``L (n_out + n_in)`` vertices, 2,800 for a 100 x 100 layer whose entries
are all different.

Measured on this machine (see ``benchmarks/bench_symmetry.py``), every 100 x 100 case takes well
under a second. The alternatives were measured or ruled out first:

* ``sympy.combinatorics`` (already installed with torch) computes orders by Schreier-Sims; from
  the 198 generators bliss returns for ``S_100 x S_100`` it needed 930 s for ``.order()``
  (124 s for ``S_100``), against 0.01 s for bliss's count. sympy is therefore not used on large
  groups; :meth:`SymmetryGroup.as_permutation_group` still hands the result to sympy for further
  group arithmetic on small groups, and the tests use it as an independent reference;
* ``networkx``'s ``GraphMatcher`` enumerates automorphisms one by one: ``100!`` of them for a
  Deep Sets layer;
* ``pynauty`` ships no wheel for current Python versions (a source build needs a C tool chain),
  while ``igraph`` ships ``abi3`` wheels for Linux, macOS and Windows.

Naming
------
Group names are found from the generators and exact orders only, never by listing the elements of
a large group. Pointwise stabilisers are automorphism groups of the same graph with some vertices
given colours of their own, so bliss answers those questions too. The recognised structures:

* ``"trivial"``;
* abelian groups, in invariant-factor form: ``C_n`` (cyclic: the exponent, the lcm of the
  generators' orders, equals the order), ``C_p^k`` (all generators of one prime order ``p``),
  ``C_12 x C_2`` in general (from the counts of elements with ``x^(p^j) = 1``, on groups small
  enough to list);
* ``S_k`` and ``A_k``: order ``k!`` (``k!/2``) acting faithfully on an orbit of ``k`` points;
* ``D_k`` (order ``2k``, ``k >= 3``): an element ``r`` of order ``k`` and a generator ``s``
  outside ``<r>`` with ``s^2 = 1`` and ``s r s^-1 = r^-1`` (on groups small enough to list);
  ``S_3`` is reported as ``S_3`` rather than ``D_3``;
* direct products ``G_A x G_B`` where the orbits split into two sets ``A`` and ``B`` with
  ``|G| = |G_(A)| |G_(B)|`` (``G_(X)`` fixes ``X`` pointwise); each factor is named recursively
  as ``G_(B)``, which acts faithfully on ``A`` like ``G`` restricted to ``A``. Abelian factors are
  merged into one invariant-factor list;
* anything else is described, e.g. ``"order-48 group acting on 8 outputs and 8 inputs"`` (the
  counts are of the outputs and inputs the group moves).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ._validation import check_int
from .datasets import _check_conv_geometry
from .partition import _as_labels, canonical_labels

__all__ = [
    "named_sharing",
    "SymmetryGroup",
    "cyclic_shift_generators",
    "dihedral_generators",
    "permutation_generators",
    "reflection_generators",
    "rotation_generators",
    "sharing_from_group",
    "shift_sharing",
    "symmetry_group",
]

# Groups are listed element by element (to tell D_k and abelian invariants) only while
# order * n_moved_points stays below this.
_ENUMERATE_BUDGET = 4_000_000
# Direct-product splits: every subset of the orbits is tried up to this many orbits; beyond it
# only outputs-versus-inputs and one orbit against the rest.
_ALL_SPLITS_MAX_ORBITS = 6
# At most this many stabiliser orders are asked for while looking for direct-product splits;
# past it the remaining factors are described rather than named.
_SPLIT_BUDGET = 2_000
# bliss splitting heuristic: first largest non-singleton cell.
_BLISS_HEURISTIC = "fl"

_CONV_MODES = ("valid", "same", "circular")


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _check_layer_shape(shape, name="shape"):
    """``(n_out, n_in)`` as a pair of positive Python ints."""
    expected = f"{name} must be a pair (n_out, n_in) of positive integers, got {shape!r}."
    if isinstance(shape, (str, bytes)) or isinstance(shape, numbers.Number):
        raise ValueError(expected)
    try:
        items = tuple(shape)
    except TypeError:
        raise ValueError(expected) from None
    if len(items) != 2:
        raise ValueError(expected)
    return tuple(check_int(v, f"{name}[{d}]", min_value=1) for d, v in enumerate(items))


def _check_image_shape(shape, name):
    """An int ``n`` or a tuple ``(n,)`` / ``(h, w)`` of positive ints, as a tuple."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        return (check_int(shape, name, min_value=1),)
    expected = f"{name} must be a positive int or a tuple of 1 or 2 positive ints, got {shape!r}."
    if isinstance(shape, (str, bytes)):
        raise ValueError(expected)
    try:
        items = tuple(shape)
    except TypeError:
        raise ValueError(expected) from None
    if len(items) not in (1, 2):
        raise ValueError(expected)
    return tuple(check_int(v, f"{name}[{d}]", min_value=1) for d, v in enumerate(items))


def _check_square_side(side, name="side"):
    """The side of a square image: an int ``h`` or a pair ``(h, h)``."""
    dims = _check_image_shape(side, name)
    if len(dims) == 2 and dims[0] != dims[1]:
        raise ValueError(f"{name} must describe a square image, got shape {dims}.")
    return dims[0]


def _check_permutation(perm, size, name):
    """A permutation of ``range(size)`` as an int64 array, or ``ValueError`` naming ``name``."""
    arr = np.asarray(perm)
    if arr.ndim != 1 or arr.size != size:
        raise ValueError(
            f"{name} must be a 1-D array of length {size}, got an array of shape {arr.shape}."
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} is not a permutation of 0..{size - 1}: it contains the value {bad}."
        )
    counts = np.bincount(arr, minlength=size)
    if counts.max() > 1:
        raise ValueError(
            f"{name} is not a permutation of 0..{size - 1}: the value "
            f"{int(np.argmax(counts))} appears {int(counts.max())} times."
        )
    return arr


def _check_generators(generators, shape):
    """A list of validated ``(out_perm, in_perm)`` int64 pairs."""
    n_out, n_in = shape
    if isinstance(generators, (str, bytes)) or (
        isinstance(generators, np.ndarray) and generators.ndim != 3
    ):
        raise ValueError(
            "generators must be a list of (output permutation, input permutation) pairs."
        )
    try:
        items = list(generators)
    except TypeError:
        raise ValueError(
            "generators must be a list of (output permutation, input permutation) pairs, "
            f"got {type(generators).__name__}."
        ) from None
    checked = []
    for k, pair in enumerate(items):
        if isinstance(pair, (str, bytes)):
            raise ValueError(f"generators[{k}] must be a pair (out_perm, in_perm), got {pair!r}.")
        try:
            parts = list(pair)
        except TypeError:
            raise ValueError(
                f"generators[{k}] must be a pair (out_perm, in_perm), got {pair!r}."
            ) from None
        if len(parts) != 2:
            raise ValueError(
                f"generators[{k}] must be a pair (out_perm, in_perm), got {len(parts)} items."
            )
        p_out = _check_permutation(parts[0], n_out, f"generators[{k}][0] (output permutation)")
        p_in = _check_permutation(parts[1], n_in, f"generators[{k}][1] (input permutation)")
        checked.append((p_out, p_in))
    return checked


# ---------------------------------------------------------------------------
# group -> sharing
# ---------------------------------------------------------------------------
def sharing_from_group(generators, shape):
    """Orbit partition of the weight entries under the group generated by ``generators``.

    Entry ``(o, i)`` of an ``n_out x n_in`` weight matrix (item ``o * n_in + i``) is moved by
    a generator ``(p_out, p_in)`` to ``(p_out[o], p_in[i])``. The orbits of the generated group
    are the connected components of the graph joining every entry to its image under every
    generator (a finite group contains the inverses of its generators as powers), found with
    ``scipy.sparse.csgraph.connected_components`` in ``O(n_out * n_in * n_generators)``.

    Parameters
    ----------
    generators : list of (array-like, array-like)
        Pairs ``(out_perm, in_perm)`` of permutations of ``range(n_out)`` and ``range(n_in)``;
        ``perm[i]`` is the image of ``i``. An empty list stands for the trivial group.
    shape : tuple of int
        ``(n_out, n_in)``.

    Returns
    -------
    labels : ndarray of shape (n_out * n_in,), dtype int64
        Canonical labels of the orbits (see :func:`sharelearn.partition.canonical_labels`).

    Raises
    ------
    ValueError
        If ``shape`` is not a pair of positive ints, or a generator is not a pair of
        permutations of the right lengths.

    Examples
    --------
    Cyclic shifts of a 3 -> 3 layer tie the entries by their offset ``(i - o) mod 3``:

    >>> import numpy as np
    >>> from sharelearn.symmetry import sharing_from_group
    >>> shift = np.array([1, 2, 0])
    >>> sharing_from_group([(shift, shift)], (3, 3)).reshape(3, 3)
    array([[0, 1, 2],
           [2, 0, 1],
           [1, 2, 0]])
    """
    shape = _check_layer_shape(shape)
    gens = _check_generators(generators, shape)
    n_out, n_in = shape
    n_items = n_out * n_in
    if not gens:
        return np.arange(n_items, dtype=np.int64)
    source = np.arange(n_items, dtype=np.int64)
    targets = [(p_out[:, None] * n_in + p_in[None, :]).ravel() for p_out, p_in in gens]
    rows = np.tile(source, len(gens))
    cols = np.concatenate(targets)
    graph = sp.coo_array(
        (np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n_items, n_items)
    )
    _, component = connected_components(graph, directed=True, connection="weak")
    return canonical_labels(component)


# ---------------------------------------------------------------------------
# named generating sets
# ---------------------------------------------------------------------------
def _pairs(perms):
    """The same permutation on outputs and inputs (a layer ``n -> n`` with one layout)."""
    return [(p.astype(np.int64), p.astype(np.int64).copy()) for p in perms]


def cyclic_shift_generators(shape):
    """Generators of the cyclic shifts of a layer ``n -> n`` or ``h x w -> h x w``.

    Each generator shifts one axis by one step, periodically, on the outputs and on the inputs
    at once: the group is ``C_n`` (1-D) or ``C_h x C_w`` (2-D), the symmetry of a circular
    convolution.

    Parameters
    ----------
    shape : int or tuple of int
        ``n`` (or ``(n,)``) for sequences, ``(h, w)`` for images flattened row-major.

    Returns
    -------
    generators : list of (ndarray, ndarray)
        One ``(out_perm, in_perm)`` pair per axis longer than 1.

    Examples
    --------
    >>> from sharelearn.symmetry import cyclic_shift_generators
    >>> [g[0].tolist() for g in cyclic_shift_generators(4)]
    [[1, 2, 3, 0]]
    >>> len(cyclic_shift_generators((3, 5)))
    2
    """
    dims = _check_image_shape(shape, "shape")
    grid = np.arange(math.prod(dims)).reshape(dims)
    # roll by -1: the entry at position x holds x + 1, i.e. x is sent to x + 1
    perms = [np.roll(grid, -1, axis=a).ravel() for a in range(len(dims)) if dims[a] > 1]
    return _pairs(perms)


def reflection_generators(shape, axis=-1):
    """Generator of the reflection of a layer ``n -> n`` or ``h x w -> h x w``.

    Position ``x`` along ``axis`` goes to ``n - 1 - x`` on the outputs and on the inputs at
    once (a group of order 2, ``C_2``).

    Parameters
    ----------
    shape : int or tuple of int
        ``n`` for sequences, ``(h, w)`` for images flattened row-major.
    axis : int, default=-1
        The axis that is reversed (``0``: rows, upside down; ``1`` or ``-1``: columns, left to
        right).

    Returns
    -------
    generators : list of (ndarray, ndarray)
        One pair, or none when the axis has length 1 (nothing moves).

    Examples
    --------
    >>> from sharelearn.symmetry import reflection_generators
    >>> reflection_generators(4)[0][0].tolist()
    [3, 2, 1, 0]
    >>> reflection_generators((2, 3), axis=0)[0][0].tolist()
    [3, 4, 5, 0, 1, 2]
    """
    dims = _check_image_shape(shape, "shape")
    ndim = len(dims)
    axis = check_int(axis, "axis", min_value=-ndim, max_value=ndim - 1) % ndim
    if dims[axis] == 1:
        return []
    grid = np.arange(math.prod(dims)).reshape(dims)
    return _pairs([np.flip(grid, axis=axis).ravel()])


def _rotation(side):
    """Rotation by 90 degrees of a ``side x side`` image: ``(r, c) -> (c, side - 1 - r)``."""
    grid = np.arange(side * side).reshape(side, side)
    r, c = np.indices((side, side))
    return grid[c, side - 1 - r].ravel()


def rotation_generators(side):
    """Generator of the rotations by 90 degrees of a layer ``h x h -> h x h``.

    Pixel ``(r, c)`` goes to ``(c, h - 1 - r)`` on the outputs and on the inputs at once: the
    cyclic group ``C_4`` (for ``h >= 2``).

    Parameters
    ----------
    side : int or tuple of int
        ``h``, or the square shape ``(h, h)``.

    Returns
    -------
    generators : list of (ndarray, ndarray)
        One pair, or none for a 1 x 1 image.

    Examples
    --------
    >>> from sharelearn.symmetry import rotation_generators
    >>> rotation_generators(2)[0][0].tolist()
    [1, 3, 0, 2]
    """
    side = _check_square_side(side)
    if side == 1:
        return []
    return _pairs([_rotation(side)])


def dihedral_generators(side):
    """Generators of the symmetries of the square on a layer ``h x h -> h x h``.

    The rotation by 90 degrees and the left-right reflection generate the dihedral group
    ``D_4`` of order 8 (for ``h >= 2``), acting on the outputs and the inputs at once.

    Parameters
    ----------
    side : int or tuple of int
        ``h``, or the square shape ``(h, h)``.

    Returns
    -------
    generators : list of (ndarray, ndarray)
        Two pairs, or none for a 1 x 1 image.

    Examples
    --------
    >>> from sharelearn.symmetry import dihedral_generators, sharing_from_group
    >>> gens = dihedral_generators(3)
    >>> len(gens), int(sharing_from_group(gens, (9, 9)).max()) + 1
    (2, 15)
    """
    side = _check_square_side(side)
    if side == 1:
        return []
    grid = np.arange(side * side).reshape(side, side)
    return _pairs([_rotation(side), np.flip(grid, axis=1).ravel()])


def permutation_generators(n):
    """Generators of the symmetric group ``S_n`` permuting a set layer ``n -> n``.

    The same permutation acts on the outputs and on the inputs (Deep Sets). Its orbit
    partition has two groups: the diagonal and the rest. The transposition of the first two
    positions and the cycle through all positions generate ``S_n``.

    Parameters
    ----------
    n : int
        Number of set elements; at least 1.

    Returns
    -------
    generators : list of (ndarray, ndarray)
        Two pairs (one for ``n = 2``, none for ``n = 1``).

    Examples
    --------
    >>> from sharelearn.symmetry import permutation_generators, sharing_from_group
    >>> sharing_from_group(permutation_generators(3), (3, 3)).reshape(3, 3)
    array([[0, 1, 1],
           [1, 0, 1],
           [1, 1, 0]])
    """
    n = check_int(n, "n", min_value=1)
    if n == 1:
        return []
    swap = np.arange(n)
    swap[[0, 1]] = [1, 0]
    if n == 2:
        return _pairs([swap])
    return _pairs([swap, np.roll(np.arange(n), -1)])


# ---------------------------------------------------------------------------
# convolution sharing, built directly
# ---------------------------------------------------------------------------
def _check_conv(input_shape, kernel_size, mode):
    # one validation for convolution geometry, shared with the data generator
    return _check_conv_geometry(input_shape, kernel_size, mode)


def shift_sharing(input_shape, kernel_size, mode="valid"):
    """Sharing scheme of a 1-D or 2-D convolution, built directly from offsets.

    Entry ``(o, i)`` of the ``n_out x n_in`` weight matrix belongs to kernel tap ``t`` when,
    along every axis, ``t = i - o + pad`` (``'valid'``: ``pad = 0``; ``'same'``:
    ``pad = (k - 1) // 2``) or ``t = (i - o) mod n`` (``'circular'``) lies in ``0..k-1``;
    entries no tap reaches (the structural zeros) form one more group. This is the convention
    of :func:`sharelearn.datasets.make_convolution`, ``y[o] = sum_t k[t] x[o + t - pad]``
    (indices modulo ``n`` for ``'circular'``), and the labels are equal to that function's.

    Why not an orbit partition? The translations of a valid (or zero-padded) convolution move
    index ``o`` to ``o + 1`` only while it stays inside the finite index set, so they are not a
    group action on it: the sharing is *defined* by the offsets inside the band. For
    ``'circular'`` the sharing is the orbit partition of :func:`cyclic_shift_generators`
    restricted to the kernel's offsets, the other offsets merged into the zero group; with
    ``kernel_size`` equal to ``input_shape`` it is exactly that orbit partition.

    Parameters
    ----------
    input_shape : int or tuple of int
        ``n_in`` for sequences, ``(h, w)`` for images (flattened row-major).
    kernel_size : int or tuple of int
        ``k`` or ``(kh, kw)``; an int gives a square kernel. At most the input size.
    mode : {'valid', 'same', 'circular'}, default='valid'
        Boundary handling; ``'same'`` is 1-D only.

    Returns
    -------
    labels : ndarray of shape (n_out * n_in,), dtype int64
        Canonical labels, ``n_out = prod(n - k + 1)`` for ``'valid'``, ``n_in`` otherwise.

    Examples
    --------
    >>> from sharelearn.symmetry import shift_sharing
    >>> shift_sharing(4, 2, "valid").reshape(3, 4)
    array([[0, 1, 2, 2],
           [2, 0, 1, 2],
           [2, 2, 0, 1]])
    >>> shift_sharing(3, 2, "circular").reshape(3, 3)
    array([[0, 1, 2],
           [2, 0, 1],
           [1, 2, 0]])
    """
    in_shape, k_shape = _check_conv(input_shape, kernel_size, mode)
    ndim = len(in_shape)
    if mode == "valid":
        out_shape = tuple(n - k + 1 for n, k in zip(in_shape, k_shape, strict=True))
    else:
        out_shape = in_shape
    out_idx = np.indices(out_shape).reshape(ndim, -1)
    in_idx = np.indices(in_shape).reshape(ndim, -1)
    tap = np.zeros((out_idx.shape[1], in_idx.shape[1]), dtype=np.int64)
    inside = np.ones(tap.shape, dtype=bool)
    for d in range(ndim):
        offset = in_idx[d][None, :] - out_idx[d][:, None]
        if mode == "circular":
            offset = offset % in_shape[d]
        elif mode == "same":
            offset = offset + (k_shape[d] - 1) // 2
        inside &= (offset >= 0) & (offset < k_shape[d])
        tap = tap * k_shape[d] + offset  # row-major tap index where inside
    zero_group = math.prod(k_shape)
    return canonical_labels(np.where(inside, tap, zero_group).ravel())


# ---------------------------------------------------------------------------
# sharing -> group
# ---------------------------------------------------------------------------
def _igraph():
    try:
        import igraph
    except ImportError as exc:  # pragma: no cover - igraph is a dependency
        raise ImportError(
            "symmetry_group needs the 'igraph' package (bliss automorphisms); "
            "install it with `pip install igraph`."
        ) from exc
    return igraph


class _LayerGraph:
    """The layered graph of a coloured ``n_out x n_in`` bipartite layer, with cached bliss calls.

    Points ``0..n_out-1`` are the outputs and ``n_out..n_out+n_in-1`` the inputs; layer ``b``
    holds copy ``b`` of every point (vertex ``b * V + point``). A pointwise stabiliser is asked
    for by giving the layer-0 copies of the fixed points colours of their own.
    """

    def __init__(self, labels, n_out, n_in):
        igraph = _igraph()
        self.n_out, self.n_in = n_out, n_in
        self.n_points = n_out + n_in
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        # the largest group gets colour 0, which draws no edge in any layer
        by_size = np.argsort(-counts, kind="stable")
        rank = np.empty_like(by_size)
        rank[by_size] = np.arange(by_size.size)
        colour = rank[inverse.ravel()].reshape(n_out, n_in)
        self.n_layers = max(1, int(counts.size - 1).bit_length())
        V, L = self.n_points, self.n_layers

        rows, cols = np.nonzero(colour)
        values = colour[rows, cols]
        edges = []
        for b in range(L):
            on = ((values >> b) & 1).astype(bool)
            edges.append(np.column_stack([b * V + rows[on], b * V + n_out + cols[on]]))
        if L > 1:
            point = np.arange(V)
            for b in range(L - 1):
                edges.append(np.column_stack([b * V + point, (b + 1) * V + point]))
        edges = np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.int64)
        self.graph = igraph.Graph(n=V * L, edges=edges.tolist())
        vertex = np.arange(V * L)
        self.base_colours = 2 * (vertex // V) + (vertex % V >= n_out)
        self._groups = {}
        self._orders = {}

    def _colours(self, fixed):
        colours = self.base_colours.copy()
        if fixed:
            colours[list(fixed)] = 2 * self.n_layers + np.arange(len(fixed))
        return colours.tolist()

    def order(self, fixed=()):
        """Exact order of the pointwise stabiliser of ``fixed`` (a sorted tuple of points)."""
        fixed = tuple(sorted(fixed))
        if fixed not in self._orders:
            count = self.graph.count_automorphisms(sh=_BLISS_HEURISTIC, color=self._colours(fixed))
            if isinstance(count, numbers.Integral):
                self._orders[fixed] = int(count)
            else:  # pragma: no cover - a build without exact big numbers
                self._orders[fixed] = self._order_by_chain(fixed)
        return self._orders[fixed]

    def generators(self, fixed=()):
        """Generators (rows of an array, on the ``V`` points) of the stabiliser of ``fixed``."""
        fixed = tuple(sorted(fixed))
        if fixed not in self._groups:
            found = self.graph.automorphism_group(sh=_BLISS_HEURISTIC, color=self._colours(fixed))
            V = self.n_points
            gens = np.array([g[:V] for g in found], dtype=np.int64).reshape(-1, V)
            gens = gens[np.any(gens != np.arange(V), axis=1)]
            self._groups[fixed] = gens
        return self._groups[fixed]

    def _order_by_chain(self, fixed):  # pragma: no cover - fallback only
        # |G| = |orbit of v| * |G_v|, down a chain of point stabilisers
        order, fixed = 1, list(fixed)
        while True:
            orbits = _orbits(self.generators(tuple(sorted(fixed))), self.n_points)
            if not orbits:
                return order
            order *= orbits[0].size
            fixed.append(int(orbits[0][0]))


def _orbits(gens, n_points):
    """Orbits with more than one point, as sorted arrays, ordered by smallest point."""
    if gens.shape[0] == 0:
        return []
    rows = np.tile(np.arange(n_points), gens.shape[0])
    graph = sp.coo_array(
        (np.ones(rows.size, dtype=np.int8), (rows, gens.ravel())), shape=(n_points, n_points)
    )
    _, comp = connected_components(graph, directed=True, connection="weak")
    canon = canonical_labels(comp)
    sizes = np.bincount(canon)
    order = np.argsort(canon, kind="stable")
    parts = np.split(order, np.cumsum(sizes)[:-1])
    return [p for p in parts if p.size > 1]


def _cycle_lengths(perm):
    """Lengths of the cycles of one permutation."""
    seen = np.zeros(perm.size, dtype=bool)
    lengths = []
    for start in range(perm.size):
        if seen[start]:
            continue
        length, x = 0, start
        while not seen[x]:
            seen[x] = True
            x = perm[x]
            length += 1
        lengths.append(length)
    return lengths


def _factorize(n):
    """Prime factorisation ``{p: a}`` of a small positive int by trial division."""
    factors, p = {}, 2
    while p * p <= n:
        while n % p == 0:
            factors[p] = factors.get(p, 0) + 1
            n //= p
        p += 1
    if n > 1:
        factors[n] = factors.get(n, 0) + 1
    return factors


def _exponent_factors(gens):
    """Prime factorisation of the lcm of the generators' orders (from their cycle lengths)."""
    factors = {}
    for g in gens:
        for length in set(_cycle_lengths(g)):
            for p, a in _factorize(length).items():
                factors[p] = max(factors.get(p, 0), a)
    return factors


def _is_abelian(gens):
    for a in gens:
        if not np.array_equal(a[gens], gens[:, a]):
            return False
    return True


def _restrict(gens, points):
    """Generators restricted to an invariant set of points, renumbered ``0..len(points)-1``."""
    local = np.full(gens.shape[1], -1, dtype=np.int64)
    local[points] = np.arange(points.size)
    return local[gens[:, points]]


def _enumerate(gens, max_size):
    """All elements of ``<gens>`` (rows), by breadth-first closure; None past ``max_size``."""
    degree = gens.shape[1]
    dtype = np.int16 if degree < 2**15 else np.int32
    gens = gens.astype(dtype)
    identity = np.arange(degree, dtype=dtype)
    seen = {identity.tobytes()}
    elements = [identity]
    frontier = identity[None, :]
    while frontier.shape[0]:
        fresh = []
        for g in gens:
            for row in g[frontier]:  # g after each frontier element
                key = row.tobytes()
                if key not in seen:
                    seen.add(key)
                    fresh.append(row)
                    if len(seen) > max_size:
                        return None
        elements.extend(fresh)
        frontier = np.array(fresh, dtype=dtype).reshape(-1, degree)
    return np.array(elements, dtype=np.int64)


def _compose_rows(a, b):
    """Row-wise composition: result[x] = a[x] after b[x]."""
    return np.take_along_axis(a, b, axis=1)


def _power_rows(elements, t):
    """Every element raised to the power ``t`` (binary exponentiation, row-wise)."""
    result = np.broadcast_to(np.arange(elements.shape[1]), elements.shape).copy()
    base = elements
    while t:
        if t & 1:
            result = _compose_rows(base, result)
        t >>= 1
        if t:
            base = _compose_rows(base, base)
    return result


def _is_identity_rows(elements):
    return np.all(elements == np.arange(elements.shape[1]), axis=1)


def _abelian_primary(elements, order):
    """Prime-power orders of the cyclic factors of an abelian group, from its element list.

    For the ``p``-part ``C_{p^e1} x C_{p^e2} x ...``, the number of elements with
    ``x^(p^j) = 1`` is ``p^(sum_i min(e_i, j))``, so the ratio of consecutive counts tells how
    many exponents ``e_i`` are at least ``j``.
    """
    primary = []
    for p, a in _factorize(order).items():
        counts = [1]
        powered = elements
        while counts[-1] < p**a:
            powered = _power_rows(powered, p)
            counts.append(int(_is_identity_rows(powered).sum()))
        at_least = []  # at_least[j - 1] = number of exponents >= j
        for j in range(1, len(counts)):
            ratio, k = counts[j] // counts[j - 1], 0
            while ratio > 1:
                ratio //= p
                k += 1
            at_least.append(k)
        at_least.append(0)
        for j in range(1, len(at_least)):
            primary.extend([p**j] * (at_least[j - 1] - at_least[j]))
    return primary


def _is_dihedral(gens, elements, order):
    """Whether ``<gens>`` (non-abelian, of order ``2k``, ``k >= 3``) is dihedral ``D_k``."""
    k = order // 2
    powered = _power_rows(elements, k)
    has_order_k = _is_identity_rows(powered)
    for p in _factorize(k):
        has_order_k &= ~_is_identity_rows(_power_rows(elements, k // p))
    if not has_order_k.any():
        return False
    r = elements[np.argmax(has_order_k)]
    degree = r.size
    rotations = [np.arange(degree)]
    for _ in range(k - 1):
        rotations.append(r[rotations[-1]])
    rotation_set = {x.tobytes() for x in rotations}
    r_inverse = np.argsort(r)
    for s in gens:
        if s.tobytes() not in rotation_set:
            return bool(
                np.array_equal(s[s], np.arange(degree)) and np.array_equal(s[r[s]], r_inverse)
            )
    return False  # pragma: no cover - a group of order 2k is not generated inside <r>


def _invariant_factors(primary):
    """Invariant factors ``d1 >= d2 >= ...`` (``d_{i+1} | d_i``) from prime-power orders."""
    by_prime = {}
    for q in primary:
        p = min(_factorize(q))
        by_prime.setdefault(p, []).append(q)
    columns = [sorted(v, reverse=True) for v in by_prime.values()]
    length = max((len(c) for c in columns), default=0)
    return [math.prod(c[i] for c in columns if i < len(c)) for i in range(length)]


def _power_notation(parts):
    """Runs of three or more equal consecutive names as ``name^count``."""
    out, i = [], 0
    while i < len(parts):
        j = i
        while j < len(parts) and parts[j] == parts[i]:
            j += 1
        if j - i >= 3:
            base = f"({parts[i]})" if " " in parts[i] else parts[i]
            out.append(f"{base}^{j - i}")
        else:
            out.extend(parts[i:j])
        i = j
    return out


def _format_name(factors, primary):
    """Non-abelian factors (largest first), then the abelian part in invariant-factor form."""
    parts = [name for _, name in sorted(factors, key=lambda f: (-f[0], f[1]))]
    parts += [f"C_{d}" for d in _invariant_factors(primary)]
    return " x ".join(_power_notation(parts)) if parts else "trivial"


def _order_text(order):
    """An order in full up to 12 digits, else as ``5.69e137``."""
    if order < 10**12:
        return str(order)
    digits = str(order)
    return f"{digits[0]}.{digits[1:3]}e{len(digits) - 1}"


class _Namer:
    """Recognises the structure of pointwise stabilisers of a :class:`_LayerGraph`."""

    def __init__(self, layer):
        self.layer = layer
        self.split_budget = _SPLIT_BUDGET  # stabiliser orders the split search may ask for

    def describe(self, order, orbits, abelian=False):
        moved = np.concatenate(orbits) if orbits else np.zeros(0, dtype=np.int64)
        n_out = int((moved < self.layer.n_out).sum())
        kind = "abelian group" if abelian else "group"
        return (
            f"order-{_order_text(order)} {kind} acting on {n_out} outputs and "
            f"{moved.size - n_out} inputs"
        )

    def structure(self, fixed):
        """``(factors, primary)``: named non-abelian factors and abelian prime powers."""
        layer = self.layer
        order = layer.order(fixed)
        if order == 1:
            return [], []
        gens = layer.generators(fixed)
        orbits = _orbits(gens, layer.n_points)
        moved = np.concatenate(orbits)
        local = _restrict(gens, moved)
        can_list = order * moved.size <= _ENUMERATE_BUDGET

        if _is_abelian(local):
            exponent = _exponent_factors(local)
            if math.prod(p**a for p, a in exponent.items()) == order:
                return [], [p**a for p, a in exponent.items()]  # cyclic
            if len(exponent) == 1 and all(a == 1 for a in exponent.values()):
                (p,) = exponent
                k, rest = 0, order
                while rest > 1:
                    rest //= p
                    k += 1
                return [], [p] * k  # elementary abelian: every element has order p
            if can_list:
                elements = _enumerate(local, order)
                return [], _abelian_primary(elements, order)
            split = self.split(fixed, order, orbits)
            if split is not None:
                return split
            return [(order, self.describe(order, orbits, abelian=True))], []

        for orbit in orbits:
            k = orbit.size
            if k < 3 or k > 3000:
                continue
            full = math.factorial(k)
            if order in (full, full // 2) and layer.order(fixed + tuple(orbit)) == 1:
                return [(order, f"S_{k}" if order == full else f"A_{k}")], []
        if order % 2 == 0 and order >= 6 and can_list:
            elements = _enumerate(local, order)
            if _is_dihedral(local, elements, order):
                return [(order, f"D_{order // 2}")], []
        split = self.split(fixed, order, orbits)
        if split is not None:
            return split
        return [(order, self.describe(order, orbits))], []

    def split(self, fixed, order, orbits):
        """Name ``G`` as ``G_(B) x G_(A)`` when the orbits split into ``A`` and ``B``."""
        t = len(orbits)
        if t < 2:
            return None
        layer = self.layer
        masks = []
        outputs = [j for j, o in enumerate(orbits) if o[0] < layer.n_out]
        if 0 < len(outputs) < t:
            masks.append(frozenset(outputs))
        if t <= _ALL_SPLITS_MAX_ORBITS:
            for bits in range(1, 2 ** (t - 1)):
                masks.append(frozenset(j for j in range(t) if bits >> j & 1))
        else:
            masks.extend(frozenset([j]) for j in range(t))
        tried = set()
        for mask in sorted(masks, key=len):  # fewer orbits on side A first
            if mask in tried:
                continue
            tried.add(mask)
            side_a = tuple(int(x) for j in sorted(mask) for x in orbits[j])
            side_b = tuple(int(x) for j in range(t) if j not in mask for x in orbits[j])
            fix_a, fix_b = fixed + side_a, fixed + side_b
            if self.split_budget <= 0:
                return None
            self.split_budget -= 2
            if layer.order(fix_a) * layer.order(fix_b) == order:
                left = self.structure(tuple(sorted(fix_b)))
                right = self.structure(tuple(sorted(fix_a)))
                return left[0] + right[0], left[1] + right[1]
        return None


@dataclass(eq=False)
class SymmetryGroup:
    """The symmetry group of a sharing scheme, as found by :func:`symmetry_group`.

    Attributes
    ----------
    order : int
        Exact number of elements (a Python int; ``100!`` and beyond are fine).
    generators : list of (ndarray, ndarray)
        ``(out_perm, in_perm)`` pairs generating the group (none for the trivial group);
        ``perm[i]`` is the image of ``i``.
    name : str
        Readable name, e.g. ``"trivial"``, ``"C_100"``, ``"D_4"``, ``"S_100 x S_100"``.
    shape : tuple of int
        ``(n_out, n_in)`` of the layer.
    """

    order: int
    generators: list
    name: str
    shape: tuple

    def __repr__(self):
        return (
            f"SymmetryGroup(name={self.name!r}, order={self.order}, "
            f"n_generators={len(self.generators)}, shape={self.shape})"
        )

    def sharing(self):
        """Orbit partition of the group (canonical labels), see :func:`sharing_from_group`.

        It refines the partition the group was computed from (every orbit lies inside one of
        its groups) and equals it when that partition is itself an orbit partition.

        Examples
        --------
        A circular convolution with kernel 2 on 5 positions: the group ``C_5`` keeps the two
        taps and splits the zero group into the three offsets it merges.

        >>> from sharelearn.symmetry import shift_sharing, symmetry_group
        >>> labels = shift_sharing(5, 2, "circular")
        >>> labels.reshape(5, 5)[0], symmetry_group(labels, (5, 5)).sharing().reshape(5, 5)[0]
        (array([0, 1, 2, 2, 2]), array([0, 1, 2, 3, 4]))
        """
        return sharing_from_group(self.generators, self.shape)

    def as_permutation_group(self):
        """The group as a ``sympy.combinatorics.PermutationGroup`` on ``n_out + n_in`` points.

        Points ``0..n_out-1`` are the outputs, ``n_out..n_out+n_in-1`` the inputs. Meant for
        further group arithmetic on small groups: sympy's Schreier-Sims is slow on large ones.

        Examples
        --------
        >>> from sharelearn.symmetry import shift_sharing, symmetry_group
        >>> group = symmetry_group(shift_sharing(4, 3, "circular"), (4, 4))
        >>> group.as_permutation_group().is_cyclic
        True
        """
        from sympy.combinatorics import Permutation, PermutationGroup

        n_out, n_in = self.shape
        if not self.generators:
            return PermutationGroup([Permutation(n_out + n_in - 1)])
        perms = [
            Permutation(np.concatenate([p_out, n_out + p_in]).tolist())
            for p_out, p_in in self.generators
        ]
        return PermutationGroup(perms)


def symmetry_group(partition, shape):
    """The largest group of output and input permutations that keeps a sharing scheme.

    A pair ``(p_out, p_in)`` belongs to the group when every entry ``(o, i)`` and its image
    ``(p_out[o], p_in[i])`` are in the same group of ``partition``: the colour-preserving
    automorphisms of the bipartite graph of the layer (see the module docstring for the
    semantics, the bliss encoding and the naming rules). A linear layer whose weights follow
    the sharing is equivariant to every element of the group.

    Parameters
    ----------
    partition : array-like of shape (n_out * n_in,)
        Group labels of the weight entries, row-major (entry ``(o, i)`` is item
        ``o * n_in + i``), e.g. the labels of :func:`sharelearn.datasets.make_convolution` or a
        discovered sharing.
    shape : tuple of int
        ``(n_out, n_in)``.

    Returns
    -------
    group : SymmetryGroup
        Its exact ``order``, ``generators`` (pairs ``(out_perm, in_perm)``) and ``name``.

    Raises
    ------
    ValueError
        If ``partition`` is not a 1-D array of non-negative integer labels, or its length is
        not ``n_out * n_in``, or ``shape`` is not a pair of positive ints.

    Examples
    --------
    A circular convolution is invariant under the cyclic shifts and nothing else:

    >>> from sharelearn.symmetry import shift_sharing, symmetry_group
    >>> group = symmetry_group(shift_sharing(8, 3, "circular"), (8, 8))
    >>> group.name, group.order
    ('C_8', 8)

    A Deep Sets layer (one value on the diagonal, one off it) and a fully shared layer:

    >>> import numpy as np
    >>> symmetry_group(1 - np.eye(5, dtype=int).ravel(), (5, 5)).name
    'S_5'
    >>> symmetry_group(np.zeros(12, dtype=int), (3, 4)).name
    'S_4 x S_3'

    A valid convolution has no symmetry as a finite layer:

    >>> symmetry_group(shift_sharing(6, 3, "valid"), (4, 6)).name
    'trivial'
    """
    shape = _check_layer_shape(shape)
    n_out, n_in = shape
    labels = _as_labels(partition, "partition")
    if labels.size != n_out * n_in:
        raise ValueError(
            f"partition has {labels.size} labels but shape={shape} has "
            f"{n_out} x {n_in} = {n_out * n_in} weight entries."
        )
    layer = _LayerGraph(labels, n_out, n_in)
    order = layer.order()
    gens = layer.generators()
    generators = [(g[:n_out].copy(), g[n_out:] - n_out) for g in gens]
    factors, primary = _Namer(layer).structure(())
    return SymmetryGroup(
        order=order, generators=generators, name=_format_name(factors, primary), shape=shape
    )


def named_sharing(name, shape):
    """A named sharing scheme built for a layer of ``shape = (n_out, n_in)``.

    Parameters
    ----------
    name : {"shift", "permutation", "shared", "unshared"}
        ``"shift"``: a 1-D convolution. With ``n_out < n_in`` the valid cross-correlation with
        a kernel of ``n_in - n_out + 1`` taps (:func:`shift_sharing`); with ``n_out == n_in``
        the cyclic-shift orbit partition (a circular kernel spanning the input).
        ``"permutation"``: the Deep Sets layer (``n_out == n_in``): one value on the
        diagonal, one off it. ``"shared"``: one group. ``"unshared"``: every entry its own.
    shape : tuple of two ints

    Returns
    -------
    labels : ndarray of shape (n_out * n_in,)

    Examples
    --------
    >>> from sharelearn.symmetry import named_sharing
    >>> named_sharing("shift", (2, 3)).reshape(2, 3)
    array([[0, 1, 2],
           [2, 0, 1]])
    """
    n_out, n_in = _check_layer_shape(shape)
    names = ("shift", "permutation", "shared", "unshared")
    if name == "shared":
        return np.zeros(n_out * n_in, dtype=np.int64)
    if name == "unshared":
        return np.arange(n_out * n_in, dtype=np.int64)
    if name == "shift":
        if n_out < n_in:
            return shift_sharing(n_in, n_in - n_out + 1, "valid")
        if n_out == n_in:
            return shift_sharing(n_in, n_in, "circular")
        raise ValueError(f"the sharing 'shift' needs n_outputs <= n_features, got shape {shape}.")
    if name == "permutation":
        if n_out != n_in:
            raise ValueError(f"the sharing 'permutation' needs a square layer, got shape {shape}.")
        return sharing_from_group(permutation_generators(n_in), (n_out, n_in))
    raise ValueError(f"{name!r} is not a known sharing; expected one of "
                     f"{', '.join(repr(n) for n in names)}.")
