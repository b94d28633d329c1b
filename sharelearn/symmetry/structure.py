"""What a sharing *is*, in the words of signal processing: a convolution and its borders.

The group of a sharing (:func:`~sharelearn.symmetry.symmetry_group`) is the set of permutations
that keep it. For the layers a scientist meets most often that group says little: a valid
convolution has none (its translations leave the finite index set), and a zero-padded Laplacian
is named ``D_4`` after its kernel's symmetries about the image's centre. This module reads the
sharing the other way: as the weight matrix of a cross-correlation, with a kernel, an input grid,
an output size and a border rule, plus the entries that fit none of them.

:func:`border_sharing` builds the sharing of a ``'same'`` correlation under each boundary mode of
:func:`scipy.ndimage.correlate`; :func:`describe_sharing` finds the reading that explains a given
sharing best and says it in a sentence (:class:`SharingStructure`).

How a sharing is read. For every way of reading the inputs as an ``h x w`` grid (``1 x n`` is a
sequence) and every output size that fits (valid: ``(h - kh + 1) x (w - kw + 1)``, full:
``(h + kh - 1) x (w + kw - 1)``, same: ``h x w`` under each border mode), the *generic* sharing
of that reading (every tap its own value, an entry the sum of the taps that reach it, the entries
no tap reaches one more group) is compared with the given labels: each of its groups is matched
to the given group holding most of its entries, and an entry is *explained* when it lies in its
match. A sharing whose kernel has equal taps (a symmetric kernel) or zero taps is still explained
by the generic one. The best reading explains the most entries; ties go to the smallest kernel
(fewest taps), then to the reading that merges the fewest of its groups (a reading finer than
the map explains it too, e.g. reflect borders a map with nearest ones: each border entry of its
own), then to the border modes in the order ``wrap`` (circular), ``constant`` (zero),
``reflect``, ``nearest``, ``mirror``, then to the squarer grid. A larger kernel never explains
fewer entries (kernel sizes grow by one tap at a time, alternately on the left and on the right,
as scipy centres them), so for each grid and mode the largest kernel is tried first and the
smallest one with as many explained entries is found from the taps that differ from the zeros.

Kernels are tried up to :data:`MAX_KERNEL` ``= 7`` taps along each axis (and at most the grid's
size): this bounds the work to about 40 readings of the map for a 16 x 16 image. A reading is
accepted when its kernel has at least two taps that differ from the zeros' group (one tap is a
diagonal map, and a fully shared map is no convolution) and at most 10% of the entries its kernel
reaches are exceptions; otherwise ``kind`` is None.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_dims, check_int
from ..partition import _as_labels, canonical_labels

__all__ = ["MAX_KERNEL", "SharingStructure", "border_sharing", "describe_sharing"]

#: Largest kernel size tried along each axis by :func:`describe_sharing`.
MAX_KERNEL = 7

# scipy.ndimage's boundary modes, in the order that breaks ties between readings
_MODES = ("wrap", "constant", "reflect", "nearest", "mirror")
_BORDER = {"wrap": "circular", "constant": "zero", "reflect": "reflect", "nearest": "nearest",
           "mirror": "mirror"}
# the fraction of the entries a kernel reaches that may be exceptions in an accepted reading
_MAX_EXCEPTIONS = 0.1


# ---------------------------------------------------------------------------
# index maps of one axis
# ---------------------------------------------------------------------------
def _axis_sources(n_in, n_out, k, start, mode):
    """Input index read by output ``o`` through tap ``t`` along one axis, ``-1`` where none.

    The tap ``t`` of output ``o`` reads position ``o + t - start`` (``start = k // 2`` for
    scipy's centred kernels, ``0`` for valid, ``k - 1`` for full), mapped into ``0..n_in-1`` by
    the border ``mode`` as :func:`scipy.ndimage.correlate1d` extends a line:
    ``reflect`` (d c b a | a b c d | d c b a), ``mirror`` (d c b | a b c d | c b a), ``nearest``
    (a a a | a b c d | d d d), ``wrap`` (b c d | a b c d | a b c) and zeros beyond the line for
    ``constant`` (and for valid and full, which never leave it or pad with zeros).
    """
    pos = np.arange(n_out)[:, None] + np.arange(k)[None, :] - start
    if mode == "wrap":
        return pos % n_in
    if mode == "nearest":
        return np.clip(pos, 0, n_in - 1)
    if mode == "reflect":
        pos = pos % (2 * n_in)
        return np.where(pos >= n_in, 2 * n_in - 1 - pos, pos)
    if mode == "mirror":
        if n_in == 1:
            return np.zeros_like(pos)
        period = 2 * n_in - 2
        pos = pos % period
        return np.where(pos >= n_in, period - pos, pos)
    return np.where((pos >= 0) & (pos < n_in), pos, -1)


def _reading_taps(in_grid, out_grid, kernel, starts, mode):
    """``(entries, taps)``: every (flat entry ``o * n_in + i``, row-major tap) pair that lands."""
    (hi, wi), (ho, wo), (kh, kw) = in_grid, out_grid, kernel
    rows = _axis_sources(hi, ho, kh, starts[0], mode)  # (ho, kh)
    cols = _axis_sources(wi, wo, kw, starts[1], mode)  # (wo, kw)
    src = rows[:, None, :, None] * wi + cols[None, :, None, :]  # (ho, wo, kh, kw)
    ok = (rows[:, None, :, None] >= 0) & (cols[None, :, None, :] >= 0)
    n_in = hi * wi
    out = np.arange(ho * wo).reshape(ho, wo, 1, 1)
    taps = np.arange(kh * kw).reshape(1, 1, kh, kw)
    ok = np.broadcast_to(ok, src.shape)
    entries = (out * n_in + src)[ok]
    return entries.astype(np.int64), np.broadcast_to(taps, src.shape)[ok].astype(np.int64)


def _multiset_labels(entries, taps, n_entries):
    """Labels of the entries by the multiset of taps they receive; ``-1`` for none.

    Exact: each entry's sorted taps are one row of a padded table (written as one integer in
    base ``n_taps + 1`` while it fits), and equal rows are one group.
    """
    labels = np.full(n_entries, -1, dtype=np.int64)
    if entries.size == 0:
        return labels
    n_taps = int(taps.max()) + 1
    entries, taps = np.divmod(np.sort(entries * n_taps + taps), n_taps)
    new = np.r_[True, entries[1:] != entries[:-1]]
    starts = np.flatnonzero(new)
    counts = np.diff(np.r_[starts, entries.size])
    reached = entries[starts]
    if counts.max() == 1:  # one tap per entry: the tap is the group
        labels[reached] = taps
        return labels
    width = int(counts.max())
    owner = np.repeat(np.arange(reached.size), counts)
    column = np.arange(entries.size) - starts[owner]
    base = n_taps + 1  # digits 1..base-1 are taps, 0 pads a shorter row
    if width * np.log2(base) < 62:  # each sorted row as one integer: exact and fast
        codes = np.zeros(reached.size, dtype=np.int64)
        np.add.at(codes, owner, (taps + 1) * base ** (width - 1 - column))
        _, group = np.unique(codes, return_inverse=True)
    else:
        table = np.full((reached.size, width), -1, dtype=np.int64)
        table[owner, column] = taps
        _, group = np.unique(table, axis=0, return_inverse=True)
    labels[reached] = group.ravel()
    return labels


def _starts(kernel, kind):
    """Where the kernel's first tap lies relative to its output, per axis, for each reading."""
    if kind == "valid":
        return (0, 0)
    if kind == "full":
        return tuple(k - 1 for k in kernel)
    return tuple(k // 2 for k in kernel)  # scipy's origin=0: the centre is tap k // 2


def _check_mode(mode):
    if not isinstance(mode, str) or mode not in _MODES:
        allowed = ", ".join(repr(m) for m in _MODES)
        raise ValueError(f"mode={mode!r} is not a boundary mode; expected one of {allowed}.")


def border_sharing(input_shape, kernel_size, mode):
    """Sharing of a ``'same'`` correlation under one of scipy.ndimage's boundary modes.

    The output ``y[o] = sum_t kernel[t] * x[o + t - k // 2]`` (per axis; scipy's origin for odd
    and even kernels alike) lies on the input grid; where ``o + t - k // 2`` leaves the grid the
    border ``mode`` decides which input is read, with the definitions of
    :func:`scipy.ndimage.correlate`: ``'reflect'`` (d c b a | a b c d | d c b a), ``'mirror'``
    (d c b | a b c d | c b a), ``'nearest'`` (a a a | a b c d | d d d), ``'wrap'`` (circular) and
    ``'constant'`` (zeros). An entry of the ``n x n`` weight matrix is then a *sum* of taps (near
    the borders one input may be read by several taps); two entries share a group when they
    receive the same multiset of taps, so the sharing is that of a generic kernel. The entries no
    tap reaches form one more group (the zeros).

    Parameters
    ----------
    input_shape : int or tuple of int
        ``n`` (or ``(n,)``) for a sequence, ``(h, w)`` for an image (flattened row-major).
    kernel_size : int or tuple of int
        ``k`` or ``(kh, kw)``, odd or even; an int gives a square kernel. It may exceed the
        input, as scipy allows.
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}
        The boundary mode.

    Returns
    -------
    labels : ndarray of shape (n * n,), dtype int64
        Canonical labels of the weight entries, row-major (entry ``(o, i)`` is ``o * n + i``),
        ``n = prod(input_shape)``.

    Examples
    --------
    Three taps ``a, b, c`` on four positions: under ``'reflect'`` the first output reads its
    first input twice (``a + b``), under ``'constant'`` not at all beyond the edge.

    >>> from sharelearn.symmetry import border_sharing
    >>> border_sharing(4, 3, "reflect").reshape(4, 4)
    array([[0, 1, 2, 2],
           [3, 4, 1, 2],
           [2, 3, 4, 1],
           [2, 2, 3, 5]])
    >>> border_sharing(4, 3, "constant").reshape(4, 4)
    array([[0, 1, 2, 2],
           [3, 0, 1, 2],
           [2, 3, 0, 1],
           [2, 2, 3, 0]])
    """
    in_shape = check_dims(input_shape, "input_shape")
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        k_shape = (check_int(kernel_size, "kernel_size", min_value=1),) * len(in_shape)
    else:
        k_shape = check_dims(kernel_size, "kernel_size")
        if len(k_shape) != len(in_shape):
            raise ValueError(
                f"kernel_size={kernel_size!r} has {len(k_shape)} dimensions but "
                f"input_shape={input_shape!r} has {len(in_shape)}."
            )
    _check_mode(mode)
    if len(in_shape) == 1:
        in_shape, k_shape = (1,) + in_shape, (1,) + k_shape
    n = in_shape[0] * in_shape[1]
    entries, taps = _reading_taps(in_shape, in_shape, k_shape, _starts(k_shape, "same"), mode)
    labels = _multiset_labels(entries, taps, n * n)
    return canonical_labels(np.where(labels >= 0, labels, labels.max() + 1))


# ---------------------------------------------------------------------------
# the structure of a sharing
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SharingStructure:
    """A sharing read as a convolution, as found by :func:`describe_sharing`.

    Attributes
    ----------
    kind : {"convolution", None}
        None when no convolution reading explains the sharing.
    ndim : {1, 2} or None
        1 for a sequence (an input grid ``1 x n``), 2 for an image.
    grid : tuple of int or None
        The input grid, ``(n,)`` or ``(h, w)``.
    output_grid : tuple of int or None
        The output grid, in the same form.
    kernel_shape : tuple of int or None
        The smallest kernel that explains the sharing, ``(k,)`` or ``(kh, kw)``.
    border : {"valid", "full", "circular", "zero", "reflect", "nearest", "mirror"} or None
        ``"valid"`` (outputs where the kernel fits), ``"full"`` (every overlap, zero padded:
        ``np.convolve``'s ``'full'``), or the border of a same-size output: ``"circular"``
        (scipy's ``'wrap'``), ``"zero"`` (``'constant'``), ``"reflect"``, ``"nearest"``,
        ``"mirror"``.
    equivalent_borders : tuple of str
        Every border mode that gives this kernel the same sharing as ``border`` (``border``
        first), e.g. ``("reflect", "nearest")`` for a kernel 3 wide.
    kernel_symmetry : str
        Which symmetries of the kernel its tied taps show (read in the interior outputs), e.g.
        ``"symmetric under D_4 (all rotations and reflections)"``, ``"mirror-symmetric
        left-right"``; ``""`` for none.
    kernel_labels : ndarray of int or None
        The kernel's taps as groups of the sharing (canonical; the zeros' group, if some tap is
        in it, is ``-1``).
    departures : ndarray of bool, shape (n_out, n_in), or None
        Entries whose group differs from what a translation-equivariant map with the interior
        kernel gives them: entry ``(o, i)`` belongs to the tap at offset ``i - o`` (modulo the
        grid for ``"circular"``) when that offset lies in the kernel's window, and to the zeros'
        group otherwise. The border outputs of ``reflect``, ``nearest`` and ``mirror`` depart;
        zero padding does not. Exceptions depart too.
    exceptions : ndarray of bool, shape (n_out, n_in), or None
        Entries that fit neither the border rule nor the convolution.
    n_exceptions : int
        Their number.
    kernel_offsets : tuple of (int, int)
        Per axis, the offsets ``i - o`` of the kernel's first and last taps from their output:
        ``(-(k // 2), k - 1 - k // 2)`` for scipy's centred kernels (and valid readings count
        from ``0``, full ones from ``-(k - 1)``); a circular kernel may sit anywhere, and the
        text says where when it is not centred.
    dead_inputs, dead_outputs : tuple of int
        Inputs (columns) and outputs (rows) that the kernel reaches but whose entries are all in
        the zeros' group.
    text : str
        The structure in a sentence (see :meth:`describe`).
    """

    kind: str | None
    ndim: int | None
    grid: tuple | None
    kernel_shape: tuple | None
    border: str | None
    kernel_symmetry: str
    departures: np.ndarray | None = field(repr=False)
    n_exceptions: int
    text: str
    output_grid: tuple | None = None
    equivalent_borders: tuple = ()
    kernel_labels: np.ndarray | None = field(default=None, repr=False)
    exceptions: np.ndarray | None = field(default=None, repr=False)
    dead_inputs: tuple = ()
    dead_outputs: tuple = ()
    kernel_offsets: tuple = ()

    def describe(self):
        """The structure in a sentence.

        Examples
        --------
        >>> from sharelearn.symmetry import describe_sharing, shift_sharing
        >>> describe_sharing(shift_sharing(16, 3), (14, 16)).describe()
        '1-D convolution, kernel 3, 16 -> 14 (valid)'
        """
        return self.text

    def __str__(self):
        return self.text


@dataclass
class _Reading:
    """One way of reading the layer: grids, kernel, output kind and border mode."""

    in_grid: tuple
    out_grid: tuple
    kernel: tuple
    kind: str  # "valid", "full" or "same"
    mode: str  # border mode for "same"; "constant" for valid and full
    starts: tuple | None = None  # the first tap's distance before its output; None: scipy's

    def origin(self):
        return self.starts if self.starts is not None else _starts(self.kernel, self.kind)

    def like(self, **changes):
        fields = {"in_grid": self.in_grid, "out_grid": self.out_grid, "kernel": self.kernel,
                  "kind": self.kind, "mode": self.mode, "starts": self.starts}
        fields.update(changes)
        return _Reading(**fields)

    def model(self):
        entries, taps = _reading_taps(self.in_grid, self.out_grid, self.kernel, self.origin(),
                                      self.mode)
        n = (self.in_grid[0] * self.in_grid[1]) * (self.out_grid[0] * self.out_grid[1])
        return _multiset_labels(entries, taps, n), entries, taps


def _match(model, labels, n_labels):
    """Each model group's best given group.

    Returns ``(expected label per entry, zeros label, merged)``, ``merged`` the number of model
    groups matched to a given group that another model group has already (tied taps, or a
    reading finer than the map). ``model`` has ``-1`` for the entries no tap reaches. Ties go
    to the smaller given label.
    """
    groups = np.where(model >= 0, model + 1, 0)  # the zeros first
    n_groups = int(groups.max()) + 1
    pairs = groups * n_labels + labels
    if n_groups * n_labels <= 4 * pairs.size:
        counts = np.bincount(pairs, minlength=n_groups * n_labels).reshape(n_groups, n_labels)
        best = counts.argmax(axis=1)
    else:
        uniq, counts = np.unique(pairs, return_counts=True)
        g, lab = np.divmod(uniq, n_labels)
        order = np.lexsort((lab, -counts, g))
        first = order[np.r_[True, g[order][1:] != g[order][:-1]]]
        best = np.zeros(n_groups, dtype=np.int64)
        best[g[first]] = lab[first]
    present = np.zeros(n_groups, dtype=bool)
    present[groups] = True
    zeros = int(best[0]) if present[0] else -1
    merged = int(present.sum()) - np.unique(best[present]).size
    return best[groups], zeros, merged


def _chain_offsets(k):
    """The offsets ``-(k // 2) .. k - 1 - k // 2`` of a centred kernel of size ``k``."""
    return -(k // 2), k - 1 - k // 2


def _smallest_covering(low, high, k_max):
    """The smallest centred kernel size whose offsets contain ``low..high``."""
    for k in range(1, k_max + 1):
        a, b = _chain_offsets(k)
        if a <= low and high <= b:
            return k
    return k_max


class _Reader:
    """Fits readings to one label matrix and keeps the best."""

    def __init__(self, labels, shape):
        self.labels = labels
        self.n_labels = int(labels.max()) + 1
        self.shape = shape
        self.cache = {}

    def fit(self, reading):
        key = (reading.in_grid, reading.out_grid, reading.kernel, reading.kind, reading.mode,
               reading.origin())
        if key not in self.cache:
            model, entries, taps = reading.model()
            expected, zeros, merged = _match(model, self.labels, self.n_labels)
            wrong = expected != self.labels
            self.cache[key] = (int(wrong.sum()), model, expected, zeros, wrong, merged)
        return self.cache[key]

    def tap_labels(self, reading, zeros):
        """The given group of each tap, read in the interior outputs (majority; ``-1`` for the
        zeros' group)."""
        entries, taps = _reading_taps(reading.in_grid, reading.out_grid, reading.kernel,
                                      reading.origin(), "constant")
        n_in = reading.in_grid[0] * reading.in_grid[1]
        n_taps = reading.kernel[0] * reading.kernel[1]
        outputs = entries // n_in
        full = np.bincount(outputs, minlength=reading.out_grid[0] * reading.out_grid[1])
        inside = full[outputs] == n_taps  # outputs that every tap reaches without a border
        if not inside.any():  # pragma: no cover - a kernel no larger than its grid has some
            inside[:] = True
        lab = self.labels[entries[inside]]
        t = taps[inside]
        counts = np.zeros((n_taps, self.n_labels), dtype=np.int64)
        np.add.at(counts, (t, lab), 1)
        best = counts.argmax(axis=1)
        return np.where(best == zeros, -1, best)


def _grids(n):
    """Every ``h x w`` reading of ``n`` cells with ``h <= w`` or ``w > 1``: ``1 x n`` (the
    sequence) first, then squarest first; ``n x 1`` is the sequence again and is left out."""
    pairs = [(h, n // h) for h in range(2, n + 1) if n % h == 0 and n // h > 1]
    return [(1, n)] + sorted(pairs, key=lambda p: (abs(p[0] - p[1]), p))


def _check_grids(grids, n_in):
    if grids is None:
        return _grids(n_in)
    if isinstance(grids, numbers.Integral) or (
        isinstance(grids, tuple) and all(isinstance(g, numbers.Integral) for g in grids)
    ):
        grids = [grids]
    out = []
    for g in grids:
        dims = check_dims(g, "grids")
        dims = (1,) + dims if len(dims) == 1 else dims
        if dims[0] * dims[1] != n_in:
            raise ValueError(
                f"grids must list input grids of n_in = {n_in} cells, got the grid {g!r} of "
                f"{dims[0] * dims[1]} cells."
            )
        out.append(dims)
    if not out:
        raise ValueError("grids must list at least one input grid, got an empty list.")
    return out


def _candidates(n_out, in_grid):
    """The valid and full readings of ``in_grid`` for ``n_out`` outputs (kernels within the
    bound), and whether same-size readings apply."""
    hi, wi = in_grid
    found = []
    for ho in ([1] if hi == 1 else range(1, n_out + 1)):
        if n_out % ho:
            continue
        wo = n_out // ho
        if hi == 1 and ho != 1:
            continue
        if ho <= hi and wo <= wi and (ho, wo) != (hi, wi):
            kernel = (hi - ho + 1, wi - wo + 1)
            if max(kernel) <= MAX_KERNEL:
                found.append(_Reading(in_grid, (ho, wo), kernel, "valid", "constant"))
        elif ho >= hi and wo >= wi and (ho, wo) != (hi, wi):
            kernel = (ho - hi + 1, wo - wi + 1)
            if max(kernel) <= MAX_KERNEL:
                found.append(_Reading(in_grid, (ho, wo), kernel, "full", "constant"))
    return found


def _rank(reading, n_wrong, merged, grid_rank):
    mode_rank = _MODES.index(reading.mode) if reading.kind == "same" else 0
    return (n_wrong, reading.kernel[0] * reading.kernel[1], merged, mode_rank, grid_rank,
            reading.kernel)


def _best_kernel(reader, reading, n_wrong):
    """The smallest same-size kernel of ``reading``'s grid and mode as good as ``reading``'s."""
    _, model, expected, zeros, _, _ = reader.fit(reading)
    if reading.mode == "wrap":
        found = _circular_window(reader, reading, n_wrong, model, zeros)
        if found is not None:
            return found
    taps = reader.tap_labels(reading, zeros)
    kh, kw = reading.kernel
    nonzero = np.flatnonzero(taps >= 0)
    if nonzero.size == 0:
        return reading
    r, c = np.divmod(nonzero, kw)
    r0, c0 = _chain_offsets(kh)[0], _chain_offsets(kw)[0]
    small = (_smallest_covering(r.min() + r0, r.max() + r0, kh),
             _smallest_covering(c.min() + c0, c.max() + c0, kw))
    # the kernels between the smallest covering one and the largest, fewest taps first
    sizes = sorted(((a, b) for a in range(small[0], kh + 1) for b in range(small[1], kw + 1)),
                   key=lambda k: (k[0] * k[1], k))
    for k in sizes[:6]:
        candidate = reading.like(kernel=k)
        if reader.fit(candidate)[0] <= n_wrong:
            return candidate
    return reading


def _circular_window(reader, reading, n_wrong, model, zeros):
    """On a torus the kernel need not be centred: the smallest window of offsets (cyclic where
    the kernel spans the grid) that holds every tap outside the zeros' group."""
    taps = reader.tap_labels(reading, zeros)
    if zeros < 0:  # the kernel covers the torus: its most repeated tap stands for the zeros
        values, counts = np.unique(taps, return_counts=True)
        if counts.max() < 2:
            return None
        taps = np.where(taps == values[np.argmax(counts)], -1, taps)
    taps = taps.reshape(reading.kernel)
    if np.count_nonzero(taps >= 0) == 0:
        return None
    kernel, starts = [], []
    for axis, (k, start, n) in enumerate(zip(reading.kernel, reading.origin(),
                                             reading.in_grid, strict=True)):
        used = np.flatnonzero((taps >= 0).any(axis=1 - axis))  # taps along this axis
        first, length = int(used[0]), int(used[-1] - used[0] + 1)
        if k == n:  # cyclic: the shortest arc holding the used offsets
            gaps = np.diff(np.r_[used, used[0] + n])
            j = int(np.argmax(gaps))
            first = int(used[(j + 1) % used.size])
            length = int(n - gaps[j] + 1)
        kernel.append(length)
        starts.append(start - first)
    candidate = reading.like(kernel=tuple(kernel), starts=tuple(starts))
    if candidate.origin() == _starts(candidate.kernel, "same"):
        candidate = candidate.like(starts=None)
    return candidate if reader.fit(candidate)[0] <= n_wrong else None


def _kernel_symmetry(taps, ndim):
    """Words for the symmetries of the kernel's tied taps."""
    if ndim == 1:
        return "mirror-symmetric" if taps.size > 1 and np.array_equal(taps, taps[:, ::-1]) else ""
    ops = {
        "flip_cols": lambda k: k[:, ::-1],
        "flip_rows": lambda k: k[::-1, :],
        "rot180": lambda k: k[::-1, ::-1],
    }
    if taps.shape[0] == taps.shape[1]:
        ops.update({
            "rot90": np.rot90,
            "transpose": lambda k: k.T,
            "antitranspose": lambda k: k[::-1, ::-1].T,
        })
    kept = {name for name, op in ops.items() if np.array_equal(op(taps), taps)}
    if len(kept) == 6:
        return "symmetric under D_4 (all rotations and reflections)"
    if "rot90" in kept:
        return "symmetric under rotations by 90 degrees (C_4)"
    if {"flip_cols", "flip_rows"} <= kept:
        return "mirror-symmetric left-right and up-down (D_2)"
    if {"transpose", "antitranspose"} <= kept:
        return "mirror-symmetric across both diagonals"
    for name, words in (("flip_cols", "left-right"), ("flip_rows", "up-down"),
                        ("transpose", "across the main diagonal"),
                        ("antitranspose", "across the anti-diagonal")):
        if name in kept:
            return f"mirror-symmetric {words}"
    if "rot180" in kept:
        return "symmetric under 180-degree rotation"
    return ""


def _grid_text(grid, ndim):
    return f"{grid[1]}" if ndim == 1 else f"{grid[0]} x {grid[1]}"


def _none(reason):
    text = "no convolution describes this sharing: " + reason
    return SharingStructure(kind=None, ndim=None, grid=None, kernel_shape=None, border=None,
                            kernel_symmetry="", departures=None, n_exceptions=0, text=text)


def describe_sharing(labels, shape, grids=None):
    """Read a sharing as a convolution: grid, kernel, border rule and the entries that depart.

    Every reading of the inputs as an ``h x w`` grid (``1 x n`` is a sequence) is tried with
    outputs that are a valid (``(h - kh + 1) x (w - kw + 1)``), full (``(h + kh - 1) x
    (w + kw - 1)``) or same-size correlation, the latter under each of scipy.ndimage's border
    modes (:func:`border_sharing`), with kernels up to :data:`MAX_KERNEL` taps per axis. The
    reading that explains the most entries wins; ties go to the smallest kernel, then to the
    reading that merges the fewest of its generic groups, then to the modes in the order wrap
    (circular), constant (zero), reflect, nearest, mirror, then to the squarer grid (the module
    docstring says how a reading explains an entry). Readings whose kernel has fewer than two
    taps outside the zeros' group, or that leave more than 10% of the entries their kernel
    reaches unexplained, are not accepted.

    Parameters
    ----------
    labels : array-like of shape (n_out * n_in,)
        Group labels of the weight entries, row-major (entry ``(o, i)`` is ``o * n_in + i``).
    shape : tuple of two ints
        ``(n_out, n_in)``.
    grids : int, tuple or list of them, default=None
        The input grids to try, ``n`` or ``(h, w)`` with ``h * w = n_in``; None tries every one.

    Returns
    -------
    structure : SharingStructure
        ``kind="convolution"`` with the grid, kernel, border, kernel symmetry, departures and
        exceptions, or ``kind=None`` when no reading fits.

    Raises
    ------
    ValueError
        If ``labels`` is not a 1-D array of ``n_out * n_in`` non-negative integer labels, or
        ``shape`` or ``grids`` do not fit.

    Examples
    --------
    A valid 3 x 3 convolution on an 8 x 8 image, whose group is trivial:

    >>> from sharelearn.symmetry import describe_sharing, shift_sharing
    >>> structure = describe_sharing(shift_sharing((8, 8), 3), (36, 64))
    >>> structure.kind, structure.kernel_shape, structure.border
    ('convolution', (3, 3), 'valid')
    >>> print(structure)
    2-D convolution (cross-correlation), 3 x 3 kernel, 8 x 8 -> 6 x 6 (valid)

    A zero-padded Laplacian is a same-size convolution with a symmetric kernel:

    >>> import numpy as np
    >>> from scipy.ndimage import laplace
    >>> eye = np.eye(36).reshape(36, 6, 6)
    >>> weight = np.stack([laplace(e, mode="constant").ravel() for e in eye], axis=1)
    >>> print(describe_sharing(np.unique(weight, return_inverse=True)[1].ravel(), (36, 36)))
    2-D convolution (cross-correlation), 3 x 3 kernel on a 6 x 6 image, same size with zero
    padding; kernel symmetric under D_4 (all rotations and reflections)
    """
    from .generators import _check_layer_shape

    n_out, n_in = _check_layer_shape(shape)
    labels = _as_labels(labels, "labels")
    if labels.size != n_out * n_in:
        raise ValueError(
            f"labels has {labels.size} entries but shape={(n_out, n_in)} has "
            f"{n_out} x {n_in} = {n_out * n_in} weight entries."
        )
    in_grids = _check_grids(grids, n_in)
    labels = canonical_labels(labels)
    reader = _Reader(labels, (n_out, n_in))

    best = None  # (rank, reading)
    for grid_rank, grid in enumerate(in_grids):
        tried = _candidates(n_out, grid)
        if n_out == n_in:
            k_max = (min(MAX_KERNEL, grid[0]), min(MAX_KERNEL, grid[1]))
            # on a torus a kernel at offsets 0..k-1 (make_convolution's circular maps) is a
            # centred one of 2k - 1 taps, half of them zero: room for it up to MAX_KERNEL taps
            # (never the whole torus: a kernel as large as the grid describes any circulant)
            k_wrap = tuple(max(k, min(2 * MAX_KERNEL - 1, g - 1))
                           for k, g in zip(k_max, grid, strict=True))
            tried += [_Reading(grid, grid, k_wrap if mode == "wrap" else k_max, "same", mode)
                      for mode in _MODES]
        for reading in tried:
            n_wrong = reader.fit(reading)[0]
            if best is not None and n_wrong > best[0][0]:
                continue  # a smaller kernel of this grid and mode cannot do better
            if reading.kind == "same":
                reading = _best_kernel(reader, reading, n_wrong)
            n_wrong, _, _, zeros, _, merged = reader.fit(reading)
            taps = reader.tap_labels(reading, zeros)
            if np.count_nonzero(taps >= 0) < 2:
                continue
            rank = _rank(reading, n_wrong, merged, grid_rank)
            if best is None or rank < best[0]:
                best = (rank, reading)
    if best is None:
        return _none("no reading has a kernel of two or more distinct taps.")
    reading = best[1]
    n_wrong, model, expected, zeros, wrong, _ = reader.fit(reading)
    reached = int(np.count_nonzero(model >= 0))
    if n_wrong > _MAX_EXCEPTIONS * reached:
        return _none(
            f"the best reading leaves {n_wrong} of the {labels.size} entries unexplained.")
    return _structure(reader, reading)


def _structure(reader, reading):
    labels = reader.labels
    n_wrong, model, expected, zeros, wrong, _ = reader.fit(reading)
    in_grid, out_grid = reading.in_grid, reading.out_grid
    n_out, n_in = out_grid[0] * out_grid[1], in_grid[0] * in_grid[1]
    ndim = 1 if in_grid[0] == 1 else 2
    taps = reader.tap_labels(reading, zeros)

    # the translation-equivariant map with the interior kernel
    pure_mode = "wrap" if reading.mode == "wrap" else "constant"
    pure = reading.like(mode=pure_mode)
    pure_model = pure.model()[0]
    tap_group = np.where(taps >= 0, taps, zeros)
    ideal = np.where(pure_model >= 0, tap_group[np.maximum(pure_model, 0)], zeros)
    departures = (ideal != labels).reshape(n_out, n_in)
    exceptions = wrong.reshape(n_out, n_in)

    # the border modes that give this kernel the same sharing
    equivalent = (reading.mode,)
    if reading.kind == "same":
        own = canonical_labels(np.where(model >= 0, model, model.max() + 1))
        for mode in _MODES:
            if mode == reading.mode:
                continue
            other = reading.like(mode=mode).model()[0]
            if np.array_equal(canonical_labels(np.where(other >= 0, other, other.max() + 1)),
                              own):
                equivalent += (mode,)
    borders = tuple(_BORDER[m] for m in equivalent) if reading.kind == "same" else (reading.kind,)

    # inputs and outputs that the kernel reaches but whose entries all sit with the zeros
    lab = labels.reshape(n_out, n_in)
    reached = (model >= 0).reshape(n_out, n_in)
    is_zero = lab == zeros
    dead_in = tuple(int(i) for i in np.flatnonzero(is_zero.all(axis=0) & reached.any(axis=0)
                                                   & exceptions.any(axis=0)))
    dead_out = tuple(int(o) for o in np.flatnonzero(is_zero.all(axis=1) & reached.any(axis=1)
                                                    & exceptions.any(axis=1)))

    kernel = reading.kernel[1:] if ndim == 1 else reading.kernel
    kernel_taps = taps.reshape(reading.kernel)
    symmetry = _kernel_symmetry(kernel_taps, ndim)
    grid = (in_grid[1],) if ndim == 1 else in_grid
    out = (out_grid[1],) if ndim == 1 else out_grid

    # the sentence
    offsets = tuple((-s, k - 1 - s) for k, s in zip(reading.kernel, reading.origin(),
                                                     strict=True))
    centred = reading.kind != "same" or reading.starts is None
    at = " x ".join(f"{a}..{b}" for a, b in (offsets[1:] if ndim == 1 else offsets))
    at = "" if centred else f" at offsets {at}"
    if ndim == 1:
        text = f"1-D convolution, kernel {kernel[0]}{at}"
    else:
        text = f"2-D convolution (cross-correlation), {kernel[0]} x {kernel[1]} kernel{at}"
    if reading.kind in ("valid", "full"):
        text += (f", {_grid_text(in_grid, ndim)} -> {_grid_text(out_grid, ndim)} "
                 f"({reading.kind})")
    else:
        where = f"{in_grid[1]} positions" if ndim == 1 else f"a {in_grid[0]} x {in_grid[1]} image"
        if reading.mode == "constant":
            rule = "zero padding"
        elif reading.mode == "wrap":
            rule = "circular (wrap) borders"
        else:
            rule = " or ".join(b for b in borders if b not in ("zero", "circular")) + " borders"
        text += f" on {where}, same size with {rule}"
        if reading.mode in ("reflect", "nearest", "mirror"):
            n_border = int((departures & ~exceptions).any(axis=1).sum())
            text += (f" (the {n_border} border output{'s' if n_border != 1 else ''} "
                     f"differ{'s' if n_border == 1 else ''} from the interior)")
    if symmetry:
        text += f"; kernel {symmetry}"
    if n_wrong:
        text += f"; {n_wrong} entr{'y departs' if n_wrong == 1 else 'ies depart'}"
        notes = []
        if dead_in:
            notes.append(_dead_words("input", dead_in, in_grid, ndim, "never read"))
        if dead_out:
            notes.append(_dead_words("output", dead_out, out_grid, ndim, "always zero"))
        if notes:
            text += f" ({'; '.join(notes)})"

    canon_taps = np.full(taps.shape, -1, dtype=np.int64)
    if (taps >= 0).any():
        canon_taps[taps >= 0] = canonical_labels(taps[taps >= 0])
    return SharingStructure(
        kind="convolution", ndim=ndim, grid=grid, kernel_shape=tuple(kernel), border=borders[0],
        kernel_symmetry=symmetry, departures=departures, n_exceptions=n_wrong, text=text,
        output_grid=out, equivalent_borders=borders,
        kernel_labels=canon_taps.reshape(kernel), exceptions=exceptions,
        dead_inputs=dead_in, dead_outputs=dead_out,
        kernel_offsets=offsets[1:] if ndim == 1 else offsets,
    )


def _dead_words(what, cells, grid, ndim, state):
    def cell(i):
        return f"{i}" if ndim == 1 else f"{i} (pixel {divmod(i, grid[1])})"

    shown = ", ".join(cell(i) for i in cells[:5]) + (", ..." if len(cells) > 5 else "")
    plural = "s" if len(cells) > 1 else ""
    verb = "are" if len(cells) > 1 else "is"
    return f"{what}{plural} {shown} {verb} {state}"
