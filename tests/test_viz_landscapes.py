"""The 2-D test functions: minima, gradients (autograd vs central differences), curvature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlkit.viz.landscapes import LANDSCAPES, get_landscape

NAMES = sorted(LANDSCAPES)


def _grad(name: str, point: tuple[float, float]) -> np.ndarray:
    p = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    LANDSCAPES[name].value(p).backward()
    return p.grad.numpy()


def _central_difference(name: str, point: tuple[float, float], h: float = 1e-6) -> np.ndarray:
    f, (x, y) = LANDSCAPES[name], point
    return np.array([(f(x + h, y) - f(x - h, y)) / (2 * h), (f(x, y + h) - f(x, y - h)) / (2 * h)])


@pytest.mark.parametrize("name", NAMES)
def test_minima_have_the_stated_value_and_zero_gradient(name: str) -> None:
    land = LANDSCAPES[name]
    for point in land.minima:
        assert land(*point) == pytest.approx(land.min_value, abs=1e-12)
        np.testing.assert_allclose(_grad(name, point), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_no_grid_point_is_below_the_minimum(name: str) -> None:
    land = LANDSCAPES[name]
    _, _, z = land.grid(301)
    assert z.min() >= land.min_value - 1e-12
    # and the grid gets close to it: the minima lie inside the plotting window
    assert z.min() < land.min_value + 0.05 * (np.median(z) - land.min_value)


@pytest.mark.parametrize("name", NAMES)
def test_autograd_gradient_matches_central_differences(name: str) -> None:
    land = LANDSCAPES[name]
    rng = np.random.default_rng(0)
    for _ in range(20):
        point = (rng.uniform(*land.xlim), rng.uniform(*land.ylim))
        numeric = _central_difference(name, point)
        np.testing.assert_allclose(_grad(name, point), numeric, rtol=1e-6, atol=1e-5)


def test_closed_form_gradients() -> None:
    # Rosenbrock: df/dx = -2(1-x) - 400x(y-x²), df/dy = 200(y-x²)
    x, y = -1.2, 0.7
    expected = [-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)]
    np.testing.assert_allclose(_grad("rosenbrock", (x, y)), expected, rtol=1e-12)
    # saddle: (2x, y³ - y); ill-conditioned quadratic: (x, 20y)
    np.testing.assert_allclose(_grad("saddle", (x, y)), [2 * x, y**3 - y], rtol=1e-12)
    np.testing.assert_allclose(_grad("ill_conditioned", (x, y)), [x, 20 * y], rtol=1e-12)


def test_saddle_and_quadratic_curvature() -> None:
    def hessian(name: str, point: tuple[float, float]) -> np.ndarray:
        p = torch.tensor(point, dtype=torch.float64)
        return torch.autograd.functional.hessian(LANDSCAPES[name].value, p).numpy()

    # the origin is a saddle: eigenvalues +2 (along x) and -1 (along y)
    np.testing.assert_allclose(hessian("saddle", (0.0, 0.0)), np.diag([2.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(hessian("saddle", (0.0, 1.0)), np.diag([2.0, 2.0]), atol=1e-12)
    h = hessian("ill_conditioned", (0.3, -0.2))
    np.testing.assert_allclose(h, np.diag([1.0, 20.0]), atol=1e-12)
    eig = np.linalg.eigvalsh(hessian("rosenbrock", (1.0, 1.0)))
    assert eig.min() > 0  # a strict minimum
    assert eig.max() / eig.min() > 2000  # badly conditioned: about 2508


def test_value_accepts_batches_of_points() -> None:
    land = get_landscape("beale")
    points = np.array([[3.0, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(land.value(points), [0.0, 1.5**2 + 2.25**2 + 2.625**2])


def test_bad_names_and_grids() -> None:
    with pytest.raises(KeyError, match="rosenbrock"):
        get_landscape("himmelblau")
    with pytest.raises(ValueError, match="n >= 2"):
        get_landscape("saddle").grid(1)
