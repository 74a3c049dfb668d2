"""The RNN gradient-flow plots and explorer, headless (Agg), against the numbers they show."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dlkit.scratch.rnn import gradient_flow
from dlkit.viz.rnn import (
    gradient_flow_explorer,
    gradient_flow_figure,
    plot_gradient_flow,
    plot_training_curves,
)


def test_plotted_curves_are_the_measured_norms() -> None:
    fig, axes = plt.subplots(1, 2)
    flow = gradient_flow(25, 0.7, seed=0)
    plot_gradient_flow(axes, {"s = 0.7": flow})
    hidden_line, grad_line = axes[0].lines[0], axes[1].lines[0]
    np.testing.assert_allclose(hidden_line.get_ydata(), flow.hidden)
    np.testing.assert_allclose(grad_line.get_ydata(), flow.gradient, rtol=1e-12)
    np.testing.assert_array_equal(grad_line.get_xdata(), np.arange(1, 26))
    assert axes[1].get_yscale() == "log"
    plt.close(fig)


def test_figure_has_one_curve_per_scale() -> None:
    fig = gradient_flow_figure(20, scales=(0.5, 1.0, 2.0))
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]
    small, large = (line.get_ydata() for line in fig.axes[1].lines[::2])
    assert small[0] < small[-1] and large[0] > large[-1]  # vanishing vs exploding
    plt.close(fig)


def test_explorer_redraws_when_sliders_move(monkeypatch) -> None:
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    widget = gradient_flow_explorer(length=30, weight_scale=1.0)
    (length_slider, scale_slider), _ = widget.children[0].children, widget.children[1]
    assert len(shown) == 1
    length_slider.value = 80
    scale_slider.value = 2.5
    assert len(shown) == 3
    title = shown[-1].texts[0].get_text() if shown[-1].texts else shown[-1]._suptitle.get_text()
    flow = gradient_flow(80, 2.5, hidden_size=32)
    assert f"{flow.gradient[0] / flow.gradient[-1]:.3g}" in title and "exploding" in title
    assert len(shown[-1].axes[1].lines[0].get_ydata()) == 80
    for fig in shown:
        plt.close(fig)


def test_training_curves_are_smoothed_moving_averages() -> None:
    fig, ax = plt.subplots()
    plot_training_curves(ax, {"a": [4.0, 2.0, 1.0, 1.0]}, baseline=0.5, window=2)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [3.0, 1.5, 1.0])
    assert ax.lines[1].get_ydata()[0] == pytest.approx(0.5)
    plt.close(fig)
