r"""The two parameterized building blocks every Transformer starts from: a linear map and a
lookup table, the same modules as ``torch.nn.Linear`` and ``torch.nn.Embedding``.

A **linear layer** maps the last axis of its input with a weight matrix
:math:`W \in \mathbb{R}^{\text{out} \times \text{in}}` and a bias :math:`b`:

.. math:: y = x W^\top + b .

PyTorch initializes it with ``kaiming_uniform_(W, a=√5)``, which works out to
:math:`W_{ij} \sim \mathcal U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})` (the gain
:math:`\sqrt{2 / (1 + a^2)} = 1/\sqrt3` times :math:`\sqrt{3 / \text{in}}`), and
:math:`b_i \sim \mathcal U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})`, so
:math:`\operatorname{Var} W_{ij} = 1 / (3\,\text{in})`.

An **embedding** is a table :math:`E \in \mathbb{R}^{V \times C}` whose row :math:`i` is the
vector of token :math:`i`; looking up ids is indexing, and equals multiplying a one-hot row
by :math:`E`:

.. math:: \operatorname{Embedding}(i) = E_{i,:} = \mathbf e_i^\top E .

So its gradient adds each output's gradient into the row it came from. ``padding_idx``
names a row that starts at zero and never receives a gradient (padding tokens carry no
information). Initialization is :math:`E_{ij} \sim \mathcal N(0, 1)`, as in PyTorch.

Both draw their initial values in the same order as PyTorch's modules, so with the same
seed they start from the same numbers, and their state dicts load into and from PyTorch's
by name.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Embedding", "Linear"]


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class Linear(nn.Module):
    r"""Affine map of the last axis, :math:`y = x W^\top + b`, like ``torch.nn.Linear``.

    Args:
        in_features: size of the input's last axis.
        out_features: size of the output's last axis.
        bias: learn :math:`b`; without it :math:`y = x W^\top`.
        device, dtype: where and in which precision the parameters live.

    Parameters: ``weight`` ``(out_features, in_features)``, ``bias`` ``(out_features,)``,
    both :math:`\mathcal U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})` at initialization.
    Shape: ``(*, in_features) -> (*, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_positive("in_features", in_features)
        self.out_features = _check_positive("out_features", out_features)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))  # (out, in)
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))  # (out,)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw ``weight`` then ``bias`` from :math:`\\mathcal U(\\pm 1/\\sqrt{\\text{in}})`.

        ``kaiming_uniform_(a=√5)``: bound :math:`= \\sqrt{2/(1+5)} \\cdot \\sqrt{3/\\text{in}}
        = 1/\\sqrt{\\text{in}}`; the same two ``uniform_`` calls as ``torch.nn.Linear``.
        """
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight.uniform_(-bound, bound)
        if self.bias is not None:
            self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}) expects input of shape "
                f"(..., {self.in_features}), got {tuple(x.shape)}"
            )
        y = x @ self.weight.T  # (..., in) @ (in, out) -> (..., out)
        if self.bias is not None:
            y = y + self.bias  # (..., out)
        return y

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Embedding(nn.Module):
    r"""Lookup table :math:`E \in \mathbb{R}^{V \times C}`: ids ``(*)`` -> vectors ``(*, C)``.

    Args:
        num_embeddings: :math:`V`, the number of rows (valid ids are ``0 .. V-1``).
        embedding_dim: :math:`C`, the size of each row.
        padding_idx: a row that starts at zero and receives no gradient; negative values
            count from the end, as in PyTorch.
        device, dtype: where and in which precision the table lives.

    Parameter: ``weight`` ``(V, C)``, :math:`\mathcal N(0, 1)` at initialization. Ids must
    be an integer tensor with values in ``[0, V)``; anything else raises an error that
    names the offending value (PyTorch raises an ``IndexError`` from deep inside).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = _check_positive("num_embeddings", num_embeddings)
        self.embedding_dim = _check_positive("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"padding_idx must lie in [-{num_embeddings}, {num_embeddings}), "
                    f"got {padding_idx}"
                )
            padding_idx = padding_idx % num_embeddings  # -1 -> V-1
        self.padding_idx = padding_idx
        self.weight = nn.Parameter(
            torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype)  # (V, C)
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """:math:`E_{ij} \\sim \\mathcal N(0, 1)`, then zero the padding row."""
        self.weight.normal_(0.0, 1.0)
        if self.padding_idx is not None:
            self.weight[self.padding_idx].zero_()

    def _check_ids(self, ids: torch.Tensor) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.is_complex():
            got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"Embedding expects an integer tensor of token ids, got {got}")
        if ids.dtype == torch.bool:
            raise TypeError("Embedding expects an integer tensor of token ids, got torch.bool")
        if ids.numel() == 0:
            return
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= self.num_embeddings:
            bad = lo if lo < 0 else hi
            raise IndexError(
                f"Embedding({self.num_embeddings}, {self.embedding_dim}) got id {bad}; "
                f"ids must lie in [0, {self.num_embeddings})"
            )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` ``(*)`` integers in ``[0, V)``; returns ``(*, C)``."""
        self._check_ids(ids)
        out = self.weight[ids.long()]  # (*, C): row ids[...] of E
        if self.padding_idx is not None:
            # The padding row is looked up but must not learn: cut its gradient path.
            is_pad = (ids == self.padding_idx).unsqueeze(-1)  # (*, 1)
            out = torch.where(is_pad, out.detach(), out)  # (*, C)
        return out

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
