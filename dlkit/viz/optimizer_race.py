"""An optimizer race on 2-D test functions: trajectories on the contour plot, loss per step.

Every trajectory comes from a real ``torch.optim.Optimizer`` (:mod:`dlkit.optim`'s, which
follow ``torch.optim``'s trajectories) stepping a parameter
tensor of shape ``(2,)``: at step :math:`k` the loop evaluates :math:`f(\\theta_k)`,
back-propagates to get :math:`\\nabla f(\\theta_k)` and calls ``optimizer.step()``, exactly
as a training loop does with a network's loss. So what the widget shows is what the
optimizer does, not a re-implementation of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlkit import optim
from dlkit.viz.landscapes import LANDSCAPES, Landscape, get_landscape

__all__ = [
    "OptimizerRace",
    "Trajectory",
    "optimizer_race",
    "plot_race",
    "racers",
    "run_trajectory",
]

OptimizerFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

# Learning rates that make each landscape's race instructive: (SGD family, adaptive, steps).
DEFAULTS: dict[str, tuple[float, float, int]] = {
    "rosenbrock": (1e-3, 0.1, 500),
    "beale": (1e-2, 0.05, 300),
    "saddle": (0.05, 0.05, 150),
    "ill_conditioned": (0.06, 0.1, 100),
}
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


@dataclass(frozen=True)
class Trajectory:
    """The iterates of one optimizer.

    Attributes:
        points: ``(K + 1, 2)`` float64, :math:`\\theta_0, \\dots, \\theta_K`.
        losses: ``(K + 1,)`` float64, :math:`f(\\theta_k)`.
        diverged: True when the run stopped early at a non-finite or far-away point
            (then :math:`K` is smaller than the steps asked for).
    """

    points: np.ndarray
    losses: np.ndarray
    diverged: bool


def run_trajectory(
    landscape: Landscape | str,
    make_optimizer: OptimizerFactory,
    steps: int,
    *,
    start: tuple[float, float] | None = None,
    bound: float = 1e6,
) -> Trajectory:
    """Run ``make_optimizer([theta])`` for ``steps`` steps on ``landscape`` from ``start``.

    ``theta`` is a float64 tensor of shape ``(2,)`` starting at ``start`` (the landscape's
    own start by default). The run stops early, marked ``diverged``, once a coordinate
    or the loss leaves ``[-bound, bound]`` or becomes non-finite.
    """
    land = get_landscape(landscape) if isinstance(landscape, str) else landscape
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    theta = torch.tensor(start or land.start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([theta])
    points, losses, diverged = [], [], False
    for k in range(steps + 1):
        optimizer.zero_grad()
        loss = land.value(theta)  # scalar f(θ_k)
        point, value = theta.detach().numpy().copy(), loss.item()
        if not (math.isfinite(value) and abs(value) <= bound and np.all(np.abs(point) <= bound)):
            diverged = True
            break
        points.append(point)
        losses.append(value)
        if k == steps:
            break
        loss.backward()
        optimizer.step()
    return Trajectory(np.array(points).reshape(-1, 2), np.array(losses), diverged)


def racers(
    lr_sgd: float = 1e-3,
    lr_adaptive: float = 0.05,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
) -> dict[str, OptimizerFactory]:
    """The contestants, as factories ``params -> optimizer``.

    SGD, heavy-ball momentum and Nesterov share ``lr_sgd`` and ``momentum``; AdaGrad,
    RMSprop and Adam share ``lr_adaptive``; RMSprop's smoothing constant ``alpha`` is
    Adam's :math:`\\beta_2`, since both average :math:`g^2` the same way.
    """
    return {
        "SGD": lambda p: optim.SGD(p, lr=lr_sgd),
        "momentum": lambda p: optim.SGD(p, lr=lr_sgd, momentum=momentum),
        "Nesterov": lambda p: optim.SGD(p, lr=lr_sgd, momentum=momentum, nesterov=True),
        "AdaGrad": lambda p: optim.Adagrad(p, lr=lr_adaptive),
        "RMSprop": lambda p: optim.RMSprop(p, lr=lr_adaptive, alpha=beta2),
        "Adam": lambda p: optim.Adam(p, lr=lr_adaptive, betas=(beta1, beta2)),
    }


def plot_race(
    axes: tuple[Axes, Axes], landscape: Landscape, trajectories: Mapping[str, Trajectory]
) -> None:
    """Left: trajectories over contours of :math:`f`. Right: :math:`f - f^\\star` per step (log)."""
    contour_ax, loss_ax = axes
    grid_x, grid_y, z = landscape.grid(200)
    gap = z - landscape.min_value  # >= 0 on the grid
    low, high = np.quantile(gap, [0.002, 0.9])
    levels = np.geomspace(max(low, 1e-4), high, 20)  # log-spaced: valleys show their shape
    contour_ax.contour(grid_x, grid_y, gap, levels=levels, cmap="Greys", linewidths=0.6)
    for mx, my in landscape.minima:
        contour_ax.plot(mx, my, "*", color="gold", markersize=14, markeredgecolor="k")
    for (name, traj), color in zip(trajectories.items(), COLORS * 2, strict=False):
        label = f"{name} (diverged)" if traj.diverged else name
        contour_ax.plot(*traj.points.T, "-", color=color, label=label, linewidth=1.5)
        loss_ax.semilogy(
            np.maximum(traj.losses - landscape.min_value, 1e-16), color=color, label=label
        )
    contour_ax.set(xlim=landscape.xlim, ylim=landscape.ylim, xlabel="x", ylabel="y")
    contour_ax.set_title(landscape.formula)
    loss_ax.set(xlabel="step k", ylabel="f(θ_k) − f*", title="distance to the minimum value")
    loss_ax.legend(fontsize=8)


class OptimizerRace:
    """The race widget: a landscape menu and sliders; :meth:`update` recomputes and redraws.

    After each :meth:`update`, ``trajectories`` holds the runs and ``figure`` the plot
    (axes 0: contours with one line per optimizer; axes 1: loss per step).
    """

    def __init__(self, landscape: str = "rosenbrock") -> None:
        lr_sgd, lr_adaptive, steps = DEFAULTS[get_landscape(landscape).name]
        style, layout = {"description_width": "initial"}, widgets.Layout(width="45%")

        def log_slider(value: float, low: int, high: int, text: str) -> widgets.FloatLogSlider:
            return widgets.FloatLogSlider(value=value, base=10, min=low, max=high, step=0.1,
                                          description=text, continuous_update=False,
                                          readout_format=".1e", style=style, layout=layout)  # fmt: skip

        def slider(
            value: float, low: float, high: float, step: float, text: str
        ) -> widgets.FloatSlider:
            return widgets.FloatSlider(value=value, min=low, max=high, step=step,
                                       description=text, continuous_update=False,
                                       readout_format=".3f", style=style, layout=layout)  # fmt: skip

        self.landscape = widgets.Dropdown(options=sorted(LANDSCAPES), value=landscape,
                                          description="function")  # fmt: skip
        self.lr_sgd = log_slider(lr_sgd, -4, 0, "lr (SGD, momentum)")
        self.lr_adaptive = log_slider(lr_adaptive, -3, 0, "lr (AdaGrad, RMSprop, Adam)")
        self.momentum = slider(0.9, 0.0, 0.99, 0.01, "momentum μ")
        self.beta1 = slider(0.9, 0.0, 0.99, 0.01, "Adam β₁")
        self.beta2 = slider(0.999, 0.9, 0.9999, 0.0001, "β₂ (RMSprop α)")
        self.steps = widgets.IntSlider(value=steps, min=10, max=1000, step=10,
                                       description="steps", continuous_update=False)  # fmt: skip
        self.output = widgets.Output()
        self.trajectories: dict[str, Trajectory] = {}
        self.figure: Figure | None = None
        self._holding = False
        self.landscape.observe(self._on_landscape, names="value")
        for control in self._sliders():
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            self.landscape,
            widgets.HBox([self.lr_sgd, self.lr_adaptive]),
            widgets.HBox([self.momentum, self.beta1]),
            widgets.HBox([self.beta2, self.steps]),
            self.output,
        ])  # fmt: skip
        self.update()

    def _sliders(self) -> list[widgets.Widget]:
        return [self.lr_sgd, self.lr_adaptive, self.momentum, self.beta1, self.beta2, self.steps]

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Set several controls at once: no redraw inside the block, one after it."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        self.update()

    def _on_landscape(self, change: object = None) -> None:
        """Switch function and reset the learning rates and steps to its defaults."""
        with self.holding():
            defaults = DEFAULTS[self.landscape.value]
            self.lr_sgd.value, self.lr_adaptive.value, self.steps.value = defaults

    def update(self, change: object = None) -> None:
        """Recompute every trajectory from the current controls and redraw."""
        if self._holding:
            return
        land = get_landscape(self.landscape.value)
        contestants = racers(self.lr_sgd.value, self.lr_adaptive.value, self.momentum.value,
                             self.beta1.value, self.beta2.value)  # fmt: skip
        self.trajectories = {
            name: run_trajectory(land, make, self.steps.value) for name, make in contestants.items()
        }
        if self.figure is not None:
            plt.close(self.figure)
        self.figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        plot_race(axes, land, self.trajectories)
        self.figure.tight_layout()
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)  # shown once, by display; the object stays readable


def optimizer_race(landscape: str = "rosenbrock") -> widgets.Widget:
    """The race as a widget, ready to display in a notebook."""
    return OptimizerRace(landscape).widget
