"""The sharing of a convolution: the one place where a kernel's taps are laid on a weight matrix.

:func:`shift_sharing` and :func:`sharelearn.datasets.make_convolution` both build on
``_tap_index``, so a convolution's labels are the same wherever they come from.

Why build it from offsets rather than as an orbit partition? A *valid* (non-circular) convolution
is not invariant under any translation of its finite index sets: each tap ties output ``o`` to
input ``o + t``, and keeping two taps forces both permutations to be the identity along that axis.
Its group is therefore trivial as soon as the kernel has two taps along every axis longer than
one; with one tap along an axis, the lines along that axis can be permuted together on outputs and
inputs (a 1-D one-tap kernel is a diagonal sharing, with group ``S_n``). Translation is only a
*partial* symmetry of such a layer, and the same holds for ``'same'`` zero padding. A *circular*
convolution is invariant under the cyclic shifts and, with two taps along every axis longer than
one, under nothing else: ``C_n`` in 1-D; in 2-D the translations of the image torus,
``C_h x C_w`` as an abstract group, named as the wallpaper group ``p1 on the h x w torus`` (for
``h, w >= 3``; see :mod:`~sharelearn.symmetry.wallpaper`). A kernel symmetric under rotations or
reflections adds them (``p4m`` for ``[[a, b, a], [b, c, b], [a, b, a]]``). A ``1 x k`` kernel on
an image gives a larger (wreath-product) group, which is described by its order.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_dims, check_int
from ..partition import canonical_labels

__all__ = ["border_hypotheses", "shift_hypotheses", "shift_sharing"]

_CONV_MODES = ("valid", "same", "circular")


def _check_conv_geometry(input_shape, kernel_size, mode):
    """Validate the shapes and mode of a convolution; ``(input shape, kernel shape)`` as tuples."""
    in_shape = check_dims(input_shape, "input_shape")
    ndim = len(in_shape)
    if isinstance(kernel_size, numbers.Integral):
        k = check_int(kernel_size, "kernel_size", min_value=1)
        k_shape = (k,) * ndim
    else:
        k_shape = check_dims(kernel_size, "kernel_size")
        if len(k_shape) != ndim:
            raise ValueError(
                f"kernel_size={kernel_size!r} has {len(k_shape)} dimensions but "
                f"input_shape={input_shape!r} has {ndim}."
            )
    if not isinstance(mode, str) or mode not in _CONV_MODES:
        allowed = ", ".join(repr(m) for m in _CONV_MODES)
        raise ValueError(f"mode={mode!r} is not supported; expected one of {allowed}.")
    if mode == "same" and ndim != 1:
        raise ValueError(
            f"mode='same' is only supported for 1-D inputs, got input_shape={input_shape!r}; "
            "use 'valid' or 'circular' for 2-D inputs."
        )
    if any(k > n for k, n in zip(k_shape, in_shape, strict=True)):
        if ndim == 1:
            raise ValueError(
                f"kernel_size={k_shape[0]} must be <= n_in={in_shape[0]} for mode={mode!r}."
            )
        raise ValueError(
            f"kernel_size={k_shape} must be <= input_shape={in_shape} in every dimension "
            f"for mode={mode!r}."
        )
    return in_shape, k_shape


def _output_shape(input_shape, kernel_shape, mode):
    """Output size per dimension of a cross-correlation."""
    if mode == "valid":
        return tuple(n - k + 1 for n, k in zip(input_shape, kernel_shape, strict=True))
    return tuple(input_shape)


def _tap_index(input_shape, kernel_shape, mode):
    """Map each entry of the dense correlation matrix to the kernel tap landing there.

    Returns an ``int64`` array of shape ``(n_out, n_in)`` whose entry ``(o, i)``
    is the row-major index of the kernel tap that multiplies input ``i`` in
    output ``o``, or ``-1`` where no tap lands (a structural zero).  The output
    is ``y[o] = sum_t kernel[t] * x[o + t - pad]`` per dimension, with
    ``pad = 0`` for 'valid' and 'circular' (indices taken modulo the input
    size) and ``pad = (k - 1) // 2`` for 'same' (out-of-range indices are zero
    padding).
    """
    in_shape = np.asarray(input_shape, dtype=np.int64)
    k_shape = np.asarray(kernel_shape, dtype=np.int64)
    out_shape = _output_shape(input_shape, kernel_shape, mode)
    ndim = len(input_shape)
    n_in = int(np.prod(in_shape))
    n_out = int(np.prod(out_shape))
    n_taps = int(np.prod(k_shape))

    pad = (k_shape - 1) // 2 if mode == "same" else np.zeros(ndim, dtype=np.int64)
    out_idx = np.indices(out_shape).reshape(ndim, -1)  # (ndim, n_out)
    tap_idx = np.indices(tuple(kernel_shape)).reshape(ndim, -1)  # (ndim, n_taps)
    src = out_idx[:, :, None] + tap_idx[:, None, :] - pad[:, None, None]
    if mode == "circular":
        src = src % in_shape[:, None, None]
        inside = np.ones(src.shape[1:], dtype=bool)
    else:
        inside = np.all((src >= 0) & (src < in_shape[:, None, None]), axis=0)

    strides = np.ones(ndim, dtype=np.int64)  # row-major strides of the input
    for d in range(ndim - 2, -1, -1):
        strides[d] = strides[d + 1] * in_shape[d + 1]
    flat_src = np.tensordot(strides, src, axes=1)  # (n_out, n_taps)

    rows = np.broadcast_to(np.arange(n_out)[:, None], (n_out, n_taps))[inside]
    cols = flat_src[inside]
    taps = np.broadcast_to(np.arange(n_taps)[None, :], (n_out, n_taps))[inside]
    if np.unique(rows * n_in + cols).size != rows.size:
        raise ValueError(
            f"Two kernel taps land on the same weight entry: kernel_size={tuple(kernel_shape)} "
            f"is too large for input_shape={tuple(input_shape)} in mode={mode!r}."
        )
    index = np.full((n_out, n_in), -1, dtype=np.int64)
    index[rows, cols] = taps
    return index


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
    in_shape, k_shape = _check_conv_geometry(input_shape, kernel_size, mode)
    index = _tap_index(in_shape, k_shape, mode)
    # the structural zeros (-1) become one more group
    return canonical_labels(np.where(index >= 0, index, index.max() + 1).ravel())


def _grids(n):
    """Every way of reading ``n`` entries as a row-major ``h x w`` grid (``1 x n`` included)."""
    return [(h, n // h) for h in range(1, n + 1) if n % h == 0]


def _offset_sharing(out_grid, in_grid, circular):
    """One group per offset ``(i_r - o_r, i_c - o_c)`` between an output and an input cell
    (taken modulo the grid when ``circular``): every convolution on these grids is a
    coarsening of it."""
    (ho, wo), (hi, wi) = out_grid, in_grid
    o_r, o_c = np.divmod(np.arange(ho * wo), wo)
    i_r, i_c = np.divmod(np.arange(hi * wi), wi)
    dr = i_r[None, :] - o_r[:, None]
    dc = i_c[None, :] - o_c[:, None]
    if circular:
        dr, dc = dr % hi, dc % wi
    return canonical_labels(((dr + ho) * (wi + wo + 1) + dc + wo).ravel())


def shift_hypotheses(shape, max_groups=256, max_channels=1):
    """The convolutions that a dense layer of ``shape = (n_out, n_in)`` can be read as.

    A flattened image or signal does not say its geometry, but its size limits it: the inputs
    can be a row-major ``h x w`` grid only for ``h * w = n_in`` (``1 x n_in`` is a sequence),
    and likewise the outputs. For every pair of such readings this gives the sharing of the
    widest convolution between them:

    * outputs a ``h' x w'`` grid inside the inputs' ``h x w`` (``h' <= h``, ``w' <= w``): the valid
      cross-correlation with the full ``(h - h' + 1) x (w - w' + 1)`` kernel, plus one group of
      structural zeros (:func:`shift_sharing`, ``'valid'``);
    * outputs on the inputs' own grid: the circular convolution with a kernel as large as the
      grid (one group per offset modulo the grid), and the zero-padded one (one group per
      offset, no wrapping; every ``'same'`` convolution merges some of these groups).

    A convolution with a smaller kernel is a coarsening of one of these (its unused taps merged
    into the zeros), which is why :class:`~sharelearn.SharingDiscoverer` evaluates them as
    starting points of its search (``init="auto"``): the search merges what the data do not
    separate. Each sharing is listed once, under the first reading that produces it.

    Parameters
    ----------
    shape : tuple of two ints
        ``(n_out, n_in)``.
    max_groups : int, default=256
        Sharings with more groups are left out (a hypothesis with thousands of groups is
        costly to score and is never a useful start).
    max_channels : int, default=1
        Also read the outputs as ``c`` channels of ``n_out / c`` consecutive rows each, for
        every ``2 <= c <= max_channels`` that divides ``n_out``: each channel is a valid
        convolution with its own kernel, and the structural zeros of all channels are one
        group (a convolutional layer with ``c`` output channels, flattened channel-first).

    Returns
    -------
    dict
        Description (e.g. ``"valid 3 x 3 kernel, 8 x 8 -> 6 x 6"``) -> labels of the
        ``n_out * n_in`` entries (row-major ``W``).

    Examples
    --------
    >>> from sharelearn.symmetry import shift_hypotheses
    >>> hyp = shift_hypotheses((36, 64))
    >>> "valid 3 x 3 kernel, 8 x 8 -> 6 x 6" in hyp
    True
    >>> from sharelearn.symmetry import shift_sharing
    >>> bool((hyp["valid 3 x 3 kernel, 8 x 8 -> 6 x 6"] == shift_sharing((8, 8), 3)).all())
    True
    """
    from .generators import _check_layer_shape

    n_out, n_in = _check_layer_shape(shape)
    max_groups = check_int(max_groups, "max_groups", min_value=1)
    found, seen = {}, set()

    def keep(text, labels):
        if int(labels.max()) + 1 > max_groups:
            return
        key = labels.tobytes()
        if key not in seen:
            seen.add(key)
            found[text] = labels

    def grid_text(g):
        return f"{g[0]} x {g[1]}" if g[0] > 1 else f"{g[1]}"

    for hi, wi in _grids(n_in):
        for ho, wo in _grids(n_out):
            if ho > hi or wo > wi:
                continue
            kernel = (hi - ho + 1, wi - wo + 1)
            if (ho, wo) == (hi, wi):
                grid = grid_text((hi, wi))
                keep(f"circular, full kernel, {grid}", _offset_sharing((ho, wo), (hi, wi), True))
                keep(f"zero-padded, every offset, {grid}",
                     _offset_sharing((ho, wo), (hi, wi), False))
                continue
            index = _tap_index((hi, wi), kernel, "valid")
            labels = canonical_labels(np.where(index >= 0, index, index.max() + 1).ravel())
            ktext = f"{kernel[0]} x {kernel[1]}" if hi > 1 else f"{kernel[1]}"
            keep(f"valid {ktext} kernel, {grid_text((hi, wi))} -> "
                 f"{grid_text((ho, wo))}", labels)
    max_channels = check_int(max_channels, "max_channels", min_value=1)
    for c in range(2, max_channels + 1):
        if n_out % c:
            continue
        for hi, wi in _grids(n_in):
            for ho, wo in _grids(n_out // c):
                if ho > hi or wo > wi or (ho, wo) == (hi, wi):
                    continue
                kernel = (hi - ho + 1, wi - wo + 1)
                keep(f"valid {grid_text(kernel)} kernel, {c} channels, {grid_text((hi, wi))} "
                     f"-> {c} x {grid_text((ho, wo))}", _channel_labels((hi, wi), kernel, c))
    return found


def _border_class_sharing(grid, border):
    """One group per (output class, offset) of a same-size map on ``grid``: the outputs within
    ``border[d]`` of either end of axis ``d`` form classes by their distance to that end, the
    others one interior class; an entry whose offset (taken modulo the grid, signed) lies within
    ``border`` along every axis is labelled by its output's class and that offset, every other
    entry is in one group of zeros.

    Every same-size correlation with a kernel of at most ``2 border + 1`` taps per axis is a
    coarsening of it in each of scipy.ndimage's boundary modes (reflect, nearest, mirror,
    constant, wrap) and torch's padding modes: an output's weights depend only on how far it is
    from the borders (its class) and on the offset to the input, and the wrapped offsets that
    only the circular mode uses are a block that the other modes merge into the zeros.
    """
    ndim = len(grid)
    n = int(np.prod(grid))
    idx = np.indices(grid).reshape(ndim, -1)  # (ndim, n) coordinates of each cell
    code = np.zeros((n, n), dtype=np.int64)
    inside = np.ones((n, n), dtype=bool)
    for d, (size, b) in enumerate(zip(grid, border, strict=True)):
        o, i = idx[d][:, None], idx[d][None, :]
        # class along this axis: 0 .. b-1 near the low end, b the interior, b+1 .. 2b the high
        cls = np.where(o < b, o, np.where(o >= size - b, b + size - o, b))
        off = (i - o + size // 2) % size - size // 2  # the signed offset modulo the axis
        inside &= np.abs(off) <= b
        code = (code * (2 * b + 1) + cls) * (2 * b + 1) + off + b
    labels = np.where(inside, code, code.max() + 1)
    return canonical_labels(labels.ravel())


def border_hypotheses(shape, borders=(1, 2, 3), max_groups=128):
    """Same-size convolutions whose border outputs have weights of their own.

    A filter that keeps its input's size (``scipy.ndimage`` in any of its boundary modes, a
    ``padding="same"`` convolution of torch in any padding mode) is translation-equivariant
    away from its borders: an output within ``(k - 1) / 2`` of an edge sees the padding, and
    its weights are sums of taps that the mode decides (reflect, nearest, mirror) or the
    interior taps cut off (zero padding). None of those maps coarsens a convolution's offsets,
    which is why they are listed here as hypotheses of their own: for a kernel of at most
    ``2 b + 1`` taps per axis, each output class (its distance to each border, or "interior")
    gets its own window of ``2 b + 1`` offsets per axis (:func:`_border_class_sharing`). The
    interior and every border mode are then coarsenings, so the search only merges blocks.

    Parameters
    ----------
    shape : tuple of two ints
        ``(n_out, n_in)``; square layers (outputs on the inputs' grid) are read as every grid
        their size admits. A layer with more outputs than inputs is read as a sequence's full
        convolution instead (one group per offset).
    borders : tuple of int, default=(1, 2, 3)
        The half-widths ``b`` of the kernels covered (up to 7 taps per axis).
    max_groups : int, default=128
        Sharings with more groups are left out: the search over a hypothesis's coarsenings
        costs ``O(K R)`` candidates of ``R x R`` a round, and a 10 x 10 image's 5 x 5 reading
        (626 blocks) took 27 s to score against 0.1 s for its 3 x 3 reading (82 blocks). In
        1-D that keeps kernels up to 7 taps (50 blocks), on images up to 3 x 3. A full
        convolution's reading is kept up to 256 offsets, as :func:`shift_hypotheses` keeps
        its readings (64 inputs: 129).

    Returns
    -------
    dict
        Description (e.g. ``"same-size 3 x 3 kernel, border outputs apart, 10 x 10"``) ->
        labels of the ``n_out * n_in`` entries (row-major ``W``).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from sharelearn.symmetry import border_hypotheses
    >>> W = np.stack([ndimage.laplace(e.reshape(6, 6)).ravel() for e in np.eye(36)], 1)
    >>> H = border_hypotheses((36, 36))["same-size 3 x 3 kernel, border outputs apart, 6 x 6"]
    >>> # every block of the hypothesis takes one value in scipy's reflect-mode Laplacian
    >>> bool(all(np.ptp(W.ravel()[H == h]) == 0 for h in np.unique(H)))
    True
    """
    from .generators import _check_layer_shape

    n_out, n_in = _check_layer_shape(shape)
    found = {}
    if n_out > n_in and n_out + n_in - 1 <= max(max_groups, 256):
        # more outputs than inputs: a sequence's full convolution (np.convolve(..., "full")),
        # one group per offset, every such convolution a coarsening of it
        offsets = np.arange(n_out)[:, None] - np.arange(n_in)[None, :] + n_in - 1
        found[f"full, every offset, {n_in} -> {n_out}"] = canonical_labels(offsets.ravel())
    if n_out != n_in:
        return found
    seen = set()
    for h, w in _grids(n_in):
        grid = (w,) if h == 1 else (h, w)
        for b in borders:
            border = tuple(b if size > 1 else 0 for size in grid)
            # an axis must hold both borders and an interior, and its window must not wrap
            if any(size > 1 and size < 4 * bb + 1 for size, bb in zip(grid, border, strict=True)):
                continue
            labels = _border_class_sharing(grid, border)
            key = labels.tobytes()
            if int(labels.max()) + 1 > max_groups or key in seen:
                continue
            seen.add(key)
            kernel = " x ".join(str(2 * bb + 1) for bb in border) if h > 1 else str(2 * b + 1)
            gtext = f"{h} x {w}" if h > 1 else f"{w}"
            found[f"same-size {kernel} kernel, border outputs apart, {gtext}"] = labels
    return found


def _channel_labels(in_grid, kernel, n_channels):
    """Labels of a valid convolution with ``n_channels`` output channels (channel-first rows):
    one group per channel and tap, and one group of the structural zeros of every channel."""
    index = _tap_index(in_grid, kernel, "valid")
    n_taps = int(np.prod(kernel))
    per_channel = [np.where(index >= 0, index + c * n_taps, n_channels * n_taps)
                   for c in range(n_channels)]
    return canonical_labels(np.concatenate(per_channel).ravel())


def convolution_reading(labels, shape, max_channels=1):
    """Name the convolution that a dense layer's sharing is, if any.

    A sharing is read as a convolution of :func:`shift_hypotheses` when it *coarsens* it: every
    group of the convolution's sharing lies inside one group of ``labels`` (taps merged, or
    merged into the structural zeros, are still that convolution). Of the convolutions it
    coarsens, the one with the fewest groups is named.

    Parameters
    ----------
    labels : array-like of shape (n_out * n_in,)
        A partition of the layer's entries (row-major ``W``).
    shape : tuple of two ints
        ``(n_out, n_in)``.
    max_channels : int, default=1
        As for :func:`shift_hypotheses`.

    Returns
    -------
    str or None
        The convolution's description, followed by ``", k of its K groups"`` when ``labels``
        merges some of its groups; None when the sharing is no convolution's.

    Examples
    --------
    >>> from sharelearn.symmetry import convolution_reading, shift_sharing
    >>> convolution_reading(shift_sharing((8, 8), 3), (36, 64))
    'valid 3 x 3 kernel, 8 x 8 -> 6 x 6'
    >>> import numpy as np
    >>> convolution_reading(np.arange(36 * 64), (36, 64)) is None
    True
    """
    from .generators import _check_layer_shape

    n_out, n_in = _check_layer_shape(shape)
    labels = np.asarray(labels).ravel()
    if labels.size != n_out * n_in:
        raise ValueError(f"labels must have n_out * n_in = {n_out * n_in} entries for the "
                         f"layer of shape {(n_out, n_in)}, got {labels.size}.")
    labels = canonical_labels(labels)
    n_groups = int(labels.max()) + 1
    best = None
    for text, blocks in shift_hypotheses((n_out, n_in), max_groups=n_out * n_in,
                                         max_channels=max_channels).items():
        n_blocks = int(blocks.max()) + 1
        if n_blocks < n_groups:
            continue
        pairs = np.unique(blocks * n_groups + labels)
        if pairs.size == n_blocks and (best is None or n_blocks < best[1]):
            best = (text, n_blocks)
    if best is None:
        return None
    text, n_blocks = best
    return text if n_blocks == n_groups else f"{text}, {n_groups} of its {n_blocks} groups"
