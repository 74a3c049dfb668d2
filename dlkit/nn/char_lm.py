r"""A character-level language model: embedding, recurrent layers, a linear read-out.

The model reads ids :math:`c_1, \dots, c_T` and at every step predicts a distribution
over the next character, :math:`p(c_{t+1} \mid c_{\le t}) = \operatorname{softmax}(W
h_t + b)`, trained with cross-entropy on the shifted text. Sampling draws one character
at a time from the softmax of the logits divided by a **temperature** :math:`\tau`:

.. math::

    p_\tau(k) = \frac{\exp(z_k / \tau)}{\sum_j \exp(z_j / \tau)}

:math:`\tau = 1` samples the model's own distribution, :math:`\tau < 1` sharpens it
towards the most likely character (:math:`\tau \to 0` is greedy argmax), :math:`\tau > 1`
flattens it towards uniform.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from dlkit.nn.recurrent import GRU, LSTM

__all__ = ["CharLM", "sample_next"]

CellKind = Literal["lstm", "gru", "rnn"]


def sample_next(
    logits: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Draw one id per row from ``softmax(logits / temperature)``; ``logits`` ``(B, V)`` -> ``(B,)``.

    ``temperature = 0`` picks the argmax (greedy decoding).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=1)
    probs = torch.softmax(logits.double() / temperature, dim=1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


class CharLM(nn.Module):
    """Embedding ``(V, E)`` -> recurrent layers (``"lstm"``, ``"gru"`` from :mod:`dlkit.nn.recurrent`,
    or ``"rnn"``, PyTorch's tanh ``nn.RNN``) -> linear ``(H, V)``.

    ``forward(ids, state)``: ``ids`` ``(B, T)`` int64 -> ``(logits (B, T, V), state)``.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 32,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: CellKind = "lstm",
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        kinds = {"lstm": LSTM, "gru": GRU, "rnn": nn.RNN}
        if cell not in kinds:
            raise ValueError(f"cell must be one of {sorted(kinds)}, got {cell!r}")
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = kinds[cell](embed_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: Tensor, state: object = None) -> tuple[Tensor, object]:
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(
                f"ids must be an int64 tensor of shape (B, T), got {ids.dtype} {tuple(ids.shape)}"
            )
        hidden, state = self.rnn(self.embed(ids), state)  # (B, T, H)
        return self.head(hidden), state  # (B, T, V)

    @torch.no_grad()
    def sample(
        self,
        prompt: Tensor,
        length: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue ``prompt`` (``(T0,)`` int64 ids, ``T0 >= 1``) by ``length`` sampled ids.

        Reads the prompt once, then feeds each sampled id back in, carrying the
        recurrent state. Returns the new ids only, ``(length,)``. Pass a seeded
        ``torch.Generator`` for reproducible samples.
        """
        if prompt.dim() != 1 or len(prompt) == 0:
            raise ValueError(
                f"prompt must be a non-empty 1-D tensor of ids, got {tuple(prompt.shape)}"
            )
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        logits, state = self(prompt.to(device).unsqueeze(0))  # (1, T0, V)
        new = []
        for _ in range(length):
            nxt = sample_next(logits[:, -1], temperature, generator)  # (1,)
            new.append(nxt)
            logits, state = self(nxt.unsqueeze(0), state)  # (1, 1, V)
        self.train(was_training)
        return torch.cat(new) if new else prompt.new_empty(0)
