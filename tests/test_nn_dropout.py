"""dlkit.nn.Dropout against torch.nn.Dropout: same masks for a seed, statistics, train/eval."""

from __future__ import annotations

import pytest
import torch

from dlkit.nn import Dropout
from dlkit.nn.dropout import dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_same_mask_as_torch_for_the_same_seed(p: float) -> None:
    x = torch.randn(64, 33, dtype=torch.float64)
    torch.manual_seed(0)
    ours = Dropout(p)(x)
    torch.manual_seed(0)
    theirs = torch.nn.Dropout(p)(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_statistics_match_torch(p: float) -> None:
    # Mask statistics over 200k elements: the kept fraction is 1 - p within 5 standard
    # errors, survivors are scaled by exactly 1/(1 - p), and the mean is preserved.
    x = torch.ones(200_000, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    y = dropout(x, p, training=True, generator=generator)
    kept = y != 0
    n = x.numel()
    se = (p * (1 - p) / n) ** 0.5
    assert abs(kept.double().mean().item() - (1 - p)) < 5 * se
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    torch.manual_seed(1)
    reference = torch.nn.Dropout(p)(x)
    assert abs(y.mean().item() - reference.mean().item()) < 10 * se / (1 - p)
    assert set(torch.unique(reference).tolist()) == set(torch.unique(y).tolist())


def test_eval_mode_is_identity_and_p_edges() -> None:
    x = torch.randn(5, 7)
    layer = Dropout(0.5).eval()
    assert layer(x) is x or torch.equal(layer(x), x)
    torch.testing.assert_close(Dropout(0.0)(x), x)
    torch.testing.assert_close(Dropout(1.0)(x), torch.nn.Dropout(1.0)(x))  # all zeros
    assert "p=0.5" in repr(Dropout(0.5))


def test_backward_is_mask_over_keep_probability() -> None:
    p = 0.3
    x = torch.randn(40, 10, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(5)
    y = Dropout(p)(x)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    x2 = x.detach().clone().requires_grad_(True)
    torch.manual_seed(5)
    torch.nn.Dropout(p)(x2).backward(upstream)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-12, atol=0)
    mask = (y != 0).double()
    torch.testing.assert_close(x.grad, upstream * mask / (1 - p))


def test_p_outside_unit_interval_is_rejected() -> None:
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            Dropout(p)
