r"""Position information for attention, which by itself is blind to order.

Attention treats its keys as a *set*: permuting the tokens permutes the outputs the same
way. A Transformer therefore adds the position to each token somehow:

* **Sinusoidal** (:class:`SinusoidalPositions`, "Attention Is All You Need") adds the fixed
  table

  .. math::

      \mathrm{PE}_{p, 2i} = \sin\!\big(p / 10000^{2i/d}\big), \qquad
      \mathrm{PE}_{p, 2i+1} = \cos\!\big(p / 10000^{2i/d}\big),

  one sine/cosine pair per frequency, from wavelength :math:`2\pi` up to
  :math:`10000 \cdot 2\pi`. :math:`\mathrm{PE}_{p+k}` is a fixed rotation of
  :math:`\mathrm{PE}_p` for every :math:`p`, so relative offsets are linear functions.
* **Learned** (:class:`LearnedPositions`, GPT, BERT) adds a trained row per position.
* **None** (:class:`NoPositions`) adds nothing: a bag of tokens (and, with a causal mask,
  still some order information).
* **Rotary** (:class:`RotaryEmbedding`, RoFormer; LLaMA) rotates every pair
  :math:`(x_{2i}, x_{2i+1})` of a query or key at position :math:`p` by the angle
  :math:`p\,\theta_i`, :math:`\theta_i = \text{base}^{-2i/d}`:

  .. math::

      \begin{pmatrix} x'_{2i} \\ x'_{2i+1} \end{pmatrix} =
      \begin{pmatrix} \cos p\theta_i & -\sin p\theta_i \\ \sin p\theta_i & \cos p\theta_i
      \end{pmatrix} \begin{pmatrix} x_{2i} \\ x_{2i+1} \end{pmatrix} .

  Rotations are orthogonal and :math:`R_m^\top R_n = R_{n-m}`, so the score
  :math:`\langle R_m q, R_n k \rangle = \langle q, R_{n-m} k\rangle` depends on the
  positions only through :math:`m - n`. It is applied inside attention (to the per-head
  :math:`q, k`), not added to the embeddings.

Every module takes ``offset``, the absolute position of the first token of ``x``: with a
KV cache the new tokens start at the cache length.
"""

from __future__ import annotations

import torch
from torch import nn

from dlkit.nn.layers import Embedding

__all__ = [
    "LearnedPositions",
    "NoPositions",
    "RotaryEmbedding",
    "SinusoidalPositions",
    "build_positions",
    "sinusoidal_table",
]


def _check_range(name: str, offset: int, length: int, max_len: int) -> None:
    if offset < 0:
        raise ValueError(f"{name}: offset must be >= 0, got {offset}")
    if offset + length > max_len:
        raise ValueError(
            f"{name}: positions {offset}..{offset + length - 1} exceed max_len={max_len} "
            f"(offset={offset} + length={length} > max_len); build it with a larger max_len"
        )


def sinusoidal_table(
    max_len: int, d_model: int, *, base: float = 10000.0, dtype: torch.dtype | None = None
) -> torch.Tensor:
    r"""``(max_len, d_model)`` table, :math:`\mathrm{PE}_{p,2i} = \sin(p / b^{2i/d})`, :math:`\mathrm{PE}_{p,2i+1} = \cos(p / b^{2i/d})`.

    Computed in float64 and returned in ``dtype`` (default: torch's default dtype). An odd
    ``d_model`` ends with a sine column.
    """
    if max_len < 1 or d_model < 1:
        raise ValueError(f"max_len and d_model must be >= 1, got {max_len} and {d_model}")
    p = torch.arange(max_len, dtype=torch.float64)[:, None]  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),): 0, 2, 4, ...
    angle = p / base ** (two_i / d_model)  # (P, ceil(d/2))
    table = torch.empty(max_len, d_model, dtype=torch.float64)  # (P, d)
    table[:, 0::2] = torch.sin(angle)  # even columns
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # odd columns
    return table.to(dtype or torch.get_default_dtype())


def _check_x(name: str, x: torch.Tensor, d_model: int) -> None:
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} expects x of shape (B, T, {d_model}), got {tuple(x.shape)}")


class SinusoidalPositions(nn.Module):
    """Add the fixed :func:`sinusoidal_table`: ``x + PE[offset : offset + T]``, ``(B, T, C)``.

    The table is a non-persistent buffer (not in the state dict: it is recomputed).
    """

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_x("SinusoidalPositions", x, self.d_model)
        T = x.shape[1]
        _check_range("SinusoidalPositions", offset, T, self.max_len)
        return x + self.pe[offset : offset + T].to(x.dtype)  # (B, T, C) + (T, C)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositions(nn.Module):
    """Add a learned row per position: ``x + P[offset : offset + T]``, ``(B, T, C)``.

    ``P`` is ``self.embedding.weight`` ``(max_len, C)``, an :class:`~dlkit.nn.layers.Embedding`
    (init :math:`\\mathcal N(0, 1)`).
    """

    def __init__(
        self,
        d_model: int,
        max_len: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.embedding = Embedding(max_len, d_model, device=device, dtype=dtype)  # (P, C)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_x("LearnedPositions", x, self.d_model)
        T = x.shape[1]
        _check_range("LearnedPositions", offset, T, self.max_len)
        return x + self.embedding.weight[offset : offset + T]  # (B, T, C) + (T, C)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class NoPositions(nn.Module):
    """No position information: returns ``x`` unchanged (``offset`` is ignored)."""

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset < 0:
            raise ValueError(f"NoPositions: offset must be >= 0, got {offset}")
        return x


class RotaryEmbedding(nn.Module):
    r"""Rotate each pair :math:`(x_{2i}, x_{2i+1})` at position :math:`p` by :math:`p\,\text{base}^{-2i/d_h}`.

    Args:
        head_dim: :math:`d_h`, even.
        max_len: number of positions tabulated (``offset + T`` may not exceed it).
        base: the frequency base, 10000 as in RoFormer.
        device, dtype: of the ``cos``/``sin`` tables (non-persistent buffers
            ``(max_len, d_h/2)``, computed in float64). Build with ``dtype=torch.float64``
            for float64 work: ``.double()`` would only widen the float32-rounded tables.

    ``forward(x (..., T, d_h), offset=0)`` returns the same shape, usually ``(B, H, T, d_h)``.
    """

    def __init__(
        self,
        head_dim: int,
        max_len: int,
        base: float = 10000.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if head_dim < 2 or head_dim % 2 != 0:
            raise ValueError(f"RotaryEmbedding needs an even head_dim >= 2, got {head_dim}")
        if max_len < 1 or not base > 1.0:
            raise ValueError(f"need max_len >= 1 and base > 1, got {max_len} and {base}")
        self.head_dim, self.max_len, self.base = head_dim, max_len, float(base)
        theta = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (hd/2,)
        angle = torch.arange(max_len, dtype=torch.float64)[:, None] * theta  # (P, hd/2): p θ_i
        dtype = dtype or torch.get_default_dtype()
        self.register_buffer("cos", angle.cos().to(device=device, dtype=dtype), persistent=False)
        self.register_buffer("sin", angle.sin().to(device=device, dtype=dtype), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.dim() < 2 or x.shape[-1] != self.head_dim:
            raise ValueError(
                f"RotaryEmbedding({self.head_dim}) expects x of shape (..., T, "
                f"{self.head_dim}), got {tuple(x.shape)}"
            )
        T = x.shape[-2]
        _check_range("RotaryEmbedding", offset, T, self.max_len)
        cos = self.cos[offset : offset + T].to(x.dtype)  # (T, hd/2)
        sin = self.sin[offset : offset + T].to(x.dtype)  # (T, hd/2)
        x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., T, hd/2) each: x_{2i}, x_{2i+1}
        rot_even = x_even * cos - x_odd * sin  # (..., T, hd/2)
        rot_odd = x_even * sin + x_odd * cos  # (..., T, hd/2)
        return torch.stack((rot_even, rot_odd), dim=-1).flatten(-2)  # (..., T, hd/2, 2) -> hd

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_len={self.max_len}, base={self.base}"


_KINDS = ("sinusoidal", "learned", "none", "rope")


def build_positions(kind: str, d_model: int, max_len: int) -> nn.Module:
    """The additive position module for ``kind``: ``"sinusoidal"``, ``"learned"`` or ``"none"``.

    ``"rope"`` returns :class:`NoPositions` too: rotary positions add nothing to the
    embeddings, they are applied inside attention (a :class:`RotaryEmbedding` of the head size).
    """
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model, max_len)
    if kind == "learned":
        return LearnedPositions(d_model, max_len)
    if kind in ("none", "rope"):
        return NoPositions()
    raise ValueError(f"unknown positions kind {kind!r}; expected one of {_KINDS}")
