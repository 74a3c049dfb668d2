"""The scratch MLP: layers and loss against PyTorch (float64), and training on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlkit.data import load_digits
from dlkit.scratch import MLP, Linear, Tensor, assert_gradcheck, cross_entropy, train_mlp
from dlkit.scratch.mlp import log_softmax, minibatches, sgd_step


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_cross_entropy_matches_torch(scale: float) -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)) * scale
    targets = np.array([0, 4, 2, 2, 1, 3])
    ours = Tensor(logits, requires_grad=True)
    loss = cross_entropy(ours, targets)
    loss.backward()
    theirs = torch.tensor(logits, requires_grad=True)
    expected = F.cross_entropy(theirs, torch.from_numpy(targets))
    expected.backward()
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_log_softmax_matches_torch_and_gradcheck() -> None:
    logits = np.random.default_rng(1).standard_normal((3, 4)) * 5
    np.testing.assert_allclose(
        log_softmax(Tensor(logits)).data,
        F.log_softmax(torch.tensor(logits), dim=-1).numpy(),
        rtol=1e-12,
    )
    assert_gradcheck(lambda z: log_softmax(z, axis=0), [logits])
    assert_gradcheck(lambda z: cross_entropy(z, np.array([1, 0, 3])), [logits])


def test_linear_and_mlp_match_torch_with_the_same_weights() -> None:
    model = MLP([5, 7, 3], seed=4)
    torch_model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)
    ).double()
    with torch.no_grad():
        for ours, theirs in zip(model.layers, [torch_model[0], torch_model[2]], strict=True):
            theirs.weight.copy_(torch.from_numpy(ours.weight.data))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    x = np.random.default_rng(2).standard_normal((8, 5))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    loss = cross_entropy(model(x), y)
    loss.backward()
    expected = F.cross_entropy(torch_model(torch.from_numpy(x)), torch.from_numpy(y))
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    torch_params = [p.grad.numpy() for p in torch_model.parameters()]
    for ours, theirs in zip(model.parameters(), torch_params, strict=True):
        np.testing.assert_allclose(ours.grad, theirs, rtol=1e-9, atol=1e-14)


def test_linear_init_follows_torch_bounds() -> None:
    layer = Linear(16, 4, np.random.default_rng(0))
    assert layer.weight.shape == (4, 16) and layer.bias.shape == (4,)
    assert np.abs(layer.weight.data).max() <= 0.25 and np.abs(layer.weight.data).max() > 0.2


def test_sgd_step_and_zero_grad() -> None:
    model = MLP([2, 2], seed=0)
    before = [p.data.copy() for p in model.parameters()]
    cross_entropy(model(np.ones((1, 2))), np.array([1])).backward()
    grads = [p.grad.copy() for p in model.parameters()]
    sgd_step(model.parameters(), lr=0.5)
    for p, b, g in zip(model.parameters(), before, grads, strict=True):
        np.testing.assert_allclose(p.data, b - 0.5 * g)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_minibatches_cover_each_epoch_once() -> None:
    batches = minibatches(10, 3, steps=6, seed=0)
    assert len(batches) == 6 and all(len(b) == 3 for b in batches)
    assert len(set(np.concatenate(batches[:3]).tolist())) == 9  # one epoch: 3 full batches
    np.testing.assert_array_equal(
        np.concatenate(minibatches(10, 3, 6, seed=0)), np.concatenate(batches)
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 3])), r"\[0, 2\]"),
        (lambda: cross_entropy(Tensor(np.ones((2, 3))), np.array([0.0, 1.0])), "integer targets"),
        (lambda: cross_entropy(Tensor(np.ones(3)), np.array([0])), "batch, classes"),
        (lambda: MLP([4, 2])(np.ones((3, 5))), r"\(batch, 4\), got \(3, 5\)"),
        (lambda: MLP([4]), "at least"),
        (lambda: minibatches(5, 6, 1, 0), "batch_size"),
    ],
)
def test_bad_inputs(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_learns_digits_to_95_percent() -> None:
    """The stated result: MLP(64-64-10), 1000 SGD steps of 64, lr 0.1, seed 0 -> >= 95% test."""
    data = load_digits(seed=0)
    model = MLP([64, 64, 10], seed=0)
    losses = train_mlp(
        model, data.x_train.astype(np.float64), data.y_train, steps=1000, lr=0.1, seed=0
    )
    accuracy = float((model.predict(data.x_test) == data.y_test).mean())
    assert np.mean(losses[-50:]) < 0.2 < np.mean(losses[:10])
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f} < 0.95"
