r"""How good is a language model: nats per token, perplexity and bits per byte.

A model that gives the true next token :math:`x_{t+1}` probability
:math:`p_\theta(x_{t+1} \mid x_{\le t})` has, over :math:`n` predicted tokens, the mean loss

.. math:: \bar\ell = -\frac{1}{n} \sum_{t} \ln p_\theta(x_{t+1} \mid x_{\le t})
   \quad \text{(nats per token)}, \qquad \mathrm{PPL} = e^{\bar\ell}.

Perplexity is "as uncertain as a uniform choice among PPL tokens"; a uniform guess over
:math:`V` ids has :math:`\bar\ell = \ln V` and PPL :math:`= V`. Both depend on the
tokenizer: a tokenizer with longer tokens has fewer, harder predictions. **Bits per byte**
removes that dependence by spreading the total code length over the text's UTF-8 bytes:

.. math:: \text{bpb} = \frac{\bar\ell \cdot n_{\text{tokens}}}{n_{\text{bytes}} \cdot \ln 2},

the number of bits an arithmetic coder driven by the model would need per byte of text
(8 for raw bytes, about 2 for gzip on English prose). It compares models with different
tokenizers and a character-level model with a BPE one, as long as :math:`n_{\text{tokens}}`
and :math:`n_{\text{bytes}}` count the same text.

:func:`evaluate_lm` computes :math:`\bar\ell` exactly on a token stream: every predictable
token is scored once, in consecutive non-overlapping windows of ``context`` tokens
(:func:`dlkit.data.token_windows.eval_windows`), and the mean is weighted by tokens, so a
shorter last window counts for what it holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlkit.data.token_windows import eval_windows
from dlkit.train.device import DeviceLike

__all__ = ["bits_per_byte", "evaluate_lm", "mean_token_nll", "perplexity"]


def _check_nats(nats_per_token: float) -> float:
    value = float(nats_per_token)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"nats_per_token must be a finite mean negative log-likelihood >= 0, got {value}"
        )
    return value


def perplexity(nats_per_token: float) -> float:
    r""":math:`e^{\bar\ell}` for a mean loss :math:`\bar\ell` in nats per token."""
    return math.exp(_check_nats(nats_per_token))


def bits_per_byte(nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    r""":math:`\bar\ell\, n_{\text{tokens}} / (n_{\text{bytes}} \ln 2)`: the loss as bits per
    UTF-8 byte of the text those ``n_tokens`` tokens encode (``n_bytes`` bytes)."""
    value = _check_nats(nats_per_token)
    for name, count in (("n_tokens", n_tokens), ("n_bytes", n_bytes)):
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
            raise ValueError(f"{name} must be a positive integer count, got {count!r}")
    return value * int(n_tokens) / (int(n_bytes) * math.log(2))


def mean_token_nll(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, device: DeviceLike | None = None
) -> float:
    """Token-weighted mean cross-entropy (nats) of ``model`` over ``(x, y)`` batches.

    ``x`` and ``y`` are ``(B, T)`` int64 (``y`` = ``x`` shifted by one); ``model(x)`` must
    return logits ``(B, T, V)``. Runs in eval mode without gradients (the mode is restored)
    and sums the per-token float32 losses in float64, so the result does not depend on how
    the tokens are split into batches.
    """
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x, y in batches:
                x, y = x.to(device), y.to(device)
                logits = model(x)  # (B, T, V)
                if logits.shape[:2] != y.shape:
                    raise ValueError(
                        f"the model returned logits of shape {tuple(logits.shape)} for inputs "
                        f"{tuple(x.shape)}; expected (B, T, V) matching targets {tuple(y.shape)}"
                    )
                losses = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(),  # (B*T, V)
                    y.reshape(-1),  # (B*T,)
                    reduction="none",
                )  # (B*T,)
                total += float(losses.double().sum())
                count += y.numel()
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("mean_token_nll: the batches held no tokens")
    return total / count


def evaluate_lm(
    model: nn.Module,
    tokens: np.ndarray | Tensor,
    context: int,
    *,
    batch_size: int = 32,
    max_tokens: int | None = None,
    device: DeviceLike | None = None,
) -> float:
    """Mean nats per token of ``model`` on the token stream ``tokens`` ``(N,)``.

    Every predictable token among the first ``max_tokens`` (default: all ``N - 1``) is
    scored exactly once, in consecutive windows of ``context`` tokens (``batch_size`` windows
    per forward pass). ``device``: where to compute (default: where the model is).
    """
    batches = eval_windows(tokens, context, batch_size, max_tokens=max_tokens)
    return mean_token_nll(model, batches, device=device)
