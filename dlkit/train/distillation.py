r"""Distillation on the digits: a small student with 100 labels learns from a large teacher.

The experiment of the fine-tuning chapter (Hinton, Vinyals and Dean, 2015, on a
scale a CPU runs in seconds):

1. :func:`train_teacher`: a convolutional network (:class:`Teacher`, ~0.3 M parameters,
   built from ``torch.nn.Conv2d`` / ``nn.Linear`` so that
   ``torch.ao.quantization.quantize_dynamic`` applies to its linear layers) trained on
   *all* training labels of :func:`dlkit.data.digits.load_digits` (1,257 images).
2. A small student, the MLP 64-32-10 of :func:`make_student` (2.4 k parameters), sees
   only ``labels`` labelled training images (the same number of each class where
   ``labels`` is a multiple of 10). **Alone** it trains on the cross-entropy of those
   images; **distilled** it trains on

   .. math:: (1 - \alpha)\, \mathrm{CE}(s, y) + \alpha\, T^2\, \mathrm{KL}(p_T \,\|\, q_T)

   (:func:`dlkit.nn.distillation.distillation_loss`), the CE over the labelled images
   and the KL over *every* training image: the other 1,157 are an unlabelled transfer
   set that the teacher labels with its soft targets.

Both students get the same initialisation, optimiser (Adam, full batch: the data fit
in one batch) and number of steps, so the difference is the teacher's doing. The
teacher's logits are computed once (it is frozen). Each seed draws its own labelled
subset and student initialisation; the teacher is trained once (``teacher_seed``).
Everything runs on one CPU thread (:func:`~dlkit.train.device.one_thread`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from dlkit.data.digits import load_digits
from dlkit.data.masking import IGNORE_INDEX
from dlkit.data.splits import ArraySplits
from dlkit.nn.distillation import distillation_loss
from dlkit.train.device import one_thread

__all__ = [
    "Teacher",
    "accuracy",
    "distillation_experiment",
    "format_distillation",
    "labelled_subset",
    "make_student",
    "train_student",
    "train_teacher",
]

NUM_CLASSES = 10


class Teacher(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and an MLP head: ``(B, 1, 8, 8) -> (B, 10)``.

    ``hidden`` (256) sets the width of the first linear layer, ``(64·4·4) x hidden``:
    most of the parameters sit in ``nn.Linear`` layers, so int8 dynamic quantization of
    those layers shrinks the saved model about four-fold.
    """

    def __init__(self, *, channels: int = 64, hidden: int = 256, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels // 2, 3, padding=1),  # (B, c/2, 8, 8)
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 3, padding=1),  # (B, c, 8, 8)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, c, 4, 4)
            nn.Flatten(),  # (B, 16c)
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(16 * channels, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(f"Teacher expects images (B, 1, 8, 8), got {tuple(x.shape)}")
        return self.head(self.features(x))  # (B, 10)


def make_student(*, hidden: int = 32) -> nn.Module:
    """The student: an MLP 64-``hidden``-10 on flattened images ``(B, 1, 8, 8) -> (B, 10)``."""
    return nn.Sequential(
        nn.Flatten(),  # (B, 64)
        nn.Linear(64, hidden),
        nn.ReLU(),
        nn.Linear(hidden, NUM_CLASSES),
    )


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512) -> float:
    """Fraction of ``x`` ``(N, ...)`` that ``model`` (in eval mode, restored) classifies as ``y``."""
    was_training = model.training
    model.eval()
    try:
        correct = sum(
            int((model(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum())
            for i in range(0, len(x), batch_size)
        )
    finally:
        model.train(was_training)
    return correct / len(x)


def _tensors(data: ArraySplits) -> dict[str, Tensor]:
    return {name: torch.from_numpy(getattr(data, name)) for name in
            ("x_train", "y_train", "x_test", "y_test")}  # fmt: skip


def labelled_subset(y: Tensor, labels: int, *, seed: int) -> Tensor:
    """Indices ``(labels,)`` of a class-balanced random subset of ``y`` ``(N,)``.

    ``labels // K`` of each of the ``K`` classes, the remainder drawn from the rest; an
    int64 tensor, sorted. Deterministic for a seed.
    """
    N = len(y)
    if not isinstance(labels, int) or not NUM_CLASSES <= labels <= N:
        raise ValueError(f"labels must be an int in [{NUM_CLASSES}, {N}], got {labels!r}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(N, generator=g)  # (N,)
    per_class = labels // NUM_CLASSES
    chosen = torch.cat([order[y[order] == k][:per_class] for k in range(NUM_CLASSES)])
    if len(chosen) < per_class * NUM_CLASSES:
        raise ValueError(f"some class has fewer than {per_class} examples")
    rest = order[~torch.isin(order, chosen)][: labels - len(chosen)]
    return torch.sort(torch.cat([chosen, rest])).values


def train_teacher(
    seed: int = 0,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    data: ArraySplits | None = None,
    progress: bool = False,
) -> tuple[Teacher, float]:
    """Train :class:`Teacher` on every training label; returns ``(model in eval mode, test accuracy)``.

    AdamW (weight decay 1e-4), minibatches of ``batch_size`` shuffled by a generator
    seeded with ``seed``, cosine learning-rate decay over ``epochs`` epochs.
    """
    data = load_digits(seed=0, images=True) if data is None else data
    d = _tensors(data)
    with one_thread():
        torch.manual_seed(seed)
        model = Teacher()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        N = len(d["x_train"])
        steps = epochs * math.ceil(N / batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for _ in tqdm(range(epochs), desc="teacher", disable=not progress, leave=False):
            for idx in torch.randperm(N, generator=g).split(batch_size):
                loss = F.cross_entropy(model(d["x_train"][idx]), d["y_train"][idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        return model, accuracy(model, d["x_test"], d["y_test"])


def train_student(
    x: Tensor,
    targets: Tensor,
    *,
    teacher_logits: Tensor | None = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> nn.Module:
    """Train :func:`make_student` full-batch with Adam for ``steps`` steps.

    ``x`` ``(N, 1, 8, 8)``, ``targets`` ``(N,)`` int64 with ``IGNORE_INDEX`` on unlabelled
    rows. Without ``teacher_logits``: cross-entropy on the labelled rows only (the
    student alone; unlabelled rows are unused). With ``teacher_logits`` ``(N, 10)``:
    :func:`~dlkit.nn.distillation.distillation_loss` over all rows. The initialisation
    depends on ``seed`` only, so both variants start from the same weights.
    """
    if teacher_logits is not None and teacher_logits.shape != (len(x), NUM_CLASSES):
        raise ValueError(
            f"teacher_logits must be (N, {NUM_CLASSES}) = ({len(x)}, {NUM_CLASSES}), "
            f"got {tuple(teacher_logits.shape)}"
        )
    labelled = targets != IGNORE_INDEX
    if not bool(labelled.any()) and teacher_logits is None:
        raise ValueError("the student alone needs at least one labelled row")
    with one_thread():
        torch.manual_seed(seed)
        student = make_student()
        opt = torch.optim.Adam(student.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            if teacher_logits is None:
                loss = F.cross_entropy(student(x[labelled]), targets[labelled])
            else:
                loss = distillation_loss(student(x), teacher_logits, targets,
                                         temperature=temperature, alpha=alpha)  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
    return student.eval()


def _summary(accuracies: Sequence[float]) -> dict[str, float | list[float]]:
    a = np.asarray(accuracies, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "accuracies": [float(v) for v in a]}  # fmt: skip


def distillation_experiment(
    *,
    labels: int = 100,
    temperatures: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
    alpha: float = 0.9,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 300,
    teacher_epochs: int = 30,
    teacher_seed: int = 0,
    teacher: nn.Module | None = None,
    progress: bool = False,
) -> dict:
    """Teacher accuracy, the student alone and the student distilled at each temperature.

    Args:
        labels: labelled training images the student sees.
        temperatures: the :math:`T` values of the sweep.
        alpha: weight of the soft term (see :func:`~dlkit.nn.distillation.distillation_loss`).
        seeds: one labelled subset and one student initialisation per seed.
        steps: full-batch Adam steps for every student.
        teacher_epochs, teacher_seed: for :func:`train_teacher` (unless ``teacher`` is given,
            a trained model ``(B, 1, 8, 8) -> (B, 10)``).

    Returns a dict: ``teacher_accuracy``, ``alone`` and ``distilled[T]`` (each
    ``{"mean", "std", "accuracies"}``, test accuracies in [0, 1], ``std`` over seeds with
    ``ddof=1``), ``teacher_parameters``, ``student_parameters``, the settings, and
    ``seconds`` (wall time, teacher included).
    """
    if any(not (isinstance(T, int | float) and T > 0) for T in temperatures):
        raise ValueError(f"temperatures must be positive numbers, got {list(temperatures)}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    start = time.perf_counter()
    data = load_digits(seed=0, images=True)
    d = _tensors(data)
    if teacher is None:
        teacher, _ = train_teacher(teacher_seed, epochs=teacher_epochs, data=data,
                                   progress=progress)  # fmt: skip
    teacher.eval()
    teacher_accuracy = accuracy(teacher, d["x_test"], d["y_test"])
    with torch.no_grad(), one_thread():
        teacher_logits = teacher(d["x_train"])  # (N, 10), computed once
    alone, distilled = [], {float(T): [] for T in temperatures}
    runs = [(seed, T) for seed in seeds for T in [None, *distilled]]
    for seed, T in tqdm(runs, desc="students", disable=not progress, leave=False):
        idx = labelled_subset(d["y_train"], labels, seed=seed)
        targets = torch.full_like(d["y_train"], IGNORE_INDEX)
        targets[idx] = d["y_train"][idx]  # (N,) labels on `labels` rows only
        student = train_student(
            d["x_train"], targets, teacher_logits=None if T is None else teacher_logits,
            temperature=T or 1.0, alpha=alpha, steps=steps, seed=seed,
        )  # fmt: skip
        acc = accuracy(student, d["x_test"], d["y_test"])
        (alone if T is None else distilled[T]).append(acc)
    return {
        "teacher_accuracy": teacher_accuracy,
        "alone": _summary(alone),
        "distilled": {T: _summary(a) for T, a in distilled.items()},
        "labels": labels,
        "alpha": alpha,
        "seeds": list(seeds),
        "steps": steps,
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "student_parameters": sum(p.numel() for p in make_student().parameters()),
        "seconds": time.perf_counter() - start,
    }


def format_distillation(result: dict) -> str:
    """The result of :func:`distillation_experiment` as a small Markdown table (accuracy in %)."""
    n = len(result["seeds"])
    lines = [
        f"teacher ({result['teacher_parameters']:,} parameters, all labels): "
        f"{100 * result['teacher_accuracy']:.1f}%",
        f"student ({result['student_parameters']:,} parameters), {result['labels']} labels, "
        f"alpha = {result['alpha']:g}, mean ± std over {n} seeds:",
        "",
        "| student | test accuracy |",
        "|---|---|",
        f"| alone | {100 * result['alone']['mean']:.1f} ± {100 * result['alone']['std']:.1f} |",
    ]
    for T, s in result["distilled"].items():
        lines.append(f"| distilled, T = {T:g} | {100 * s['mean']:.1f} ± {100 * s['std']:.1f} |")
    return "\n".join(lines)
