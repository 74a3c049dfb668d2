"""dlkit.scratch's NumPy update rules against torch.optim: the same model, data and initial
parameters, float64, 200 steps, every branch of every rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from dlkit import scratch

STEPS = 200

CASES: list[tuple[type, type, dict[str, Any]]] = [
    (scratch.SGD, torch.optim.SGD, {"lr": 0.05}),
    (scratch.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    (
        scratch.SGD,
        torch.optim.SGD,
        {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
    ),
    (
        scratch.Adagrad,
        torch.optim.Adagrad,
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
    ),
    (scratch.Adagrad, torch.optim.Adagrad, {"lr": 0.05, "weight_decay": 0.01}),
    (scratch.RMSprop, torch.optim.RMSprop, {"lr": 1e-3}),
    (scratch.RMSprop, torch.optim.RMSprop, {"lr": 1e-3, "centered": True, "alpha": 0.9}),
    (
        scratch.RMSprop,
        torch.optim.RMSprop,
        {"lr": 1e-3, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    ),
    (scratch.Adam, torch.optim.Adam, {"lr": 0.01}),
    (
        scratch.Adam,
        torch.optim.Adam,
        {"lr": 0.01, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.05},
    ),
    (scratch.Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True}),
    (scratch.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (scratch.AdamW, torch.optim.AdamW, {"lr": 0.01, "amsgrad": True}),
]


def case_id(case: tuple[type, type, dict[str, Any]]) -> str:
    return case[0].__name__ + "".join(f"-{k}={v}" for k, v in case[2].items())


def problem() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """A two-layer tanh network's initial weights and a regression data set (float64)."""
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(5, 16)) / 2, np.zeros(16), rng.normal(size=(16, 3)) / 4, np.zeros(3)]
    return params, rng.normal(size=(64, 5)), rng.normal(size=(64, 3))


def loss_and_grads(
    params: list[np.ndarray], x: np.ndarray, y: np.ndarray, step: int
) -> tuple[float, list[np.ndarray]]:
    """Mean squared error of ``tanh(x W1 + b1) W2 + b2`` on mini-batch ``step % 4``, by hand."""
    w1, b1, w2, b2 = params
    x, y = x[16 * (step % 4) : 16 * (step % 4) + 16], y[16 * (step % 4) : 16 * (step % 4) + 16]
    h = np.tanh(x @ w1 + b1)  # (B, 16)
    out = h @ w2 + b2  # (B, 3)
    d_out = 2 * (out - y) / out.size  # (B, 3)
    d_h = d_out @ w2.T * (1 - h**2)  # (B, 16)
    return float(((out - y) ** 2).mean()), [x.T @ d_h, d_h.sum(0), h.T @ d_out, d_out.sum(0)]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_trajectory(case: tuple[type, type, dict[str, Any]]) -> None:
    ours_cls, torch_cls, kwargs = case
    params, x, y = problem()
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    xt, yt = torch.tensor(x), torch.tensor(y)
    ours, theirs = ours_cls(params, **kwargs), torch_cls(tensors, **kwargs)
    start = [p.copy() for p in params]
    for step in range(STEPS):
        _, grads = loss_and_grads(params, x, y, step)
        ours.step(grads)

        theirs.zero_grad()
        batch = slice(16 * (step % 4), 16 * (step % 4) + 16)
        out = torch.tanh(xt[batch] @ tensors[0] + tensors[1]) @ tensors[2] + tensors[3]
        ((out - yt[batch]) ** 2).mean().backward()
        theirs.step()
        for i, (p, t) in enumerate(zip(params, tensors, strict=True)):
            np.testing.assert_allclose(
                p, t.detach().numpy(), rtol=1e-6, atol=1e-12, err_msg=f"step {step}, params[{i}]"
            )
    assert max(np.abs(p - s).max() for p, s in zip(params, start, strict=True)) > 1e-3


def test_hand_written_gradients_are_right() -> None:
    """The oracle's oracle: the manual backward pass against central differences."""
    params, x, y = problem()
    _, grads = loss_and_grads(params, x, y, 1)
    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for j in range(0, flat.size, 7):
            old = flat[j]
            flat[j] = old + h
            up = loss_and_grads(params, x, y, 1)[0]
            flat[j] = old - h
            down = loss_and_grads(params, x, y, 1)[0]
            flat[j] = old
            assert (up - down) / (2 * h) == pytest.approx(gflat[j], rel=1e-5, abs=1e-9)


def test_none_gradient_leaves_parameter_and_state_alone() -> None:
    params, x, y = problem()
    optimizer = scratch.Adam(params, lr=0.1)
    before = params[0].copy()
    _, grads = loss_and_grads(params, x, y, 0)
    optimizer.step([None, *grads[1:]])
    np.testing.assert_array_equal(params[0], before)
    assert optimizer.state[0] == {} and optimizer.state[1]["step"] == 1


BAD: list[tuple[type, dict[str, Any], str]] = [
    (scratch.SGD, {"lr": -0.1}, "lr"),
    (scratch.SGD, {"momentum": -0.5}, "momentum"),
    (scratch.SGD, {"nesterov": True}, "Nesterov"),
    (scratch.SGD, {"weight_decay": -1.0}, "weight_decay"),
    (scratch.Adagrad, {"eps": 0.0}, "eps"),
    (scratch.RMSprop, {"alpha": 1.0}, "alpha"),
    (scratch.Adam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
    (scratch.Adam, {"betas": (0.9, -0.1)}, r"betas\[1\]"),
    (scratch.AdamW, {"eps": -1e-8}, "eps"),
]


@pytest.mark.parametrize(("cls", "kwargs", "match"), BAD, ids=lambda v: str(v))
def test_bad_hyperparameters_raise(cls: type, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(problem()[0], **kwargs)


def test_bad_inputs_raise() -> None:
    params = problem()[0]
    with pytest.raises(TypeError, match="floating-point numpy array"):
        scratch.SGD([np.arange(3)])
    optimizer = scratch.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="4 gradients"):
        optimizer.step([np.zeros((5, 16))])
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(3,\), expected \(16,\)"):
        optimizer.step([np.zeros((5, 16)), np.zeros(3), np.zeros((16, 3)), np.zeros(3)])


def test_centered_rmsprop_stays_finite_when_the_variance_rounds_below_zero() -> None:
    """A gradient that never changes: v - ḡ² -> 0 and rounds below 0 in some coordinates."""
    grad = np.random.default_rng(0).normal(size=1000)
    params = [np.zeros(1000)]
    optimizer = scratch.RMSprop(params, lr=1e-3, alpha=0.5, centered=True)
    with np.errstate(invalid="raise"):  # a sqrt of a negative number would raise here
        for _ in range(100):
            optimizer.step([grad])
    assert np.isfinite(params[0]).all()
