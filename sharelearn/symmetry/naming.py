"""Naming a group from its generators and exact orders, without listing a large group.

Groups of image layers are recognised first, by their action on a pixel grid
(:mod:`~sharelearn.symmetry.wallpaper`: wallpaper groups on a torus, point groups about a centre,
and a torus's translations extended by the stabiliser of a pixel, ``(C_6 x C_6) : D_6``, whose
second factor is named here). Every other group is named by its structure. The names, tried in
this order on each factor:

* ``"trivial"``;
* abelian groups in invariant-factor form: ``C_n`` when the exponent (the lcm of the generators'
  orders) equals the order, ``C_p^k`` when every generator has one prime order ``p``, and in
  general ``C_12 x C_2`` from the number of elements with ``x^(p^j) = 1`` (groups small enough to
  list);
* ``S_k`` and ``A_k``: order ``k!`` (``k!/2``) acting faithfully on an orbit of ``k`` points;
* ``D_k`` (order ``2k``, ``k >= 3``): an element ``r`` of order ``k`` and a generator ``s`` outside
  ``<r>`` with ``s^2 = 1`` and ``s r s^-1 = r^-1`` (groups small enough to list); ``S_3`` keeps
  the name ``S_3``;
* direct products ``G_A x G_B`` when the orbits split into two sets ``A`` and ``B`` with
  ``|G| = |G_(A)| |G_(B)|`` (``G_(X)`` fixes ``X`` pointwise). Each factor is named recursively
  as ``G_(B)``, which acts faithfully on ``A`` as ``G`` does; abelian factors are merged into one
  invariant-factor list, and three or more equal factors are written as a power;
* otherwise a description, e.g. ``"order-48 group acting on 8 outputs and 8 inputs"`` (the outputs
  and inputs the group moves).
"""

from __future__ import annotations

import math

import numpy as np

from ._graph import (
    _cycle_lengths,
    _enumerate,
    _is_abelian,
    _is_identity_rows,
    _orbits,
    _power_rows,
    _restrict,
)

# Groups are listed element by element (to tell D_k and abelian invariants) only while
# order * n_moved_points stays below this.
_ENUMERATE_BUDGET = 4_000_000
# Direct-product splits: every subset of the orbits is tried up to this many orbits; beyond it
# only outputs-versus-inputs and one orbit against the rest.
_ALL_SPLITS_MAX_ORBITS = 6
# At most this many stabiliser orders are asked for while looking for direct-product splits;
# past it the remaining factors are described rather than named.
_SPLIT_BUDGET = 2_000


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
