"""Units never change the answer: the closed-form models fit internally standardised data."""

import functools
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sharelearn import SharingDiscoverer
from sharelearn._scaling import standardize
from sharelearn.datasets import make_convolution, make_shared_means

# A 1-D valid convolution (4 x 6 = 24 entries, noise 0.1) and shared means (noise 1).
CONV = make_convolution(80, input_shape=6, kernel_size=3, random_state=0)
MEANS = make_shared_means(60, n_features=6, n_groups=3, random_state=0)
NOISE = {"linear": 0.1, "mean": 1.0}


def _fit(model, objective, dtype, sx, sy, offset):
    """Fit on the data scaled by ``sx`` (X) and ``sy`` (y), plus ``offset`` noise levels of the
    scaled data added to every entry."""
    est = SharingDiscoverer(model=model, objective=objective, dtype=dtype, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning of lost precision in the tested range
        if model == "mean":
            X = MEANS[0] * sx + offset * NOISE[model] * sx
            return est.fit(X)
        X, Y = CONV[0], CONV[1]
        return est.fit(X * sx + offset * NOISE[model] * sx, Y * sy + offset * NOISE[model] * sy)


@functools.cache
def _unit_fit(model, objective, dtype):
    return _fit(model, objective, dtype, 1.0, 1.0, 0.0)


def _assert_same_answer(model, objective, dtype, sx, sy, offset):
    base = _unit_fit(model, objective, dtype)
    est = _fit(model, objective, dtype, sx, sy, offset)
    np.testing.assert_array_equal(est.sharing_partition_, base.sharing_partition_)
    # the user's float64 arrays lose their last bits to an offset (the estimator removes it in
    # float64 before any float32 cast)
    eps = float(np.finfo(np.float64).eps)
    rtol = (1e-4 if dtype == "float32" else 1e-6) + 10 * abs(offset) * eps
    # the objective is computed on internal units: it does not move either
    assert est.objective_ == pytest.approx(base.objective_, rel=rtol, abs=rtol)
    # fitted attributes are in the user's units
    if model == "mean":
        np.testing.assert_allclose(est.means_, (base.means_ + offset * NOISE[model]) * sx,
                                   rtol=rtol * 10)
    else:
        np.testing.assert_allclose(est.coef_, base.coef_ * sy / sx, rtol=rtol * 10,
                                   atol=rtol * 10 * np.abs(base.coef_).max() * sy / sx)


log_scale = st.floats(-12, 12)


@pytest.mark.parametrize("objective", ["validation", "evidence"])
@pytest.mark.parametrize("model", ["mean", "linear"])
@settings(max_examples=6, deadline=None, derandomize=True)
@given(log_sx=log_scale, log_sy=log_scale,
       offset=st.one_of(st.just(0.0), st.floats(-1e12, 1e12)))
@example(log_sx=-12.0, log_sy=-12.0, offset=0.0)
@example(log_sx=12.0, log_sy=12.0, offset=1e12)
@example(log_sx=12.0, log_sy=-12.0, offset=-1e12)
@example(log_sx=-12.0, log_sy=12.0, offset=1e12)
@pytest.mark.slow
def test_partition_does_not_depend_on_units_or_offset(model, objective, log_sx, log_sy, offset):
    sy = 10.0**log_sx if model == "mean" else 10.0**log_sy
    _assert_same_answer(model, objective, "float64", 10.0**log_sx, sy, offset)


@pytest.mark.parametrize("objective", ["validation", "evidence"])
@pytest.mark.parametrize("model", ["mean", "linear"])
@settings(max_examples=4, deadline=None, derandomize=True)
@given(log_sx=log_scale, offset=st.floats(-1e4, 1e4))
@example(log_sx=-12.0, offset=1e4)
@pytest.mark.slow
def test_float32_keeps_the_partition_under_offsets(model, objective, log_sx, offset):
    _assert_same_answer(model, objective, "float32", 10.0**log_sx, 10.0**-log_sx, offset)


def test_overflowing_magnitudes_give_the_unit_scale_partition():
    X, Y, truth, _ = CONV
    est = SharingDiscoverer(model="linear", random_state=0).fit(X * 1e160, Y * 1e-160)
    np.testing.assert_array_equal(est.sharing_partition_,
                                  _unit_fit("linear", "validation", "float64").sharing_partition_)
    assert np.all(np.isfinite(est.coef_))


def test_exhausted_precision_is_reported_not_silent():
    X = MEANS[0] + 1e15  # the noise (1) is at the last bits of the offset
    with pytest.warns(UserWarning, match="Subtract the offset from X"):
        SharingDiscoverer(model="mean", random_state=0, n_restarts=0).fit(X)


def test_standardize_uses_one_scale_and_the_allowed_offsets():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3)) * [1.0, 10.0, 100.0] + [5.0, -2.0, 7.0]
    Y = rng.normal(size=(50, 2)) + 3.0
    Xs, Ys, units = standardize(X, Y, center_x="columns", center_y="columns")
    np.testing.assert_allclose(Xs.mean(0), 0, atol=1e-12)
    assert np.sqrt(np.mean(Xs**2)) == pytest.approx(1.0)
    # one scale for all columns: their ratios of spread are kept
    np.testing.assert_allclose(Xs.std(0) / Xs.std(0)[0], X.std(0) / X.std(0)[0])
    np.testing.assert_allclose(Xs * units.x_scale + units.x_offset, X)
    np.testing.assert_allclose(Ys * units.y_scale + units.y_offset, Y)
    _, Ym, units = standardize(None, X, center_x="none", center_y="global")
    assert units.y_offset.shape == () and units.x_scale == 1.0
    np.testing.assert_allclose(Ym * units.y_scale + units.y_offset, X)
    Xn, _, units = standardize(X, Y, center_x="none", center_y="none")
    np.testing.assert_allclose(Xn * units.x_scale, X)  # no offset without an intercept


def test_constant_data_is_not_divided_by_zero():
    _, Ys, units = standardize(None, np.full((10, 4), 3.0), center_x="none", center_y="global")
    assert units.y_scale == 1.0 and np.all(Ys == 0)
