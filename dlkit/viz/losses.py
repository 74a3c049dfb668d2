r"""Loss curves and their gradients for chapter 03_losses, and the "move a prediction" widget.

Two families, each as a function of one prediction for one fixed target:

* ``"regression"``: prediction :math:`x`, target :math:`y`; squared error
  :math:`(x - y)^2`, absolute error :math:`|x - y|` and Huber with threshold
  :math:`\delta`. Gradients :math:`2(x - y)`, :math:`\operatorname{sign}(x - y)` and
  :math:`\operatorname{clamp}(x - y, -\delta, \delta)`.
* ``"classification"``: a logit :math:`z` for a binary label :math:`y \in \{0, 1\}`,
  smoothed to :math:`\tilde y = (1 - \varepsilon) y + \varepsilon / 2`; cross-entropy
  (BCE with logits, gradient :math:`\sigma(z) - \tilde y`) against the squared error
  on the probability :math:`(\sigma(z) - \tilde y)^2`, whose gradient
  :math:`2(\sigma(z) - \tilde y)\,\sigma(z)(1 - \sigma(z))` vanishes for a confidently
  wrong prediction.

Values come from :mod:`dlkit.nn.functional` and gradients from autograd (float64).
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from dlkit.nn import functional as F

__all__ = ["loss_curves", "loss_explorer", "plot_loss_curves"]

FAMILIES = ("regression", "classification")
_COLORS = {
    "squared error": "tab:blue",
    "absolute error": "tab:orange",
    "Huber": "tab:green",
    "cross-entropy": "tab:red",
    "squared error on σ(z)": "tab:purple",
}


def _value_and_grad(loss_fn, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise loss at each prediction and its derivative, both of shape (P,)."""
    x = torch.as_tensor(np.asarray(predictions, dtype=np.float64)).requires_grad_(True)
    loss = loss_fn(x)  # (P,), one independent loss per prediction
    (grad,) = torch.autograd.grad(loss.sum(), x)  # so d(sum)/dx_i = dloss_i/dx_i
    return loss.detach().numpy(), grad.numpy()


def loss_curves(
    family: str,
    predictions: np.ndarray,
    target: float,
    *,
    delta: float = 1.0,
    label_smoothing: float = 0.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each loss of ``family`` and its gradient at every prediction.

    Args:
        family: ``"regression"`` (predictions are values) or ``"classification"``
            (predictions are logits and ``target`` is the label 0 or 1).
        predictions: shape (P,).
        target: the regression target, or the binary label.
        delta: Huber's threshold :math:`\\delta` (regression).
        label_smoothing: :math:`\\varepsilon \\in [0, 1]` (classification).

    Returns:
        ``{name: (loss, gradient)}``, each array of shape (P,).
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    if predictions.ndim != 1:
        raise ValueError(f"predictions must have shape (P,), got {predictions.shape}")
    if family == "regression":

        def y(x):
            return torch.full_like(x, float(target))

        return {
            "squared error": _value_and_grad(
                lambda x: F.mse_loss(x, y(x), reduction="none"), predictions
            ),
            "absolute error": _value_and_grad(
                lambda x: F.l1_loss(x, y(x), reduction="none"), predictions
            ),
            "Huber": _value_and_grad(
                lambda x: F.huber_loss(x, y(x), reduction="none", delta=delta), predictions
            ),
        }
    if family == "classification":
        if target not in (0, 1):
            raise ValueError(f"classification needs a binary label 0 or 1, got {target}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        smoothed = (1.0 - label_smoothing) * target + label_smoothing / 2

        def y(x):
            return torch.full_like(x, smoothed)

        return {
            "cross-entropy": _value_and_grad(
                lambda z: F.binary_cross_entropy_with_logits(z, y(z), reduction="none"),
                predictions,
            ),
            "squared error on σ(z)": _value_and_grad(
                lambda z: F.mse_loss(F.sigmoid(z), y(z), reduction="none"), predictions
            ),
        }
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


def plot_loss_curves(
    axes: tuple[Axes, Axes],
    family: str,
    prediction: float,
    target: float,
    *,
    delta: float = 1.0,
    label_smoothing: float = 0.0,
    span: float = 6.0,
) -> dict[str, tuple[float, float]]:
    """Left: every loss against the prediction; right: its gradient. Dots mark ``prediction``.

    Returns:
        ``{name: (loss, gradient)}`` at ``prediction``.
    """
    loss_ax, grad_ax = axes
    center = target if family == "regression" else 0.0
    grid = np.linspace(center - span, center + span, 401)
    curves = loss_curves(family, grid, target, delta=delta, label_smoothing=label_smoothing)
    here = loss_curves(
        family, np.array([prediction]), target, delta=delta, label_smoothing=label_smoothing
    )
    at_prediction = {}
    for name, (loss, grad) in curves.items():
        color = _COLORS[name]
        value, slope = float(here[name][0][0]), float(here[name][1][0])
        at_prediction[name] = (value, slope)
        loss_ax.plot(grid, loss, color=color, label=f"{name}: {value:.3g}")
        grad_ax.plot(grid, grad, color=color, label=f"{name}: {slope:+.3g}")
        loss_ax.plot([prediction], [value], "o", color=color)
        grad_ax.plot([prediction], [slope], "o", color=color)
    xlabel = "prediction x" if family == "regression" else "logit z"
    loss_ax.axvline(target if family == "regression" else 0.0, color="0.8", lw=1)
    grad_ax.axhline(0.0, color="0.8", lw=1)
    loss_ax.set(xlabel=xlabel, ylabel="loss", title="loss")
    grad_ax.set(xlabel=xlabel, ylabel="∂loss/∂" + xlabel.split()[-1], title="gradient")
    loss_ax.legend(fontsize=8)
    grad_ax.legend(fontsize=8)
    return at_prediction


def loss_explorer(family: str = "regression") -> widgets.Widget:
    """Sliders for the prediction, the target and the loss options; redraws both panels."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    style = {"description_width": "initial"}
    family_box = widgets.ToggleButtons(options=list(FAMILIES), value=family, description="loss")
    prediction = widgets.FloatSlider(
        value=2.0, min=-6.0, max=6.0, step=0.1, description="prediction / logit", style=style
    )
    target = widgets.FloatSlider(
        value=0.0, min=-3.0, max=3.0, step=0.1, description="regression target y", style=style
    )
    label = widgets.ToggleButtons(options=[0, 1], value=0, description="label y")
    delta = widgets.FloatSlider(
        value=1.0, min=0.1, max=3.0, step=0.1, description="Huber δ", style=style
    )
    smoothing = widgets.FloatSlider(
        value=0.0, min=0.0, max=0.5, step=0.05, description="label smoothing ε", style=style
    )
    out = widgets.Output()

    def draw(change: object = None) -> None:
        regression = family_box.value == "regression"
        target.layout.display = delta.layout.display = None if regression else "none"
        label.layout.display = smoothing.layout.display = "none" if regression else None
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
            plot_loss_curves(
                axes,
                family_box.value,
                prediction.value,
                target.value if regression else label.value,
                delta=delta.value,
                label_smoothing=smoothing.value,
            )
            fig.tight_layout()
            plt.show()

    for control in (family_box, prediction, target, label, delta, smoothing):
        control.observe(draw, names="value")
    draw()
    controls = widgets.VBox([family_box, prediction, target, label, delta, smoothing])
    return widgets.VBox([controls, out])
