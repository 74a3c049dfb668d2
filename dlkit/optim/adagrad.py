r"""AdaGrad: per-coordinate learning rates from the running sum of squared gradients.

A ``torch.optim.Optimizer`` with the constructor of ``torch.optim.Adagrad`` and the same
trajectory; state keys ``"step"`` and ``"sum"``, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from dlkit.optim.base import CheckedOptimizer, evaluate_closure

__all__ = ["Adagrad"]


class Adagrad(CheckedOptimizer):
    r"""AdaGrad (Duchi, Hazan and Singer, 2011), diagonal version.

    For each parameter :math:`\theta` with gradient :math:`g_t`, learning rate :math:`\eta`,
    learning-rate decay :math:`\kappa`, weight decay :math:`\lambda`, initial accumulator
    :math:`s_0` and :math:`\epsilon`, step :math:`t = 1, 2, \dots` does (element-wise)

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \qquad (\text{if } \lambda \ne 0)\\
        \eta_t &= \frac{\eta}{1 + (t - 1)\,\kappa}\\
        s_t &= s_{t-1} + g_t^2\\
        \theta_t &= \theta_{t-1} - \eta_t\, \frac{g_t}{\sqrt{s_t} + \epsilon}

    :math:`\epsilon` is added *outside* the square root, as in PyTorch. Every coordinate's
    step size only shrinks (:math:`s_t` never decreases), which suits sparse features and is
    why AdaGrad stalls on long non-convex runs, the problem RMSprop fixes.

    Args:
        params: parameters, or dicts defining parameter groups.
        lr: :math:`\eta \ge 0`.
        lr_decay: :math:`\kappa \ge 0`.
        weight_decay: :math:`\lambda \ge 0`.
        initial_accumulator_value: :math:`s_0 \ge 0`, the starting value of every :math:`s`.
        eps: :math:`\epsilon > 0`.
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: for a negative ``lr``, ``lr_decay``, ``weight_decay`` or
            ``initial_accumulator_value``, or ``eps <= 0``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = evaluate_closure(closure)

        for group in self.param_groups:
            weight_decay, eps = group["weight_decay"], group["eps"]
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise RuntimeError("dlkit.optim.Adagrad supports dense gradients only")
                if group["maximize"]:
                    grad = -grad
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["sum"] = torch.full_like(param, group["initial_accumulator_value"])
                state["step"] = t = int(state["step"]) + 1  # int(): PyTorch stores a tensor

                if weight_decay != 0:
                    grad = grad.add(param, alpha=weight_decay)  # g + λθ
                lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])  # η_t
                sum_sq = state["sum"].addcmul_(grad, grad)  # s_t = s_{t-1} + g²
                denom = sum_sq.sqrt().add_(eps)  # √s_t + ε
                param.addcdiv_(grad, denom, value=-lr_t)  # θ -= η_t g / (√s_t + ε)
        return loss
