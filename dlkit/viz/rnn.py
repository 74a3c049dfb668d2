r"""Hidden states and gradients through time in a vanilla RNN, as plots and an explorer.

Every curve comes from :func:`dlkit.scratch.rnn.gradient_flow`: a NumPy RNN whose
recurrent matrix has all singular values equal to the weight scale :math:`s`, a loss
that reads only the last state, and backpropagation through time. Going back
:math:`k` steps multiplies the gradient by :math:`k` Jacobians
:math:`\operatorname{diag}(1 - h_t^2)\,W_{hh}`, so its norm behaves roughly like
:math:`s^k` times the product of the :math:`\tanh'` factors: it vanishes for
:math:`s < 1` and may explode for :math:`s > 1`.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlkit.scratch.rnn import GradientFlow, gradient_flow

_TINY = 1e-300  # keeps log axes finite where a gradient underflows to 0


def plot_gradient_flow(axes: tuple[Axes, Axes], flows: dict[str, GradientFlow]) -> None:
    """Left: mean :math:`\\lVert h_t \\rVert` per step. Right: :math:`\\lVert \\partial L / \\partial h_t \\rVert` (log)."""
    hidden_ax, grad_ax = axes
    for label, flow in flows.items():
        steps = np.arange(1, len(flow.hidden) + 1)
        hidden_ax.plot(steps, flow.hidden, label=label)
        grad_ax.semilogy(steps, flow.gradient + _TINY, label=label)
    hidden_ax.set(xlabel="time step t", ylabel="mean ‖h_t‖", title="hidden state")
    grad_ax.set(
        xlabel="time step t (the loss reads h_T)",
        ylabel="mean ‖∂L/∂h_t‖",
        title="gradient flowing back in time",
    )
    grad_ax.legend(fontsize=8)


def gradient_flow_figure(
    length: int = 50, scales: Sequence[float] = (0.5, 0.9, 1.0, 1.5, 3.0), **options: float
) -> Figure:
    """One curve per weight scale; ``options`` go to :func:`~dlkit.scratch.rnn.gradient_flow`."""
    flows = {f"s = {s:g}": gradient_flow(length, s, **options) for s in scales}  # type: ignore[arg-type]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    plot_gradient_flow(axes, flows)
    fig.tight_layout()
    return fig


def gradient_flow_explorer(
    length: int = 50, weight_scale: float = 1.0, *, hidden_size: int = 32
) -> widgets.Widget:
    """Sliders for the sequence length and the weight scale :math:`s` of :math:`W_{hh}`."""
    style = {"description_width": "initial"}
    length_slider = widgets.IntSlider(
        value=length, min=2, max=300, step=1, description="sequence length T",
        continuous_update=False, style=style,
    )  # fmt: skip
    scale_slider = widgets.FloatSlider(
        value=weight_scale, min=0.1, max=3.0, step=0.05, description="weight scale s",
        continuous_update=False, style=style,
    )  # fmt: skip
    out = widgets.Output()

    def draw(change: object = None) -> None:
        flow = gradient_flow(length_slider.value, scale_slider.value, hidden_size=hidden_size)
        ratio = flow.gradient[0] / flow.gradient[-1]
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
            plot_gradient_flow(axes, {f"s = {scale_slider.value:.2f}": flow})
            fig.suptitle(
                f"T = {length_slider.value}: ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {ratio:.3g}"
                + (" (vanishing)" if ratio < 1e-3 else " (exploding)" if ratio > 1e3 else "")
            )
            fig.tight_layout()
            plt.show()

    length_slider.observe(draw, names="value")
    scale_slider.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([length_slider, scale_slider]), out])


def plot_training_curves(
    ax: Axes, curves: dict[str, Sequence[float]], *, baseline: float | None = None, window: int = 20
) -> None:
    """Training losses smoothed by a moving average of ``window`` steps, on a log scale."""
    for label, losses in curves.items():
        values = np.asarray(losses, dtype=float)
        w = max(1, min(window, len(values)))
        smooth = np.convolve(values, np.ones(w) / w, mode="valid")
        ax.semilogy(np.arange(w, len(values) + 1), smooth, label=label)
    if baseline is not None:
        ax.axhline(baseline, color="0.5", linestyle="--", label="predict the mean")
    ax.set(xlabel="training step", ylabel="loss (moving average)")
    ax.legend(fontsize=8)
