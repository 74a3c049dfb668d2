"""Plots (matplotlib) and interactive explorers (ipywidgets) used by the chapters."""

from dlkit.viz.activations import (
    activation_curve,
    activation_explorer,
    plot_activation,
    plot_activation_gallery,
    plot_gradient_norms,
)
from dlkit.viz.descent import descent_explorer, descent_path, plot_descent

__all__ = [
    "activation_curve",
    "activation_explorer",
    "descent_explorer",
    "descent_path",
    "plot_activation",
    "plot_activation_gallery",
    "plot_descent",
    "plot_gradient_norms",
]
