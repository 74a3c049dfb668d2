"""The digits distillation experiment (quick config: one seed, one temperature) and its
pictures, headless (Agg): the distilled student beats the student alone, alpha = 0 is
the student alone, the labelled subsets are balanced, and the bars drawn are exactly
softmax(z / T) with the entropy and KL of the title computed by hand."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")
import ipywidgets as widgets
import matplotlib.pyplot as plt
from torch import nn

from dlkit.data.digits import load_digits
from dlkit.data.masking import IGNORE_INDEX
from dlkit.train.distillation import (
    Teacher,
    accuracy,
    distillation_experiment,
    format_distillation,
    labelled_subset,
    train_student,
    train_teacher,
)
from dlkit.viz.distillation import (
    DistillationExplorer,
    distillation_explorer,
    plot_softened,
)


@pytest.fixture(scope="module")
def digits():
    d = load_digits(seed=0, images=True)
    return {k: torch.from_numpy(getattr(d, k)) for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def teacher():
    return train_teacher(0, epochs=5)


@pytest.fixture(scope="module")
def quick(teacher):
    return distillation_experiment(teacher=teacher[0], seeds=(0,), temperatures=(4.0,), steps=150)


def test_teacher_is_accurate_and_mostly_torch_linear(teacher) -> None:
    model, acc = teacher
    assert isinstance(model, Teacher) and not model.training
    assert acc > 0.95
    linear = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear)
                 for p in m.parameters())  # fmt: skip
    total = sum(p.numel() for p in model.parameters())
    assert linear / total > 0.9  # what int8 dynamic quantization of nn.Linear shrinks
    with pytest.raises(ValueError, match=r"Teacher expects images \(B, 1, 8, 8\)"):
        model(torch.zeros(2, 64))


def test_distilled_student_beats_the_student_alone(quick, teacher) -> None:
    assert quick["teacher_accuracy"] == pytest.approx(teacher[1])
    alone, distilled = quick["alone"]["mean"], quick["distilled"][4.0]["mean"]
    assert distilled > alone + 0.03  # full config: 88.5% alone, 96.9% at T = 4
    assert alone > 0.75  # the baseline is a real classifier, not a broken one
    assert quick["student_parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    table = format_distillation(quick)
    assert f"{100 * distilled:.1f}" in table and f"{100 * alone:.1f}" in table


def test_experiment_is_reproducible(quick, digits) -> None:
    idx = labelled_subset(digits["y_train"], 100, seed=0)
    targets = torch.full_like(digits["y_train"], IGNORE_INDEX)
    targets[idx] = digits["y_train"][idx]
    student = train_student(digits["x_train"], targets, steps=150, seed=0)
    assert accuracy(student, digits["x_test"], digits["y_test"]) == quick["alone"]["accuracies"][0]


def test_alpha_zero_is_the_student_alone(digits, teacher) -> None:
    with torch.no_grad():
        logits = teacher[0](digits["x_train"])  # (N, 10)
    idx = labelled_subset(digits["y_train"], 50, seed=3)
    targets = torch.full_like(digits["y_train"], IGNORE_INDEX)
    targets[idx] = digits["y_train"][idx]
    alone = train_student(digits["x_train"], targets, steps=30, seed=3)
    zero = train_student(digits["x_train"], targets, teacher_logits=logits, alpha=0.0, steps=30,
                         seed=3)  # fmt: skip
    soft = train_student(digits["x_train"], targets, teacher_logits=logits, alpha=0.5, steps=30,
                         seed=3)  # fmt: skip
    for a, z, s in zip(alone.parameters(), zero.parameters(), soft.parameters(), strict=True):
        torch.testing.assert_close(a, z, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(a, s, atol=1e-3)  # the teacher does change the student
    with pytest.raises(ValueError, match=r"teacher_logits must be \(N, 10\)"):
        train_student(digits["x_train"], targets, teacher_logits=logits[:5])


def test_labelled_subset_is_balanced_and_seeded(digits) -> None:
    y = digits["y_train"]
    idx = labelled_subset(y, 100, seed=0)
    assert len(idx) == len(set(idx.tolist())) == 100
    assert torch.equal(torch.bincount(y[idx], minlength=10), torch.full((10,), 10))
    assert torch.equal(idx, labelled_subset(y, 100, seed=0))
    assert not torch.equal(idx, labelled_subset(y, 100, seed=1))
    assert torch.equal(idx, torch.sort(idx).values)
    assert torch.bincount(y[labelled_subset(y, 25, seed=0)], minlength=10).min() == 2
    with pytest.raises(ValueError, match=r"labels must be an int in \[10, "):
        labelled_subset(y, 5, seed=0)


# ---- pictures -------------------------------------------------------------------------------

Z = torch.tensor([4.0, 1.0, 0.5, -1.0, 2.0], dtype=torch.float64)
S = torch.tensor([3.0, 2.0, 0.0, -0.5, 0.5], dtype=torch.float64)


def test_plot_softened_bars_are_softmax_over_t() -> None:
    temps = (1.0, 2.0, 8.0)
    ax = plot_softened(Z, temps)
    heights = np.array([p.get_height() for p in ax.patches]).reshape(len(temps), len(Z))
    for row, T in zip(heights, temps, strict=True):
        np.testing.assert_allclose(row, torch.softmax(Z / T, -1).numpy(), rtol=1e-12)
    # higher T: flatter (the top class loses mass, the entropy in the legend grows)
    assert heights[0, 0] > heights[1, 0] > heights[2, 0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    H = [float(-(p * p.log()).sum()) for p in (torch.softmax(Z / T, -1) for T in temps)]
    for T, h in zip(temps, H, strict=True):
        assert f"T = {T:g}  (H = {h:.2f} nats)" in labels
    plt.close(ax.figure)
    with pytest.raises(ValueError, match=r"temperatures must be positive"):
        plot_softened(Z, (1.0, 0.0))


def test_explorer_follows_the_slider() -> None:
    ex = DistillationExplorer(Z, student_logits=S, class_names=list("abcde"))
    assert isinstance(ex.widget, widgets.VBox)
    for T in (1.0, 4.0, 9.5):
        ex.slider.value = T  # the observer redraws
        p, q = torch.softmax(Z / T, -1), torch.softmax(S / T, -1)
        torch.testing.assert_close(ex.teacher_probs, p)
        torch.testing.assert_close(ex.student_probs, q)
        heights = np.array([b.get_height() for b in ex.figure.axes[0].patches])
        np.testing.assert_allclose(heights, np.concatenate([p.numpy(), q.numpy()]), rtol=1e-12)
        kl = F.kl_div(q.log(), p, reduction="sum").item()
        assert ex.kl == pytest.approx(kl, rel=1e-10)
        assert ex.entropy == pytest.approx(float(-(p * p.log()).sum()), rel=1e-12)
        assert f"{ex.entropy:.3f}" in ex.figure.axes[0].get_title()
        assert f"{kl:.4f}" in ex.figure.axes[0].get_title()
    assert ex.entropy > 0.9 * math.log(5)  # T = 9.5: nearly uniform
    alone = DistillationExplorer(Z)  # teacher only: K bars and no KL
    assert len(alone.figure.axes[0].patches) == len(Z) and alone.kl is None
    assert isinstance(distillation_explorer(Z, temperature=2.0), widgets.VBox)
    with pytest.raises(ValueError, match=r"student_logits must have the teacher's K = 5"):
        DistillationExplorer(Z, student_logits=S[:3])
    with pytest.raises(ValueError, match=r"temperature must lie in \[0.5, 10\]"):
        DistillationExplorer(Z, temperature=20.0)
    with pytest.raises(ValueError, match=r"class_names must have K = 5"):
        DistillationExplorer(Z, class_names=["a"])
