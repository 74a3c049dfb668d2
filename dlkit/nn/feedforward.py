r"""The position-wise feed-forward networks of a Transformer block.

Each position's vector :math:`x \in \mathbb{R}^{d}` (``d = d_model``) goes through the same
two-layer network, independently of every other position (attention is the only place
where positions mix). Two variants:

* :class:`FeedForward`, the original Transformer's MLP with a ReLU or GELU in the middle,

  .. math:: \mathrm{FFN}(x) = W_2\, \phi(W_1 x + b_1) + b_2,
     \qquad W_1 \in \mathbb{R}^{d_{ff} \times d},\ W_2 \in \mathbb{R}^{d \times d_{ff}};

* :class:`SwiGLU`, a *gated* linear unit (Shazeer, 2020, "GLU Variants Improve
  Transformer"): one projection, passed through :math:`\mathrm{silu}(z) = z\,\sigma(z)`,
  gates another elementwise,

  .. math:: \mathrm{SwiGLU}(x) = W_2 \bigl(\mathrm{silu}(W_1 x) \odot W_3 x\bigr),
     \qquad W_1, W_3 \in \mathbb{R}^{d_{ff} \times d},\ W_2 \in \mathbb{R}^{d \times d_{ff}},

  with three matrices instead of two (so a SwiGLU with :math:`d_{ff} = \tfrac23 \cdot 4d`
  has the parameters of a GELU MLP with :math:`d_{ff} = 4d`) and, as in LLaMA, no biases
  by default.

The layers are :class:`dlkit.nn.layers.Linear` (PyTorch's layout and initialization), so
the weights of ``torch.nn.TransformerEncoderLayer``'s ``linear1``/``linear2`` load into
:class:`FeedForward` under the same names. ``fused=True`` keeps those parameters and runs
the same math with PyTorch's kernels (``F.linear``, ``F.gelu``/``F.relu``/``F.silu``,
``F.dropout``): faster, and equal to rounding (``tests/test_nn_fused_kernels.py``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dlkit.nn.dropout import Dropout
from dlkit.nn.functional import gelu, relu, sigmoid
from dlkit.nn.layers import Linear

__all__ = ["ACTIVATIONS", "FeedForward", "SwiGLU", "silu"]

ACTIVATIONS = ("gelu", "relu")


def silu(x: Tensor) -> Tensor:
    r"""Sigmoid linear unit (swish): :math:`\mathrm{silu}(x) = x\,\sigma(x)`."""
    return x * sigmoid(x)


def _check_sizes(d_model: int, d_ff: int, name: str) -> None:
    for label, value in (("d_model", d_model), ("d_ff", d_ff)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: {label} must be a positive int, got {value!r}")


def _check_input(x: Tensor, d_model: int, name: str) -> None:
    if x.dim() < 1 or x.shape[-1] != d_model:
        raise ValueError(f"{name} expects input of shape (..., {d_model}), got {tuple(x.shape)}")


class FeedForward(nn.Module):
    r""":math:`W_2\,\mathrm{dropout}(\phi(W_1 x + b_1)) + b_2` at every position.

    Args:
        d_model: :math:`d`, the width of the input and the output.
        d_ff: :math:`d_{ff}`, the hidden width (usually :math:`4d`).
        activation: :math:`\phi`, ``"gelu"`` (exact, erf form) or ``"relu"``.
        bias: learn :math:`b_1, b_2`.
        dropout: probability of zeroing a hidden unit in training (after :math:`\phi`,
            where ``torch.nn.TransformerEncoderLayer`` puts it).
        fused: compute with PyTorch's kernels (same parameters, same math).

    Shapes: ``(..., d_model)`` → ``(..., d_model)``.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        activation: str = "gelu",
        bias: bool = True,
        dropout: float = 0.0,
        fused: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(d_model, d_ff, "FeedForward")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"FeedForward: activation must be one of {ACTIVATIONS}, got {activation!r}"
            )
        self.d_model, self.d_ff, self.activation = d_model, d_ff, activation
        self.linear1 = Linear(d_model, d_ff, bias=bias)  # W1 (d_ff, d), b1 (d_ff,)
        self.linear2 = Linear(d_ff, d_model, bias=bias)  # W2 (d, d_ff), b2 (d,)
        self.dropout = Dropout(dropout)
        self.fused = fused

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.d_model, "FeedForward")
        if self.fused:
            h = F.linear(x, self.linear1.weight, self.linear1.bias)  # (..., d_ff)
            h = F.gelu(h) if self.activation == "gelu" else F.relu(h)
            h = F.dropout(h, self.dropout.p, self.training) if self.dropout.p > 0 else h
            return F.linear(h, self.linear2.weight, self.linear2.bias)  # (..., d_model)
        h = self.linear1(x)  # (..., d_ff)
        h = gelu(h) if self.activation == "gelu" else relu(h)
        return self.linear2(self.dropout(h))  # (..., d_model)

    def extra_repr(self) -> str:
        fused = ", fused=True" if self.fused else ""
        return f"d_model={self.d_model}, d_ff={self.d_ff}, activation={self.activation!r}{fused}"


class SwiGLU(nn.Module):
    r""":math:`W_2\,\mathrm{dropout}(\mathrm{silu}(W_1 x) \odot W_3 x)` at every position.

    Args:
        d_model: :math:`d`.
        d_ff: :math:`d_{ff}`, the width of the gate and of the value.
        bias: biases on the three projections (default off, as in LLaMA).
        dropout: probability of zeroing a gated hidden unit in training.
        fused: compute with PyTorch's kernels (same parameters, same math).

    Shapes: ``(..., d_model)`` → ``(..., d_model)``.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        bias: bool = False,
        dropout: float = 0.0,
        fused: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(d_model, d_ff, "SwiGLU")
        self.d_model, self.d_ff = d_model, d_ff
        self.w1 = Linear(d_model, d_ff, bias=bias)  # gate W1 (d_ff, d)
        self.w3 = Linear(d_model, d_ff, bias=bias)  # value W3 (d_ff, d)
        self.w2 = Linear(d_ff, d_model, bias=bias)  # out W2 (d, d_ff)
        self.dropout = Dropout(dropout)
        self.fused = fused

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.d_model, "SwiGLU")
        if self.fused:
            gate = F.silu(F.linear(x, self.w1.weight, self.w1.bias))  # (..., d_ff)
            gated = gate * F.linear(x, self.w3.weight, self.w3.bias)  # (..., d_ff)
            gated = F.dropout(gated, self.dropout.p, self.training) if self.dropout.p > 0 else gated
            return F.linear(gated, self.w2.weight, self.w2.bias)  # (..., d_model)
        gated = silu(self.w1(x)) * self.w3(x)  # (..., d_ff)
        return self.w2(self.dropout(gated))  # (..., d_model)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, d_ff={self.d_ff}" + (", fused=True" if self.fused else "")
