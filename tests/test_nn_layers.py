"""dlkit.nn's Linear and Embedding against torch.nn's: state dicts both ways, forward and
backward in float64, the same initial numbers from the same seed, the init distribution,
and clear errors for bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlkit.nn.layers import Embedding, Linear


@pytest.mark.parametrize("bias", [True, False])
def test_linear_same_seed_gives_torchs_numbers(bias: bool) -> None:
    torch.manual_seed(3)
    ref = nn.Linear(7, 5, bias=bias)
    torch.manual_seed(3)
    ours = Linear(7, 5, bias=bias)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    for name, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name


def test_linear_init_distribution() -> None:
    torch.manual_seed(0)
    fan_in = 400
    layer = Linear(fan_in, 300)
    bound = 1 / math.sqrt(fan_in)
    w = layer.weight.detach()
    assert w.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound  # really spread over the whole interval
    var = w.var().item()  # U(-b, b) has variance b²/3 = 1/(3 fan_in); 120 000 draws
    assert abs(var - 1 / (3 * fan_in)) < 0.02 / (3 * fan_in)
    assert abs(w.mean().item()) < 4 * math.sqrt(1 / (3 * fan_in) / w.numel())


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6), (6,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch_forward_and_backward(shape: tuple[int, ...], bias: bool) -> None:
    ref = nn.Linear(6, 3, bias=bias).double()
    ours = Linear(6, 3, bias=bias, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y_ref, y = ref(x1), ours(x2)
    torch.testing.assert_close(y, y_ref, rtol=1e-13, atol=1e-13)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (y_ref * g).sum().backward()
    (y * g).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-13, atol=1e-13)
    if bias:
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-13, atol=1e-13)


def test_linear_state_dict_loads_into_torch() -> None:
    ours = Linear(4, 2)
    ref = nn.Linear(4, 2)
    ref.load_state_dict(ours.state_dict())  # strict: same names and shapes
    x = torch.randn(3, 4)
    torch.testing.assert_close(ref(x), ours(x))


def test_linear_errors() -> None:
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        Linear(4, 2)(torch.randn(3, 5))


def test_embedding_same_seed_gives_torchs_numbers() -> None:
    for padding_idx in (None, 2, -1):
        torch.manual_seed(5)
        ref = nn.Embedding(9, 4, padding_idx=padding_idx)
        torch.manual_seed(5)
        ours = Embedding(9, 4, padding_idx=padding_idx)
        assert ours.padding_idx == ref.padding_idx
        assert torch.equal(ours.weight, ref.weight)


def test_embedding_init_is_standard_normal() -> None:
    torch.manual_seed(0)
    w = Embedding(500, 200).weight.detach()  # 100 000 draws
    assert abs(w.mean().item()) < 4 / math.sqrt(w.numel())
    assert abs(w.std().item() - 1.0) < 0.01


@pytest.mark.parametrize("padding_idx", [None, 0, 3])
def test_embedding_matches_torch_forward_and_backward(padding_idx: int | None) -> None:
    ref = nn.Embedding(6, 5, padding_idx=padding_idx).double()
    ours = Embedding(6, 5, padding_idx=padding_idx, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    ids = torch.tensor([[0, 3, 3, 5], [1, 0, 2, 3]])  # repeats: gradients accumulate per row
    y_ref, y = ref(ids), ours(ids)
    assert y.shape == (2, 4, 5)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    g = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (y_ref * g).sum().backward()
    (y * g).sum().backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-14, atol=1e-14)
    if padding_idx is not None:
        assert torch.all(ours.weight.grad[padding_idx] == 0)
        assert torch.all(ours.weight[padding_idx] == 0)
    assert torch.all(ours.weight.grad[4] == 0)  # an unused id gets no gradient


def test_embedding_state_dict_loads_into_torch() -> None:
    ours = Embedding(10, 3, padding_idx=1)
    ref = nn.Embedding(10, 3, padding_idx=1)
    ref.load_state_dict(ours.state_dict())
    ids = torch.arange(10)
    torch.testing.assert_close(ref(ids), ours(ids))


def test_embedding_accepts_int32_ids() -> None:
    emb = Embedding(4, 2)
    ids = torch.tensor([3, 1], dtype=torch.int32)
    torch.testing.assert_close(emb(ids), emb.weight[[3, 1]])


def test_embedding_bad_ids_raise_clear_errors() -> None:
    emb = Embedding(5, 2)
    with pytest.raises(IndexError, match=r"got id 5; ids must lie in \[0, 5\)"):
        emb(torch.tensor([0, 5]))
    with pytest.raises(IndexError, match="got id -1"):
        emb(torch.tensor([-1, 2]))
    with pytest.raises(TypeError, match="integer tensor"):
        emb(torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="integer tensor"):
        emb(torch.tensor([True]))
    with pytest.raises(TypeError, match="integer tensor"):
        emb([0, 1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 2, padding_idx=5)
