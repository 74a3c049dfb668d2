r"""Optimizer update rules in NumPy: SGD (momentum, Nesterov), AdaGrad, RMSprop, Adam, AdamW.

The same equations as :mod:`dlkit.optim` and ``torch.optim`` (see their docstrings for the
derivations), written on plain arrays for the from-scratch lessons::

    params = [W1, b1, W2, b2]  # float arrays, updated in place
    optimizer = Adam(params, lr=1e-3)
    for batch in batches:
        grads = compute_gradients(params, batch)  # same shapes, same order
        optimizer.step(grads)

A ``None`` gradient leaves its parameter (and its state) untouched, as in PyTorch. Each
parameter counts its own steps :math:`t`, used by AdaGrad's decay and Adam's bias
correction. With :class:`dlkit.scratch.Tensor` parameters pass ``[p.data for p in ...]`` and
``[p.grad for p in ...]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "RMSprop", "ScratchOptimizer"]


def _check(
    name: str, value: float, low: float, high: float = math.inf, *, open_low: bool = False
) -> None:
    """``value`` must lie in [low, high) (or (low, high) with ``open_low``)."""
    ok = (value > low if open_low else value >= low) and value < high
    if not ok:  # also False for NaN
        bracket = "(" if open_low else "["
        raise ValueError(f"Invalid {name}: {value}; expected a value in {bracket}{low}, {high})")


class ScratchOptimizer:
    """Base class: holds the parameter arrays, one state dict per array, and checks gradients.

    Subclasses implement :meth:`update`, the rule for one array.
    """

    def __init__(self, params: Sequence[np.ndarray], **hyperparameters: Any) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("got an empty list of parameters")
        for i, p in enumerate(self.params):
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(
                    f"params[{i}] must be a floating-point numpy array (it is updated in place), "
                    f"got {type(p).__name__} {getattr(p, 'dtype', '')}"
                )
        self.hyperparameters = hyperparameters
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def step(self, grads: Sequence[np.ndarray | None]) -> None:
        """Update every parameter in place from its gradient (same order and shapes)."""
        if len(grads) != len(self.params):
            raise ValueError(
                f"expected {len(self.params)} gradients (one per parameter), got {len(grads)}"
            )
        for i, (param, grad) in enumerate(zip(self.params, grads, strict=True)):
            if grad is None:
                continue
            grad = np.asarray(grad)
            if grad.shape != param.shape:
                raise ValueError(
                    f"grads[{i}] has shape {grad.shape}, expected {param.shape} like params[{i}]"
                )
            state = self.state[i]
            state["step"] = state.get("step", 0) + 1
            self.update(param, grad.astype(param.dtype, copy=False), state)

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError


class SGD(ScratchOptimizer):
    r"""SGD with momentum :math:`\mu`, dampening :math:`\tau`, weight decay :math:`\lambda`:
    :math:`g \leftarrow g + \lambda\theta`; :math:`b_1 = g_1`, :math:`b_t = \mu b_{t-1} +
    (1-\tau) g_t`; :math:`d = g + \mu b` (Nesterov) or :math:`b`; :math:`\theta \leftarrow
    \theta - \eta d`."""

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        _check("learning rate lr", lr, 0.0)
        _check("momentum", momentum, 0.0)
        if not 0.0 <= dampening <= 1.0:
            raise ValueError(f"Invalid dampening: {dampening}; expected a value in [0, 1]")
        _check("weight_decay", weight_decay, 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        h = self.hyperparameters
        if h["weight_decay"] != 0:
            grad = grad + h["weight_decay"] * param  # g + λθ
        if h["momentum"] != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()  # b_1 = g_1 (no dampening)
            else:
                buf = state["momentum_buffer"]
                buf *= h["momentum"]
                buf += (1 - h["dampening"]) * grad  # b_t = μ b_{t-1} + (1 - τ) g_t
            buf = state["momentum_buffer"]
            grad = grad + h["momentum"] * buf if h["nesterov"] else buf
        param -= h["lr"] * grad  # θ ← θ - η d


class Adagrad(ScratchOptimizer):
    r"""AdaGrad: :math:`\eta_t = \eta / (1 + (t-1)\kappa)`, :math:`s_t = s_{t-1} + g_t^2`,
    :math:`\theta \leftarrow \theta - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)`."""

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        _check("learning rate lr", lr, 0.0)
        _check("lr_decay", lr_decay, 0.0)
        _check("weight_decay", weight_decay, 0.0)
        _check("initial_accumulator_value", initial_accumulator_value, 0.0)
        _check("eps", eps, 0.0, open_low=True)
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        h = self.hyperparameters
        if "sum" not in state:
            state["sum"] = np.full_like(param, h["initial_accumulator_value"])
        if h["weight_decay"] != 0:
            grad = grad + h["weight_decay"] * param
        lr_t = h["lr"] / (1 + (state["step"] - 1) * h["lr_decay"])  # η_t
        state["sum"] += grad * grad  # s_t = s_{t-1} + g²
        param -= lr_t * grad / (np.sqrt(state["sum"]) + h["eps"])  # ε outside the root


class RMSprop(ScratchOptimizer):
    r"""RMSprop: :math:`v_t = \alpha v_{t-1} + (1-\alpha) g_t^2`; centered:
    :math:`\bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t` and :math:`r = \sqrt{v_t - \bar
    g_t^2} + \epsilon`, else :math:`r = \sqrt{v_t} + \epsilon`; then :math:`b = \mu b + g/r`,
    :math:`\theta \leftarrow \theta - \eta b` (or :math:`\theta - \eta g / r` without momentum)."""

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        _check("learning rate lr", lr, 0.0)
        _check("alpha", alpha, 0.0, 1.0)
        _check("eps", eps, 0.0, open_low=True)
        _check("weight_decay", weight_decay, 0.0)
        _check("momentum", momentum, 0.0)
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        h = self.hyperparameters
        alpha = h["alpha"]
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(param)
            state["grad_avg"] = np.zeros_like(param)  # used when centered
            state["momentum_buffer"] = np.zeros_like(param)  # used when momentum > 0
        if h["weight_decay"] != 0:
            grad = grad + h["weight_decay"] * param
        v = state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * grad * grad
        if h["centered"]:
            mean = state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * grad
            # second moment minus squared mean; >= 0 exactly, but rounding can push it below
            denom = np.sqrt(np.maximum(v - mean * mean, 0.0)) + h["eps"]
        else:
            denom = np.sqrt(v) + h["eps"]
        if h["momentum"] > 0:
            buf = state["momentum_buffer"] = h["momentum"] * state["momentum_buffer"] + grad / denom
            param -= h["lr"] * buf
        else:
            param -= h["lr"] * grad / denom


class Adam(ScratchOptimizer):
    r"""Adam: :math:`m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t`, :math:`v_t = \beta_2 v_{t-1} +
    (1-\beta_2) g_t^2` (AMSGrad: :math:`v_t \to \max_{s\le t} v_s`),
    :math:`\theta \leftarrow \theta - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)` with
    :math:`\hat m_t = m_t / (1-\beta_1^t)`, :math:`\hat v_t = v_t / (1-\beta_2^t)`. Weight decay
    is an L2 term :math:`\lambda\theta` in the gradient, or, with ``decoupled_weight_decay``
    (AdamW), :math:`\theta \leftarrow (1 - \eta\lambda)\theta` before the step."""

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        _check("learning rate lr", lr, 0.0)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check("betas[0]", betas[0], 0.0, 1.0)
        _check("betas[1]", betas[1], 0.0, 1.0)
        _check("eps", eps, 0.0, open_low=True)
        _check("weight_decay", weight_decay, 0.0)
        super().__init__(
            params,
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
        )

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        h = self.hyperparameters
        (beta1, beta2), t = h["betas"], state["step"]
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if h["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        if h["weight_decay"] != 0:
            if h["decoupled_weight_decay"]:
                param *= 1 - h["lr"] * h["weight_decay"]  # θ ← (1 - ηλ) θ
            else:
                grad = grad + h["weight_decay"] * param  # g + λθ
        m = state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * grad
        v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
        if h["amsgrad"]:
            v = state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        param -= h["lr"] * m_hat / (np.sqrt(v_hat) + h["eps"])  # ε outside the root of v̂


class AdamW(Adam):
    """:class:`Adam` with decoupled weight decay, default ``weight_decay=1e-2``."""

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)
