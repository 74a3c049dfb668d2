r"""Scaled dot-product attention and multi-head attention from primitive tensor operations.

Each query :math:`q_i` scores every key :math:`k_j` by a scaled dot product, a softmax
turns the scores of a row into weights, and the output is the weighted mean of the values:

.. math::

    \operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d}}
    + M\Big)\, V, \qquad Q \in \mathbb{R}^{L \times d},\ K \in \mathbb{R}^{S \times d},\
    V \in \mathbb{R}^{S \times d_v},

where the mask :math:`M` holds :math:`0` where query :math:`i` may look at key :math:`j`
and :math:`-\infty` where it may not (a boolean mask says which; a float mask is added as
it is). The scale :math:`1/\sqrt d` keeps the scores' variance near 1 when the entries of
:math:`q, k` have unit variance, so the softmax does not saturate as :math:`d` grows.

**Fully masked rows.** A query that may attend to no key at all has the scores
:math:`-\infty, \dots, -\infty`, and the plain softmax gives :math:`0/0 = \mathrm{NaN}`.
Here such a row gets weights 0, so its output is 0 and no gradient flows through it. This
is what ``torch.nn.functional.scaled_dot_product_attention`` returns too (its math path
uses a "safe softmax" since PyTorch 2.5); ``torch.nn.MultiheadAttention`` with
``need_weights=True`` still returns NaN for such rows, so there the two differ.

**Multi-head attention** (:class:`MultiHeadAttention`) runs :math:`H` attentions side by side
on learned projections of size :math:`d_h = E / H` and mixes their outputs:

.. math::

    \operatorname{head}_h = \operatorname{Attention}(X_q W^Q_h, X_k W^K_h, X_v W^V_h), \qquad
    \operatorname{MHA} = [\operatorname{head}_1, \dots, \operatorname{head}_H]\, W^O .

Gradients come from autograd through these operations. The tests compare values and
gradients with ``torch.nn.functional.scaled_dot_product_attention`` and
``torch.nn.MultiheadAttention`` (weights copied) in float64.

``MultiHeadAttention(..., fused=True)`` keeps the same parameters and computes the same
math with PyTorch's kernels: in self-attention one ``F.linear`` for :math:`[Q; K; V]`, and
``torch.nn.functional.scaled_dot_product_attention`` (which never stores the
:math:`L \times S` weights) whenever ``need_weights=False``; asked for the weights, it
computes them as above. This is what ``TransformerStackConfig(kernels="torch")`` uses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlkit.nn.dropout import dropout as _dropout
from dlkit.nn.kv_cache import LayerKVCache
from dlkit.nn.layers import Linear
from dlkit.nn.positions import RotaryEmbedding

__all__ = [
    "MultiHeadAttention",
    "attention_weights",
    "causal_mask",
    "merge_heads",
    "scaled_dot_product_attention",
    "split_heads",
]


def causal_mask(
    query_len: int, key_len: int | None = None, *, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""Boolean ``(query_len, key_len)`` mask, True where query :math:`i` may attend to key :math:`j`.

    The queries are the *last* ``query_len`` positions of the key sequence: query :math:`i`
    sits at absolute position :math:`p_i = S - L + i` and may look at keys :math:`j \le p_i`.
    That is what decoding with a KV cache needs (one new query sees every cached key). For
    ``query_len == key_len`` it is the usual lower triangle, equal to PyTorch's
    ``is_causal=True``; for :math:`L \ne S` PyTorch aligns the triangle at the top-left
    corner instead (:func:`scaled_dot_product_attention` follows PyTorch there).
    """
    key_len = query_len if key_len is None else key_len
    if query_len < 0 or key_len < query_len:
        raise ValueError(
            f"causal_mask needs 0 <= query_len <= key_len, got query_len={query_len}, "
            f"key_len={key_len}"
        )
    q_pos = torch.arange(key_len - query_len, key_len, device=device)  # (L,) absolute positions
    k_pos = torch.arange(key_len, device=device)  # (S,)
    return k_pos[None, :] <= q_pos[:, None]  # (L, S)


def _check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Size:
    """Validate shapes and dtypes; return the batch shape of the scores."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must have at least 2 dims (..., length, dim), got {got}")
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(
            f"query, key and value must share one dtype, got {query.dtype}, {key.dtype}, "
            f"{value.dtype}"
        )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must have the same last dim (the dot product's d), got query "
            f"{tuple(query.shape)} and key {tuple(key.shape)}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"key and value must have the same length S (dim -2), got key "
            f"{tuple(key.shape)} and value {tuple(value.shape)}"
        )
    try:
        return torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the batch dims of query {tuple(query.shape)}, key {tuple(key.shape)} and value "
            f"{tuple(value.shape)} do not broadcast"
        ) from None


def _check_mask(mask: torch.Tensor, scores_shape: tuple[int, ...], name: str) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.dtype.is_floating_point:
        raise TypeError(
            f"{name} must be bool (True = may attend) or floating point (added to the "
            f"scores), got {mask.dtype}"
        )
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"(..., L, S) = {scores_shape}"
        )


def _apply_mask(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Boolean mask: :math:`-\\infty` where False. Float mask: added to the scores."""
    if mask is None:
        return scores
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, float("-inf"))  # (..., L, S)
    return scores + mask.to(scores.dtype)  # (..., L, S)


def _safe_softmax(scores: torch.Tensor) -> torch.Tensor:
    r"""Softmax over the last axis; a row of all :math:`-\infty` gives zeros, not NaN.

    :math:`\operatorname{softmax}(s)_j = e^{s_j - m} / \sum_k e^{s_k - m}` with
    :math:`m = \max_k s_k`: subtracting the row maximum changes nothing mathematically
    (so it needs no gradient) and keeps every exponent :math:`\le 0`, so nothing overflows
    even for scores of :math:`\pm 10^4`.
    """
    row_max = scores.detach().amax(dim=-1, keepdim=True)  # (..., L, 1), a constant shift
    row_max = torch.where(torch.isfinite(row_max), row_max, 0.0)  # all -inf row -> shift 0
    e = torch.exp(scores - row_max)  # (..., L, S), masked entries exactly 0
    total = e.sum(dim=-1, keepdim=True)  # (..., L, 1), 0 for a fully masked row
    return e / torch.where(total > 0, total, 1.0)  # (..., L, S); 0 / 1 = 0 on such rows


def _top_left_causal(query_len: int, key_len: int, device: torch.device) -> torch.Tensor:
    """PyTorch's ``is_causal`` mask: ``ones(L, S).tril()``, i.e. key j <= query i."""
    return torch.ones(query_len, key_len, dtype=torch.bool, device=device).tril()  # (L, S)


def _weights(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
    scale: float | None,
    batch_shape: torch.Size,
) -> torch.Tensor:
    L, S = query.shape[-2], key.shape[-2]
    scores_shape = (*batch_shape, L, S)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("pass either attn_mask or is_causal=True, not both (as PyTorch)")
        attn_mask = _top_left_causal(L, S, query.device)  # (L, S)
    elif attn_mask is not None:
        _check_mask(attn_mask, scores_shape, "attn_mask")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = (query @ key.transpose(-2, -1)) * scale  # (..., L, d) @ (..., d, S) -> (..., L, S)
    scores = _apply_mask(scores, attn_mask)  # (..., L, S)
    return _safe_softmax(scores)  # (..., L, S), rows sum to 1 (or 0 when fully masked)


def attention_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    r"""The softmax weights :math:`\operatorname{softmax}(Q K^\top \cdot \text{scale} + M)`, ``(..., L, S)``.

    Same arguments and mask semantics as :func:`scaled_dot_product_attention` (without the
    value and dropout): what a heat map of "who looks at whom" shows.
    """
    batch_shape = _check_qkv(query, key, key[..., :1])  # value only for the shape check
    return _weights(query, key, attn_mask, is_causal, scale, batch_shape)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Attention :math:`\operatorname{softmax}(Q K^\top \cdot \text{scale} + M)\, V`, like PyTorch's.

    Args:
        query: ``(..., L, d)``.
        key: ``(..., S, d)``.
        value: ``(..., S, d_v)``. The leading (batch, head) dims of the three broadcast.
        attn_mask: broadcastable to ``(..., L, S)``; **bool: True = may attend**, False gives
            the score :math:`-\infty`; float: added to the scores (use ``-inf`` to forbid).
        dropout_p: drop each attention weight with this probability (and scale the rest by
            :math:`1/(1-p)`). Like PyTorch's function this applies whenever ``dropout_p > 0``:
            pass 0 at evaluation time (modules pass ``p if self.training else 0``).
        is_causal: mask key :math:`j > i` for query :math:`i` (PyTorch's top-left triangle
            ``ones(L, S).tril()``; see :func:`causal_mask` for the KV-cache alignment).
            Not together with ``attn_mask``.
        scale: the factor on :math:`Q K^\top`; default :math:`1/\sqrt d`.
        generator: random generator for the dropout mask, for reproducible draws.

    Returns ``(..., L, d_v)``. A query row with every key masked returns zeros (as PyTorch's
    function does). Shape, dtype and mask errors raise ``ValueError`` / ``TypeError``.
    """
    batch_shape = _check_qkv(query, key, value)
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout_p must lie in [0, 1], got {dropout_p}")
    weights = _weights(query, key, attn_mask, is_causal, scale, batch_shape)  # (..., L, S)
    if dropout_p > 0.0:
        weights = _dropout(weights, dropout_p, True, generator=generator)  # (..., L, S)
    return weights @ value  # (..., L, S) @ (..., S, d_v) -> (..., L, d_v)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, T, E) -> (B, H, T, E/H)``: head :math:`h` gets features ``h*hd .. (h+1)*hd - 1``."""
    if x.dim() != 3 or x.shape[-1] % num_heads != 0:
        raise ValueError(
            f"split_heads expects (B, T, E) with E divisible by num_heads={num_heads}, "
            f"got {tuple(x.shape)}"
        )
    B, T, E = x.shape
    return x.view(B, T, num_heads, E // num_heads).transpose(1, 2)  # (B, H, T, hd)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, hd) -> (B, T, H*hd)``, the inverse of :func:`split_heads`."""
    if x.dim() != 4:
        raise ValueError(f"merge_heads expects (B, H, T, hd), got {tuple(x.shape)}")
    B, H, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hd)  # (B, T, H, hd) -> (B, T, E)


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention with ``torch.nn.MultiheadAttention``'s parameters and conventions.

    .. math::

        Q = X_q W_Q^\top + b_Q,\quad K = X_k W_K^\top + b_K,\quad V = X_v W_V^\top + b_V,
        \qquad
        \operatorname{MHA} = \big[\operatorname{Attention}(Q_h, K_h, V_h)\big]_{h=1}^{H}
        W_O^\top + b_O,

    with :math:`Q_h` the :math:`h`-th block of :math:`d_h = E/H` columns of :math:`Q`.

    Parameters (the names of PyTorch's module, so ``load_state_dict(torch_mha.state_dict())``
    works): ``in_proj_weight`` ``(3E, E)`` holding :math:`[W_Q; W_K; W_V]` when
    ``kdim == vdim == embed_dim``, otherwise ``q_proj_weight`` ``(E, E)``, ``k_proj_weight``
    ``(E, kdim)``, ``v_proj_weight`` ``(E, vdim)``; ``in_proj_bias`` ``(3E,)``;
    ``out_proj.weight`` ``(E, E)``, ``out_proj.bias`` ``(E,)``. Initialization as PyTorch's,
    in the same order: ``out_proj`` as a :class:`~dlkit.nn.layers.Linear`, then
    ``xavier_uniform_`` for the input projections, then all biases zero.

    Args:
        embed_dim: :math:`E`, the model width (query features and output features).
        num_heads: :math:`H`; must divide ``embed_dim``.
        dropout: dropout on the attention weights, in training mode only.
        bias: learn the projection biases.
        kdim, vdim: feature sizes of key and value (default ``embed_dim``), for
            cross-attention to a memory of another width.
        batch_first: inputs ``(B, T, E)`` instead of ``(T, B, E)``.
        fused: extension: compute the same math with PyTorch's kernels (one ``F.linear``
            for :math:`[Q; K; V]` in self-attention, ``F.scaled_dot_product_attention``
            unless the weights are requested); same parameters and state dict.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        *,
        fused: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if embed_dim < 1 or num_heads < 1:
            raise ValueError(
                f"embed_dim and num_heads must be >= 1, got {embed_dim} and {num_heads}"
            )
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim={embed_dim} must be divisible by num_heads={num_heads} "
                f"(each head gets embed_dim / num_heads features)"
            )
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must lie in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first, self.fused = float(dropout), batch_first, fused
        factory = {"device": device, "dtype": dtype}
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * E, E, **factory))  # [W_Q; W_K; W_V]
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(E, E, **factory))  # (E, E)
            self.k_proj_weight = nn.Parameter(torch.empty(E, self.kdim, **factory))  # (E, kdim)
            self.v_proj_weight = nn.Parameter(torch.empty(E, self.vdim, **factory))  # (E, vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * E, **factory))  # [b_Q; b_K; b_V]
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, **factory)  # W_O, b_O (draws its init here)
        self._reset_parameters()

    @torch.no_grad()
    def _reset_parameters(self) -> None:
        r"""Xavier-uniform input projections, :math:`\mathcal U(\pm\sqrt{6/(\text{fan}_\text{in} + \text{fan}_\text{out})})`; zero biases."""
        weights = (
            [self.in_proj_weight]
            if self._qkv_same_embed_dim
            else [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        )
        for w in weights:
            fan_out, fan_in = w.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            w.uniform_(-bound, bound)
        if self.in_proj_bias is not None:
            self.in_proj_bias.zero_()
            self.out_proj.bias.zero_()

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, E) -> (B, H, T, hd)``."""
        return split_heads(x, self.num_heads)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, T, hd) -> (B, T, E)``."""
        return merge_heads(x)

    def _projections(self) -> tuple[torch.Tensor, ...]:
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)  # (E, E) each
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        if self.in_proj_bias is None:
            return w_q, w_k, w_v, None, None, None
        return (w_q, w_k, w_v, *self.in_proj_bias.chunk(3))  # biases (E,) each

    def _check_inputs(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        layout = "(B, T, features)" if self.batch_first else "(T, B, features)"
        if not query.dim() == key.dim() == value.dim() or query.dim() not in (2, 3):
            raise ValueError(
                f"query, key and value must all be 3-D {layout} (or 2-D unbatched), got "
                f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
            )
        for name, t, want in (
            ("query", query, self.embed_dim),
            ("key", key, self.kdim),
            ("value", value, self.vdim),
        ):
            if t.shape[-1] != want:
                raise ValueError(
                    f"{name} must have {want} features (last dim), got {tuple(t.shape)}"
                )
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(
                f"key and value must agree in batch and length, got {tuple(key.shape)} and "
                f"{tuple(value.shape)}"
            )
        b_axis = 0 if self.batch_first else 1
        if query.dim() == 3 and query.shape[b_axis] != key.shape[b_axis]:
            raise ValueError(
                f"query and key must have the same batch size in layout {layout}, got "
                f"{tuple(query.shape)} and {tuple(key.shape)}"
            )

    def _merged_mask(
        self,
        key_padding_mask: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        B: int,
        L: int,
        S: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor | None:
        """One mask in :func:`scaled_dot_product_attention`'s convention, ``(B, H | 1, L, S)``.

        PyTorch's module masks say what is *forbidden* (bool True = ignore); here they are
        turned into "True = may attend" (all bool) or an additive float mask (any float).
        """
        H = self.num_heads
        masks = []  # (forbidden-bool or additive-float) tensors broadcastable to (B, H, L, S)
        if key_padding_mask is not None:
            if key_padding_mask.shape != (B, S):
                raise ValueError(
                    f"key_padding_mask must have shape (B, S) = {(B, S)}, got "
                    f"{tuple(key_padding_mask.shape)}"
                )
            _check_mask(key_padding_mask, (B, S), "key_padding_mask")
            masks.append(key_padding_mask[:, None, None, :])  # (B, 1, 1, S)
        if attn_mask is not None:
            _check_mask(attn_mask, attn_mask.shape, "attn_mask")  # dtype check
            if attn_mask.dim() == 2 and attn_mask.shape == (L, S):
                masks.append(attn_mask)  # (L, S)
            elif attn_mask.dim() == 3 and attn_mask.shape == (B * H, L, S):
                masks.append(attn_mask.view(B, H, L, S))  # (B*H, L, S) -> (B, H, L, S)
            else:
                raise ValueError(
                    f"attn_mask must have shape (L, S) = {(L, S)} or (B*H, L, S) = "
                    f"{(B * H, L, S)}, got {tuple(attn_mask.shape)}"
                )
        if is_causal:
            masks.append(~causal_mask(L, S, device=device))  # (L, S), True = forbidden
        if not masks:
            return None
        if all(m.dtype == torch.bool for m in masks):
            forbidden = masks[0]
            for m in masks[1:]:
                forbidden = forbidden | m  # broadcast towards (B, H, L, S)
            return ~forbidden  # True = may attend
        additive = torch.zeros((), dtype=dtype, device=device)
        for m in masks:
            if m.dtype == torch.bool:
                m = torch.zeros(m.shape, dtype=dtype, device=device).masked_fill(m, float("-inf"))
            additive = additive + m.to(dtype)  # broadcast towards (B, H, L, S)
        return additive

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
        *,
        rotary: RotaryEmbedding | None = None,
        cache: LayerKVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""Attend from ``query`` to ``key``/``value``; returns ``(output, weights | None)``.

        Args:
            query: ``(L, B, E)`` (``(B, L, E)`` with ``batch_first``), or ``(L, E)`` unbatched.
            key: ``(S, B, kdim)``; value: ``(S, B, vdim)`` (same layouts).
            key_padding_mask: ``(B, S)``; **bool True = ignore that key** (PyTorch's module
                convention, the opposite of :func:`scaled_dot_product_attention`'s), or
                float added to the scores.
            need_weights: also return the attention weights (after dropout, as PyTorch).
            attn_mask: ``(L, S)`` or ``(B*H, L, S)``; **bool True = not allowed**, or float
                added.
            average_attn_weights: weights ``(B, L, S)`` averaged over the heads, else
                ``(B, H, L, S)``.
            is_causal: apply :func:`causal_mask` ``(L, S)`` (the queries are the last
                :math:`L` positions). Unlike PyTorch, no ``attn_mask`` is needed for it; if
                one is given as well, both apply.
            rotary: extension: a :class:`~dlkit.nn.positions.RotaryEmbedding` applied to the
                per-head queries and keys at absolute positions ``offset .. offset+L-1``,
                ``offset = cache.length`` before this call (0 without a cache). Self-attention.
            cache: extension: a :class:`~dlkit.nn.kv_cache.LayerKVCache`; this call's keys and
                values are appended and the queries attend to all cached ones, so ``S`` in the
                masks above is the cache length after the append. Use under
                ``torch.no_grad()`` (the cache is written in place).

        Returns ``output`` in the layout of ``query`` and the weights (or ``None``). A query
        whose keys are all masked gets output :math:`b_O` (attention output 0) and weights 0
        where PyTorch's module gives NaN.
        """
        self._check_inputs(query, key, value)
        self_attention = query is key and key is value
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))  # (1, T, *)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))  # (B, T, *)
        if unbatched and key_padding_mask is not None and key_padding_mask.dim() == 1:
            key_padding_mask = key_padding_mask.unsqueeze(0)  # (S,) -> (1, S)
        B, L, _ = query.shape
        if self.fused:
            q, k, v = self._fused_projections(query, key, value, self_attention)
        else:
            w_q, w_k, w_v, b_q, b_k, b_v = self._projections()
            q, k, v = query @ w_q.T, key @ w_k.T, value @ w_v.T  # (B, L, E), (B, S, E) x 2
            if b_q is not None:
                q, k, v = q + b_q, k + b_k, v + b_v
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H, T, hd)
        offset = cache.length if cache is not None else 0
        if rotary is not None:
            if rotary.head_dim != self.head_dim:
                raise ValueError(
                    f"rotary has head_dim={rotary.head_dim}, attention heads have {self.head_dim}"
                )
            q, k = rotary(q, offset=offset), rotary(k, offset=offset)  # (B, H, T, hd)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H, S_total, hd): all keys and values so far
        S = k.shape[-2]
        p = self.dropout if self.training else 0.0
        weights = None
        if self.fused and not need_weights:
            out = self._fused_attention(q, k, v, key_padding_mask, attn_mask, is_causal, p)
        else:
            mask = self._merged_mask(
                key_padding_mask, attn_mask, is_causal, B, L, S, q.dtype, q.device
            )  # (B | 1, H | 1, L, S) or None
            weights = _weights(q, k, mask, False, None, q.shape[:-2])  # (B, H, L, S)
            if p > 0.0:
                weights = _dropout(weights, p, True)  # (B, H, L, S)
            out = weights @ v  # (B, H, L, S) @ (B, H, S, hd) -> (B, H, L, hd)
        out = self.merge_heads(out)  # (B, H, L, hd) -> (B, L, E)
        if self.fused:
            out = F.linear(out, self.out_proj.weight, self.out_proj.bias)  # (B, L, E)
        else:
            out = self.out_proj(out)  # (B, L, E)
        if unbatched:
            out = out.squeeze(0)  # (L, E)
            weights = None if weights is None else weights.squeeze(0)  # (H, L, S)
        elif not self.batch_first:
            out = out.transpose(0, 1)  # (L, B, E)
        if not need_weights:
            return out, None
        return out, weights.mean(dim=-3) if average_attn_weights else weights

    def _fused_projections(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, self_attention: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:math:`Q, K, V` with ``F.linear``; one matrix product when all three come from ``x``."""
        E = self.embed_dim
        if self_attention and self._qkv_same_embed_dim:
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3E)
            return qkv.split(E, dim=-1)  # 3 views (B, L, E) of one tensor
        w_q, w_k, w_v, b_q, b_k, b_v = self._projections()
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    def _fused_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        dropout_p: float,
    ) -> torch.Tensor:
        """``F.scaled_dot_product_attention`` with the masks of :meth:`forward`, ``(B, H, L, hd)``.

        Causal attention over as many keys as queries is PyTorch's ``is_causal=True`` (no mask
        tensor is built); with a cache (``S > L``) the queries are the last ``L`` positions,
        which needs :func:`causal_mask`, since PyTorch's ``is_causal`` aligns top-left.
        """
        B, _, L, _ = q.shape
        S = k.shape[-2]
        if key_padding_mask is None and attn_mask is None and (not is_causal or L == S):
            return F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout_p, is_causal=is_causal
            )  # (B, H, L, hd)
        mask = self._merged_mask(
            key_padding_mask, attn_mask, is_causal, B, L, S, q.dtype, q.device
        )  # (B | 1, H | 1, L, S): bool True = may attend, or float added to the scores
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)

    def extra_repr(self) -> str:
        extra = "" if self._qkv_same_embed_dim else f", kdim={self.kdim}, vdim={self.vdim}"
        fused = ", fused=True" if self.fused else ""
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}{extra}{fused}"
        )
