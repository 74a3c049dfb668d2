r"""Adam and AdamW: bias-corrected moving averages of the gradient and its square.

``torch.optim.Optimizer`` subclasses with the constructors of ``torch.optim.Adam`` and
``torch.optim.AdamW`` and the same trajectories; state keys ``"step"``, ``"exp_avg"``,
``"exp_avg_sq"`` and ``"max_exp_avg_sq"`` (AMSGrad), as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from dlkit.optim.base import CheckedOptimizer, evaluate_closure

__all__ = ["Adam", "AdamW"]


class Adam(CheckedOptimizer):
    r"""Adam (Kingma and Ba, 2015), with optional AMSGrad and L2 or decoupled weight decay.

    For each parameter :math:`\theta` with gradient :math:`g_t`, learning rate :math:`\eta`,
    :math:`(\beta_1, \beta_2)`, :math:`\epsilon` and weight decay :math:`\lambda`, with
    :math:`m_0 = v_0 = \hat v^{\max}_0 = 0`, step :math:`t = 1, 2, \dots` does (element-wise)

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1}
            \qquad \text{(L2, Adam; if } \lambda \ne 0)\\
        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1}
            \qquad \text{(decoupled, AdamW; instead of the line above)}\\
        m_t &= \beta_1\, m_{t-1} + (1 - \beta_1)\, g_t\\
        v_t &= \beta_2\, v_{t-1} + (1 - \beta_2)\, g_t^2\\
        \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad
        \hat v_t = \frac{v_t}{1 - \beta_2^t}
            \qquad (\text{AMSGrad: } v_t \to \max_{s \le t} v_s \text{ in } \hat v_t)\\
        \theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    **Why the bias correction.** Unrolling :math:`m_t = (1-\beta_1)\sum_{s=1}^{t}
    \beta_1^{t-s} g_s`; if the :math:`g_s` share a mean :math:`\bar g`, then
    :math:`\mathbb{E}[m_t] = \bar g\,(1-\beta_1)\sum_{s=1}^{t}\beta_1^{t-s}
    = (1-\beta_1^t)\,\bar g`, so dividing by :math:`1-\beta_1^t` removes the bias towards the
    zero initialisation (likewise for :math:`v_t`). The correction uses the step count
    :math:`t` *of this parameter*, starting at 1.

    **Where** :math:`\epsilon` **goes.** As in PyTorch, :math:`\epsilon` is added to
    :math:`\sqrt{\hat v_t}`, the *bias-corrected* root, outside the square root. (The
    paper's "efficient" form adds it to :math:`\sqrt{v_t}` instead, which is a different
    :math:`\epsilon`.) AMSGrad keeps the running maximum of :math:`v_t` (uncorrected) and
    uses it in place of :math:`v_t`.

    Args:
        params: parameters, or dicts defining parameter groups.
        lr: :math:`\eta \ge 0`.
        betas: :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
        eps: :math:`\epsilon > 0`.
        weight_decay: :math:`\lambda \ge 0`.
        amsgrad: use the running maximum of :math:`v_t` (Reddi, Kale and Kumar, 2018).
        maximize: ascend the objective instead of descending it.
        decoupled_weight_decay: shrink :math:`\theta` directly (AdamW) instead of adding
            :math:`\lambda\theta` to the gradient.

    Raises:
        ValueError: for a negative ``lr`` or ``weight_decay``, ``eps <= 0`` or a beta
            outside [0, 1).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = evaluate_closure(closure)

        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise RuntimeError(f"dlkit.optim.{type(self).__name__}: dense gradients only")
                if group["maximize"]:
                    grad = -grad
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                    if amsgrad:
                        state["max_exp_avg_sq"] = torch.zeros_like(param)
                state["step"] = t = int(state["step"]) + 1  # int(): PyTorch stores a tensor

                if weight_decay != 0:
                    if group["decoupled_weight_decay"]:
                        param.mul_(1 - lr * weight_decay)  # θ ← (1 - ηλ) θ
                    else:
                        grad = grad.add(param, alpha=weight_decay)  # g + λθ
                # m_t = β1 m + (1 - β1) g, computed as m + (1 - β1)(g - m): one pass, as PyTorch
                exp_avg = state["exp_avg"].lerp_(grad, 1 - beta1)
                second = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if amsgrad:  # v_t^max = max(v_{t-1}^max, v_t)
                    second = torch.maximum(
                        state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"]
                    )
                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                denom = second.sqrt().div_(math.sqrt(bias_correction2)).add_(eps)  # √v̂_t + ε
                param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)  # θ -= η m̂ / (…)
        return loss


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov and Hutter, 2019).

    The update of :class:`Adam` with the weight-decay line replaced by
    :math:`\theta_{t-1} \leftarrow (1 - \eta\lambda)\,\theta_{t-1}`, applied before the Adam
    step. With an L2 penalty (plain Adam's ``weight_decay``), :math:`\lambda\theta` is divided
    by :math:`\sqrt{\hat v_t} + \epsilon` like the rest of the gradient, so weights with large
    gradients are barely regularised; decoupling shrinks every weight by the same factor.
    The decay is scaled by the current :math:`\eta` (as in PyTorch), so a schedule scales it too.
    Default ``weight_decay=1e-2``, as ``torch.optim.AdamW``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )
