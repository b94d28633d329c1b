"""The relaxation's parts (sharelearn.relaxation) by themselves, on tiny differentiable data
terms and no model: the soft selection, its annealing schedule, the optimizer, the stopping rule,
and a batch of restarts relaxed together."""

import math

import numpy as np
import pytest
import torch

from sharelearn.relaxation import Adam, EarlyStopping, soft_selection, temperature_at

# the values the candidate groups take in the data term below
LEVELS = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)


def nearest_level_fit(values):
    """A data term of soft selections ``S`` (``P x 3`` or ``B x P x 3``): the squared error of
    each item's value against its expected level ``S @ LEVELS``. Its optimum over hard
    selections puts every item in the group of the nearest level."""
    return lambda S: ((S @ LEVELS - values) ** 2).sum(-1)


def anneal(data_term, logits, *, max_iter, temperature=(1.0, 0.05), lr=0.1, tol=1e-4,
           n_iter_no_change=5):
    """The relaxation's loop built from its parts: every restart of the batch ``logits``
    (``B x P x r``) is annealed until its own :class:`EarlyStopping` stops it, and stopped
    restarts leave the batch. Returns, per restart: its final selection, its objective curve and
    its number of steps."""
    logits = logits.clone().requires_grad_(True)
    B = logits.shape[0]
    optimizer = Adam(logits, lr=lr)
    stop = EarlyStopping(tol, n_iter_no_change, B)
    active, final, steps = np.arange(B), [None] * B, [0] * B
    for step in range(max_iter):
        T = temperature_at(step, max_iter, *temperature)
        S = soft_selection(logits, T)
        values = data_term(S)
        optimizer.zero_grad()
        values.sum().backward()
        optimizer.step()
        done = stop(values.detach().numpy(), S, active)
        if step == max_iter - 1:
            done[:] = True
        with torch.no_grad():
            S_now = soft_selection(logits, T)
        for j in np.flatnonzero(done):
            final[active[j]], steps[active[j]] = S_now[j].clone(), step + 1
        if done.all():
            break
        logits = optimizer.keep(torch.as_tensor(np.flatnonzero(~done)))
        active = active[~done]
    return final, stop.curves, steps


# -- the soft selection ------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [10.0, 1.0, 0.01])
def test_every_row_is_on_the_simplex_also_in_a_batch(temperature):
    logits = 20 * torch.randn(4, 30, 5, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64)
    S = soft_selection(logits, temperature)
    assert S.shape == logits.shape
    assert (S >= 0).all() and (S <= 1).all()
    torch.testing.assert_close(S.sum(-1), torch.ones(4, 30, dtype=torch.float64))
    # a batch selects row by row: each restart alone gives the same rows
    torch.testing.assert_close(S[2], soft_selection(logits[2], temperature), rtol=0, atol=0)


def test_the_temperature_hardens_the_rows_towards_their_largest_logit():
    logits = torch.tensor([[0.3, 0.1, -0.2], [1.0, 2.0, 1.5]], dtype=torch.float64)
    hot, cold = soft_selection(logits, 100.0), soft_selection(logits, 1e-3)
    torch.testing.assert_close(hot, torch.full_like(hot, 1 / 3), rtol=0, atol=1e-2)
    torch.testing.assert_close(cold, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]],
                                                  dtype=torch.float64))
    # a common shift of a row's logits changes nothing
    torch.testing.assert_close(soft_selection(logits + torch.tensor([[5.0], [-7.0]]), 0.5),
                               soft_selection(logits, 0.5))


# -- the annealing schedule --------------------------------------------------------------------
def test_the_schedule_is_geometric_from_start_to_end():
    n, start, end = 11, 2.0, 0.02
    T = np.array([temperature_at(s, n, start, end) for s in range(n)])
    assert T[0] == pytest.approx(start, rel=1e-15) and T[-1] == pytest.approx(end, rel=1e-15)
    np.testing.assert_allclose(T[1:] / T[:-1], (end / start) ** (1 / (n - 1)), rtol=1e-12)
    assert T[5] == pytest.approx(math.sqrt(start * end), rel=1e-12)  # the middle step
    assert np.all(np.diff(T) < 0)
    # annealing the other way also runs from start to end
    assert temperature_at(0, 5, 0.1, 1.0) == pytest.approx(0.1)
    assert temperature_at(4, 5, 0.1, 1.0) == pytest.approx(1.0)


def test_a_schedule_of_one_step_or_one_temperature_is_constant():
    assert temperature_at(0, 1, 1.0, 0.05) == 0.05  # a single step runs at the end temperature
    assert temperature_at(0, 0, 1.0, 0.05) == 0.05
    assert [temperature_at(s, 7, 0.3, 0.3) for s in range(7)] == [0.3] * 7
    assert isinstance(temperature_at(3, 7, 1, 1), float)


# -- the optimizer -----------------------------------------------------------------------------
def test_the_first_adam_step_moves_every_entry_by_the_learning_rate_against_its_gradient():
    x = torch.tensor([[3.0, -2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    optimizer = Adam(x, lr=0.1)
    (x ** 2 * torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)).sum().backward()
    optimizer.step()
    # bias-corrected moments of one gradient: the step is lr * g / |g|, whatever the scale of g
    torch.testing.assert_close(x.detach(), torch.tensor([[2.9, -1.9, 0.4]], dtype=torch.float64))
    optimizer.zero_grad()
    assert x.grad is None


def test_adam_follows_the_textbook_update():
    g1, g2 = torch.tensor([1.0, -4.0]), torch.tensor([3.0, 2.0])
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = Adam(x, lr=0.01, betas=(0.5, 0.75), eps=0.0)
    for g in (g1, g2):
        optimizer.zero_grad()
        (x * g).sum().backward()
        optimizer.step()
    m = 0.5 * (0.5 * g1) + 0.5 * g2
    v = 0.75 * (0.25 * g1 ** 2) + 0.25 * g2 ** 2
    second = 0.01 * (m / (1 - 0.5 ** 2)) / (v / (1 - 0.75 ** 2)).sqrt()
    expected = -0.01 * torch.sign(g1) - second
    torch.testing.assert_close(x.detach(), expected.to(torch.float64))


def test_adam_goes_on_with_the_rows_it_keeps_as_if_they_were_alone():
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(3, 4, 2, generator=gen, dtype=torch.float64)
    weights = torch.rand(3, 4, 2, generator=gen, dtype=torch.float64) + 0.5

    def run(rows, keep_after=None, kept=None):
        x = start[rows].clone().requires_grad_(True)
        optimizer = Adam(x, lr=0.05)
        for step in range(6):
            if step == keep_after:
                x = optimizer.keep(torch.as_tensor(kept))
                rows = [rows[k] for k in kept]
            optimizer.zero_grad()
            ((x - 1) ** 2 * weights[rows]).sum().backward()
            optimizer.step()
        return x.detach()

    together = run([0, 1, 2], keep_after=3, kept=[0, 2])
    torch.testing.assert_close(together[0], run([0])[0], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(together[1], run([2])[0], rtol=1e-14, atol=1e-14)


# -- the stopping rule -------------------------------------------------------------------------
def _S(rounded, n_columns=3):
    """A selection whose rows round to ``rounded``."""
    return torch.nn.functional.one_hot(torch.as_tensor(rounded), n_columns).to(torch.float64)


def test_a_restart_stops_after_n_iter_no_change_stalled_steps_in_a_row():
    stop = EarlyStopping(tol=1e-3, n_iter_no_change=3)
    same = _S([0, 1, 2])
    # the first step has nothing to compare with; then three steps that round alike
    assert [stop(v, same) for v in (10.0, 9.0, 8.0, 7.0)] == [False, False, False, True]
    assert stop.curve == [10.0, 9.0, 8.0, 7.0]


def test_a_step_that_improves_and_changes_the_rounding_resets_the_count():
    stop = EarlyStopping(tol=1e-3, n_iter_no_change=2)
    assert not stop(10.0, _S([0, 0, 0]))
    assert not stop(10.0, _S([0, 0, 0]))  # stalled: 1
    assert not stop(9.0, _S([0, 1, 0]))  # improved and rounded anew: 0
    assert not stop(9.0, _S([0, 1, 1]))  # rounded anew but no better: 1
    assert stop(8.0, _S([0, 1, 1]))  # better, but the same rounding: 2


def test_the_tolerance_is_relative_to_the_best_value():
    # at |best| = 1000, tol = 1e-3 asks for an improvement of more than 1
    stop = EarlyStopping(tol=1e-3, n_iter_no_change=1)
    assert not stop(1000.0, _S([0, 0]))
    assert stop(999.5, _S([1, 1]))
    stop = EarlyStopping(tol=1e-3, n_iter_no_change=1)
    assert not stop(1000.0, _S([0, 0]))
    assert not stop(998.5, _S([1, 1]))
    # below 1 in size, the tolerance is absolute
    stop = EarlyStopping(tol=1e-3, n_iter_no_change=1)
    assert not stop(0.01, _S([0, 0]))
    assert stop(0.0095, _S([1, 1]))
    # a worse value never counts as improved, and the best is kept
    stop = EarlyStopping(tol=0.0, n_iter_no_change=2)
    for v, rounded in [(5.0, [0]), (6.0, [1]), (5.5, [0])]:
        last = stop(v, _S(rounded))
    assert last and stop.best[0] == 5.0


def test_restarts_stop_each_by_their_own_record():
    stop = EarlyStopping(tol=1e-3, n_iter_no_change=1, n_restarts=3)
    S = torch.stack([_S([0, 1]), _S([1, 1]), _S([0, 0])])
    assert not stop([3.0, 2.0, 1.0], S, [0, 1, 2]).any()
    # restart 0 improves with a new rounding, 1 keeps its rounding, 2 gets worse
    S_next = torch.stack([_S([1, 1]), _S([1, 1]), _S([0, 1])])
    np.testing.assert_array_equal(stop([2.0, 1.0, 1.5], S_next, [0, 1, 2]), [False, True, True])
    # restart 0 alone goes on: a batch of the remaining restarts, addressed by their index
    np.testing.assert_array_equal(stop([1.0], S_next[:1], [0]), [True])
    assert stop.curves == [[3.0, 2.0, 1.0], [2.0, 1.0], [1.0, 1.5]]


# -- the parts together ------------------------------------------------------------------------
def test_annealing_reaches_the_known_optimum_with_hard_rows():
    values = torch.tensor([-1.2, 0.4, 2.3, 0.6, -0.8, 1.9, 0.1, 1.4], dtype=torch.float64)
    nearest = (values[:, None] - LEVELS).abs().argmin(1)
    logits = torch.zeros(1, len(values), 3, dtype=torch.float64)
    final, curves, steps = anneal(nearest_level_fit(values), logits, max_iter=400,
                                  temperature=(1.0, 0.01), lr=0.2, tol=0.0,
                                  n_iter_no_change=400)
    S = final[0]
    assert steps[0] == 400  # tol=0 and no patience: the whole schedule runs
    np.testing.assert_array_equal(S.argmax(-1).numpy(), nearest.numpy())
    assert S.max(-1).values.min() > 0.99  # the rows hardened
    hard_optimum = float(((LEVELS[nearest] - values) ** 2).sum())
    assert curves[0][-1] == pytest.approx(hard_optimum, abs=1e-2)
    assert curves[0][-1] < curves[0][0]


def test_early_stopping_ends_the_annealing_before_its_schedule():
    values = torch.tensor([-1.0, 0.5, 2.0, 2.0], dtype=torch.float64)  # exactly the levels
    logits = torch.zeros(1, 4, 3, dtype=torch.float64)
    _, curves, steps = anneal(nearest_level_fit(values), logits, max_iter=500, lr=0.3,
                              tol=1e-3, n_iter_no_change=5)
    assert 5 < steps[0] < 500
    assert len(curves[0]) == steps[0]


def test_a_batch_of_restarts_ends_where_each_restart_alone_ends():
    values = torch.tensor([-1.2, 0.4, 2.3, 0.6, -0.8, 1.9, 0.1, 1.4], dtype=torch.float64)
    data_term = nearest_level_fit(values)
    logits = torch.stack([
        torch.randn(len(values), 3, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64) for seed in range(4)])
    kw = dict(max_iter=150, lr=0.1, tol=1e-3, n_iter_no_change=4)
    final, curves, steps = anneal(data_term, logits, **kw)
    assert len(set(steps)) > 1  # the restarts stopped at different steps
    for i in range(4):
        alone, alone_curves, alone_steps = anneal(data_term, logits[i:i + 1], **kw)
        assert steps[i] == alone_steps[0]
        np.testing.assert_allclose(curves[i], alone_curves[0], rtol=1e-12)
        torch.testing.assert_close(final[i], alone[0], rtol=1e-12, atol=1e-12)
