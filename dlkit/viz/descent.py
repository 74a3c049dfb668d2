"""Gradient descent on a 1-D quadratic: the welcome chapter's first widget.

For :math:`f(x) = a x^2` the update :math:`x_{k+1} = x_k - \\eta f'(x_k) = (1 - 2a\\eta)\\,x_k`
gives :math:`x_k = (1 - 2a\\eta)^k x_0`: it converges when :math:`0 < \\eta < 1/a`,
oscillates on the way for :math:`\\eta > 1/(2a)`, and diverges for :math:`\\eta > 1/a`.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes


def descent_path(grad: Callable[[float], float], x0: float, lr: float, steps: int) -> np.ndarray:
    """Iterates of :math:`x_{k+1} = x_k - \\eta\\, \\nabla f(x_k)`; shape ``(steps + 1,)``."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    path = np.empty(steps + 1)
    path[0] = x0
    for k in range(steps):
        path[k + 1] = path[k] - lr * grad(path[k])
    return path


def plot_descent(axes: tuple[Axes, Axes], path: np.ndarray, a: float) -> None:
    """Left: the iterates on the parabola :math:`a x^2`. Right: :math:`|x_k|` per step (log)."""
    curve_ax, error_ax = axes
    reach = max(float(np.max(np.abs(path[np.isfinite(path)]), initial=1.0)), 1.0)
    xs = np.linspace(-1.1 * reach, 1.1 * reach, 200)
    curve_ax.plot(xs, a * xs**2, color="0.6")
    curve_ax.plot(path, a * path**2, "o-", color="tab:blue", markersize=4)
    curve_ax.set(xlabel="x", ylabel="f(x) = a·x²", title="iterates on the loss curve")
    error_ax.semilogy(np.abs(path) + 1e-300, "o-", color="tab:orange", markersize=4)
    error_ax.set(xlabel="step k", ylabel="|x_k|", title="distance to the minimum")


def descent_explorer(a: float = 1.0, x0: float = 4.0, steps: int = 20) -> widgets.Widget:
    """A learning-rate slider driving gradient descent on :math:`a x^2`."""
    lr = widgets.FloatSlider(
        value=0.1,
        min=0.01,
        max=1.2 / a,
        step=0.01,
        description="learning rate η",
        continuous_update=False,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="60%"),
    )
    out = widgets.Output()

    def draw(change: object = None) -> None:
        path = descent_path(lambda x: 2 * a * x, x0, lr.value, steps)
        factor = 1 - 2 * a * lr.value
        verdict = "converges" if abs(factor) < 1 else "diverges"
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
            plot_descent(axes, path, a)
            fig.suptitle(f"η = {lr.value:.2f}: x_k = ({factor:+.2f})^k · x_0, {verdict}")
            fig.tight_layout()
            plt.show()

    lr.observe(draw, names="value")
    draw()
    return widgets.VBox([lr, out])
