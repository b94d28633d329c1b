"""The implicit-differentiation solvers against the analytic hypergradient of a quadratic.

Inner problem ``f(w, h) = w^T A w / 2 - w^T B h`` (``A`` symmetric positive definite) has
``w*(h) = A^-1 B h``. Outer loss ``g(w, h) = |w - c|^2 / 2 + h^T D h / 2``. The total derivative
is ``D h + B^T A^-1 (w* - c)``; the first-order (identity) approximation replaces ``A^-1`` by
``I``. Tolerances: exact 1e-10 (float64 round-off), conjugate gradient 1e-8 after ``n``
iterations (exact in exact arithmetic), Neumann 1e-6 after 400 terms with ``alpha = 1 /
lambda_max`` (the error shrinks like ``(1 - lambda_min / lambda_max)^K``).
"""

import numpy as np
import pytest
import torch

from sharelearn.hypergrad import (
    SOLVERS,
    hessian_vector_product,
    implicit_hypergradient,
    inverse_hvp,
)

N_W, N_H = 6, 3


@pytest.fixture(scope="module")
def quadratic():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((N_W, N_W)))
    eig = np.linspace(1.0, 8.0, N_W)  # lambda_max = 8: a Neumann series without alpha diverges
    A = torch.tensor(Q @ np.diag(eig) @ Q.T)
    B = torch.tensor(rng.standard_normal((N_W, N_H)))
    c = torch.tensor(rng.standard_normal(N_W))
    D = torch.tensor(np.diag(rng.uniform(0.5, 1.5, N_H)))
    h = torch.tensor(rng.standard_normal(N_H))

    def inner(w, h):
        return 0.5 * w @ (A @ w) - w @ (B @ h)

    def outer(w, h):
        return 0.5 * ((w - c) ** 2).sum() + 0.5 * h @ (D @ h)

    w_star = torch.linalg.solve(A, B @ h)
    exact = D @ h + B.T @ torch.linalg.solve(A, w_star - c)
    first_order = D @ h + B.T @ (w_star - c)
    return dict(inner=inner, outer=outer, A=A, h=h, w=w_star, exact=exact,
                first_order=first_order, lmax=float(eig.max()))


@pytest.mark.parametrize("method, kwargs, atol", [
    ("exact", {}, 1e-10),
    ("cg", {"n_iter": N_W}, 1e-8),
    ("neumann", {"n_iter": 400, "alpha": 1 / 8.0}, 1e-6),
])
def test_solver_matches_analytic_hypergradient(quadratic, method, kwargs, atol):
    q = quadratic
    hg, value = implicit_hypergradient(q["inner"], q["outer"], q["w"], q["h"], method, **kwargs)
    np.testing.assert_allclose(hg.numpy(), q["exact"].numpy(), atol=atol, rtol=0)
    assert value == pytest.approx(float(q["outer"](q["w"], q["h"])))


def test_identity_solver_is_the_first_order_approximation(quadratic):
    q = quadratic
    hg, _ = implicit_hypergradient(q["inner"], q["outer"], q["w"], q["h"], "identity")
    np.testing.assert_allclose(hg.numpy(), q["first_order"].numpy(), atol=1e-12, rtol=0)
    # and it is genuinely an approximation here (A is not the identity)
    assert not np.allclose(hg.numpy(), q["exact"].numpy(), atol=1e-3)


def test_hvp_is_the_hessian_times_v(quadratic):
    q = quadratic
    v = torch.arange(N_W, dtype=torch.float64)
    hvp = hessian_vector_product(q["inner"], q["w"], q["h"])
    np.testing.assert_allclose(hvp(v).numpy(), (q["A"] @ v).numpy(), atol=1e-12)


def test_neumann_alpha_factor_matters(quadratic):
    # The series without its alpha factor (as in the public reference code) is off by 1 / alpha;
    # with alpha = 1 it diverges here because lambda_max(A) = 8 > 2.
    q = quadratic
    hvp = hessian_vector_product(q["inner"], q["w"], q["h"])
    v = torch.ones(N_W, dtype=torch.float64)
    truth = torch.linalg.solve(q["A"], v)
    alpha = 1 / q["lmax"]
    p = inverse_hvp(hvp, v, "neumann", n_iter=400, alpha=alpha)
    np.testing.assert_allclose(p.numpy(), truth.numpy(), atol=1e-6)
    np.testing.assert_allclose((p / alpha).numpy(), (truth / alpha).numpy(), atol=1e-5)
    diverged = inverse_hvp(hvp, v, "neumann", n_iter=40, alpha=1.0)
    assert float(diverged.abs().max()) > 1e6


def test_cg_stops_on_negative_curvature_with_a_finite_answer():
    A = torch.diag(torch.tensor([2.0, -1.0], dtype=torch.float64))
    v = torch.tensor([1.0, 1.0], dtype=torch.float64)
    p = inverse_hvp(lambda u: A @ u, v, "cg", n_iter=10)
    assert torch.isfinite(p).all()


def test_unknown_solver_is_a_value_error(quadratic):
    q = quadratic
    with pytest.raises(ValueError, match="Unknown hypergradient solver 'newton'"):
        implicit_hypergradient(q["inner"], q["outer"], q["w"], q["h"], "newton")
    assert SOLVERS == ("exact", "cg", "neumann", "identity")
