r"""Gradient flow through a deep MLP: per-layer gradient norms for an activation and an init.

The backward pass multiplies the gradient by one Jacobian per layer. For
:math:`h_l = \phi(a_l)`, :math:`a_l = W_l h_{l-1} + b_l` (column vectors),

.. math::

    \frac{\partial L}{\partial h_{l-1}} = W_l^\top \big(\phi'(a_l) \odot
    \frac{\partial L}{\partial h_l}\big), \qquad
    \frac{\partial L}{\partial W_l} = \big(\phi'(a_l) \odot
    \frac{\partial L}{\partial h_l}\big)\, h_{l-1}^\top .

With weights :math:`W_{ij} \sim \mathcal N(0, \sigma^2)` and width :math:`n` (fan-in equal
to fan-out), each step scales the gradient's variance by about
:math:`n \sigma^2\, \mathbb E[\phi'(a)^2]`. Keeping that factor at 1 gives the classic
initialisations:

* **Xavier / Glorot** (tanh, or any :math:`\phi` with :math:`\phi(0) = 0`,
  :math:`\phi'(0) = 1`): forward needs :math:`n_\text{in}\sigma^2 = 1`, backward
  :math:`n_\text{out}\sigma^2 = 1`; the compromise is
  :math:`\sigma^2 = 2 / (n_\text{in} + n_\text{out})`.
* **He / Kaiming** (ReLU): half the units are off, :math:`\mathbb E[\phi'(a)^2] = 1/2`, so
  :math:`\sigma^2 = 2 / n_\text{in}`.

Sigmoid has :math:`\phi'(a) \le 1/4`, so with Xavier-scale weights the gradient loses a
factor of about 4 (in norm) per layer; a too-small init loses much more, and only a large,
finely tuned scale (:math:`n\sigma^2 \approx 100` for width 64) keeps it. :func:`gradient_norms`
measures all of this.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlkit.nn import functional as F

__all__ = [
    "ACTIVATIONS",
    "INIT_SCHEMES",
    "DeepMLPConfig",
    "build_deep_mlp",
    "gradient_norms",
    "init_std",
    "layer_gradient_norms",
]

# dlkit's own activations (same names and defaults as torch.nn.functional, built from primitives).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": F.elu,  # alpha 1
    "gelu": F.gelu,  # exact, with erf
    "identity": lambda x: x,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
}
INIT_SCHEMES = ("he", "small", "xavier")


def init_std(scheme: str | float, fan_in: int, fan_out: int) -> float:
    r"""Standard deviation of :math:`\mathcal N(0, \sigma^2)` weights for an init scheme.

    ``"xavier"``: :math:`\sqrt{2 / (n_\text{in} + n_\text{out})}`; ``"he"``:
    :math:`\sqrt{2 / n_\text{in}}`; ``"small"``: ``0.01`` (the "bad" init of old
    tutorials); a number is used as the standard deviation itself.
    """
    if fan_in < 1 or fan_out < 1:
        raise ValueError(f"fan_in and fan_out must be >= 1, got {fan_in} and {fan_out}")
    if isinstance(scheme, int | float) and not isinstance(scheme, bool):
        if not scheme > 0:
            raise ValueError(f"a numeric init must be a standard deviation > 0, got {scheme}")
        return float(scheme)
    if scheme == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "he":
        return math.sqrt(2.0 / fan_in)
    if scheme == "small":
        return 0.01
    raise ValueError(f"unknown init scheme {scheme!r}; expected one of {INIT_SCHEMES} or a number")


class _Activation(nn.Module):
    """Wraps an entry of :data:`ACTIVATIONS` as a module (so the MLP is an ``nn.Sequential``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fn = ACTIVATIONS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


@dataclass(frozen=True)
class DeepMLPConfig:
    """``depth`` square ``Linear(width, width)`` layers, each followed by ``activation``."""

    depth: int = 20
    width: int = 64
    activation: str = "relu"
    init: str | float = "he"

    def __post_init__(self) -> None:
        if self.depth < 1 or self.width < 1:
            raise ValueError(f"depth and width must be >= 1, got {self.depth} and {self.width}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; expected one of {sorted(ACTIVATIONS)}"
            )
        init_std(self.init, self.width, self.width)  # validates the scheme


def build_deep_mlp(config: DeepMLPConfig, *, seed: int = 0) -> nn.Sequential:
    """Linear → activation, ``config.depth`` times; weights :math:`\\mathcal N(0, \\sigma^2)`, biases 0.

    Deterministic for a given ``seed`` (a private generator; the global RNG is untouched).
    Float64, so that tiny gradients are measured without float32 underflow.
    """
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(config.depth):
        linear = nn.Linear(config.width, config.width, dtype=torch.float64)
        std = init_std(config.init, config.width, config.width)
        with torch.no_grad():
            linear.weight.normal_(0.0, std, generator=generator)  # (out, in)
            linear.bias.zero_()
        layers += [linear, _Activation(config.activation)]
    return nn.Sequential(*layers)


def layer_gradient_norms(model: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> np.ndarray:
    r"""Frobenius norm of :math:`\partial L / \partial W_l` for every ``nn.Linear``, first to last.

    The loss is :math:`L = \frac{1}{B}\sum_{b,j} y_{bj}\, g_{bj}` with ``upstream`` :math:`g`
    shaped like the output :math:`y`: the gradient entering the top layer is :math:`g / B`
    whatever the forward activations are, so the norms show only what the layers do to it.

    Shapes: ``x`` ``(B, width)``, ``upstream`` ``(B, width_out)``; returns ``(num_linear,)``.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layers to measure")
    model.zero_grad(set_to_none=True)
    y = model(x)
    if y.shape != upstream.shape:
        raise ValueError(
            f"upstream must have the output's shape {tuple(y.shape)}, got {tuple(upstream.shape)}"
        )
    loss = (y * upstream).sum() / x.shape[0]
    loss.backward()
    return np.array([float(m.weight.grad.norm()) for m in linears])


def gradient_norms(
    activation: str = "relu",
    init: str | float = "he",
    *,
    depth: int = 20,
    width: int = 64,
    batch: int = 128,
    seed: int = 0,
) -> np.ndarray:
    """Per-layer weight-gradient norms, shape ``(depth,)``, of a fresh deep MLP.

    Inputs and the upstream gradient are standard normal, drawn from ``seed`` (as are the
    weights), so the same arguments always give the same numbers.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    config = DeepMLPConfig(depth=depth, width=width, activation=activation, init=init)
    model = build_deep_mlp(config, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, width, generator=generator, dtype=torch.float64)  # (B, width)
    upstream = torch.randn(batch, width, generator=generator, dtype=torch.float64)  # (B, width)
    return layer_gradient_norms(model, x, upstream)
