"""dlkit.nn's attention against PyTorch's in float64: ``scaled_dot_product_attention``
(values and gradients over shapes and masks, hypothesis), fully masked rows, huge logits,
dropout, errors; ``MultiHeadAttention`` with weights copied from
``torch.nn.MultiheadAttention`` (outputs, attention maps, gradients, both layouts)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlkit.nn.attention import (
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)

F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _randn(gen: torch.Generator, *shape: int, grad: bool = True) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=F64, requires_grad=grad)


def _twins(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.detach().clone().requires_grad_(True) for t in tensors)


# ---------------------------------------------------------------- causal_mask


def test_causal_mask_square_is_the_lower_triangle() -> None:
    expected = torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.equal(causal_mask(5), expected)
    assert torch.equal(causal_mask(5, 5), expected)


def test_causal_mask_aligns_queries_with_the_last_keys() -> None:
    m = causal_mask(2, 5)  # queries at absolute positions 3 and 4
    assert m.tolist() == [[True, True, True, True, False], [True] * 5]
    assert causal_mask(1, 7).all()  # one new token sees the whole cache
    with pytest.raises(ValueError, match="query_len <= key_len"):
        causal_mask(4, 3)


# ---------------------------------------------------------------- scaled_dot_product_attention


@st.composite
def sdpa_cases(draw: st.DrawFn) -> dict:
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))  # 2-D, 3-D or 4-D
    L, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    d, dv = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    mask = draw(st.sampled_from(["none", "bool", "float", "float-inf", "causal"]))
    mask_batch = draw(st.sampled_from(["full", "none", "ones"]))  # how the mask broadcasts
    scale = draw(st.one_of(st.none(), st.floats(0.1, 2.0)))
    return {
        "batch": batch,
        "L": L,
        "S": S,
        "d": d,
        "dv": dv,
        "mask": mask,
        "mask_batch": mask_batch,
        "scale": scale,
        "seed": draw(st.integers(0, 2**16)),
    }


def _mask_for(case: dict, gen: torch.Generator) -> torch.Tensor | None:
    shape = {
        "full": (*case["batch"], case["L"], case["S"]),
        "none": (case["L"], case["S"]),
        "ones": (*[1] * len(case["batch"]), case["L"], case["S"]),
    }[case["mask_batch"]]
    if case["mask"] == "bool":
        return torch.rand(shape, generator=gen) < 0.7  # some rows may be fully masked
    if case["mask"] == "float":
        return torch.randn(shape, generator=gen, dtype=F64)
    if case["mask"] == "float-inf":
        m = torch.randn(shape, generator=gen, dtype=F64)
        return m.masked_fill(torch.rand(shape, generator=gen) < 0.3, float("-inf"))
    return None


@settings(max_examples=150, deadline=None)
@given(case=sdpa_cases())
def test_sdpa_matches_torch_values_and_gradients(case: dict) -> None:
    gen = torch.Generator().manual_seed(case["seed"])
    b, L, S = case["batch"], case["L"], case["S"]
    q, k, v = (
        _randn(gen, *b, L, case["d"]),
        _randn(gen, *b, S, case["d"]),
        _randn(gen, *b, S, case["dv"]),
    )
    mask = _mask_for(case, gen)
    is_causal = case["mask"] == "causal"
    q2, k2, v2 = _twins(q, k, v)
    kwargs = {"attn_mask": mask, "is_causal": is_causal, "scale": case["scale"]}
    ref = F.scaled_dot_product_attention(q, k, v, **kwargs)
    out = scaled_dot_product_attention(q2, k2, v2, **kwargs)
    assert out.shape == (*b, L, case["dv"])
    torch.testing.assert_close(out, ref, **TOL)
    g = torch.randn(out.shape, generator=gen, dtype=F64)
    (ref * g).sum().backward()
    (out * g).sum().backward()
    for ours, theirs in ((q2, q), (k2, k), (v2, v)):
        torch.testing.assert_close(ours.grad, theirs.grad, **TOL)


def test_sdpa_broadcasts_batch_dims_like_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = _randn(gen, 2, 3, 4, 5), _randn(gen, 1, 3, 6, 5), _randn(gen, 2, 1, 6, 2)
    mask = torch.rand(3, 1, 6, generator=gen) < 0.8  # (H, 1, S): per head, all queries
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, attn_mask=mask), ref, **TOL)


def test_sdpa_is_causal_uses_torchs_top_left_triangle_when_lengths_differ() -> None:
    gen = torch.Generator().manual_seed(1)
    q, k, v = _randn(gen, 2, 3, 4), _randn(gen, 2, 5, 4), _randn(gen, 2, 5, 4)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL)
    top_left = torch.ones(3, 5, dtype=torch.bool).tril()
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, attn_mask=top_left))
    bottom_right = scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(3, 5))
    assert not torch.allclose(out, bottom_right)  # the two alignments really differ


def test_fully_masked_rows_give_zero_output_and_zero_gradient_like_torch() -> None:
    gen = torch.Generator().manual_seed(2)
    q, k, v = _randn(gen, 2, 4, 3), _randn(gen, 2, 5, 3), _randn(gen, 2, 5, 3)
    bool_mask = torch.rand(4, 5, generator=gen) < 0.6
    bool_mask[1] = False  # query 1 may attend to nothing
    bool_mask[0] = True
    float_mask = torch.zeros(4, 5, dtype=F64).masked_fill(~bool_mask, float("-inf"))
    for mask in (bool_mask, float_mask):
        q2, k2, v2 = _twins(q, k, v)
        out = scaled_dot_product_attention(q2, k2, v2, attn_mask=mask)
        assert torch.isfinite(out).all()
        assert torch.all(out[:, 1] == 0)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        out.sum().backward()
        assert torch.all(q2.grad[:, 1] == 0) and torch.isfinite(q2.grad).all()
        assert torch.isfinite(k2.grad).all() and torch.isfinite(v2.grad).all()
        weights = attention_weights(q, k, attn_mask=mask)
        assert torch.all(weights[:, 1] == 0)
        torch.testing.assert_close(weights[:, [0, 2, 3]].sum(-1), torch.ones(2, 3, dtype=F64))


def test_sdpa_gradients_pass_finite_differences_with_masked_rows_and_dropout() -> None:
    gen = torch.Generator().manual_seed(12)
    q, k, v = _randn(gen, 2, 4, 3), _randn(gen, 2, 5, 3), _randn(gen, 2, 5, 2)
    mask = torch.rand(2, 4, 5, generator=gen) < 0.6
    mask[0, 1] = False  # a fully masked row: its gradient is 0, and that is what is checked
    mask[:, 2] = True

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        drop = torch.Generator().manual_seed(0)  # the same dropout mask at every evaluation
        return scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.3, generator=drop)

    assert torch.autograd.gradcheck(attend, (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_logits_stay_finite(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, 4, 8, generator=gen).to(dtype)
    k = torch.randn(2, 6, 8, generator=gen).to(dtype)
    v = torch.randn(2, 6, 8, generator=gen).to(dtype)
    q, k = q.requires_grad_(True), k.requires_grad_(True)
    for scale in (1e4, -1e4):  # scores of order ±1e4 (and above)
        out = scaled_dot_product_attention(q, k, v, scale=scale)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=scale))
        out.sum().backward()
        assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
    mask = torch.full((4, 6), -1e4, dtype=dtype)  # large finite bias: a plain softmax
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    if dtype == torch.float64:  # float32 loses the scores' low bits next to 1e4
        torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v))


def test_attention_weights_is_torchs_softmax() -> None:
    gen = torch.Generator().manual_seed(4)
    q, k = _randn(gen, 3, 4, 5, grad=False), _randn(gen, 3, 6, 5, grad=False)
    mask = torch.randn(4, 6, generator=gen, dtype=F64)
    expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(5) + mask, dim=-1)
    torch.testing.assert_close(attention_weights(q, k, attn_mask=mask), expected, **TOL)
    causal = attention_weights(q[:, :4], k[:, :4], is_causal=True)
    assert torch.all(causal.triu(1) == 0)


def test_sdpa_dropout_is_reproducible_and_matches_torchs_draws() -> None:
    gen = torch.Generator().manual_seed(5)
    q, k, v = _randn(gen, 2, 2, 7, 4), _randn(gen, 2, 2, 9, 4), _randn(gen, 2, 2, 9, 3)
    a = scaled_dot_product_attention(
        q, k, v, dropout_p=0.4, generator=torch.Generator().manual_seed(9)
    )
    b = scaled_dot_product_attention(
        q, k, v, dropout_p=0.4, generator=torch.Generator().manual_seed(9)
    )
    c = scaled_dot_product_attention(
        q, k, v, dropout_p=0.4, generator=torch.Generator().manual_seed(8)
    )
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    # PyTorch's math path draws its dropout mask with bernoulli_ on the CPU too.
    torch.manual_seed(9)
    torch.testing.assert_close(a, F.scaled_dot_product_attention(q, k, v, dropout_p=0.4), **TOL)
    assert torch.all(scaled_dot_product_attention(q, k, v, dropout_p=1.0) == 0)


def test_sdpa_dropout_keeps_the_expected_value() -> None:
    gen = torch.Generator().manual_seed(6)
    q, k, v = (
        _randn(gen, 1, 3, 4, grad=False),
        _randn(gen, 1, 5, 4, grad=False),
        _randn(gen, 1, 5, 2, grad=False),
    )
    drop_gen = torch.Generator().manual_seed(0)
    mean = torch.stack(
        [
            scaled_dot_product_attention(q, k, v, dropout_p=0.5, generator=drop_gen)
            for _ in range(4000)
        ]
    ).mean(0)
    torch.testing.assert_close(mean, scaled_dot_product_attention(q, k, v), rtol=0, atol=0.06)


def test_sdpa_errors_name_what_was_expected() -> None:
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    with pytest.raises(ValueError, match="same last dim"):
        scaled_dot_product_attention(q, torch.randn(2, 5, 3), v)
    with pytest.raises(ValueError, match="same length S"):
        scaled_dot_product_attention(q, k, torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match="at least 2 dims"):
        scaled_dot_product_attention(torch.randn(4), k, v)
    with pytest.raises(ValueError, match="do not broadcast"):
        scaled_dot_product_attention(torch.randn(3, 3, 4), k, v)
    with pytest.raises(TypeError, match="one dtype"):
        scaled_dot_product_attention(q.double(), k, v)
    with pytest.raises(TypeError, match=r"bool .* or floating point"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"does not broadcast to the scores' shape"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"does not broadcast to the scores' shape"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(7, 2, 3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(
            q, k, v, attn_mask=torch.ones(3, 5, dtype=torch.bool), is_causal=True
        )
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.5)


# ---------------------------------------------------------------- heads


def test_split_and_merge_heads_are_inverse_and_slice_features() -> None:
    x = torch.arange(2 * 3 * 8, dtype=F64).reshape(2, 3, 8)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2)
    torch.testing.assert_close(heads[:, 1], x[..., 2:4])  # head 1 = features 2, 3
    torch.testing.assert_close(merge_heads(heads), x)
    mha = MultiHeadAttention(8, 4)
    torch.testing.assert_close(mha.merge_heads(mha.split_heads(x)), x)
    with pytest.raises(ValueError, match="divisible by num_heads=3"):
        split_heads(x, 3)
    with pytest.raises(ValueError, match=r"\(B, H, T, hd\)"):
        merge_heads(x)


# ---------------------------------------------------------------- MultiHeadAttention


def _pair(E: int, H: int, **kwargs) -> tuple[nn.MultiheadAttention, MultiHeadAttention]:
    ref = nn.MultiheadAttention(E, H, **kwargs).double()
    ours = MultiHeadAttention(E, H, **kwargs).double()
    ours.load_state_dict(ref.state_dict())  # strict: torch's names and shapes
    for p in ref.parameters():  # non-zero biases, so that they are tested too
        with torch.no_grad():
            p.add_(0.1 * torch.randn(p.shape, dtype=F64))
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("kdim", [None, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_mha_same_seed_gives_torchs_parameters(kdim: int | None, bias: bool) -> None:
    torch.manual_seed(11)
    ref = nn.MultiheadAttention(8, 2, bias=bias, kdim=kdim, vdim=kdim)
    torch.manual_seed(11)
    ours = MultiHeadAttention(8, 2, bias=bias, kdim=kdim, vdim=kdim)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for name, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name


def test_mha_init_is_xavier_uniform_with_zero_biases() -> None:
    torch.manual_seed(0)
    E = 96
    mha = MultiHeadAttention(E, 4)
    w = mha.in_proj_weight.detach()  # (3E, E): fan_in E, fan_out 3E
    bound = math.sqrt(6 / (E + 3 * E))
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert abs(w.var().item() - bound**2 / 3) < 0.03 * bound**2 / 3
    assert torch.all(mha.in_proj_bias == 0) and torch.all(mha.out_proj.bias == 0)


MHA_CASES = [  # (batch_first, kdim/vdim, bias, key_padding_mask, attn_mask, average)
    (False, None, True, None, None, True),
    (True, None, True, "bool", None, False),
    (False, None, False, None, "bool2d", True),
    (True, None, True, "float", "float3d", False),
    (False, (3, 5), True, "bool", "bool3d", True),
    (True, (6, 2), False, None, "float2d", False),
    (True, None, True, "bool", "float2d", True),  # mixed kinds: PyTorch adds them
]


def _mha_masks(kpm: str | None, am: str | None, B: int, H: int, L: int, S: int, gen):
    key_padding_mask = attn_mask = None
    if kpm is not None:
        pad = torch.zeros(B, S, dtype=torch.bool)
        pad[0, S - 2 :] = True  # the first sequence has two padded keys
        key_padding_mask = pad if kpm == "bool" else pad.to(F64) * -1e3
    if am is not None:
        shape = (L, S) if am.endswith("2d") else (B * H, L, S)
        forbid = torch.rand(shape, generator=gen) < 0.3
        forbid[..., 0] = False  # key 0 stays visible: no fully masked row (PyTorch gives NaN)
        if am.startswith("bool"):
            attn_mask = forbid
        else:
            attn_mask = torch.randn(shape, generator=gen, dtype=F64).masked_fill(forbid, -torch.inf)
    return key_padding_mask, attn_mask


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # torch, case 7
@pytest.mark.parametrize("case", MHA_CASES)
def test_mha_matches_torch_forward_weights_and_gradients(case: tuple) -> None:
    batch_first, dims, bias, kpm, am, average = case
    E, H, B, L, S = 8, 2, 3, 4, 6
    kdim, vdim = dims or (E, E)
    torch.manual_seed(0)
    kwargs = {"bias": bias, "batch_first": batch_first}
    if dims:
        kwargs |= {"kdim": kdim, "vdim": vdim}
    ref, ours = _pair(E, H, **kwargs)
    gen = torch.Generator().manual_seed(1)

    def layout(T: int, C: int) -> torch.Tensor:
        return _randn(gen, B, T, C) if batch_first else _randn(gen, T, B, C)

    q, k, v = layout(L, E), layout(S, kdim), layout(S, vdim)
    key_padding_mask, attn_mask = _mha_masks(kpm, am, B, H, L, S, gen)
    q2, k2, v2 = _twins(q, k, v)
    call = {
        "key_padding_mask": key_padding_mask,
        "attn_mask": attn_mask,
        "average_attn_weights": average,
    }
    out_ref, w_ref = ref(q, k, v, **call)
    out, w = ours(q2, k2, v2, **call)
    torch.testing.assert_close(out, out_ref, **TOL)
    assert w.shape == ((B, L, S) if average else (B, H, L, S))
    torch.testing.assert_close(w, w_ref, **TOL)
    g = torch.randn(out.shape, generator=gen, dtype=F64)
    gw = torch.randn(w.shape, generator=gen, dtype=F64)
    ((out_ref * g).sum() + (w_ref * gw).sum()).backward()
    ((out * g).sum() + (w * gw).sum()).backward()
    for a, e in ((q2, q), (k2, k), (v2, v)):
        torch.testing.assert_close(a.grad, e.grad, **TOL)
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, **TOL)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_self_attention_is_causal_matches_torch_with_its_mask(batch_first: bool) -> None:
    E, H, B, T = 12, 3, 2, 5
    torch.manual_seed(2)
    ref, ours = _pair(E, H, batch_first=batch_first)
    gen = torch.Generator().manual_seed(3)
    x = _randn(gen, B, T, E) if batch_first else _randn(gen, T, B, E)
    x2 = _twins(x)[0]
    forbid = ~causal_mask(T)  # PyTorch's module wants True = not allowed, and the hint
    out_ref, w_ref = ref(x, x, x, attn_mask=forbid, is_causal=True, average_attn_weights=False)
    out, w = ours(x2, x2, x2, is_causal=True, average_attn_weights=False)
    torch.testing.assert_close(out, out_ref, **TOL)
    torch.testing.assert_close(w, w_ref, **TOL)
    assert torch.all(w.triu(1) == 0)
    out_ref.square().sum().backward()
    out.square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, **TOL)
    out_both, _ = ours(x2, x2, x2, attn_mask=forbid, is_causal=True)  # both given: same mask
    torch.testing.assert_close(out_both, out, rtol=0, atol=0)


def test_mha_need_weights_false_and_unbatched_input() -> None:
    torch.manual_seed(4)
    ref, ours = _pair(6, 2)
    gen = torch.Generator().manual_seed(5)
    x, m = _randn(gen, 4, 6, grad=False), _randn(gen, 7, 6, grad=False)  # (L, E), (S, E)
    out, w = ours(x, m, m, need_weights=False)
    assert w is None
    torch.testing.assert_close(out, ref(x, m, m, need_weights=False)[0], **TOL)
    out, w = ours(x, m, m, average_attn_weights=False)
    assert w.shape == (2, 4, 7)
    torch.testing.assert_close(w, ref(x, m, m, average_attn_weights=False)[1], **TOL)


def test_mha_fully_masked_query_gives_bias_and_zero_weights_where_torch_gives_nan() -> None:
    torch.manual_seed(6)
    ref, ours = _pair(4, 2, batch_first=True)
    x = torch.randn(2, 3, 4, dtype=F64)
    forbid = torch.zeros(3, 3, dtype=torch.bool)
    forbid[2] = True  # query 2 sees no key
    out, w = ours(x, x, x, attn_mask=forbid)
    assert torch.isfinite(out).all() and torch.all(w[:, 2] == 0)
    torch.testing.assert_close(out[:, 2], ours.out_proj.bias.expand(2, 4))  # W_O · 0 + b_O
    out_ref, w_ref = ref(x, x, x, attn_mask=forbid)
    assert torch.isnan(w_ref[:, 2]).all()  # the documented difference
    torch.testing.assert_close(out[:, :2], out_ref[:, :2], **TOL)


def test_mha_dropout_only_in_training_and_same_draws_as_torch() -> None:
    torch.manual_seed(7)
    ref, ours = _pair(8, 2, dropout=0.3, batch_first=True)
    x = torch.randn(2, 5, 8, dtype=F64)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x, x, x)[0], ref(x, x, x)[0], **TOL)
    ours.train()
    ref.train()
    torch.manual_seed(8)
    out_a, w_a = ours(x, x, x, average_attn_weights=False)
    torch.manual_seed(8)
    out_b, _ = ours(x, x, x)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    assert not torch.allclose(out_a, ours.eval()(x, x, x)[0])
    zeros = (w_a == 0).double().mean().item()
    assert 0.15 < zeros < 0.45  # about 30 % of 100 weights dropped
    ours.train()
    torch.manual_seed(8)
    out_ref, w_ref = ref(x, x, x, average_attn_weights=False)  # one bernoulli_ draw, same order
    torch.testing.assert_close(out_a, out_ref, **TOL)
    torch.testing.assert_close(w_a, w_ref, **TOL)


def test_mha_errors_name_what_was_expected() -> None:
    with pytest.raises(ValueError, match="embed_dim=10 must be divisible by num_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=2.0)
    mha = MultiHeadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match="query must have 8 features"):
        mha(torch.randn(2, 4, 6), x, x)
    with pytest.raises(ValueError, match="must all be 3-D"):
        mha(torch.randn(2, 4, 8, 1), x, x)
    with pytest.raises(ValueError, match="agree in batch and length"):
        mha(x, x, torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="same batch size"):
        mha(torch.randn(3, 4, 8), x, x)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, S\) = \(2, 4\)"):
        mha(x, x, x, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(4, 4\) or"):
        mha(x, x, x, attn_mask=torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"bool .* or floating point"):
        mha(x, x, x, attn_mask=torch.zeros(4, 4, dtype=torch.int64))
