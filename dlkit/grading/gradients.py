r"""Gradient checks: a learner's analytic gradients against central differences.

For a scalar function :math:`f` and a parameter array :math:`x`, the numerical
gradient perturbs one element at a time:

.. math::

    \frac{\partial f}{\partial x_i} \approx
    \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2 \varepsilon}

where :math:`e_i` is the unit vector along element :math:`i`. The error is
:math:`O(\varepsilon^2)` plus rounding of order :math:`10^{-16} |f| / \varepsilon`,
so everything runs in float64 with :math:`\varepsilon = 10^{-6}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from dlkit.grading.checks import CheckFailed, _format_index, _to_array

_TINY = np.finfo(np.float64).tiny


def _scalar(value: object) -> float:
    array = _to_array(value, "the output of the function being differentiated")
    if array.size != 1:
        raise CheckFailed(
            f"the function being differentiated returned shape {array.shape}, but a gradient "
            "check needs a single number, such as a loss"
        )
    return float(array.reshape(()).real)


def numerical_gradient(
    f: Callable[[np.ndarray], object], x: object, *, eps: float = 1e-6
) -> np.ndarray:
    r"""Central-difference gradient of a scalar function ``f`` at ``x``.

    .. math::

        \frac{\partial f}{\partial x_i} \approx
        \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2 \varepsilon}

    Each element of a float64 copy of ``x`` is perturbed in place and restored, so the
    caller's ``x`` is never modified. ``f`` is called ``2 * x.size`` times.

    Args:
        f: a function of one array returning a scalar (a number, or a one-element array
            or tensor).
        x: the point, any array-like.
        eps: the step :math:`\varepsilon`.

    Returns:
        A float64 array of the shape of ``x``.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    point = _to_array(x, "x", error=TypeError).astype(np.float64)  # a copy
    grad = np.zeros_like(point)
    for i in np.ndindex(point.shape):
        original = point[i]
        point[i] = original + eps
        f_plus = _scalar(f(point))
        point[i] = original - eps
        f_minus = _scalar(f(point))
        point[i] = original
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _numerical_for(
    f: Callable[..., object], point: dict[str, np.ndarray], name: str, eps: float
) -> np.ndarray:
    """Numerical gradient of ``f(**point)`` with respect to ``point[name]`` alone."""
    return numerical_gradient(lambda value: f(**{**point, name: value}), point[name], eps=eps)


@dataclass(frozen=True)
class GradientMismatch:
    r"""Where an analytic gradient disagrees most with the numerical one.

    ``index`` is the element with the worst relative error
    :math:`|a - n| / \max(|a|, |n|, \mathrm{tiny})` among the ``n_bad`` of ``size``
    elements outside the tolerance.
    """

    name: str
    index: tuple[int, ...]
    analytic: float
    numerical: float
    relative_error: float
    n_bad: int
    size: int
    rtol: float
    atol: float

    def describe(self) -> str:
        where = f"at {_format_index(self.index)}" if self.index else "(a scalar)"
        return (
            f"gradient of `{self.name}` is wrong at {self.n_bad} of {self.size} elements. "
            f"Worst {where}: analytic {self.analytic:.6g}, numerical {self.numerical:.6g}, "
            f"relative error {self.relative_error:.2e} (allowed: |analytic − numerical| <= "
            f"atol {self.atol:g} + rtol {self.rtol:g} × |numerical|)."
        )


def find_mismatch(
    name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float
) -> GradientMismatch | None:
    r"""Compare two gradients of the same shape element by element; None when all pass.

    An element passes when :math:`|a - n| \le \mathrm{atol} + \mathrm{rtol} |n|`; NaN
    in the analytic gradient fails.
    """
    a = analytic.astype(np.result_type(analytic.dtype, np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - numeric)
        bad = ~(diff <= atol + rtol * np.abs(numeric))  # NaN in the analytic gradient is bad
        relative = diff / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), _TINY)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return None
    score = np.where(bad, np.nan_to_num(relative, nan=np.inf), -1.0)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), bad.shape))
    return GradientMismatch(
        name=name,
        index=worst,
        analytic=float(a[worst]),
        numerical=float(numeric[worst]),
        relative_error=float(relative[worst]),
        n_bad=n_bad,
        size=int(bad.size),
        rtol=rtol,
        atol=atol,
    )


def _compare(
    name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float
) -> str | None:
    """Return what is wrong with the gradient of ``name``, or None when it matches."""
    if not np.isfinite(numeric).all():
        return (
            f"the numerical gradient of `{name}` is not finite (the function returns NaN or "
            "inf near these parameters), so the gradient cannot be checked."
        )
    mismatch = find_mismatch(name, analytic, numeric, rtol, atol)
    return mismatch.describe() if mismatch else None


def check_gradient(
    f: Callable[..., object],
    params: Mapping[str, object],
    grads: Mapping[str, object],
    *,
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> None:
    r"""Check analytic gradients of ``f(**params)`` against central differences.

    Every parameter is checked and every problem is reported, one per line. An element
    passes when :math:`|a - n| \le \mathrm{atol} + \mathrm{rtol} \cdot |n|` (``a``
    analytic, ``n`` numerical); a failure names the parameter, the element with the
    worst relative error :math:`|a - n| / \max(|a|, |n|, \mathrm{tiny})`, and both values.

    Args:
        f: takes the parameters as keyword arguments and returns a scalar loss.
        params: parameter name to value; converted to float64 copies before use.
        grads: parameter name to the learner's analytic gradient of ``f`` (NumPy arrays
            or torch tensors); extra names are ignored.
        eps: the finite-difference step.
        rtol: relative tolerance, against the numerical gradient.
        atol: absolute tolerance.

    Raises:
        CheckFailed: if a gradient is missing, has the wrong shape, or wrong values.
    """
    if grads is None or not isinstance(grads, Mapping):
        got = "None: did you forget `return`?" if grads is None else f"a {type(grads).__name__}"
        raise CheckFailed(f"the gradients should be a dict of parameter name to array, got {got}")
    point = {
        k: _to_array(v, f"parameter `{k}`", TypeError).astype(np.float64) for k, v in params.items()
    }
    problems: list[str] = []
    for name, value in point.items():
        if name not in grads:
            given = ", ".join(f"`{k}`" for k in grads) or "none"
            problems.append(f"the gradient of `{name}` is missing (gradients given: {given}).")
            continue
        try:
            analytic = _to_array(grads[name], f"the gradient of `{name}`")
        except CheckFailed as exc:
            problems.append(f"{exc}.")
            continue
        if analytic.shape != value.shape:
            problems.append(
                f"the gradient of `{name}` has shape {analytic.shape} but `{name}` has shape "
                f"{value.shape}; a gradient always has the shape of its parameter."
            )
            continue
        problem = _compare(name, analytic, _numerical_for(f, point, name, eps), rtol, atol)
        if problem:
            problems.append(problem)
    if problems:
        raise CheckFailed("\n".join(problems))
