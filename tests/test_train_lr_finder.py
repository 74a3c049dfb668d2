"""The LR range test: geometric rates really used, smoothing formula, stopping, suggestion."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

matplotlib.use("Agg")

from dlkit.train import lr_range_test, make_loader
from dlkit.train.lr_finder import smooth_losses, suggest_lr


def _regression(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1
    return TensorDataset(x, y[:, None])


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 1).double()


def test_rates_are_geometric_and_really_used() -> None:
    data = _regression()
    loader = make_loader(data, batch_size=16, device="cpu")
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.123)
    result = lr_range_test(model, opt, nn.functional.mse_loss, loader, start_lr=1e-4,
                           end_lr=1e-1, num_steps=10, device="cpu", restore=False,
                           progress=False)  # fmt: skip
    expected = 1e-4 * 1000 ** (np.arange(10) / 9)
    np.testing.assert_allclose(result.lrs, expected, rtol=1e-12)
    # replay: plain SGD steps with those rates on the same batches (the loader cycles)
    ref = _model()
    batches = list(loader)
    for k, lr in enumerate(expected):
        x, y = batches[k % len(batches)]
        loss = nn.functional.mse_loss(ref(x), y)
        assert loss.item() == pytest.approx(result.losses[k], rel=1e-12)
        ref.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= lr * p.grad
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_restores_model_and_optimizer() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = make_loader(_regression(), batch_size=8, device="cpu")
    lr_range_test(model, opt, nn.functional.mse_loss, loader, num_steps=20, device="cpu",
                  progress=False)  # fmt: skip
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert opt.param_groups[0]["lr"] == 3e-3 and not opt.state


def test_smoothing_is_the_bias_corrected_ema() -> None:
    losses = np.array([4.0, 2.0, 3.0, 1.0])
    beta, a, expected = 0.8, 0.0, []
    for k, loss in enumerate(losses):
        a = beta * a + (1 - beta) * loss
        expected.append(a / (1 - beta ** (k + 1)))
    np.testing.assert_allclose(smooth_losses(losses, beta), expected, rtol=1e-12)
    assert smooth_losses([5.0], 0.9)[0] == pytest.approx(5.0)  # no bias towards 0
    with pytest.raises(ValueError, match="beta"):
        smooth_losses(losses, 1.0)


def test_stops_when_the_loss_blows_up_and_suggests_a_working_rate() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader(_regression(256), batch_size=32, shuffle=True, device="cpu")
    result = lr_range_test(model, opt, nn.functional.mse_loss, loader, start_lr=1e-5,
                           end_lr=100.0, num_steps=200, device="cpu", progress=False)  # fmt: skip
    assert len(result.lrs) < 200  # SGD on this quadratic diverges for lr > ~1: stopped early
    finite = result.smoothed[np.isfinite(result.smoothed)]
    assert finite[-1] > 4 * finite.min() or not np.isfinite(result.losses[-1])
    assert 1e-3 < result.suggestion < 1.0
    # and the suggested rate does train: 100 SGD steps reduce the loss a lot
    model2 = _model()
    opt2 = torch.optim.SGD(model2.parameters(), lr=result.suggestion)
    x, y = _regression(256).tensors
    first = nn.functional.mse_loss(model2(x), y).item()
    for _ in range(100):
        opt2.zero_grad()
        nn.functional.mse_loss(model2(x), y).backward()
        opt2.step()
    assert nn.functional.mse_loss(model2(x), y).item() < 0.01 * first
    result.plot()


def test_suggestion_on_a_known_curve() -> None:
    # L(η) = 1 - tanh(log10 η + 3): steepest descent in log η at η = 1e-3, minimum later
    lrs = np.geomspace(1e-6, 1.0, 121)
    curve = 1 - np.tanh(np.log10(lrs) + 3) + np.where(lrs > 0.1, (lrs - 0.1) * 50, 0)
    assert suggest_lr(lrs, curve) == pytest.approx(1e-3, rel=0.05)
    assert suggest_lr(np.array([1.0, 2.0]), np.array([1.0, 5.0])) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="increasing"):
        suggest_lr(np.array([2.0, 1.0, 3.0]), np.zeros(3))


def test_bad_arguments() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader(_regression(), batch_size=8, device="cpu")
    with pytest.raises(ValueError, match="start_lr"):
        lr_range_test(model, opt, nn.functional.mse_loss, loader, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        lr_range_test(model, opt, nn.functional.mse_loss, loader, num_steps=1)
    bad = lambda out, y: out.sum() * math.nan  # noqa: E731
    with pytest.raises(FloatingPointError, match="first step"):
        lr_range_test(model, opt, bad, loader, device="cpu", progress=False)


class _CountingLoader:
    """Two fresh batches per pass; counts the passes started (itertools.cycle would start one)."""

    def __init__(self, batches: int = 2) -> None:
        self.batches, self.passes = batches, 0
        x, y = _regression(16).tensors
        self.x, self.y = x, y

    def __iter__(self):  # type: ignore[no-untyped-def]
        self.passes += 1
        for _ in range(self.batches):
            yield self.x.clone(), self.y.clone()


def test_a_short_loader_is_iterated_again_not_cached() -> None:
    loader = _CountingLoader()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, opt, nn.functional.mse_loss, loader, start_lr=1e-4,
                           end_lr=1e-3, num_steps=5, device="cpu", progress=False)  # fmt: skip
    assert len(result.lrs) == 5
    assert loader.passes == 3  # batches 1-2, 3-4, 5: a new pass each time one ends
    with pytest.raises(ValueError, match="no batches"):
        lr_range_test(model, opt, nn.functional.mse_loss, _CountingLoader(batches=0),
                      num_steps=3, device="cpu", progress=False)  # fmt: skip
