r"""Transformer encoder and decoder blocks, and the dataclass that configures a stack of them.

A block is attention, then a position-wise MLP, each wrapped in a residual connection and a
normalization :math:`N` (``LayerNorm`` or ``RMSNorm``). Where the normalization sits is the
difference between the two designs:

.. math::

    \text{pre-norm (norm_first=True):}\quad
    x \leftarrow x + \mathrm{Attn}(N_1(x)), \qquad x \leftarrow x + \mathrm{MLP}(N_2(x)),

    \text{post-norm (norm_first=False):}\quad
    x \leftarrow N_1(x + \mathrm{Attn}(x)), \qquad x \leftarrow N_2(x + \mathrm{MLP}(x)).

Post-norm is the original Transformer (Vaswani et al., 2017) and the default of
``torch.nn.TransformerEncoderLayer``; pre-norm keeps an un-normalized residual path from the
input to the output, which trains deep stacks without warm-up tricks (GPT-2 onwards), and
needs one final normalization after the last block (the models in ``transformer.py`` add it).

The :class:`DecoderBlock` attends causally to itself (position :math:`t` sees positions
:math:`\le t`), optionally cross-attends to an encoder's output ``memory`` (queries from the
decoder, keys and values from the memory), then applies its MLP: three sub-layers, numbered
``norm1, norm2, norm3`` as in ``torch.nn.TransformerDecoderLayer``.

Parameter names follow PyTorch's layers (``self_attn``, ``norm1``, ...; the MLP's
``linear1``/``linear2`` sit under ``mlp.``, torch's ``multihead_attn`` is ``cross_attn``), so
``tests/test_nn_transformer.py`` copies the weights of ``torch.nn.TransformerEncoderLayer`` and
``TransformerDecoderLayer`` into these blocks and gets the same outputs.

**Kernels.** ``kernels="dlkit"`` (the default) runs the ops written to teach (dlkit's
``LayerNorm``/``RMSNorm``, GELU from ``erf``, attention as an explicit softmax).
``kernels="torch"`` computes the same math with PyTorch's fused kernels:
``torch.nn.LayerNorm``/``torch.nn.RMSNorm`` (same parameter names), ``F.linear``,
``F.gelu``/``F.silu``, one projection for :math:`[Q; K; V]` in self-attention and
``F.scaled_dot_product_attention`` whenever the attention weights are not requested. The
parameters and state dicts of the two are the same, and so are the outputs and gradients
(to rounding; ``tests/test_nn_fused_kernels.py`` checks both in float64). Use ``"torch"``
to train, ``"dlkit"`` to read.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from dlkit.nn.attention import MultiHeadAttention
from dlkit.nn.dropout import Dropout
from dlkit.nn.feedforward import FeedForward, SwiGLU
from dlkit.nn.kv_cache import LayerKVCache
from dlkit.nn.normalization import LayerNorm, RMSNorm
from dlkit.nn.positions import RotaryEmbedding

__all__ = [
    "KERNEL_KINDS",
    "MLP_KINDS",
    "NORM_KINDS",
    "POSITION_KINDS",
    "DecoderBlock",
    "EncoderBlock",
    "TransformerStackConfig",
    "make_mlp",
    "make_norm",
]

KERNEL_KINDS = ("dlkit", "torch")
NORM_KINDS = ("layernorm", "rmsnorm")
MLP_KINDS = ("gelu", "relu", "swiglu")
POSITION_KINDS = ("sinusoidal", "learned", "rope", "none")


@dataclass(kw_only=True)
class TransformerStackConfig:
    """The shape and the design choices of a stack of Transformer blocks (keyword arguments).

    Args:
        d_model: width :math:`C` of every position's vector.
        n_heads: attention heads :math:`H`; ``d_model`` must be divisible by it
            (head width :math:`C / H`).
        n_layers: number of blocks.
        d_ff: hidden width of the MLP (usually :math:`4C`).
        max_len: the longest sequence the positions (and a KV cache) can cover.
        dropout: dropout probability on attention weights, MLP hidden units and each
            residual branch (training only).
        bias: biases in every linear layer and in LayerNorm (``False`` as in
            ``torch.nn.TransformerEncoderLayer(bias=False)``).
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        norm_eps: :math:`\\varepsilon` of the normalization (PyTorch's LayerNorm default).
        norm_first: pre-norm (``True``) or post-norm (``False``).
        mlp: ``"gelu"`` or ``"relu"`` (:class:`FeedForward`) or ``"swiglu"`` (:class:`SwiGLU`).
        positions: ``"sinusoidal"`` or ``"learned"`` (added to the token embeddings),
            ``"rope"`` (rotary, applied to queries and keys inside self-attention; needs
            an even head width) or ``"none"``.
        kernels: ``"dlkit"`` (the ops written to teach) or ``"torch"`` (PyTorch's fused
            kernels for the same math; see the module docstring).
    """

    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    max_len: int
    dropout: float = 0.0
    bias: bool = True
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    norm_first: bool = True
    mlp: str = "gelu"
    positions: str = "sinusoidal"
    kernels: str = "dlkit"

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "n_layers", "d_ff", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"TransformerStackConfig: {name} must be a positive int, got {value!r}"
                )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"TransformerStackConfig: d_model={self.d_model} is not divisible by "
                f"n_heads={self.n_heads} (each head gets d_model / n_heads features)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"TransformerStackConfig: dropout must lie in [0, 1), got {self.dropout}"
            )
        if not self.norm_eps > 0:
            raise ValueError(f"TransformerStackConfig: norm_eps must be > 0, got {self.norm_eps}")
        for name, allowed in (
            ("norm", NORM_KINDS),
            ("mlp", MLP_KINDS),
            ("positions", POSITION_KINDS),
            ("kernels", KERNEL_KINDS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TransformerStackConfig: unknown {name}={getattr(self, name)!r}; "
                    f"expected one of {allowed}"
                )
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(
                f"TransformerStackConfig: positions='rope' rotates pairs of features and needs "
                f"an even head width, got d_model / n_heads = {self.head_dim}"
            )

    @property
    def head_dim(self) -> int:
        """:math:`C / H`, the width of one head."""
        return self.d_model // self.n_heads


def make_norm(config: TransformerStackConfig) -> nn.Module:
    """The normalization layer of ``config`` over the last axis of width ``d_model``.

    dlkit's :class:`LayerNorm`/:class:`RMSNorm`, or with ``kernels="torch"`` PyTorch's
    ``nn.LayerNorm``/``nn.RMSNorm`` (same parameters ``weight``, ``bias``, same math).
    """
    C, eps = config.d_model, config.norm_eps
    if config.kernels == "torch":
        if config.norm == "layernorm":
            return nn.LayerNorm(C, eps=eps, bias=config.bias)
        return nn.RMSNorm(C, eps=eps)
    if config.norm == "layernorm":
        return LayerNorm(C, eps=eps, bias=config.bias)
    return RMSNorm(C, eps=eps)


def make_mlp(config: TransformerStackConfig) -> nn.Module:
    """The position-wise MLP of ``config``: :class:`FeedForward` or :class:`SwiGLU`."""
    fused = config.kernels == "torch"
    if config.mlp == "swiglu":
        return SwiGLU(
            config.d_model, config.d_ff, bias=config.bias, dropout=config.dropout, fused=fused
        )
    return FeedForward(
        config.d_model, config.d_ff, activation=config.mlp, bias=config.bias,
        dropout=config.dropout, fused=fused,
    )  # fmt: skip


def _attention(config: TransformerStackConfig) -> MultiHeadAttention:
    return MultiHeadAttention(
        config.d_model, config.n_heads, dropout=config.dropout, bias=config.bias,
        batch_first=True, fused=config.kernels == "torch",
    )  # fmt: skip


def _check_x(x: Tensor, d_model: int, name: str) -> None:
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} expects x of shape (B, T, {d_model}), got {tuple(x.shape)}")


class _Recording(nn.Module):
    """Shared by both blocks: run an attention module and keep its weights when asked."""

    record_attention: bool
    last_attention: Tensor | None

    def _attend(self, attn: MultiHeadAttention, slot: str, q: Tensor, kv: Tensor, **kw) -> Tensor:
        out, weights = attn(
            q, kv, kv, need_weights=self.record_attention, average_attn_weights=False, **kw
        )  # (B, L, C), weights (B, H, L, S) or None
        if self.record_attention:
            setattr(self, slot, weights.detach())
        return out


class EncoderBlock(_Recording):
    """Bidirectional self-attention and an MLP, pre- or post-norm (see the module docstring).

    Attributes: ``self_attn`` (a :class:`MultiHeadAttention`, ``batch_first=True``), ``mlp``,
    ``norm1``, ``norm2``. Set ``record_attention = True`` (or pass it) to keep the last
    attention weights, ``(B, H, T, T)``, in ``last_attention`` (detached).
    """

    def __init__(self, config: TransformerStackConfig, *, record_attention: bool = False) -> None:
        super().__init__()
        self.config = config
        self.norm_first = config.norm_first
        self.self_attn = _attention(config)
        self.norm1, self.norm2 = make_norm(config), make_norm(config)
        self.mlp = make_mlp(config)
        self.dropout1, self.dropout2 = Dropout(config.dropout), Dropout(config.dropout)
        self.record_attention = record_attention
        self.last_attention: Tensor | None = None

    def _sa(self, x: Tensor, key_padding_mask, attn_mask, rotary) -> Tensor:
        out = self._attend(
            self.self_attn, "last_attention", x, x,
            key_padding_mask=key_padding_mask, attn_mask=attn_mask, rotary=rotary,
        )  # fmt: skip
        return self.dropout1(out)  # (B, T, C)

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        *,
        rotary: RotaryEmbedding | None = None,
    ) -> Tensor:
        """``x`` ``(B, T, C)`` → ``(B, T, C)``.

        ``key_padding_mask`` ``(B, T)`` bool, True = a padding key nobody attends to;
        ``attn_mask`` ``(T, T)`` (torch's convention: bool True = *not* allowed, or float
        added to the scores); ``rotary`` rotates queries and keys (positions ``"rope"``).
        """
        _check_x(x, self.config.d_model, "EncoderBlock")
        if self.norm_first:
            x = x + self._sa(self.norm1(x), key_padding_mask, attn_mask, rotary)  # (B, T, C)
            return x + self.dropout2(self.mlp(self.norm2(x)))  # (B, T, C)
        x = self.norm1(x + self._sa(x, key_padding_mask, attn_mask, rotary))  # (B, T, C)
        return self.norm2(x + self.dropout2(self.mlp(x)))  # (B, T, C)


class DecoderBlock(_Recording):
    """Causal self-attention, optional cross-attention over ``memory``, and an MLP.

    Attributes: ``self_attn``, ``cross_attn`` (``None`` when ``cross_attention=False``, as in a
    GPT), ``mlp``, and ``norm1`` (self-attention), ``norm2`` (cross-attention, only with it),
    ``norm3`` (MLP). With ``record_attention = True`` the last weights are kept in
    ``last_attention`` ``(B, H, L, S)`` (self) and ``last_cross_attention`` ``(B, H, L, S_mem)``.
    """

    def __init__(
        self,
        config: TransformerStackConfig,
        cross_attention: bool = True,
        *,
        record_attention: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.norm_first = config.norm_first
        self.self_attn = _attention(config)
        self.norm1 = make_norm(config)
        self.cross_attn = _attention(config) if cross_attention else None
        self.norm2 = make_norm(config) if cross_attention else None
        self.mlp = make_mlp(config)
        self.norm3 = make_norm(config)
        self.dropout1, self.dropout2 = Dropout(config.dropout), Dropout(config.dropout)
        self.dropout3 = Dropout(config.dropout)
        self.record_attention = record_attention
        self.last_attention: Tensor | None = None
        self.last_cross_attention: Tensor | None = None

    def _sa(self, x: Tensor, key_padding_mask, cache, rotary) -> Tensor:
        # is_causal with a cache masks with causal_mask(L, S): query i sits at cache.length + i.
        # One new query with a cache is the newest position and may see every key: its mask
        # would be all True, so none is built (the common decoding step, kept cheap).
        causal = cache is None or x.shape[1] > 1
        out = self._attend(
            self.self_attn, "last_attention", x, x,
            key_padding_mask=key_padding_mask, is_causal=causal, cache=cache, rotary=rotary,
        )  # fmt: skip
        return self.dropout1(out)  # (B, L, C)

    def _ca(self, x: Tensor, memory: Tensor, memory_key_padding_mask) -> Tensor:
        out = self._attend(
            self.cross_attn, "last_cross_attention", x, memory,
            key_padding_mask=memory_key_padding_mask,
        )  # fmt: skip
        return self.dropout2(out)  # (B, L, C)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        cache: LayerKVCache | None = None,
        rotary: RotaryEmbedding | None = None,
    ) -> Tensor:
        """``x`` ``(B, L, C)`` → ``(B, L, C)``.

        ``memory`` ``(B, S_mem, C)``: the encoder's output (required with cross-attention,
        refused without); ``memory_key_padding_mask`` ``(B, S_mem)`` True = padding;
        ``key_padding_mask`` ``(B, S)`` over the decoder's own keys (``S = L``, or the cached
        length plus ``L`` with a cache). ``cache``: this layer's :class:`LayerKVCache`; ``x``
        then holds only the new positions, which attend to every cached one. ``rotary``:
        rotary positions for the self-attention's queries and keys.
        """
        _check_x(x, self.config.d_model, "DecoderBlock")
        if self.cross_attn is None and memory is not None:
            raise ValueError(
                "DecoderBlock(cross_attention=False) got a memory; it has no cross-attention"
            )
        if self.cross_attn is not None:
            if memory is None:
                raise ValueError("DecoderBlock with cross-attention needs memory (B, S_mem, C)")
            if memory.dim() != 3 or memory.shape[0] != x.shape[0] or memory.shape[2] != x.shape[2]:
                raise ValueError(
                    f"DecoderBlock expects memory of shape ({x.shape[0]}, S_mem, {x.shape[2]}), "
                    f"got {tuple(memory.shape)}"
                )
        if self.norm_first:
            x = x + self._sa(self.norm1(x), key_padding_mask, cache, rotary)  # (B, L, C)
            if self.cross_attn is not None:
                x = x + self._ca(self.norm2(x), memory, memory_key_padding_mask)  # (B, L, C)
            return x + self.dropout3(self.mlp(self.norm3(x)))  # (B, L, C)
        x = self.norm1(x + self._sa(x, key_padding_mask, cache, rotary))  # (B, L, C)
        if self.cross_attn is not None:
            x = self.norm2(x + self._ca(x, memory, memory_key_padding_mask))  # (B, L, C)
        return self.norm3(x + self.dropout3(self.mlp(x)))  # (B, L, C)
