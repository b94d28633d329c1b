"""Symmetries of images: wallpaper groups on a torus and point groups about a centre.

A layer between images (flattened row-major on both sides) can be equivariant to moves of the
pixel grid. Two families have names of their own:

* on a **torus** (circular boundaries, outputs and inputs the same ``h x w`` grid): translations
  extended by a point group, the *wallpaper groups* that fit a square or rectangular lattice,
  ``p1, p2, pm, pg, cm, pmm, pmg, pgg, cmm, p4, p4m, p4g`` (the three-fold and six-fold ones need
  a hexagonal lattice, which a pixel grid does not have);
* **without translations** (a valid convolution, or a map on an image with a fixed centre): the
  point groups of the square and the rectangle about the images' centres, ``C_2, C_4`` (rotations
  by 180 and 90 degrees), ``D_1`` (one reflection), ``D_2`` (two perpendicular reflections) and
  ``D_4`` (all eight symmetries of the square).

:func:`image_group_generators` builds these groups as ``(out_perm, in_perm)`` generators, for
:func:`~sharelearn.symmetry.sharing_from_group` and
:func:`sharelearn.datasets.make_equivariant_map`. The rest of the module recognises them in the
group of a sharing (private; used by :func:`~sharelearn.symmetry.symmetry_group`).

How a group is recognised. Every element of a wallpaper group on a torus is an affine map
``x -> M x + v`` of the pixel coordinates ``x = (row, column)`` modulo ``(h, w)``, with ``M`` one of
the eight symmetries of the square (four of the rectangle when ``h != w``). The recogniser tries
every grid ``h x w`` with ``h * w`` pixels (``h, w >= 3``) and

1. finds the translations ``L`` that keep the sharing (the same shift on outputs and inputs),
   which must move along both axes and have index at most 4 among all pixel shifts;
2. for each ``M``, looks for shifts ``v_out, v_in`` such that ``M x + v_out`` on the outputs and
   ``M x + v_in`` on the inputs keep the sharing (the inputs may be drawn about another origin
   than the outputs, as with a kernel that is not centred on its output pixel); the ``M`` found
   form the point group ``P``;
3. accepts when ``|L| * |P|`` equals the order of the whole group (so every symmetry is such an
   affine map), and names the outputs' and the inputs' actions by the crystallographic rules
   below; both must agree.

Each test is one permutation of the label matrix, so naming an 8 x 8 torus takes milliseconds.

A group larger than every wallpaper group it contains is still named after the largest of them
when the map falls into independent parts (its bipartite graph, leaving out the largest group,
the zeros, has several components) that each span both axes of the grid, and the group's order
is at most that wallpaper group's to the power of the number of parts: a circular Sobel filter
on a ``10 x 10`` torus reads only the rows next to its output's, so even and odd rows are
independent, and its group of order 20000 is named ``"pm on the 10 x 10 torus; the map also
splits into independent parts"``.
The rules, for a point group ``P`` and lattice ``L``: ``P`` of order 1, ``{1, -1}`` and the
rotations by 90 degrees give ``p1, p2, p4``. With reflections, what matters is whether an element
with a reflection's linear part fixes a point (a *mirror*) or none (a *glide*), whether all of
``P`` fixes one common point (a *symmorphic* group), and whether the lattice is *centred* with
respect to the mirror (the lattice vectors along and across the mirror span a sublattice of index
2, as for the pixel lattice and a diagonal mirror): one reflection gives ``pm`` (mirror), ``cm``
(mirror, centred) or ``pg`` (glide only); two perpendicular ones ``pmm`` / ``cmm`` (mirrors both
ways), ``pmg`` (one way), ``pgg`` (none); the full ``D_4`` gives ``p4m`` (symmorphic) or ``p4g``.
When the pixel shifts are all symmetries (a circular convolution), every group is symmorphic and
only ``p1, p2, pm, cm, pmm, cmm, p4, p4m`` occur; the glide groups need a coarser lattice, such as
shifts by two pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import check_pair

__all__ = ["image_group_generators", "image_group_hypotheses"]

# The eight symmetries of the square acting on (row, column): name, matrix, words.
_OPS = {
    "identity": ((1, 0, 0, 1), "identity"),
    "rot90": ((0, 1, -1, 0), "rotation by 90 degrees"),
    "rot180": ((-1, 0, 0, -1), "rotation by 180 degrees"),
    "rot270": ((0, -1, 1, 0), "rotation by 270 degrees"),
    "flip_rows": ((-1, 0, 0, 1), "up-down reflection"),
    "flip_cols": ((1, 0, 0, -1), "left-right reflection"),
    "transpose": ((0, 1, 1, 0), "reflection across the main diagonal"),
    "antitranspose": ((0, -1, -1, 0), "reflection across the anti-diagonal"),
}
_MATRIX = {k: np.array(m, dtype=np.int64).reshape(2, 2) for k, (m, _) in _OPS.items()}
_ROTATIONS = ("rot90", "rot180", "rot270")
_REFLECTIONS = ("flip_cols", "flip_rows", "transpose", "antitranspose")
_RECTANGLE = ("identity", "rot180", "flip_rows", "flip_cols")  # the ones that keep h x w
# direction of the mirror line and across it, for the glide and centring rules
_MIRROR_AXES = {
    "flip_rows": ((0, 1), (1, 0)),
    "flip_cols": ((1, 0), (0, 1)),
    "transpose": ((1, 1), (1, -1)),
    "antitranspose": ((1, -1), (1, 1)),
}

# Wallpaper groups as built by image_group_generators: lattice basis (row, column shifts),
# point operations with their shift, and what the torus must satisfy.
_WALLPAPER = {
    "p1": (((1, 0), (0, 1)), ()),
    "p2": (((1, 0), (0, 1)), (("rot180", (0, 0)),)),
    "pm": (((1, 0), (0, 1)), (("flip_cols", (0, 0)),)),
    "pg": (((2, 0), (0, 1)), (("flip_cols", (1, 0)),)),
    "cm": (((1, 0), (0, 1)), (("transpose", (0, 0)),)),
    "pmm": (((1, 0), (0, 1)), (("flip_rows", (0, 0)), ("flip_cols", (0, 0)))),
    "pmg": (((1, 0), (0, 2)), (("flip_cols", (0, 0)), ("flip_rows", (0, 1)))),
    "pgg": (((2, 0), (0, 2)), (("flip_cols", (1, 1)), ("flip_rows", (1, 1)))),
    "cmm": (((1, 0), (0, 1)), (("transpose", (0, 0)), ("antitranspose", (0, 0)))),
    "p4": (((1, 0), (0, 1)), (("rot90", (0, 0)),)),
    "p4m": (((1, 0), (0, 1)), (("rot90", (0, 0)), ("flip_cols", (0, 0)))),
    "p4g": (((2, 0), (0, 2)), (("rot90", (0, 0)), ("transpose", (1, 1)))),
}
# Point groups about the image's centre: their generators.
_POINT = {
    "C_2": ("rot180",),
    "C_4": ("rot90",),
    "D_1": ("flip_cols",),
    "D_2": ("flip_rows", "flip_cols"),
    "D_4": ("rot90", "flip_cols"),
}
# Every name image_group_generators accepts: wallpaper groups, then point groups.
_IMAGE_GROUPS = tuple(_WALLPAPER) + tuple(_POINT)


def _needs(name):
    """(square, even rows, even columns) that the construction of ``name`` requires."""
    if name in _POINT:
        return ("rot90" in _POINT[name], False, False)
    basis, ops = _WALLPAPER[name]
    square = any(op in ("rot90", "transpose", "antitranspose") for op, _ in ops)
    return square, any(b[0] == 2 for b in basis), any(b[1] == 2 for b in basis)


# ---------------------------------------------------------------------------
# permutations of a pixel grid
# ---------------------------------------------------------------------------
def _grid(h, w):
    r, c = np.indices((h, w))
    return r.ravel(), c.ravel()


def _torus_map(op, shift, h, w):
    """Permutation ``x -> M x + shift`` of the ``h x w`` torus, pixels numbered row-major."""
    r, c = _grid(h, w)
    m = _MATRIX[op]
    r2 = (m[0, 0] * r + m[0, 1] * c + shift[0]) % h
    c2 = (m[1, 0] * r + m[1, 1] * c + shift[1]) % w
    return (r2 * w + c2).astype(np.int64)


def _centred_map(op, h, w):
    """Permutation of the ``h x w`` image by ``op`` about its centre (``op`` must keep h x w)."""
    r, c = _grid(h, w)
    m = _MATRIX[op]
    # doubled coordinates about the centre keep half-pixel centres exact
    y, x = 2 * r - (h - 1), 2 * c - (w - 1)
    y2, x2 = m[0, 0] * y + m[0, 1] * x, m[1, 0] * y + m[1, 1] * x
    return ((y2 + h - 1) // 2 * w + (x2 + w - 1) // 2).astype(np.int64)


def _ops_for(h, w):
    return tuple(_OPS) if h == w else _RECTANGLE


def image_group_generators(group, image_shape):
    """Generators of a wallpaper group on a torus, or of a point group about an image's centre.

    The same permutation acts on the outputs and on the inputs of a layer ``h x w -> h x w``
    (images flattened row-major); :func:`~sharelearn.symmetry.sharing_from_group` turns the
    generators into the layer's sharing, and :func:`~sharelearn.symmetry.symmetry_group` names
    that sharing's group back.

    The wallpaper groups act on the ``h x w`` torus (circular boundaries). Those with glide
    reflections (``pg``, ``pmg``, ``pgg``, ``p4g``) use a lattice of shifts by two pixels along
    the glides, since a glide moves by half a lattice vector. Row-and-column conventions: the
    *left-right* reflection sends column ``c`` to ``-c``, the *up-down* one row ``r`` to ``-r``.
    The generators besides the lattice (the shifts by one row and by one column unless stated),
    and the tori each group needs:

    * ``p1``: none (any torus);
    * ``p2``: the rotation by 180 degrees (any);
    * ``pm``: the left-right reflection (any);
    * ``pg``: the left-right reflection and a shift by one row, on a lattice of two rows and one
      column (``h`` even);
    * ``cm``: the reflection across the main diagonal (square);
    * ``pmm``: the up-down and left-right reflections (any);
    * ``pmg``: the left-right reflection, and the up-down reflection with a shift by one column,
      on a lattice of one row and two columns (``w`` even);
    * ``pgg``: both reflections, each with a shift by one row and one column, on a lattice of two
      rows and two columns (both even);
    * ``cmm``: the reflections across both diagonals (square);
    * ``p4``: the rotation by 90 degrees (square);
    * ``p4m``: the rotation by 90 degrees and the left-right reflection (square);
    * ``p4g``: the rotation by 90 degrees, and the reflection across the main diagonal with a
      shift by one row and one column, on a lattice of two rows and two columns (square, even).

    The point groups fix the centre of an ``h x w`` image (no wrapping): ``C_2`` (rotation by
    180 degrees), ``C_4`` (by 90 degrees; square), ``D_1`` (left-right reflection), ``D_2``
    (both reflections), ``D_4`` (rotation by 90 degrees and the left-right reflection; square).

    Parameters
    ----------
    group : str
        One of ``'p1', 'p2', 'pm', 'pg', 'cm', 'pmm', 'pmg', 'pgg', 'cmm', 'p4', 'p4m', 'p4g'``
        or ``'C_2', 'C_4', 'D_1', 'D_2', 'D_4'``.
    image_shape : tuple of int
        ``(h, w)``; at least 3 x 3 for a wallpaper group, 2 x 2 for a point group.

    Returns
    -------
    generators : list of (ndarray, ndarray)
        ``(out_perm, in_perm)`` pairs, the same permutation on both sides.

    Raises
    ------
    ValueError
        If ``group`` is not a known name or the image shape does not fit it.

    Examples
    --------
    >>> from sharelearn.symmetry import image_group_generators, sharing_from_group
    >>> from sharelearn.symmetry import symmetry_group
    >>> gens = image_group_generators("p4m", (6, 6))
    >>> labels = sharing_from_group(gens, (36, 36))
    >>> symmetry_group(labels, (36, 36)).name
    'p4m on the 6 x 6 torus'
    >>> symmetry_group(sharing_from_group(image_group_generators("D_4", (5, 5)), (25, 25)),
    ...                (25, 25)).name
    'D_4'
    """
    if not isinstance(group, str) or group not in _IMAGE_GROUPS:
        allowed = ", ".join(repr(g) for g in _IMAGE_GROUPS)
        raise ValueError(f"group={group!r} is not a known image group; expected one of {allowed}.")
    h, w = check_pair(image_shape, "image_shape", "(h, w)")
    square, even_h, even_w = _needs(group)
    smallest = 2 if group in _POINT else 3
    if min(h, w) < smallest:
        raise ValueError(
            f"group={group!r} needs an image of at least {smallest} x {smallest}, "
            f"got image_shape={(h, w)}."
        )
    if square and h != w:
        raise ValueError(f"group={group!r} needs a square image, got image_shape={(h, w)}.")
    if (even_h and h % 2) or (even_w and w % 2):
        which = "h and w" if even_h and even_w else ("h" if even_h else "w")
        raise ValueError(
            f"group={group!r} has glides of one pixel on a lattice of two, so {which} must be "
            f"even, got image_shape={(h, w)}."
        )
    if group in _POINT:
        perms = [_centred_map(op, h, w) for op in _POINT[group]]
    else:
        basis, ops = _WALLPAPER[group]
        perms = [_torus_map("identity", b, h, w) for b in basis]
        perms += [_torus_map(op, v, h, w) for op, v in ops]
    return [(p, p.copy()) for p in perms]


# ---------------------------------------------------------------------------
# recognition
# ---------------------------------------------------------------------------
@dataclass
class _ImageSymmetry:
    """What the recogniser found: a wallpaper group, a point group, or a torus's translations
    as a normal subgroup of a group that is not affine (named by :mod:`~.group` as ``T : G_0``)."""

    kind: str  # "wallpaper", "point" or "translations"
    name: str
    description: str
    grid: tuple


def _factor_pairs(n, smallest):
    """Grids ``(h, w)`` with ``h * w == n`` and both sides at least ``smallest``, squarest first."""
    pairs = [(h, n // h) for h in range(smallest, n // smallest + 1) if n % h == 0]
    return sorted(pairs, key=lambda p: (abs(p[0] - p[1]), p))


def _keeps(lab, p_out, p_in):
    return bool(np.array_equal(lab[p_out][:, p_in], lab))


def _keeping(lab, p_out, p_ins):
    """For each row of ``p_ins``: whether ``(p_out, that row)`` keeps the label matrix."""
    ok = np.all(lab[p_out[0]][p_ins] == lab[0], axis=1)  # first output row: a cheap filter
    for j in np.flatnonzero(ok):
        ok[j] = _keeps(lab, p_out, p_ins[j])
    return ok


def _every_shift(h, w):
    """Every translation ``x -> x + v`` of the torus (rows of an array, ``v`` row-major)."""
    return np.stack([_torus_map("identity", (a, b), h, w) for a in range(h) for b in range(w)])


def _all_shifts(op, h, w):
    """``M x + v`` for every shift ``v`` (rows of an array, ``v`` row-major)."""
    return _every_shift(h, w)[:, _torus_map(op, (0, 0), h, w)]


_WORDS = {0.5: "half a", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _number(k, unit):
    k = float(k)
    text = _WORDS.get(abs(k), f"{abs(k):g}")
    if k < 0:
        text = "minus " + text
    plural = "" if abs(k) <= 1 else "s"
    return f"{text} {unit}{plural}"


def _shift_words(shift):
    a, b = shift
    parts = [_number(x, u) for x, u in ((a, "row"), (b, "column")) if x != 0]
    return "the shift by " + " and ".join(parts)


def _signed(x, n):
    x %= n
    return x - n if x > n // 2 else x


class _Torus:
    """The affine symmetries of one ``h x w`` torus that keep a label matrix."""

    def __init__(self, lab, h, w):
        self.lab, self.h, self.w = lab, h, w
        n = h * w
        shifts = _every_shift(h, w)
        first = np.all(lab[shifts[:, 0][:, None], shifts] == lab[0], axis=1)
        for j in np.flatnonzero(first):
            first[j] = _keeps(lab, shifts[j], shifts[j])
        self.lattice = first.reshape(h, w)  # lattice[a, b]: the shift (a, b) is a symmetry
        self.n_lattice = int(first.sum())
        self.index = n // self.n_lattice

    def spans_both_axes(self):
        return bool(self.lattice[1:, 0].any() and self.lattice[0, 1:].any())

    def affine_part(self):
        """``{op: (v_out, v_in)}`` for each linear part with a symmetry ``M x + v``."""
        h, w = self.h, self.w
        found = {"identity": ((0, 0), (0, 0))}
        # one v_out per coset of the lattice suffices
        reps, covered = [], np.zeros((h, w), dtype=bool)
        lat = np.argwhere(self.lattice)
        for a in range(h):
            for b in range(w):
                if not covered[a, b]:
                    reps.append((a, b))
                    covered[(a + lat[:, 0]) % h, (b + lat[:, 1]) % w] = True
        for op in _ops_for(h, w):
            if op == "identity":
                continue
            candidates = _all_shifts(op, h, w)
            for v_out in reps:
                ok = _keeping(self.lab, _torus_map(op, v_out, h, w), candidates)
                if ok.any():
                    j = int(np.argmax(ok))
                    found[op] = (v_out, (j // w, j % w))
                    break
        return found

    # -- the crystallographic rules, for one side's translations {op: v} --------------------
    def _in_lattice(self, vectors):
        v = np.asarray(vectors) % np.array([self.h, self.w])[:, None, None]
        return self.lattice[v[0], v[1]]

    def _fixes_a_point(self, op, v):
        """Boolean over half-pixel points ``p`` (doubled, ``2h x 2w``): ``(I - M) p = v`` mod L."""
        q = np.indices((2 * self.h, 2 * self.w))
        m = np.eye(2, dtype=np.int64) - _MATRIX[op]
        d = np.tensordot(m, q, axes=1)  # (I - M) 2p
        even = np.all(d % 2 == 0, axis=0)
        t = d // 2 - np.asarray(v)[:, None, None]
        return even & self._in_lattice(t)

    def _step(self, direction):
        """Smallest ``t > 0`` with ``t * direction`` in the lattice (lifted to the plane)."""
        period = math.lcm(self.h, self.w)
        for t in range(1, period + 1):
            if self._in_lattice(np.array(direction)[:, None, None] * t).item():
                return t
        return period  # pragma: no cover - t = lcm(h, w) always lies in the lattice

    def _centred(self, op):
        along, across = _MIRROR_AXES[op]
        det = abs(along[0] * across[1] - along[1] * across[0])
        return self._step(along) * self._step(across) * det == 2 * self.index

    def classify(self, shifts):
        """Wallpaper name of the affine group ``{M x + shifts[M] + L}``."""
        ops = set(shifts)
        mirrors = {op: bool(self._fixes_a_point(op, shifts[op]).any())
                   for op in ops & set(_REFLECTIONS)}
        if len(ops) == 1:
            return "p1"
        if "rot90" in ops:
            if len(ops) == 4:
                return "p4"
            common = np.ones((2 * self.h, 2 * self.w), dtype=bool)
            for op in ops:
                common &= self._fixes_a_point(op, shifts[op])
            return "p4m" if common.any() else "p4g"
        if ops == {"identity", "rot180"}:
            return "p2"
        (first, *rest) = sorted(ops & set(_REFLECTIONS))
        if not rest:
            if not mirrors[first]:
                return "pg"
            return "cm" if self._centred(first) else "pm"
        n_mirrors = sum(mirrors.values())
        if n_mirrors == 2:
            return "cmm" if self._centred(first) else "pmm"
        return "pmg" if n_mirrors == 1 else "pgg"

    def lattice_words(self):
        """The lattice's basis (Hermite form: a shift along the columns, then one with rows)."""
        cols = self._step((0, 1))
        rows = next(a for a in range(1, self.h + 1) if a == self.h or self.lattice[a].any())
        b = int(np.argmax(self.lattice[rows])) % cols if rows < self.h else 0
        return [_shift_words((rows, _signed(b, cols))), _shift_words((0, cols))]

    def op_words(self, op, v):
        """A point operation in words: a glide names its shift along the mirror."""
        words = _OPS[op][1]
        if op not in _REFLECTIONS or self._fixes_a_point(op, v).any():
            return "the " + words
        along, _ = _MIRROR_AXES[op]
        # the glide's shift is half the translation its square makes; the smallest over the coset
        # (a diagonal's square moves along (1, 1), whose period on a square torus is h)
        period = (2 * self.h, 2 * self.w) if 0 in along else (self.h, self.w)
        best = None
        m = _MATRIX[op]
        for a, b in np.argwhere(self.lattice):
            u = np.array(v) + (a, b)
            sq = u + m @ u
            step = (_signed(sq[0], period[0]) if along[0] else 0,
                    _signed(sq[1], period[1]) if along[1] else 0)
            key = abs(step[0]) + abs(step[1])
            if key and (best is None or key < best[0]):
                best = (key, (step[0] / 2, step[1] / 2))
        return f"the glide reflection ({words} and {_shift_words(best[1])})"


def _generating_ops(ops):
    """A small generating set of a point group given as a set of operation names."""
    if "rot90" in ops:
        refl = [op for op in _REFLECTIONS if op in ops]
        return ["rot90"] + refl[:1]
    if ops == {"identity", "rot180"}:
        return ["rot180"]
    return [op for op in _REFLECTIONS if op in ops][:2]


def _torus_symmetry(lab, order, generators):
    """A wallpaper group (or the translations as a normal subgroup) on some grid, or None."""
    n = lab.shape[0]
    tori = []
    for h, w in _factor_pairs(n, 3):
        torus = _Torus(lab, h, w)
        if torus.n_lattice == 1 or torus.index > 4 or not torus.spans_both_axes():
            continue
        tori.append(torus)
        ratio, rest = divmod(order, torus.n_lattice)
        if rest == 0 and ratio in (1, 2, 4, 8):
            found = torus.affine_part()
            if len(found) == ratio:
                outputs = {op: v for op, (v, _) in found.items()}
                inputs = {op: v for op, (_, v) in found.items()}
                name = torus.classify(outputs)
                if torus.classify(inputs) == name:
                    return _wallpaper_description(torus, name, found, order)
        if torus.index == 1 and _translations_are_normal(generators, h, w):
            text = (
                f"the translations of the {h} x {w} torus (shifts by one row and by one column, "
                "alike on outputs and inputs) form a normal subgroup; the rest is the group that "
                "fixes output pixel (0, 0)"
            )
            return _ImageSymmetry("translations", "", text, (h, w))
    for torus in tori:
        found = _split_wallpaper(torus, order)
        if found is not None:
            return found
    return None


def _independent_parts(lab):
    """The parts a map falls into once its largest group (the zeros) is left out.

    A list of ``(outputs, inputs)`` index arrays, one per connected component of the bipartite
    graph whose edges are the entries outside the largest group (components with no such entry
    are left out).
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    n_out, n_in = lab.shape
    values, counts = np.unique(lab, return_counts=True)
    o, i = np.nonzero(lab != values[np.argmax(counts)])
    graph = coo_array((np.ones(o.size), (o, n_out + i)), shape=(n_out + n_in,) * 2)
    _, comp = connected_components(graph, directed=False)
    parts = []
    for c in np.unique(comp[o]):
        members = np.flatnonzero(comp == c)
        parts.append((members[members < n_out], members[members >= n_out] - n_out))
    return parts


def _split_wallpaper(torus, order):
    """A wallpaper group inside a larger group, which the map's independent parts explain.

    The affine symmetries of the torus (its lattice and the point operations of
    :meth:`_Torus.affine_part`, each checked to keep the sharing) form the largest wallpaper
    group the group contains. It is named when the group is larger because the map splits into
    independent parts that each span both axes of the grid: every part can then be moved on its
    own, so the group's order is at most the wallpaper group's to the power of the number of
    parts (a larger group, such as that of a block-diagonal map with fully shared blocks, is not
    made of the wallpaper group's moves and keeps its structural name). A part that lies in one
    row or one column (a ``1 x k`` kernel) is a 1-D map, and its group, a wreath product, keeps
    its structural name too.
    """
    h, w = torus.h, torus.w
    found = torus.affine_part()
    inner = torus.n_lattice * len(found)
    if order == inner or order % inner:
        return None
    outputs = {op: v for op, (v, _) in found.items()}
    inputs = {op: v for op, (_, v) in found.items()}
    name = torus.classify(outputs)
    if torus.classify(inputs) != name:
        return None
    parts = _independent_parts(torus.lab)
    if len(parts) < 2 or order > inner ** len(parts):
        return None
    for outs, ins in parts:
        for cells in (outs, ins):
            r, c = np.divmod(cells, w)
            if np.unique(r).size < 2 or np.unique(c).size < 2:
                return None
    inner_text = _wallpaper_description(torus, name, found, inner).description
    inner_text = inner_text.split(": ", 1)[1]  # "the wallpaper group ... operations."
    full = f"{name} on the {h} x {w} torus; the map also splits into independent parts"
    text = (
        f"{full}: the group contains {inner_text[:-1]}. It is {order // inner} times larger "
        f"(order {order}) because, leaving out its largest group (the zeros), the map falls "
        f"into {len(parts)} independent parts, each with its own symmetries."
    )
    return _ImageSymmetry("wallpaper", full, text, (h, w))


def _wallpaper_description(torus, name, found, order):
    h, w = torus.h, torus.w
    ops = _generating_ops(set(found))
    words = torus.lattice_words() + [torus.op_words(op, found[op][0]) for op in ops]
    if len(words) > 1:
        listed = ", ".join(words[:-1]) + " and " + words[-1]
    else:  # pragma: no cover - a lattice has two basis vectors
        listed = words[0]
    n_point = len(found)
    text = (
        f"{name} on the {h} x {w} torus: the wallpaper group {name} acting on the "
        f"{h} x {w} output and input images with circular boundaries, generated by {listed}; "
        f"order {order} = {torus.n_lattice} translations x {n_point} point "
        f"operation{'s' if n_point > 1 else ''}."
    )
    return _ImageSymmetry("wallpaper", f"{name} on the {h} x {w} torus", text, (h, w))


def _translations_are_normal(generators, h, w):
    """Whether every generator conjugates the unit shifts into shifts (alike on both sides)."""
    n = h * w
    shifts = [_torus_map("identity", s, h, w) for s in ((1, 0), (0, 1))]
    for g_out, g_in in generators:
        if g_out.size != n or g_in.size != n:  # pragma: no cover - a square layer
            return False
        inv_out, inv_in = np.argsort(g_out), np.argsort(g_in)
        for t in shifts:
            c_out, c_in = g_out[t[inv_out]], g_in[t[inv_in]]
            a, b = divmod(int(c_out[0]), w)
            s = _torus_map("identity", (a, b), h, w)
            if not (np.array_equal(c_out, s) and np.array_equal(c_in, s)):
                return False
    return True


def _point_symmetry(lab, order):
    """A point group about the centres of an output and an input image, or None."""
    if order not in (2, 4, 8):
        return None
    n_out, n_in = lab.shape
    for ho, wo in _factor_pairs(n_out, 2):
        for hi, wi in _factor_pairs(n_in, 2):
            square = ho == wo and hi == wi
            ops = [op for op in (_OPS if square else _RECTANGLE) if op != "identity"]
            found = {"identity"}
            for op in ops:
                p_out, p_in = _centred_map(op, ho, wo), _centred_map(op, hi, wi)
                # the first output row first: most grids fail there, in O(n_in)
                if np.array_equal(lab[p_out[0], p_in], lab[0]) and _keeps(lab, p_out, p_in):
                    found.add(op)
            if len(found) != order:
                continue
            name = {2: "D_1" if found & set(_REFLECTIONS) else "C_2",
                    4: "C_4" if "rot90" in found else "D_2", 8: "D_4"}[order]
            gens = ["the " + _OPS[op][1] for op in _generating_ops(found)]
            images = (f"the {ho} x {wo} output and input images" if (ho, wo) == (hi, wi)
                      else f"the {ho} x {wo} output image and the {hi} x {wi} input image")
            text = (
                f"{name}: a point group of {order} symmetries of {images} about their centres "
                f"(no translations), generated by {' and '.join(gens)}."
            )
            return _ImageSymmetry("point", name, text, ((ho, wo), (hi, wi)))
    return None


def _image_symmetry(lab, order, generators):
    """Recognise a wallpaper or point group in the group of the label matrix ``lab``."""
    if order == 1:
        return None
    n_out, n_in = lab.shape
    if n_out == n_in:
        found = _torus_symmetry(lab, order, generators)
        if found is not None:
            return found
    return _point_symmetry(lab, order)


def image_group_hypotheses(shape, max_entries=2**14, max_groups=None):
    """The sharings of every wallpaper and point group on the square images a layer can read.

    For a square layer ``n x n`` whose side is a square number ``n = s * s`` (``s >= 3``), the
    orbit partition of each group of :func:`image_group_generators` that fits an ``s x s`` image
    (wallpaper groups on the torus, point groups about the centre). A map equivariant to one of
    these groups coarsens its sharing with few blocks, which the objective then charges by blocks
    (:mod:`sharelearn.search.coarsening`). Layers of more than ``max_entries`` entries get none
    (each hypothesis costs one pass over the data).

    Parameters
    ----------
    shape : tuple of two ints
        ``(n_out, n_in)``.
    max_entries : int, default=2**14
        Up to 11 x 11 images; a 16 x 16 layer's hypotheses would cost about 0.8 s each
        (65,536 entries, five folds).
    max_groups : int or None, default=None
        Sharings with more groups are left out (as in :func:`shift_hypotheses`).

    Returns
    -------
    dict
        Description (``"p4m on the 8 x 8 torus"``, ``"D_4 about the centre of 7 x 7"``) ->
        labels of the ``n_out * n_in`` entries.
    """
    from .generators import _check_layer_shape, sharing_from_group

    n_out, n_in = _check_layer_shape(shape)
    side = math.isqrt(n_in)
    if n_out != n_in or side * side != n_in or side < 3 or n_out * n_in > max_entries:
        return {}
    found = {}
    for name in (*_WALLPAPER, *_POINT):
        square, even_rows, even_cols = _needs(name)
        if (even_rows or even_cols) and side % 2:
            continue
        gens = image_group_generators(name, (side, side))
        text = (f"{name} on the {side} x {side} torus" if name in _WALLPAPER
                else f"{name} about the centre of {side} x {side}")
        labels = sharing_from_group(gens, (n_out, n_in))
        if max_groups is None or int(labels.max()) + 1 <= max_groups:
            found[text] = labels
    return found
