"""Plots of sharing schemes: a partition drawn on the shape of the weights it ties.

:class:`SharingDisplay` follows scikit-learn's ``Display`` pattern: build it from a fitted
:class:`~sharelearn.SharingDiscoverer` with :meth:`SharingDisplay.from_estimator`, or from any
partition with :meth:`SharingDisplay.from_partition`; both call :meth:`SharingDisplay.plot`, which
can be called again to draw the same display on other axes. Where the sharing reads as a
convolution (:func:`sharelearn.symmetry.describe_sharing`, an estimator's ``structure_``), its
kernel is drawn beside the map: each tap in the colour of its group, with its value.

matplotlib is an optional dependency (``pip install "sharelearn[plot]"``). This module imports it
only when something is drawn, so ``import sharelearn.plotting`` works without it and drawing
raises an ``ImportError`` that says what to install.
"""

from __future__ import annotations

import colorsys
import itertools
import numbers
import textwrap

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._validation import check_pair
from .partition import _to_partition, canonical_labels, partition_distance

__all__ = ["SharingDisplay"]

# Above this many cells the shared values are not written into the cells: the text would be
# unreadable and drawing thousands of Text artists is slow.
_MAX_TEXT_ITEMS = 150
# Colours of the reference are matched to the discovered groups by an assignment on a dense
# contingency table; above this many cells the reference keeps its own colours.
_MAX_MATCH_CELLS = 4_000_000
# With text skipped, a legend lists the groups and their values up to this many groups.
_MAX_LEGEND_GROUPS = 10
# Size of one kernel tap in a new figure, in inches: large enough for a value and a group label.
_KERNEL_CELL = 0.55


def _pyplot(caller):
    """``matplotlib.pyplot``, or an ImportError that says how to get it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib, an optional dependency of sharelearn that is not "
            "installed. Install it with `pip install matplotlib` or "
            '`pip install "sharelearn[plot]"`.'
        ) from exc
    return plt


def _check_shape(shape, n_items):
    """``(n_rows, n_cols)`` as a pair of positive ints whose product is ``n_items``."""
    dims = check_pair(shape, "shape", "(n_rows, n_cols)", name_items=False)
    if dims[0] * dims[1] != n_items:
        raise ValueError(
            f"shape={dims} has {dims[0] * dims[1]} cells but the partition has {n_items} items."
        )
    return dims


def _group_colors(n):
    """``n`` distinct RGBA colours: a qualitative palette while it lasts, then spread hues."""
    from matplotlib import colormaps

    if n <= 10:
        base = colormaps["tab10"].colors
    elif n <= 20:
        base = colormaps["tab20"].colors
    else:
        # Golden-ratio hue steps keep neighbouring group numbers apart in colour; alternating
        # lightness separates hues that come back close after many steps.
        golden = 0.61803398875
        base = [
            colorsys.hsv_to_rgb((golden * i) % 1.0, (0.55, 0.8)[i % 2], (0.95, 0.75)[i % 3 % 2])
            for i in range(n)
        ]
    rgb = np.asarray(base[:n], dtype=float)
    return np.column_stack([rgb, np.ones(n)])


def _matched_colors(labels, reference, colors):
    """Colours of the reference's groups: each takes the colour of the discovered group it is
    matched with by the partition distance's assignment, the unmatched ones new colours."""
    r_a, r_b = int(labels.max()) + 1, int(reference.max()) + 1
    target = np.full(r_b, -1, dtype=np.int64)
    if r_a * r_b <= _MAX_MATCH_CELLS:
        table = np.bincount(labels * r_b + reference, minlength=r_a * r_b).reshape(r_a, r_b)
        rows, cols = linear_sum_assignment(table, maximize=True)
        keep = table[rows, cols] > 0
        target[cols[keep]] = rows[keep]
    unmatched = np.flatnonzero(target < 0)
    palette = _group_colors(r_a + unmatched.size)
    out = np.empty((r_b, 4))
    out[target >= 0] = colors[target[target >= 0]]
    out[unmatched] = palette[r_a:]
    return out


def _format_value(value, values_format):
    if values_format is None:
        values_format = ".2f" if abs(value) < 100 else ".3g"
    text = format(float(value), values_format)
    # a tiny negative value rounds to "-0.00", which reads as a sign that means something
    if text.startswith("-") and not any(ch in "123456789" for ch in text.split("e")[0]):
        text = text[1:]
    return text


def _kernel_groups(structure, labels):
    """The group of each tap of a sharing read as a convolution, an array of the kernel's shape
    (``(k,)`` or ``(kh, kw)``); None when ``structure`` is no convolution.

    Output ``o`` reads input ``o + offset`` per axis (modulo the grid for a circular border), so
    tap ``offset`` is read at every output that sees the whole kernel (the interior; every
    output of a circular map) and takes the group most of them give it: a few changed entries
    or a border rule do not change the kernel drawn.
    """
    from .symmetry.structure import SharingStructure

    if not isinstance(structure, SharingStructure):
        raise TypeError(
            "structure must be a SharingStructure (an estimator's structure_ or the result of "
            f"sharelearn.symmetry.describe_sharing), got {type(structure).__name__}."
        )
    if structure.kind != "convolution" or not structure.kernel_offsets:
        return None
    grid = tuple(structure.grid)
    out_grid = tuple(structure.output_grid or structure.grid)
    n_in, n_out = int(np.prod(grid)), int(np.prod(out_grid))
    if n_in * n_out != labels.size:
        raise ValueError(
            f"structure describes a {n_out} x {n_in} map ({n_out * n_in} entries) but the "
            f"partition has {labels.size} items; describe the partition drawn "
            "(sharelearn.symmetry.describe_sharing(labels, (n_out, n_in)))."
        )
    wrap = structure.border == "circular"
    outputs = []
    for size_in, size_out, (lo, hi) in zip(grid, out_grid, structure.kernel_offsets,
                                           strict=True):
        first, last = (0, size_out - 1) if wrap else (max(0, -lo), min(size_out - 1,
                                                                       size_in - 1 - hi))
        if first > last:
            return None  # no output sees the whole kernel
        outputs.append(np.arange(first, last + 1))
    outputs = np.array(list(itertools.product(*outputs)))  # (n_outputs_read, ndim)
    offsets = np.array(list(itertools.product(*(range(lo, hi + 1)
                                                for lo, hi in structure.kernel_offsets))))
    inputs = outputs[:, None, :] + offsets[None, :, :]
    if wrap:
        inputs %= np.asarray(grid)
    rows = np.ravel_multi_index(tuple(outputs.T), out_grid)
    cols = np.ravel_multi_index(tuple(np.moveaxis(inputs, -1, 0)), grid)
    seen = labels.reshape(n_out, n_in)[rows[:, None], cols]  # (n_outputs_read, n_taps)
    groups = np.array([np.bincount(column).argmax() for column in seen.T], dtype=np.int64)
    return groups.reshape(tuple(hi - lo + 1 for lo, hi in structure.kernel_offsets))


def _network_values(estimator, labels):
    """The shared value of each group of a network whose items are the entries of one matrix,
    read from the tied module (``to_module``); None when the items are not such entries."""
    share = getattr(estimator, "share", None)
    if not isinstance(share, dict) or len(share) != 1 or next(iter(share.values())) is not None:
        return None
    path = next(iter(share))
    owner, _, name = path.rpartition(".")
    module = estimator.to_module()
    weight = getattr(module.get_submodule(owner) if owner else module, name, None)
    if weight is None or weight.numel() != labels.size:
        return None
    first = np.unique(labels, return_index=True)[1]  # one entry of each group, by label
    return weight.detach().reshape(-1).double().numpy()[first]


def _text_color(rgba):
    """Black on light cells, white on dark ones (relative luminance)."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


class SharingDisplay:
    """A sharing scheme drawn on the shape of the weights it ties.

    Each cell is one shareable item (an entry of the weight matrix), coloured by its group, with
    the group's shared value written in when ``values`` is known and the matrix is small. When a
    ``reference`` partition is given it is drawn beside, its groups coloured like the discovered
    groups they are matched with (the matching of the partition distance), so that a difference
    in colour is a difference in sharing. A soft selection matrix, when given, is drawn as a heat
    map of the probability of each item (row) joining each candidate group (column). When the
    sharing is read as a convolution (``structure``), its kernel is drawn beside the map, each
    tap coloured by its group and labelled with its value and group: on a large map, where the
    banded matrix shows little, the kernel says what was found.

    Use :meth:`from_estimator` or :meth:`from_partition` to build and draw one in one call. All
    arguments are stored as attributes of the same name, validated.

    Parameters
    ----------
    labels : array-like of shape (n_items,)
        Group label of each item, in row-major order of ``shape``.
    shape : tuple of int
        ``(n_rows, n_cols)`` with ``n_rows * n_cols == n_items``: ``coef_.shape`` of a linear
        model, ``(n_features, 1)`` for shared means.
    values : array-like of shape (n_groups,), default=None
        The shared value of each group, indexed by canonical label (see
        :func:`sharelearn.canonical_labels`), as in ``shared_values_``.
    reference : array-like of shape (n_items,) or (n_items, n_groups), default=None
        A known partition of the same items (labels or a hard selection matrix).
    soft_selection : array-like of shape (n_items, n_columns), default=None
        A soft selection matrix, as in ``soft_selection_``.
    name : str, default="discovered"
        Title of the partition's panel.
    row_label, column_label : str, default="row", "column"
        Axis labels of the partition's panels.
    departures : array-like of bool of shape ``shape``, default=None
        Entries to mark as departing from the sharing's leading structure (as in an estimator's
        ``departures_``): drawn darkened, with their count in the title.
    structure : SharingStructure, default=None
        The sharing read as a convolution (an estimator's ``structure_``, or
        :func:`sharelearn.symmetry.describe_sharing` of the labels on the map's
        ``(n_out, n_in)``), whose kernel is drawn beside the map; ``None``, or a structure
        that is no convolution, draws no kernel.

    Attributes
    ----------
    n_groups : int
        Number of groups of ``labels``.
    kernel_groups : ndarray of int of shape ``structure.kernel_shape``, or None
        The group of each kernel tap (canonical labels, as ``labels``), read at the outputs that
        see the whole kernel (the most frequent group of each tap); None without a kernel.
    ax_ : matplotlib Axes
        Axes of the partition.
    axes_ : ndarray of matplotlib Axes
        Every panel drawn: the partition, then the reference, then the soft selection.
    figure_ : matplotlib Figure
        Figure of the panels.
    image_ : matplotlib AxesImage
        The partition's image; its array holds the RGBA colour of every cell.
    colors_ : ndarray of shape (n_groups, 4)
        RGBA colour of each group, by canonical label.
    texts_ : ndarray of matplotlib Text of shape ``shape``, or None
        The values written in the cells (``None`` when not written).
    kernel_ax_, kernel_image_ : matplotlib Axes and AxesImage, or None
        The kernel's panel; the image holds the RGBA colour of each tap's group.
    kernel_texts_ : ndarray of matplotlib Text of shape ``kernel_groups.shape``, or None
        Each tap's value (when ``values`` is known) and group, ``"1.00\\ng2"``.
    reference_ax_, reference_image_ : matplotlib Axes and AxesImage, or None
        The reference's panel.
    soft_ax_, soft_image_ : matplotlib Axes and AxesImage, or None
        The soft selection's panel.
    departures_image_ : matplotlib AxesImage or None
        The overlay that marks ``departures`` (None without any).

    See Also
    --------
    sharelearn.SharingDiscoverer : discovers the partitions drawn here.

    Examples
    --------
    A 2 x 3 map with three groups, values written in:

    >>> from sharelearn.plotting import SharingDisplay
    >>> display = SharingDisplay.from_partition([0, 1, 2, 2, 0, 1], (2, 3), values=[1.0, 3.0, 0.0])
    >>> display.texts_[0, 1].get_text(), display.colors_.shape
    ('3.00', (3, 4))

    A valid convolution with the kernel 1, 2, 3 on 6 inputs, its kernel drawn beside the map:

    >>> from sharelearn.symmetry import describe_sharing, shift_sharing
    >>> labels = shift_sharing(6, 3)
    >>> display = SharingDisplay.from_partition(
    ...     labels, (4, 6), values=[1.0, 2.0, 3.0, 0.0],
    ...     structure=describe_sharing(labels, (4, 6)))
    >>> display.kernel_groups, display.kernel_texts_[2].get_text()
    (array([0, 1, 2]), '3.00\\ng2')
    """

    def __init__(self, labels, shape, *, values=None, reference=None, soft_selection=None,
                 name="discovered", row_label="row", column_label="column", departures=None,
                 structure=None):
        self.labels = canonical_labels(labels)
        self.shape = _check_shape(shape, self.labels.size)
        self.structure = structure
        self.kernel_groups = None if structure is None else _kernel_groups(structure,
                                                                           self.labels)
        if departures is not None:
            departures = np.asarray(departures)
            if departures.dtype != bool or departures.size != self.labels.size:
                raise ValueError(
                    f"departures must be a boolean mask of {self.labels.size} entries (shape "
                    f"{self.shape}), got an array of dtype {departures.dtype} and shape "
                    f"{departures.shape}."
                )
            departures = departures.reshape(self.shape)
        self.departures = departures
        self.n_groups = int(self.labels.max()) + 1 if self.labels.size else 0
        if values is not None:
            values = np.asarray(values, dtype=float)
            if values.ndim != 1 or values.size != self.n_groups:
                raise ValueError(
                    f"values must hold one number per group ({self.n_groups}), got an array of "
                    f"shape {values.shape}."
                )
        self.values = values
        if reference is not None:
            reference = _to_partition(reference, "reference")
            if reference.size != self.labels.size:
                raise ValueError(
                    f"reference partitions {reference.size} items, but labels has "
                    f"{self.labels.size}."
                )
        self.reference = reference
        if soft_selection is not None:
            soft_selection = np.asarray(soft_selection, dtype=float)
            if soft_selection.ndim != 2 or soft_selection.shape[0] != self.labels.size:
                raise ValueError(
                    f"soft_selection must have shape (n_items={self.labels.size}, n_columns), "
                    f"got {soft_selection.shape}."
                )
        self.soft_selection = soft_selection
        self.name = name
        self.row_label = row_label
        self.column_label = column_label

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def from_partition(cls, labels, shape, values=None, *, reference=None, soft_selection=None,
                       ax=None, name="partition", departures=None, structure=None,
                       **plot_kwargs):
        """Draw any partition on a matrix of ``shape``.

        Parameters
        ----------
        labels : array-like of shape (n_items,)
            Group labels, row-major over ``shape``.
        shape : tuple of int
            ``(n_rows, n_cols)``, with ``n_rows * n_cols == n_items``.
        values : array-like of shape (n_groups,), default=None
            Value of each canonical group, written in the cells.
        reference : array-like of shape (n_items,), default=None
            A partition to draw beside it, coloured by matching.
        soft_selection : array-like of shape (n_items, n_columns), default=None
            A soft selection to draw as a heat map.
        ax : matplotlib Axes or sequence of Axes, default=None
            See :meth:`plot`.
        name : str, default="partition"
            Title of the partition's panel.
        departures : array-like of bool, default=None
            Entries to mark (see the class's ``departures``).
        structure : SharingStructure, default=None
            The partition read as a convolution, whose kernel is drawn beside it (see the
            class's ``structure``).
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : SharingDisplay

        Raises
        ------
        ValueError
            If ``shape`` does not match the number of items, or ``values``, ``reference``,
            ``soft_selection`` or ``structure`` do not match the partition.
        """
        display = cls(labels, shape, values=values, reference=reference,
                      soft_selection=soft_selection, name=name, departures=departures,
                      structure=structure)
        return display.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(cls, estimator, *, reference=None, ax=None, show_soft=True, name=None,
                       structure=None, **plot_kwargs):
        """Draw the sharing discovered by a fitted estimator.

        A :class:`~sharelearn.SharingDiscoverer`'s partition is drawn on ``coef_.shape`` for a
        linear map and as a column of the ``n_features`` means for shared means, with
        ``shared_values_`` written in. A network's
        (:class:`~sharelearn.NetworkSharingDiscoverer`,
        :class:`~sharelearn.NetworkSharingClassifier`) is drawn on the shape of the layer its
        items form: the ``(n_out, n_in)`` matrix when ``share`` makes every entry of one
        weight an item (with the tied network's values), else a column of its items. Where the
        sharing of a matrix reads as a convolution (``structure_``), its kernel is drawn beside
        the map and the entries that depart from it are darkened.

        Parameters
        ----------
        estimator : SharingDiscoverer, NetworkSharingDiscoverer or NetworkSharingClassifier
            A fitted estimator.
        reference : array-like, str or None, default=None
            The truth to draw beside: labels, a hard selection matrix, or a name understood by
            :func:`sharelearn.symmetry.named_sharing`. ``None`` uses the estimator's own
            ``reference`` when it has one.
        ax : matplotlib Axes or sequence of Axes, default=None
            See :meth:`plot`.
        show_soft : bool, default=True
            Draw ``soft_selection_`` as a heat map when it is not None.
        name : str, default=None
            Title of the partition's panel; ``None`` gives ``"discovered"``.
        structure : SharingStructure, default=None
            The reading whose kernel is drawn; ``None`` uses the estimator's ``structure_``
            (pass :func:`sharelearn.symmetry.describe_sharing` with ``grids=`` to read the
            inputs on a grid of your choice).
        **plot_kwargs
            Passed to :meth:`plot` (``show_kernel=False`` leaves the kernel out).

        Returns
        -------
        display : SharingDisplay
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(estimator, "sharing_partition_")
        labels = np.asarray(estimator.sharing_partition_)
        # the model fitted (model="auto" resolves to one of them)
        model = getattr(estimator, "model_", getattr(estimator, "model", None))
        values = getattr(estimator, "shared_values_", None)
        if model == "linear":
            shape = tuple(estimator.coef_.shape)
        elif model == "mean":
            shape = (labels.size, 1)
        else:
            # a network: the layer its items form, (n_out, n_in) for the entries of one matrix
            layer = getattr(estimator, "_layer_shape", None)
            shape = tuple(layer()) if layer is not None else (labels.size, 1)
            if values is None and shape[1] > 1:
                values = _network_values(estimator, labels)
        if shape[1] > 1:
            row_label, column_label = "output", "input"
        else:
            row_label, column_label = ("feature" if model == "mean" else "item"), ""
        if reference is None:
            reference = getattr(estimator, "reference", None)
        if isinstance(reference, str):
            from .symmetry import named_sharing

            # the estimator builds named references for its own layer: (n_outputs, n_inputs),
            # with one constant input for the means
            reference = named_sharing(reference, shape)
        if values is not None:
            values = np.asarray(values)
            if values.ndim != 1 or values.size != int(labels.max()) + 1:
                values = None  # e.g. one vector of weights per group: nothing short to write
        soft = getattr(estimator, "soft_selection_", None) if show_soft else None
        departures = None
        if shape[1] > 1:  # a map: its reading as a convolution and where it departs
            if structure is None:
                structure = estimator.structure_
                departures = np.asarray(estimator.departures_)
            elif getattr(structure, "departures", None) is not None:  # else refused below
                departures = np.asarray(structure.departures, dtype=bool)
        display = cls(labels, shape, values=values, reference=reference, soft_selection=soft,
                      name="discovered" if name is None else name, row_label=row_label,
                      column_label=column_label, departures=departures, structure=structure)
        return display.plot(ax=ax, **plot_kwargs)

    # -- drawing ----------------------------------------------------------------------------
    def _panels(self, show_reference, show_soft, show_kernel=True):
        panels = ["partition"]
        if show_kernel and self.kernel_groups is not None:
            panels.append("kernel")
        if show_reference and self.reference is not None:
            panels.append("reference")
        if show_soft and self.soft_selection is not None:
            panels.append("soft")
        return panels

    def _new_axes(self, panels, plt):
        n_rows, n_cols = self.shape
        cell = min(0.45, 6.0 / max(n_rows, n_cols))
        # wide enough for a two-line title above a single column of means
        width, height = max(n_cols * cell, 1.6), n_rows * cell
        kernel = (1, 1) if self.kernel_groups is None else np.atleast_2d(self.kernel_groups).shape
        widths = {"partition": width, "reference": width,
                  "kernel": max(kernel[1] * _KERNEL_CELL, 1.8),
                  "soft": max(2.5, 0.25 * self.soft_selection.shape[1])
                  if self.soft_selection is not None else 0.0}
        widths = [widths[p] for p in panels]
        height = max(height, kernel[0] * _KERNEL_CELL if "kernel" in panels else 0.0)
        figure, axes = plt.subplots(
            1, len(panels), width_ratios=widths, layout="constrained",
            figsize=(sum(widths) + 1.1 * len(panels) + 0.5, max(height, 2.0) + 1.4),
            squeeze=False,
        )
        return figure, axes[0]

    def plot(self, *, ax=None, show_reference=True, show_soft=True, show_kernel=True,
             values_format=None, max_text_items=_MAX_TEXT_ITEMS, colors=None,
             soft_cmap="viridis"):
        """Draw the display.

        Parameters
        ----------
        ax : matplotlib Axes or sequence of Axes, default=None
            ``None`` creates a figure with one panel each for the partition, the kernel (when
            the sharing reads as a convolution), the reference (when known) and the soft
            selection (when known). A single Axes draws the partition alone. A sequence must
            hold one Axes per panel, in that order.
        show_reference : bool, default=True
            Draw the reference's panel when a reference is known.
        show_soft : bool, default=True
            Draw the soft selection's panel when a soft selection is known.
        show_kernel : bool, default=True
            Draw the kernel's panel when the sharing reads as a convolution.
        values_format : str, default=None
            Format specification of the values written in the cells; ``None`` uses ``".2f"``
            (``".3g"`` from 100 on).
        max_text_items : int, default=150
            Values are written only when the matrix has at most this many cells. Above it, a
            legend gives the values of up to 10 groups.
        colors : sequence of colours, default=None
            One matplotlib colour per group (by canonical label); ``None`` uses ``tab10`` or
            ``tab20`` while they suffice, then evenly spread hues.
        soft_cmap : str or Colormap, default="viridis"
            Colour map of the soft selection.

        Returns
        -------
        self : SharingDisplay
            With ``ax_``, ``axes_``, ``figure_``, ``image_``, ``colors_``, ``texts_`` and the
            panels' own attributes set.

        Raises
        ------
        ValueError
            If ``ax`` is a sequence of the wrong length, ``colors`` does not hold one colour per
            group, or ``max_text_items`` is negative.
        """
        plt = _pyplot("SharingDisplay.plot")
        from matplotlib.colors import to_rgba
        from matplotlib.patches import Patch

        if not isinstance(max_text_items, numbers.Integral) or max_text_items < 0:
            raise ValueError(
                f"max_text_items must be a non-negative integer, got {max_text_items!r}."
            )
        panels = self._panels(show_reference, show_soft, show_kernel)
        if ax is None:
            figure, axes = self._new_axes(panels, plt)
        elif hasattr(ax, "imshow"):
            panels, axes, figure = ["partition"], np.array([ax]), ax.figure
        else:
            axes = np.asarray(list(ax), dtype=object)
            if axes.size != len(panels):
                raise ValueError(
                    f"ax must be one Axes or a sequence of {len(panels)} Axes (one per panel: "
                    f"{', '.join(panels)}), got {axes.size}."
                )
            figure = axes[0].figure

        if colors is None:
            self.colors_ = _group_colors(self.n_groups)
        else:
            if len(colors) != self.n_groups:
                raise ValueError(
                    f"colors must hold one colour per group ({self.n_groups}), got {len(colors)}."
                )
            self.colors_ = np.array([to_rgba(c) for c in colors])

        self.ax_, self.axes_, self.figure_ = axes[0], axes, figure
        self.reference_ax_ = self.reference_image_ = None
        self.soft_ax_ = self.soft_image_ = None
        self.kernel_ax_ = self.kernel_image_ = self.kernel_texts_ = None
        self.image_ = self._draw_partition(self.ax_, self.labels, self.colors_)
        title = f"{self.name}\n{self.n_groups} group{'s' if self.n_groups != 1 else ''}"
        self.departures_image_ = None
        if self.departures is not None and self.departures.any():
            overlay = np.zeros((*self.shape, 4))
            overlay[self.departures] = (0.0, 0.0, 0.0, 0.55)
            self.departures_image_ = self.ax_.imshow(overlay, interpolation="nearest")
            title += f", {int(self.departures.sum())} departures (dark)"
        self.ax_.set_title(title)

        self.texts_ = None
        n_items = self.labels.size
        if self.values is not None and n_items <= max_text_items:
            self.texts_ = self._write_values(self.ax_, values_format)
        elif self.values is not None and self.n_groups <= _MAX_LEGEND_GROUPS:
            handles = [
                Patch(color=self.colors_[g], label=_format_value(self.values[g], values_format))
                for g in range(self.n_groups)
            ]
            self.ax_.legend(handles=handles, title="shared value", loc="upper left",
                            bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)

        for axis, panel in zip(axes[1:], panels[1:], strict=True):
            if panel == "kernel":
                self._draw_kernel(axis, values_format)
            elif panel == "reference":
                ref_colors = _matched_colors(self.labels, self.reference, self.colors_)
                self.reference_ax_ = axis
                self.reference_image_ = self._draw_partition(axis, self.reference, ref_colors)
                n_ref = int(self.reference.max()) + 1
                distance = partition_distance(self.labels, self.reference)
                axis.set_title(f"reference\n{n_ref} group{'s' if n_ref != 1 else ''}, "
                               f"distance {distance}")
            else:
                self.soft_ax_ = axis
                self.soft_image_ = axis.imshow(self.soft_selection, aspect="auto", vmin=0.0,
                                               vmax=1.0, cmap=soft_cmap, interpolation="nearest")
                axis.set_title("soft selection")
                axis.set_xlabel("candidate group")
                axis.set_ylabel("item")
                figure.colorbar(self.soft_image_, ax=axis, label="probability", shrink=0.8)
        return self

    def _draw_partition(self, ax, labels, colors):
        n_rows, n_cols = self.shape
        image = ax.imshow(colors[labels.reshape(self.shape)], interpolation="nearest")
        ax.set_ylabel(self.row_label)
        ax.set_xlabel(self.column_label)
        if n_cols == 1:
            ax.set_xticks([])
        # cell borders help to count entries while the cells are large enough to see them
        if n_rows * n_cols <= 4 * _MAX_TEXT_ITEMS:
            ax.set_xticks(np.arange(-0.5, n_cols, 1), minor=True)
            ax.set_yticks(np.arange(-0.5, n_rows, 1), minor=True)
            ax.grid(which="minor", color="white", linewidth=0.8)
            ax.tick_params(which="minor", length=0)
        return image

    def _draw_kernel(self, ax, values_format):
        """The kernel as a small map: each tap in its group's colour, with its value and group,
        the axes counting the taps' offsets from their output."""
        structure = self.structure
        groups = np.atleast_2d(self.kernel_groups)  # a 1-D kernel is one row of taps
        offsets = list(structure.kernel_offsets)
        if len(offsets) == 1:
            offsets.insert(0, (0, 0))
        self.kernel_ax_ = ax
        self.kernel_image_ = ax.imshow(self.colors_[groups], interpolation="nearest")
        (top, _), (left, right) = offsets
        ax.set_xticks(np.arange(groups.shape[1]), [str(left + i) for i in range(right - left + 1)])
        if groups.shape[0] == 1:
            ax.set_yticks([])
            ax.set_xlabel("offset (input - output)")
        else:
            ax.set_yticks(np.arange(groups.shape[0]),
                          [str(top + i) for i in range(groups.shape[0])])
            ax.set_xlabel("column offset")
            ax.set_ylabel("row offset")
        ax.set_xticks(np.arange(-0.5, groups.shape[1], 1), minor=True)
        ax.set_yticks(np.arange(-0.5, groups.shape[0], 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)

        dims = " x ".join(str(k) for k in structure.kernel_shape)
        border = structure.border
        border = border if border in ("valid", "full") else f"{border} borders"
        title = f"kernel {dims} ({border})"
        if structure.kernel_symmetry:
            title += "\n" + "\n".join(textwrap.wrap(structure.kernel_symmetry, 30))
        ax.set_title(title)

        box = ax.get_window_extent()
        cell = 72.0 / ax.figure.dpi * min(box.width / groups.shape[1],
                                           box.height / groups.shape[0])
        fontsize = float(np.clip(0.22 * cell, 4.0, 10.0))
        texts = np.empty(groups.shape, dtype=object)
        for (r, c), g in np.ndenumerate(groups):
            value = "" if self.values is None else _format_value(self.values[g], values_format)
            texts[r, c] = ax.text(c, r, f"{value}\ng{g}" if value else f"g{g}", ha="center",
                                  va="center", fontsize=fontsize,
                                  color=_text_color(self.colors_[g]))
        self.kernel_texts_ = texts.reshape(self.kernel_groups.shape)

    def _write_values(self, ax, values_format):
        n_rows, n_cols = self.shape
        # fit the text to the cell: its size in points, from the axes' size on the figure
        box = ax.get_window_extent()
        points = 72.0 / ax.figure.dpi
        cell_w = box.width * points / n_cols
        cell_h = box.height * points / n_rows
        cell = min(cell_w, cell_h) if n_cols > 1 else cell_h
        fontsize = float(np.clip(0.3 * cell, 4.0, 10.0))
        texts = np.empty(self.shape, dtype=object)
        grid = self.labels.reshape(self.shape)
        for r in range(n_rows):
            for c in range(n_cols):
                g = grid[r, c]
                texts[r, c] = ax.text(
                    c, r, _format_value(self.values[g], values_format), ha="center",
                    va="center", fontsize=fontsize, color=_text_color(self.colors_[g]),
                )
        return texts

