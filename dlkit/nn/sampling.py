r"""Choosing the next token from a language model's logits: temperature, top-k, top-p.

A language model gives logits :math:`z \in \mathbb{R}^V` for the next token. Decoding turns
them into a distribution and draws from it, in three steps (the order Hugging Face's
``generate`` uses):

1. **Temperature** :math:`\tau > 0` rescales the logits, :math:`z' = z / \tau`.
   :math:`\tau < 1` sharpens the distribution, :math:`\tau > 1` flattens it, and
   :math:`\tau \to 0` puts all mass on the arg-max (greedy decoding): ``temperature=0``
   means exactly that here.
2. **Top-k** keeps the :math:`k` largest logits and sets the others to :math:`-\infty`:

   .. math:: \operatorname{top\text{-}k}(z)_i = \begin{cases} z_i & \text{rank}(i) < k \\
      -\infty & \text{otherwise,} \end{cases}

   where :math:`\text{rank}` orders the tokens by decreasing logit and, among equal logits,
   by increasing index. So ties at the :math:`k`-th value keep **exactly** :math:`k` tokens
   and the lowest indices win. :math:`k \ge V` keeps every token.
3. **Top-p** (nucleus sampling, Holtzman et al. 2020) keeps the smallest set of most probable
   tokens whose probabilities sum to at least :math:`p`. With :math:`\pi = \operatorname
   {softmax}(z)` and the tokens in rank order :math:`r_1, r_2, \dots`:

   .. math:: \text{keep } r_j \iff \sum_{i < j} \pi_{r_i} < p ,

   the probability *before* the token is still short of :math:`p`. The token that crosses
   :math:`p` is kept, so is the top token (its sum before is 0), and ties are broken by
   index as for top-k. :math:`p \in (0, 1]`; :math:`p = 1` keeps every token (without
   summing: a rounded cumulative sum may reach 1 before the last token).

Top-p after top-k works on the distribution *renormalized* over the :math:`k` survivors,
and after the temperature on the *tempered* distribution: the order matters (the tests show
cases where it changes the kept set). Temperature and top-k commute (dividing by
:math:`\tau > 0` keeps the order; rounding can only merge nearly equal logits into a tie).
A temperature so small that :math:`z / \tau` overflows to :math:`+\infty` gives the
:math:`\tau \to 0` limit, the greedy one-hot, instead of NaN.

The sampled token then follows

.. math:: P(\text{next} = i) = \frac{\exp(\tilde z_i)}{\sum_j \exp(\tilde z_j)}, \qquad
   \tilde z = \operatorname{top\text{-}p}(\operatorname{top\text{-}k}(z / \tau)),

with :math:`\exp(-\infty) = 0`. Probabilities are computed in float32 (float64 for float64
logits), so bfloat16 and float16 logits are upcast before the softmax.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from torch import Tensor

__all__ = ["next_token_distribution", "sample_next_token", "top_k_filter", "top_p_filter"]


def _check_logits(logits: Tensor, name: str, *, batched: bool = False) -> None:
    """``logits`` a floating tensor ``(..., V)`` (``(B, V)`` if ``batched``), no NaN or +inf."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name}: logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{name}: logits must be a floating-point tensor, got {logits.dtype}")
    if batched and logits.dim() != 2:
        raise ValueError(f"{name}: logits must have shape (B, V), got {tuple(logits.shape)}")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(
            f"{name}: logits must have shape (..., V) with V >= 1, got {tuple(logits.shape)}"
        )
    if bool(torch.isnan(logits).any()):
        raise ValueError(f"{name}: logits contain NaN; the model's output is broken")
    if bool(torch.isposinf(logits).any()):
        raise ValueError(
            f"{name}: logits contain +inf (softmax would give NaN); -inf is allowed, to ban tokens"
        )


def _check_top_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"top_k must be an integer >= 1 (or None for no top-k), got {k!r}")
    return int(k)


def _check_top_p(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 < float(p) <= 1.0:
        raise ValueError(f"top_p must be a number in (0, 1] (or None for no top-p), got {p!r}")
    return float(p)


def _check_temperature(temperature: object) -> float:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, Real)
        or not math.isfinite(float(temperature))
        or float(temperature) < 0.0
    ):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}"
        )
    return float(temperature)


def _rank_order(logits: Tensor) -> Tensor:
    """Indices sorting the last axis by decreasing logit, ties by increasing index."""
    return torch.sort(logits, dim=-1, descending=True, stable=True).indices  # (..., V)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row ``(..., V)``, the others become ``-inf``.

    Exactly ``min(k, V)`` entries survive: among equal logits at the ``k``-th value the lowest
    indices are kept. Returns a new tensor of the same shape and dtype.
    """
    _check_logits(logits, "top_k_filter")
    return _top_k(logits, _check_top_k(k))


def _top_k(logits: Tensor, k: int) -> Tensor:
    if k >= logits.shape[-1]:
        return logits.clone()
    top = _rank_order(logits)[..., :k]  # (..., k): ids of the k best
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, top, True)  # (..., V)
    return logits.masked_fill(~keep, -math.inf)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of most probable tokens whose probability sums to at least ``p``.

    Token :math:`r_j` (rank order, ties by index) stays if :math:`\\sum_{i<j} \\pi_{r_i} < p`,
    with :math:`\\pi = \\operatorname{softmax}` of the row; the others become ``-inf``. At
    least the top token always stays; ``p = 1`` keeps all. Shape and dtype unchanged.
    """
    _check_logits(logits, "top_p_filter")
    return _top_p(logits, _check_top_p(p))


def _top_p(logits: Tensor, p: float) -> Tensor:
    if p == 1.0:
        return logits.clone()
    work = torch.promote_types(logits.dtype, torch.float32)
    order = _rank_order(logits)  # (..., V)
    sorted_probs = torch.softmax(logits.gather(-1, order).to(work), dim=-1)  # (..., V)
    cum = torch.cumsum(sorted_probs, dim=-1)  # (..., V): sum up to and including j
    before = torch.cat([torch.zeros_like(cum[..., :1]), cum[..., :-1]], dim=-1)  # (..., V)
    keep_sorted = before < p  # (..., V), in rank order; True at rank 0
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)  # (..., V) by id
    return logits.masked_fill(~keep, -math.inf)


def next_token_distribution(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Tensor:
    """The distribution :func:`sample_next_token` draws from: ``(..., V)`` -> probs ``(..., V)``.

    ``softmax(top_p(top_k(logits / temperature)))``, in that order; ``None`` switches a filter
    off. ``temperature = 0`` gives the one-hot distribution of the arg-max (lowest index on a
    tie): the limit :math:`\\tau \\to 0` for a unique maximum, and what greedy decoding picks.
    Returns float32 probabilities (float64 for float64 logits); each row sums to 1 and is 0
    outside the kept set. A row with no finite logit raises a ``ValueError``.
    """
    _check_logits(logits, "next_token_distribution")
    return _distribution(logits, temperature, top_k, top_p)


def _distribution(logits: Tensor, temperature: object, top_k: object, top_p: object) -> Tensor:
    """:func:`next_token_distribution` on logits already checked."""
    temperature = _check_temperature(temperature)
    k = None if top_k is None else _check_top_k(top_k)
    p = None if top_p is None else _check_top_p(top_p)
    if not bool(torch.isfinite(logits).any(dim=-1).all()):
        raise ValueError(
            "next_token_distribution: a row of logits is all -inf; there is no token to choose"
        )
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))  # (..., V)
    greedy = torch.zeros_like(z).scatter_(-1, z.argmax(dim=-1, keepdim=True), 1.0)  # one-hot
    if temperature == 0.0:
        return greedy  # (..., V)
    z = z / temperature  # (..., V)
    # a temperature so small that z / τ overflows to +inf: the limit τ → 0, the greedy one-hot
    over = torch.isposinf(z).any(dim=-1, keepdim=True)  # (..., 1)
    z = z.masked_fill(over, 0.0)  # placeholder rows, replaced below (no NaN on the way)
    if k is not None:
        z = _top_k(z, k)
    if p is not None:
        z = _top_p(z, p)
    return torch.where(over, greedy, torch.softmax(z, dim=-1))  # (..., V)


def sample_next_token(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token id per row of ``logits`` ``(B, V)`` -> int64 ``(B,)``.

    Rows are independent draws from :func:`next_token_distribution` (same arguments).
    ``temperature = 0`` is greedy: the arg-max of each row, no randomness. Pass a seeded
    ``torch.Generator`` (on the logits' device) for reproducible samples.
    """
    _check_logits(logits, "sample_next_token", batched=True)
    probs = _distribution(logits, temperature, top_k, top_p)  # (B, V)
    if temperature == 0:
        return probs.argmax(dim=-1)  # (B,): the one-hot's position
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B, 1) -> (B,)
