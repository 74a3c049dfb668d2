r"""Pictures for the activations chapter: each function with its derivative, and gradient flow.

Derivatives are computed by PyTorch's autograd in float64 (not typed in by hand), so a
plot shows exactly what backpropagation multiplies by: :math:`\phi'(a)` per unit per layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlkit.nn.gradient_flow import ACTIVATIONS, INIT_SCHEMES, gradient_norms

__all__ = [
    "activation_curve",
    "activation_explorer",
    "plot_activation",
    "plot_activation_gallery",
    "plot_gradient_norms",
]


def activation_curve(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Values :math:`\phi(x)` and derivatives :math:`\phi'(x)` (autograd), both shaped like ``x``.

    ``name`` is a key of :data:`dlkit.nn.gradient_flow.ACTIVATIONS`. At a kink (ReLU at 0)
    autograd returns PyTorch's convention, the right-hand slope for ELU and 0 for ReLU.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    y = ACTIVATIONS[name](t)
    (dy,) = torch.autograd.grad(y.sum(), t)  # elementwise φ, so d(sum φ)/dx_i = φ'(x_i)
    return y.detach().numpy(), dy.numpy()


def plot_activation(axes: tuple[Axes, Axes], name: str, lo: float = -5.0, hi: float = 5.0) -> None:
    """Left axis: :math:`\\phi(x)` on ``[lo, hi]``; right axis: :math:`\\phi'(x)`."""
    if not hi > lo:
        raise ValueError(f"the input range needs lo < hi, got lo={lo}, hi={hi}")
    x = np.linspace(lo, hi, 401)
    y, dy = activation_curve(name, x)
    value_ax, slope_ax = axes
    value_ax.plot(x, y, color="tab:blue")
    value_ax.set(xlabel="a", ylabel="φ(a)", title=f"{name}(a)")
    slope_ax.plot(x, dy, color="tab:orange")
    slope_ax.axhline(0.0, color="0.8", lw=0.8)
    slope_ax.set(xlabel="a", ylabel="φ'(a)", title=f"derivative, max {dy.max():.3g}")
    for ax in axes:
        ax.grid(alpha=0.3)


def plot_activation_gallery(
    names: Sequence[str] = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"),
) -> Figure:
    """One column per activation: the function (top) and its derivative (bottom) on [-5, 5]."""
    fig, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 5), squeeze=False)
    for column, name in enumerate(names):
        plot_activation((axes[0, column], axes[1, column]), name)
        axes[0, column].set_xlabel("")
    fig.tight_layout()
    return fig


def plot_gradient_norms(ax: Axes, norms: Mapping[str, np.ndarray]) -> None:
    """Per-layer weight-gradient norms (log scale), layer 1 = next to the input, one line per label."""
    if not norms:
        raise ValueError("norms is empty: pass {label: per-layer norms}")
    for label, values in norms.items():
        values = np.asarray(values, dtype=np.float64)
        ax.semilogy(np.arange(1, values.size + 1), values, "o-", markersize=3, label=label)
    ax.set(xlabel="layer (1 = input side)", ylabel="‖∂L/∂W‖", title="gradient norm per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def activation_explorer(depth: int = 20, width: int = 64) -> widgets.Widget:
    """Pick an activation, an input range and an init; see φ, φ' and the layer-wise gradient norms.

    The gradient-norm panel also shows ReLU with He init as a reference.
    """
    activation = widgets.Dropdown(
        options=sorted(n for n in ACTIVATIONS if n != "identity"),
        value="sigmoid",
        description="activation",
    )
    init = widgets.Dropdown(options=list(INIT_SCHEMES), value="xavier", description="init")
    span = widgets.FloatRangeSlider(
        value=(-5.0, 5.0),
        min=-10.0,
        max=10.0,
        step=0.5,
        description="input range",
        continuous_update=False,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="50%"),
    )
    out = widgets.Output()
    reference = gradient_norms("relu", "he", depth=depth, width=width)  # drawn for comparison

    def draw(change: object = None) -> None:
        lo, hi = span.value
        if hi <= lo:  # the slider can collapse to one point
            hi = lo + 0.5
        norms = gradient_norms(activation.value, init.value, depth=depth, width=width)
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
            plot_activation((axes[0], axes[1]), activation.value, lo, hi)
            chosen = f"{activation.value}, {init.value} init"
            plot_gradient_norms(axes[2], {chosen: norms, "reference: relu, he init": reference})
            ratio = norms[0] / norms[-1]
            fig.suptitle(f"depth {depth}: ‖∂L/∂W₁‖ / ‖∂L/∂W_{depth}‖ = {ratio:.2e}")
            fig.tight_layout()
            plt.show()

    for control in (activation, init, span):
        control.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([activation, init]), span, out])
