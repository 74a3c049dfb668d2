"""The losses widget's math: each curve and gradient against its closed form."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from dlkit.viz import loss_curves, loss_explorer, plot_loss_curves

GRID = np.linspace(-5.0, 5.0, 41) + 0.013  # avoid landing exactly on a kink


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize(("target", "delta"), [(0.0, 1.0), (1.5, 0.3), (-2.0, 2.5)])
def test_regression_curves_match_closed_forms(target: float, delta: float) -> None:
    curves = loss_curves("regression", GRID, target, delta=delta)
    d = GRID - target
    np.testing.assert_allclose(curves["squared error"][0], d**2, rtol=1e-12)
    np.testing.assert_allclose(curves["squared error"][1], 2 * d, rtol=1e-12)
    np.testing.assert_allclose(curves["absolute error"][0], np.abs(d), rtol=1e-12)
    np.testing.assert_allclose(curves["absolute error"][1], np.sign(d), rtol=1e-12)
    huber = np.where(np.abs(d) < delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
    np.testing.assert_allclose(curves["Huber"][0], huber, rtol=1e-12)
    np.testing.assert_allclose(curves["Huber"][1], np.clip(d, -delta, delta), rtol=1e-12)


@pytest.mark.parametrize(("label", "eps"), [(0, 0.0), (1, 0.0), (1, 0.2)])
def test_classification_curves_match_closed_forms(label: int, eps: float) -> None:
    curves = loss_curves("classification", GRID, label, label_smoothing=eps)
    y = (1 - eps) * label + eps / 2
    s = _sigmoid(GRID)
    ce = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    np.testing.assert_allclose(curves["cross-entropy"][0], ce, rtol=1e-10)
    np.testing.assert_allclose(curves["cross-entropy"][1], s - y, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(curves["squared error on σ(z)"][0], (s - y) ** 2, rtol=1e-10)
    np.testing.assert_allclose(
        curves["squared error on σ(z)"][1], 2 * (s - y) * s * (1 - s), rtol=1e-10, atol=1e-14
    )


def test_confidently_wrong_squared_error_on_probability_has_vanishing_gradient() -> None:
    # label 1, logit -12: cross-entropy still pushes with slope ≈ -1, squared error barely does
    curves = loss_curves("classification", np.array([-12.0]), 1)
    assert curves["cross-entropy"][1][0] < -0.99
    assert abs(curves["squared error on σ(z)"][1][0]) < 1e-4


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="family must be one of"):
        loss_curves("ranking", GRID, 0.0)
    with pytest.raises(ValueError, match="binary label 0 or 1"):
        loss_curves("classification", GRID, 0.5)
    with pytest.raises(ValueError, match=r"shape \(P,\)"):
        loss_curves("regression", GRID.reshape(1, -1), 0.0)


def test_plot_marks_the_prediction() -> None:
    fig, axes = plt.subplots(1, 2)
    here = plot_loss_curves(axes, "regression", 2.0, 0.5, delta=1.0)
    assert here["squared error"] == pytest.approx((2.25, 3.0))
    assert here["Huber"] == pytest.approx((1.0, 1.0))
    assert len(axes[0].lines) == 2 * 3 + 1  # a curve and a dot per loss, and the target line
    plt.close(fig)


def test_explorer_builds_and_redraws_for_both_families() -> None:
    widget = loss_explorer()
    controls, output = widget.children
    family, prediction, target, label, delta, smoothing = controls.children
    assert label.layout.display == "none" and target.layout.display is None
    prediction.value = -4.0
    delta.value = 2.0
    family.value = "classification"  # the observer redraws and swaps the visible controls
    assert label.layout.display is None and target.layout.display == "none"
    smoothing.value = 0.3
    assert output.outputs is not None
    plt.close("all")
