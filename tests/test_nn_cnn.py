"""LeNet and ResNet: shapes, gradient flow, the residual identity, and digits accuracy."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from dlkit.data import load_digits
from dlkit.nn import BasicBlock, LeNet, LeNetConfig, ResNet, ResNetConfig
from dlkit.train import LRSchedulerCallback, Trainer, accuracy, make_loader


@pytest.mark.parametrize(
    ("config", "image"),
    [
        (LeNetConfig(), (1, 8, 8)),
        (LeNetConfig(in_channels=3, image_size=(32, 32), num_classes=7), (3, 32, 32)),
        (LeNetConfig(image_size=(28, 28), kernel_size=5, channels=(6, 16), hidden=(120, 84)),
         (1, 28, 28)),
        (LeNetConfig(image_size=(9, 13), channels=(4, 4, 4)), (1, 9, 13)),
    ],
)  # fmt: skip
def test_lenet_output_shape_and_feature_shape(config: LeNetConfig, image: tuple) -> None:
    model = LeNet(config)
    x = torch.randn(5, *image)
    assert model(x).shape == (5, config.num_classes)
    # feature_shape() is the formula; the features' actual output must agree with it.
    assert model.features(x).shape[1:] == config.feature_shape()


@pytest.mark.parametrize(("image", "config"), [
    ((1, 8, 8), ResNetConfig()),
    ((3, 32, 20), ResNetConfig(in_channels=3, widths=(8, 16, 32), blocks=(2, 1, 1), num_classes=4)),
    ((1, 5, 5), ResNetConfig()),
])  # fmt: skip
def test_resnet_output_shape_for_any_image_size(image: tuple, config: ResNetConfig) -> None:
    assert ResNet(config)(torch.randn(3, *image)).shape == (3, config.num_classes)


@pytest.mark.parametrize("make", [LeNet, lambda: ResNet(ResNetConfig(zero_init_residual=False))])
def test_every_parameter_gets_a_finite_nonzero_gradient(make) -> None:
    torch.manual_seed(0)
    model = make()
    loss = F.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.arange(8))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}: {p.grad}"


def test_zero_init_residual_block_is_relu_of_its_shortcut() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 8, 6, 6)
    identity = BasicBlock(8, 8, zero_init_residual=True).train()
    torch.testing.assert_close(identity(x), F.relu(x), rtol=0, atol=0)
    projection = BasicBlock(8, 16, stride=2, zero_init_residual=True).train()
    out = projection(x)
    assert out.shape == (4, 16, 3, 3)
    torch.testing.assert_close(out, F.relu(projection.shortcut(x)))
    # Without zero init the residual branch is not zero, so the block differs from ReLU(x).
    assert not torch.allclose(BasicBlock(8, 8)(x), F.relu(x))


def test_residual_block_is_relu_of_branch_plus_shortcut() -> None:
    torch.manual_seed(1)
    block = BasicBlock(4, 6, stride=2).eval()
    x = torch.randn(2, 4, 7, 7)
    branch = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    shortcut = block.shortcut[1](F.conv2d(x, block.shortcut[0].weight, stride=2))
    torch.testing.assert_close(block(x), F.relu(branch + shortcut))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LeNet()(torch.randn(2, 1, 28, 28)), r"expected images of shape \(B, 1, 8, 8\)"),
        (lambda: ResNet()(torch.randn(2, 3, 8, 8)), r"expected images of shape \(B, 1, H, W\)"),
        (lambda: LeNetConfig(kernel_size=4), "must be odd"),
        (lambda: LeNetConfig(image_size=(3, 3)), "at least 4 pixels"),
        (lambda: ResNetConfig(widths=(8, 16), blocks=(1,)), "one entry per stage"),
    ],
)
def test_bad_configurations_and_inputs_raise(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny convolutions gain nothing from more, and on a shared
    2-core machine a second spinning thread can slow training by an order of magnitude."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def train_on_digits(model: torch.nn.Module, epochs: int, seed: int = 0) -> float:
    """AdamW with a one-cycle schedule through dlkit's Trainer; returns test accuracy."""
    train, val, test = load_digits(images=True).datasets()
    loader = make_loader(train, 32, shuffle=True, seed=seed, device="cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 1e-2, total_steps=epochs * len(loader)
    )
    trainer = Trainer(model, optimizer, F.cross_entropy, device="cpu", metrics={"acc": accuracy},
                      callbacks=[LRSchedulerCallback(schedule, "step")], progress=False, seed=seed)  # fmt: skip
    trainer.fit(loader, make_loader(val, 512, device="cpu"), epochs=epochs)
    return trainer.evaluate(make_loader(test, 512, device="cpu"))["acc"]


@pytest.mark.slow
@pytest.mark.parametrize(("make", "epochs"), [(LeNet, 5), (ResNet, 4)])
def test_digits_test_accuracy_at_least_97_percent(make, epochs: int, one_thread) -> None:
    torch.manual_seed(0)
    start = time.perf_counter()
    acc = train_on_digits(make(), epochs)
    print(f"{make.__name__}: test accuracy {acc:.4f} in {time.perf_counter() - start:.1f} s")
    assert acc >= 0.97, f"test accuracy {acc:.4f} < 0.97"
