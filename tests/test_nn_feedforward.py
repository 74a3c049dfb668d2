"""dlkit.nn.FeedForward and SwiGLU against the same formulas in torch.nn.functional (float64):
values and gradients, biases on and off, the position-wise property and the error messages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlkit.nn.feedforward import FeedForward, SwiGLU, silu


def _randomize(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_feedforward_matches_torch_functional(activation: str, bias: bool) -> None:
    ff = FeedForward(6, 10, activation=activation, bias=bias).double()
    _randomize(ff, 0)
    act = F.gelu if activation == "gelu" else F.relu
    x = torch.randn(3, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    w1, w2 = ff.linear1.weight, ff.linear2.weight  # torch layout: (d_ff, d), (d, d_ff)
    assert w1.shape == (10, 6) and w2.shape == (6, 10)
    b1 = ff.linear1.bias if bias else None
    b2 = ff.linear2.bias if bias else None
    assert (ff.linear1.bias is None) == (not bias)
    expected = F.linear(act(F.linear(xb, w1, b1)), w2, b2)
    out = ff(xa)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(out)
    (ga,) = torch.autograd.grad(out, xa, upstream)
    (gb,) = torch.autograd.grad(expected, xb, upstream)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)


def test_feedforward_state_dict_loads_torch_encoder_layer_linears() -> None:
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0)
    ff = FeedForward(8, 12, activation="relu")
    ff.load_state_dict({k: v for k, v in layer.state_dict().items() if k.startswith("linear")})
    x = torch.randn(5, 8)
    torch.testing.assert_close(ff(x), layer.linear2(F.relu(layer.linear1(x))))


@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_matches_its_formula(bias: bool) -> None:
    mlp = SwiGLU(6, 8, bias=bias).double()
    _randomize(mlp, 2)
    assert sum(p.numel() for p in mlp.parameters()) == 3 * 6 * 8 + bias * (8 + 8 + 6)
    x = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    gate = F.silu(F.linear(xb, mlp.w1.weight, mlp.w1.bias))
    value = F.linear(xb, mlp.w3.weight, mlp.w3.bias)
    expected = F.linear(gate * value, mlp.w2.weight, mlp.w2.bias)
    out = mlp(xa)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(out)
    (ga,) = torch.autograd.grad(out, xa, upstream)
    (gb,) = torch.autograd.grad(expected, xb, upstream)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)


def test_silu_matches_torch_including_large_inputs() -> None:
    x = torch.tensor([-1e4, -30.0, -1.0, 0.0, 0.5, 30.0, 1e4], dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = silu(xa), F.silu(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: FeedForward(4, 8), lambda: SwiGLU(4, 8)])
def test_feedforward_is_position_wise(make) -> None:
    """Changing one position's input changes that position's output and no other."""
    mlp = make().double()
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    y = mlp(x)
    x2 = x.clone()
    x2[1, 3] += 1.0
    y2 = mlp(x2)
    changed = (y2 - y).abs().amax(dim=-1) > 0  # (B, T)
    expected = torch.zeros(2, 6, dtype=torch.bool)
    expected[1, 3] = True
    assert torch.equal(changed, expected)


def test_dropout_only_in_training() -> None:
    ff = FeedForward(4, 64, dropout=0.5)
    x = torch.randn(3, 4)
    ff.eval()
    torch.testing.assert_close(ff(x), ff(x))
    ff.train()
    torch.manual_seed(0)
    a = ff(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, ff(x))


def test_feedforward_errors_name_what_was_expected() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(4, 8, activation="tanh")
    with pytest.raises(ValueError, match="d_ff must be a positive int"):
        FeedForward(4, 0)
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        SwiGLU(-1, 4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        FeedForward(4, 8)(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        SwiGLU(4, 8)(torch.randn(2, 3))
