"""dlkit.nn.functional activations against torch.nn.functional: values and gradients in float64."""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.nn import functional as F

SETTINGS = settings(max_examples=25, deadline=None)

# (name, our function, torch's function); each takes only the input tensor.
ELEMENTWISE: list[tuple[str, Callable, Callable]] = [
    ("relu", F.relu, TF.relu),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu),
    ("leaky_relu(0.2)", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    ("elu", F.elu, TF.elu),
    ("elu(alpha=0.5)", lambda x: F.elu(x, alpha=0.5), lambda x: TF.elu(x, alpha=0.5)),
    ("gelu", F.gelu, TF.gelu),
    (
        "gelu(tanh)",
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: TF.gelu(x, approximate="tanh"),
    ),
    ("sigmoid", F.sigmoid, torch.sigmoid),
    ("tanh", F.tanh, torch.tanh),
]
IDS = [name for name, _, _ in ELEMENTWISE]

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple)


def _value_and_grad(fn: Callable, x: torch.Tensor, upstream: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (grad,) = torch.autograd.grad(out, x, upstream)
    return out.detach(), grad


def _assert_matches(ours: Callable, theirs: Callable, x: torch.Tensor, rtol=1e-10, atol=1e-12):
    upstream = torch.randn_like(x)
    out, grad = _value_and_grad(ours, x, upstream)
    want_out, want_grad = _value_and_grad(theirs, x, upstream)
    torch.testing.assert_close(out, want_out, rtol=rtol, atol=atol)
    torch.testing.assert_close(grad, want_grad, rtol=rtol, atol=atol)


@pytest.mark.parametrize(("name", "ours", "theirs"), ELEMENTWISE, ids=IDS)
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 5.0, 30.0]))
def test_elementwise_matches_torch(name, ours, theirs, shape, seed, scale) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    _assert_matches(ours, theirs, x * scale)


@pytest.mark.parametrize(("name", "ours", "theirs"), ELEMENTWISE, ids=IDS)
def test_elementwise_at_kinks_and_extremes(name, ours, theirs) -> None:
    # 0 is where relu, leaky_relu and elu switch branch; ±1e4 overflows a naive exp.
    x = torch.tensor([-1e4, -800.0, -50.0, -1.0, -1e-12, 0.0, 1e-12, 1.0, 50.0, 800.0, 1e4])
    _assert_matches(ours, theirs, x.double())
    out, grad = _value_and_grad(ours, x.float(), torch.ones(x.shape))
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    _assert_matches(ours, theirs, x.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "ours", "theirs"), ELEMENTWISE, ids=IDS)
def test_elementwise_nan_and_infinities_like_torch(name, ours, theirs) -> None:
    x = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), equal_nan=True)


@pytest.mark.parametrize(("name", "ours", "theirs"), ELEMENTWISE, ids=IDS)
def test_elementwise_gradcheck(name, ours, theirs) -> None:
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = (x + 0.05 * torch.sign(x)).requires_grad_(True)  # keep clear of the kink at 0
    assert torch.autograd.gradcheck(ours, (x,))
    assert torch.autograd.gradgradcheck(ours, (x,))


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), data=st.data())
def test_softmax_matches_torch(fn, shape, data) -> None:
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    scale = data.draw(st.sampled_from([1.0, 10.0, 1e4]), label="scale")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ours, theirs = getattr(F, fn), getattr(TF, fn)
    _assert_matches(lambda t: ours(t, dim), lambda t: theirs(t, dim=dim), x * scale)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_extreme_logits_are_finite_and_match(fn) -> None:
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4 - 1]])
    ours, theirs = getattr(F, fn), getattr(TF, fn)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        _assert_matches(
            lambda t: ours(t, 1), lambda t: theirs(t, dim=1), x.to(dtype), rtol=tol, atol=tol
        )
        out, grad = _value_and_grad(
            lambda t: ours(t, 1), x.to(dtype), torch.ones(3, 3, dtype=dtype)
        )
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_gradcheck(fn) -> None:
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: getattr(F, fn)(t, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: getattr(F, fn)(t, -1), (x,))


def test_softmax_rows_sum_to_one_and_log_softmax_is_its_log() -> None:
    x = torch.randn(5, 7, dtype=torch.float64) * 20
    p = F.softmax(x, dim=1)
    torch.testing.assert_close(p.sum(1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(F.log_softmax(x, dim=1).exp(), p)


def test_bad_input_errors_name_what_was_expected() -> None:
    with pytest.raises(TypeError, match="floating-point tensor"):
        F.relu(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        F.sigmoid([1.0, 2.0])
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        F.gelu(torch.zeros(2), approximate="fast")
    with pytest.raises(IndexError, match=r"-2 <= dim < 2"):
        F.softmax(torch.zeros(2, 3), dim=2)
    with pytest.raises(TypeError, match="dim must be an int"):
        F.log_softmax(torch.zeros(2, 3), dim=None)


def _raise(*args, **kwargs):
    raise AssertionError("called a fused PyTorch version")


FUSED = [
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "softplus",
    "logsigmoid",
]


def test_no_call_into_torch_fused_versions() -> None:
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    patches = [mock.patch.object(TF, name, _raise) for name in FUSED]
    patches += [
        mock.patch.object(torch, name, _raise)
        for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "logsumexp")
    ]
    patches += [
        mock.patch.object(torch.Tensor, name, _raise)
        for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "logsumexp")
    ]
    for p in patches:
        p.start()
    try:
        outputs = [fn(x) for _, fn, _ in ELEMENTWISE]
        outputs += [F.softmax(x, 1), F.log_softmax(x, 0)]
        torch.autograd.grad(sum(o.sum() for o in outputs), x)
    finally:
        for p in patches:
            p.stop()
