r"""Stochastic gradient descent with optional (heavy-ball or Nesterov) momentum.

A ``torch.optim.Optimizer`` with the constructor of ``torch.optim.SGD`` and the same
trajectory: parameter groups, ``closure``, ``zero_grad`` and ``state_dict()`` /
``load_state_dict()`` (state key ``"momentum_buffer"``, as in PyTorch) come from the base class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from dlkit.optim.base import CheckedOptimizer, evaluate_closure

__all__ = ["SGD"]


class SGD(CheckedOptimizer):
    r"""Stochastic gradient descent, optionally with momentum and weight decay.

    For each parameter :math:`\theta` with gradient :math:`g_t = \nabla_\theta L(\theta_{t-1})`
    (negated when ``maximize``), learning rate :math:`\eta`, weight decay :math:`\lambda`,
    momentum :math:`\mu` and dampening :math:`\tau`, step :math:`t = 1, 2, \dots` does

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \qquad
            \text{(L2 penalty } \tfrac{\lambda}{2}\lVert\theta\rVert^2\text{, if } \lambda \ne 0)\\
        b_t &= \begin{cases} g_t & t = 1 \\
                              \mu\, b_{t-1} + (1 - \tau)\, g_t & t > 1 \end{cases}
            \qquad \text{(if } \mu \ne 0)\\
        d_t &= \begin{cases} g_t + \mu\, b_t & \text{Nesterov} \\
                              b_t & \text{heavy ball} \\
                              g_t & \mu = 0 \end{cases}\\
        \theta_t &= \theta_{t-1} - \eta\, d_t

    Two details that write-ups often get wrong and that PyTorch does as above: the momentum
    buffer starts at :math:`b_1 = g_1`, *without* the :math:`(1-\tau)` dampening factor, and
    :math:`\eta` multiplies the buffer rather than being folded into it, so changing the
    learning rate mid-run (a schedule) does not rescale the velocity already accumulated.
    Nesterov's look-ahead is written in the "gradient plus momentum times buffer" form,
    which is exact for this parameterisation and needs no second gradient evaluation.

    Args:
        params: parameters, or dicts defining parameter groups (each may set its own options).
        lr: learning rate :math:`\eta \ge 0`.
        momentum: :math:`\mu \ge 0`; 0 disables the buffer.
        dampening: :math:`\tau \in [0, 1]`, the part of each new gradient left out of the buffer.
        weight_decay: :math:`\lambda \ge 0`, added to the gradient as :math:`\lambda\theta`.
        nesterov: use Nesterov momentum (needs :math:`\mu > 0` and :math:`\tau = 0`).
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: for a negative ``lr``, ``momentum`` or ``weight_decay``, a ``dampening``
            outside [0, 1], or ``nesterov`` without momentum or with dampening.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = evaluate_closure(closure)

        for group in self.param_groups:
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise RuntimeError("dlkit.optim.SGD supports dense gradients only")
                if group["maximize"]:
                    grad = -grad
                if weight_decay != 0:
                    grad = grad.add(param, alpha=weight_decay)  # g + λθ (a new tensor)
                if mu != 0:
                    state = self.state[param]
                    buf = state.get("momentum_buffer")
                    if buf is None:  # b_1 = g_1, no dampening on the first step
                        buf = state["momentum_buffer"] = grad.detach().clone()
                    else:  # b_t = μ b_{t-1} + (1 - τ) g_t
                        buf.mul_(mu).add_(grad, alpha=1 - tau)
                    grad = grad.add(buf, alpha=mu) if nesterov else buf
                param.add_(grad, alpha=-lr)  # θ_t = θ_{t-1} - η d_t
        return loss
