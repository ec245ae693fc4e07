import numpy as np
import pytest

from refdeblur import gradcheck


def test_relative_error_is_symmetric_and_zero_safe():
    assert gradcheck.relative_error(0.0, 0.0) == 0.0
    assert gradcheck.relative_error(1.0, 1.1) == gradcheck.relative_error(1.1, 1.0)
    with pytest.raises(ValueError):
        gradcheck.relative_error(np.ones(2), np.ones(3))


@pytest.mark.parametrize("order", [2, 4])
def test_directional_derivative_of_a_polynomial(rng, order):
    x = rng.standard_normal(5)
    direction = rng.standard_normal(5)
    loss = lambda v: float(np.sum(v ** 3))
    exact = float(np.sum(3 * x ** 2 * direction))
    estimate = gradcheck.directional_derivative(loss, x, direction, 1e-3, order=order)
    # a cubic: the 4th-order stencil is exact, the 2nd-order one is off by h² Σd³
    tolerance = 1e-10 if order == 4 else 1e-5
    assert abs(estimate - exact) <= tolerance * (1 + abs(exact))


def test_check_vjp_catches_a_wrong_gradient(rng):
    matrix = rng.standard_normal((4, 3))
    x = rng.standard_normal(3)
    right = gradcheck.check_vjp(lambda v: np.tanh(matrix @ v), [x],
                                lambda g: [matrix.T @ (g * (1 - np.tanh(matrix @ x) ** 2))],
                                rng=rng)
    wrong = gradcheck.check_vjp(lambda v: np.tanh(matrix @ v), [x],
                                lambda g: [matrix.T @ g], rng=rng)
    assert right[0] < 1e-8
    assert wrong[0] > 1e-3


def test_numerical_gradient_matches_analytic(rng):
    x = rng.standard_normal((3, 2))
    numeric = gradcheck.numerical_gradient(lambda v: float(np.sum(np.sin(v))), x)
    np.testing.assert_allclose(numeric, np.cos(x), rtol=1e-8)


def test_adjoint_mismatch_detects_a_wrong_transpose(rng):
    matrix = rng.standard_normal((4, 6))
    assert gradcheck.adjoint_mismatch(lambda u: matrix @ u, lambda v: matrix.T @ v,
                                      (6,), (4,), rng=rng) < 1e-14
    wrong = matrix.copy()
    wrong[0, 0] += 1
    assert gradcheck.adjoint_mismatch(lambda u: matrix @ u, lambda v: wrong.T @ v,
                                      (6,), (4,), rng=rng) > 1e-3


def test_stable_directional_derivative_picks_a_consistent_step(rng):
    x = rng.standard_normal(4)
    direction = rng.standard_normal(4)
    # an O(1) loss whose derivative is tiny: rounding dominates small steps
    loss = lambda v: 1.0 + 1e-6 * float(np.sum(np.sin(v)))
    exact = 1e-6 * float(np.sum(np.cos(x) * direction))
    estimate, step = gradcheck.stable_directional_derivative(loss, x, direction)
    assert gradcheck.relative_error(estimate, exact) < 1e-6
    assert step >= 1e-4
    naive = gradcheck.directional_derivative(loss, x, direction, 1e-6)
    assert gradcheck.relative_error(naive, exact) > 1e-6   # what the ladder avoids


def test_stable_directional_derivative_skips_kinks(rng):
    x = np.array([0.5e-3])
    loss = lambda v: float(np.maximum(v, 0.0).sum() + v.sum() ** 2)
    estimate, step = gradcheck.stable_directional_derivative(
        loss, x, np.ones(1), is_smooth=lambda h: 2 * h < x[0])
    assert step < 0.25e-3
    assert estimate == pytest.approx(1 + 2 * x[0], rel=1e-8)
