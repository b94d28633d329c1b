"""Entry-level sharing of a dense layer (issue 18, item 3): the convolution hypotheses of a
network, the batched retrains, the local linear model and its proposals, and a small teacher
recovered exactly."""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sharelearn import NetworkSharingDiscoverer, partition_distance
from sharelearn.networks import TiedNetworkProblem, TiedParameter
from sharelearn.networks.objective import NetworkValidationObjective, local_linear_model
from sharelearn.partition import labels_to_selection
from sharelearn.penalties import Penalties
from sharelearn.search.linearised import LinearisedProposal
from sharelearn.symmetry import convolution_reading, shift_hypotheses, shift_sharing

SHARE = {"dense.weight": None}


class Student(nn.Module):
    """Dense 36 -> 25 (the shared layer), ReLU, linear read-out."""

    def __init__(self, n_in=36, hidden=25, n_outputs=1):
        super().__init__()
        self.dense = nn.Linear(n_in, hidden, bias=False)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.out(torch.relu(self.dense(x)))


def _teacher(seed, n=500):
    """Smooth 6 x 6 images, a 2 x 2 valid convolution, ReLU, a random read-out, noise of 0.1
    times the signal's standard deviation."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 7, 7))
    X = (Z[:, :6, :6] + Z[:, 1:, :6] + Z[:, :6, 1:] + Z[:, 1:, 1:]).reshape(n, 36) / 2
    truth = shift_sharing((6, 6), 2)
    zero = np.bincount(truth).argmax()  # the structural zeros are the largest group
    # taps far enough apart, and from 0, that the data separate them (the benchmark draws
    # N(0, 1) taps, some of which no objective can tell apart)
    W = np.insert([1.2, -0.9, 0.5, -1.5], zero, 0.0)[truth].reshape(25, 36)
    assert (W == 0).sum() == 25 * 32
    f = np.maximum(X @ W.T, 0) @ (rng.standard_normal(25) / 5)
    return X, f + 0.1 * f.std() * rng.standard_normal(n), truth


# -- the hypotheses -------------------------------------------------------------------------
def test_channel_hypotheses_tie_each_channel_apart_and_share_the_zeros():
    one = shift_hypotheses((36, 64))
    more = shift_hypotheses((72, 64), max_channels=2)
    two = more["valid 3 x 3 kernel, 2 channels, 8 x 8 -> 2 x 6 x 6"].reshape(72, 64)
    single = one["valid 3 x 3 kernel, 8 x 8 -> 6 x 6"].reshape(36, 64)
    zero = single[0, -1]
    # each channel is the single-channel convolution, with its own taps and the same zeros
    for rows in (two[:36], two[36:]):
        assert partition_distance(rows.ravel(), single.ravel()) == 0
        assert (rows[single == zero] == two[0, -1]).all()
    assert not set(two[:36][single != zero]) & set(two[36:][single != zero])
    assert len(np.unique(two)) == 19
    # no channels unless asked: the single-channel readings are unchanged
    assert list(shift_hypotheses((36, 64), max_channels=1)) == list(one)
    assert all(", 2 channels" not in name for name in one)


def test_convolution_reading_names_a_convolution_and_its_coarsenings():
    conv = shift_sharing((6, 6), 2)
    assert convolution_reading(conv, (25, 36)) == "valid 2 x 2 kernel, 6 x 6 -> 5 x 5"
    merged = np.where(conv == 1, 0, conv)  # two taps merged
    assert convolution_reading(merged, (25, 36)) == ("valid 2 x 2 kernel, 6 x 6 -> 5 x 5, "
                                                     "4 of its 5 groups")
    rng = np.random.default_rng(0)
    assert convolution_reading(rng.integers(0, 3, 25 * 36), (25, 36)) is None
    with pytest.raises(ValueError, match="must have n_out \\* n_in = 900 entries"):
        convolution_reading(conv[:-1], (25, 36))


# -- initial values and batched retrains -------------------------------------------------------
def test_hard_groups_start_at_a_member_and_soft_ones_at_the_weighted_mean():
    theta = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    hard = torch.tensor(labels_to_selection(np.array([1, 0, 1, 0, 2, 2]), sparse=False),
                        dtype=torch.float64)
    psi = TiedParameter(hard, (2, 3), None).right_inverse(theta)
    # canonical groups of labels [1, 0, 1, 0, 2, 2]: the first item of each group
    assert psi.tolist() == [0.0, 1.0, 4.0]
    soft = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0],
                         [0.0, 1.0]], dtype=torch.float64)
    psi = TiedParameter(soft, (2, 3), None).right_inverse(theta)
    assert torch.allclose(psi, torch.tensor([(0 + 0.5 + 3) / 2.5, (0.5 + 2 + 4 + 5) / 3.5],
                                            dtype=torch.float64))


def _scorer(n_inits=3, steps=30, n_reserve=0):
    X, y, truth = _teacher(0, n=120)
    Xt, yt = torch.tensor(X), torch.tensor((y - y.mean()) / y.std())[:, None]
    templates = []
    for seed in range(n_inits + n_reserve):
        torch.manual_seed(seed)
        templates.append(Student().double())
    data = (Xt[:80], yt[:80], Xt[80:], yt[80:])
    return NetworkValidationObjective(
        templates[:n_inits], SHARE, data, steps=steps, lr=0.03, loss="mse", weight_decay=1e-6,
        n_obs=80, penalties=Penalties([]), dtype=torch.float64, device="cpu",
        reserve=templates[n_inits:]), truth


@pytest.mark.slow
def test_batched_retrains_follow_each_initialisation_serial_path():
    scorer, truth = _scorer()
    S = torch.tensor(labels_to_selection(truth, sparse=False), dtype=torch.float64)
    batched = scorer._retrain_batch(S)
    serial = [scorer._retrain_one(t, S) for t in scorer.templates]
    assert batched is not None and len(batched) == 3
    for (vb, wb, _), (vs, ws, _) in zip(batched, serial, strict=True):
        assert vb == pytest.approx(vs, rel=1e-9)
        assert torch.allclose(wb, ws, atol=1e-9)
    # the initialisations really differ (a batch of copies would pass the check above)
    assert len({round(v, 9) for v, _, _ in batched}) == 3


def test_quick_scores_with_every_initialisation_and_step_equal_the_full_score():
    scorer, truth = _scorer()
    shared = np.zeros_like(truth)
    quick = scorer.quick_scores([truth, shared], n_inits=3, steps=scorer.steps)
    assert quick == pytest.approx([scorer(truth), scorer(shared)], rel=1e-12)
    assert scorer.steps == 30  # restored
    cheap = scorer.quick_scores([truth], n_inits=1, steps=5)
    assert cheap[0] != pytest.approx(quick[0])


@pytest.mark.slow
def test_warm_start_maps_the_parent_retrain_onto_the_child_by_group_means():
    scorer, truth = _scorer()
    S, w, problem = scorer.best_run(truth)
    # the same partition: the parent's own best vector
    assert torch.allclose(scorer.warm_start(truth, truth), w, rtol=1e-12, atol=0)
    # two taps merged: their group starts at the items' mean value, all else as trained
    child = truth.copy()
    a, b = [g for g in np.unique(truth) if g != np.bincount(truth).argmax()][:2]
    child[child == b] = a
    warm = scorer.warm_start(child, truth)
    entries = problem.load(w, S).dense.weight.detach().reshape(-1).numpy()
    merged = entries[(truth == a) | (truth == b)].mean()
    child_problem = TiedNetworkProblem(scorer.templates[0], SHARE, scorer._selection(child),
                                       *scorer.data, loss="mse")
    loaded = child_problem.load(warm, scorer._selection(child))
    child_entries = loaded.dense.weight.detach().reshape(-1).numpy()
    np.testing.assert_allclose(child_entries[child == a], merged, rtol=1e-12)
    np.testing.assert_allclose(child_entries[child != a], entries[child != a], rtol=1e-12)
    np.testing.assert_array_equal(loaded.out.weight.detach(),
                                  problem.load(w, S).out.weight.detach())


@pytest.mark.slow
def test_score_from_a_parent_adds_a_warm_retrain_and_score_more_the_reserve():
    scorer, truth = _scorer(n_inits=2, n_reserve=2)
    shared = np.zeros_like(truth)
    cold, _ = _scorer(n_inits=2)
    value = scorer.score_from(shared, truth)
    # the fixed initialisations' retrains plus one from the truth's trained network
    assert len(scorer._retrain(shared)[1]) == 3
    assert value <= cold(shared) + 1e-9
    assert scorer.score_from(shared, truth) == value  # cached: no second warm retrain
    before = scorer(truth)
    more = scorer.score_more(truth)
    assert len(scorer._retrain(truth)[1]) == 4 and more <= before + 1e-12
    assert scorer.score_more(truth) == more and len(scorer._retrain(truth)[1]) == 4
    # without a reserve, score_more is the plain score
    assert cold.score_more(truth) == cold(truth) and len(cold._retrain(truth)[1]) == 2


# -- the local linear model ---------------------------------------------------------------------
def test_local_linear_model_of_a_linear_network_is_the_data():
    """For a linear module the linearisation is exact: the design is X itself (one row per
    sample and output) and the targets are y minus the bias."""
    rng = np.random.default_rng(1)
    X = torch.tensor(rng.standard_normal((30, 5)))
    Y = torch.tensor(rng.standard_normal((30, 2)))
    module = nn.Linear(5, 2).double()
    labels = rng.integers(0, 3, 10)
    S = torch.tensor(labels_to_selection(labels, sparse=False), dtype=torch.float64)
    problem = TiedNetworkProblem(module, {"weight": None}, S, X[:20], Y[:20], X[20:], Y[20:],
                                 loss="mse")
    w = problem.initial_vector()
    J, target, splits = local_linear_model(problem, w, S, loss="mse", validation=True)
    bias = module.bias.detach().numpy()
    expected = np.zeros((60, 10))
    for i in range(30):
        for o in range(2):
            expected[2 * i + o, 5 * o:5 * o + 5] = X[i].numpy()
    np.testing.assert_allclose(J, expected, atol=1e-12)
    np.testing.assert_allclose(target, (Y.numpy() - bias).ravel(), atol=1e-12)
    assert splits[0][0].tolist() == list(range(40))
    assert splits[0][1].tolist() == list(range(40, 60))
    _, _, none = local_linear_model(problem, w, S, loss="mse", validation=False)
    assert none is None


@pytest.mark.slow
def test_a_proposal_is_kept_only_if_its_retrain_improves():
    scorer, truth = _scorer()
    shared = np.zeros_like(truth)
    state = scorer.state(shared)
    good = LinearisedProposal(lambda J, t, s, labels: truth)
    new = good.propose(scorer, state)
    assert new is not None and partition_distance(new.labels, truth) == 0
    assert new.value == pytest.approx(scorer(truth))
    bad = LinearisedProposal(lambda J, t, s, labels: shared)
    assert bad.propose(scorer, scorer.state(truth)) is None


# -- the estimator ------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["validation", "evidence"])
@pytest.mark.slow
def test_small_teacher_convolution_is_recovered_from_a_dense_layer(objective):
    """6 x 6 images, a 2 x 2 convolution read in a dense 36 -> 25 layer (900 entries)."""
    X, y, truth = _teacher(0)
    X_fit, y_fit = X[:400].copy(), y[:400].copy()
    est = NetworkSharingDiscoverer(Student, share=SHARE, loss="mse", objective=objective,
                                   max_epochs=100, random_state=0).fit(X_fit, y_fit)
    np.testing.assert_array_equal(X_fit, X[:400])
    assert partition_distance(est.sharing_partition_, truth) == 0
    assert convolution_reading(est.sharing_partition_, (25, 36)) == (
        "valid 2 x 2 kernel, 6 x 6 -> 5 x 5")
    assert isinstance(est.objective_, float) and np.isfinite(est.objective_)
    # the discovered network predicts held-out images of the same teacher
    relative_mse = np.mean((est.predict(X[400:]) - y[400:]) ** 2) / np.var(y[400:])
    assert relative_mse < 0.1


@pytest.mark.slow
def test_entry_level_defaults_resolve_per_kind_of_sharing():
    X, y, _ = _teacher(0, n=60)
    est = NetworkSharingDiscoverer(Student, share=SHARE, loss="mse", max_epochs=2,
                                   search_steps=20, random_state=0).fit(X, y)
    model = est._model
    assert model.entry_level and model.n_search_steps == 20 and model.lr == 0.03
    assert "valid 2 x 2 kernel, 6 x 6 -> 5 x 5" in model.hypotheses()
    # a linear module with few entries keeps the retrained moves and no hypotheses
    small = NetworkSharingDiscoverer(nn.Linear, module__in_features=4, module__out_features=3,
                                     share={"weight": None}, loss="mse", max_epochs=2,
                                     local_search=False, random_state=0).fit(X[:, :4], X[:, :3])
    model = small._model
    assert not model.entry_level and model.hypotheses() == {}
    assert model.n_search_steps == 200 and model.lr == 0.01
    with pytest.raises(InvalidParameterError, match="inner_learning_rate"):
        NetworkSharingDiscoverer(Student, share=SHARE, inner_learning_rate="fast").fit(X, y)
