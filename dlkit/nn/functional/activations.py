r"""Activation functions and softmax, written from primitive tensor operations.

Same names and arguments as :mod:`torch.nn.functional` (a subset of the options), so
``from dlkit.nn import functional as F`` reads like PyTorch code. Each function is
built from elementwise primitives (``exp``, ``expm1``, ``log1p``, ``erf``, ``where``)
and reductions (``amax``, ``sum``); none calls its own fused PyTorch version.

Numerical stability is part of the lesson. The formulas as written overflow:
:math:`e^{-x}` is ``inf`` for :math:`x = -10^4`, and even when ``torch.where`` throws
the overflowing branch away *in the forward pass*, its gradient is ``0 · inf = NaN``.
So every exponential here only ever sees arguments :math:`\le 0`. The tests in
``tests/test_nn_functional_activations.py`` check values and gradients against
PyTorch in float64, including inputs of :math:`\pm 10^4`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "elu",
    "gelu",
    "leaky_relu",
    "log_softmax",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _check_tensor(x: object, fn: str, name: str = "input") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype} "
            "(convert with .float() or .double())"
        )


def _nonpositive_abs(x: Tensor) -> Tensor:
    r"""Return :math:`-|x|` with the derivative :math:`-\operatorname{sign}(x)`, taking ``-x`` at 0.

    ``torch.abs`` has derivative 0 at 0, which would lose the gradient of
    :math:`e^{-|x|}` exactly at the origin; choosing a side keeps it right.
    """
    return torch.where(x >= 0, -x, x)


def relu(input: Tensor) -> Tensor:
    r"""Rectified linear unit, elementwise: :math:`\mathrm{relu}(x) = \max(x, 0)`.

    Derivative :math:`\mathbb{1}[x > 0]` (PyTorch takes 0 at :math:`x = 0`). Shape:
    any; the output has the shape of ``input``.
    """
    _check_tensor(input, "relu")
    # x <= 0 → 0, else x. Written this way round so NaN stays NaN, as in torch.relu.
    return torch.where(input <= 0, torch.zeros_like(input), input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    r"""Leaky ReLU: :math:`x` for :math:`x > 0`, :math:`\alpha x` otherwise (:math:`\alpha` = ``negative_slope``).

    Derivative 1 for :math:`x > 0` and :math:`\alpha` for :math:`x \le 0`.
    """
    _check_tensor(input, "leaky_relu")
    return torch.where(input > 0, input, input * negative_slope)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    r"""Exponential linear unit: :math:`x` for :math:`x > 0`, :math:`\alpha (e^x - 1)` otherwise.

    Derivative 1 for :math:`x > 0`, :math:`\alpha e^x` for :math:`x \le 0`. The
    exponential only sees :math:`\min(x, 0)`, so a large positive :math:`x` cannot
    overflow in the discarded branch; ``expm1`` keeps :math:`e^x - 1` accurate near 0.
    """
    _check_tensor(input, "elu")
    negative_part = alpha * torch.expm1(torch.clamp(input, max=0.0))
    return torch.where(input > 0, input, negative_part)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    r"""Gaussian error linear unit: :math:`x \, \Phi(x)`, with :math:`\Phi` the standard normal CDF.

    ``approximate="none"`` (exact):

    .. math:: \mathrm{gelu}(x) = \tfrac{x}{2}\bigl(1 + \operatorname{erf}(x / \sqrt{2})\bigr)

    ``approximate="tanh"``:

    .. math::
        \mathrm{gelu}(x) \approx \tfrac{x}{2}\Bigl(1 + \tanh\bigl(\sqrt{2/\pi}\,
        (x + 0.044715\, x^3)\bigr)\Bigr)
    """
    _check_tensor(input, "gelu")
    if approximate == "none":
        return 0.5 * input * (1.0 + torch.erf(input / _SQRT_2))
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (input + 0.044715 * input**3)
        return 0.5 * input * (1.0 + tanh(inner))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def sigmoid(input: Tensor) -> Tensor:
    r"""Logistic sigmoid: :math:`\sigma(x) = \dfrac{1}{1 + e^{-x}}`, with :math:`\sigma' = \sigma (1 - \sigma)`.

    Stable form with :math:`z = e^{-|x|} \in (0, 1]`, which never overflows:

    .. math::
        \sigma(x) = \begin{cases} \dfrac{1}{1 + z} & x \ge 0 \\[4pt]
        \dfrac{z}{1 + z} & x < 0 \end{cases}

    (the second line is :math:`e^{x} / (1 + e^{x})`, the same function).
    """
    _check_tensor(input, "sigmoid")
    z = torch.exp(_nonpositive_abs(input))  # e^{-|x|}, in (0, 1]
    return torch.where(input >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def tanh(input: Tensor) -> Tensor:
    r"""Hyperbolic tangent: :math:`\tanh(x) = \dfrac{e^{x} - e^{-x}}{e^{x} + e^{-x}}`, with :math:`\tanh' = 1 - \tanh^2`.

    Stable and accurate form: with :math:`u = e^{-2|x|} - 1 \in (-1, 0]` (``expm1``,
    exact even for tiny :math:`x`),

    .. math:: \tanh(x) = \operatorname{sign}(x)\, \frac{1 - e^{-2|x|}}{1 + e^{-2|x|}}
        = \operatorname{sign}(x)\, \frac{-u}{2 + u}.
    """
    _check_tensor(input, "tanh")
    u = torch.expm1(2.0 * _nonpositive_abs(input))  # e^{-2|x|} - 1, in (-1, 0]
    magnitude = -u / (2.0 + u)  # tanh(|x|)
    return torch.where(input >= 0, magnitude, -magnitude)  # same side at 0 as above


def _check_dim(input: Tensor, dim: int, fn: str) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{fn}: dim must be an int, got {dim!r}")
    ndim = max(input.dim(), 1)
    if not -ndim <= dim < ndim:
        raise IndexError(
            f"{fn}: dim={dim} is out of range for an input with {input.dim()} dimensions "
            f"(shape {tuple(input.shape)}); expected -{ndim} <= dim < {ndim}"
        )


def log_softmax(input: Tensor, dim: int) -> Tensor:
    r"""Log of the softmax along ``dim``, by the log-sum-exp trick.

    .. math::
        \log \operatorname{softmax}(x)_i = x_i - \log \sum_j e^{x_j}
        = (x_i - m) - \log \sum_j e^{x_j - m}, \qquad m = \max_j x_j .

    Subtracting the maximum changes nothing mathematically (it cancels) but keeps every
    exponent :math:`\le 0`: the largest term is :math:`e^0 = 1`, so the sum lies in
    :math:`[1, n]` and its log is finite. Gradient:
    :math:`\partial\, \log p_i / \partial x_j = \delta_{ij} - p_j`.
    Shape: any; the output has the shape of ``input``.
    """
    _check_tensor(input, "log_softmax")
    _check_dim(input, dim, "log_softmax")
    # m carries no gradient: the result does not depend on it (shift invariance).
    m = torch.amax(input, dim=dim, keepdim=True).detach()  # size 1 along dim
    shifted = input - m
    return shifted - torch.log(torch.sum(torch.exp(shifted), dim=dim, keepdim=True))


def softmax(input: Tensor, dim: int) -> Tensor:
    r"""Softmax along ``dim``: :math:`\operatorname{softmax}(x)_i = e^{x_i} / \sum_j e^{x_j}`.

    Computed as :math:`e^{x_i - m} / \sum_j e^{x_j - m}` with :math:`m = \max_j x_j`,
    so no exponential overflows. Gradient (Jacobian):
    :math:`\partial p_i / \partial x_j = p_i (\delta_{ij} - p_j)`.
    """
    _check_tensor(input, "softmax")
    _check_dim(input, dim, "softmax")
    m = torch.amax(input, dim=dim, keepdim=True).detach()  # size 1 along dim
    e = torch.exp(input - m)  # every entry in (0, 1]
    return e / torch.sum(e, dim=dim, keepdim=True)
