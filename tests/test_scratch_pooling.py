"""dlkit.scratch.pooling against torch.nn.functional.max_pool2d / avg_pool2d (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.scratch import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

POOLS = {
    "max": (max_pool2d, max_pool2d_backward, F.max_pool2d),
    "avg": (avg_pool2d, avg_pool2d_backward, F.avg_pool2d),
}


@st.composite
def pool_cases(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 9))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    return {"shape": shape, "kernel": (kh, kw), "stride": stride, "padding": padding,
            "seed": draw(st.integers(0, 2**16))}  # fmt: skip


@pytest.mark.parametrize("kind", POOLS)
@settings(max_examples=40, deadline=None)
@given(case=pool_cases())
def test_forward_and_gradient_match_torch(kind: str, case: dict) -> None:
    forward, backward, reference = POOLS[kind]
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=case["shape"])
    args = (case["kernel"], case["stride"], case["padding"])
    xt = torch.tensor(x, requires_grad=True)
    y_ref = reference(xt, *args)
    g = rng.normal(size=y_ref.shape)
    y_ref.backward(torch.from_numpy(g))
    y = forward(x, *args)
    assert y.shape == tuple(y_ref.shape)
    np.testing.assert_allclose(y, y_ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backward(g, x, *args), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", POOLS)
def test_gradient_matches_finite_differences(kind: str) -> None:
    forward, backward, _ = POOLS[kind]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 2, 6, 5))  # distinct values: max pooling is differentiable here
    args = ((3, 2), (2, 1), (1, 1))  # overlapping windows, with padding
    g = rng.normal(size=forward(x, *args).shape)
    dx = backward(g, x, *args)
    numeric, eps = np.zeros_like(x), 1e-6
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        plus = np.sum(forward(x, *args) * g)
        x[index] = saved - eps
        minus = np.sum(forward(x, *args) * g)
        x[index] = saved
        numeric[index] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


def test_max_pool_ties_go_to_the_first_maximum_like_torch() -> None:
    x = np.zeros((1, 1, 4, 4))
    g = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    xt = torch.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 2).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(max_pool2d_backward(g, x, 2), xt.grad.numpy())


def test_integer_input_is_pooled_as_float() -> None:
    x = np.arange(16).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(
        max_pool2d(x, 2, padding=1)[0, 0], [[0, 2, 3], [8, 10, 11], [12, 14, 15]]
    )


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((4, 4), {"kernel_size": 2}, r"expected input of shape \(N, C, H, W\), got shape \(4, 4\)"),
        ((1, 1, 3, 3), {"kernel_size": 4}, r"larger than the padded input"),
        ((1, 1, 6, 6), {"kernel_size": 2, "padding": 2}, r"at most half the kernel size"),
        ((1, 1, 6, 6), {"kernel_size": 2, "stride": 0}, r"stride >= 1"),
    ],
)
def test_bad_arguments_raise(kind: str, shape, kwargs, match) -> None:
    forward, backward, _ = POOLS[kind]
    with pytest.raises(ValueError, match=match):
        forward(np.zeros(shape), **kwargs)
    with pytest.raises(ValueError, match=match):
        backward(np.zeros((1, 1, 1, 1)), np.zeros(shape), **kwargs)


@pytest.mark.parametrize("kind", POOLS)
def test_wrong_grad_shape_raises(kind: str) -> None:
    _, backward, _ = POOLS[kind]
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(1, 2, 3, 3\)"):
        backward(np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 6, 6)), 2)
