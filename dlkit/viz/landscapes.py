"""Two-dimensional test functions for watching optimizers move.

Each :class:`Landscape` is a function :math:`f(x, y)` written with arithmetic alone, so
the same code evaluates NumPy grids (for contour plots) and torch tensors (autograd
gives the gradient an optimizer needs). Each knows where its minima are and what
value they take, so plots can show the distance :math:`f - f^\\star` on a log scale.

* Rosenbrock, :math:`(1 - x)^2 + 100\\,(y - x^2)^2`: a curved, narrow valley; minimum
  :math:`f(1, 1) = 0`.
* Beale, :math:`(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2`: flat
  plateaus and steep walls; minimum :math:`f(3, 0.5) = 0`.
* Saddle, :math:`x^2 + y^4/4 - y^2/2`: a saddle point at the origin (gradient 0, curvature
  :math:`+2` along :math:`x` and :math:`-1` along :math:`y`) between two minima
  :math:`f(0, \\pm 1) = -1/4`. It is :math:`x^2 - y^2/2` near the origin, made bounded below.
* Ill-conditioned quadratic, :math:`\\tfrac12 (x^2 + \\kappa y^2)`: Hessian
  :math:`\\mathrm{diag}(1, \\kappa)` with condition number :math:`\\kappa`; minimum
  :math:`f(0, 0) = 0`. Gradient descent is stable only for :math:`\\eta < 2/\\kappa`, and then
  crawls along :math:`x` at rate :math:`1 - \\eta`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LANDSCAPES",
    "Landscape",
    "beale",
    "get_landscape",
    "ill_conditioned",
    "rosenbrock",
    "saddle",
]

Point = tuple[float, float]


def rosenbrock(x: Any, y: Any) -> Any:
    """:math:`(1 - x)^2 + 100 (y - x^2)^2` for NumPy arrays or torch tensors."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(x: Any, y: Any) -> Any:
    """:math:`(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2`."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def saddle(x: Any, y: Any) -> Any:
    """:math:`x^2 + y^4/4 - y^2/2`: a saddle at (0, 0), minima at (0, ±1)."""
    return x**2 + y**4 / 4 - y**2 / 2


def ill_conditioned(x: Any, y: Any, kappa: float = 20.0) -> Any:
    """:math:`\\tfrac12 (x^2 + \\kappa y^2)`: condition number ``kappa``."""
    return 0.5 * (x**2 + kappa * y**2)


@dataclass(frozen=True)
class Landscape:
    """A 2-D test function with its minima, a starting point and a plotting window.

    Attributes:
        name: the key in :data:`LANDSCAPES`.
        fn: ``fn(x, y)``, elementwise on NumPy arrays or torch tensors of equal shape.
        minima: every global minimizer ``(x*, y*)``.
        min_value: :math:`f^\\star`, the value at the minima.
        start: a starting point that makes the race instructive.
        xlim, ylim: the plotting window.
        formula: LaTeX for titles.
    """

    name: str
    fn: Callable[[Any, Any], Any]
    minima: tuple[Point, ...]
    min_value: float
    start: Point
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    formula: str

    def __call__(self, x: Any, y: Any) -> Any:
        return self.fn(x, y)

    def value(self, point: Any) -> Any:
        """``f`` at ``point`` of shape ``(..., 2)`` (array or tensor); shape ``(...)``."""
        return self.fn(point[..., 0], point[..., 1])

    def grid(self, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` over the plotting window, each of shape ``(n, n)``, for contours."""
        if n < 2:
            raise ValueError(f"grid needs n >= 2 points per axis, got {n}")
        xs = np.linspace(*self.xlim, n)
        ys = np.linspace(*self.ylim, n)
        grid_x, grid_y = np.meshgrid(xs, ys)  # (n, n) each; rows follow y
        return grid_x, grid_y, self.fn(grid_x, grid_y)


LANDSCAPES: dict[str, Landscape] = {
    "rosenbrock": Landscape(
        "rosenbrock", rosenbrock, ((1.0, 1.0),), 0.0, (-1.5, 2.0), (-2.0, 2.0), (-1.0, 3.0),
        r"$(1-x)^2 + 100(y-x^2)^2$",
    ),
    "beale": Landscape(
        "beale", beale, ((3.0, 0.5),), 0.0, (0.5, 1.5), (-0.5, 4.0), (-1.5, 2.0),
        r"Beale: $\sum_i (c_i - x + x y^i)^2$",
    ),
    "saddle": Landscape(
        "saddle", saddle, ((0.0, 1.0), (0.0, -1.0)), -0.25, (1.5, 1e-3), (-2.0, 2.0),
        (-1.8, 1.8), r"$x^2 + y^4/4 - y^2/2$",
    ),
    "ill_conditioned": Landscape(
        "ill_conditioned", ill_conditioned, ((0.0, 0.0),), 0.0, (-4.0, 1.0), (-4.5, 4.5),
        (-1.5, 1.5), r"$\frac{1}{2}(x^2 + 20\,y^2)$",
    ),
}  # fmt: skip


def get_landscape(name: str) -> Landscape:
    """The landscape called ``name`` (one of :data:`LANDSCAPES`' keys)."""
    if name not in LANDSCAPES:
        raise KeyError(f"unknown landscape {name!r}; choose one of {sorted(LANDSCAPES)}")
    return LANDSCAPES[name]
