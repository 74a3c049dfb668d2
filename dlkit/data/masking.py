r"""Masked-language-model corruption (BERT; Devlin et al., 2019): which positions the model
must predict, and what it sees there instead.

For a batch of token ids :math:`x \in \{0, \dots, V-1\}^{B \times T}`, :func:`mask_tokens`:

1. marks the **eligible** positions: those whose id is not special (padding, ``<|cls|>``,
   ``<|endoftext|>``, the mask id itself, ...) and, with a ``key_padding_mask``, not padding;
2. **selects** each eligible position independently with probability :math:`p`
   (``select_prob``, 0.15): :math:`s_i \sim \mathrm{Bernoulli}(p)`;
3. for each selected position draws :math:`u_i \sim \mathcal U[0, 1)` and replaces the input by

   .. math::

       \tilde x_i = \begin{cases}
           \texttt{[MASK]} & u_i < m \quad (m = \texttt{mask\_frac} = 0.8)\\
           r_i \sim \mathcal U(\mathcal V_{\text{plain}}) & m \le u_i < m + q
               \quad (q = \texttt{random\_frac} = 0.1)\\
           x_i & \text{otherwise (0.1: unchanged)}
       \end{cases}

   where :math:`\mathcal V_{\text{plain}}` is the set of non-special ids (a random
   replacement is never a special token; it may happen to equal :math:`x_i`, with
   probability :math:`1/|\mathcal V_{\text{plain}}|`, as in BERT);
4. sets the **labels** :math:`y_i = x_i` where selected and :math:`y_i = -100`
   (``IGNORE_INDEX``, PyTorch's ``ignore_index``) elsewhere.

So a position is masked with probability :math:`p\,m` (12%), replaced at random with
:math:`p\,q` (1.5%) and kept but predicted with :math:`p\,(1 - m - q)` (1.5%). The MLM loss is
the mean of :math:`-\log p_\theta(x_i \mid \tilde x)` over the selected positions only
(:func:`dlkit.nn.bert.masked_lm_loss`).

Why not mask every selected position: ``[MASK]`` never occurs when the model is later
fine-tuned, so the model must also produce good vectors for real tokens; and because a
selected token may be left as it is or swapped, the model cannot tell from the input which
visible tokens are to be predicted, so it has to keep a contextual representation of every
one. BERT's own data pipeline selected exactly ``round(0.15 T)`` positions per sequence;
here (as in Hugging Face's ``DataCollatorForLanguageModeling``) each position is an
independent coin flip, so the count varies around :math:`p` times the eligible positions.

All random draws come from ``generator`` (on its device, then moved to the ids' device),
so a seeded generator gives the same corruption on a CPU and a GPU. Importing this module
does not import torch (as the rest of :mod:`dlkit.data`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["IGNORE_INDEX", "mask_tokens"]

IGNORE_INDEX = -100  # the label of a position that is not predicted (torch's ignore_index)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"mask_tokens: {name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"mask_tokens: {name} must be an int, got {type(value).__name__}") from None


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"mask_tokens: {name} must be a number in [0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"mask_tokens: {name} must lie in [0, 1], got {value}")
    return float(value)


def _check_ids(ids: Any, vocab_size: int) -> None:
    import torch

    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"mask_tokens: ids must be a torch.Tensor, got {type(ids).__name__}")
    if ids.dtype != torch.int64:
        raise TypeError(f"mask_tokens: ids must be an int64 (long) tensor, got {ids.dtype}")
    if ids.dim() != 2:
        raise ValueError(f"mask_tokens: ids must have shape (B, T), got {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"mask_tokens: ids must lie in [0, vocab_size={vocab_size}), got {bad}")


def _special_table(special_ids: Iterable[int], mask_id: int, vocab_size: int) -> torch.Tensor:
    """``(V,)`` bool, True for the special ids (``mask_id`` always counts as special)."""
    import torch

    special = torch.zeros(vocab_size, dtype=torch.bool)  # (V,)
    for i in [*special_ids, mask_id]:
        i = _int(i, "each special id")
        if not 0 <= i < vocab_size:
            raise ValueError(
                f"mask_tokens: special id {i} is outside the vocabulary [0, {vocab_size})"
            )
        special[i] = True
    return special


def mask_tokens(
    ids: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    select_prob: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
    key_padding_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Corrupt ``ids`` for masked-language-model training (see the module docstring).

    Args:
        ids: ``(B, T)`` int64 token ids in ``[0, vocab_size)``; not modified.
        mask_id: the ``[MASK]`` id (counted as special: never selected, never a random
            replacement).
        vocab_size: :math:`V`.
        special_ids: ids that are never selected nor drawn as random replacements
            (padding, ``<|cls|>``, ``<|endoftext|>``, ...).
        select_prob: :math:`p`, the probability that an eligible position is selected.
        mask_frac: :math:`m`, the share of selected positions replaced by ``mask_id``.
        random_frac: :math:`q`, the share replaced by a random non-special id
            (:math:`m + q \\le 1`; the remaining :math:`1 - m - q` stay unchanged).
        key_padding_mask: optional ``(B, T)`` bool, True = padding (never selected).
        generator: a ``torch.Generator`` for every draw (``None``: torch's global RNG).

    Returns:
        ``(inputs, labels)``, both ``(B, T)`` int64: the corrupted ids, and the original id
        at the selected positions with ``IGNORE_INDEX`` (-100) everywhere else.
    """
    import torch

    vocab_size = _int(vocab_size, "vocab_size")
    if vocab_size < 1:
        raise ValueError(f"mask_tokens: vocab_size must be >= 1, got {vocab_size}")
    mask_id = _int(mask_id, "mask_id")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_tokens: mask_id={mask_id} is outside [0, vocab_size={vocab_size})")
    _check_ids(ids, vocab_size)
    p = _fraction(select_prob, "select_prob")
    m = _fraction(mask_frac, "mask_frac")
    q = _fraction(random_frac, "random_frac")
    if m + q > 1.0 + 1e-12:
        raise ValueError(
            f"mask_tokens: mask_frac + random_frac must be <= 1 (the rest stays unchanged), "
            f"got {m} + {q} = {m + q}"
        )
    if key_padding_mask is not None and (
        not isinstance(key_padding_mask, torch.Tensor)
        or key_padding_mask.dtype != torch.bool
        or key_padding_mask.shape != ids.shape
    ):
        got = (
            f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
            if isinstance(key_padding_mask, torch.Tensor)
            else type(key_padding_mask).__name__
        )
        raise ValueError(
            f"mask_tokens: key_padding_mask must be a bool tensor of shape {tuple(ids.shape)} "
            f"(True = padding), got {got}"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"mask_tokens: generator must be a torch.Generator, got {type(generator).__name__}"
        )
    special = _special_table(special_ids, mask_id, vocab_size)  # (V,)
    plain = (~special).nonzero().squeeze(1)  # (n_plain,) the ids a random replacement may take
    if q > 0 and len(plain) == 0:
        raise ValueError(
            "mask_tokens: random_frac > 0 needs at least one non-special id to draw, but every "
            f"id in [0, {vocab_size}) is special"
        )

    device = ids.device
    draw_on = generator.device if generator is not None else device
    shape = tuple(ids.shape)
    u_select = torch.rand(shape, generator=generator, device=draw_on).to(device)  # (B, T)
    u_kind = torch.rand(shape, generator=generator, device=draw_on).to(device)  # (B, T)
    pick = torch.randint(max(len(plain), 1), shape, generator=generator, device=draw_on)
    replacement = plain.to(device)[pick.to(device)] if len(plain) else ids  # (B, T)

    eligible = ~special.to(device)[ids]  # (B, T): not a special id
    if key_padding_mask is not None:
        eligible = eligible & ~key_padding_mask.to(device)
    selected = eligible & (u_select < p)  # (B, T): s_i ~ Bernoulli(p) on eligible positions
    to_mask = selected & (u_kind < m)  # (B, T)
    to_random = selected & (u_kind >= m) & (u_kind < m + q)  # (B, T)

    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)  # (B, T)
    inputs = torch.where(to_random, replacement, inputs)  # (B, T)
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))  # (B, T)
    return inputs, labels
