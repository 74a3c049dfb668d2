"""A small GPT-style decoder (pre-LayerNorm blocks of causal self-attention and an MLP),
described by a config. Built from ``nn.Linear``, ``nn.LayerNorm``, ``nn.Embedding`` and
``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GPT", "Block", "TransformerConfig", "build_transformer"]


@dataclass
class TransformerConfig:
    """A GPT-style decoder: ``n_layers`` pre-LayerNorm blocks of causal attention and an MLP."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_seq_len: int
    tied_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")


class Block(nn.Module):
    """:math:`x + \\mathrm{Attn}(\\mathrm{LN}(x))`, then :math:`x + \\mathrm{MLP}(\\mathrm{LN}(x))`."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        C = config.d_model
        self.n_heads = config.n_heads
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.fc, self.fc_out = nn.Linear(C, config.d_ff), nn.Linear(config.d_ff, C)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)  # 3 × (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        x = x + self.proj(y)  # (B, T, C)
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))  # (B, T, C), via (B, T, d_ff)


class GPT(nn.Module):
    """Token ids ``(B, T)`` → logits ``(B, T, vocab_size)``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.max_seq_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tied_embeddings:
            self.head.weight = self.tok_emb.weight  # one (V, C) matrix, counted once

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        if T > self.pos_emb.num_embeddings:
            raise ValueError(
                f"sequence length {T} exceeds max_seq_len={self.pos_emb.num_embeddings}"
            )
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, V)


def build_transformer(config: TransformerConfig) -> GPT:
    """The GPT-style model that ``count_parameters(config)`` describes."""
    return GPT(config)
