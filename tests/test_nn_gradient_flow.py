"""dlkit.nn.gradient_flow: per-layer gradient norms against a hand-written NumPy backward pass,
the init formulas against torch.nn.init, and the vanishing-gradient effect measured."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from dlkit.nn.gradient_flow import (
    ACTIVATIONS,
    DeepMLPConfig,
    build_deep_mlp,
    gradient_norms,
    init_std,
    layer_gradient_norms,
)

# Activations and their derivatives written out by hand (the oracle for the backward pass).
_SIG = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
_PHI = {
    "sigmoid": (_SIG, lambda a: _SIG(a) * (1.0 - _SIG(a))),
    "tanh": (np.tanh, lambda a: 1.0 - np.tanh(a) ** 2),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(float)),
    "leaky_relu": (lambda a: np.where(a > 0, a, 0.01 * a), lambda a: np.where(a > 0, 1.0, 0.01)),
    "elu": (lambda a: np.where(a > 0, a, np.expm1(a)), lambda a: np.where(a > 0, 1.0, np.exp(a))),
    "gelu": (
        lambda a: 0.5 * a * (1.0 + erf(a / math.sqrt(2.0))),
        lambda a: (
            0.5 * (1.0 + erf(a / math.sqrt(2.0)))
            + a * np.exp(-0.5 * a**2) / math.sqrt(2.0 * math.pi)
        ),
    ),
    "identity": (lambda a: a, np.ones_like),
}


def _numpy_gradient_norms(model: torch.nn.Sequential, x: np.ndarray, g: np.ndarray, name: str):
    """Forward and backward by hand, rows as examples: a_l = h_{l-1} W_l^T + b_l, h_l = φ(a_l)."""
    phi, dphi = _PHI[name]
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    weights = [m.weight.detach().numpy() for m in linears]  # (out, in)
    biases = [m.bias.detach().numpy() for m in linears]
    hs, pre = [x], []
    for w, b in zip(weights, biases, strict=True):
        pre.append(hs[-1] @ w.T + b)  # (B, out)
        hs.append(phi(pre[-1]))
    delta_h = g / x.shape[0]  # dL/dy for L = sum(y * g) / B
    norms = []
    for layer in reversed(range(len(weights))):
        delta_a = dphi(pre[layer]) * delta_h  # (B, out)
        norms.append(
            np.linalg.norm(delta_a.T @ hs[layer])
        )  # dL/dW_l = delta_a^T h_{l-1}: (out, in)
        delta_h = delta_a @ weights[layer]  # (B, in)
    return np.array(norms[::-1])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("init", ["xavier", "he", 0.3])
def test_norms_match_a_numpy_backward_pass(name: str, init: str | float) -> None:
    model = build_deep_mlp(DeepMLPConfig(depth=6, width=12, activation=name, init=init), seed=3)
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(9, 12)), rng.normal(size=(9, 12))
    got = layer_gradient_norms(model, torch.from_numpy(x), torch.from_numpy(g))
    np.testing.assert_allclose(got, _numpy_gradient_norms(model, x, g, name), rtol=1e-10)


def test_weights_have_the_init_standard_deviation() -> None:
    for init, expected in [
        ("he", math.sqrt(2 / 256)),
        ("xavier", math.sqrt(2 / 512)),
        (0.05, 0.05),
    ]:
        model = build_deep_mlp(DeepMLPConfig(depth=3, width=256, init=init), seed=0)
        w = torch.cat(
            [m.weight.detach().flatten() for m in model if isinstance(m, torch.nn.Linear)]
        )
        assert float(w.std()) == pytest.approx(expected, rel=0.01)
        assert all(
            float(m.bias.detach().abs().max()) == 0.0
            for m in model
            if isinstance(m, torch.nn.Linear)
        )


@pytest.mark.parametrize(("fan_in", "fan_out"), [(64, 64), (300, 100), (10, 1000)])
def test_init_std_agrees_with_torch_nn_init(fan_in: int, fan_out: int) -> None:
    # torch: xavier_normal_ std = gain·sqrt(2/(fan_in+fan_out)), kaiming_normal_ (ReLU) std = sqrt(2/fan_in).
    w = torch.empty(fan_out, fan_in, dtype=torch.float64)
    torch.manual_seed(0)
    torch.nn.init.xavier_normal_(w)
    xavier = math.sqrt(2.0 / (fan_in + fan_out))
    assert init_std("xavier", fan_in, fan_out) == pytest.approx(xavier, rel=1e-12)
    assert float(w.std()) == pytest.approx(xavier, rel=0.03)
    torch.nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert init_std("he", fan_in, fan_out) == pytest.approx(math.sqrt(2.0 / fan_in), rel=1e-12)
    assert float(w.std()) == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.03)


def test_seeded_and_independent_of_the_global_rng() -> None:
    a = gradient_norms("tanh", "xavier", depth=5, width=16, seed=7)
    torch.manual_seed(123)
    torch.rand(10)
    np.testing.assert_array_equal(a, gradient_norms("tanh", "xavier", depth=5, width=16, seed=7))
    assert not np.array_equal(a, gradient_norms("tanh", "xavier", depth=5, width=16, seed=8))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vanishing_gradients_sigmoid_vs_relu_he(seed: int) -> None:
    depth = 20
    # Sigmoid, too-small init: the first layer gets < 1e-20 of the last layer's gradient.
    bad = gradient_norms("sigmoid", "small", depth=depth, width=64, seed=seed)
    assert bad[0] / bad[-1] < 1e-20
    assert np.all(np.diff(bad) > 0), "sigmoid's norms should grow monotonically towards the output"
    # Sigmoid even with Xavier: sigmoid' <= 1/4 still loses orders of magnitude.
    xavier = gradient_norms("sigmoid", "xavier", depth=depth, width=64, seed=seed)
    assert xavier[0] / xavier[-1] < 1e-6
    # ReLU + He: every layer's gradient within a factor of 4 of every other's.
    good = gradient_norms("relu", "he", depth=depth, width=64, seed=seed)
    assert good.max() / good.min() < 4.0
    # tanh + Xavier: also within a factor of 4.
    tanh = gradient_norms("tanh", "xavier", depth=depth, width=64, seed=seed)
    assert tanh.max() / tanh.min() < 4.0


def test_sigmoid_needs_a_finely_tuned_large_init() -> None:
    # n σ² E[σ'(a)²] ≈ 1 near σ = 1.25 for width 64; ±20% tips it into vanishing or exploding.
    ratio = {
        std: (lambda g: g[0] / g[-1])(gradient_norms("sigmoid", std, depth=20, width=64))
        for std in (1.0, 1.25, 1.5)
    }
    assert 0.3 < ratio[1.25] < 3.0
    assert ratio[1.0] < 0.2 and ratio[1.5] > 5.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "swish"}, "unknown activation"),
        ({"init": "kaiming"}, "unknown init scheme"),
        ({"init": -1.0}, "standard deviation > 0"),
        ({"depth": 0}, "depth and width"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeepMLPConfig(**kwargs)


def test_upstream_shape_is_checked() -> None:
    model = build_deep_mlp(DeepMLPConfig(depth=2, width=4))
    x = torch.zeros(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"output's shape \(3, 4\)"):
        layer_gradient_norms(model, x, torch.zeros(3, 5, dtype=torch.float64))
