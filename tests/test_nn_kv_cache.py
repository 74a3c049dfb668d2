"""The KV cache: its memory formula against the real tensors, appending and its limits, and
the point of it: multi-head attention fed token by token through a cache gives the same
outputs as one causal forward over the whole sequence (float64, with and without rotary)."""

from __future__ import annotations

import pytest
import torch

from dlkit.nn.attention import MultiHeadAttention
from dlkit.nn.kv_cache import KVCache, LayerKVCache, kv_cache_bytes
from dlkit.nn.positions import RotaryEmbedding

F64 = torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_nbytes_is_the_formula_and_the_tensors_size(dtype: torch.dtype) -> None:
    layers, B, H, hd, T = 3, 2, 4, 8, 10
    cache = KVCache(layers, B, H, hd, T, dtype=dtype)
    assert cache.keys.shape == cache.values.shape == (layers, B, H, T, hd)
    value_bytes = torch.finfo(dtype).bits // 8
    expected = 2 * layers * B * T * (H * hd) * value_bytes
    assert cache.nbytes == expected == cache.keys.nbytes + cache.values.nbytes
    assert kv_cache_bytes(layers, B, T, H * hd, value_bytes) == expected


def test_kv_cache_bytes_worked_example() -> None:
    # GPT-2 small: 12 layers, d_model 768, 1024 positions, float32, batch 1 -> 72 MiB
    assert kv_cache_bytes(12, 1, 1024, 768, 4) == 72 * 2**20


def test_update_appends_and_returns_views_of_everything_so_far() -> None:
    cache = KVCache(2, 1, 2, 3, 5, dtype=F64)
    layer = cache.layer(0)
    assert cache.layer(0) is layer and isinstance(layer, LayerKVCache)
    k1, v1 = torch.randn(1, 2, 2, 3, dtype=F64), torch.randn(1, 2, 2, 3, dtype=F64)
    k_all, v_all = layer.update(k1, v1)
    assert k_all.shape == (1, 2, 2, 3) and layer.length == 2
    k2, v2 = torch.randn(1, 2, 1, 3, dtype=F64), torch.randn(1, 2, 1, 3, dtype=F64)
    k_all, v_all = layer.update(k2, v2)
    torch.testing.assert_close(k_all, torch.cat([k1, k2], dim=2), rtol=0, atol=0)
    torch.testing.assert_close(v_all, torch.cat([v1, v2], dim=2), rtol=0, atol=0)
    assert k_all.data_ptr() == cache.keys[0].data_ptr()  # a view: no copy of the past
    assert cache.length == 0  # layer 1 has nothing yet: not every layer holds 3 positions
    cache.layer(1).update(torch.cat([k1, k2], 2), torch.cat([v1, v2], 2))
    assert cache.length == 3
    cache.reset()
    assert cache.length == 0 and layer.length == 0


def test_going_past_max_len_raises_naming_max_len() -> None:
    layer = KVCache(1, 1, 1, 2, 4).layer(0)
    layer.update(torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))
    with pytest.raises(ValueError, match="max_len=4"):
        layer.update(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert layer.length == 3  # the failed update left the cache as it was


def test_update_errors() -> None:
    cache = KVCache(1, 2, 2, 4, 8)
    layer = cache.layer(0)
    with pytest.raises(ValueError, match=r"\(B, H, L, hd\) = \(2, 2, L, 4\)"):
        layer.update(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    with pytest.raises(TypeError, match="float64"):
        layer.update(torch.zeros(2, 2, 1, 4, dtype=F64), torch.zeros(2, 2, 1, 4, dtype=F64))
    with pytest.raises(ValueError, match="same length"):
        layer.update(torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 2, 4))
    with pytest.raises(IndexError, match="1 layers"):
        cache.layer(1)
    with pytest.raises(ValueError, match="max_len must be >= 1"):
        KVCache(1, 1, 1, 1, 0)


@pytest.mark.parametrize("use_rotary", [False, True])
@pytest.mark.parametrize("prefill", [1, 3])
def test_token_by_token_with_cache_equals_the_full_causal_forward(
    use_rotary: bool, prefill: int
) -> None:
    E, H, B, T = 12, 3, 2, 7
    torch.manual_seed(0)
    mha = MultiHeadAttention(E, H, batch_first=True, dtype=F64).eval()
    with torch.no_grad():
        for p in mha.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-zero biases
    rotary = RotaryEmbedding(E // H, 16, dtype=F64) if use_rotary else None
    x = torch.randn(B, T, E, dtype=F64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, full_w = mha(x, x, x, is_causal=True, rotary=rotary, average_attn_weights=False)
        cache = KVCache(1, B, H, E // H, T, dtype=F64)
        layer = cache.layer(0)
        outs = []
        chunks = [(0, prefill)] + [(t, t + 1) for t in range(prefill, T)]
        for start, end in chunks:  # a prompt of `prefill` tokens, then one token per step
            xt = x[:, start:end]
            out, w = mha(xt, xt, xt, is_causal=True, rotary=rotary, cache=layer,
                         average_attn_weights=False)  # fmt: skip
            assert w.shape == (B, H, end - start, end) and layer.length == end
            torch.testing.assert_close(w, full_w[:, :, start:end, :end], rtol=1e-12, atol=1e-12)
            outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-12, atol=1e-12)
    assert cache.length == T


def test_rotary_offset_comes_from_the_cache_length() -> None:
    E, H = 8, 2
    torch.manual_seed(1)
    mha = MultiHeadAttention(E, H, batch_first=True, dtype=F64)
    rotary = RotaryEmbedding(E // H, 8, dtype=F64)
    x = torch.randn(1, 3, E, dtype=F64)
    with torch.no_grad():
        layer = KVCache(1, 1, H, E // H, 8, dtype=F64).layer(0)
        mha(x[:, :2], x[:, :2], x[:, :2], cache=layer, rotary=rotary, is_causal=True)
        with_cache, _ = mha(x[:, 2:], x[:, 2:], x[:, 2:], cache=layer, rotary=rotary)
        no_rotary_layer = KVCache(1, 1, H, E // H, 8, dtype=F64).layer(0)
        mha(x[:, :2], x[:, :2], x[:, :2], cache=no_rotary_layer, is_causal=True)
        without, _ = mha(x[:, 2:], x[:, 2:], x[:, 2:], cache=no_rotary_layer)
    assert not torch.allclose(with_cache, without)  # rotary really applied
    with pytest.raises(ValueError, match="head_dim=2"):
        mha(x, x, x, rotary=RotaryEmbedding(2, 8))
