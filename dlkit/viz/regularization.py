r"""Chapter 05's pictures: regularization on two moons, and the decision threshold.

:func:`regularization_explorer` trains a small MLP on a few noisy "two moons" points
with a weight penalty and dropout chosen by sliders, and shows the decision boundary
with the training and validation loss curves. The training objective is

.. math::

    J(\theta) = \frac1N \sum_{i=1}^{N} \mathrm{BCE}\big(\sigma(f_\theta(x_i)), y_i\big)
        + \lambda\, \Omega(W), \qquad
    \Omega_{L2}(W) = \sum_{\ell} \lVert W_\ell \rVert_F^2, \quad
    \Omega_{L1}(W) = \sum_{\ell} \sum_{jk} |W_{\ell,jk}|,

over the weight matrices :math:`W_\ell` (biases are not penalized). Each setting trains
in well under a second and is cached, so moving back to a setting redraws at once.

:func:`threshold_explorer` turns scores into decisions, "positive if score ≥ t", and
shows how precision, recall and :math:`F_1` (computed by :mod:`dlkit.scratch.metrics`)
and the confusion matrix move with :math:`t`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from sklearn.datasets import make_moons
from torch import nn

from dlkit.nn.dropout import Dropout
from dlkit.scratch.metrics import confusion_matrix, precision_recall_f1
from dlkit.train.device import one_thread

__all__ = [
    "RegularizedFit",
    "build_dropout_mlp",
    "fit_moons_mlp",
    "moons_splits",
    "plot_confusion_matrix",
    "plot_decision_boundary",
    "plot_train_val_curves",
    "regularization_explorer",
    "threshold_explorer",
    "threshold_metrics",
    "weight_penalty",
]

Penalty = Literal["l1", "l2"]
STRENGTHS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DROPOUT_RATES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)


# ---------------------------------------------------------------- data and model
def moons_splits(
    n_train: int = 60, n_val: int = 500, *, noise: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two interleaving half circles with Gaussian noise (scikit-learn's ``make_moons``).

    Returns ``(x_train, y_train, x_val, y_val)``: ``x`` ``(N, 2)`` float32, ``y`` ``(N,)``
    int64 in {0, 1}. Generated from ``seed``, nothing is downloaded. Few training
    points and much noise make an unregularized network overfit.
    """
    x, y = make_moons(n_samples=n_train + n_val, noise=noise, random_state=seed)
    x, y = x.astype(np.float32), y.astype(np.int64)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def build_dropout_mlp(hidden: Sequence[int] = (64, 64), dropout: float = 0.0) -> nn.Sequential:
    """``2 → hidden[0] → … → 1`` with ReLU, each hidden layer followed by :class:`Dropout`."""
    layers: list[nn.Module] = []
    width = 2
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, 1))  # one logit
    return nn.Sequential(*layers)


def weight_penalty(model: nn.Module, kind: Penalty, strength: float) -> torch.Tensor:
    r""":math:`\lambda \sum_\ell \lVert W_\ell \rVert_F^2` (``"l2"``) or :math:`\lambda \sum |W|` (``"l1"``).

    Sums over the weight matrices of the model's ``nn.Linear`` layers, not the biases.
    """
    if kind not in ("l1", "l2"):
        raise ValueError(f"penalty kind must be 'l1' or 'l2', got {kind!r}")
    if strength < 0:
        raise ValueError(f"penalty strength must be >= 0, got {strength}")
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    terms = [w.abs().sum() if kind == "l1" else (w**2).sum() for w in weights]
    return strength * torch.stack(terms).sum()


@dataclass(frozen=True)
class RegularizedFit:
    """A trained model and its curves; ``steps`` and the curves have shape ``(R,)``.

    Losses are the data term alone (binary cross-entropy, no penalty), measured in
    evaluation mode (dropout off), so train and validation are comparable.
    """

    model: nn.Sequential
    steps: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    train_acc: float
    val_acc: float


def _loss_and_acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = model(x).squeeze(1)  # (N,)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
    return float(loss), float(((logits > 0).float() == y).float().mean())


def fit_moons_mlp(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    penalty: Penalty = "l2",
    strength: float = 0.0,
    dropout: float = 0.0,
    hidden: Sequence[int] = (64, 64),
    steps: int = 300,
    lr: float = 0.01,
    record_every: int = 10,
    seed: int = 0,
) -> RegularizedFit:
    """Full-batch Adam on the penalized objective above; reproducible from ``seed``.

    The global torch RNG is left as it was (the run uses a forked RNG state), and the
    run uses one CPU thread (restored afterwards).
    """
    if steps < 1 or record_every < 1:
        raise ValueError(f"steps and record_every must be >= 1, got {steps}, {record_every}")
    xt, yt = torch.as_tensor(x_train), torch.as_tensor(y_train, dtype=torch.float32)
    xv, yv = torch.as_tensor(x_val), torch.as_tensor(y_val, dtype=torch.float32)
    recorded: list[tuple[int, float, float]] = []
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)
        model = build_dropout_mlp(hidden, dropout)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for step in range(1, steps + 1):
            model.train()
            logits = model(xt).squeeze(1)  # (N,)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, yt)
            if strength > 0:
                loss = loss + weight_penalty(model, penalty, strength)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % record_every == 0 or step == steps:
                model.eval()
                with torch.no_grad():
                    recorded.append(
                        (step, _loss_and_acc(model, xt, yt)[0], _loss_and_acc(model, xv, yv)[0])
                    )
    model.eval()
    with torch.no_grad(), one_thread():
        train_acc, val_acc = _loss_and_acc(model, xt, yt)[1], _loss_and_acc(model, xv, yv)[1]
    table = np.array(recorded)  # (R, 3): step, train loss, val loss
    return RegularizedFit(model, table[:, 0], table[:, 1], table[:, 2], train_acc, val_acc)


# ---------------------------------------------------------------- plots
def plot_decision_boundary(
    ax: Axes, model: nn.Module, x: np.ndarray, y: np.ndarray, *, resolution: int = 150
) -> None:
    """Shade :math:`P(y=1 \\mid x)` over the plane, draw the 0.5 contour and the points."""
    lo, hi = x.min(axis=0) - 0.5, x.max(axis=0) + 0.5
    g0, g1 = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    grid = torch.as_tensor(np.c_[g0.ravel(), g1.ravel()], dtype=torch.float32)  # (R·R, 2)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        prob = torch.sigmoid(model(grid)).reshape(g0.shape).numpy()  # (R, R)
    model.train(was_training)
    ax.contourf(g0, g1, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    ax.contour(g0, g1, prob, levels=[0.5], colors="k", linewidths=1.5)
    for label, color in ((0, "tab:blue"), (1, "tab:red")):
        mine = y == label
        ax.scatter(x[mine, 0], x[mine, 1], color=color, edgecolors="w", s=30, label=f"y = {label}")
    ax.set(xlabel="$x_1$", ylabel="$x_2$")


def plot_train_val_curves(ax: Axes, fit: RegularizedFit) -> None:
    """Training and validation loss (data term, eval mode) against the step."""
    ax.plot(fit.steps, fit.train_loss, label="train")
    ax.plot(fit.steps, fit.val_loss, label="validation")
    best = int(np.argmin(fit.val_loss))
    ax.axvline(fit.steps[best], color="0.6", ls=":", label=f"best val, step {int(fit.steps[best])}")
    ax.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="loss curves")
    ax.legend()


def plot_confusion_matrix(
    ax: Axes, counts: np.ndarray, class_names: Sequence[str] | None = None
) -> None:
    """Counts ``(K, K)``, rows true class, columns predicted, each cell annotated."""
    counts = np.asarray(counts)
    k = counts.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else list(class_names)
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            dark = counts[i, j] > counts.max() / 2
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color="white" if dark else "black", fontsize=9 if k > 4 else 12)  # fmt: skip
    ax.set(xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true")  # fmt: skip


# ---------------------------------------------------------------- widgets
def _fit_key(penalty: str, strength: float, dropout: float) -> tuple[str, float, float]:
    return ("none" if strength == 0 else penalty, strength, dropout)  # λ = 0: kind is moot


def regularization_explorer(*, n_train: int = 60, steps: int = 300, seed: int = 0) -> widgets.VBox:
    """Sliders for the penalty (kind, strength λ) and dropout rate; redraws boundary and curves.

    The box's ``fits`` attribute is the cache of trained runs, keyed by
    ``(kind, strength, dropout)``.
    """
    data = moons_splits(n_train=n_train, seed=seed)
    style, layout = {"description_width": "initial"}, widgets.Layout(width="60%")
    kind = widgets.ToggleButtons(options=[("L2", "l2"), ("L1", "l1")], value="l2",
                                 description="penalty")  # fmt: skip
    strength = widgets.SelectionSlider(options=STRENGTHS, value=0.0, description="strength λ",
                                       continuous_update=False, style=style, layout=layout)  # fmt: skip
    rate = widgets.SelectionSlider(options=DROPOUT_RATES, value=0.0, description="dropout p",
                                   continuous_update=False, style=style, layout=layout)  # fmt: skip
    out = widgets.Output()
    fits: dict[tuple[str, float, float], RegularizedFit] = {}

    def draw(change: object = None) -> None:
        key = _fit_key(kind.value, strength.value, rate.value)
        if key not in fits:
            fits[key] = fit_moons_mlp(*data, penalty=kind.value, strength=strength.value,
                                      dropout=rate.value, steps=steps, seed=seed)  # fmt: skip
        fit = fits[key]
        with out:
            out.clear_output(wait=True)
            fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
            plot_decision_boundary(left, fit.model, data[0], data[1])
            left.set_title(f"train acc {fit.train_acc:.2f}, validation acc {fit.val_acc:.2f}")
            plot_train_val_curves(right, fit)
            fig.suptitle(f"{key[0].upper()} penalty λ = {key[1]:g}, dropout p = {key[2]:g}")
            fig.tight_layout()
            plt.show()

    for control in (kind, strength, rate):
        control.observe(draw, names="value")
    draw()
    box = widgets.VBox([kind, strength, rate, out])
    box.fits = fits  # type: ignore[attr-defined]
    return box


def threshold_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float | np.ndarray]:
    """Precision, recall, F1, accuracy and the ``(2, 2)`` confusion matrix of ``score ≥ t``.

    ``y_true`` ``(N,)`` in {0, 1}; ``scores`` ``(N,)``. Undefined ratios (nothing predicted
    positive) count as 0.
    """
    y_true = np.asarray(y_true)
    y_pred = (np.asarray(scores) >= threshold).astype(int)
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, labels=[1], average="macro")
    counts = confusion_matrix(y_true, y_pred, labels=[0, 1])
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": float(np.trace(counts) / counts.sum()), "confusion": counts}  # fmt: skip


def threshold_explorer(y_true: np.ndarray, scores: np.ndarray) -> widgets.VBox:
    """A threshold slider over scores in [0, 1]: score histograms, P/R/F1 curves, confusion matrix."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and scores must both be (N,), got {y_true.shape}, {scores.shape}")
    grid = np.linspace(0.0, 1.0, 101)
    curves = [threshold_metrics(y_true, scores, t) for t in grid]
    series = {name: np.array([c[name] for c in curves]) for name in ("precision", "recall", "f1")}
    slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="threshold t",
                                 continuous_update=False, style={"description_width": "initial"},
                                 layout=widgets.Layout(width="60%"))  # fmt: skip
    out = widgets.Output()

    def draw(change: object = None) -> None:
        t = slider.value
        now = threshold_metrics(y_true, scores, t)
        with out:
            out.clear_output(wait=True)
            fig, (hist, lines, matrix) = plt.subplots(1, 3, figsize=(14, 4))
            bins = np.linspace(0, 1, 26)
            hist.hist(scores[y_true == 0], bins=bins, alpha=0.6, label="negatives (y=0)")
            hist.hist(scores[y_true == 1], bins=bins, alpha=0.6, label="positives (y=1)")
            hist.axvline(t, color="k")
            hist.set(xlabel="score", ylabel="count", title="scores by true class")
            hist.legend()
            for name, values in series.items():
                lines.plot(grid, values, label=name)
            lines.axvline(t, color="k")
            lines.set(xlabel="threshold t", ylim=(-0.02, 1.02), title="positive if score ≥ t")
            lines.legend()
            plot_confusion_matrix(matrix, now["confusion"])
            matrix.set_title(f"P {now['precision']:.2f}  R {now['recall']:.2f}  "
                             f"F1 {now['f1']:.2f}  acc {now['accuracy']:.2f}")  # fmt: skip
            fig.tight_layout()
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])
