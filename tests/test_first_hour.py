"""The closed-form estimator's edges met in a first hour (issue 34): the default model reads the
data, a misspelt keyword fails alike on every path, huge data and thread counts are refused or
bounded with a clear message, costly settings warn, and scikit-learn's checks pass with the
defaults users get."""

import os
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import EfficiencyWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.estimator_checks import check_transformer_n_iter, parametrize_with_checks

from sharelearn import NetworkSharingDiscoverer, SharingDiscoverer, partition_distance
from sharelearn._threads import usable_cores
from sharelearn.datasets import make_convolution, make_shared_means, make_sum_of_numbers


@pytest.fixture(scope="module")
def conv():
    return make_convolution(120, input_shape=5, kernel_size=2, random_state=0)


@pytest.fixture(scope="module")
def means():
    return make_shared_means(80, n_features=5, n_groups=2, random_state=0)


# -- item 2: model="auto" ----------------------------------------------------------------------
def test_the_default_model_fits_the_linear_map_when_y_is_given(conv):
    X, Y, truth, W = conv
    assert SharingDiscoverer().get_params()["model"] == "auto"
    disc = SharingDiscoverer(reference=truth, random_state=0).fit(X, Y)
    assert disc.model_ == "linear" and disc.coef_.shape == W.shape
    assert disc.score(X) == 0  # the convolution's sharing, not one group of means
    np.testing.assert_allclose(disc.predict(X), X @ disc.coef_.T + disc.intercept_)
    assert disc.get_feature_names_out().shape == (Y.shape[1],)
    assert not hasattr(disc, "inverse_transform")


def test_the_default_model_fits_the_means_without_y(means):
    X, truth, _ = means
    disc = SharingDiscoverer(random_state=0).fit(X)
    assert disc.model_ == "mean" and partition_distance(disc.sharing_partition_, truth) == 0
    assert disc.inverse_transform(disc.transform(X)).shape == X.shape
    with pytest.raises(AttributeError, match=r"model='auto', fitted as model='mean'\) has no "
                                             r"predict"):
        disc.predict(X)


def test_a_refit_follows_the_data_of_each_fit(conv):
    X, Y, _, _ = conv
    disc = SharingDiscoverer(random_state=0).fit(X, Y)
    disc.fit(X)
    assert disc.model_ == "mean" and not hasattr(disc, "coef_")
    assert disc.means_.shape == (X.shape[1],) and not hasattr(disc, "predict")


def test_before_a_fit_auto_may_be_either_model(conv):
    X, _, _, _ = conv
    disc = SharingDiscoverer()
    assert hasattr(disc, "predict") and hasattr(disc, "inverse_transform")
    with pytest.raises(NotFittedError):
        disc.predict(X)
    assert not SharingDiscoverer().__sklearn_tags__().target_tags.required
    assert SharingDiscoverer(model="linear").__sklearn_tags__().target_tags.required


def test_the_choice_is_stated_once_in_verbose_output(conv, capsys):
    X, Y, _, _ = conv
    SharingDiscoverer(random_state=0, verbose=1).fit(X, Y)
    out = capsys.readouterr().out
    assert out.count("model='auto'") == 1 and "(model='linear')" in out
    SharingDiscoverer(model="linear", random_state=0, verbose=1).fit(X, Y)
    assert "model='auto'" not in capsys.readouterr().out


def test_an_unknown_model_lists_auto(means):
    with pytest.raises(ValueError, match=r"must be one of \['auto', 'mean', 'linear'\], "
                                         r"got 'lineer'"):
        SharingDiscoverer(model="lineer").fit(means[0])


# -- item 4: a misspelt keyword on every path --------------------------------------------------
_PATHS = {
    "fit": lambda est, X, y: est.fit(X, y),
    "clone": lambda est, X, y: clone(est),
    "cross_val_score": lambda est, X, y: cross_val_score(est, X, y, cv=2),
    "GridSearchCV": lambda est, X, y: GridSearchCV(est, {"cv": [2, 3]}, cv=2).fit(X, y),
}


@pytest.mark.parametrize("path", list(_PATHS))
@pytest.mark.parametrize("make, message", [
    (lambda: SharingDiscoverer(model="linear", nuclaer=1.0),
     r"SharingDiscoverer got unexpected keyword argument 'nuclaer' \(did you mean 'nuclear'\?\)"
     r"\. The parameters of networks"),
    (lambda: NetworkSharingDiscoverer(search_step=5),
     r"NetworkSharingDiscoverer got unexpected keyword argument 'search_step' \(did you mean "
     r"'search_steps'\?\)\. Keyword arguments of the module's constructor"),
])
def test_a_misspelt_keyword_raises_the_same_error_on_every_path(path, make, message):
    X, y, _ = make_sum_of_numbers(20, length=3, random_state=0)
    est = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fit that fails into a warning: the error itself
        with pytest.raises(TypeError, match=message):
            _PATHS[path](est, X, y.astype(float))
    assert not hasattr(est, "n_features_in_")


def test_the_unknown_keyword_is_a_parameter_that_survives_a_rebuild(means):
    est = SharingDiscoverer(model="mean", nuclaer=1.0)
    assert est.get_params()["nuclaer"] == 1.0 and "nuclaer=1.0" in repr(est)
    twin = type(est)(**est.get_params(deep=False))
    with pytest.raises(TypeError, match="'nuclaer'"):
        twin.fit(means[0])


# -- item 8: magnitudes whose errors overflow float64 ------------------------------------------
@pytest.mark.parametrize("model", ["linear", "mean"])
def test_targets_whose_squared_errors_overflow_are_refused_by_magnitude(conv, means, model):
    if model == "linear":
        X, Y = conv[0], conv[1] * 1e160
        name = "y"
    else:
        X, Y, name = means[0] * 1e160, None, "X"
    est = SharingDiscoverer(model=model, random_state=0)
    with pytest.raises(ValueError, match=rf"{name} is too large .* root mean square \(after its "
                                         rf"offset\) is \d\.\de\+160.* Divide {name} by"):
        est.fit(X, Y)
    assert not hasattr(est, "n_features_in_")


def test_targets_just_below_the_limit_give_finite_errors(conv):
    X, Y, truth, _ = conv
    est = SharingDiscoverer(model="linear", reference=truth, random_state=0).fit(X, Y * 1e149)
    assert est.score(X) == 0
    assert np.isfinite(est.validation_loss_) and est.validation_loss_ > 1e290


def test_weights_that_overflow_are_refused(conv):
    X, Y, _, _ = conv
    with pytest.raises(ValueError, match=r"weights of the linear map .* too large"):
        SharingDiscoverer(model="linear", random_state=0).fit(X * 1e-200, Y * 1e149)


def test_huge_inputs_fit_without_numpy_overflow_warnings(conv):
    X, Y, truth, _ = conv
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = SharingDiscoverer(model="linear", reference=truth, random_state=0)
        est.fit(X * 1e300, Y)
    assert est.score(X) == 0 and np.all(np.isfinite(est.coef_))


# -- item 9: threads ---------------------------------------------------------------------------
@contextmanager
def _on_one_core():
    """This thread restricted to one of its cores where the system has affinity masks (Linux),
    so that a fit asking for more runs on one thread whatever the machine; restored after."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mask)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, mask)


def test_a_fit_asked_for_too_many_threads_warns_and_runs_on_the_cores(means):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's count, which the fit restores
    try:
        with _on_one_core():
            cores = usable_cores()
            with pytest.warns(UserWarning, match=rf"n_threads=100000 asks for 100000 threads, "
                                                 rf"but this process may use {cores} cores?; "
                                                 rf"running with {cores}\.") as record:
                SharingDiscoverer(n_threads=100_000, n_restarts=1, random_state=0).fit(means[0])
        assert record[0].filename == __file__  # it points at the call of fit
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# -- item 10: the hold-out before the inner split ----------------------------------------------
def test_a_split_after_the_hold_out_names_the_hold_out():
    X, y, _ = make_sum_of_numbers(3, length=3, random_state=0)
    est = NetworkSharingDiscoverer("sequence", module__embedding_dim=4, module__hidden=3,
                                   random_state=0)
    with pytest.raises(ValueError, match=r"cv=5 cannot split the 2 samples left once "
                                         r"validation_fraction=0\.2 has held out .* smaller "
                                         r"validation_fraction \(None holds out nothing\)"):
        est.fit(X, y)


def test_a_split_of_too_few_samples_says_what_to_do(means):
    with pytest.raises(ValueError, match=r"cv=5 cannot split 3 samples: .* Pass more samples or "
                                         r"a smaller cv\."):
        SharingDiscoverer().fit(means[0][:3])


# -- item 14: costly settings ------------------------------------------------------------------
@pytest.mark.slow
def test_an_unshared_start_on_a_large_map_warns_with_its_cost():
    X, Y, _, _ = make_convolution(60, input_shape=10, kernel_size=3, random_state=0)  # 80 items
    with pytest.warns(EfficiencyWarning, match=r"init='unshared' starts the discrete search "
                                               r"from 80 groups \(one per item\).* roughly 60 "
                                               r"times .* init='auto' \(the default\)"):
        SharingDiscoverer(model="linear", init="unshared", n_restarts=0, max_search_iter=1,
                          random_state=0).fit(X, Y)


def test_many_candidate_groups_warn_with_their_cost():
    X, _, _ = make_shared_means(30, n_features=200, n_groups=4, random_state=0)
    with pytest.warns(EfficiencyWarning, match=r"n_candidate_groups=200 .* the default gives "
                                               r"16: every step costs roughly 10 times"):
        SharingDiscoverer(n_candidate_groups=200, n_restarts=1, max_iter=1, max_search_iter=1,
                          random_state=0).fit(X)


@pytest.mark.parametrize("params", [
    dict(),  # the defaults
    dict(init="unshared", local_search=False),  # only scored: no search from 80 groups
    dict(n_candidate_groups=80, n_restarts=1),  # 5 times the default's 16
])
def test_settings_of_ordinary_cost_do_not_warn(params):
    X, Y, _, _ = make_convolution(60, input_shape=10, kernel_size=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EfficiencyWarning)
        SharingDiscoverer(model="linear", random_state=0, **params).fit(X, Y)


# -- item 16: n_iter_ and scikit-learn's checks with the defaults ------------------------------
def test_n_iter_counts_the_search_when_no_relaxation_runs(conv):
    X, Y, _, _ = conv
    est = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    assert est.loss_curve_.size == 0  # the winning start was no relaxation
    assert est.n_iter_ == est.n_search_moves_ + 1 >= 1
    check_transformer_n_iter("SharingDiscoverer", SharingDiscoverer(model="linear"))


@parametrize_with_checks([SharingDiscoverer(), SharingDiscoverer(model="linear"),
                          SharingDiscoverer(model="mean")])
@pytest.mark.slow
def test_sklearn_checks_with_the_defaults_users_get(estimator, check):
    check(estimator)
