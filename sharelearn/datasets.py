"""Synthetic data sets whose true parameter-sharing scheme is known.

Each generator returns, next to the data, the ground-truth partition of the
model's shareable items (see :mod:`sharelearn.partition`): a 1-D ``int64``
array of group labels in canonical form, i.e. groups are numbered
``0, 1, ..., r - 1`` in order of first appearance.

The generators follow the conventions of :mod:`sklearn.datasets`: sizes are
keyword arguments, every random draw comes from ``random_state`` and the
outputs are NumPy arrays.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from ._validation import check_int, check_real
from .partition import canonical_labels
from .symmetry.convolution import _check_conv_geometry, _tap_index, shift_sharing
from .symmetry.generators import sharing_from_group
from .symmetry.wallpaper import _WALLPAPER, image_group_generators

__all__ = [
    "make_convolution",
    "make_equivariant_map",
    "make_shared_means",
    "make_sum_of_numbers",
]

_SUM_VARIANTS = ("shared", "alternating")


# ---------------------------------------------------------------------------
# private helpers
# ---------------------------------------------------------------------------
def _check_random_state(random_state):
    """Return a NumPy random generator built from ``random_state``.

    A :class:`numpy.random.Generator` is used as given; anything else goes
    through :func:`sklearn.utils.check_random_state` (``None``, an int or a
    :class:`numpy.random.RandomState`).
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    try:
        return check_random_state(random_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"random_state must be None, an int, a numpy.random.RandomState or a "
            f"numpy.random.Generator, got {random_state!r}."
        ) from exc


def _integers(rng, low, high, size):
    """Uniform integers in ``[low, high)`` from a ``Generator`` or a ``RandomState``."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(low, high, size=size, dtype=np.int64)
    return rng.randint(low, high, size=size).astype(np.int64)


def _convolution_matrix(kernel, input_shape, mode="valid"):
    """Dense matrix ``W`` with ``W @ x`` = cross-correlation of ``x`` with ``kernel``.

    ``kernel`` is a 1-D array ``(k,)`` or a 2-D array ``(kh, kw)`` with as many
    dimensions as ``input_shape``; images are flattened row-major on both the
    input and the output side.  Returns a float64 array ``(n_out, n_in)``.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    input_shape = tuple(int(n) for n in input_shape)
    if kernel.ndim != len(input_shape):
        raise ValueError(
            f"kernel has {kernel.ndim} dimensions but input_shape={input_shape} has "
            f"{len(input_shape)}."
        )
    index = _tap_index(input_shape, kernel.shape, mode)
    return np.where(index >= 0, kernel.ravel()[index], 0.0)


# ---------------------------------------------------------------------------
# public generators
# ---------------------------------------------------------------------------
def make_shared_means(
    n_samples=100, *, n_features=5, n_groups=1, spacing=3.0, noise=1.0, random_state=None
):
    """Generate Gaussian vectors whose feature means are shared in groups.

    The ``n_features`` means are ``theta = A @ psi`` where ``A`` is a selection
    matrix (one 1 per row) and ``psi[j] = spacing * j`` for
    ``j = 0, ..., n_groups - 1``.  Each feature is assigned to a group at
    random, every group receiving at least one feature.  Samples are
    ``x = theta + noise * z`` with ``z`` standard normal.

    Parameters
    ----------
    n_samples : int, default=100
        Number of samples (rows of ``X``); at least 1.
    n_features : int, default=5
        Number of features ``K``, i.e. of shareable means; at least 1.
    n_groups : int, default=1
        Number of distinct shared values ``r``; ``1 <= n_groups <= n_features``.
    spacing : float, default=3.0
        Gap between consecutive shared values ``psi[j] = spacing * j``.
    noise : float, default=1.0
        Standard deviation of the Gaussian noise; at least 0.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the group assignment and the noise.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
        The samples.
    labels : ndarray of shape (n_features,), dtype int64
        Canonical group label of every feature (the true sharing scheme).
    means : ndarray of shape (n_features,), dtype float64
        The true feature means ``theta``.

    Examples
    --------
    >>> from sharelearn.datasets import make_shared_means
    >>> X, labels, means = make_shared_means(
    ...     30, n_features=4, n_groups=2, random_state=0)
    >>> X.shape, labels.shape, means.shape
    ((30, 4), (4,), (4,))
    >>> int(labels.max()) + 1
    2
    """
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    n_features = check_int(n_features, "n_features", min_value=1)
    n_groups = check_int(n_groups, "n_groups", min_value=1)
    if n_groups > n_features:
        raise ValueError(f"n_groups={n_groups} must be <= n_features={n_features}.")
    spacing = check_real(spacing, "spacing")
    noise = check_real(noise, "noise", min_value=0.0)
    rng = _check_random_state(random_state)

    groups = np.concatenate(
        [
            np.arange(n_groups, dtype=np.int64),
            _integers(rng, 0, n_groups, n_features - n_groups),
        ]
    )
    groups = groups[rng.permutation(n_features)]
    psi = spacing * np.arange(n_groups, dtype=np.float64)
    means = psi[groups]
    X = means[None, :] + noise * rng.standard_normal((n_samples, n_features))
    return X, canonical_labels(groups), means


def _make_kernel(kernel, k_shape, rng):
    """Build or validate the kernel of :func:`make_convolution` (float64, shape ``k_shape``)."""
    n_taps = int(np.prod(k_shape))
    if kernel is None:
        return (2.0 * np.arange(n_taps, dtype=np.float64) + 1.0).reshape(k_shape)
    if isinstance(kernel, str):
        if kernel == "random":
            return rng.standard_normal(k_shape)
        raise ValueError(
            f"kernel={kernel!r} is not supported; expected None, 'random' or an array."
        )
    return _finite_array(kernel, "kernel", tuple(k_shape), "None, 'random'",
                         f"kernel_size requires shape {tuple(k_shape)}.")


def _finite_array(value, name, shape, alternatives, expected):
    """A user's array of numbers as a new float64 array of ``shape``, all finite; errors name
    the parameter, the ``alternatives`` it also accepts and what its shape should be."""
    try:
        out = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {alternatives} or an array of numbers, got "
                         f"{value!r}.") from None
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape} but {expected}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must contain only finite values.")
    return out


def make_convolution(
    n_samples=100,
    *,
    input_shape=8,
    kernel_size=3,
    mode="valid",
    kernel=None,
    noise=0.1,
    inputs="normal",
    correlation=0.0,
    relative_noise=False,
    random_state=None,
):
    """Generate a linear regression problem whose weights are a convolution.

    The targets are the cross-correlation of each input with a kernel plus
    Gaussian noise, ``Y = X @ weight.T + noise * Z``.  The true sharing scheme
    ties every entry of the dense weight matrix to the kernel tap that lands
    on it, with all structural zeros forming one extra group.

    The cross-correlation convention is, per dimension,
    ``y[o] = sum_t kernel[t] * x[o + t - pad]``:

    * ``'valid'``: ``pad = 0``, ``n_out = n_in - k + 1``;
    * ``'same'`` (1-D only): ``n_out = n_in`` with zero padding, ``(k - 1) // 2``
      zeros on the left and ``k // 2`` on the right.  For odd ``k`` this is
      the centred window of ``numpy.correlate(x, kernel, 'same')``; for even
      ``k`` the extra zero goes on the right, as in
      ``torch.nn.functional.conv1d(..., padding='same')``, which is one step
      to the left of NumPy's and SciPy's ``'same'``;
    * ``'circular'``: ``pad = 0``, ``n_out = n_in``, indices taken modulo
      ``n_in`` (periodic boundary).

    Two-dimensional inputs (``input_shape=(h, w)``) support ``'valid'`` and
    ``'circular'``; images are flattened row-major, both for the columns of
    ``X`` (``i = row * w + col``) and for the columns of ``Y``.

    Parameters
    ----------
    n_samples : int, default=100
        Number of samples; at least 1.
    input_shape : int or tuple of int, default=8
        ``n_in`` for 1-D inputs (an int or a 1-tuple), ``(h, w)`` for images.
    kernel_size : int or tuple of int, default=3
        Kernel length ``k``, or ``(kh, kw)`` for images (an int gives a square
        kernel).  Must not exceed the input in any dimension, whatever the
        mode, so that no two taps land on the same weight entry.
    mode : {'valid', 'same', 'circular'}, default='valid'
        Boundary handling, see above.
    kernel : None, 'random' or array-like, default=None
        ``None`` uses the values ``1, 3, 5, ...`` (``2 t + 1`` for tap ``t``,
        row-major for 2-D kernels); ``'random'`` draws standard normal values
        from ``random_state``; an array (shape ``(k,)`` or ``(kh, kw)``,
        finite) is used as given.
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to ``Y``; at least 0.
    inputs : {'normal', 'images'}, default='normal'
        ``'normal'``: standard normal inputs, correlated along each axis by ``correlation``.
        ``'images'``: patches of the size of ``input_shape`` (2-D only) cut at random places
        from scikit-learn's two sample photographs (:func:`sklearn.datasets.load_sample_images`,
        needs Pillow), in grey levels, standardised by one global mean and standard deviation:
        natural images, whose neighbouring pixels correlate above 0.9.
    correlation : float, default=0.0
        With ``inputs='normal'``: the coefficient ``rho`` in ``(-1, 1)`` of a stationary AR(1)
        process along each axis (separable for images): neighbouring inputs correlate by
        ``rho``, inputs ``d`` apart by ``rho ** d``; every input keeps unit variance. 0 gives
        independent inputs; 0.9 gives smooth signals.
    relative_noise : bool, default=False
        Whether ``noise`` is a multiple of the standard deviation of the noise-free targets
        (all entries together) instead of an absolute amount.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the kernel (when ``kernel='random'``), ``X`` (or the patches' places) and the
        noise.

    Returns
    -------
    X : ndarray of shape (n_samples, n_in), dtype float64
        The inputs (images flattened row-major).
    Y : ndarray of shape (n_samples, n_out), dtype float64
        Noisy cross-correlations (flattened row-major for images).
    labels : ndarray of shape (n_out * n_in,), dtype int64
        Canonical partition of the entries of ``weight`` in row-major order:
        entry ``(o, i)`` takes the group of the kernel tap that lands on it;
        entries no tap reaches share one extra group.  Groups follow taps,
        not values, so they stay correct when kernel values repeat.
    weight : ndarray of shape (n_out, n_in), dtype float64
        The dense weight matrix ``W`` with ``Y = X @ W.T + noise``.

    Examples
    --------
    >>> from sharelearn.datasets import make_convolution
    >>> X, Y, labels, weight = make_convolution(
    ...     50, input_shape=5, kernel_size=3, random_state=0)
    >>> X.shape, Y.shape, weight.shape, labels.shape
    ((50, 5), (50, 3), (3, 5), (15,))
    >>> int(labels.max()) + 1  # three taps and the zeros
    4
    >>> X, Y, labels, weight = make_convolution(
    ...     10, input_shape=(4, 4), kernel_size=2, mode="circular", random_state=0)
    >>> weight.shape
    (16, 16)
    """
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    in_shape, k_shape = _check_conv_geometry(input_shape, kernel_size, mode)
    noise = check_real(noise, "noise", min_value=0.0)
    rng = _check_random_state(random_state)

    if inputs not in ("normal", "images"):
        raise ValueError(f"inputs must be 'normal' or 'images', got {inputs!r}.")
    correlation = check_real(correlation, "correlation")
    if not -1.0 < correlation < 1.0:
        raise ValueError(f"correlation must lie in (-1, 1), got {correlation}.")
    if inputs == "images" and len(in_shape) != 2:
        raise ValueError("inputs='images' needs a 2-D input_shape (h, w), got "
                         f"{tuple(in_shape)}.")
    kernel = _make_kernel(kernel, k_shape, rng)
    weight = _convolution_matrix(kernel, in_shape, mode)
    n_out = weight.shape[0]

    if inputs == "images":
        X = _image_patches(n_samples, in_shape, rng)
    else:
        X = _ar1_inputs(n_samples, in_shape, correlation, rng)
    clean = X @ weight.T
    scale = float(clean.std()) if relative_noise else 1.0
    Y = clean + noise * scale * rng.standard_normal((n_samples, n_out))
    return X, Y, shift_sharing(in_shape, k_shape, mode), weight


def make_equivariant_map(
    n_samples=100,
    *,
    group="p4m",
    image_shape=(6, 6),
    kernel_size=None,
    values="normal",
    noise=0.1,
    random_state=None,
):
    """Generate a linear map between images that is equivariant to a symmetry group.

    The weight matrix of the layer ``h x w -> h x w`` (images flattened row-major on both sides)
    is constant on the orbits of ``group`` acting on its ``(output, input)`` entries
    (:func:`~sharelearn.symmetry.sharing_from_group` of
    :func:`~sharelearn.symmetry.image_group_generators`), with one value per orbit. The targets
    are ``Y = X @ weight.T + noise * Z`` for standard normal inputs ``X`` and noise ``Z``.

    The wallpaper groups act on the ``h x w`` torus (circular boundaries: translations, and with
    them rotations, reflections and glide reflections); the point groups fix the image's centre
    (no translations). Fitting :class:`~sharelearn.SharingDiscoverer` to the data and reading
    ``symmetry_group_.name`` names the group back, e.g. ``'p4m on the 6 x 6 torus'``. On small
    images an orbit partition can have more symmetry than the group it was built from (the
    sharing of ``'p4'`` on a 4 x 4 torus is also kept by reflections); the labels are those of
    ``group``'s orbits either way.

    Parameters
    ----------
    n_samples : int, default=100
        Number of samples; at least 1.
    group : str, default='p4m'
        A wallpaper group, ``'p1', 'p2', 'pm', 'pg', 'cm', 'pmm', 'pmg', 'pgg', 'cmm', 'p4',
        'p4m', 'p4g'``, or a point group, ``'C_2', 'C_4', 'D_1', 'D_2', 'D_4'``; see
        :func:`~sharelearn.symmetry.image_group_generators` for the generators and for the
        image shapes each one needs (square for the four-fold groups, ``cm`` and ``cmm``; even
        sides where glides halve the lattice).
    image_shape : tuple of int, default=(6, 6)
        ``(h, w)`` of the output and input images.
    kernel_size : int or None, default=None
        ``None``: a dense map, every orbit has a value. An odd ``k``: a local map, like a
        convolution with a ``k x k`` kernel centred on the output pixel. Entries whose input lies
        more than ``k // 2`` rows or columns from the output (around the torus for a wallpaper
        group) are 0 and form one more group; the window is kept by every rotation and
        reflection, so the labels stay a union of orbits. At most ``min(h, w)``.
    values : 'normal' or array-like, default='normal'
        ``'normal'`` draws one standard normal value per orbit (inside the window) from
        ``random_state``; an array of ``n_orbits`` finite numbers gives the value of each orbit,
        in the order of the canonical labels (the zero group of a local map included: its value
        is set to 0 whatever the array says).
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to ``Y``; at least 0.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the values (when ``values='normal'``), then ``X``, then the noise: the same seed
        with another ``noise`` gives the same map and inputs.

    Returns
    -------
    X : ndarray of shape (n_samples, h * w), dtype float64
        The input images, flattened row-major.
    Y : ndarray of shape (n_samples, h * w), dtype float64
        The noisy output images, flattened row-major.
    labels : ndarray of shape (h * w * h * w,), dtype int64
        Canonical orbit labels of the entries of ``weight``, row-major (with ``kernel_size``, the
        orbits outside the window merged into one group).
    weight : ndarray of shape (h * w, h * w), dtype float64
        The equivariant map, ``Y = X @ weight.T + noise``.

    Raises
    ------
    ValueError
        If ``group`` is unknown, ``image_shape`` does not fit it, or ``values`` has the wrong
        length or non-finite entries.

    See Also
    --------
    make_convolution : a convolution's weights (translations only, or none for ``'valid'``).

    Examples
    --------
    >>> from sharelearn.datasets import make_equivariant_map
    >>> X, Y, labels, weight = make_equivariant_map(
    ...     50, group="p4m", image_shape=(6, 6), random_state=0)
    >>> X.shape, Y.shape, weight.shape
    ((50, 36), (50, 36), (36, 36))
    >>> int(labels.max()) + 1  # orbits of p4m on the offsets of a 6 x 6 torus
    10
    >>> from sharelearn.symmetry import symmetry_group
    >>> symmetry_group(labels, weight.shape).name
    'p4m on the 6 x 6 torus'

    A 3 x 3 kernel that is symmetric under the square's rotations and reflections: three values
    and the zeros.

    >>> *_, labels, weight = make_equivariant_map(
    ...     10, group="p4m", image_shape=(6, 6), kernel_size=3, random_state=0)
    >>> int(labels.max()) + 1
    4
    """
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    generators = image_group_generators(group, image_shape)
    h, w = (int(d) for d in image_shape)
    if kernel_size is not None:
        kernel_size = check_int(kernel_size, "kernel_size", min_value=1, max_value=min(h, w))
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred on a pixel), got {kernel_size}.")
    noise = check_real(noise, "noise", min_value=0.0)
    rng = _check_random_state(random_state)
    n = h * w
    labels = sharing_from_group(generators, (n, n))
    outside = np.zeros(n * n, dtype=bool)
    if kernel_size is not None:
        r, c = np.divmod(np.arange(n), w)
        dr, dc = r[None, :] - r[:, None], c[None, :] - c[:, None]
        if group in _WALLPAPER:  # offsets around the torus
            dr, dc = (dr + h // 2) % h - h // 2, (dc + w // 2) % w - w // 2
        outside = ((np.abs(dr) > kernel_size // 2) | (np.abs(dc) > kernel_size // 2)).ravel()
        labels = canonical_labels(np.where(outside, labels.max() + 1, labels))
    n_orbits = int(labels.max()) + 1
    if isinstance(values, str):
        if values != "normal":
            raise ValueError(f"values={values!r} is not supported; expected 'normal' or an array.")
        psi = rng.standard_normal(n_orbits)
    else:
        psi = _finite_array(values, "values", (n_orbits,), "'normal'",
                            f"group={group!r} on image_shape={tuple(image_shape)} has "
                            f"{n_orbits} orbits; expected shape ({n_orbits},).")
    if outside.any():
        psi[labels[np.argmax(outside)]] = 0.0  # the zero group
    weight = psi[labels].reshape(n, n)
    X = rng.standard_normal((n_samples, n))
    Y = X @ weight.T + noise * rng.standard_normal((n_samples, n))
    return X, Y, labels, weight


def _ar1_inputs(n_samples, shape, rho, rng):
    """Standard normal inputs of ``shape`` (flattened), AR(1) with coefficient ``rho`` along
    each axis: a stationary recursion along one axis after the other keeps unit variance."""
    X = rng.standard_normal((n_samples, *shape))
    if rho == 0.0:
        return X.reshape(n_samples, -1)
    innovation = np.sqrt(1.0 - rho**2)
    for axis in range(1, X.ndim):
        X = np.moveaxis(X, axis, 1)
        for i in range(1, X.shape[1]):
            X[:, i] = rho * X[:, i - 1] + innovation * X[:, i]
        X = np.moveaxis(X, 1, axis)
    return X.reshape(n_samples, -1)


def _image_patches(n_samples, shape, rng):
    """Grey patches of ``shape`` at random places of scikit-learn's sample photographs,
    standardised by one global mean and standard deviation (flattened row-major)."""
    from sklearn.datasets import load_sample_images

    try:
        photos = load_sample_images().images
    except ImportError as err:
        raise ImportError("inputs='images' reads scikit-learn's sample photographs, which "
                          f"needs Pillow: pip install pillow ({err})") from None
    grey = [photo.astype(np.float64).mean(-1) for photo in photos]
    h, w = shape
    if any(h > g.shape[0] or w > g.shape[1] for g in grey):
        raise ValueError(f"input_shape {tuple(shape)} is larger than the sample photographs.")
    which = _integers(rng, 0, len(grey), n_samples)
    rows = [int(_integers(rng, 0, grey[i].shape[0] - h + 1, 1)[0]) for i in which]
    cols = [int(_integers(rng, 0, grey[i].shape[1] - w + 1, 1)[0]) for i in which]
    X = np.stack([grey[i][r:r + h, c:c + w].ravel()
                  for i, r, c in zip(which, rows, cols, strict=True)])
    return (X - X.mean()) / X.std()


def make_sum_of_numbers(n_samples=100, *, length=4, variant="shared", noise=0.5, random_state=None):
    """Generate sequences of digits whose target is a (signed) sum.

    Each sample is a sequence of ``length`` digits drawn uniformly from
    ``1..9``.  With ``variant='shared'`` the target is their sum (a
    permutation-invariant function: every position shares one weight); with
    ``variant='alternating'`` it is ``d0 - d1 + d2 - d3 + ...`` (two groups of
    positions).  Uniform noise ``U(-noise, noise)`` is added to the target.

    Parameters
    ----------
    n_samples : int, default=100
        Number of sequences; at least 1.
    length : int, default=4
        Sequence length ``L``; at least 1 (at least 2 for ``'alternating'``).
    variant : {'shared', 'alternating'}, default='shared'
        Which target to compute.
    noise : float, default=0.5
        Half-width of the uniform target noise; at least 0.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the digits and the noise.

    Returns
    -------
    X : ndarray of shape (n_samples, length), dtype int64
        The digits, in ``1..9``.
    y : ndarray of shape (n_samples,), dtype float64
        The noisy targets.
    labels : ndarray of shape (length,), dtype int64
        Canonical group of each position: all zeros for ``'shared'``,
        ``[0, 1, 0, 1, ...]`` for ``'alternating'``.

    Examples
    --------
    >>> from sharelearn.datasets import make_sum_of_numbers
    >>> X, y, labels = make_sum_of_numbers(20, length=4, random_state=0)
    >>> X.shape, y.shape
    ((20, 4), (20,))
    >>> labels.tolist()
    [0, 0, 0, 0]
    >>> make_sum_of_numbers(5, length=4, variant="alternating")[2].tolist()
    [0, 1, 0, 1]
    """
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    length = check_int(length, "length", min_value=1)
    if not isinstance(variant, str) or variant not in _SUM_VARIANTS:
        allowed = ", ".join(repr(v) for v in _SUM_VARIANTS)
        raise ValueError(f"variant={variant!r} is not supported; expected one of {allowed}.")
    if variant == "alternating" and length < 2:
        raise ValueError(f"length={length} must be >= 2 for variant='alternating'.")
    noise = check_real(noise, "noise", min_value=0.0)
    rng = _check_random_state(random_state)

    X = _integers(rng, 1, 10, (n_samples, length))
    if variant == "shared":
        groups = np.zeros(length, dtype=np.int64)
        signs = np.ones(length, dtype=np.int64)
    else:
        groups = np.arange(length, dtype=np.int64) % 2
        signs = 1 - 2 * groups
    y = (X @ signs).astype(np.float64) + rng.uniform(-noise, noise, size=n_samples)
    return X, y, canonical_labels(groups)
