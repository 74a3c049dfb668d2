"""Plots (matplotlib) and interactive explorers (ipywidgets) used by the chapters."""

from dlkit.viz.descent import descent_explorer, descent_path, plot_descent

__all__ = ["descent_explorer", "descent_path", "plot_descent"]
