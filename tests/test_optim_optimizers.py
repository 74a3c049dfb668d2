"""dlkit.optim's optimizers against torch.optim's: same model, data and seed, float64,
200+ steps, over a grid of hyper-parameters, parameter groups and state_dict round trips."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import dlkit.optim as dopt

STEPS = 200
RTOL = 1e-6
ATOL = 1e-12

# (dlkit class, torch class, keyword arguments): every branch of every update rule.
CASES: list[tuple[type, type, dict[str, Any]]] = [
    (dopt.SGD, torch.optim.SGD, {"lr": 0.05}),
    (dopt.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (dopt.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    (dopt.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    (dopt.SGD, torch.optim.SGD, {"lr": 0.05, "weight_decay": 0.01}),
    (
        dopt.SGD,
        torch.optim.SGD,
        {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
    ),
    (dopt.SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.5, "maximize": True}),
    (dopt.Adagrad, torch.optim.Adagrad, {}),
    (dopt.Adagrad, torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01}),
    (dopt.Adagrad, torch.optim.Adagrad, {"lr": 0.05, "weight_decay": 0.01, "eps": 1e-6}),
    (dopt.Adagrad, torch.optim.Adagrad, {"lr": 0.05, "initial_accumulator_value": 0.1}),
    (dopt.RMSprop, torch.optim.RMSprop, {"lr": 1e-3}),
    (dopt.RMSprop, torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-6}),
    (dopt.RMSprop, torch.optim.RMSprop, {"lr": 1e-3, "centered": True}),
    (dopt.RMSprop, torch.optim.RMSprop, {"lr": 1e-3, "momentum": 0.9}),
    (
        dopt.RMSprop,
        torch.optim.RMSprop,
        {"lr": 1e-3, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    ),
    (dopt.Adam, torch.optim.Adam, {}),
    (dopt.Adam, torch.optim.Adam, {"lr": 0.01, "betas": (0.5, 0.9), "eps": 1e-6}),
    (dopt.Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True}),
    (dopt.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.05}),
    (dopt.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True}),
    (dopt.Adam, torch.optim.Adam, {"lr": 0.01, "maximize": True}),
    (dopt.AdamW, torch.optim.AdamW, {}),
    (dopt.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (dopt.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
]


def case_id(case: tuple[type, type, dict[str, Any]]) -> str:
    ours, _, kwargs = case
    return ours.__name__ + "".join(f"-{k}={v}" for k, v in kwargs.items())


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 5, dtype=torch.float64, generator=generator)
    y = torch.randn(64, 3, dtype=torch.float64, generator=generator)
    return x, y


def loss_fn(model: nn.Module, step: int, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = data
    batch = slice(16 * (step % 4), 16 * (step % 4) + 16)  # mini-batches: the gradient moves
    return ((model(x[batch]) - y[batch]) ** 2).mean()


def run(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    steps: range,
    data: tuple[torch.Tensor, torch.Tensor],
) -> list[torch.Tensor]:
    """Train ``model`` for ``steps``; return the flattened parameters after every step."""
    trajectory = []
    for step in steps:
        optimizer.zero_grad()
        loss_fn(model, step, data).backward()
        optimizer.step()
        trajectory.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return trajectory


def assert_same_trajectory(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    """One comparison of the stacked ``(steps, n_params)`` trajectories; a mismatch is
    reported at its index ``(step, parameter)``."""
    assert len(ours) == len(theirs)
    torch.testing.assert_close(torch.stack(ours), torch.stack(theirs), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_trajectory(case: tuple[type, type, dict[str, Any]]) -> None:
    ours_cls, torch_cls, kwargs = case
    data = make_data()
    model_a, model_b = make_model(), make_model()
    ours = run(model_a, ours_cls(model_a.parameters(), **kwargs), range(STEPS), data)
    theirs = run(model_b, torch_cls(model_b.parameters(), **kwargs), range(STEPS), data)
    assert_same_trajectory(ours, theirs)
    # The run moved the parameters: a no-op optimizer cannot pass.
    assert (ours[-1] - ours[0]).abs().max() > 1e-4


def two_groups(model: nn.Module, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """First layer at 3× the learning rate (and no weight decay), the rest at the default."""
    first, last = model[0], model[2]
    lr = kwargs.get("lr", 1e-3)
    return [
        {"params": list(first.parameters()), "lr": 3 * lr, "weight_decay": 0.0},
        {"params": list(last.parameters())},
    ]


@pytest.mark.parametrize("case", CASES[1::3], ids=case_id)
def test_parameter_groups_match_torch(case: tuple[type, type, dict[str, Any]]) -> None:
    ours_cls, torch_cls, kwargs = case
    data = make_data()
    model_a, model_b = make_model(), make_model()
    opt_a = ours_cls(two_groups(model_a, kwargs), **kwargs)
    opt_b = torch_cls(two_groups(model_b, kwargs), **kwargs)
    assert [g["lr"] for g in opt_a.param_groups] == [g["lr"] for g in opt_b.param_groups]
    assert_same_trajectory(
        run(model_a, opt_a, range(STEPS), data), run(model_b, opt_b, range(STEPS), data)
    )


def resumed_run(
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    make_second: Callable[[nn.Module], torch.optim.Optimizer],
    data: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """100 steps, save model and optimizer, restore both into fresh objects, 100 more."""
    model = make_model()
    first = make_optimizer(model)
    run(model, first, range(100), data)
    checkpoint = copy.deepcopy({"model": model.state_dict(), "optimizer": first.state_dict()})

    fresh = make_model()
    fresh.load_state_dict(checkpoint["model"])
    second = make_second(fresh)
    second.load_state_dict(checkpoint["optimizer"])
    return run(fresh, second, range(100, 200), data)[-1]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_state_dict_round_trip_continues_exactly(case: tuple[type, type, dict[str, Any]]) -> None:
    ours_cls, _, kwargs = case
    data = make_data()
    model = make_model()
    uninterrupted = run(model, ours_cls(model.parameters(), **kwargs), range(STEPS), data)[-1]
    resumed = resumed_run(
        lambda m: ours_cls(m.parameters(), **kwargs),
        lambda m: ours_cls(m.parameters(), **kwargs),
        data,
    )
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES[1::4], ids=case_id)
def test_state_dict_is_interchangeable_with_torch(case: tuple[type, type, dict[str, Any]]) -> None:
    """A torch.optim checkpoint continues in dlkit.optim and vice versa (same state keys)."""
    ours_cls, torch_cls, kwargs = case
    data = make_data()
    model = make_model()
    reference = run(model, torch_cls(model.parameters(), **kwargs), range(STEPS), data)[-1]
    for first_cls, second_cls in [(torch_cls, ours_cls), (ours_cls, torch_cls)]:
        resumed = resumed_run(
            lambda m, c=first_cls: c(m.parameters(), **kwargs),
            lambda m, c=second_cls: c(m.parameters(), **kwargs),
            data,
        )
        torch.testing.assert_close(resumed, reference, rtol=RTOL, atol=ATOL)


def test_state_keys_are_torchs() -> None:
    data = make_data()
    expected = {
        (dopt.SGD, torch.optim.SGD): {"momentum": 0.9},
        (dopt.Adagrad, torch.optim.Adagrad): {},
        (dopt.RMSprop, torch.optim.RMSprop): {"momentum": 0.9, "centered": True},
        (dopt.Adam, torch.optim.Adam): {"amsgrad": True},
    }
    for (ours_cls, torch_cls), kwargs in expected.items():
        keys = []
        for cls in (ours_cls, torch_cls):
            model = make_model()
            optimizer = cls(model.parameters(), **kwargs)
            run(model, optimizer, range(1), data)
            keys.append(sorted(optimizer.state_dict()["state"][0]))
        assert keys[0] == keys[1], f"{ours_cls.__name__}: {keys[0]} != torch's {keys[1]}"


@pytest.mark.parametrize("cls", [dopt.SGD, dopt.Adagrad, dopt.RMSprop, dopt.Adam, dopt.AdamW])
def test_closure_loss_is_returned_and_used(cls: type) -> None:
    data = make_data()
    model_a, model_b = make_model(), make_model()
    opt_a, opt_b = cls(model_a.parameters(), lr=0.01), cls(model_b.parameters(), lr=0.01)

    def closure() -> torch.Tensor:
        opt_a.zero_grad()
        loss = loss_fn(model_a, 0, data)
        loss.backward()
        return loss

    returned = opt_a.step(closure)
    expected = loss_fn(model_b, 0, data)
    expected.backward()
    opt_b.step()
    assert returned is not None and torch.equal(returned, expected)
    for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_zero_grad_and_parameters_without_gradient() -> None:
    model = make_model()
    frozen = model[0].weight
    optimizer = dopt.Adam(model.parameters(), lr=0.1)
    loss_fn(model, 0, make_data()).backward()
    frozen.grad = None  # e.g. a frozen layer: left alone, and no state is created for it
    before = frozen.detach().clone()
    optimizer.step()
    assert torch.equal(frozen, before)
    assert frozen not in optimizer.state
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())


BAD = [
    (dopt.SGD, {"lr": -0.1}, "learning rate"),
    (dopt.SGD, {"momentum": -0.5}, "momentum"),
    (dopt.SGD, {"weight_decay": -1e-4}, "weight_decay"),
    (dopt.SGD, {"dampening": 1.5, "momentum": 0.9}, "dampening"),
    (dopt.SGD, {"nesterov": True}, "Nesterov"),
    (dopt.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov"),
    (dopt.SGD, {"lr": float("nan")}, "learning rate"),
    (dopt.Adagrad, {"lr": -1.0}, "learning rate"),
    (dopt.Adagrad, {"lr_decay": -0.1}, "lr_decay"),
    (dopt.Adagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (dopt.Adagrad, {"eps": 0.0}, "eps"),
    (dopt.RMSprop, {"alpha": 1.0}, "alpha"),
    (dopt.RMSprop, {"alpha": -0.1}, "alpha"),
    (dopt.RMSprop, {"eps": -1e-8}, "eps"),
    (dopt.RMSprop, {"momentum": -0.9}, "momentum"),
    (dopt.Adam, {"betas": (1.0, 0.999)}, "index 0"),
    (dopt.Adam, {"betas": (0.9, -0.1)}, "index 1"),
    (dopt.Adam, {"betas": (0.9,)}, "pair"),
    (dopt.Adam, {"eps": 0.0}, "eps"),
    (dopt.Adam, {"weight_decay": -0.01}, "weight_decay"),
    (dopt.AdamW, {"lr": -1e-3}, "learning rate"),
    (dopt.AdamW, {"betas": (0.9, 1.5)}, "index 1"),
]


@pytest.mark.parametrize(("cls", "kwargs", "match"), BAD, ids=lambda v: str(v))
def test_bad_hyperparameters_raise(cls: type, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(make_model().parameters(), **kwargs)


@pytest.mark.parametrize(
    ("cls", "group", "match"),
    [
        (dopt.SGD, {"lr": -0.1}, "learning rate"),
        (dopt.SGD, {"nesterov": True}, "Nesterov"),
        (dopt.RMSprop, {"alpha": 1.5}, "alpha"),
        (dopt.Adam, {"betas": (0.9, 1.0)}, "index 1"),
        (dopt.Adagrad, {"eps": -1.0}, "eps"),
    ],
)
def test_bad_parameter_group_options_raise(cls: type, group: dict[str, Any], match: str) -> None:
    model = make_model()
    with pytest.raises(ValueError, match=match):
        cls([{"params": list(model[0].parameters()), **group}])
    optimizer = cls(model[0].parameters())
    with pytest.raises(ValueError, match=match):
        optimizer.add_param_group({"params": list(model[2].parameters()), **group})
    assert len(optimizer.param_groups) == 1  # the bad group was not added


def test_defaults_are_torchs() -> None:
    pairs = [
        (dopt.SGD, torch.optim.SGD),
        (dopt.Adagrad, torch.optim.Adagrad),
        (dopt.RMSprop, torch.optim.RMSprop),
        (dopt.Adam, torch.optim.Adam),
        (dopt.AdamW, torch.optim.AdamW),
    ]
    for ours_cls, torch_cls in pairs:
        ours = ours_cls(make_model().parameters()).defaults
        theirs = torch_cls(make_model().parameters()).defaults
        shared = {k: theirs[k] for k in ours if k in theirs}
        assert {k: ours[k] for k in shared} == shared, ours_cls.__name__
        assert {k: v for k, v in ours.items() if k not in theirs} == {}, ours_cls.__name__


# Random hyper-parameters: every combination the grid above does not list.
unit = st.floats(0.0, 0.99)
HYPERPARAMETERS = {
    "SGD": st.fixed_dictionaries(
        {
            "lr": st.floats(1e-4, 0.2),
            "momentum": unit,
            "dampening": st.floats(0.0, 1.0),
            "weight_decay": st.floats(0.0, 0.1),
            "maximize": st.booleans(),
        }
    ),
    "Adagrad": st.fixed_dictionaries(
        {
            "lr": st.floats(1e-4, 0.2),
            "lr_decay": st.floats(0.0, 0.1),
            "weight_decay": st.floats(0.0, 0.1),
            "initial_accumulator_value": st.floats(0.0, 1.0),
            "eps": st.floats(1e-10, 1e-3),
        }
    ),
    "RMSprop": st.fixed_dictionaries(
        {
            "lr": st.floats(1e-4, 0.01),
            "alpha": st.floats(0.5, 0.999),  # alpha -> 0: see test_centered_rmsprop_...
            "eps": st.floats(1e-8, 1e-3),
            "weight_decay": st.floats(0.0, 0.1),
            "momentum": unit,
            "centered": st.booleans(),
        }
    ),
    "Adam": st.fixed_dictionaries(
        {
            "lr": st.floats(1e-4, 0.05),
            "betas": st.tuples(unit, st.floats(0.5, 0.9999)),
            "eps": st.floats(1e-8, 1e-3),
            "weight_decay": st.floats(0.0, 0.1),
            "amsgrad": st.booleans(),
        }
    ),
    "AdamW": st.fixed_dictionaries(
        {
            "lr": st.floats(1e-4, 0.05),
            "betas": st.tuples(unit, st.floats(0.5, 0.9999)),
            "weight_decay": st.floats(0.0, 0.5),
            "amsgrad": st.booleans(),
        }
    ),
}


@pytest.mark.parametrize("name", list(HYPERPARAMETERS))
@given(data=st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_hyperparameters_match_torch(name: str, data: st.DataObject) -> None:
    kwargs = data.draw(HYPERPARAMETERS[name])
    if name == "SGD" and data.draw(st.booleans()):  # Nesterov where it is allowed
        kwargs.update(nesterov=True, dampening=0.0, momentum=max(kwargs["momentum"], 0.1))
    problem = make_data()
    model_a, model_b = make_model(), make_model()
    ours = run(model_a, getattr(dopt, name)(model_a.parameters(), **kwargs), range(25), problem)
    theirs = run(
        model_b, getattr(torch.optim, name)(model_b.parameters(), **kwargs), range(25), problem
    )
    assert_same_trajectory(ours, theirs)


def test_centered_rmsprop_stays_finite_where_torch_gives_nan() -> None:
    """A gradient that never changes: v - ḡ² -> 0, and rounding makes it slightly negative.
    PyTorch's square root then gives NaN; dlkit clamps at 0 and equals PyTorch until then."""
    grad = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    trajectories = []
    for cls in (dopt.RMSprop, torch.optim.RMSprop):
        param = torch.zeros(1000, dtype=torch.float64, requires_grad=True)
        optimizer = cls([param], lr=1e-3, alpha=0.5, centered=True)
        steps = []
        for _ in range(100):
            param.grad = grad.clone()
            optimizer.step()
            steps.append(param.detach().clone())
        trajectories.append(torch.stack(steps))
    ours, theirs = trajectories
    assert torch.isfinite(ours).all()
    finite = torch.isfinite(theirs).all(dim=1)
    assert not finite.all(), "torch no longer gives NaN here: update RMSprop's docstring"
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=RTOL, atol=ATOL)
