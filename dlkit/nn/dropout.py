r"""Inverted dropout, the same module as ``torch.nn.Dropout``.

In training mode each element is kept with probability :math:`1 - p` and scaled up:

.. math::

    m_i \sim \mathrm{Bernoulli}(1 - p), \qquad y_i = \frac{m_i\, x_i}{1 - p},

so that :math:`\mathbb{E}[y_i] = x_i`: the expected activation is the same as without
dropout, and evaluation mode needs no correction at all (:math:`y = x`). ("Inverted"
refers to this scaling at training time; the original formulation scaled by
:math:`1 - p` at test time instead.) The gradient flows only through the kept
elements, :math:`\partial y_i / \partial x_i = m_i / (1 - p)`; autograd derives it from
the multiplication.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Dropout", "dropout"]


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must lie in [0, 1], got {p}")
    return float(p)


def dropout(
    x: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverted dropout of ``x`` (any shape); ``x`` itself unchanged outside training.

    With ``p = 1`` every element is dropped and the result is all zeros (the scale
    :math:`1/(1-p)` is never applied). On the CPU the mask is drawn with
    ``bernoulli_(1 - p)``, as ``torch.nn.functional.dropout`` does, so with the same
    seed both drop the same elements.
    """
    p = _check_p(p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * torch.zeros_like(x)  # keeps the graph: the gradient is 0 everywhere
    keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)  # m, same shape as x
    return x * keep / (1.0 - p)


class Dropout(nn.Module):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1-p).

    In evaluation mode (``model.eval()``) it returns its input unchanged. Shape: any,
    output the same as the input.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _check_p(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
