r"""A key/value cache for autoregressive decoding.

Generating token :math:`t+1` with a causal Transformer needs the attention of the newest
query over *all* keys and values :math:`k_{1..t+1}, v_{1..t+1}`. The old ones do not change
(causality: position :math:`j` never sees later tokens), so instead of recomputing the
whole prefix at every step, each attention layer keeps them and appends one row per step.
A step then costs :math:`O(t)` attention instead of :math:`O(t^2)`, paid for in memory:

.. math::

    \text{bytes} = 2 \cdot n_\text{layers} \cdot B \cdot T \cdot d_\text{model} \cdot
    \text{bytes per value},

the 2 for keys and values, :math:`d_\text{model} = H \cdot d_h`. :class:`KVCache`
preallocates both tensors ``(n_layers, B, H, max_len, d_h)`` once (no reallocation while
decoding) and hands each layer a :class:`LayerKVCache` view of its slice.

The cache is written in place, so use it for inference, under ``torch.no_grad()``.
"""

from __future__ import annotations

import torch

__all__ = ["KVCache", "LayerKVCache", "kv_cache_bytes"]


def kv_cache_bytes(
    num_layers: int, batch_size: int, seq_len: int, d_model: int, bytes_per_value: int
) -> int:
    r""":math:`2 \cdot n_\text{layers} \cdot B \cdot T \cdot d_\text{model} \cdot \text{bytes}`: keys and values of every layer."""
    return 2 * num_layers * batch_size * seq_len * d_model * bytes_per_value


class LayerKVCache:
    """One layer's keys and values, ``(B, H, max_len, hd)`` each, filled up to ``length``.

    Made by :meth:`KVCache.layer`; the tensors are views into the :class:`KVCache`'s storage.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        if keys.shape != values.shape or keys.dim() != 4:
            raise ValueError(
                f"keys and values must both be (B, H, max_len, hd), got {tuple(keys.shape)} "
                f"and {tuple(values.shape)}"
            )
        self.keys, self.values = keys, values  # (B, H, max_len, hd) each
        self.max_len = keys.shape[2]
        self.length = 0  # positions filled

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k``, ``v`` ``(B, H, L, hd)``; return all keys and values ``(B, H, S, hd)``.

        ``S = length`` after the append. The returned tensors are views of the cache.
        """
        B, H, _, hd = self.keys.shape
        for name, t in (("k", k), ("v", v)):
            if t.dim() != 4 or t.shape[0] != B or t.shape[1] != H or t.shape[3] != hd:
                raise ValueError(
                    f"{name} must have shape (B, H, L, hd) = ({B}, {H}, L, {hd}), got "
                    f"{tuple(t.shape)}"
                )
            if t.dtype != self.keys.dtype:
                raise TypeError(f"{name} has dtype {t.dtype}, the cache holds {self.keys.dtype}")
        if k.shape[2] != v.shape[2]:
            raise ValueError(
                f"k and v must have the same length L, got {k.shape[2]} and {v.shape[2]}"
            )
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"KV cache is full: {self.length} positions cached + {k.shape[2]} new > "
                f"max_len={self.max_len}; make the cache with a larger max_len"
            )
        self.keys[:, :, start:end] = k  # (B, H, L, hd) written at positions start..end-1
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, H, S, hd) each

    def reset(self) -> None:
        """Forget the cached positions (the storage is reused, not cleared)."""
        self.length = 0

    def __repr__(self) -> str:
        B, H, _, hd = self.keys.shape
        return f"LayerKVCache(B={B}, H={H}, hd={hd}, length={self.length}, max_len={self.max_len})"


class KVCache:
    r"""Preallocated keys and values for every layer, ``(num_layers, B, H, max_len, hd)``.

    ``nbytes`` :math:`= 2 \cdot n_\text{layers} \cdot B \cdot \text{max\_len} \cdot
    d_\text{model} \cdot \text{bytes per value}` with :math:`d_\text{model} = H \cdot d_h`
    (:func:`kv_cache_bytes`). ``layer(i)`` is the :class:`LayerKVCache` that attention
    layer :math:`i` appends to; ``length`` is the number of positions every layer holds.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        max_len: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        sizes = {
            "num_layers": num_layers,
            "batch_size": batch_size,
            "num_heads": num_heads,
            "head_dim": head_dim,
            "max_len": max_len,
        }
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.num_layers, self.batch_size, self.max_len = num_layers, batch_size, max_len
        self.num_heads, self.head_dim = num_heads, head_dim
        shape = (num_layers, batch_size, num_heads, max_len, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)  # (layers, B, H, max_len, hd)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self._layers = [LayerKVCache(self.keys[i], self.values[i]) for i in range(num_layers)]

    def layer(self, i: int) -> LayerKVCache:
        """The cache of attention layer ``i`` (always the same object)."""
        if not 0 <= i < self.num_layers:
            raise IndexError(f"layer index {i} out of range for {self.num_layers} layers")
        return self._layers[i]

    @property
    def length(self) -> int:
        """Positions filled in every layer (the minimum, equal across layers between forwards)."""
        return min(layer.length for layer in self._layers)

    @property
    def nbytes(self) -> int:
        """Bytes of the preallocated keys and values."""
        return self.keys.nbytes + self.values.nbytes

    def reset(self) -> None:
        """Empty every layer, to decode a new batch with the same storage."""
        for layer in self._layers:
            layer.reset()

    def __repr__(self) -> str:
        return (
            f"KVCache(num_layers={self.num_layers}, batch_size={self.batch_size}, "
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, max_len={self.max_len}, "
            f"length={self.length}, dtype={self.keys.dtype})"
        )
