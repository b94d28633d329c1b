"""SharingDiscoverer and NetworkSharingDiscoverer inside the scikit-learn ecosystem: estimator
checks, Pipelines, grid search, joblib and dask parallelism, persistence."""

import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sharelearn import NetworkSharingClassifier, NetworkSharingDiscoverer, SharingDiscoverer
from sharelearn.datasets import make_convolution, make_shared_means, make_sum_of_numbers
from sharelearn.metrics import partition_scorer

FAST = dict(n_restarts=1, max_iter=15, random_state=0)


# A small network keeps the ~40 checks of the "sequence" module at a few seconds together.
SEQUENCE_FAST = dict(n_restarts=1, random_state=0, max_iter=2, inner_steps=1, search_steps=5,
                     max_epochs=5, local_search=False, dtype="float32",
                     module__embedding_dim=4, module__hidden=3)


def _expected_failed_checks(estimator):
    failed = {}
    if any(k.startswith("module__") for k in estimator.get_params()):
        failed["check_no_attributes_set_in_init"] = (
            "module__* keyword arguments are routed skorch-style through **kwargs and "
            "stored as attributes named after them; get_params and set_params include "
            "them, so clone and grid search work.")
    if getattr(estimator, "module", None) == "sequence":
        failed["check_estimators_dtypes"] = (
            "module='sequence' reads X as integer token ids and refuses a floating-point X "
            "(features given to a token model, issue 34); int32 and int64 X pass the check.")
    if isinstance(estimator, NetworkSharingClassifier):
        for check in ("check_classifiers_train", "check_classifiers_train(readonly_memmap=True)",
                      "check_classifiers_train(readonly_memmap=True,X_dtype=float32)"):
            failed[check] = (
                "SEQUENCE_FAST trains a 3-unit network for 5 epochs, too little for the "
                "check's accuracy of 0.83; tests/test_network_classifier.py runs this check "
                "on a network trained long enough.")
    return failed


@parametrize_with_checks([SharingDiscoverer(model="mean", **FAST),
                          SharingDiscoverer(model="linear", **FAST),
                          NetworkSharingDiscoverer("sequence", **SEQUENCE_FAST),
                          NetworkSharingClassifier("sequence", **SEQUENCE_FAST)],
                         expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_pipeline_scaler_discoverer_ridge():
    X, truth, means = make_shared_means(120, n_features=6, n_groups=2, random_state=0)
    y = X[:, truth == 1].mean(1) * 2 + 0.1 * np.random.default_rng(0).standard_normal(120)
    # a Pipeline passes y to every step: the shared means are asked for by name
    pipe = make_pipeline(StandardScaler(with_mean=False), SharingDiscoverer("mean", **FAST),
                         Ridge())
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (120,)
    assert pipe.score(X, y) > 0.5
    assert pipe[1].n_groups_ == 2


def test_set_output_pandas_and_feature_names_flow():
    pd = pytest.importorskip("pandas")
    X, truth, _ = make_shared_means(80, n_features=4, n_groups=2, random_state=0)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    pipe = make_pipeline(StandardScaler(with_mean=False), SharingDiscoverer(**FAST))
    pipe.set_output(transform="pandas")
    out = pipe.fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["sharingdiscoverer0", "sharingdiscoverer1"]
    assert list(pipe[1].feature_names_in_) == ["a", "b", "c", "d"]


def test_grid_search_by_partition_distance_reference_param_and_scorer():
    X, truth, _ = make_shared_means(60, n_features=5, n_groups=1, random_state=2)
    grid = {"nuclear": [0.0, 2.0], "code_length": [0.0, 2.0], "entropy": [0.0, 0.1]}
    by_param = GridSearchCV(SharingDiscoverer(reference=truth, **FAST), grid, cv=2).fit(X)
    by_scorer = GridSearchCV(SharingDiscoverer(**FAST), grid, cv=2,
                             scoring=partition_scorer(truth)).fit(X)
    assert by_param.best_score_ == 0
    np.testing.assert_array_equal(by_param.cv_results_["mean_test_score"],
                                  by_scorer.cv_results_["mean_test_score"])
    # without penalties some fits miss: the grid really discriminates
    assert by_param.cv_results_["mean_test_score"].min() < 0


@pytest.mark.slow
def test_grid_search_by_heldout_loss_and_cross_validate():
    X, Y, truth, _ = make_convolution(90, input_shape=4, kernel_size=2, random_state=0)
    est = SharingDiscoverer(model="linear", **FAST)
    search = GridSearchCV(est, {"nuclear": [0.0, 4.0]}, cv=3).fit(X, Y)
    assert search.best_score_ < 0  # minus the held-out MSE
    assert search.best_estimator_.coef_.shape == (3, 4)
    res = cross_validate(est, X, Y, cv=3, return_estimator=True)
    assert len(res["estimator"]) == 3 and np.all(res["test_score"] < 0)


def test_clone_and_get_params():
    est = SharingDiscoverer(model="linear", nuclear=3.0, temperature=(2.0, 0.1))
    params = est.get_params(deep=True)
    assert params["nuclear"] == 3.0 and params["temperature"] == (2.0, 0.1)
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    net = NetworkSharingDiscoverer("sequence", weight_decay=1e-3, temperature=(2.0, 0.1),
                                   module__hidden=7)
    params = net.get_params(deep=True)
    assert params["module"] == "sequence" and params["weight_decay"] == 1e-3
    assert params["module__hidden"] == 7 and "model" not in params and "alpha" not in params
    twin = clone(net)
    assert twin.get_params() == params and twin is not net


@pytest.mark.slow
def test_grid_search_of_a_network_by_partition_distance():
    X, y, truth = make_sum_of_numbers(60, length=3, random_state=0)
    est = NetworkSharingDiscoverer("sequence", reference=truth, **SEQUENCE_FAST)
    search = GridSearchCV(est, {"module__hidden": [2, 3], "weight_decay": [0.0, 1e-3]},
                          cv=2).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.best_estimator_.to_module().output.in_features in (2, 3)
    assert search.best_estimator_.get_params()["module__hidden"] == \
        search.best_params_["module__hidden"]


@pytest.mark.slow
def test_parallel_grid_search_equals_serial():
    X, truth, _ = make_shared_means(60, n_features=4, n_groups=2, random_state=1)
    grid = {"nuclear": [0.0, 2.0], "entropy": [0.0, 0.1]}
    serial = GridSearchCV(SharingDiscoverer(reference=truth, **FAST), grid, cv=2).fit(X)
    parallel = GridSearchCV(SharingDiscoverer(reference=truth, **FAST), grid, cv=2,
                            n_jobs=2).fit(X)
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                  parallel.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(serial.best_estimator_.sharing_partition_,
                                  parallel.best_estimator_.sharing_partition_)


@pytest.mark.slow
def test_grid_search_on_a_dask_local_cluster_equals_serial():
    distributed = pytest.importorskip("dask.distributed")
    X, truth, _ = make_shared_means(60, n_features=4, n_groups=2, random_state=1)
    grid = {"nuclear": [0.0, 2.0], "entropy": [0.0, 0.1]}
    serial = GridSearchCV(SharingDiscoverer(reference=truth, **FAST), grid, cv=2).fit(X)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_config(backend="dask"):
        on_dask = GridSearchCV(SharingDiscoverer(reference=truth, **FAST), grid, cv=2,
                               n_jobs=-1).fit(X)
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                  on_dask.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(serial.best_estimator_.restart_objectives_,
                                  on_dask.best_estimator_.restart_objectives_)


@pytest.mark.parametrize("model", ["mean", "linear", "sequence"])
def test_pickle_and_joblib_round_trips(model):
    X, Y, truth, _ = make_convolution(60, input_shape=4, kernel_size=2, random_state=0)
    if model == "sequence":
        X, Y, truth = make_sum_of_numbers(60, length=3, random_state=0)
        est = NetworkSharingDiscoverer(model, **SEQUENCE_FAST).fit(X, Y)
        buffer = io.BytesIO()
        joblib.dump(est, buffer)
        buffer.seek(0)
        for loaded in (pickle.loads(pickle.dumps(est)), joblib.load(buffer)):
            np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
            assert loaded.score(X, Y) == est.score(X, Y)
            np.testing.assert_array_equal(loaded.sharing_partition_, est.sharing_partition_)
        return
    est = SharingDiscoverer(model=model, **FAST)
    est.fit(X, Y) if model == "linear" else est.fit(X)
    buffer = io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    for loaded in (pickle.loads(pickle.dumps(est)), joblib.load(buffer)):
        np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
        if model == "linear":
            np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
            assert loaded.score(X, Y) == est.score(X, Y)
        else:
            assert loaded.score(X) == est.score(X)


def test_fitted_state_holds_no_tensors_so_a_cuda_fit_loads_on_cpu():
    # Everything fitted is numpy: an estimator fitted on CUDA pickles without device tensors
    # and predicts on a CPU-only machine (its `device` parameter is only used by fit).
    Xc, Yc, _, _ = make_convolution(60, input_shape=4, kernel_size=2, random_state=0)
    Xs, ys, _ = make_sum_of_numbers(60, length=3, random_state=0)
    for est, X, Y in ((SharingDiscoverer(model="linear", **FAST), Xc, Yc),
                      (NetworkSharingDiscoverer("sequence", **SEQUENCE_FAST), Xs, ys)):
        est.fit(X, Y)
        for name, value in vars(est).items():
            assert not isinstance(value, torch.Tensor), name
        moved = pickle.loads(pickle.dumps(est.set_params(device="cuda")))
        np.testing.assert_array_equal(moved.predict(X), est.predict(X))


def test_convergence_warning_when_search_hits_its_cap():
    X, Y, _, _ = make_convolution(60, input_shape=5, kernel_size=2, random_state=0)
    # from the shared start (the convolution hypothesis would need no search at all)
    est = SharingDiscoverer(model="linear", n_restarts=0, max_search_iter=1, init="shared",
                            random_state=0)
    with pytest.warns(ConvergenceWarning, match="stopped at its cap of 1 rounds") as record:
        est.fit(X, Y)
    assert record[0].filename == __file__  # points at the user's call, not into the package
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clone(est).set_params(max_search_iter=1000).fit(X, Y)


def test_verbose_prints_progress_and_default_is_silent(capsys):
    X, _, _ = make_shared_means(40, n_features=3, random_state=0)
    SharingDiscoverer(**FAST).fit(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    SharingDiscoverer(verbose=1, **FAST).fit(X)
    captured = capsys.readouterr()
    assert "[SharingDiscoverer] start 0 (relax): objective" in captured.out
    assert "sharelearn fit" in captured.err  # the progress bar
    Xs, ys, _ = make_sum_of_numbers(60, length=3, random_state=0)
    NetworkSharingDiscoverer("sequence", verbose=1, **SEQUENCE_FAST).fit(Xs, ys)
    captured = capsys.readouterr()
    assert "[NetworkSharingDiscoverer] start 0 (relax): objective" in captured.out


def test_custom_splitter_is_used(monkeypatch):
    X, truth, _ = make_shared_means(60, n_features=4, n_groups=2, random_state=0)
    seen = []

    class Recording(KFold):
        def split(self, X, y=None, groups=None):
            for tr, va in super().split(X, y, groups):
                seen.append(len(va))
                yield tr, va

    SharingDiscoverer(cv=Recording(3), **FAST).fit(X)
    assert seen == [20, 20, 20]
