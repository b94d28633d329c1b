"""Borders and exceptions: maps equivariant away from their borders, symmetries with exceptions.

Every case is a linear map ``y = W x`` taken from other people's code with their default
settings; ``W`` (``n_out x n_in``, images flattened row-major on both sides) is read by applying
the map to the unit inputs. The truth is read from ``W``: entries with equal values
(``np.round(W, 10)``, then ``np.unique``) form one group; so a border rule that folds a tap onto
an in-window entry gives that entry its own value, a structural zero joins the zero group, and an
entry changed by hand is its own group.

Cases
-----
* 2-D, ``scipy.ndimage``: ``gaussian_filter`` (sigma 1, truncate 1: 3 x 3), ``uniform_filter``
  (size 3), ``laplace``, ``sobel`` (axis 0), ``prewitt`` (axis 0) and ``correlate`` with a
  random N(0, 1) 3 x 3 kernel, each in the modes reflect, nearest, mirror, constant, wrap, on
  8 x 8, 9 x 9, 12 x 12 and 16 x 16 patches of scikit-learn's sample photographs;
* 1-D, 64 inputs, k a random N(0, 1) 3-tap kernel: ``np.convolve(x, k, "same")`` (64 x 64),
  ``np.convolve(x, k, "full")`` (66 x 64) and ``scipy.ndimage.convolve1d`` in the five modes,
  on rows of 1 x 64 photograph patches (``images``) and on AR(1) signals with coefficient 0.9
  (``ar0.9``);
* torch: ``Conv2d(1, 1, 3, padding="same", padding_mode=m, bias=False)`` for m in zeros,
  reflect, replicate, circular, default initialisation after ``torch.manual_seed(seed)``, run in
  float64 under ``torch.no_grad``, same patch sizes;
* exceptions, 3 x 3 on 8 x 8 patches: a valid (36 x 64) and a circular (64 x 64) convolution
  (``shift_sharing`` labels, N(0, 1) tap values, 0 for the zero group) with 1, 5 and 20 tap
  entries (chosen at random, without replacement, among the entries outside the zero group)
  changed by +/- U(0.3, 1.0) times the standard deviation of the 9 taps (``valid+5``,
  ``circular+20``, ...); ``dead input`` (valid; one input column set to 0, chosen among the
  inputs that all 9 taps reach); ``replaced row`` (circular; one output row replaced by N(0, 1)
  values).

Data: ``X`` from ``sharelearn.datasets._image_patches`` (or ``_ar1_inputs``), ``n`` in {300,
1000}; ``Y = X @ W.T`` plus Gaussian noise at 1% and 10% of the standard deviation of the
noise-free ``Y`` (one number for all outputs). For one seed, ``X`` depends on (seed, n, shape,
inputs) only, so every mode of one size sees the same inputs; the random kernels and exceptions
are drawn from the seed; 10 seeds per case.

Estimators: ``SharingDiscoverer(model="linear", random_state=seed)`` with its defaults
(``validation``) and with ``objective="evidence"``. The truth's objective is the same estimator
fitted with ``init=truth, n_restarts=0, local_search=False`` (the documented way to score a
given partition without searching; same data, ``random_state`` and objective).

Per fit (``bench_borders[_quick][_tag].csv``)
---------------------------------------------
``pd`` partition distance to the truth, ``exact`` = ``pd == 0``; ``objective`` the fit's
``objective_``, ``truth_objective`` the truth's; ``search_failure``: the truth scores better
than the found partition by more than ``1e-6 * max(|found|, |truth|, 1)``; ``objective_miss``:
``pd > 0`` and not a search failure (the objective prefers, or ties with, a wrong partition);
``time_s`` the wall time of the search fit (not of the truth's scoring). Resolution, as in
``bench_realistic.py``: ``min_se_truth`` is the smallest distance between two true groups in
standard errors of the difference of their least-squares values (an exception is a group of its
own, so this is per block where a block is one changed entry); ``min_se_merged`` the same over
the true groups that the found partition merges (``inf`` when it merges none: a split). For the
exception cases, ``min_se_departure`` is the same for each departing entry (below) as a group of
its own, against the groups of another value (:func:`departure_resolution`: the search places
exceptions entry by entry; border departures are blocks of a border hypothesis and are not
counted this way: ``inf``). A seed is *resolvable* when both are 5 or more.

Departures, read only when the fitted estimator has ``departures_`` (a boolean mask over the
entries of ``W``): ``dep_found`` its count, ``dep_hit`` how many of those are true departures.
``dep_true`` counts the true departures, defined here as the entries of ``W`` that differ (by
more than ``1e-9 max|W|``) from the interior-kernel map, which is built as follows. Output ``o``
is centred on input ``o - (n_out - n_in) // 2`` along each axis (valid: ``o + 1``, full:
``o - 1``, same size: ``o``); the interior kernel's tap at offset ``d`` (``|d| <= 1``) is the
median of ``W[o, centre(o) + d]`` over the outputs whose 3 x 3 (3-tap) window lies inside the
input, which ignores the few exceptions. From it two reference maps are built, zero-padded (a tap
falling outside the input is dropped) and wrap-around (offsets modulo the input size); the
reference is whichever of the two differs from ``W`` in fewer entries (ties: zero-padded), named
in ``dep_ref``. The centre may also be moved by one along each axis (``shift_sharing``'s circular
convolution has its taps at offsets 0..2, not -1..1; ``dep_ref`` then says ``shifted +1,+1``);
the centred references win ties. So a constant-, zeros- or wrap-mode map has no departures; in the
reflect/nearest/mirror modes the departures are the border outputs' in-window entries that
received a folded-back tap (and the entries that lost one); the exceptions' departures are the
changed entries, the dead column's former taps, and the replaced row's entries that differ.

Border names, read only when the fitted estimator has ``structure_`` (with ``.border`` and
``.text``): ``border`` is ``structure_.border`` normalised to scipy's names (zeros, zero,
grid-constant -> constant; replicate, edge -> nearest; circular, periodic, grid-wrap -> wrap;
grid-mirror, symmetric -> reflect; a ``reflect`` that is named is taken as scipy's reflect).
``expected`` is the case's mode in scipy's names (torch: zeros = constant, replicate = nearest,
reflect = mirror, circular = wrap; ``np.convolve`` same: constant, full: constant or full; the
exceptions: valid or wrap), and ``name_right`` is ``border`` in ``expected``. Some modes give the
very same map (for a 3-tap kernel reflect and nearest fold the same pixel back): ``equiv_modes``
lists the scipy modes whose ``scipy.ndimage.correlate`` with the interior kernel gives ``W``
exactly (same-size maps only), and ``name_equiv`` accepts those names too.

Summary (``bench_borders_summary[_quick][_tag].csv``), one row per case, mode, shape, inputs, n,
noise and objective, over the seeds: exact (k/seeds), mean PD, search failures, objective misses
(``miss_min_se``: the smallest ``min_se_merged`` among them), exact among the resolvable seeds,
median and max fit time, mean departures found / true / hit, name right (k/fits that have
``structure_``) and name right up to identical maps.

    python benchmarks/bench_borders.py [--quick] [--cases TEXT] [--seeds N] [--n-jobs J]
        [--objective validation|evidence|both] [--tag TEXT] [--sample]

``--sample``: the whole grid of cases, but one fit per case and objective, its ``n``, noise and
seed drawn at random (seeded by the case's name); a cheap look at every cell of the grid.
``--quick``: 8 x 8, n = 300, 1% noise, 2 seeds, the default objective only, and the cases
gaussian and sobel in the five modes, torch zeros, 1-D ``np.convolve`` same (photograph rows),
valid+1, valid+5, circular+1, circular+5. ``--cases`` keeps the cases whose full name
(``"<case> <mode> <shape> <inputs>"``, e.g. ``"gaussian reflect 8x8 images"``) contains the
text. ``--n-jobs`` runs fits in parallel with joblib (each fit single-threaded).
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from dataclasses import dataclass

import numpy as np
from _common import (
    RESOLVABLE_SE,
    group_standard_errors,
    merged_pairs,
    min_se_apart,
    print_table,
    true_values,
    write_csv,
)
from joblib import Parallel, delayed
from scipy import ndimage

from sharelearn import SharingDiscoverer, canonical_labels, partition_distance
from sharelearn.datasets import _ar1_inputs, _image_patches
from sharelearn.symmetry import shift_sharing

MODES = ("reflect", "nearest", "mirror", "constant", "wrap")
TORCH_MODES = ("zeros", "reflect", "replicate", "circular")
TORCH_TO_SCIPY = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest",
                  "circular": "wrap"}
# names a describer might use, normalised to scipy's (a bare "reflect" is scipy's reflect)
BORDER_ALIASES = {"zeros": "constant", "zero": "constant", "grid-constant": "constant",
                  "replicate": "nearest", "edge": "nearest", "circular": "wrap",
                  "periodic": "wrap", "grid-wrap": "wrap", "grid-mirror": "reflect",
                  "symmetric": "reflect"}
SIZES = (8, 9, 12, 16)
NS = (300, 1000)
NOISES = (0.01, 0.1)
RADIUS = 1  # every kernel here is 3 wide (3 x 3 in 2-D)
REL_TOL = 1e-6  # search failure: truth better than found by more than this, relative


@dataclass(frozen=True)
class Case:
    case: str  # the operation
    mode: str  # its border mode (as its library names it)
    shape: tuple  # input shape
    inputs: str  # "images" or "ar0.9"
    family: str  # "scipy2d", "numpy1d", "scipy1d", "torch", "exception"
    expected: tuple  # acceptable border names, in scipy's names

    @property
    def shape_text(self):
        return "x".join(str(s) for s in self.shape)

    @property
    def full_name(self):
        return f"{self.case} {self.mode} {self.shape_text} {self.inputs}"


SCIPY_2D = ("gaussian", "uniform", "laplace", "sobel", "prewitt", "correlate")
EXCEPTIONS = (("valid+1", "valid"), ("valid+5", "valid"), ("valid+20", "valid"),
              ("circular+1", "circular"), ("circular+5", "circular"),
              ("circular+20", "circular"), ("dead input", "valid"),
              ("replaced row", "circular"))


def all_cases():
    out = []
    for size in SIZES:
        for op in SCIPY_2D:
            for mode in MODES:
                out.append(Case(op, mode, (size, size), "images", "scipy2d", (mode,)))
    for inputs in ("images", "ar0.9"):
        out.append(Case("np.convolve", "same", (64,), inputs, "numpy1d", ("constant",)))
        out.append(Case("np.convolve", "full", (64,), inputs, "numpy1d", ("constant", "full")))
        for mode in MODES:
            out.append(Case("convolve1d", mode, (64,), inputs, "scipy1d", (mode,)))
    for size in SIZES:
        for mode in TORCH_MODES:
            out.append(Case("torch", mode, (size, size), "images", "torch",
                            (TORCH_TO_SCIPY[mode],)))
    for name, base in EXCEPTIONS:
        expected = ("valid",) if base == "valid" else ("wrap",)
        out.append(Case(name, base, (8, 8), "images", "exception", expected))
    return out


QUICK = {f"{op} {m} 8x8 images" for op in ("gaussian", "sobel") for m in MODES} | {
    "torch zeros 8x8 images", "np.convolve same 64 images", "valid+1 valid 8x8 images",
    "valid+5 valid 8x8 images", "valid+20 valid 8x8 images", "dead input valid 8x8 images",
    "circular+1 circular 8x8 images", "circular+5 circular 8x8 images"}


def select_cases(quick, text):
    out = all_cases()
    if quick:
        out = [c for c in out if c.full_name in QUICK]
    if text:
        out = [c for c in out if text in c.full_name]
    return out


# --- the maps ------------------------------------------------------------------------------


def map_matrix(func, shape):
    """Dense ``W`` of a linear map of arrays of ``shape``: column j is ``func(e_j)`` flattened."""
    n_in = int(np.prod(shape))
    cols = []
    for j in range(n_in):
        e = np.zeros(n_in)
        e[j] = 1.0
        cols.append(np.asarray(func(e.reshape(shape)), dtype=np.float64).ravel())
    return np.stack(cols, axis=1)


def scipy_2d_func(op, mode, rng):
    if op == "gaussian":
        return lambda x: ndimage.gaussian_filter(x, sigma=1.0, truncate=1.0, mode=mode)
    if op == "uniform":
        return lambda x: ndimage.uniform_filter(x, size=3, mode=mode)
    if op == "laplace":
        return lambda x: ndimage.laplace(x, mode=mode)
    if op == "sobel":
        return lambda x: ndimage.sobel(x, axis=0, mode=mode)
    if op == "prewitt":
        return lambda x: ndimage.prewitt(x, axis=0, mode=mode)
    if op == "correlate":
        kernel = rng.standard_normal((3, 3))
        return lambda x: ndimage.correlate(x, kernel, mode=mode)
    raise ValueError(op)


def torch_map(mode, shape, seed):
    import torch

    h, w = shape
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(1, 1, 3, padding="same", padding_mode=mode, bias=False).double()
    with torch.no_grad():
        eye = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
        out = conv(eye).reshape(h * w, h * w).numpy()
    return out.T.copy()  # row j of out is the response to e_j


def exception_map(name, rng):
    base = "valid" if name.startswith(("valid", "dead")) else "circular"
    labels = shift_sharing((8, 8), 3, base)
    zero = int(np.bincount(labels).argmax())  # the structural zeros: by far the largest group
    r = int(labels.max()) + 1
    values = rng.standard_normal(r)
    values[zero] = 0.0
    n_out = 36 if base == "valid" else 64
    W = values[labels].reshape(n_out, 64)
    taps = np.delete(values, zero)
    if "+" in name:
        k = int(name.split("+")[1])
        where = rng.choice(np.flatnonzero(labels != zero), size=k, replace=False)
        signs = rng.choice((-1.0, 1.0), size=k)
        flat = W.ravel()  # a view
        flat[where] += signs * rng.uniform(0.3, 1.0, size=k) * taps.std()
    elif name == "dead input":
        rows, cols = np.divmod(np.arange(64), 8)
        inner = np.flatnonzero((rows >= 2) & (rows <= 5) & (cols >= 2) & (cols <= 5))
        W[:, rng.choice(inner)] = 0.0
    elif name == "replaced row":
        W[rng.integers(64)] = rng.standard_normal(64)
    return W


def build_map(case, seed):
    rng = np.random.default_rng([seed, 2])
    if case.family == "scipy2d":
        return map_matrix(scipy_2d_func(case.case, case.mode, rng), case.shape)
    if case.family == "numpy1d":
        k = rng.standard_normal(3)
        return map_matrix(lambda x: np.convolve(x, k, case.mode), case.shape)
    if case.family == "scipy1d":
        k = rng.standard_normal(3)
        return map_matrix(lambda x: ndimage.convolve1d(x, k, mode=case.mode), case.shape)
    if case.family == "torch":
        return torch_map(case.mode, case.shape, seed)
    return exception_map(case.case, rng)


def truth_labels(W):
    return canonical_labels(np.unique(np.round(W, 10), return_inverse=True)[1].ravel())


def make_data(case, W, n, noise, seed):
    rng = np.random.default_rng([seed, n, *case.shape])
    if case.inputs == "images":
        shape = case.shape if len(case.shape) == 2 else (1, case.shape[0])
        X = _image_patches(n, shape, rng)
    else:
        X = _ar1_inputs(n, case.shape, 0.9, rng)
    clean = X @ W.T
    Z = np.random.default_rng([seed, 1]).standard_normal(clean.shape)
    return X, clean + noise * clean.std() * Z


# --- departures and names ------------------------------------------------------------------


def _grids(W, in_shape, shift):
    """Per axis: each output's centre, ``o - (n_out - n_in) // 2 + shift``, and each (output,
    input) pair's offset from the output's centre."""
    in_shape = tuple(in_shape)
    n_out = W.shape[0]
    if len(in_shape) == 1:
        out_shape = (n_out,)
    else:
        side = int(round(np.sqrt(n_out)))
        out_shape = (side, side) if side * side == n_out else in_shape
    o_idx = np.unravel_index(np.arange(n_out), out_shape)
    i_idx = np.unravel_index(np.arange(W.shape[1]), in_shape)
    centres = [o_idx[a] - (out_shape[a] - in_shape[a]) // 2 + shift[a]
               for a in range(len(in_shape))]
    offsets = [i_idx[a][None, :] - centres[a][:, None] for a in range(len(in_shape))]
    return centres, offsets


def interior_kernel(W, in_shape, shift):
    """The median over interior outputs of each tap ``W[o, centre(o) + d]``, ``|d| <= 1``."""
    centres, offsets = _grids(W, in_shape, shift)
    inside = np.ones(W.shape[0], bool)
    for a, c in enumerate(centres):
        inside &= (c - RADIUS >= 0) & (c + RADIUS < in_shape[a])
    kernel = np.zeros((2 * RADIUS + 1,) * len(in_shape))
    for d in np.ndindex(kernel.shape):
        hit = np.ones(W.shape, bool)
        for a, off in enumerate(offsets):
            hit &= off == d[a] - RADIUS
        vals = [W[o][hit[o]][0] for o in np.flatnonzero(inside) if hit[o].any()]
        kernel[d] = np.median(vals) if vals else 0.0
    return kernel


def reference_map(kernel, W, in_shape, shift, wrap):
    _, offsets = _grids(W, in_shape, shift)
    if wrap:
        offsets = [(off + n // 2) % n - n // 2 for off, n in zip(offsets, in_shape, strict=True)]
    ok = np.ones(W.shape, bool)
    for off in offsets:
        ok &= np.abs(off) <= RADIUS
    idx = tuple(np.where(ok, off + RADIUS, 0) for off in offsets)
    return np.where(ok, kernel[idx], 0.0)


def true_departures(W, in_shape):
    """Departure mask of ``W`` from the closest interior-kernel map: zero-padded or wrap-around,
    centred (shift 0) or with the centre moved by one along an axis (``shift_sharing``'s
    circular convolution has its taps at offsets 0..2, not -1..1). Returns the mask, the name of
    the reference, its kernel and its shift."""
    tol = 1e-9 * max(np.abs(W).max(), 1e-300)
    shifts = sorted(itertools.product((-1, 0, 1), repeat=len(in_shape)),
                    key=lambda t: sum(map(abs, t)))  # centred first: it wins ties
    best = None
    for shift in shifts:
        kernel = interior_kernel(W, in_shape, shift)
        for name, wrap in (("zero-padded", False), ("wrap", True)):
            mask = np.abs(W - reference_map(kernel, W, in_shape, shift, wrap)) > tol
            if best is None or mask.sum() < best[0].sum():
                if any(shift):
                    name = f"{name} shifted {','.join(f'{t:+d}' for t in shift)}"
                best = (mask, name, kernel, shift)
    mask, name, kernel, shift = best
    return mask.ravel(), name, kernel, shift


def equivalent_modes(W, in_shape, kernel, shift):
    """The scipy modes whose ``correlate`` with the interior kernel gives exactly ``W``."""
    if W.shape[0] != W.shape[1]:
        return ()
    target = np.round(W, 10)
    return tuple(m for m in MODES if np.array_equal(np.round(map_matrix(
        lambda x, m=m: ndimage.correlate(x, kernel, mode=m, origin=[-t for t in shift]),
        in_shape), 10), target))


def normalise_border(name):
    if name is None:
        return None
    name = str(name).strip().lower()
    return BORDER_ALIASES.get(name, name)


# --- one fit -------------------------------------------------------------------------------


def departure_resolution(X, Y, truth, W, departures, noise_sd):
    """How well one departing entry is told from the groups it could join: the smallest
    ``|v_e - v_h| / SE`` over the departing entries ``e`` and the groups ``h`` of another value,
    with each departing entry a group of its own and each true group's other entries one group
    (``inf`` without departures). The search places exceptions one entry at a time, and one
    entry's value is determined far less well than a group's: a dead input's zero entry 0.03
    from a tap of value -0.031 was 11 standard errors apart as groups and about 1 as an entry."""
    dep = np.flatnonzero(departures)
    if not dep.size:
        return np.inf
    refined = truth.copy()
    refined[dep] = truth.max() + 1 + np.arange(dep.size)
    refined = canonical_labels(refined)
    se = group_standard_errors(X, Y, refined, noise_sd)
    values = true_values(refined, W)
    own = {int(refined[e]) for e in dep}
    pairs = [(g, h) for g in own for h in range(len(values))
             if h != g and abs(values[g] - values[h]) > 1e-12]
    return min_se_apart(values, se, pairs)


def fit(X, Y, seed, objective, **params):
    return SharingDiscoverer(model="linear", objective=objective, random_state=seed,
                             **params).fit(X, Y)


def run_fit(case, n, noise, seed, objective):
    W = build_map(case, seed)
    truth = truth_labels(W)
    X, Y = make_data(case, W, n, noise, seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        est = fit(X, Y, seed, objective)
        elapsed = time.perf_counter() - start
        scored = fit(X, Y, seed, objective, init=truth, n_restarts=0, local_search=False)
    found = est.sharing_partition_
    pd = partition_distance(found, truth)
    value, truth_value = float(est.objective_), float(scored.objective_)
    tol = REL_TOL * max(abs(value), abs(truth_value), 1.0)
    failure = bool(truth_value < value - tol)
    # how many standard errors apart the closest two true groups are
    noise_sd = noise * float((X @ W.T).std())
    se = group_standard_errors(X, Y, truth, noise_sd)
    values = true_values(truth, W)
    merged = merged_pairs(truth, found) if pd else []

    dep_true, dep_ref, kernel, shift = true_departures(W, case.shape)
    row = dict(
        case=case.case, mode=case.mode, shape=case.shape_text, inputs=case.inputs, n=n,
        noise=noise, seed=seed, objective_kind=objective, entries=truth.size,
        n_groups=int(est.n_groups_), true_groups=int(truth.max()) + 1, exact=pd == 0, pd=pd,
        objective=value, truth_objective=truth_value, search_failure=failure,
        objective_miss=bool(pd > 0 and not failure), time_s=elapsed,
        min_se_truth=min_se_apart(values, se),
        min_se_merged=min_se_apart(values, se, merged) if merged else np.inf,
        min_se_departure=(departure_resolution(X, Y, truth, W, dep_true, noise_sd)
                          if case.family == "exception" else np.inf),
        truth_scored=partition_distance(scored.sharing_partition_, truth) == 0,
        n_warnings=len(caught), dep_true=int(dep_true.sum()), dep_ref=dep_ref,
        dep_found=None, dep_hit=None, border=None, structure_text=None,
        expected="|".join(case.expected), name_right=None, name_equiv=None)

    try:
        departures = getattr(est, "departures_", None)
    except Exception as err:  # noqa: BLE001 - an attribute being written now may raise
        departures, row["dep_ref"] = None, f"{dep_ref}; departures_ raised {err!r}"
    if departures is not None:
        mask = np.asarray(departures, dtype=bool).ravel()
        row["dep_found"] = int(mask.sum())
        if mask.size == dep_true.size:
            row["dep_hit"] = int(np.sum(mask & dep_true))

    equiv = equivalent_modes(W, case.shape, kernel, shift)
    row["equiv_modes"] = "|".join(equiv)
    try:
        structure = getattr(est, "structure_", None)
    except Exception as err:  # noqa: BLE001
        structure, row["structure_text"] = None, f"structure_ raised {err!r}"
    if structure is not None:
        border = normalise_border(getattr(structure, "border", None))
        row["border"] = border
        row["structure_text"] = getattr(structure, "text", None)
        row["name_right"] = border in case.expected
        row["name_equiv"] = border in case.expected or border in equiv
    return row


# --- summary -------------------------------------------------------------------------------

GROUP_KEYS = ("objective_kind", "case", "mode", "shape", "inputs", "n", "noise")


def _mean_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _count_of(rows, key):
    have = [r[key] for r in rows if r[key] is not None]
    return f"{sum(have)}/{len(have)}" if have else None


def summarise(rows):
    pds = np.array([r["pd"] for r in rows])
    times = np.array([r["time_s"] for r in rows])
    misses = [r for r in rows if r["objective_miss"]]
    resolvable = [r for r in rows if min(r["min_se_truth"], r["min_se_departure"])
                  >= RESOLVABLE_SE]
    return dict(
        **{k: rows[0][k] for k in GROUP_KEYS}, entries=rows[0]["entries"],
        true_groups=float(np.median([r["true_groups"] for r in rows])),
        groups=float(np.median([r["n_groups"] for r in rows])),
        exact=f"{int(np.sum(pds == 0))}/{len(rows)}", mean_pd=float(pds.mean()),
        search_failures=sum(r["search_failure"] for r in rows),
        objective_misses=len(misses),
        miss_min_se=min((r["min_se_merged"] for r in misses), default=np.inf),
        exact_resolvable=f"{sum(r['pd'] == 0 for r in resolvable)}/{len(resolvable)}",
        median_s=float(np.median(times)), max_s=float(times.max()),
        dep_found=_mean_or_none([r["dep_found"] for r in rows]),
        dep_true=_mean_or_none([r["dep_true"] for r in rows]),
        dep_hit=_mean_or_none([r["dep_hit"] for r in rows]),
        name_right=_count_of(rows, "name_right"), name_equiv=_count_of(rows, "name_equiv"),
        truth_scored=f"{sum(r['truth_scored'] for r in rows)}/{len(rows)}")


TABLE_COLUMNS = ("objective_kind", "case", "mode", "shape", "inputs", "n", "noise", "true_groups",
                 "groups", "exact", "mean_pd", "search_failures", "objective_misses",
                 "miss_min_se", "exact_resolvable", "median_s", "max_s", "dep_found", "dep_true",
                 "name_right", "name_equiv")


def sampled_tasks(case, objectives, ns, noises, n_seeds):
    """One (objective, n, noise, seed) per objective for ``case``, drawn from a generator seeded
    by the case's name (so a rerun draws the same ones, whatever other cases are selected)."""
    rng = np.random.default_rng(list(case.full_name.encode()))
    return [(obj, int(rng.choice(ns)), float(rng.choice(noises)), int(rng.integers(n_seeds)))
            for obj in objectives]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="8x8, n=300, 1%% noise, 2 seeds, default objective, 16 cases")
    parser.add_argument("--cases", default=None,
                        help="keep the cases whose '<case> <mode> <shape> <inputs>' contains this")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--n-jobs", type=int, default=1, help="joblib workers over fits")
    parser.add_argument("--objective", choices=("validation", "evidence", "both"), default=None,
                        help="default: both (--quick: validation)")
    parser.add_argument("--tag", default="", help="appended to the CSV names")
    parser.add_argument("--sample", action="store_true",
                        help="one fit per case and objective, its n, noise and seed drawn")
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (2 if args.quick else 10)
    objective = args.objective or ("validation" if args.quick else "both")
    objectives = ("validation", "evidence") if objective == "both" else (objective,)
    ns, noises = ((300,), (0.01,)) if args.quick else (NS, NOISES)
    cases = select_cases(args.quick, args.cases)
    if not cases:
        parser.error(f"no case matches --cases {args.cases!r}")

    summary, fits = [], []
    start = time.perf_counter()
    with Parallel(n_jobs=args.n_jobs) as parallel:
        for case in cases:
            tasks = [(obj, n, noise, seed) for obj in objectives for n in ns for noise in noises
                     for seed in range(n_seeds)]
            if args.sample:
                tasks = sampled_tasks(case, objectives, ns, noises, n_seeds)
            rows = parallel(delayed(run_fit)(case, n, noise, seed, obj)
                            for obj, n, noise, seed in tasks)
            fits += rows
            groups = {}
            for r in rows:
                groups.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
            new = [summarise(g) for g in groups.values()]
            summary += new
            print_table(new, TABLE_COLUMNS, floatfmt=".3g")
            print(flush=True)
    print_table(summary, TABLE_COLUMNS, floatfmt=".3g",
                title="Borders and exceptions (dep_*: means over seeds; blank: attribute absent)")
    suffix = ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    print(write_csv(fits, f"bench_borders{suffix}.csv"))
    print(write_csv(summary, f"bench_borders_summary{suffix}.csv"))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
