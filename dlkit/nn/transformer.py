r"""Transformer models built from one :class:`TransformerStackConfig`: an encoder, a decoder,
the encoder–decoder of "Attention Is All You Need", a GPT-style decoder-only language model
and a sequence classifier.

Every model starts the same way. Token ids become vectors through an embedding
:math:`E \in \mathbb{R}^{V \times C}`, positions are added (``"sinusoidal"``, ``"learned"``) or
rotated into the queries and keys of self-attention (``"rope"``) or left out (``"none"``):

.. math:: h^{(0)}_t = E_{x_t} + P_{t + \text{offset}}, \qquad
   h^{(\ell)} = \mathrm{Block}_\ell(h^{(\ell - 1)}), \qquad
   \text{logits}_t = W_{\text{head}}\, N(h^{(L)}_t),

where the final norm :math:`N` is there only for pre-norm stacks (a post-norm block already
ends in a norm) and ``offset`` is the number of positions already in the KV cache.

**KV cache.** A decoder's position :math:`t` only attends to keys and values of positions
:math:`\le t`, and those never change once computed. Generating token by token, the model
keeps every layer's keys and values (:class:`dlkit.nn.kv_cache.KVCache`) and runs each new
token alone through the stack: one step costs :math:`O(L\,C^2 + L\,T\,C)` instead of the
:math:`O(L\,T\,C^2 + L\,T^2 C)` of recomputing the whole prefix, for
:math:`2 \cdot L \cdot B \cdot T_{\max} \cdot C` stored numbers. ``bench/kv_cache.py`` measures
the speed-up.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlkit.nn.dropout import Dropout
from dlkit.nn.kv_cache import KVCache
from dlkit.nn.layers import Embedding, Linear
from dlkit.nn.positions import RotaryEmbedding, build_positions
from dlkit.nn.transformer_blocks import (
    DecoderBlock,
    EncoderBlock,
    TransformerStackConfig,
    make_norm,
)

__all__ = [
    "DecoderOnlyLM",
    "EncoderDecoder",
    "SequenceClassifier",
    "TransformerDecoder",
    "TransformerEncoder",
]


def _check_ids(ids: Tensor, name: str, what: str = "(B, T)") -> None:
    if not isinstance(ids, Tensor) or ids.dim() != 2:
        shape = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name} expects token ids of shape {what}, got {shape}")


def _check_mask(mask: Tensor | None, shape: tuple[int, ...], name: str) -> None:
    if mask is None:
        return
    if mask.dtype != torch.bool or tuple(mask.shape) != shape:
        raise ValueError(
            f"{name} must be a bool tensor of shape {shape} (True = padding), "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )


class _Embed(nn.Module):
    """Token embedding + additive positions (or a rotary embedding kept for the attention)."""

    def __init__(
        self, config: TransformerStackConfig, vocab_size: int, padding_idx: int | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = Embedding(vocab_size, config.d_model, padding_idx=padding_idx)
        kind = "none" if config.positions == "rope" else config.positions
        self.pos = build_positions(kind, config.d_model, config.max_len)
        # rotary tables in float64 (cast to the activations' dtype when used), so a float64
        # model gets exact angles; None unless positions="rope"
        self.rotary = (
            RotaryEmbedding(config.head_dim, config.max_len, dtype=torch.float64)
            if config.positions == "rope"
            else None
        )
        self.dropout = Dropout(config.dropout)

    def forward(self, ids: Tensor, offset: int = 0) -> Tensor:
        T, max_len = ids.shape[1], self.config.max_len
        if offset + T > max_len:
            raise ValueError(
                f"positions {offset}..{offset + T - 1} go past max_len={max_len} of the config"
            )
        x = self.tok_emb(ids)  # (B, T, C)
        return self.dropout(self.pos(x, offset=offset))  # (B, T, C), + P[offset : offset + T]


class TransformerEncoder(nn.Module):
    """Token ids ``(B, S)`` → contextual vectors ``(B, S, C)``: embedding, positions,
    ``n_layers`` :class:`EncoderBlock` and (pre-norm) a final norm.

    ``padding_idx`` is the embedding's padding row. Attributes: ``tok_emb``, ``pos``,
    ``rotary`` (``None`` unless positions ``"rope"``), ``blocks``, ``norm``.
    """

    def __init__(
        self, config: TransformerStackConfig, vocab_size: int, *, padding_idx: int | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embed(config, vocab_size, padding_idx)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layers))
        self.norm = make_norm(config) if config.norm_first else nn.Identity()

    def forward(self, src: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        """``src`` ``(B, S)`` ids; ``src_key_padding_mask`` ``(B, S)`` bool, True = padding.
        Returns ``(B, S, C)`` (padding positions hold vectors too: ignore them)."""
        _check_ids(src, "TransformerEncoder", "(B, S)")
        _check_mask(src_key_padding_mask, tuple(src.shape), "src_key_padding_mask")
        x = self.embed(src)  # (B, S, C)
        for block in self.blocks:
            x = block(x, key_padding_mask=src_key_padding_mask, rotary=self.embed.rotary)
        return self.norm(x)  # (B, S, C)


class TransformerDecoder(nn.Module):
    """Target ids ``(B, T)`` and encoder memory ``(B, S, C)`` → logits ``(B, T, V)``:
    embedding, positions, ``n_layers`` :class:`DecoderBlock` (causal self-attention,
    cross-attention, MLP), final norm (pre-norm) and a linear head (no bias)."""

    def __init__(
        self,
        config: TransformerStackConfig,
        vocab_size: int,
        *,
        padding_idx: int | None = None,
        cross_attention: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embed(config, vocab_size, padding_idx)
        self.blocks = nn.ModuleList(
            DecoderBlock(config, cross_attention=cross_attention) for _ in range(config.n_layers)
        )
        self.norm = make_norm(config) if config.norm_first else nn.Identity()
        self.head = Linear(config.d_model, vocab_size, bias=False)  # W_head (V, C)

    def new_cache(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` sequences of up to ``max_len``
        positions, in the dtype and on the device of the parameters unless given."""
        p = self.head.weight
        c = self.config
        return KVCache(
            c.n_layers, batch_size, c.n_heads, c.head_dim, c.max_len,
            dtype=dtype or p.dtype, device=device or p.device,
        )  # fmt: skip

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """``tgt`` ``(B, T)`` ids (with a ``cache``: only the new ones, placed after the
        ``cache.length`` cached positions); ``memory`` ``(B, S, C)``. Returns ``(B, T, V)``."""
        return self.head(self.hidden_states(tgt, memory, memory_key_padding_mask, cache))

    def hidden_states(
        self,
        tgt: Tensor,
        memory: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """What the head reads: the last block's output after the final norm, ``(B, T, C)``
        (arguments as for :meth:`forward`). Fine-tuning pools these into features."""
        _check_ids(tgt, type(self).__name__)
        offset = 0 if cache is None else cache.length
        if cache is not None and cache.batch_size != tgt.shape[0]:
            raise ValueError(
                f"the cache holds {cache.batch_size} sequences, got a batch of {tgt.shape[0]}"
            )
        x = self.embed(tgt, offset=offset)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(
                x, memory, memory_key_padding_mask,
                cache=None if cache is None else cache.layer(i), rotary=self.embed.rotary,
            )  # fmt: skip
        return self.norm(x)  # (B, T, C)


class EncoderDecoder(nn.Module):
    """The encoder–decoder Transformer: ``logits = decoder(tgt_in, encoder(src))``.

    ``pad_id`` (optional) is the padding id of both vocabularies: its embedding rows are
    zero, a ``src_key_padding_mask`` is derived from ``src == pad_id`` when none is given,
    and :meth:`greedy_decode` fills finished sequences with it.
    """

    def __init__(
        self,
        config: TransformerStackConfig,
        src_vocab_size: int,
        tgt_vocab_size: int,
        *,
        pad_id: int | None = None,
    ) -> None:
        super().__init__()
        self.config, self.pad_id = config, pad_id
        self.encoder = TransformerEncoder(config, src_vocab_size, padding_idx=pad_id)
        self.decoder = TransformerDecoder(config, tgt_vocab_size, padding_idx=pad_id)

    def _src_mask(self, src: Tensor, mask: Tensor | None) -> Tensor | None:
        if mask is None and self.pad_id is not None:
            return src == self.pad_id  # (B, S), True = padding
        return mask

    def encode(self, src: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        """The memory ``(B, S, C)`` of ``src`` ``(B, S)``."""
        return self.encoder(src, self._src_mask(src, src_key_padding_mask))

    def forward(
        self, src: Tensor, tgt_in: Tensor, src_key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """``src`` ``(B, S)``, ``tgt_in`` ``(B, T)`` (BOS then the target shifted right) →
        logits ``(B, T, V_tgt)``; position ``t`` predicts target token ``t``."""
        mask = self._src_mask(src, src_key_padding_mask)
        memory = self.encoder(src, mask)  # (B, S, C)
        return self.decoder(tgt_in, memory, mask)  # (B, T, V_tgt)

    @torch.no_grad()
    def greedy_decode(
        self,
        src: Tensor,
        bos_id: int,
        eos_id: int,
        max_len: int,
        src_key_padding_mask: Tensor | None = None,
        *,
        use_cache: bool = True,
    ) -> Tensor:
        """Greedy decoding: start from BOS, append the arg-max token until every sequence
        has produced ``eos_id`` or ``max_len`` tokens exist.

        Returns ``(B, L)`` with ``L <= max_len``: the generated tokens (BOS not included, the
        first EOS included); after its EOS a sequence is filled with ``pad_id`` (or
        ``eos_id`` without one). ``use_cache=False`` recomputes the whole prefix each step
        (same tokens, for checking and timing). The encoder runs once; the cross-attention
        keys and values over the memory are recomputed each step (cheap next to the cache).
        """
        if not 1 <= max_len <= self.config.max_len:
            raise ValueError(
                f"greedy_decode: max_len must lie in [1, {self.config.max_len}] (the config's "
                f"max_len), got {max_len}"
            )
        mask = self._src_mask(src, src_key_padding_mask)
        memory = self.encoder(src, mask)  # (B, S, C)
        B = src.shape[0]
        fill = eos_id if self.pad_id is None else self.pad_id
        tokens = torch.full((B, 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)  # (B,)
        cache = self.decoder.new_cache(B) if use_cache else None
        for _ in range(max_len):
            step_in = tokens[:, -1:] if use_cache else tokens  # (B, 1) or (B, t)
            logits = self.decoder(step_in, memory, mask, cache=cache)[:, -1]  # (B, V)
            nxt = logits.argmax(dim=-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, fill), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)  # (B, t + 1)
            done |= nxt == eos_id
            if bool(done.all()):
                break
        return tokens[:, 1:]  # (B, L): drop BOS


class DecoderOnlyLM(nn.Module):
    """A GPT-style language model: ids ``(B, T)`` → next-token logits ``(B, T, V)``.

    Embedding, positions, ``n_layers`` :class:`DecoderBlock` without cross-attention, final
    norm (pre-norm) and a linear head. ``tie_weights=True`` makes the head *the same*
    :math:`V \\times C` matrix as the token embedding (``head.weight is tok_emb.weight``,
    counted once), as in GPT-2: :math:`\\text{logits}_t = E\\, N(h_t)`.
    """

    def __init__(
        self, config: TransformerStackConfig, vocab_size: int, *, tie_weights: bool = True
    ) -> None:
        super().__init__()
        self.config, self.vocab_size = config, vocab_size
        self.decoder = TransformerDecoder(config, vocab_size, cross_attention=False)
        if tie_weights:
            self.decoder.head.weight = self.decoder.embed.tok_emb.weight  # one (V, C) matrix

    def new_cache(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences (see :meth:`TransformerDecoder.new_cache`)."""
        return self.decoder.new_cache(batch_size, dtype=dtype, device=device)

    def forward(self, idx: Tensor, cache: KVCache | None = None) -> Tensor:
        """``idx`` ``(B, T)`` → logits ``(B, T, V)``. With a ``cache``, ``idx`` holds only the
        new tokens, at positions ``cache.length ..``; their keys and values are appended."""
        return self.decoder(idx, cache=cache)

    def hidden_states(self, idx: Tensor) -> Tensor:
        """``idx`` ``(B, T)`` → the final-norm hidden states ``(B, T, C)`` the head reads
        (:math:`N(h_t)`; position :math:`t` sees only tokens :math:`\\le t`)."""
        return self.decoder.hidden_states(idx)

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        use_cache: bool = True,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Extend ``idx`` ``(B, T)`` by ``max_new_tokens`` tokens → ``(B, T + max_new_tokens)``.

        ``temperature == 0``: greedy (arg-max). ``temperature > 0``: sample from
        :math:`\\mathrm{softmax}(\\text{logits} / \\tau)` with ``generator``. With ``use_cache``
        the prompt runs once (filling the cache) and then each new token alone; without it
        the whole sequence is recomputed every step (same result). Raises a ``ValueError``
        when ``T + max_new_tokens`` exceeds ``max_len``. Call ``model.eval()`` first when
        the config has dropout.
        """
        _check_ids(idx, "generate")
        if max_new_tokens < 0 or temperature < 0:
            raise ValueError(
                f"generate: max_new_tokens and temperature must be >= 0, got {max_new_tokens} "
                f"and {temperature}"
            )
        total, max_len = idx.shape[1] + max_new_tokens, self.config.max_len
        if total > max_len:
            raise ValueError(
                f"generate: {idx.shape[1]} prompt + {max_new_tokens} new tokens = {total} "
                f"exceeds max_len={max_len}"
            )
        cache = self.new_cache(idx.shape[0]) if use_cache else None
        step_in = idx  # the first step feeds the whole prompt
        for _ in range(max_new_tokens):
            logits = self(step_in if use_cache else idx, cache=cache)[:, -1]  # (B, V)
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)  # (B, V)
                nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)  # (B, t + 1)
            step_in = nxt
        return idx


class SequenceClassifier(nn.Module):
    """Ids ``(B, T)`` → class logits ``(B, num_classes)``: a :class:`TransformerEncoder`, a
    pooling over the **non-padded** positions, then a linear head.

    ``pool="mean"``: :math:`\\bar h = \\sum_t m_t h_t / \\sum_t m_t` with :math:`m_t = 1` for
    real tokens (pooling before the head: the head sees one vector per sequence);
    ``pool="first"``: :math:`h_0` (a ``[CLS]`` token placed first). Padding positions come
    from ``key_padding_mask`` or, without one, from ``ids == padding_idx``; they are masked
    as keys too, so they change neither the real tokens' vectors nor the logits.
    """

    def __init__(
        self,
        config: TransformerStackConfig,
        vocab_size: int,
        num_classes: int,
        *,
        pool: str = "mean",
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        if pool not in ("mean", "first"):
            raise ValueError(f"SequenceClassifier: pool must be 'mean' or 'first', got {pool!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"SequenceClassifier: num_classes must be a positive int, got {num_classes!r}"
            )
        self.pool, self.padding_idx = pool, padding_idx
        self.encoder = TransformerEncoder(config, vocab_size, padding_idx=padding_idx)
        self.head = Linear(config.d_model, num_classes)  # (K, C)

    def forward(self, ids: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """``ids`` ``(B, T)``; ``key_padding_mask`` ``(B, T)`` bool, True = padding."""
        _check_ids(ids, "SequenceClassifier")
        if key_padding_mask is None and self.padding_idx is not None:
            key_padding_mask = ids == self.padding_idx  # (B, T)
        h = self.encoder(ids, key_padding_mask)  # (B, T, C)
        if self.pool == "first":
            if key_padding_mask is not None and bool(key_padding_mask[:, 0].any()):
                raise ValueError("SequenceClassifier(pool='first'): position 0 is padding")
            pooled = h[:, 0]  # (B, C)
        elif key_padding_mask is None:
            pooled = h.mean(dim=1)  # (B, C)
        else:
            keep = (~key_padding_mask).to(h.dtype).unsqueeze(-1)  # (B, T, 1)
            count = keep.sum(dim=1)  # (B, 1)
            if bool((count == 0).any()):
                raise ValueError("SequenceClassifier: a sequence is all padding; nothing to pool")
            pooled = (h * keep).sum(dim=1) / count  # (B, C)
        return self.head(pooled)  # (B, K)
