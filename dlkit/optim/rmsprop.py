r"""RMSprop: AdaGrad with an exponential moving average instead of a sum, optionally
centered and with momentum.

A ``torch.optim.Optimizer`` with the constructor of ``torch.optim.RMSprop`` and the same
trajectory; state keys ``"step"``, ``"square_avg"``, ``"grad_avg"`` (centered) and
``"momentum_buffer"`` (momentum), as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from dlkit.optim.base import CheckedOptimizer, evaluate_closure

__all__ = ["RMSprop"]


class RMSprop(CheckedOptimizer):
    r"""RMSprop (Hinton, Lecture 6e, 2012), with Graves' (2013) centered variant.

    For each parameter :math:`\theta` with gradient :math:`g_t`, learning rate :math:`\eta`,
    smoothing constant :math:`\alpha`, weight decay :math:`\lambda`, momentum :math:`\mu` and
    :math:`\epsilon`, with :math:`v_0 = \bar g_0 = b_0 = 0`, step :math:`t` does (element-wise)

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \qquad (\text{if } \lambda \ne 0)\\
        v_t &= \alpha\, v_{t-1} + (1 - \alpha)\, g_t^2\\
        \bar g_t &= \alpha\, \bar g_{t-1} + (1 - \alpha)\, g_t
            \qquad (\text{centered only})\\
        r_t &= \begin{cases} \sqrt{v_t - \bar g_t^{\,2}} + \epsilon & \text{centered}\\
                              \sqrt{v_t} + \epsilon & \text{otherwise} \end{cases}\\
        b_t &= \mu\, b_{t-1} + g_t / r_t,\qquad
            \theta_t = \theta_{t-1} - \eta\, b_t \qquad (\mu > 0)\\
        \theta_t &= \theta_{t-1} - \eta\, g_t / r_t \qquad (\mu = 0)

    Exactly as PyTorch: :math:`\epsilon` is added *outside* the square root (not
    :math:`\sqrt{v_t + \epsilon}`); there is *no* bias correction, so with
    :math:`v_0 = 0` the first steps are large (:math:`r_1 \approx \sqrt{1-\alpha}\,|g_1|`); the
    centered variant divides by an estimate of the gradient's standard deviation,
    :math:`v_t - \bar g_t^2`, the *second moment minus the squared mean*; and momentum
    accumulates the already-normalised step :math:`g_t / r_t`.

    One deliberate difference from PyTorch: :math:`v_t - \bar g_t^2 \ge 0` in exact arithmetic
    (Cauchy–Schwarz), but when the gradient barely varies (a constant gradient, or
    ``alpha=0``) rounding makes it slightly negative in some coordinates, and PyTorch's square root then gives NaN. Here it is clamped at 0
    first, which changes nothing whenever PyTorch's result is a number.

    Args:
        params: parameters, or dicts defining parameter groups.
        lr: :math:`\eta \ge 0`.
        alpha: :math:`\alpha \in [0, 1)`, the decay of the moving averages.
        eps: :math:`\epsilon > 0`.
        weight_decay: :math:`\lambda \ge 0`.
        momentum: :math:`\mu \ge 0`.
        centered: normalise by the estimated variance instead of the second moment.
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: for a negative ``lr``, ``weight_decay`` or ``momentum``, ``eps <= 0``,
            or ``alpha`` outside [0, 1).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = evaluate_closure(closure)

        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            weight_decay, mu, centered = group["weight_decay"], group["momentum"], group["centered"]
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise RuntimeError("dlkit.optim.RMSprop supports dense gradients only")
                if group["maximize"]:
                    grad = -grad
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = torch.zeros_like(param)
                    if mu > 0:
                        state["momentum_buffer"] = torch.zeros_like(param)
                    if centered:
                        state["grad_avg"] = torch.zeros_like(param)
                state["step"] = int(state["step"]) + 1  # int(): PyTorch stores a tensor

                if weight_decay != 0:
                    grad = grad.add(param, alpha=weight_decay)  # g + λθ
                square_avg = state["square_avg"].mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                if centered:  # r = √(v - ḡ²) + ε
                    grad_avg = state["grad_avg"].lerp_(grad, 1 - alpha)  # ḡ = α ḡ + (1 - α) g
                    variance = square_avg.addcmul(grad_avg, grad_avg, value=-1)  # v - ḡ²
                    denom = variance.clamp_min_(0).sqrt_().add_(eps)  # rounding can make v - ḡ² < 0
                else:  # r = √v + ε
                    denom = square_avg.sqrt().add_(eps)
                if mu > 0:  # b = μ b + g / r;  θ -= η b
                    buf = state["momentum_buffer"].mul_(mu).addcdiv_(grad, denom)
                    param.add_(buf, alpha=-lr)
                else:  # θ -= η g / r
                    param.addcdiv_(grad, denom, value=-lr)
        return loss
