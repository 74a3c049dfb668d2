"""measure_throughput returns sane numbers and leaves the model as it found it; no timing asserts."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from torch import nn

from dlkit.train.throughput import ThroughputResult, measure_throughput, plot_throughput

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def _make_batch(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch_size, 8), torch.randint(0, 3, (batch_size,))


def test_one_positive_finite_result_per_batch_size() -> None:
    sizes = [1, 4, 16]
    results = measure_throughput(
        _model(), _make_batch, nn.functional.cross_entropy, sizes, steps=3, warmup=1
    )
    assert [r.batch_size for r in results] == sizes
    for r in results:
        assert len(r.step_times) == 3
        assert all(t > 0 and math.isfinite(t) for t in r.step_times)
        assert r.seconds_per_step > 0 and math.isfinite(r.samples_per_second)
        assert r.samples_per_second == pytest.approx(r.batch_size / r.seconds_per_step)


def test_median_and_rate_from_step_times() -> None:
    r = ThroughputResult(batch_size=8, step_times=(0.5, 0.1, 0.2))
    assert r.seconds_per_step == 0.2 and r.samples_per_second == pytest.approx(40.0)


def test_model_weights_and_mode_are_restored() -> None:
    model = _model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    made = []

    def adam(params):
        made.append(1)
        return torch.optim.Adam(params, lr=0.1)

    measure_throughput(
        model, _make_batch, nn.functional.cross_entropy, [2, 8], steps=2, warmup=1,
        optimizer_factory=adam,
    )  # fmt: skip
    assert made == [1, 1]  # a fresh optimizer per batch size
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed"


def test_bad_arguments_are_clear_errors() -> None:
    loss = nn.functional.cross_entropy
    with pytest.raises(ValueError, match="batch sizes must be positive"):
        measure_throughput(_model(), _make_batch, loss, [0, 4])
    with pytest.raises(ValueError, match="steps >= 1"):
        measure_throughput(_model(), _make_batch, loss, [4], steps=0)


def test_plot_draws_both_curves_on_log2_axis() -> None:
    results = [ThroughputResult(b, (0.001 * (1 + b / 8),)) for b in (1, 2, 4, 8, 16)]
    fig, ax = plt.subplots()
    rate_ax, time_ax = plot_throughput(results, ax=ax)
    assert rate_ax is ax and ax.get_xscale() == "log"
    assert list(ax.lines[0].get_xdata()) == [1, 2, 4, 8, 16]
    assert list(time_ax.lines[0].get_ydata()) == pytest.approx(
        [1e3 * r.seconds_per_step for r in results]
    )
    fig.canvas.draw()
    plt.close(fig)
    rate_ax, _ = plot_throughput(results)  # makes its own figure
    assert rate_ax.lines
    plt.close(rate_ax.figure)
