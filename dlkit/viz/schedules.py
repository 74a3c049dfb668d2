"""Learning-rate schedules plotted over training steps, and a widget to explore them.

The widget runs :mod:`dlkit.optim`'s schedules, which follow PyTorch's learning-rate
sequences (``tests/test_viz_schedules.py`` checks them in closed form).
:func:`schedule_values` runs any ``torch.optim.lr_scheduler``-compatible schedule on a
throw-away optimizer and records the learning rate each step *uses*: entry :math:`t` is
``param_groups[0]["lr"]`` when ``optimizer.step()`` number :math:`t` (from 0) runs, and the
schedule's ``step()`` follows it, in the order PyTorch requires.

``ReduceLROnPlateau`` reacts to a monitored loss instead of the step count; the widget
feeds it :func:`plateau_loss`, a seeded synthetic validation loss that improves and then
stalls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.figure import Figure

from dlkit import optim

__all__ = [
    "SCHEDULES",
    "ScheduleExplorer",
    "build_schedule",
    "plateau_loss",
    "schedule_explorer",
    "schedule_values",
]

SchedulerFactory = Callable[[torch.optim.Optimizer], Any]

SCHEDULES = (
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "WarmupCosine",
    "OneCycleLR",
    "ReduceLROnPlateau",
)


def schedule_values(
    make_scheduler: SchedulerFactory,
    steps: int,
    *,
    lr: float = 0.1,
    metrics: Sequence[float] | None = None,
) -> np.ndarray:
    """The learning rate of each of ``steps`` optimizer steps; shape ``(steps,)``.

    ``make_scheduler(optimizer)`` builds the schedule on an SGD optimizer with base rate
    ``lr``. With ``metrics`` (one value per step), ``scheduler.step(metrics[t])`` is called,
    as ``ReduceLROnPlateau`` needs.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if metrics is not None and len(metrics) < steps:
        raise ValueError(f"metrics needs one value per step ({steps}), got {len(metrics)}")
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = np.empty(steps)
    for t in range(steps):
        lrs[t] = optimizer.param_groups[0]["lr"]
        optimizer.step()  # no gradient: the parameter stays, the step is counted
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(float(metrics[t]))
    return lrs


def plateau_loss(steps: int, *, seed: int = 0) -> np.ndarray:
    """A synthetic validation loss: fast improvement, then a noisy plateau; ``(steps,)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return 0.3 + 2.0 * np.exp(-t / max(steps / 8, 1.0)) + 0.02 * rng.standard_normal(steps)


def build_schedule(
    name: str,
    *,
    total_steps: int,
    gamma: float = 0.5,
    step_size: int = 30,
    warmup: int = 10,
    patience: int = 5,
) -> SchedulerFactory:
    """A factory for the schedule ``name`` (one of :data:`SCHEDULES`) with shared knobs.

    ``gamma`` is the decay factor: per ``step_size`` steps for ``StepLR`` and for
    ``ExponentialLR`` (whose per-step factor is :math:`\\gamma^{1/s}`, the smooth version
    of the same decay), at each milestone (50 % and 75 % of the run) for ``MultiStepLR``,
    and the reduction ``factor`` of ``ReduceLROnPlateau``. ``warmup`` is the warm-up
    length of ``WarmupCosine`` (from 0 to the base rate) and of ``OneCycleLR``'s rise
    (as ``pct_start``).
    """
    if name not in SCHEDULES:
        raise KeyError(f"unknown schedule {name!r}; choose one of {list(SCHEDULES)}")
    if total_steps < 1 or step_size < 1 or not 0 < gamma < 1:
        raise ValueError(
            "need total_steps >= 1, step_size >= 1 and 0 < gamma < 1, got "
            f"total_steps={total_steps}, step_size={step_size}, gamma={gamma}"
        )
    if not 0 <= warmup < total_steps:
        raise ValueError(f"warmup must be in [0, total_steps), got {warmup}")
    builders: dict[str, SchedulerFactory] = {
        "StepLR": lambda opt: optim.StepLR(opt, step_size=step_size, gamma=gamma),
        "MultiStepLR": lambda opt: optim.MultiStepLR(
            opt, milestones=[total_steps // 2, 3 * total_steps // 4], gamma=gamma
        ),
        "ExponentialLR": lambda opt: optim.ExponentialLR(opt, gamma ** (1 / step_size)),
        "CosineAnnealingLR": lambda opt: optim.CosineAnnealingLR(opt, T_max=total_steps),
        "WarmupCosine": lambda opt: optim.WarmupCosine(opt, warmup, total_steps),
        "OneCycleLR": lambda opt: optim.OneCycleLR(
            opt,
            max_lr=opt.param_groups[0]["lr"],
            total_steps=total_steps,
            pct_start=max(warmup, 1) / total_steps,
        ),
        "ReduceLROnPlateau": lambda opt: optim.ReduceLROnPlateau(
            opt, factor=gamma, patience=patience
        ),
    }
    return builders[name]


class ScheduleExplorer:
    """Pick a schedule and its knobs; :meth:`update` recomputes and redraws.

    After each :meth:`update`, ``lrs`` holds the learning rate per step (and ``metrics``
    the synthetic loss fed to ``ReduceLROnPlateau``, else None); ``figure`` is the plot.
    """

    def __init__(self, schedule: str = "WarmupCosine", steps: int = 200) -> None:
        style = {"description_width": "initial"}
        self.schedule = widgets.Dropdown(options=SCHEDULES, value=schedule, description="schedule")
        self.lr = widgets.FloatLogSlider(value=0.1, base=10, min=-4, max=0, step=0.1,
                                         description="base lr", style=style,
                                         continuous_update=False)  # fmt: skip
        self.steps = widgets.IntSlider(value=steps, min=20, max=1000, step=10,
                                       description="steps", continuous_update=False)  # fmt: skip
        self.gamma = widgets.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05,
                                         description="γ (decay factor)", style=style,
                                         continuous_update=False)  # fmt: skip
        self.step_size = widgets.IntSlider(value=30, min=1, max=200, description="step size",
                                           continuous_update=False)  # fmt: skip
        self.warmup = widgets.IntSlider(value=10, min=0, max=200, description="warm-up",
                                        continuous_update=False)  # fmt: skip
        self.patience = widgets.IntSlider(value=5, min=0, max=50, description="patience",
                                          continuous_update=False)  # fmt: skip
        self.output = widgets.Output()
        self.lrs = np.empty(0)
        self.metrics: np.ndarray | None = None
        self.figure: Figure | None = None
        controls = [self.schedule, self.lr, self.steps, self.gamma, self.step_size,
                    self.warmup, self.patience]  # fmt: skip
        for control in controls:
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.schedule, self.lr, self.steps]),
            widgets.HBox([self.gamma, self.step_size]),
            widgets.HBox([self.warmup, self.patience]),
            self.output,
        ])  # fmt: skip
        self.update()

    def update(self, change: object = None) -> None:
        """Recompute the learning rates from the current controls and redraw."""
        name, steps = self.schedule.value, self.steps.value
        warmup = min(self.warmup.value, steps - 1)
        make = build_schedule(name, total_steps=steps, gamma=self.gamma.value,
                              step_size=self.step_size.value, warmup=warmup,
                              patience=self.patience.value)  # fmt: skip
        self.metrics = plateau_loss(steps) if name == "ReduceLROnPlateau" else None
        self.lrs = schedule_values(make, steps, lr=self.lr.value, metrics=self.metrics)
        if self.figure is not None:
            plt.close(self.figure)
        self.figure, ax = plt.subplots(figsize=(9, 3.5))
        ax.plot(np.arange(steps), self.lrs, color="tab:blue", label="learning rate")
        ax.set(xlabel="optimizer step t", ylabel="learning rate η_t", title=name)
        ax.set_ylim(0, 1.05 * self.lrs.max())
        if self.metrics is not None:
            loss_ax = ax.twinx()
            loss_ax.plot(self.metrics, color="tab:orange", alpha=0.6, label="monitored loss")
            loss_ax.set_ylabel("synthetic validation loss", color="tab:orange")
        self.figure.tight_layout()
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)


def schedule_explorer(schedule: str = "WarmupCosine", steps: int = 200) -> widgets.Widget:
    """The schedule explorer as a widget, ready to display in a notebook."""
    return ScheduleExplorer(schedule, steps).widget
