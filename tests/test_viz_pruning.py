"""dlkit.viz.pruning headless: the curve's points are the sweep's, the slider moves the marker
and the histogram, and the histogram holds exactly the surviving weights."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

matplotlib.use("Agg")

from dlkit.train.compression import sparsity_at_drop, sparsity_sweep, surviving_weights
from dlkit.train.distillation import accuracy
from dlkit.viz.pruning import PruningExplorer, plot_sparsity_curve, pruning_explorer

SPARSITIES = (0.0, 0.5, 0.8, 0.95)


@pytest.fixture(scope="module")
def trained():
    """A 6-24-3 MLP trained for 50 full-batch Adam steps on three Gaussian blobs."""
    g = torch.Generator().manual_seed(1)
    centres = 3 * torch.randn(3, 6, generator=g)
    y = torch.arange(3).repeat(60)  # (180,)
    x = centres[y] + torch.randn(180, 6, generator=g)  # (180, 6)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(50):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x, y


def test_curve_plots_the_sweep(trained) -> None:
    model, x, y = trained
    rows = sparsity_sweep(model, x, y, SPARSITIES)
    base = accuracy(model, x, y)
    ax = plot_sparsity_curve(rows, baseline=base, drop=0.02)
    curve, level, star = ax.lines[:3]
    np.testing.assert_allclose(curve.get_xdata(), [100 * s for s in SPARSITIES])
    np.testing.assert_allclose(curve.get_ydata(), [100 * r["accuracy"] for r in rows])
    assert level.get_ydata()[0] == pytest.approx(100 * (base - 0.02))
    assert star.get_xdata()[0] == pytest.approx(100 * sparsity_at_drop(rows, baseline=base,
                                                                        drop=0.02))  # fmt: skip
    plt.close("all")


def test_explorer_follows_the_slider(trained) -> None:
    model, x, y = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ex = PruningExplorer(model, x, y, sparsities=SPARSITIES, value=0.5)
    assert ex.sparsity == 0.5 and ex.baseline == accuracy(model, x, y)
    for s in (0.8, 0.95, 0.0):
        ex.slider.value = s  # the observer redraws
        row = next(r for r in ex.rows if r["sparsity"] == s)
        assert ex.sparsity == s and ex.accuracy == row["accuracy"]
        assert ex.drop == pytest.approx(ex.baseline - row["accuracy"])
        np.testing.assert_array_equal(ex.weights, surviving_weights(model, s))
        ax_curve, ax_hist = ex.figure.axes
        marker = ax_curve.lines[-1]
        assert marker.get_xdata()[0] == 100 * s and marker.get_ydata()[0] == 100 * ex.accuracy
        heights = sum(p.get_height() for p in ax_hist.patches)
        assert heights == ex.weights.size  # every surviving weight lands in a bin
        assert f"{100 * s:g}%" in ex.status.value
    for k, v in before.items():
        assert torch.equal(v, model.state_dict()[k]), k  # the explorer prunes copies only
    plt.close("all")


def test_explorer_starts_at_the_drop_and_checks_its_value(trained) -> None:
    model, x, y = trained
    ex = PruningExplorer(model, x, y, sparsities=SPARSITIES, drop=0.01)
    assert ex.sparsity == sparsity_at_drop(ex.rows, baseline=ex.baseline, drop=0.01)
    assert isinstance(pruning_explorer(model, x, y, sparsities=SPARSITIES), widgets.VBox)
    with pytest.raises(ValueError, match="value must be one of the sparsities"):
        PruningExplorer(model, x, y, sparsities=SPARSITIES, value=0.3)
    with pytest.raises(ValueError, match="strictly increasing"):
        PruningExplorer(model, x, y, sparsities=(0.5, 0.2))
    plt.close("all")
