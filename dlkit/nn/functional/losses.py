r"""Loss functions with the names and semantics of :mod:`torch.nn.functional`, written to teach.

Every loss is a negative log-likelihood in disguise (chapter 03_losses derives each one):
a Gaussian gives the squared error, a Laplace the absolute error, a Bernoulli the
binary cross-entropy and a categorical distribution the cross-entropy (in
:mod:`dlkit.nn.functional.classification`, with ``nll_loss``). The code uses only
primitive tensor operations; the numerically delicate steps (the clamped logs of BCE,
the softplus form of BCE with logits, ``0 log 0 = 0`` in KL) are spelled out.

Reductions: ``"none"`` returns the loss per element (per example for the
classification losses), ``"sum"`` adds them up and ``"mean"`` divides by their number
(``cross_entropy`` / ``nll_loss`` with class weights or ``ignore_index`` divide by the
summed weights of the targets that count, exactly as PyTorch does).

One deliberate difference: where PyTorch broadcasts a target whose shape differs from
the input's (with a warning) for the regression and binary losses, these raise a
``ValueError``; the size mismatch is almost always a bug.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlkit.nn.functional._checks import (
    check_reduction,
    check_same_shape,
    reduce,
)

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
]

_BCE_LOG_FLOOR = -100.0  # PyTorch clamps log(p) and log(1 - p) at -100 in binary_cross_entropy
# ... and p (1 - p) at 1e-12 in its gradient, a C++ float constant: 1e-12 rounded to float32
_BCE_GRAD_EPS = 9.999999960041972e-13


def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Mean squared error :math:`\ell_i = (x_i - y_i)^2`, with :math:`\partial \ell_i / \partial x_i = 2 (x_i - y_i)`.

    The negative log-likelihood of :math:`y \sim \mathcal{N}(x, \sigma^2)` up to the
    scale :math:`1 / (2\sigma^2)` and a constant. Shapes: ``input`` and ``target`` any
    equal shape; ``"none"`` returns that shape.
    """
    check_same_shape(input, target, "mse_loss")
    return reduce((input - target) ** 2, reduction, "mse_loss")


def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Mean absolute error :math:`\ell_i = |x_i - y_i|`, with gradient :math:`\operatorname{sign}(x_i - y_i)` (0 at 0).

    The negative log-likelihood of a Laplace distribution :math:`p(y) \propto e^{-|y - x| / b}`
    up to scale and constant; its minimiser over a constant prediction is the median.
    """
    check_same_shape(input, target, "l1_loss")
    return reduce(torch.abs(input - target), reduction, "l1_loss")


def huber_loss(
    input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0
) -> Tensor:
    r"""Huber loss: quadratic near 0, linear in the tails, so outliers pull with bounded force.

    With :math:`d = x - y`:

    .. math::
        \ell(d) = \begin{cases} \tfrac12 d^2 & |d| < \delta \\
        \delta \,(|d| - \tfrac12 \delta) & \text{otherwise} \end{cases}
        \qquad
        \frac{\partial \ell}{\partial x} = \operatorname{clamp}(d, -\delta, \delta).
    """
    check_same_shape(input, target, "huber_loss")
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    diff = input - target
    abs_diff = torch.abs(diff)
    quadratic = 0.5 * diff**2
    linear = delta * (abs_diff - 0.5 * delta)
    return reduce(torch.where(abs_diff < delta, quadratic, linear), reduction, "huber_loss")


class _BinaryCrossEntropy(torch.autograd.Function):
    r"""BCE on probabilities with PyTorch's exact guards, forward and backward.

    Forward: :math:`-w\,[\,y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)\,]`,
    finite even at :math:`p \in \{0, 1\}`. Backward:
    :math:`\partial \ell / \partial p = w\,(p - y) / \max(p (1 - p), 10^{-12})` and
    :math:`\partial \ell / \partial y = w\,(\log(1 - p) - \log p)`. Differentiating the
    clamped forward instead would give ``NaN`` at :math:`p \in \{0, 1\}`
    (:math:`0 \cdot \infty`), which is why this step has a hand-written gradient.
    """

    @staticmethod
    def forward(ctx, p: Tensor, y: Tensor, w: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(p, y, w)
        log_p = torch.clamp(torch.log(p), min=_BCE_LOG_FLOOR)
        log_1mp = torch.clamp(torch.log1p(-p), min=_BCE_LOG_FLOOR)
        return -w * (y * log_p + (1 - y) * log_1mp)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        p, y, w = ctx.saved_tensors
        grad_p = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_p = grad * w * (p - y) / torch.clamp(p * (1 - p), min=_BCE_GRAD_EPS)
        if ctx.needs_input_grad[1]:
            grad_y = grad * w * (torch.log1p(-p) - torch.log(p))
        return grad_p, grad_y, None


def binary_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, *, reduction: str = "mean"
) -> Tensor:
    r"""Binary cross-entropy on probabilities :math:`p \in [0, 1]` (the Bernoulli negative log-likelihood).

    .. math::
        \ell_i = -w_i \bigl[\, y_i \log p_i + (1 - y_i) \log(1 - p_i) \,\bigr],
        \qquad \frac{\partial \ell_i}{\partial p_i} = w_i \frac{p_i - y_i}{p_i (1 - p_i)}

    As in PyTorch each log is clamped at :math:`-100`, so a confident wrong answer costs
    100, not ``inf``. Prefer :func:`binary_cross_entropy_with_logits`: it never forms
    :math:`p` and stays exact where :math:`p` would round to 0 or 1.

    Args:
        input: probabilities, any shape, every element in :math:`[0, 1]`.
        target: same shape, values in :math:`[0, 1]` (soft labels allowed).
        weight: rescales each element's loss; broadcastable to ``input``.
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"``.
    """
    check_same_shape(input, target, "binary_cross_entropy")
    check_reduction(reduction, "binary_cross_entropy")
    outside = (input < 0) | (input > 1) | torch.isnan(input)
    if bool(outside.any()):
        bad = input.detach()[outside].flatten()[0].item()
        raise ValueError(
            f"binary_cross_entropy: input must hold probabilities in [0, 1], found {bad}; "
            "pass logits to binary_cross_entropy_with_logits instead"
        )
    w = torch.ones((), dtype=input.dtype) if weight is None else weight
    w = torch.broadcast_to(w, input.shape)
    return reduce(_BinaryCrossEntropy.apply(input, target, w), reduction, "binary_cross_entropy")


def _softplus(z: Tensor) -> Tensor:
    r"""Stable :math:`\operatorname{softplus}(z) = \log(1 + e^z) = \max(z, 0) + \log(1 + e^{-|z|})`.

    The exponent :math:`-|z| \le 0` never overflows; derivative :math:`\sigma(z)`,
    exact at :math:`z = 0` too (the ``where`` picks a side instead of ``abs``'s 0).
    """
    positive = z > 0
    return torch.where(positive, z, torch.zeros_like(z)) + torch.log1p(
        torch.exp(torch.where(positive, -z, z))
    )


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    r"""Binary cross-entropy on logits :math:`x` (with :math:`p = \sigma(x)`), computed stably.

    With :math:`-\log \sigma(x) = \operatorname{softplus}(-x)` and
    :math:`-\log(1 - \sigma(x)) = x + \operatorname{softplus}(-x)`, the loss with
    positive-class weight :math:`c` (``pos_weight``) becomes

    .. math::
        \ell_i = w_i \bigl[\, (1 - y_i)\, x_i + (1 + (c - 1)\, y_i)\,
        \operatorname{softplus}(-x_i) \,\bigr],
        \qquad \frac{\partial \ell_i}{\partial x_i} = w_i \bigl[(1 + (c - 1) y_i)\,\sigma(x_i) - c\, y_i\bigr],

    finite for any logit: :math:`x = \pm 10^4` gives a loss of about :math:`10^4`, not ``inf``.

    Args:
        input: logits, any shape, e.g. (N, K) for K independent labels.
        target: same shape, values in :math:`[0, 1]`.
        weight: rescales each element's loss; broadcastable to ``input``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        pos_weight: weight :math:`c` of the positive term, broadcastable to ``input``
            along the last axes, e.g. shape (K,) for (N, K) logits.
    """
    fn = "binary_cross_entropy_with_logits"
    check_same_shape(input, target, fn)
    check_reduction(reduction, fn)
    log_weight = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * target
    loss = (1.0 - target) * input + log_weight * _softplus(-input)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction, fn)


def kl_div(
    input: Tensor, target: Tensor, *, reduction: str = "mean", log_target: bool = False
) -> Tensor:
    r"""Kullback–Leibler divergence :math:`D_{\mathrm{KL}}(q \,\|\, p)` with ``input`` :math:`= \log p`.

    Pointwise, with :math:`q` = ``target`` (or :math:`\log q` when ``log_target=True``):

    .. math::
        \ell_i = q_i (\log q_i - \log p_i), \qquad 0 \log 0 = 0, \qquad
        \frac{\partial \ell_i}{\partial \log p_i} = -q_i .

    Summed over classes this is :math:`D_{\mathrm{KL}}(q\|p) = H(q, p) - H(q) \ge 0`.
    Reductions: ``"batchmean"`` divides the sum by the batch size ``input.shape[0]`` (the
    true mean KL per example); ``"mean"`` divides by the number of *elements*
    :math:`N \cdot C`, i.e. :math:`C` times smaller, as in PyTorch (which warns about it).

    Args:
        input: log-probabilities, any shape, e.g. (N, C).
        target: probabilities (or log-probabilities), same shape.
        reduction: ``"mean"``, ``"batchmean"``, ``"sum"`` or ``"none"``.
        log_target: whether ``target`` holds :math:`\log q`.
    """
    fn = "kl_div"
    check_same_shape(input, target, fn)
    check_reduction(reduction, fn, ("mean", "batchmean", "sum", "none"))
    if log_target:
        pointwise = torch.exp(target) * (target - input)
    else:
        pointwise = torch.xlogy(target, target) - target * input  # xlogy: q log q, 0 at q = 0
    if reduction == "batchmean":
        total = pointwise.sum()
        return total / input.shape[0] if input.dim() > 0 else total
    return reduce(pointwise, reduction, fn)
