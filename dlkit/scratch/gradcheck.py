r"""``gradcheck``: the engine's analytic gradients against central differences.

For a function :math:`f` of arrays :math:`x_1, \dots, x_k` built from
:class:`~dlkit.scratch.tensor.Tensor` ops, the analytic gradient comes from
:meth:`Tensor.backward`, the numerical one from perturbing one element at a time:

.. math::

    \frac{\partial L}{\partial x_i} \approx
    \frac{L(x + \varepsilon e_i) - L(x - \varepsilon e_i)}{2 \varepsilon},

with an error of :math:`O(\varepsilon^2)` plus rounding of about
:math:`10^{-16} |L| / \varepsilon`, so everything runs in float64. A non-scalar output
:math:`y` is reduced to :math:`L = \sum_j w_j y_j` with fixed random weights :math:`w`
(seeded), which checks every output's gradient at once: a wrong Jacobian row shows up
unless it is orthogonal to :math:`w`, which random weights make (almost surely) never.

The central-difference loop and the element comparison are those of the learner-facing
:func:`dlkit.grading.check_gradient` (:mod:`dlkit.grading.gradients`), reused here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dlkit.grading.gradients import GradientMismatch, find_mismatch, numerical_gradient
from dlkit.scratch.tensor import Tensor

_OUTPUT_WEIGHTS_SEED = 1234


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one (see the message)."""


@dataclass(frozen=True)
class GradcheckResult:
    """What :func:`gradcheck` found.

    Attributes:
        passed: True when every gradient matched within the tolerance.
        mismatches: one entry per input whose gradient failed (its worst element).
        problems: every failure described in words, one per input (also non-finite
            numerical gradients, which cannot be checked).
        analytic: input name to the gradient from ``backward()``.
        numerical: input name to the central-difference gradient.
    """

    passed: bool
    mismatches: tuple[GradientMismatch, ...] = ()
    problems: tuple[str, ...] = ()
    analytic: dict[str, np.ndarray] = field(default_factory=dict)
    numerical: dict[str, np.ndarray] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def worst(self) -> GradientMismatch | None:
        """The mismatch with the largest relative error, or None when all passed."""
        return max(self.mismatches, key=lambda m: m.relative_error, default=None)

    @property
    def message(self) -> str:
        return "gradcheck passed" if self.passed else "\n".join(self.problems)


def _named_inputs(
    inputs: Sequence[object] | Mapping[str, object],
) -> tuple[dict[str, np.ndarray], bool]:
    """Inputs as ``{name: float64 copy}``, and whether ``fn`` takes them by keyword."""
    if isinstance(inputs, Mapping):
        named = {str(k): v for k, v in inputs.items()}
        by_keyword = True
    else:
        named = {f"input {i}": v for i, v in enumerate(inputs)}
        by_keyword = False
    arrays = {}
    for name, value in named.items():
        array = np.array(value.data if isinstance(value, Tensor) else value, dtype=np.float64)
        arrays[name] = array
    return arrays, by_keyword


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> GradcheckResult:
    """Compare ``backward()`` gradients of ``fn`` with central differences, for every input.

    Args:
        fn: called as ``fn(*tensors)`` (or ``fn(**tensors)`` when ``inputs`` is a
            mapping) with float64 :class:`Tensor` inputs; returns a Tensor of any shape.
        inputs: the point, arrays (or numbers, or Tensors); float64 copies are used.
        eps: the finite-difference step.
        rtol, atol: an element passes when ``|a - n| <= atol + rtol * |n|``.

    Returns:
        A :class:`GradcheckResult`; it is truthy when every gradient matched.
    """
    point, by_keyword = _named_inputs(inputs)
    if not point:
        raise ValueError("gradcheck needs at least one input")

    def call(arrays: dict[str, np.ndarray], requires_grad: bool) -> tuple[Tensor, dict]:
        tensors = {k: Tensor(v, requires_grad=requires_grad) for k, v in arrays.items()}
        out = fn(**tensors) if by_keyword else fn(*tensors.values())
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
        return out, tensors

    out, _ = call(point, requires_grad=False)
    weights = np.random.default_rng(_OUTPUT_WEIGHTS_SEED).standard_normal(out.shape)

    def loss(arrays: dict[str, np.ndarray], requires_grad: bool) -> tuple[Tensor, dict]:
        out, tensors = call(arrays, requires_grad)
        return (out * weights).sum(), tensors  # L = Σ_j w_j y_j

    total, tensors = loss(point, requires_grad=True)
    if total.requires_grad:
        total.backward()
    analytic = {
        k: (t.grad if t.grad is not None else np.zeros_like(t.data)) for k, t in tensors.items()
    }
    numerical: dict[str, np.ndarray] = {}
    mismatches: list[GradientMismatch] = []
    problems: list[str] = []
    for name, value in point.items():

        def loss_at(v: np.ndarray, name: str = name) -> float:
            return loss({**point, name: v}, requires_grad=False)[0].item()

        numerical[name] = numerical_gradient(loss_at, value, eps=eps)
        if not np.isfinite(numerical[name]).all():
            problems.append(f"the numerical gradient of `{name}` is not finite; cannot check it.")
            continue
        mismatch = find_mismatch(name, analytic[name], numerical[name], rtol, atol)
        if mismatch:
            mismatches.append(mismatch)
            problems.append(mismatch.describe())
    return GradcheckResult(
        passed=not problems,
        mismatches=tuple(mismatches),
        problems=tuple(problems),
        analytic=analytic,
        numerical=numerical,
    )


def assert_gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> GradcheckResult:
    """:func:`gradcheck`, raising :class:`GradcheckError` with every problem when it fails."""
    result = gradcheck(fn, inputs, eps=eps, rtol=rtol, atol=atol)
    if not result.passed:
        raise GradcheckError(result.message)
    return result
