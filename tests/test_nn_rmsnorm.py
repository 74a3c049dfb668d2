"""dlkit.nn.RMSNorm against torch.nn.RMSNorm in float64: values and gradients over shapes,
eps (including torch's ``None`` = machine epsilon) and with or without the learned scale."""

from __future__ import annotations

import pytest
import torch

from dlkit.nn.normalization import RMSNorm


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("eps", [None, 1e-6, 1e-2, 0.5])
@pytest.mark.parametrize(
    ("x_shape", "normalized_shape"),
    [((4, 8), 8), ((2, 3, 5), (5,)), ((3, 4, 2, 6), (2, 6)), ((7,), 7)],
)
def test_rmsnorm_matches_torch_values_and_grads(x_shape, normalized_shape, eps, affine) -> None:
    gen = torch.Generator().manual_seed(0)
    ours = RMSNorm(normalized_shape, eps=eps, elementwise_affine=affine).double()
    theirs = torch.nn.RMSNorm(normalized_shape, eps=eps, elementwise_affine=affine).double()
    if affine:
        with torch.no_grad():
            ours.weight.copy_(torch.randn(ours.weight.shape, generator=gen, dtype=torch.float64))
            theirs.weight.copy_(ours.weight)
    # small inputs make eps matter, so a wrong eps (or eps added in the wrong place) shows
    x = 0.1 * torch.randn(x_shape, generator=gen, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = ours(xa), theirs(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-13)
    upstream = torch.randn(ya.shape, generator=gen, dtype=torch.float64)
    ya.backward(upstream)
    yb.backward(upstream)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)
    if affine:
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-10, atol=1e-12)
    else:
        assert ours.weight is None and not list(ours.parameters())


def test_rmsnorm_divides_by_the_root_mean_square_without_centring() -> None:
    x = torch.tensor([[3.0, 4.0], [1.0, 1.0]], dtype=torch.float64)
    y = RMSNorm(2, eps=1e-300).double()(x)
    rms = torch.tensor([[(12.5) ** 0.5], [1.0]], dtype=torch.float64)
    torch.testing.assert_close(y, x / rms)  # [1, 1] stays [1, 1]: no mean is subtracted


def test_rmsnorm_default_eps_follows_the_input_dtype() -> None:
    layer = RMSNorm(3, elementwise_affine=False)
    tiny = torch.full((1, 3), 1e-5)  # mean square 1e-10 ≈ float32 eps 1.2e-7 dominates
    torch.testing.assert_close(layer(tiny), torch.nn.RMSNorm(3, elementwise_affine=False)(tiny))
    assert layer(tiny)[0, 0] < 0.1  # eps = 1.19e-7 in float32 swamps 1e-10
    assert layer(tiny.double())[0, 0] == pytest.approx(1.0, rel=1e-5)  # eps = 2.2e-16 in float64


def test_rmsnorm_rejects_bad_arguments_and_shapes() -> None:
    with pytest.raises(ValueError, match="normalized_shape"):
        RMSNorm(0)
    with pytest.raises(ValueError, match="eps"):
        RMSNorm(4, eps=0.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        RMSNorm(4)(torch.randn(2, 5))
    with pytest.raises(TypeError, match="floating-point"):
        RMSNorm(4)(torch.ones(2, 4, dtype=torch.long))
