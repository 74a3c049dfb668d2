"""The schedule explorer: the plotted learning rates are the schedule's, checked in closed form."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from dlkit.viz.schedules import (
    SCHEDULES,
    ScheduleExplorer,
    build_schedule,
    plateau_loss,
    schedule_values,
)

T = 120


def _values(name: str, lr: float = 0.1, **knobs) -> np.ndarray:
    metrics = plateau_loss(T) if name == "ReduceLROnPlateau" else None
    return schedule_values(build_schedule(name, total_steps=T, **knobs), T, lr=lr, metrics=metrics)


def test_step_and_exponential_closed_forms() -> None:
    t = np.arange(T)
    # StepLR: η_t = η γ^{⌊t/s⌋}
    np.testing.assert_allclose(_values("StepLR", gamma=0.5, step_size=25), 0.1 * 0.5 ** (t // 25))
    # ExponentialLR with per-step factor γ^{1/s}: η_t = η γ^{t/s}, equal to StepLR at t = k s
    np.testing.assert_allclose(
        _values("ExponentialLR", gamma=0.5, step_size=25), 0.1 * 0.5 ** (t / 25), rtol=1e-10
    )
    # MultiStepLR: milestones at T/2 and 3T/4
    expected = 0.1 * 0.3 ** ((t >= T // 2).astype(int) + (t >= 3 * T // 4))
    np.testing.assert_allclose(_values("MultiStepLR", gamma=0.3), expected, rtol=1e-12)


def test_cosine_closed_forms() -> None:
    t = np.arange(T)
    cosine = 0.05 * (1 + np.cos(np.pi * t / T))  # η/2 (1 + cos(π t / T)), η = 0.1
    np.testing.assert_allclose(_values("CosineAnnealingLR"), cosine, rtol=1e-9, atol=1e-12)
    warm = _values("WarmupCosine", warmup=10)
    np.testing.assert_allclose(warm[:10], 0.1 * t[:10] / 10, rtol=1e-12)  # from 0 to η
    tail = 0.05 * (1 + np.cos(np.pi * (t[10:] - 10) / (T - 10)))
    np.testing.assert_allclose(warm[10:], tail, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("name", "make_torch"),
    [
        ("StepLR", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.5)),
        ("MultiStepLR", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [60, 90], 0.5)),
        ("CosineAnnealingLR", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T)),
        ("OneCycleLR", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, T, pct_start=10 / T)),
        ("ReduceLROnPlateau", lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=5)),
    ],
)  # fmt: skip
def test_same_sequence_as_pytorch(name: str, make_torch) -> None:
    metrics = plateau_loss(T) if name == "ReduceLROnPlateau" else None
    expected = schedule_values(make_torch, T, lr=0.1, metrics=metrics)
    np.testing.assert_allclose(_values(name), expected, rtol=1e-10, atol=1e-15)


def test_one_cycle_peaks_at_the_base_lr_after_warmup() -> None:
    values = _values("OneCycleLR", warmup=30)
    assert int(np.argmax(values)) == 29  # pct_start = 30/120: peak at step 0.25·120 - 1
    assert values.max() == pytest.approx(0.1)
    assert values[0] == pytest.approx(0.1 / 25)  # PyTorch's div_factor
    assert values[-1] == pytest.approx(0.1 / 25 / 1e4)  # final_div_factor


def test_reduce_on_plateau_follows_its_rule() -> None:
    # replay ReduceLROnPlateau's rule (mode min, rel threshold 1e-4, cooldown 0) by hand
    loss, patience, factor = plateau_loss(T), 5, 0.5
    lr, best, bad, expected = 0.1, math.inf, 0, []
    for value in loss:
        expected.append(lr)
        if value < best * (1 - 1e-4):
            best, bad = value, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * factor, 0
    got = _values("ReduceLROnPlateau", gamma=factor, patience=patience)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[-1] < got[0]  # the plateau did trigger reductions


@pytest.mark.parametrize("name", SCHEDULES)
def test_explorer_plots_the_schedule(name: str) -> None:
    explorer = ScheduleExplorer("StepLR", steps=100)
    explorer.gamma.value, explorer.step_size.value, explorer.warmup.value = 0.3, 20, 15
    explorer.lr.value = 0.01
    explorer.schedule.value = name  # triggers update()
    ax = explorer.figure.axes[0]
    line = ax.get_lines()[0]
    metrics = plateau_loss(100) if name == "ReduceLROnPlateau" else None
    make = build_schedule(name, total_steps=100, gamma=0.3, step_size=20, warmup=15)
    expected = schedule_values(make, 100, lr=0.01, metrics=metrics)
    np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
    np.testing.assert_array_equal(explorer.lrs, line.get_ydata())
    assert (explorer.metrics is not None) == (name == "ReduceLROnPlateau")


def test_values_are_what_the_optimizer_used() -> None:
    # a real training step with the recorded lr reproduces the parameter update
    lrs = schedule_values(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 3, 0.1), 7, lr=1.0)
    np.testing.assert_allclose(lrs, [1, 1, 1, 0.1, 0.1, 0.1, 0.01], rtol=1e-12)


def test_bad_arguments() -> None:
    with pytest.raises(KeyError, match="StepLR"):
        build_schedule("LinearLR", total_steps=10)
    with pytest.raises(ValueError, match="gamma"):
        build_schedule("StepLR", total_steps=10, gamma=1.5)
    with pytest.raises(ValueError, match="warmup"):
        build_schedule("WarmupCosine", total_steps=10, warmup=10)
    with pytest.raises(ValueError, match="metrics"):
        schedule_values(build_schedule("StepLR", total_steps=5, warmup=1), 5, metrics=[1.0])
