"""The automorphism search behind :func:`sharelearn.symmetry.symmetry_group` (private).

The search uses ``igraph``'s binding of **bliss** (Junttila and Kaski):
``Graph.automorphism_group`` gives a generating set and ``Graph.count_automorphisms`` the exact
order, with multi-precision integers. bliss colours vertices but not edges, so the layer, a
complete bipartite graph ``K_{n_out, n_in}`` whose edges are coloured by group, is encoded in
*layers*. With the ``r`` groups numbered ``0..r-1`` (the largest group gets ``0``),
``L = max(1, ceil(log2 r))`` copies of the ``n_out + n_in`` points are stacked; copy ``b`` of
output ``o`` is joined to copy ``b`` of input ``i`` when bit ``b`` of the entry's group is set,
and the copies of one point are joined in a path. Vertex colours tell the layers and the two sides
apart, so an automorphism of the layered graph moves whole columns of copies and keeps every bit
of every entry's group: it is exactly a symmetry of the layer. The graph has
``L (n_out + n_in)`` vertices (2,800 for a 100 x 100 layer whose entries all differ). A pointwise
stabiliser is the automorphism group of the same graph with the fixed points given colours of
their own, so bliss answers the naming's questions too.

Why bliss, measured with ``benchmarks/bench_symmetry.py``: every 100 x 100 case takes well under a
second. ``sympy.combinatorics`` (Schreier-Sims) needed 930 s for the order of ``S_100 x S_100``
from the 198 generators bliss returns (124 s for ``S_100``), against 0.01 s for bliss's count, so
it is kept for small groups (:meth:`SymmetryGroup.as_permutation_group` and the tests).
``networkx``'s ``GraphMatcher`` lists automorphisms one by one (``100!`` for a Deep Sets layer).
``pynauty`` has no wheels for current Python versions, while ``igraph`` ships ``abi3`` wheels for
Linux, macOS and Windows.

The rest of the module is arithmetic on permutations stored as rows of an array: orbits,
restriction to a set of points, listing a small group's elements, composing and powering them.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..partition import canonical_labels

# bliss splitting heuristic: first largest non-singleton cell.
_BLISS_HEURISTIC = "fl"


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
