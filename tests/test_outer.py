"""The one outer loop (sharelearn.outer): batched relaxation, starts, searches."""

import numpy as np
import torch

from sharelearn import SharingDiscoverer
from sharelearn.datasets import make_convolution, make_shared_means
from sharelearn.models import LinearMap, SharedMeans, SharingModel
from sharelearn.outer import discover, relax
from sharelearn.partition import canonical_labels
from sharelearn.penalties import Penalties
from sharelearn.search import HardObjective, SearchState, local_search
from sharelearn.search.network import AllMerges, FirstImprovingMove

RELAX = dict(learning_rate=0.3, temperature=(1.0, 0.05), tol=1e-4, n_iter_no_change=10)


def _penalties(build):
    return Penalties.from_params(**build.PENALTIES)


def test_restarts_relaxed_together_match_each_relaxed_alone(build):
    problem, _ = build.conv_problem(n_in=6, k=3, n=40, seed=3)
    model = LinearMap.on_problem(problem)
    params = dict(RELAX, n_columns=6, max_iter=60)
    seeds = [11, 12, 13, 14]
    together = relax(model, _penalties(build), seeds, **params)
    steps = {n_iter for _, _, n_iter in together}
    assert len(steps) > 1  # the restarts stop at different steps: each leaves the batch alone
    for seed, (soft, curve, n_iter) in zip(seeds, together, strict=True):
        [(soft1, curve1, n_iter1)] = relax(model, _penalties(build), [seed], **params)
        assert n_iter == n_iter1 == len(curve)
        np.testing.assert_allclose(curve, curve1, rtol=1e-9)
        np.testing.assert_allclose(soft, soft1, atol=1e-9)


def test_each_start_ends_where_its_own_search_would(build):
    # discover() searches each distinct rounded partition once and does not search again from
    # where an earlier search converged: every start must still report its own search's result.
    problem, _ = build.means_problem(K=6, r=3, n=60, seed=0)
    model = SharedMeans.on_problem(problem)
    objective, results, _ = discover(model, _penalties(build), [1, 2, 3], n_relax=3,
                                  n_columns=6, search=True, search_max_iter=100, max_iter=100,
                                  **RELAX)
    assert [r.kind for r in results] == ["relax"] * 3 + ["init"]
    rounded = {r.rounded.tobytes() for r in results}
    ends = {r.labels.tobytes() for r in results}
    assert rounded & ends  # some start is where a search ended: the shortcut is exercised
    for r in results:
        labels, value, _, converged = local_search(objective, r.rounded,
                                                   model.search_moves(100), max_iter=100)
        assert converged and r.converged
        np.testing.assert_array_equal(r.labels, labels)
        assert r.value == value


def test_extra_starts_are_searched_after_init(build):
    problem, truth = build.means_problem(K=6, r=3, n=60, seed=0)
    model = SharedMeans.on_problem(problem)
    _, results, _ = discover(model, _penalties(build), [], n_relax=0, n_columns=6, search=False,
                          search_max_iter=10, extra_starts=[truth], max_iter=10, **RELAX)
    assert [r.kind for r in results] == ["init", "extra"]
    np.testing.assert_array_equal(results[1].labels, truth)
    assert results[1].value == model.hard_objective(_penalties(build)).state(truth).value


def test_no_relaxation_steps_rounds_the_random_logits(build):
    problem, _ = build.means_problem(K=4, r=2, n=60)
    model = SharedMeans.on_problem(problem)
    [(soft, curve, n_iter)] = relax(model, _penalties(build), [7], n_columns=4, max_iter=0,
                                    **RELAX)
    logits = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert n_iter == 0 and curve.size == 0
    np.testing.assert_allclose(soft, torch.softmax(logits / 0.05, 1).numpy())
    X, _, _ = make_shared_means(60, n_features=4, n_groups=2, random_state=0)
    est = SharingDiscoverer(max_iter=0, random_state=0).fit(X)  # and a fit goes through
    assert est.loss_curve_.size == 0  # no relaxation ran


def test_one_progress_bar_covers_the_whole_fit(capsys):
    # issue 34: one bar per fit (coarsenings, relaxations, searches and their rounds), and the
    # start a hypothesis explains is not called "the only start" when others follow it
    X, Y, _, _ = make_convolution(120, input_shape=12, kernel_size=3, random_state=0)
    SharingDiscoverer(model="linear", n_restarts=2, random_state=0, verbose=1).fit(X, Y)
    out, err = capsys.readouterr()
    assert "sharelearn fit" in err and "sharelearn searches" not in err
    for stage in ("coarsenings of", "relaxations, batch", "search 1 of", "again"):
        assert stage in err, stage
    assert "round" in err and "best objective" in err
    assert "the only start" not in out
    assert out.count("] start ") >= 4


# -- the protocol's smallest example: the loop serves any model that follows it ---------------
class _Numbers(SharingModel):
    """Items are numbers; a partition's data term is each group's squared spread."""

    dtype, device = torch.float64, torch.device("cpu")

    def prepare(self, X, y, splits, *, dtype, device, rng=None, seed=None):
        self.x = torch.as_tensor(X, dtype=dtype)
        self.n_items, self.layer_shape = len(X), (len(X), 1)

    def relaxation(self, S0):  # the soft spread of a batch of selections (B x P x r)
        def spread(S):
            means = torch.einsum("bpr,p->br", S, self.x) / S.sum(1).clamp_min(1e-12)
            return (S * (self.x[None, :, None] - means[:, None, :]) ** 2).sum((1, 2))
        return spread

    def hard_objective(self, penalties):
        return _Spread(self.x.numpy(), penalties)

    def search_moves(self, max_iter):
        return [AllMerges(), FirstImprovingMove()]


class _Spread(HardObjective):
    """Scores one partition at a time, as a network's retrains do (``scores_by_retrain``)."""

    scores_by_retrain, n_jobs = True, 1

    def __init__(self, x, penalties):
        self.x, self.penalties, self.scored = x, penalties, []

    def __call__(self, labels):
        self.scored.append(labels)
        spread = sum(((self.x[labels == g] - self.x[labels == g].mean()) ** 2).sum()
                     for g in np.unique(labels))
        return float(spread) + self.penalties.of_labels(labels)

    def state(self, labels):
        labels = canonical_labels(labels)
        return SearchState(labels=labels, value=self(labels))

    def prefetch(self, candidates):
        pass


def test_the_loop_serves_a_stub_model_through_the_protocol_alone():
    x = np.array([0.0, 0.1, -0.1, 5.0, 5.1, 4.9, 10.0, 9.9])
    truth = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    model = _Numbers()
    model.prepare(x, None, None, dtype=torch.float64, device=model.device)
    penalties = Penalties.from_params(code_length=0.1)
    objective, results, table = discover(model, penalties, [3, 4], n_relax=2, n_columns=4,
                                         search=True, search_max_iter=20, max_iter=40, **RELAX)
    best = min(results, key=lambda r: r.value)
    np.testing.assert_array_equal(best.labels, truth)
    assert [r.kind for r in results] == ["relax", "relax", "init"] and table == []
    # every value the loop reports is the objective's own score of where the start ended
    for r in results:
        assert r.value == objective(r.labels)
    assert objective.scored  # the search asked the stub, not any model type of the package


def test_an_objective_without_a_declared_capability_gets_no_move_that_needs_it():
    x = np.array([0.0, 5.0, 5.0])
    model = _Numbers()
    model.prepare(x, None, None, dtype=torch.float64, device=model.device)
    objective = model.hard_objective(Penalties.from_params(code_length=0.1))
    objective.scores_by_retrain = False  # declared: the network moves do not apply
    labels, value, n_moves, converged = local_search(objective, np.zeros(3, dtype=int),
                                                     model.search_moves(10))
    assert n_moves == 0 and converged and len(objective.scored) == 1  # the start's own score
