"""The optimizer race: trajectories are real optimizer steps, and the plot shows exactly them."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from dlkit.viz.landscapes import LANDSCAPES
from dlkit.viz.optimizer_race import OptimizerRace, racers, run_trajectory


def _reference(name: str, make, steps: int) -> np.ndarray:
    """Iterates of a hand-written loop with the optimizer ``make`` builds: (steps + 1, 2)."""
    land = LANDSCAPES[name]
    theta = torch.tensor(land.start, dtype=torch.float64, requires_grad=True)
    opt = make([theta])
    points = [theta.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        land.value(theta).backward()
        opt.step()
        points.append(theta.detach().clone())
    return torch.stack(points).numpy()


def test_gradient_descent_on_the_quadratic_has_a_closed_form() -> None:
    # f = (x² + 20 y²)/2: x_k = (1 - η)^k x_0 and y_k = (1 - 20η)^k y_0
    lr, steps = 0.07, 40
    traj = run_trajectory("ill_conditioned", lambda p: torch.optim.SGD(p, lr=lr), steps)
    k = np.arange(steps + 1)
    x0, y0 = LANDSCAPES["ill_conditioned"].start
    np.testing.assert_allclose(traj.points[:, 0], (1 - lr) ** k * x0, rtol=1e-12)
    np.testing.assert_allclose(traj.points[:, 1], (1 - 20 * lr) ** k * y0, rtol=1e-12)
    np.testing.assert_allclose(traj.losses, LANDSCAPES["ill_conditioned"].value(traj.points))
    assert not traj.diverged


def test_divergence_stops_the_run() -> None:
    # η = 0.2 > 2/20: |1 - 20η| = 3, the y coordinate triples each step
    traj = run_trajectory("ill_conditioned", lambda p: torch.optim.SGD(p, lr=0.2), 100)
    assert traj.diverged and len(traj.points) < 101
    assert np.all(np.isfinite(traj.points)) and np.abs(traj.points).max() <= 1e6


@pytest.mark.parametrize("landscape", sorted(LANDSCAPES))
def test_widget_plots_the_optimizers_iterates(landscape: str) -> None:
    race = OptimizerRace(landscape)
    with race.holding():  # one recomputation after setting all sliders
        race.lr_sgd.value, race.momentum.value = 2e-3, 0.8
        race.lr_adaptive.value, race.beta1.value, race.beta2.value = 0.02, 0.85, 0.99
        race.steps.value = 50
    contestants = racers(2e-3, 0.02, 0.8, 0.85, 0.99)
    # the same races with torch.optim's optimizers: dlkit.optim's must trace the same paths
    torch_contestants = {
        "SGD": lambda p: torch.optim.SGD(p, lr=2e-3),
        "momentum": lambda p: torch.optim.SGD(p, lr=2e-3, momentum=0.8),
        "Nesterov": lambda p: torch.optim.SGD(p, lr=2e-3, momentum=0.8, nesterov=True),
        "AdaGrad": lambda p: torch.optim.Adagrad(p, lr=0.02),
        "RMSprop": lambda p: torch.optim.RMSprop(p, lr=0.02, alpha=0.99),
        "Adam": lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.85, 0.99)),
    }
    contour_ax, loss_ax = race.figure.axes[:2]
    lines = {line.get_label(): line for line in contour_ax.get_lines()}
    assert set(race.trajectories) == set(contestants) == {
        "SGD", "momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"
    }  # fmt: skip
    for name, make in contestants.items():
        traj = race.trajectories[name]
        expected = _reference(landscape, make, 50)[: len(traj.points)]
        np.testing.assert_allclose(traj.points, expected, rtol=1e-12, atol=1e-14)
        by_torch = _reference(landscape, torch_contestants[name], 50)[: len(traj.points)]
        np.testing.assert_allclose(traj.points, by_torch, rtol=1e-9, atol=1e-12)
        label = f"{name} (diverged)" if traj.diverged else name
        np.testing.assert_array_equal(lines[label].get_xdata(), traj.points[:, 0])
        np.testing.assert_array_equal(lines[label].get_ydata(), traj.points[:, 1])
    loss_lines = {line.get_label(): line for line in loss_ax.get_lines()}
    adam = race.trajectories["Adam"]
    gap = np.maximum(adam.losses - LANDSCAPES[landscape].min_value, 1e-16)
    np.testing.assert_allclose(loss_lines["Adam"].get_ydata(), gap)


def test_racers_are_dlkit_optimizers() -> None:
    p = [torch.zeros(2, dtype=torch.float64, requires_grad=True)]
    for make in racers().values():
        optimizer = make(p)
        assert type(optimizer).__module__.startswith("dlkit.optim")
        assert isinstance(optimizer, torch.optim.Optimizer)


def test_racers_use_the_slider_hyperparameters() -> None:
    p = [torch.zeros(2, dtype=torch.float64, requires_grad=True)]
    made = {name: make(p) for name, make in racers(0.01, 0.2, 0.7, 0.8, 0.95).items()}
    assert made["momentum"].defaults["momentum"] == 0.7
    assert made["Nesterov"].defaults["nesterov"] is True
    assert made["RMSprop"].defaults["alpha"] == 0.95
    assert made["Adam"].defaults["betas"] == (0.8, 0.95)
    assert made["SGD"].defaults["lr"] == 0.01 and made["AdaGrad"].defaults["lr"] == 0.2


def test_switching_landscape_resets_defaults_and_redraws() -> None:
    race = OptimizerRace("rosenbrock")
    race.landscape.value = "saddle"
    assert race.steps.value == len(race.trajectories["SGD"].points) - 1 == 150
    xs = race.figure.axes[0].get_xlim()
    assert xs == LANDSCAPES["saddle"].xlim
    # from just off the saddle point, momentum escapes and reaches a minimum (0, ±1)
    end = race.trajectories["momentum"].points[-1]
    np.testing.assert_allclose(np.abs(end), [0.0, 1.0], atol=1e-2)


def test_bad_steps() -> None:
    with pytest.raises(ValueError, match="steps"):
        run_trajectory("beale", lambda p: torch.optim.SGD(p, lr=0.1), -1)
