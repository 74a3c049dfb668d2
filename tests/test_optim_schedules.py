"""dlkit.optim's learning-rate schedules against torch.optim.lr_scheduler's sequences
(1e-12 relative over 100+ steps), WarmupCosine against its closed form, ReduceLROnPlateau
on scripted metric sequences."""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as tsched

import dlkit.optim as dopt
import dlkit.optim.lr_scheduler as dsched
from dlkit.train import LRSchedulerCallback

STEPS = 150
RTOL = 1e-12


def make_optimizer(kind: str = "sgd") -> torch.optim.Optimizer:
    """Two parameter groups with different learning rates."""
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 0.1},
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.03},
    ]
    if kind == "adam":
        return torch.optim.Adam(groups)
    return torch.optim.SGD(groups, momentum=0.9)


def trace(
    make_scheduler: Callable[[torch.optim.Optimizer], Any], steps: int = STEPS, kind: str = "sgd"
) -> list[list[float]]:
    """Each step's learning rates and momenta (or beta1) of every group, as training sees them."""
    optimizer = make_optimizer(kind)
    scheduler = make_scheduler(optimizer)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "step order" warnings: used as PyTorch's are
        for _ in range(steps):
            groups = optimizer.param_groups
            momenta = [g["betas"][0] if "betas" in g else g["momentum"] for g in groups]
            rows.append([g["lr"] for g in groups] + momenta)
            optimizer.step()
            scheduler.step()
    assert scheduler.get_last_lr() == [g["lr"] for g in optimizer.param_groups]
    return rows


def assert_sequences_close(ours: list[list[float]], theirs: list[list[float]]) -> None:
    assert len(ours) == len(theirs)
    scale = max(abs(v) for row in theirs for v in row)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for x, y in zip(a, b, strict=True):
            assert x == pytest.approx(y, rel=RTOL, abs=1e-15 * scale), f"step {step}: {a} != {b}"


SAME_AS_TORCH: list[tuple[type, type, dict[str, Any]]] = [
    (dopt.StepLR, tsched.StepLR, {"step_size": 10}),
    (dopt.StepLR, tsched.StepLR, {"step_size": 7, "gamma": 0.5}),
    (dopt.MultiStepLR, tsched.MultiStepLR, {"milestones": [30, 80]}),
    (dopt.MultiStepLR, tsched.MultiStepLR, {"milestones": [80, 10, 30, 30], "gamma": 0.3}),
    (dopt.ExponentialLR, tsched.ExponentialLR, {"gamma": 0.97}),
    (dopt.ExponentialLR, tsched.ExponentialLR, {"gamma": 1.01}),
    (dopt.CosineAnnealingLR, tsched.CosineAnnealingLR, {"T_max": STEPS}),
    (dopt.CosineAnnealingLR, tsched.CosineAnnealingLR, {"T_max": 100, "eta_min": 1e-3}),
    (dopt.CosineAnnealingLR, tsched.CosineAnnealingLR, {"T_max": 40}),  # past T_max: periodic
    (dopt.OneCycleLR, tsched.OneCycleLR, {"max_lr": 1.0, "total_steps": STEPS}),
    (
        dopt.OneCycleLR,
        tsched.OneCycleLR,
        {"max_lr": [1.0, 0.2], "epochs": 10, "steps_per_epoch": 15, "pct_start": 0.25},
    ),
    (
        dopt.OneCycleLR,
        tsched.OneCycleLR,
        {"max_lr": 0.5, "total_steps": STEPS, "anneal_strategy": "linear", "div_factor": 10.0},
    ),
    (
        dopt.OneCycleLR,
        tsched.OneCycleLR,
        {"max_lr": 0.5, "total_steps": STEPS, "three_phase": True},
    ),
    (
        dopt.OneCycleLR,
        tsched.OneCycleLR,
        {"max_lr": 0.5, "total_steps": STEPS, "cycle_momentum": False, "final_div_factor": 100.0},
    ),
    (
        dopt.OneCycleLR,
        tsched.OneCycleLR,
        {"max_lr": 0.5, "total_steps": STEPS, "base_momentum": [0.8, 0.7], "max_momentum": 0.99},
    ),
]


def case_id(case: tuple[type, type, dict[str, Any]]) -> str:
    return case[0].__name__ + "".join(f"-{k}={v}" for k, v in case[2].items())


@pytest.mark.parametrize("case", SAME_AS_TORCH, ids=case_id)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_matches_torch_sequence(case: tuple[type, type, dict[str, Any]], kind: str) -> None:
    ours_cls, torch_cls, kwargs = case
    ours = trace(lambda opt: ours_cls(opt, **kwargs), kind=kind)
    theirs = trace(lambda opt: torch_cls(opt, **kwargs), kind=kind)
    assert_sequences_close(ours, theirs)
    assert len({row[0] for row in ours}) > 2  # the schedule moved the learning rate


def test_schedules_drive_dlkit_optimizers() -> None:
    """OneCycleLR cycles dlkit.optim.Adam's beta1 just as it cycles torch.optim.Adam's."""

    def run(optimizer_cls: type) -> list[tuple[float, float]]:
        param = torch.nn.Parameter(torch.ones(3))
        optimizer = optimizer_cls([param], lr=0.1)
        scheduler = dopt.OneCycleLR(optimizer, max_lr=0.1, total_steps=50)
        seen = []
        for _ in range(50):
            seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"][0]))
            param.grad = torch.ones(3)
            optimizer.step()
            scheduler.step()
        return seen

    assert run(dopt.Adam) == run(torch.optim.Adam)


def warmup_cosine_reference(t: int, base: float, warmup: int, total: int, floor: float) -> float:
    """The documented closed form, written out independently of the class."""
    if t < warmup:
        return base * t / warmup
    if t >= total:
        return floor
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


@pytest.mark.parametrize(
    ("warmup", "total", "min_lr"),
    [(10, 100, 0.0), (25, 120, 1e-3), (0, 100, 0.0), (1, 2, 0.0), (30, 100, [1e-3, 1e-4])],
)
def test_warmup_cosine_closed_form(warmup: int, total: int, min_lr: Any) -> None:
    rows = trace(lambda opt: dopt.WarmupCosine(opt, warmup, total, min_lr=min_lr))
    floors = min_lr if isinstance(min_lr, list) else [min_lr, min_lr]
    for group, (base, floor) in enumerate(zip([0.1, 0.03], floors, strict=True)):
        for t, row in enumerate(rows):
            expected = warmup_cosine_reference(t, base, warmup, total, floor)
            assert row[group] == pytest.approx(expected, rel=RTOL, abs=1e-17), (group, t)
        assert rows[warmup][group] == pytest.approx(base, rel=RTOL)  # the peak is the lr
        assert rows[total][group] == pytest.approx(floor, abs=1e-17)
        assert rows[-1][group] == floor  # stays at the minimum


def test_warmup_cosine_without_warmup_is_cosine_annealing() -> None:
    ours = trace(lambda opt: dopt.WarmupCosine(opt, 0, 100, min_lr=1e-3), steps=101)
    theirs = trace(lambda opt: tsched.CosineAnnealingLR(opt, T_max=100, eta_min=1e-3), steps=101)
    assert_sequences_close(ours, theirs)


def test_one_cycle_refuses_to_step_past_the_end() -> None:
    optimizer = make_optimizer()
    scheduler = dopt.OneCycleLR(optimizer, max_lr=0.1, total_steps=5)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError, match="total_steps=5"):
        scheduler.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: dopt.StepLR(opt, step_size=7, gamma=0.5),
        lambda opt: dopt.CosineAnnealingLR(opt, T_max=100),
        lambda opt: dopt.WarmupCosine(opt, warmup_steps=20, total_steps=100),
        lambda opt: dopt.OneCycleLR(opt, max_lr=0.3, total_steps=100),
    ],
)
def test_state_dict_resume_continues_the_sequence(make: Callable[[Any], Any]) -> None:
    uninterrupted = trace(make, steps=100)
    optimizer = make_optimizer()
    scheduler = make(optimizer)
    for _ in range(40):
        optimizer.step()
        scheduler.step()
    saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
    fresh = make_optimizer()
    resumed = make(fresh)  # built first, then overwritten by the checkpoint (PyTorch's order)
    fresh.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    rows = []
    for _ in range(40, 100):
        rows.append([g["lr"] for g in fresh.param_groups])
        fresh.step()
        resumed.step()
    assert rows == [row[:2] for row in uninterrupted[40:]]


# ---------------------------------------------------------------------------------------
# ReduceLROnPlateau

LOSSES = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.5, 0.49999, 0.6, 0.7, 0.8, 0.3, 0.31]
LOSSES += [0.3 + 0.001 * (i % 3) for i in range(30)] + [0.2, 0.2] + [0.25] * 30


def plateau_trace(scheduler_cls: type, metrics: list[float], **kwargs: Any) -> list[list[float]]:
    optimizer = make_optimizer()
    scheduler = scheduler_cls(optimizer, **kwargs)
    rows = []
    for metric in metrics:
        optimizer.step()
        scheduler.step(metric)
        rows.append([g["lr"] for g in optimizer.param_groups])
        assert scheduler.get_last_lr() == rows[-1]
    return rows


PLATEAU_SETTINGS: list[dict[str, Any]] = [
    {},
    {"patience": 0},
    {"patience": 2, "factor": 0.5},
    {"patience": 1, "cooldown": 3, "factor": 0.5},
    {"patience": 2, "threshold": 0.05},
    {"patience": 2, "threshold": 0.05, "threshold_mode": "abs"},
    {"patience": 1, "factor": 0.5, "min_lr": 0.01},
    {"patience": 1, "factor": 0.5, "min_lr": [0.02, 0.001]},
    {"patience": 0, "factor": 0.9, "eps": 0.005},  # the 0.03 group's drops are below eps
]


@pytest.mark.parametrize("kwargs", PLATEAU_SETTINGS, ids=str)
@pytest.mark.parametrize("mode", ["min", "max"])
def test_reduce_on_plateau_matches_torch(kwargs: dict[str, Any], mode: str) -> None:
    metrics = LOSSES if mode == "min" else [1.0 - m for m in LOSSES]
    ours = plateau_trace(dopt.ReduceLROnPlateau, metrics, mode=mode, **kwargs)
    theirs = plateau_trace(tsched.ReduceLROnPlateau, metrics, mode=mode, **kwargs)
    assert ours == theirs
    assert ours[-1] != ours[0]  # the script made it reduce


def test_reduce_on_plateau_by_hand() -> None:
    """patience=2: the rate drops on the third bad step in a row; cooldown=1 skips one."""
    metrics = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.5, 0.6, 0.6, 0.6]
    rows = plateau_trace(
        dopt.ReduceLROnPlateau, metrics, patience=2, factor=0.5, cooldown=1, threshold=0.0
    )
    first = [row[0] for row in rows]
    expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.0125]
    assert first == pytest.approx(expected, rel=1e-15)


def test_reduce_on_plateau_state_dict_and_trainer_integration() -> None:
    optimizer = make_optimizer()
    scheduler = dopt.ReduceLROnPlateau(optimizer, patience=1)
    for metric in [1.0, 2.0]:
        scheduler.step(metric)
    other = dopt.ReduceLROnPlateau(make_optimizer(), patience=1)
    other.load_state_dict(copy.deepcopy(scheduler.state_dict()))
    assert (other.best, other.num_bad_epochs) == (1.0, 1)
    # dlkit.train recognises it as a plateau scheduler (stepped with a metric, per epoch).
    assert LRSchedulerCallback(scheduler).plateau
    with pytest.raises(ValueError, match="NaN"):
        scheduler.step(float("nan"))


BAD: list[tuple[Callable[[Any], Any], str]] = [
    (lambda opt: dopt.StepLR(opt, step_size=0), "step_size"),
    (lambda opt: dopt.StepLR(opt, step_size=2.5), "step_size"),
    (lambda opt: dopt.StepLR(opt, step_size=5, gamma=-0.1), "gamma"),
    (lambda opt: dopt.MultiStepLR(opt, milestones=[5, -1]), "milestone"),
    (lambda opt: dopt.ExponentialLR(opt, gamma=0.0), "gamma"),
    (lambda opt: dopt.CosineAnnealingLR(opt, T_max=0), "T_max"),
    (lambda opt: dopt.WarmupCosine(opt, warmup_steps=10, total_steps=10), "total_steps"),
    (lambda opt: dopt.WarmupCosine(opt, warmup_steps=-1, total_steps=10), "warmup_steps"),
    (lambda opt: dopt.WarmupCosine(opt, 1, 10, min_lr=[0.0]), "one per group"),
    (lambda opt: dopt.OneCycleLR(opt, max_lr=0.1), "total_steps"),
    (lambda opt: dopt.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.5), "pct_start"),
    (lambda opt: dopt.OneCycleLR(opt, max_lr=[0.1], total_steps=10), "one per group"),
    (lambda opt: dopt.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="x"), "anneal"),
    (lambda opt: dopt.ReduceLROnPlateau(opt, factor=1.0), "factor"),
    (lambda opt: dopt.ReduceLROnPlateau(opt, mode="maximum"), "mode"),
    (lambda opt: dopt.ReduceLROnPlateau(opt, threshold_mode="relative"), "threshold_mode"),
    (lambda opt: dopt.ReduceLROnPlateau(opt, patience=-1), "patience"),
    (lambda opt: dopt.ReduceLROnPlateau(opt, min_lr=[0.1, 0.1, 0.1]), "one per group"),
]


@pytest.mark.parametrize(("make", "match"), BAD, ids=[m for _, m in BAD])
def test_bad_arguments_raise(make: Callable[[Any], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(make_optimizer())


def test_one_cycle_needs_momentum_to_cycle() -> None:
    optimizer = dopt.Adagrad([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="cycle_momentum"):
        dopt.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    dopt.OneCycleLR(optimizer, max_lr=0.1, total_steps=10, cycle_momentum=False)


def _is_schedule(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, tsched.LRScheduler | tsched.ReduceLROnPlateau)


def test_lr_scheduler_namespace_re_exports_the_same_objects() -> None:
    from dlkit.optim import lr_scheduler

    assert lr_scheduler is dsched is dopt.lr_scheduler
    assert lr_scheduler.__doc__ and dsched.__all__ == sorted(dsched.__all__)
    for name in dsched.__all__:
        assert getattr(dsched, name) is getattr(dopt, name), f"{name} is a copy, not a re-export"
    schedules = {name for name in dopt.__all__ if _is_schedule(getattr(dopt, name))}
    assert schedules == set(dsched.__all__), "every dlkit.optim schedule, and only those"


def test_lr_scheduler_names_are_torchs_where_the_schedule_is_torchs() -> None:
    # The schedules whose sequences are checked against torch's above (and ReduceLROnPlateau).
    same = {(ours, theirs) for ours, theirs, _ in SAME_AS_TORCH}
    same.add((dopt.ReduceLROnPlateau, tsched.ReduceLROnPlateau))
    for ours, theirs in same:
        assert getattr(dsched, ours.__name__) is ours
        assert getattr(tsched, ours.__name__) is theirs, f"torch calls {ours.__name__} otherwise"
        ours_args = list(inspect.signature(ours).parameters)
        assert ours_args == list(inspect.signature(theirs).parameters), ours.__name__
    own = set(dsched.__all__) - {ours.__name__ for ours, _ in same}
    assert own == {"ClosedFormSchedule", "WarmupCosine"}
    assert not own & set(dir(tsched)), "a dlkit-only schedule must not borrow a torch name"
