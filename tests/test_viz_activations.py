"""dlkit.viz.activations: autograd derivatives against hand-written formulas, figures, widget."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from scipy.special import erf

from dlkit.nn.gradient_flow import gradient_norms
from dlkit.viz.activations import (
    activation_curve,
    activation_explorer,
    plot_activation,
    plot_activation_gallery,
    plot_gradient_norms,
)

X = np.array([-30.0, -4.0, -1.0, -0.3, 0.2, 1.0, 3.5, 30.0])  # avoids the kinks at 0
SIG = 1.0 / (1.0 + np.exp(-X))
GAUSS_CDF = 0.5 * (1.0 + erf(X / math.sqrt(2.0)))
EXPECTED = {  # name: (φ(x), φ'(x)) written out by hand
    "sigmoid": (SIG, SIG * (1.0 - SIG)),
    "tanh": (np.tanh(X), 1.0 - np.tanh(X) ** 2),
    "relu": (np.maximum(X, 0.0), (X > 0).astype(float)),
    "leaky_relu": (np.where(X > 0, X, 0.01 * X), np.where(X > 0, 1.0, 0.01)),
    "elu": (np.where(X > 0, X, np.expm1(X)), np.where(X > 0, 1.0, np.exp(X))),
    "gelu": (X * GAUSS_CDF, GAUSS_CDF + X * np.exp(-0.5 * X**2) / math.sqrt(2 * math.pi)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_curve_matches_formulas(name: str) -> None:
    y, dy = activation_curve(name, X)
    np.testing.assert_allclose(y, EXPECTED[name][0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dy, EXPECTED[name][1], rtol=1e-10, atol=1e-15)


def test_unknown_activation_and_empty_range() -> None:
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation_curve("swish", X)
    fig, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="lo < hi"):
        plot_activation(tuple(axes), "relu", 1.0, 1.0)
    plt.close(fig)


def test_figures_build() -> None:
    fig = plot_activation_gallery(("sigmoid", "relu"))
    assert len(fig.axes) == 4
    line = fig.axes[2].lines[0]  # sigmoid's derivative peaks at 1/4
    assert max(line.get_ydata()) == pytest.approx(0.25, abs=1e-4)
    plt.close(fig)
    fig, ax = plt.subplots()
    norms = gradient_norms("relu", "he", depth=4, width=8)
    plot_gradient_norms(ax, {"relu": norms})
    np.testing.assert_allclose(ax.lines[0].get_ydata(), norms)
    with pytest.raises(ValueError, match="empty"):
        plot_gradient_norms(ax, {})
    plt.close(fig)


def test_explorer_redraws_for_every_control() -> None:
    plt.close("all")
    widget = activation_explorer(depth=4, width=8)
    controls, span, _output = widget.children
    activation, init = controls.children
    assert "relu" in activation.options and "identity" not in activation.options
    for name, scheme in [("relu", "he"), ("gelu", "small")]:
        plt.close("all")
        activation.value, init.value = (
            name,
            scheme,
        )  # each change redraws (Agg keeps the figure open)
        figure = plt.figure(plt.get_fignums()[-1])
        values, slopes, norms = figure.axes
        np.testing.assert_allclose(
            norms.lines[0].get_ydata(), gradient_norms(name, scheme, depth=4, width=8)
        )
        reference = gradient_norms("relu", "he", depth=4, width=8)
        np.testing.assert_allclose(norms.lines[1].get_ydata(), reference)
        np.testing.assert_allclose(
            slopes.lines[0].get_ydata(), activation_curve(name, values.lines[0].get_xdata())[1]
        )
    plt.close("all")
    span.value = (2.0, 2.0)  # a collapsed range still draws, on [2, 2.5]
    x = plt.figure(plt.get_fignums()[-1]).axes[0].lines[0].get_xdata()
    assert (x.min(), x.max()) == (2.0, 2.5)
    plt.close("all")
