r"""Scaled dot-product attention and multi-head self-attention in NumPy, forward and backward.

**Scaled dot-product attention.** Queries :math:`Q` ``(..., L, d)``, keys :math:`K`
``(..., S, d)`` and values :math:`V` ``(..., S, d_v)`` give

.. math::

    A = s\, Q K^\top + M, \qquad
    P = \operatorname{softmax}_{\text{row}}(A), \qquad
    O = P V, \qquad s = \frac{1}{\sqrt{d}} \text{ by default},

with scores :math:`A` and weights :math:`P` ``(..., L, S)`` and output :math:`O`
``(..., L, d_v)``. Leading (batch) axes broadcast as in ``np.matmul``. The mask :math:`M`
is either **boolean**, True where query :math:`i` may attend to key :math:`j`
(:math:`M_{ij} = 0`) and False where it may not (:math:`M_{ij} = -\infty`), or **float**,
added to the scores as it is (:math:`-\infty` entries forbid, other values bias). That is
``torch.nn.functional.scaled_dot_product_attention``'s ``attn_mask`` convention.

**Stable softmax.** :math:`\operatorname{softmax}(a)_j = e^{a_j - m} / \sum_k e^{a_k - m}`
with :math:`m = \max_k a_k`, the same value for any :math:`m` but with every exponent
:math:`\le 0`, so logits of :math:`\pm 10^4` neither overflow nor turn into ``nan``.

**Fully masked rows.** When every key of query :math:`i` is masked (all
:math:`A_{ij} = -\infty`) the softmax is :math:`0/0`. Here that row of :math:`P` is **0**,
so its output row is 0 and no gradient flows through it (to :math:`Q`, :math:`K` or
:math:`V`): the same decision as :mod:`dlkit.nn` and PyTorch 2.13's
``scaled_dot_product_attention`` (which returns 0 rather than ``nan``). A large finite
negative value such as :math:`-10^9` is *not* a mask: a row of them is a plain softmax.

**Backward.** With :math:`G = \partial L / \partial O`:

.. math::

    \frac{\partial L}{\partial V} = P^\top G, \qquad
    \frac{\partial L}{\partial P} = G V^\top .

Each row of :math:`P` is a softmax, whose Jacobian is
:math:`\partial p_j / \partial a_k = p_j (\delta_{jk} - p_k)`, so with
:math:`D = \partial L / \partial P`

.. math::

    \frac{\partial L}{\partial A} = P \odot \Big(D - \operatorname{rowsum}(D \odot P)\Big),
    \qquad
    \frac{\partial L}{\partial Q} = s\, \frac{\partial L}{\partial A} K, \qquad
    \frac{\partial L}{\partial K} = s \Big(\frac{\partial L}{\partial A}\Big)^{\!\top} Q .

Masked entries have :math:`p_{ij} = 0`, so their score gradient is 0 by this formula; a
fully masked row (:math:`P_{i\cdot} = 0`) gets 0 everywhere. The mask is a constant: it
gets no gradient. A broadcast input's gradient is summed over the axes it was stretched
along (:func:`~dlkit.scratch.ops.unbroadcast`).

**Multi-head self-attention** on :math:`X` ``(B, T, E)`` with :math:`H` heads of size
:math:`h = E / H`, in ``torch.nn.MultiheadAttention``'s parameter layout
(``in_proj_weight`` :math:`= [W_q; W_k; W_v]` ``(3E, E)``, ``in_proj_bias`` ``(3E,)``,
``out_proj_weight`` ``(E, E)``, ``out_proj_bias`` ``(E,)``):

.. math::

    [Q\; K\; V] = X W_{\text{in}}^\top + b_{\text{in}}, \qquad
    \text{head}_n = \operatorname{Attention}(Q_n, K_n, V_n), \qquad
    Y = [\text{head}_1 \cdots \text{head}_H]\, W_{\text{out}}^\top + b_{\text{out}},

where :math:`Q_n` holds columns :math:`n h, \dots, (n+1) h - 1` of :math:`Q` (PyTorch's
split) and the scale is :math:`1/\sqrt{h}`. Its backward is the attention backward above
between the two linear maps' backwards
(:math:`\partial L/\partial W = G^\top X`, :math:`\partial L/\partial X = G W`,
:math:`\partial L/\partial b = \mathbf 1^\top G`, summed over batch and time).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlkit.scratch.ops import unbroadcast

__all__ = [
    "AttentionCache",
    "MultiHeadSelfAttentionCache",
    "attention_backward",
    "attention_forward",
    "multi_head_self_attention_backward",
    "multi_head_self_attention_forward",
]

# {"in_proj_weight": (3E, E), "in_proj_bias": (3E,), "out_proj_weight": (E, E),
#  "out_proj_bias": (E,)}, as in torch.nn.MultiheadAttention
MHAParams = dict[str, np.ndarray]


class AttentionCache(NamedTuple):
    """What :func:`attention_backward` needs from the forward pass."""

    q: np.ndarray  # (..., L, d)
    k: np.ndarray  # (..., S, d)
    v: np.ndarray  # (..., S, dv)
    weights: np.ndarray  # (..., L, S) softmax weights P; 0 on fully masked rows
    scale: float


class MultiHeadSelfAttentionCache(NamedTuple):
    """What :func:`multi_head_self_attention_backward` needs from the forward pass."""

    x: np.ndarray  # (B, T, E)
    params: MHAParams
    num_heads: int
    merged: np.ndarray  # (B, T, E) heads concatenated, before the output projection
    attention: AttentionCache  # per-head attention, q, k, v of shape (B, H, T, hd)


def _as_float(name: str, value: object) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {array.dtype}")
    return array


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)  # (..., m, n) -> (..., n, m)


def _check_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    for name, a, dims in (("q", q, "(..., L, d)"), ("k", k, "(..., S, d)"),
                          ("v", v, "(..., S, dv)")):  # fmt: skip
        if a.ndim < 2:
            raise ValueError(f"{name} must have shape {dims}, got shape {a.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last (head) dimension d: q has shape {q.shape} "
            f"(d={q.shape[-1]}), k has shape {k.shape} (d={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys S (second-to-last axis): k has shape "
            f"{k.shape} (S={k.shape[-2]}), v has shape {v.shape} (S={v.shape[-2]})"
        )
    try:
        np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"the leading (batch) axes of q {q.shape}, k {k.shape} and v {v.shape} do not "
            "broadcast: aligned from the right, each must be equal or 1"
        ) from None


def _masked_scores(scores: np.ndarray, mask: object | None) -> np.ndarray:
    """The scores with the mask applied: -inf where a boolean mask is False, + a float mask."""
    if mask is None:
        return scores
    m = np.asarray(mask)
    if m.dtype != np.bool_ and m.dtype.kind != "f":
        raise TypeError(
            "mask must be boolean (True = may attend) or floating-point (added to the "
            f"scores), got dtype {m.dtype}"
        )
    try:
        fits = np.broadcast_shapes(m.shape, scores.shape) == scores.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"mask of shape {m.shape} does not broadcast to the scores' shape (..., L, S) = "
            f"{scores.shape}"
        )
    if m.dtype == np.bool_:
        return np.where(m, scores, -np.inf)  # (..., L, S)
    if np.isnan(m).any() or np.isposinf(m).any():
        raise ValueError("a float mask may hold finite values and -inf, but it holds nan or +inf")
    return scores + m.astype(scores.dtype, copy=False)  # (..., L, S)


def _masked_softmax(scores: np.ndarray) -> np.ndarray:
    """Row softmax over the last axis, stable, with all-(-inf) rows giving 0 instead of nan."""
    row_max = scores.max(axis=-1, keepdims=True)  # (..., L, 1); -inf on a fully masked row
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.exp(scores - row_max)  # every exponent <= 0; exp(-inf) = 0
    total = e.sum(axis=-1, keepdims=True)  # (..., L, 1); 0 only on a fully masked row
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)  # (..., L, S)


def attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    scale: float | None = None,
) -> tuple[np.ndarray, AttentionCache]:
    r"""Scaled dot-product attention :math:`\operatorname{softmax}(s\,QK^\top + M)\,V`.

    Args:
        q: queries ``(..., L, d)``.
        k: keys ``(..., S, d)``.
        v: values ``(..., S, dv)``. Leading axes of q, k, v broadcast.
        mask: ``None``, a boolean array (True = may attend) or a float array added to the
            scores, broadcastable to the scores' shape ``(..., L, S)``.
        scale: :math:`s`; ``None`` means :math:`1/\sqrt{d}`.

    Returns:
        ``(out, cache)``: ``out`` ``(..., L, dv)``, zero on query rows whose keys are all
        masked; ``cache`` for :func:`attention_backward` (``cache.weights`` is :math:`P`).

    Raises:
        TypeError: non-floating q, k or v; a mask that is neither boolean nor floating.
        ValueError: q and k with different last dimensions, k and v with different
            numbers of keys, leading axes that do not broadcast, a mask that does not
            broadcast to ``(..., L, S)``, or a float mask holding nan or +inf.
    """
    q, k, v = _as_float("q", q), _as_float("k", k), _as_float("v", v)
    _check_qkv(q, k, v)
    scale = float(1.0 / np.sqrt(q.shape[-1])) if scale is None else float(scale)
    scores = scale * (q @ _swap(k))  # (..., L, S)
    scores = _masked_scores(scores, mask)  # (..., L, S)
    weights = _masked_softmax(scores)  # (..., L, S)
    out = weights @ v  # (..., L, dv)
    return out, AttentionCache(q, k, v, weights, scale)


def attention_backward(
    dout: np.ndarray, cache: AttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients ``(dq, dk, dv)`` of :func:`attention_forward`, given ``dout`` :math:`= \partial L / \partial O`.

    ``dout`` has the output's shape ``(..., L, dv)``; each gradient has its input's shape.
    """
    q, k, v, p, scale = cache
    dout = _as_float("dout", dout)
    expected = (*p.shape[:-1], v.shape[-1])
    if dout.shape != expected:
        raise ValueError(
            f"dout must have the output's shape (..., L, dv) = {expected}, got {dout.shape}"
        )
    dv = unbroadcast(_swap(p) @ dout, v.shape)  # P^T G: (..., S, dv)
    dp = dout @ _swap(v)  # G V^T: (..., L, S)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))  # softmax backward: (..., L, S)
    dq = unbroadcast(scale * (ds @ k), q.shape)  # (..., L, d)
    dk = unbroadcast(scale * (_swap(ds) @ q), k.shape)  # (..., S, d)
    return dq, dk, dv


def _split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    b, t, e = x.shape
    return x.reshape(b, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)  # (B, H, T, hd)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    b, h, t, hd = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * hd)  # (B, T, E)


def _check_mha(x: np.ndarray, params: MHAParams, num_heads: int) -> None:
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, E), got shape {x.shape}")
    embed = x.shape[-1]
    if isinstance(num_heads, bool) or not isinstance(num_heads, int | np.integer):
        raise TypeError(f"num_heads must be an int, got {type(num_heads).__name__}")
    if num_heads < 1 or embed % num_heads:
        raise ValueError(
            f"the embedding size E={embed} must be divisible by num_heads={num_heads} "
            "(each head gets E / num_heads features)"
        )
    shapes = {
        "in_proj_weight": (3 * embed, embed),
        "in_proj_bias": (3 * embed,),
        "out_proj_weight": (embed, embed),
        "out_proj_bias": (embed,),
    }
    missing = set(shapes) - set(params)
    if missing:
        raise KeyError(
            f"multi-head attention parameters need {sorted(shapes)}; missing {sorted(missing)}"
        )
    for name, shape in shapes.items():
        if np.shape(params[name]) != shape:
            raise ValueError(
                f"with E={embed}, {name} must have shape {shape}, got {np.shape(params[name])}"
            )


def multi_head_self_attention_forward(
    x: np.ndarray, params: MHAParams, num_heads: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, MultiHeadSelfAttentionCache]:
    """Multi-head self-attention on ``x`` ``(B, T, E)``, like ``nn.MultiheadAttention(x, x, x)``.

    Args:
        x: ``(B, T, E)`` (batch first).
        params: ``in_proj_weight`` ``(3E, E)``, ``in_proj_bias`` ``(3E,)``,
            ``out_proj_weight`` ``(E, E)``, ``out_proj_bias`` ``(E,)`` (PyTorch's names and
            layout: the arrays of a ``batch_first`` MultiheadAttention's ``state_dict()``, with
            ``out_proj.weight`` and ``out_proj.bias`` renamed ``out_proj_weight`` and
            ``out_proj_bias``).
        num_heads: :math:`H`, which must divide :math:`E`.
        mask: as in :func:`attention_forward` (**True = may attend**, or float added),
            broadcastable to ``(B, H, T, T)``, e.g. ``(T, T)``. Note that
            ``nn.MultiheadAttention``'s boolean ``attn_mask`` means the opposite (True =
            not allowed): pass ``~attn_mask`` here.

    Returns:
        ``(out (B, T, E), cache)``. A fully masked query row's output is ``out_proj_bias``.
    """
    x = _as_float("x", x)
    _check_mha(x, params, num_heads)
    w_in, b_in = params["in_proj_weight"], params["in_proj_bias"]
    qkv = x @ w_in.T + b_in  # (B, T, 3E)
    q, k, v = np.split(qkv, 3, axis=-1)  # 3 x (B, T, E)
    qh, kh, vh = (_split_heads(a, num_heads) for a in (q, k, v))  # 3 x (B, H, T, hd)
    heads, attention = attention_forward(qh, kh, vh, mask)  # (B, H, T, hd)
    merged = _merge_heads(heads)  # (B, T, E)
    out = merged @ params["out_proj_weight"].T + params["out_proj_bias"]  # (B, T, E)
    return out, MultiHeadSelfAttentionCache(x, params, num_heads, merged, attention)


def multi_head_self_attention_backward(
    dout: np.ndarray, cache: MultiHeadSelfAttentionCache
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Gradients of :func:`multi_head_self_attention_forward` for ``dout`` ``(B, T, E)``.

    Returns:
        ``(dx (B, T, E), grads)`` with ``grads`` keyed like the parameters.
    """
    x, params, num_heads, merged, attention = cache
    dout = _as_float("dout", dout)
    if dout.shape != x.shape:
        raise ValueError(
            f"dout must have the output's shape (B, T, E) = {x.shape}, got {dout.shape}"
        )
    embed = x.shape[-1]
    grads = {
        "out_proj_weight": dout.reshape(-1, embed).T @ merged.reshape(-1, embed),  # (E, E)
        "out_proj_bias": dout.sum(axis=(0, 1)),  # (E,)
    }
    dmerged = dout @ params["out_proj_weight"]  # (B, T, E)
    dheads = _split_heads(dmerged, num_heads)  # (B, H, T, hd)
    dqh, dkh, dvh = attention_backward(dheads, attention)  # 3 x (B, H, T, hd)
    dqkv = np.concatenate([_merge_heads(d) for d in (dqh, dkh, dvh)], axis=-1)  # (B, T, 3E)
    grads["in_proj_weight"] = dqkv.reshape(-1, 3 * embed).T @ x.reshape(-1, embed)  # (3E, E)
    grads["in_proj_bias"] = dqkv.sum(axis=(0, 1))  # (3E,)
    dx = dqkv @ params["in_proj_weight"]  # (B, T, E)
    order = ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias")
    return dx, {name: grads[name] for name in order}
