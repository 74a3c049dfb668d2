"""``kernels="torch"`` against ``kernels="dlkit"``: the same math, the same parameters.

The fused path (``torch.nn.LayerNorm``/``RMSNorm``, ``F.linear``, ``F.gelu``/``F.silu``, one
QKV projection, ``F.scaled_dot_product_attention``) must give the teaching path's outputs
and gradients in float64 to ~1e-10 for every norm, MLP and positions kind, with padding
masks, attention masks, fully masked rows, cross-attention, unbatched and sequence-first
inputs and the KV cache; the two state dicts load into each other with ``strict=True``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlkit.nn.attention import MultiHeadAttention, causal_mask
from dlkit.nn.feedforward import FeedForward, SwiGLU
from dlkit.nn.transformer import DecoderOnlyLM, EncoderDecoder, TransformerEncoder
from dlkit.nn.transformer_blocks import (
    DecoderBlock,
    EncoderBlock,
    TransformerStackConfig,
    make_norm,
)

V = 13
NORMS, MLPS = ["layernorm", "rmsnorm"], ["gelu", "relu", "swiglu"]
POSITIONS = ["sinusoidal", "learned", "rope", "none"]
TOL = {"rtol": 1e-10, "atol": 1e-12}
GRAD_TOL = {"rtol": 1e-9, "atol": 1e-11}


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tiny(**overrides) -> TransformerStackConfig:
    settings = {"d_model": 16, "n_heads": 4, "n_layers": 2, "d_ff": 24, "max_len": 20}
    return TransformerStackConfig(**{**settings, **overrides})


def ids(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def twins(build, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """The same module with dlkit's and torch's kernels, random weights (norms included),
    the fused one loaded from the teaching one's state dict (strict)."""
    ours, fused = build("dlkit"), build("torch")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    fused.load_state_dict(ours.state_dict(), strict=True)
    return ours, fused


def same_outputs_and_grads(ours, fused, run, inputs: list[torch.Tensor]) -> None:
    a = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    b = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    ya, yb = run(ours, *a), run(fused, *b)
    torch.testing.assert_close(yb, ya, **TOL)
    upstream = torch.randn(ya.shape, generator=torch.Generator().manual_seed(7))
    ya.backward(upstream)
    yb.backward(upstream)
    for xa, xb in zip(a, b, strict=True):
        if xa.is_floating_point():
            torch.testing.assert_close(xb.grad, xa.grad, **GRAD_TOL)
    grads = dict(fused.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad, **GRAD_TOL, msg=name)


# ---------------------------------------------------------------- the config and the parts


def test_kernels_choose_the_modules_and_keep_the_parameter_names() -> None:
    fused = EncoderBlock(tiny(kernels="torch"))
    assert isinstance(fused.norm1, nn.LayerNorm) and fused.self_attn.fused and fused.mlp.fused
    assert isinstance(make_norm(tiny(kernels="torch", norm="rmsnorm")), nn.RMSNorm)
    teaching = EncoderBlock(tiny())
    assert not isinstance(teaching.norm1, nn.LayerNorm) and not teaching.self_attn.fused
    assert list(fused.state_dict()) == list(teaching.state_dict())
    with pytest.raises(ValueError, match="unknown kernels='cuda'"):
        tiny(kernels="cuda")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("norm", NORMS)
def test_norms_agree(norm: str, bias: bool) -> None:
    ours, fused = twins(lambda k: make_norm(tiny(norm=norm, bias=bias, kernels=k)))
    same_outputs_and_grads(ours, fused, lambda m, x: m(x), [torch.randn(3, 5, 16)])


@pytest.mark.parametrize("mlp", MLPS)
def test_mlps_agree(mlp: str) -> None:
    def build(kernels: str) -> nn.Module:
        if mlp == "swiglu":
            return SwiGLU(16, 24, bias=True, fused=kernels == "torch")
        return FeedForward(16, 24, activation=mlp, fused=kernels == "torch")

    ours, fused = twins(build)
    same_outputs_and_grads(ours, fused, lambda m, x: m(x), [torch.randn(3, 5, 16)])


def test_mlp_dropout_draws_the_same_mask() -> None:
    ours, fused = twins(lambda k: FeedForward(16, 24, dropout=0.5, fused=k == "torch"))
    x = torch.randn(4, 16)
    torch.manual_seed(3)
    a = ours(x)
    torch.manual_seed(3)
    torch.testing.assert_close(fused(x), a, **TOL)
    torch.testing.assert_close(fused.eval()(x), ours.eval()(x), **TOL)
    assert not torch.allclose(fused.eval()(x), a)  # the mask mattered


# ---------------------------------------------------------------- multi-head attention


def mha_twins(**kw) -> tuple[MultiHeadAttention, MultiHeadAttention]:
    return twins(lambda k: MultiHeadAttention(16, 4, fused=k == "torch", **kw))


def self_attend(**call):
    def run(m, x):
        return m(x, x, x, need_weights=False, **call)[0]

    return run


def test_self_attention_agrees_unmasked_and_causal() -> None:
    ours, fused = mha_twins(batch_first=True)
    x = torch.randn(2, 6, 16)
    same_outputs_and_grads(ours, fused, self_attend(), [x])
    ours, fused = mha_twins(batch_first=True)
    same_outputs_and_grads(ours, fused, self_attend(is_causal=True), [x])


def test_masks_agree_including_fully_masked_rows() -> None:
    B, T, H = 2, 5, 4
    padding = torch.zeros(B, T, dtype=torch.bool)
    padding[0, :2] = True  # left padding: with a causal mask, query 0 and 1 of row 0 see nothing
    float_padding = torch.zeros(B, T).masked_fill(padding, float("-inf"))
    bool_mask = (
        torch.rand(T, T, generator=torch.Generator().manual_seed(1)) > 0.7
    )  # True = not allowed
    float_mask = torch.randn(B * H, T, T, generator=torch.Generator().manual_seed(2))
    x = torch.randn(B, T, 16)
    calls = [
        {"key_padding_mask": padding},
        {"key_padding_mask": padding, "is_causal": True},
        {"key_padding_mask": float_padding, "is_causal": True},
        {"attn_mask": bool_mask},
        {"attn_mask": float_mask, "key_padding_mask": padding},
    ]
    for call in calls:
        ours, fused = mha_twins(batch_first=True)
        same_outputs_and_grads(ours, fused, self_attend(**call), [x])
    out = fused(x, x, x, key_padding_mask=padding, is_causal=True, need_weights=False)[0]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :2], fused.out_proj.bias.expand(2, 16))  # output b_O only


def test_cross_attention_layouts_and_weights_agree() -> None:
    q, mem = torch.randn(7, 2, 16), torch.randn(4, 2, 16)  # sequence first
    ours, fused = mha_twins()
    run = lambda m, a, b: m(a, b, b, need_weights=False)[0]  # noqa: E731
    same_outputs_and_grads(ours, fused, run, [q, mem])
    ours, fused = twins(lambda k: MultiHeadAttention(16, 4, kdim=6, vdim=10, fused=k == "torch"))
    kv = [torch.randn(4, 2, 6), torch.randn(4, 2, 10)]
    run = lambda m, a, k, v: m(a, k, v, need_weights=False)[0]  # noqa: E731
    same_outputs_and_grads(ours, fused, run, [q, *kv])
    ours, fused = mha_twins()
    x = torch.randn(5, 16)  # unbatched
    same_outputs_and_grads(ours, fused, self_attend(is_causal=True), [x])
    # asked for the weights, the fused module computes them explicitly: same weights
    out_a, w_a = ours(q, mem, mem, average_attn_weights=False)
    out_b, w_b = fused(q, mem, mem, average_attn_weights=False)
    torch.testing.assert_close(out_b, out_a, **TOL)
    torch.testing.assert_close(w_b, w_a, **TOL)


def test_attention_dropout_is_off_in_eval_and_on_in_training() -> None:
    ours, fused = mha_twins(batch_first=True, dropout=0.5)
    x = torch.randn(2, 6, 16)
    ours.eval(), fused.eval()
    torch.testing.assert_close(self_attend()(fused, x), self_attend()(ours, x), **TOL)
    fused.train()
    assert not torch.allclose(self_attend()(fused, x), self_attend()(ours, x))


def test_cache_with_several_new_queries_aligns_the_causal_mask_bottom_right() -> None:
    """After a cached prefix, L new queries are the *last* L of S keys (not PyTorch's
    top-left ``is_causal``): both kernels must agree with the full causal pass."""
    from dlkit.nn.kv_cache import KVCache

    ours, fused = mha_twins(batch_first=True)
    x = torch.randn(2, 7, 16)
    full = ours(x, x, x, is_causal=True, need_weights=False)[0]  # (2, 7, 16)
    for m in (ours, fused):
        cache = KVCache(1, 2, 4, 4, 10, dtype=torch.float64)
        with torch.no_grad():
            first = m(x[:, :3], x[:, :3], x[:, :3], is_causal=True, cache=cache.layer(0))[0]
            rest = x[:, 3:]
            second = m(rest, rest, rest, is_causal=True, need_weights=False, cache=cache.layer(0))[
                0
            ]
        torch.testing.assert_close(torch.cat([first, second], 1), full.detach(), **TOL)
    assert causal_mask(4, 7).sum() == 4 + 5 + 6 + 7  # (the bottom-right triangle used)


# ---------------------------------------------------------------- blocks and whole models


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("mlp", MLPS)
@pytest.mark.parametrize("norm", NORMS)
def test_blocks_agree(norm: str, mlp: str, norm_first: bool) -> None:
    def cfg(k: str) -> TransformerStackConfig:
        return tiny(norm=norm, mlp=mlp, norm_first=norm_first, kernels=k)

    x, mem = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    ours, fused = twins(lambda k: EncoderBlock(cfg(k)))
    same_outputs_and_grads(ours, fused, lambda m, a: m(a, key_padding_mask=padding), [x])
    ours, fused = twins(lambda k: DecoderBlock(cfg(k)))
    same_outputs_and_grads(ours, fused, lambda m, a, b: m(a, b), [x, mem])


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize(("norm", "mlp"), [("layernorm", "gelu"), ("rmsnorm", "swiglu")])
def test_language_models_agree_with_and_without_the_cache(norm, mlp, positions) -> None:
    def build(k: str) -> DecoderOnlyLM:
        return DecoderOnlyLM(tiny(norm=norm, mlp=mlp, positions=positions, kernels=k), V)

    ours, fused = twins(build)
    x = ids(2, 9)
    same_outputs_and_grads(ours, fused, lambda m, a: m(a), [x])
    with torch.no_grad():
        full = ours(x)
        for m in (ours, fused):
            cache = m.new_cache(2)
            steps = [m(x[:, :4], cache=cache), m(x[:, 4:6], cache=cache)]
            steps += [m(x[:, t : t + 1], cache=cache) for t in range(6, 9)]
            torch.testing.assert_close(torch.cat(steps, 1), full, **TOL)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_encoder_and_encoder_decoder_agree_with_padding(positions: str) -> None:
    src = ids(2, 7, seed=1)
    src[0, 5:] = 0  # padding id 0
    ours, fused = twins(lambda k: TransformerEncoder(tiny(positions=positions, kernels=k), V))
    mask = src == 0
    same_outputs_and_grads(ours, fused, lambda m, s: m(s, mask), [src])
    ours, fused = twins(
        lambda k: EncoderDecoder(tiny(positions=positions, kernels=k), V, V, pad_id=0)
    )
    same_outputs_and_grads(ours, fused, lambda m, s, t: m(s, t), [src, ids(2, 5, seed=2)])
    assert torch.equal(fused.greedy_decode(src, 1, 2, 6), ours.greedy_decode(src, 1, 2, 6))


def test_state_dicts_load_both_ways() -> None:
    cfg = {"norm": "rmsnorm", "mlp": "swiglu", "positions": "rope", "bias": False}
    ours, fused = twins(lambda k: DecoderOnlyLM(tiny(**cfg, kernels=k), V), seed=4)
    back = DecoderOnlyLM(tiny(**cfg), V)
    back.load_state_dict(fused.state_dict(), strict=True)
    x = ids(3, 8)
    torch.testing.assert_close(back(x), ours(x), rtol=0, atol=0)
