"""dlkit.scratch.attention against PyTorch (float64) and central differences.

Scaled dot-product attention: values and gradients against
``torch.nn.functional.scaled_dot_product_attention`` over random shapes (broadcast batch
axes), boolean and float masks, and against ``dlkit.scratch.gradcheck``. Multi-head
self-attention: against ``torch.nn.MultiheadAttention`` (batch_first, weights copied) and
its autograd gradients. Fully masked rows, logits of ±1e4 and bad arguments too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.scratch import (
    Tensor,
    assert_gradcheck,
    attention_backward,
    attention_forward,
    multi_head_self_attention_backward,
    multi_head_self_attention_forward,
)

PARAM_NAMES = ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias")


def attention_op(mask: np.ndarray | None = None, scale: float | None = None):
    """Attention as a Tensor op whose backward is attention_backward, for gradcheck."""

    def op(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out, cache = attention_forward(q.data, k.data, v.data, mask, scale)
        return Tensor._result(out, (q, k, v), "attention", lambda g: attention_backward(g, cache))

    return op


def torch_attention(q, k, v, mask, scale, dout):
    """torch's SDPA output and (dq, dk, dv) for the loss sum(out * dout), float64."""
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    m = None if mask is None else torch.from_numpy(mask)
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=m, scale=scale)
    (out * torch.from_numpy(dout)).sum().backward()
    return out.detach().numpy(), (qt.grad.numpy(), kt.grad.numpy(), vt.grad.numpy())


def random_mask(rng: np.random.Generator, shape: tuple[int, ...], kind: str):
    if kind == "none":
        return None
    allowed = rng.random(shape) < 0.7
    if kind == "bool":
        return allowed
    return np.where(allowed, rng.normal(size=shape), -np.inf)  # biases and -inf


@st.composite
def attention_cases(draw: st.DrawFn) -> dict:
    """Shapes with broadcast batch axes, a mask of a broadcastable shape, and a scale."""
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    length, keys = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    d, dv = draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def batch_of() -> tuple[int, ...]:  # each input may drop leading axes or have 1s
        dims = batch[draw(st.integers(0, len(batch))) :]
        return tuple(n if draw(st.booleans()) else 1 for n in dims)

    mask_shape = draw(st.sampled_from([(length, keys), (1, keys), (length, 1),
                                       (*batch, length, keys)]))  # fmt: skip
    return {
        "q": (*batch, length, d),
        "k": (*batch_of(), keys, d),
        "v": (*batch_of(), keys, dv),
        "mask_kind": draw(st.sampled_from(["none", "bool", "float"])),
        "mask_shape": mask_shape,
        "scale": draw(st.sampled_from([None, 0.3, 2.0])),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=60, deadline=None)
@given(attention_cases())
def test_attention_matches_torch_sdpa_values_and_gradients(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    q, k, v = (rng.normal(size=case[name]) for name in "qkv")
    mask = random_mask(rng, case["mask_shape"], case["mask_kind"])
    out, cache = attention_forward(q, k, v, mask, case["scale"])
    dout = rng.normal(size=out.shape)
    ref_out, ref_grads = torch_attention(q, k, v, mask, case["scale"], dout)
    np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
    grads = attention_backward(dout, cache)
    for name, mine, ref, x in zip("qkv", grads, ref_grads, (q, k, v), strict=True):
        assert mine.shape == x.shape, f"d{name} must have {name}'s shape"
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-12, err_msg=f"d{name}")


GRADCHECK_CASES = {
    "no mask": ((2, 3, 4), (2, 5, 4), (2, 5, 3), "none", None),
    "bool mask": ((2, 4, 3), (2, 4, 3), (2, 4, 2), "bool", None),
    "float mask": ((3, 4), (5, 4), (5, 2), "float", None),
    "4-D, broadcast batch": ((2, 2, 3, 2), (1, 2, 4, 2), (2, 1, 4, 3), "bool", 0.7),
    "one query, one key": ((1, 1), (1, 1), (1, 1), "none", None),
}


@pytest.mark.parametrize("name", GRADCHECK_CASES)
def test_attention_backward_passes_gradcheck(name: str) -> None:
    q_shape, k_shape, v_shape, mask_kind, scale = GRADCHECK_CASES[name]
    rng = np.random.default_rng(len(name))
    inputs = {"q": rng.normal(size=q_shape), "k": rng.normal(size=k_shape),
              "v": rng.normal(size=v_shape)}  # fmt: skip
    mask = random_mask(rng, (q_shape[-2], k_shape[-2]), mask_kind)
    if mask is not None:
        # one row fully masked, one row with a single allowed key
        mask[0] = False if mask.dtype == bool else -np.inf
        mask[-1, 1:] = False if mask.dtype == bool else -np.inf
        mask[-1, 0] = True if mask.dtype == bool else 0.5
    assert_gradcheck(attention_op(mask, scale), inputs)


def test_gradcheck_catches_a_wrong_softmax_backward() -> None:
    """The check above can fail: dropping the rowsum term of the softmax Jacobian is caught."""
    rng = np.random.default_rng(0)

    def wrong(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out, cache = attention_forward(q.data, k.data, v.data)

        def backward(g: np.ndarray) -> tuple[np.ndarray, ...]:
            p = cache.weights
            ds = p * (g @ np.swapaxes(cache.v, -1, -2))  # missing "- rowsum(dP * P)"
            return (
                cache.scale * ds @ cache.k,
                cache.scale * np.swapaxes(ds, -1, -2) @ cache.q,
                (np.swapaxes(p, -1, -2) @ g),
            )

        return Tensor._result(out, (q, k, v), "wrong", backward)

    inputs = [rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 2))]
    with pytest.raises(AssertionError, match="gradient of `input 0` is wrong"):
        assert_gradcheck(wrong, inputs)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_query_row_gives_zero_output_and_no_gradient(kind: str) -> None:
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False
    if kind == "float":
        mask = np.where(mask, 0.0, -np.inf)
    out, cache = attention_forward(q, k, v, mask)
    np.testing.assert_array_equal(out[:, 1], 0.0)
    np.testing.assert_array_equal(cache.weights[:, 1], 0.0)
    assert np.isfinite(out).all()
    # A gradient arriving only at the masked row reaches nothing.
    dout = np.zeros_like(out)
    dout[:, 1] = rng.normal(size=(2, 3))
    for grad in attention_backward(dout, cache):
        np.testing.assert_array_equal(grad, 0.0)
    # Other rows are untouched by it, and torch agrees on everything.
    dout = rng.normal(size=out.shape)
    ref_out, ref_grads = torch_attention(q, k, v, mask, None, dout)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    for mine, ref in zip(attention_backward(dout, cache), ref_grads, strict=True):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-14)
    assert np.all(attention_backward(dout, cache)[0][:, 1] == 0.0)  # dq of the masked row


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_logits_of_1e4_stay_finite_and_pick_the_largest_score(sign: float) -> None:
    q = np.array([[[100.0]], [[-100.0]]])  # (2, 1, 1): scores are ±1e4 with d = 1
    k = sign * np.array([[[100.0], [-100.0], [99.0]]])  # (1, 3, 1)
    v = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]])  # (1, 3, 2)
    out, cache = attention_forward(q, k, v)
    assert np.isfinite(out).all() and np.isfinite(cache.weights).all()
    winner = (0, 1) if sign > 0 else (1, 0)  # argmax of each query's scores
    np.testing.assert_allclose(cache.weights[0, 0], np.eye(3)[winner[0]], atol=1e-30)
    np.testing.assert_allclose(cache.weights[1, 0], np.eye(3)[winner[1]], atol=1e-30)
    dout = np.ones_like(out)
    grads = attention_backward(dout, cache)
    assert all(np.isfinite(g).all() for g in grads)
    ref_out, ref_grads = torch_attention(q, k, v, None, None, dout)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12)
    for mine, ref in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-12)


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(3))
    out, cache = attention_forward(q, k, v, np.tril(np.ones((3, 3), dtype=bool)))
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in attention_backward(np.ones_like(out), cache))


def torch_mha(embed: int, heads: int, seed: int) -> torch.nn.MultiheadAttention:
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(embed, heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # torch zeroes the biases at init; random ones test them too
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    return mha


def numpy_params(mha: torch.nn.MultiheadAttention) -> dict[str, np.ndarray]:
    return {k.replace(".", "_"): v.detach().numpy().copy() for k, v in mha.state_dict().items()}


MHA_CASES = {
    "one head, no mask": (2, 4, 6, 1, "none"),
    "two heads, causal": (2, 5, 8, 2, "causal"),
    "four heads, float mask": (3, 3, 8, 4, "float"),
    "key padding (B, 1, 1, T)": (3, 4, 6, 3, "padding"),
}


def mha_masks(kind: str, b: int, t: int, rng: np.random.Generator):
    """(our mask, torch's attn_mask, torch's key_padding_mask) for the same pattern."""
    if kind == "none":
        return None, None, None
    if kind == "causal":
        allowed = np.tril(np.ones((t, t), dtype=bool))
        return allowed, torch.from_numpy(~allowed), None  # torch: True = not allowed
    if kind == "float":
        bias = rng.normal(size=(t, t))
        return bias, torch.from_numpy(bias), None
    padded = np.zeros((b, t), dtype=bool)
    padded[0, -2:] = True  # the last two keys of example 0 are padding
    return ~padded[:, None, None, :], None, torch.from_numpy(padded)


@pytest.mark.parametrize("name", MHA_CASES)
def test_multi_head_self_attention_matches_torch(name: str) -> None:
    b, t, e, h, kind = MHA_CASES[name]
    rng = np.random.default_rng(len(name))
    mha = torch_mha(e, h, seed=len(name))
    params = numpy_params(mha)
    assert tuple(params) == PARAM_NAMES
    x = rng.normal(size=(b, t, e))
    mask, attn_mask, key_padding_mask = mha_masks(kind, b, t, rng)

    out, cache = multi_head_self_attention_forward(x, params, h, mask)
    xt = torch.tensor(x, requires_grad=True)
    ref, _ = mha(xt, xt, xt, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                 need_weights=False)  # fmt: skip
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)

    dout = rng.normal(size=out.shape)
    (ref * torch.from_numpy(dout)).sum().backward()
    dx, grads = multi_head_self_attention_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    torch_grads = {k.replace(".", "_"): p.grad.numpy() for k, p in mha.named_parameters()}
    assert tuple(grads) == PARAM_NAMES
    for key in PARAM_NAMES:
        np.testing.assert_allclose(grads[key], torch_grads[key], rtol=1e-9, atol=1e-12,
                                   err_msg=key)  # fmt: skip


def test_multi_head_self_attention_passes_gradcheck() -> None:
    rng = np.random.default_rng(3)
    e, h = 4, 2
    params = numpy_params(torch_mha(e, h, seed=3))
    mask = np.tril(np.ones((3, 3), dtype=bool))

    def op(x: Tensor, **weights: Tensor) -> Tensor:
        out, cache = multi_head_self_attention_forward(
            x.data, {k: w.data for k, w in weights.items()}, h, mask
        )

        def backward(g: np.ndarray) -> tuple[np.ndarray, ...]:
            dx, grads = multi_head_self_attention_backward(g, cache)
            return (dx, *(grads[k] for k in weights))

        return Tensor._result(out, (x, *weights.values()), "mhsa", backward)

    assert_gradcheck(op, {"x": rng.normal(size=(2, 3, e)), **params})


def test_multi_head_fully_masked_row_outputs_the_output_bias() -> None:
    rng = np.random.default_rng(4)
    mha = torch_mha(6, 2, seed=4)
    params = numpy_params(mha)
    x = rng.normal(size=(2, 4, 6))
    allowed = np.ones((4, 4), dtype=bool)
    allowed[2] = False  # query 2 may attend to nothing
    out, cache = multi_head_self_attention_forward(x, params, 2, allowed)
    np.testing.assert_allclose(out[:, 2], np.broadcast_to(params["out_proj_bias"], (2, 6)))
    xt = torch.tensor(x)
    ref, _ = mha(xt, xt, xt, attn_mask=torch.from_numpy(~allowed), need_weights=False)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    dout = np.zeros_like(out)
    dout[:, 2] = 1.0
    dx, grads = multi_head_self_attention_backward(dout, cache)
    np.testing.assert_array_equal(dx, 0.0)  # nothing flows back through the masked row
    np.testing.assert_array_equal(grads["in_proj_weight"], 0.0)
    np.testing.assert_allclose(grads["out_proj_bias"], 2.0)  # only the bias saw the gradient


def _qkv(q=(2, 3, 4), k=(2, 5, 4), v=(2, 5, 3)):
    rng = np.random.default_rng(0)
    return rng.normal(size=q), rng.normal(size=k), rng.normal(size=v)


ERRORS = [
    (lambda: attention_forward(*_qkv(k=(2, 5, 3))), ValueError, r"same last \(head\) dimension"),
    (lambda: attention_forward(*_qkv(v=(2, 4, 3))), ValueError, "same number of keys S"),
    (lambda: attention_forward(*_qkv(k=(3, 5, 4))), ValueError, "do not broadcast"),
    (lambda: attention_forward(*_qkv(q=(4,))), ValueError, r"q must have shape \(\.\.\., L, d\)"),
    (lambda: attention_forward(*_qkv(), np.ones((3, 4), bool)), ValueError,
     r"mask of shape \(3, 4\) does not broadcast to .*\(2, 3, 5\)"),
    (lambda: attention_forward(*_qkv(), np.ones((4, 3, 5), bool)), ValueError,
     "does not broadcast"),
    (lambda: attention_forward(*_qkv(), np.ones((3, 5), np.int64)), TypeError,
     "mask must be boolean .* or floating-point .* got dtype int64"),
    (lambda: attention_forward(*_qkv(), np.full((3, 5), np.nan)), ValueError, "nan or \\+inf"),
    (lambda: attention_forward(*_qkv(), np.full((3, 5), np.inf)), ValueError, "nan or \\+inf"),
    (lambda: attention_forward(np.ones((3, 4), int), *_qkv()[1:]), TypeError,
     "q must be a floating-point array, got dtype int64"),
    (lambda: attention_backward(np.ones((2, 3, 4)), attention_forward(*_qkv())[1]), ValueError,
     r"dout must have the output's shape \(\.\.\., L, dv\) = \(2, 3, 3\)"),
    (lambda: multi_head_self_attention_forward(np.ones((2, 3, 6)), {}, 4), ValueError,
     "E=6 must be divisible by num_heads=4"),
    (lambda: multi_head_self_attention_forward(np.ones((2, 3, 6)), {}, 0), ValueError,
     "num_heads=0"),
    (lambda: multi_head_self_attention_forward(np.ones((2, 3, 6)), {}, 2.0), TypeError,
     "num_heads must be an int"),
    (lambda: multi_head_self_attention_forward(np.ones((3, 6)), {}, 2), ValueError,
     r"x must have shape \(B, T, E\)"),
    (lambda: multi_head_self_attention_forward(np.ones((2, 3, 6)), {}, 2), KeyError,
     "missing"),
    (lambda: multi_head_self_attention_forward(
        np.ones((2, 3, 6)), {**numpy_params(torch_mha(4, 2, 0))}, 2), ValueError,
     r"in_proj_weight must have shape \(18, 6\)"),
    (lambda: multi_head_self_attention_forward(
        np.ones((2, 3, 4)), numpy_params(torch_mha(4, 2, 0)), 2, np.ones((2, 2, 3, 4), bool)),
     ValueError, r"does not broadcast to the scores' shape .* \(2, 2, 3, 3\)"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "match"), ERRORS, ids=[m for _, _, m in ERRORS])
def test_bad_arguments_raise_clear_errors(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
