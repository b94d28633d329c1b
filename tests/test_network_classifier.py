"""NetworkSharingClassifier: module models trained with a cross-entropy on class labels."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import check_classifiers_train
from torch import nn

from sharelearn import NetworkSharingClassifier, NetworkSharingDiscoverer
from sharelearn.datasets import make_sum_of_numbers
from sharelearn.penalties import Penalties

SMALL = dict(module__embedding_dim=16, module__hidden=8, max_iter=20, search_steps=100,
             max_epochs=200, cv=0.6, validation_fraction=0.5, dtype="float32")


def _three_classes(s):
    """Labels of the sum's terciles, as strings."""
    return np.array(["low", "mid", "high"])[np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))]


@pytest.fixture(scope="module")
def fitted_alternating():
    X, s, truth = make_sum_of_numbers(600, length=4, variant="alternating", random_state=0)
    y = _three_classes(s)
    clf = NetworkSharingClassifier("sequence", reference=truth, random_state=0, **SMALL)
    return clf.fit(X[:400], y[:400]), X, y, truth


@pytest.mark.slow
def test_discovers_the_sharing_of_a_classified_sum(fitted_alternating):
    clf, X, y, truth = fitted_alternating
    assert clf.score(X, y) == 0  # minus the partition distance to the reference
    np.testing.assert_array_equal(clf.sharing_partition_, [0, 1, 0, 1])
    assert np.mean(clf.predict(X[400:]) == y[400:]) > 0.8  # held-out accuracy


@pytest.mark.slow
def test_classifier_conventions(fitted_alternating):
    clf, X, y, _ = fitted_alternating
    np.testing.assert_array_equal(clf.classes_, ["high", "low", "mid"])
    pred = clf.predict(X[400:])
    assert pred.dtype == clf.classes_.dtype and set(pred) <= set(clf.classes_)
    proba = clf.predict_proba(X[400:])
    assert proba.shape == (200, 3) and isinstance(proba, np.ndarray)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], pred)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[400:])), proba, rtol=1e-10)
    # without a reference, score is the accuracy
    plain = NetworkSharingClassifier("sequence", random_state=0, **SMALL).fit(X[:400], y[:400])
    assert plain.score(X[400:], y[400:]) == pytest.approx(np.mean(plain.predict(X[400:]) ==
                                                                  y[400:]))


@pytest.mark.slow
def test_objective_is_the_validation_deviance_plus_penalties(fitted_alternating):
    clf, *_ = fitted_alternating
    # 400 samples: 200 held out for the refit (validation_fraction=0.5), cv=0.6 of the other
    # 200 validate, so the data term counts 80 training labels
    n_train = 80
    penalty = Penalties.from_params(nuclear=clf.nuclear, code_length=clf.code_length,
                                    entropy=clf.entropy, nuclear_kind=clf.nuclear_kind)
    expected = 2 * n_train * clf.validation_loss_ + penalty.of_labels(clf.sharing_partition_)
    assert clf.objective_ == pytest.approx(expected, rel=1e-9)


def test_numeric_labels_and_a_module_class():
    class Logits(nn.Module):
        """Per-position weights, summed, then one logit per class."""

        def __init__(self, length=3, n_classes=2):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(length, 4))
            self.out = nn.Linear(4, n_classes)

        def forward(self, X):
            return self.out(torch.relu(X[:, :, None] * self.weight).sum(1))

    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = (X.sum(1) > 0).astype(int) * 5 + 2  # classes 2 and 7
    clf = NetworkSharingClassifier(Logits, share={"weight": 0}, max_iter=5, search_steps=30,
                                   max_epochs=30, dtype="float32", random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [2, 7])
    assert set(clf.predict(X)) <= {2, 7}
    assert clf.score(X, y) > 0.8

    # a module with one output per class is required
    with pytest.raises(ValueError, match=r"n x 2 logits \(one per class\)"):
        NetworkSharingClassifier(Logits, share={"weight": 0}, module__n_classes=3,
                                 max_iter=2).fit(X, y)


@pytest.mark.parametrize("y, match", [
    (np.linspace(0, 1, 60), "Unknown label type"),
    (np.array(["a"] * 60), "at least 2 classes; y holds one class only: 'a'"),
])
def test_labels_that_are_not_classes_fail_before_training(y, match):
    X, _, _ = make_sum_of_numbers(60, length=3, random_state=0)
    clf = NetworkSharingClassifier("sequence", **SMALL)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_")


def test_losses_belong_to_their_estimator():
    X, s, _ = make_sum_of_numbers(60, length=3, random_state=0)
    with pytest.raises(InvalidParameterError, match="'loss' parameter"):
        NetworkSharingClassifier("sequence", loss="l1").fit(X, s > s.mean())
    with pytest.raises(InvalidParameterError, match="'loss' parameter"):
        NetworkSharingDiscoverer("sequence", loss="cross_entropy").fit(X, s)


def test_splits_are_stratified_where_the_classes_allow():
    clf = NetworkSharingClassifier(validation_fraction=0.2, cv=0.5)
    classes = np.repeat([0, 1, 2], [10, 10, 40])
    rng = np.random.RandomState(0)
    train, val, stop = clf._module_splits(60, rng, classes)
    np.testing.assert_array_equal(np.bincount(classes[stop]), [2, 2, 8])
    assert sorted(np.concatenate([train, val, stop]).tolist()) == list(range(60))
    # a class of one sample cannot be stratified: the split is drawn as for a regressor
    classes = np.repeat([0, 1], [1, 59])
    train, val, stop = clf._module_splits(60, np.random.RandomState(0), classes)
    assert len(stop) == 12


@pytest.mark.slow
def test_the_classifier_train_check_with_enough_training():
    # the shared estimator checks run a 5-epoch network, too short for this check's accuracy
    est = NetworkSharingClassifier("sequence", n_restarts=1, random_state=0, max_iter=2,
                                   inner_steps=1, search_steps=20, max_epochs=200,
                                   local_search=False, dtype="float32",
                                   module__embedding_dim=8, module__hidden=8)
    check_classifiers_train("NetworkSharingClassifier", est)


@pytest.mark.slow
def test_grid_search_scores_a_classifier_by_accuracy():
    X, s, _ = make_sum_of_numbers(200, length=3, random_state=0)
    y = _three_classes(s)
    search = GridSearchCV(NetworkSharingClassifier("sequence", **SMALL),
                          {"weight_decay": [1e-6, 1e-3]}, cv=2).fit(X, y)
    assert 0.5 < search.best_score_ <= 1.0
    assert search.predict(X[:5]).dtype == y.dtype
