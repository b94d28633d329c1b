"""SharingDiscoverer as a scikit-learn estimator: API, fitted state, reproducibility, bad input."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import ShuffleSplit

from sharelearn import SharingDiscoverer, labels_to_selection, partition_distance
from sharelearn.datasets import make_convolution, make_shared_means

FAST = dict(n_restarts=1, max_iter=30)


@pytest.fixture(scope="module")
def means_data():
    return make_shared_means(80, n_features=5, n_groups=2, random_state=0)


@pytest.fixture(scope="module")
def conv_data():
    return make_convolution(120, input_shape=5, kernel_size=2, random_state=0)


def test_nothing_fitted_before_fit():
    disc = SharingDiscoverer()
    assert not [k for k in vars(disc) if k.endswith("_") and not k.startswith("_")]


def test_mean_model_fitted_attributes_are_numpy(means_data):
    X, truth, _ = means_data
    disc = SharingDiscoverer(model="mean", random_state=0, **FAST).fit(X)
    for name in ("sharing_partition_", "shared_values_", "means_", "restart_objectives_",
                 "loss_curve_", "selection_matrix_", "soft_selection_"):
        value = getattr(disc, name)
        assert isinstance(value, np.ndarray), name
    assert disc.sharing_partition_.shape == (5,)
    assert disc.sharing_partition_.dtype.kind == "i"
    assert disc.n_groups_ == disc.sharing_partition_.max() + 1
    assert disc.soft_selection_.shape[0] == 5
    np.testing.assert_allclose(disc.soft_selection_.sum(1), 1)
    assert disc.n_features_in_ == 5
    assert isinstance(disc.objective_, float) and np.isfinite(disc.objective_)
    # relaxation steps (one objective each in loss_curve_), search rounds, the last round
    assert disc.n_iter_ == disc.loss_curve_.size + disc.n_search_moves_ + 1


def test_linear_model_coef_intercept_predict(conv_data):
    X, Y, truth, W = conv_data
    b = np.arange(Y.shape[1], dtype=float)
    disc = SharingDiscoverer(model="linear", random_state=0, reference=truth, **FAST)
    disc.fit(X, Y + b)
    assert disc.score(X) == 0
    assert disc.coef_.shape == W.shape
    np.testing.assert_allclose(disc.coef_, W, atol=0.05)
    np.testing.assert_allclose(disc.intercept_, b, atol=0.05)
    np.testing.assert_allclose(disc.predict(X), X @ disc.coef_.T + disc.intercept_)
    assert disc.get_feature_names_out().shape == (Y.shape[1],)


def test_linear_with_1d_target_predicts_1d():
    X, Y, truth, _ = make_convolution(80, input_shape=3, kernel_size=3, random_state=1)
    y = Y[:, 0]
    disc = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(X, y)
    assert disc.predict(X).shape == (80,)
    assert disc.coef_.shape == (1, 3)
    assert disc.score(X, y) > -0.05  # minus held-out MSE, noise variance is 0.01


def test_transform_pools_groups_and_inverse_broadcasts(means_data):
    X, truth, _ = means_data
    disc = SharingDiscoverer(model="mean", random_state=0, reference=truth, **FAST).fit(X)
    Z = disc.transform(X)
    assert Z.shape == (80, disc.n_groups_)
    for j in range(disc.n_groups_):
        np.testing.assert_allclose(Z[:, j], X[:, disc.sharing_partition_ == j].mean(1))
    back = disc.inverse_transform(Z)
    assert back.shape == X.shape
    np.testing.assert_allclose(back[:, disc.sharing_partition_ == 0][:, 0], Z[:, 0])
    assert list(disc.get_feature_names_out()) == [
        f"sharingdiscoverer{j}" for j in range(disc.n_groups_)]


def test_score_without_reference_is_minus_heldout_loss(means_data):
    X, truth, _ = means_data
    disc = SharingDiscoverer(model="mean", random_state=0, **FAST).fit(X)
    assert disc.score(X) == pytest.approx(-np.mean((X - disc.means_) ** 2))
    assert disc.score(X) < 0


def test_same_random_state_same_partition_different_cv_seeds_allowed(conv_data):
    X, Y, truth, _ = conv_data
    a = SharingDiscoverer(model="linear", random_state=7, **FAST).fit(X, Y)
    b = SharingDiscoverer(model="linear", random_state=7, **FAST).fit(X, Y)
    np.testing.assert_array_equal(a.sharing_partition_, b.sharing_partition_)
    np.testing.assert_array_equal(a.restart_objectives_, b.restart_objectives_)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)


@pytest.mark.slow
def test_parallel_restarts_equal_serial(means_data):
    X, _, _ = means_data
    serial = SharingDiscoverer(model="mean", random_state=3, n_restarts=2, max_iter=20).fit(X)
    parallel = clone(serial).set_params(n_jobs=2).fit(X)
    np.testing.assert_array_equal(serial.restart_objectives_, parallel.restart_objectives_)
    np.testing.assert_array_equal(serial.sharing_partition_, parallel.sharing_partition_)


def test_cv_variants(means_data):
    X, truth, _ = means_data
    halves = [(np.arange(40), np.arange(40, 80)), (np.arange(40, 80), np.arange(40))]
    for cv in (0.5, 3, ShuffleSplit(n_splits=4, test_size=0.7, random_state=0), halves):
        disc = SharingDiscoverer(model="mean", cv=cv, random_state=0, reference=truth, **FAST)
        assert disc.fit(X).score(X) == 0


def test_float32_and_column_norm_variant(conv_data):
    X, Y, truth, _ = conv_data
    disc = SharingDiscoverer(model="linear", dtype="float32", nuclear_kind="column",
                             random_state=0, reference=truth, **FAST).fit(X, Y)
    assert disc.score(X) == 0
    assert disc.coef_.dtype == np.float64


def test_inputs_are_not_mutated(conv_data):
    X, Y, truth, _ = conv_data
    X0, Y0, t0 = X.copy(), Y.copy(), truth.copy()
    disc = SharingDiscoverer(model="linear", random_state=0, reference=truth, **FAST).fit(X, Y)
    disc.predict(X)
    disc.score(X)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)
    np.testing.assert_array_equal(truth, t0)


def test_pandas_feature_names_recorded():
    pd = pytest.importorskip("pandas")
    X, _, _ = make_shared_means(40, n_features=3, random_state=0)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    disc = SharingDiscoverer(model="mean", random_state=0, **FAST).fit(df)
    assert list(disc.feature_names_in_) == ["a", "b", "c"]


@pytest.mark.parametrize("X, message", [
    (np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]), "NaN"),
    (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0]]), "infinity"),
    (np.arange(5.0), "2D array"),
    (np.ones((1, 3)), "minimum of 2"),
])
def test_bad_X_for_mean(X, message):
    with pytest.raises(ValueError, match=message):
        SharingDiscoverer(model="mean").fit(X)


def test_bad_inputs_for_linear(conv_data):
    X, Y, truth, _ = conv_data
    with pytest.raises(ValueError, match="requires y to be passed"):
        SharingDiscoverer(model="linear").fit(X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SharingDiscoverer(model="linear").fit(X, Y[:-1])
    with pytest.raises(ValueError, match="reference partitions 3 items, but the model has"):
        SharingDiscoverer(model="linear", reference=[0, 1, 0]).fit(X, Y)
    with pytest.raises(ValueError, match="Too few samples to split"):
        SharingDiscoverer(model="linear", cv=2).fit(X[:3], Y[:3])
    with pytest.raises(ValueError, match="cannot split"):
        SharingDiscoverer(model="linear", cv=5).fit(X[:4], Y[:4])
    Ynan = Y.copy()
    Ynan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SharingDiscoverer(model="linear").fit(X, Ynan)


@pytest.mark.parametrize("params, message", [
    (dict(model="conv"), "'model' parameter"),
    (dict(device="tpu"), "'device' parameter"),
    (dict(nuclear=-1.0), "'nuclear' parameter"),
    (dict(cv=1), "'cv' parameter"),
    (dict(temperature=(1.0, -0.1)), "temperature must be a tuple"),
    (dict(reference=[[0, 1], [1, 1], [1, 0], [0, 1], [1, 0]]), "exactly one 1 per row"),
])
def test_bad_parameters(means_data, params, message):
    X, _, _ = means_data
    with pytest.raises(ValueError, match=message):
        SharingDiscoverer(**params).fit(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error_and_auto_falls_back(means_data):
    X, _, _ = means_data
    with pytest.raises(ValueError, match="CUDA is not available"):
        SharingDiscoverer(device="cuda").fit(X)
    disc = SharingDiscoverer(device="auto", random_state=0, **FAST).fit(X)
    assert isinstance(disc.means_, np.ndarray)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(conv_data):
    X, Y, truth, _ = conv_data
    cpu = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(X, Y)
    gpu = clone(cpu).set_params(device="cuda").fit(X, Y)
    np.testing.assert_array_equal(cpu.sharing_partition_, gpu.sharing_partition_)
    np.testing.assert_allclose(cpu.coef_, gpu.coef_, atol=1e-8)
    assert isinstance(gpu.coef_, np.ndarray)


def test_methods_for_the_other_model_raise(means_data, conv_data):
    X, _, _ = means_data
    disc = SharingDiscoverer(model="mean", random_state=0, **FAST).fit(X)
    assert not hasattr(disc, "predict")
    Xc, Y, _, _ = conv_data
    lin = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(Xc, Y)
    assert not hasattr(lin, "inverse_transform")
    with pytest.raises(ValueError, match="requires y"):
        lin.score(Xc)


def test_discovered_circular_convolution_is_named_as_the_shift_group():
    X, Y, truth, _ = make_convolution(120, input_shape=8, kernel_size=3, mode="circular",
                                      random_state=0)
    disc = SharingDiscoverer(model="linear", reference="shift", random_state=0, **FAST)
    disc.fit(X, Y)
    group = disc.symmetry_group_
    assert group.name == "C_8" and group.order == 8
    assert disc.symmetry_group_ is group  # computed once
    # "shift" for a square layer is the cyclic orbit partition, which refines the kernel-3
    # convolution's (its zero group splits by offset): 5 zero offsets -> distance 5 * 8 - 8
    assert disc.score(X) == -(5 * 8 - 8)


def test_named_references_for_valid_shift_and_means():
    X, Y, truth, _ = make_convolution(120, input_shape=6, kernel_size=3, random_state=0)
    disc = SharingDiscoverer(model="linear", reference="shift", random_state=0, **FAST)
    assert disc.fit(X, Y).score(X) == 0
    Xm, truth_m, _ = make_shared_means(60, n_features=4, n_groups=1, random_state=0)
    means = SharingDiscoverer(reference="shared", random_state=0, **FAST).fit(Xm)
    assert means.score(Xm) == 0
    assert means.symmetry_group_.name == "S_4"
    with pytest.raises(ValueError, match="not a known sharing"):
        SharingDiscoverer(reference="rotation").fit(Xm)
    with pytest.raises(ValueError, match="needs a square layer"):
        SharingDiscoverer(model="linear", reference="permutation").fit(X, Y)


# -- degenerate data, bad splits and settings: the package's own errors, never torch's ---------
@pytest.mark.slow
def test_evidence_on_degenerate_linear_problems_fits():
    X, Y, _, _ = make_convolution(40, input_shape=5, kernel_size=2, random_state=0)
    W = np.arange(8.0).reshape(2, 4)
    cases = {
        "two samples": (X[:2, :4], Y[:2, :2]),
        "constant X": (np.ones((20, 4)), Y[:20, :2]),
        "noise-free": (X[:, :4], X[:, :4] @ W.T),
    }
    for name, (Xc, Yc) in cases.items():
        disc = SharingDiscoverer(model="linear", objective="evidence", random_state=0).fit(Xc, Yc)
        assert np.isfinite(disc.objective_) and np.isfinite(disc.log_evidence_), name
    # noise-free data with eight distinct weights: all eight told apart, values recovered
    assert disc.n_groups_ == 8
    np.testing.assert_allclose(disc.coef_, W, atol=1e-6)


@pytest.mark.slow
def test_targets_are_validated_like_X(conv_data):
    import scipy.sparse as sp

    X, Y, _, _ = conv_data
    dense = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(X, Y)
    as_text = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(X, Y.astype(str))
    as_sparse = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(
        X, sp.csr_matrix(Y))
    np.testing.assert_array_equal(as_text.sharing_partition_, dense.sharing_partition_)
    np.testing.assert_array_equal(as_sparse.sharing_partition_, dense.sharing_partition_)
    words = np.full(Y.shape, "seven")
    with pytest.raises(ValueError, match="y must hold numbers"):
        SharingDiscoverer(model="linear").fit(X, words)


def test_a_generator_of_splits_is_read_once_and_reused(means_data):
    X, _, _ = means_data
    pairs = [(np.arange(50), np.arange(50, 80)), (np.arange(30, 80), np.arange(30))]
    disc = SharingDiscoverer(cv=(p for p in pairs), random_state=0, **FAST)
    first = disc.fit(X).sharing_partition_.copy()
    np.testing.assert_array_equal(disc.fit(X).sharing_partition_, first)
    as_list = SharingDiscoverer(cv=pairs, random_state=0, **FAST).fit(X)
    np.testing.assert_array_equal(as_list.sharing_partition_, first)


@pytest.mark.parametrize("cv, message", [
    ([], "gave no"),
    ([(np.arange(50.0), np.arange(50, 80))], "must be a 1-D array of integers"),
    ([(np.arange(50), np.arange(50, 90))], r"must lie in \[0, 80\)"),
    ([(np.arange(50),)], "must be a \\(train, validation\\) pair"),
])
def test_bad_splits_are_clear_errors(means_data, cv, message):
    X, _, _ = means_data
    with pytest.raises(ValueError, match=message):
        SharingDiscoverer(cv=cv).fit(X)


def test_non_finite_temperature_is_rejected(means_data):
    X, _, _ = means_data
    with pytest.raises(ValueError, match="two finite positive numbers"):
        SharingDiscoverer(temperature=(1.0, float("inf"))).fit(X)


def _same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        other = after[key]
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, other, err_msg=key)
        else:
            assert value is other or value == other, key


def test_a_failed_fit_leaves_the_estimator_as_it_was(conv_data):
    X, Y, _, _ = conv_data
    disc = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(X[:, :4], Y)
    before = dict(vars(disc))
    # fails after the data were validated (n_features_in_ would have become 3)
    disc.set_params(reference=np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="reference partitions 5 items"):
        disc.fit(X[:, :3], Y)
    after = dict(vars(disc))
    assert after.pop("reference") is not None and before.pop("reference") is None
    _same_state(before, after)
    assert disc.predict(X[:, :4]).shape == Y.shape


def test_a_fit_with_another_model_drops_the_old_models_attributes(conv_data):
    X, Y, _, _ = conv_data
    disc = SharingDiscoverer(model="linear", random_state=0, **FAST).fit(X, Y)
    assert hasattr(disc, "coef_")
    disc.set_params(model="mean").fit(X)
    assert not hasattr(disc, "coef_") and not hasattr(disc, "intercept_")
    assert disc.means_.shape == (X.shape[1],)


def test_settings_that_make_the_work_grow_warn(conv_data):
    from sklearn.exceptions import EfficiencyWarning

    X, Y, _, _ = conv_data
    with pytest.warns(EfficiencyWarning, match="nothing in the objective limits"):
        SharingDiscoverer(model="linear", nuclear=0, code_length=0, random_state=0,
                          n_restarts=0).fit(X, Y)


def test_a_capped_search_warns_even_when_another_start_wins():
    from sklearn.exceptions import ConvergenceWarning

    X, _, _ = make_shared_means(100, n_features=6, n_groups=2, random_state=2)
    with pytest.warns(ConvergenceWarning, match=r"\(3 of 4 starts\)"):
        SharingDiscoverer(max_search_iter=1, random_state=0).fit(X)


# -- the first run: threads, messages, preprocessing -------------------------------------------
class _RecordingKFold:
    """A 3-fold splitter that records torch's thread count when the fit asks it for splits."""

    def __init__(self):
        self.seen = []

    def split(self, X, y=None, groups=None):
        from sklearn.model_selection import KFold

        self.seen.append(torch.get_num_threads())
        yield from KFold(3).split(X)

    def get_n_splits(self, X=None, y=None, groups=None):
        return 3


def test_fit_runs_on_its_own_thread_count_and_restores_the_callers(means_data):
    X, _, _ = means_data
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cv = _RecordingKFold()
        SharingDiscoverer(cv=cv, random_state=0, **FAST).fit(X)
        assert cv.seen == [1] and torch.get_num_threads() == 2
        SharingDiscoverer(cv=cv, n_threads=2, random_state=0, **FAST).fit(X)
        assert cv.seen[-1] == 2
        with pytest.raises(ValueError):  # restored after a failed fit too
            SharingDiscoverer(cv=cv, reference=[0, 1], **FAST).fit(X)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_misspelt_parameter_names_the_closest_one(means_data):
    X, _, _ = means_data
    with pytest.raises(TypeError, match=r"'nuclaer' \(did you mean 'nuclear'\?\)"):
        SharingDiscoverer(nuclaer=2).fit(X)


def test_cv_of_one_is_explained_once(means_data):
    from sklearn.utils._param_validation import InvalidParameterError

    X, _, _ = means_data
    with pytest.raises(InvalidParameterError) as info:
        SharingDiscoverer(cv=1).fit(X)
    assert str(info.value).count("an int in the range [2, inf)") == 1


def test_methods_of_other_models_say_what_to_use(means_data):
    X, _, _ = means_data
    disc = SharingDiscoverer(random_state=0, **FAST).fit(X)
    assert not hasattr(disc, "predict")
    with pytest.raises(AttributeError, match="use transform .* or fit model='linear'"):
        disc.predict(X)


def test_per_feature_standardisation_warns(means_data, conv_data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, Y, _, _ = conv_data
    with pytest.warns(UserWarning, match="looks standardised per feature"):
        make_pipeline(StandardScaler(), SharingDiscoverer(model="linear", **FAST)).fit(X, Y)
    with pytest.warns(UserWarning, match="makes every mean 0"):
        SharingDiscoverer(**FAST).fit(StandardScaler().fit_transform(means_data[0]))


@pytest.mark.parametrize("make, kwargs", [
    (make_shared_means, dict(n_features=6, n_groups=2)),
    (make_shared_means, dict(n_features=6, n_groups=6, spacing=0.0)),
    (make_convolution, dict(input_shape=8, kernel_size=3)),
    (make_convolution, dict(input_shape=8, kernel_size=3, mode="circular")),
    (make_convolution, dict(input_shape=(5, 5), kernel_size=(2, 2))),
])
def test_no_standardisation_warning_on_the_packages_data(make, kwargs):
    import warnings

    data = make(60, random_state=0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        if make is make_shared_means:
            SharingDiscoverer(random_state=0, **FAST).fit(data[0])
        else:
            SharingDiscoverer(model="linear", random_state=0, **FAST).fit(data[0], data[1])


# -- init: evaluate or warm-start from a hypothesis ----------------------------------------------
def test_init_scores_a_hypothesis_on_the_fits_own_scale(conv_data):
    X, Y, truth, _ = conv_data
    found = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    scored = SharingDiscoverer(model="linear", init=truth, n_restarts=0, local_search=False,
                               random_state=0).fit(X, Y)
    np.testing.assert_array_equal(scored.sharing_partition_, truth)
    np.testing.assert_array_equal(found.sharing_partition_, truth)
    assert scored.objective_ == pytest.approx(found.objective_, rel=1e-12)
    shared = SharingDiscoverer(model="linear", init="shared", n_restarts=0, local_search=False,
                               random_state=0).fit(X, Y)
    assert shared.n_groups_ == 1 and shared.objective_ > scored.objective_
    # a named hypothesis: "shift" is the valid convolution of this layer's shape
    named = SharingDiscoverer(model="linear", init="shift", n_restarts=0, local_search=False,
                              random_state=0).fit(X, Y)
    np.testing.assert_array_equal(named.sharing_partition_, truth)


def test_init_warm_starts_the_search(conv_data):
    X, Y, truth, _ = conv_data
    guess = truth.copy()
    guess[:3] = truth.max() + 1  # three entries moved to a wrong group of their own
    est = SharingDiscoverer(model="linear", init=guess, n_restarts=0, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(est.sharing_partition_, truth)
    assert est.n_search_moves_ >= 1


@pytest.mark.parametrize("init, message", [
    (np.zeros(7, dtype=int), "init partitions 7 items, but the model has 20"),
    ("rotation", "init='rotation': 'rotation' is not a known sharing"),
    ("permutation", "init='permutation': the sharing 'permutation' needs a square layer"),
])
def test_bad_init_is_a_clear_error(conv_data, init, message):
    X, Y, _, _ = conv_data
    with pytest.raises(ValueError, match=message):
        SharingDiscoverer(model="linear", init=init).fit(X, Y)


# -- recovery ---------------------------------------------------------------------------------
def test_relaxation_alone_fails_at_scale_where_the_search_recovers():
    X, Y, truth, _ = make_convolution(150, input_shape=12, kernel_size=3, random_state=1)
    # init="shared": no convolution hypothesis among the starts (it alone would be the truth)
    common = dict(model="linear", reference=truth, random_state=0, n_restarts=1, init="shared")
    relax_only = SharingDiscoverer(local_search=False, **common).fit(X, Y)
    assert relax_only.restart_objectives_[0] < relax_only.restart_objectives_[1]  # not useless
    assert -relax_only.score(X) > 5
    assert SharingDiscoverer(**common).fit(X, Y).score(X) == 0


def test_exact_recovery_of_a_small_convolution_and_shared_means():
    X, Y, truth, _ = make_convolution(150, input_shape=5, kernel_size=3, random_state=0)
    disc = SharingDiscoverer(model="linear", reference=truth, random_state=0).fit(X, Y)
    assert disc.score(X) == 0
    assert disc.n_groups_ == 4
    X, truth, means = make_shared_means(100, n_features=6, n_groups=3, random_state=4)
    disc = SharingDiscoverer(model="mean", reference=truth, random_state=0).fit(X)
    assert disc.score(X) == 0
    assert np.abs(disc.means_ - means).max() < 0.2


@pytest.mark.slow
def test_fewer_samples_than_inputs_clustering_fails_the_bilevel_objective_recovers():
    # valid convolution, 64 inputs, kernel 3 (3,968 entries), 40 samples: the untied map is not
    # identifiable; quantising its minimum-norm estimate into 4 values misses the scheme.
    from sklearn.cluster import KMeans

    X, Y, truth, _ = make_convolution(40, input_shape=64, kernel_size=3, random_state=0)
    W_untied = np.linalg.lstsq(X - X.mean(0), Y - Y.mean(0), rcond=None)[0].T
    km = KMeans(4, n_init=10, random_state=0).fit(W_untied.reshape(-1, 1))
    assert partition_distance(km.labels_, truth) > 100
    disc = SharingDiscoverer(model="linear", reference=truth, random_state=0).fit(X, Y)
    assert disc.score(X) == 0
    np.testing.assert_allclose(np.sort(np.unique(np.round(disc.coef_, 1))), [0, 1, 3, 5])


def test_selection_helpers_agree_with_fitted_matrices():
    X, truth, _ = make_shared_means(60, n_features=5, n_groups=2, random_state=0)
    disc = SharingDiscoverer(model="mean", random_state=0, n_restarts=1).fit(X)
    A = labels_to_selection(disc.sharing_partition_)
    np.testing.assert_array_equal(A, disc.selection_matrix_)
    np.testing.assert_allclose(A @ disc.shared_values_, disc.means_)


def _realistic(seed, **kwargs):
    return make_convolution(kernel="random", relative_noise=True, random_state=seed, **kwargs)


def _truth_objective(X, Y, truth, seed):
    """The estimator's objective of the true partition (same folds, through ``init``)."""
    return SharingDiscoverer(model="linear", init=truth, n_restarts=0, local_search=False,
                             random_state=seed).fit(X, Y).objective_


def test_smooth_signals_the_untied_split_recovers_a_merged_group():
    # AR(0.9) inputs, taps N(0, 1): the one-item and signed splits rate each entry at its
    # neighbours' fixed values, which on correlated inputs mostly measures their compensation;
    # the search stopped 125 units above the truth (partition distance 30). Fitting the group's
    # entries freely, row by row, finds the split.
    X, Y, truth, _ = _realistic(1, n_samples=200, input_shape=64, kernel_size=5,
                                correlation=0.9)
    disc = SharingDiscoverer(model="linear", reference=truth, random_state=1).fit(X, Y)
    assert disc.score(X) == 0
    assert disc.objective_ == pytest.approx(_truth_objective(X, Y, truth, 1), abs=1e-6)


def test_image_patches_the_shared_start_is_not_the_only_start():
    # 8 x 8 patches of photographs (cond(X^T X) ~ 1e5): from the fully shared partition no
    # single move, merge or split pays and the fit ended with one group, 9,600 units above the
    # truth. Two clusters of a ridge estimate start the search where the large taps are apart;
    # it ends below the truth (three taps are within one standard error of another: the
    # objective rightly merges them).
    X, Y, truth, _ = _realistic(0, n_samples=300, input_shape=(8, 8), kernel_size=3,
                                inputs="images")
    disc = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)
    assert disc.n_groups_ > 1
    assert disc.objective_ <= _truth_objective(X, Y, truth, 0)


def test_image_patches_a_tap_spread_over_the_rows_is_split_off_at_once():
    # 8 x 8 patches, n = 300, seed 2: the search ended with three groups, the negative taps in
    # one and four taps inside the zeros, 2,400 units above the truth: each tap is one entry per
    # row, and no single entry pays for a group of its own. The rowwise split offers every row
    # one entry at a common value at once, and the search ends below the truth.
    X, Y, truth, _ = _realistic(2, n_samples=300, input_shape=(8, 8), kernel_size=3,
                                inputs="images")
    disc = SharingDiscoverer(model="linear", random_state=2).fit(X, Y)
    assert disc.objective_ <= _truth_objective(X, Y, truth, 2)


def test_an_unknown_parameter_set_later_is_reported_by_fit(means_data):
    X, _, _ = means_data
    est = SharingDiscoverer(model="mean").set_params(nuclaer=1.0)  # set_params never raises
    with pytest.raises(TypeError, match=r"'nuclaer' \(did you mean 'nuclear'\?\)"):
        est.fit(X)
    with pytest.raises(TypeError, match="belong to NetworkSharingDiscoverer"):
        SharingDiscoverer(model="mean", share={"weight": 0}).fit(X)
