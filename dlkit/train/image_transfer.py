r"""Transfer learning on the digits: features learned on 0-4 help to tell 5-9 apart from few labels.

The fine-tuning chapter's image experiment, small enough for one CPU thread:

1. **Pretrain** (:func:`pretrain_source`) a small CNN (:class:`DigitCNN`) on the *source*
   task: every training image of the digits 0-4 (:func:`dlkit.data.digits.load_digits`,
   about 630 images), 5 classes.
2. **Transfer** to the *target* task, the digits 5-9, with only :math:`k` labelled training
   images per class (:math:`k \in \{1, 5, 10, \text{all}\}`, ``"all"`` about 125), scored on
   the test images of 5-9. Three ways to use the :math:`5k` labels:

   ============  ===========================================================================
   ``scratch``   the same CNN, **random** initialization, every parameter trained
   ``probe``     the pretrained convolutions **frozen**; a new linear head fitted on their
                 features :math:`\phi(x) \in \mathbb R^{32c}` (multinomial logistic
                 regression, :func:`~dlkit.train.linear_probe.fit_linear_probe`)
   ``finetune``  every parameter trained, the convolutions starting from the pretrained ones,
                 a new head, and lower learning rates further down (:func:`~dlkit.optim.param_groups.discriminative_lr_groups`,
                 :math:`\eta_\ell = \eta\,\gamma^{L-\ell}`)
   ============  ===========================================================================

Every trained method minimizes the cross-entropy of the :math:`5k` labelled images with AdamW
for :meth:`TransferRecipe.steps` steps (``epochs`` passes, at least ``min_steps``; batches of
``batch_size``, the whole set when it is smaller). ``scratch`` and ``finetune`` take the same
number of steps, so the difference is the starting point. Each seed pretrains its own source
model and draws its own nested label subsets (:func:`~dlkit.data.docstring_areas.labels_per_class_subset`:
the 1 image of a class is among its 5, its 5 among its 10).

What transfers is the convolutional trunk, not the source head: the pretrained hidden layer
of the head was fitted to separate 0-4, and (measured on the val split while building this
experiment, with ``channels=16, hidden=64``) a probe on its 64 features was 14-28 points worse
on 5-9 at 1-10 labels per class than a probe on the 512 convolutional features below it
(Yosinski et al. 2014: the top layers are the task-specific ones). So every method
gets a **new** head; ``finetune`` and ``scratch`` share its architecture, the probe's is linear.

Why transfer works here: the strokes, loops and corners that separate 0-4 (edges, curvature,
where the ink sits) are also what separates 5-9; only the final grouping into classes is new.
With 1-10 labels per class a network trained from scratch must learn those features from
5-50 images; the transferred one only has to learn the grouping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from dlkit.data.digits import load_digits
from dlkit.data.docstring_areas import labels_per_class_subset
from dlkit.data.splits import ArraySplits
from dlkit.nn.freezing import count_parameters, freeze
from dlkit.optim.param_groups import discriminative_lr_groups
from dlkit.train.device import one_thread
from dlkit.train.linear_probe import extract_features, fit_linear_probe

__all__ = [
    "METHODS",
    "QUICK_RECIPE",
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "DigitCNN",
    "TransferRecipe",
    "digit_transfer",
    "format_transfer",
    "pretrain_source",
    "summarize",
    "transfer_split",
]

METHODS = ("scratch", "probe", "finetune")
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


class DigitCNN(nn.Module):
    """Two 3x3 convolutions and a 2x2 max-pool (the features), then a linear head.

    ``(B, 1, 8, 8) -> conv, ReLU -> (B, c, 8, 8) -> conv, ReLU, pool -> (B, 2c, 4, 4)
    -> (B, 32c) = features -> head -> (B, K)``; the head is ``Linear(32c, K)`` or, with
    ``hidden``, ``Linear(32c, hidden), ReLU, Linear(hidden, K)``. No batch norm: a
    fine-tuning batch may hold 5 images. ``features`` is what transfers and what the probe
    reads; ``head`` is replaced for the new task (:meth:`new_head`).
    """

    def __init__(self, num_classes: int, *, channels: int = 32, hidden: int | None = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)  # (B, c, 8, 8)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)  # (B, 2c, 8, 8)
        self.feature_dim = 2 * channels * 16  # 2c channels x 4 x 4 after the pool
        self.hidden = hidden
        self.head = self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        if self.hidden is None:
            return nn.Linear(self.feature_dim, num_classes)  # (B, 32c) -> (B, K)
        return nn.Sequential(
            nn.Linear(self.feature_dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, num_classes)
        )  # (B, 32c) -> (B, hidden) -> (B, K)

    def features(self, x: Tensor) -> Tensor:
        """``(B, 1, 8, 8)`` images -> ``(B, 32c)`` features."""
        if x.dim() != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(f"DigitCNN expects images (B, 1, 8, 8), got {tuple(x.shape)}")
        h = F.relu(self.conv1(x))  # (B, c, 8, 8)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 2c, 4, 4)
        return h.flatten(1)  # (B, 32c)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, K)``."""
        return self.head(self.features(x))

    def new_head(self, num_classes: int) -> None:
        """Replace the head by a fresh one of the same shape for ``num_classes`` (torch's init)."""
        self.head = self._make_head(num_classes)

    def layer_prefixes(self) -> list[str]:
        """Parameter-name prefixes bottom -> top, for layer-wise learning rates."""
        return ["conv1", "conv2", "head"]


@dataclass(frozen=True)
class TransferRecipe:
    """Training choices of :func:`digit_transfer` (the defaults are the full experiment).

    ``pretrain_*``: the source CNN (AdamW, minibatches, cosine decay). ``lr`` is the rate of
    ``scratch`` and of ``finetune``'s new head; ``finetune`` gives layer :math:`\\ell` of
    the :math:`L = 3` (conv1, conv2, head) :math:`\\eta\\,\\gamma^{L-1-\\ell}` with
    :math:`\\gamma` = ``layer_decay``. ``probe_decay`` is the probe's :math:`\\lambda`.
    ``channels`` (:math:`c`) and ``hidden`` size the CNN (chosen on the val split: a wider
    network with a hidden layer, 151 k parameters, is where scratch suffers most from few
    labels).
    """

    pretrain_epochs: int = 30
    pretrain_lr: float = 2e-3
    epochs: int = 30
    min_steps: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    layer_decay: float = 0.5
    weight_decay: float = 1e-4
    probe_decay: float = 1e-2
    probe_steps: int = 200
    channels: int = 32
    hidden: int | None = 128

    def steps(self, n: int) -> int:
        """Optimizer steps for ``n`` training images: ``epochs`` passes, at least ``min_steps``."""
        return max(self.min_steps, self.epochs * math.ceil(n / self.batch_size))


QUICK_RECIPE = TransferRecipe(
    pretrain_epochs=5, epochs=5, min_steps=30, probe_steps=50, channels=8, hidden=None
)


def transfer_split(data: ArraySplits, classes: Sequence[int], split: str) -> tuple[Tensor, Tensor]:
    """Images ``(N, 1, 8, 8)`` and labels ``(N,)`` of ``split`` restricted to ``classes``,
    relabelled ``0 .. len(classes) - 1`` in the order given."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if x.ndim != 4:
        raise ValueError(
            f"transfer_split needs images (N, 1, 8, 8), got {x.shape}: load_digits(images=True)"
        )
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    labels = np.array([relabel[int(c)] for c in y[keep]], dtype=np.int64)
    return torch.as_tensor(x[keep]), torch.as_tensor(labels)


def _train(
    model: nn.Module, x: Tensor, y: Tensor, groups: list[dict[str, Any]], *, lr: float,
    steps: int, batch_size: int, weight_decay: float, seed: int, cosine: bool = True,
) -> None:  # fmt: skip
    """AdamW on shuffled minibatches of ``(x, y)`` for ``steps`` steps (cosine decay)."""
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cosine else None
    g = torch.Generator().manual_seed(seed)
    N = len(x)
    model.train()
    step = 0
    while step < steps:
        for idx in torch.randperm(N, generator=g).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            if step == steps:
                break
    model.eval()


def pretrain_source(
    *, seed: int, data: ArraySplits | None = None, recipe: TransferRecipe = TransferRecipe()
) -> tuple[DigitCNN, float]:
    """A :class:`DigitCNN` trained on every training image of :data:`SOURCE_CLASSES`; returns
    ``(model in eval mode, source test accuracy)``."""
    data = load_digits(seed=0, images=True) if data is None else data
    x, y = transfer_split(data, SOURCE_CLASSES, "train")
    xt, yt = transfer_split(data, SOURCE_CLASSES, "test")
    with one_thread():
        torch.manual_seed(seed)
        model = DigitCNN(len(SOURCE_CLASSES), channels=recipe.channels, hidden=recipe.hidden)
        steps = recipe.pretrain_epochs * math.ceil(len(x) / 64)
        _train(model, x, y, [{"params": list(model.parameters())}], lr=recipe.pretrain_lr,
               steps=steps, batch_size=64, weight_decay=recipe.weight_decay, seed=seed)  # fmt: skip
        with torch.no_grad():
            acc = float((model(xt).argmax(1) == yt).float().mean())
    return model, acc


def _transfer_one(
    method: str, source: DigitCNN, x: Tensor, y: Tensor, xt: Tensor, yt: Tensor,
    recipe: TransferRecipe, seed: int,
) -> tuple[float, int]:  # fmt: skip
    """Accuracy on ``(xt, yt)`` and trainable parameter count of one method."""
    K = len(TARGET_CLASSES)
    torch.manual_seed(seed + 1000)  # the new head's (and scratch's) initialization
    if method == "scratch":
        model = DigitCNN(K, channels=recipe.channels, hidden=recipe.hidden)
    else:
        model = DigitCNN(len(SOURCE_CLASSES), channels=recipe.channels, hidden=recipe.hidden)
        model.load_state_dict(source.state_dict())
        model.new_head(K)
    if method == "probe":
        freeze(model, "conv*")
        phi = extract_features(model, x)  # (N, 32c)
        model.head = fit_linear_probe(phi, y, K, weight_decay=recipe.probe_decay,
                                      steps=recipe.probe_steps, seed=seed)  # fmt: skip
    else:
        if method == "scratch":
            groups = [{"params": list(model.parameters())}]
        else:
            groups = discriminative_lr_groups(
                model, model.layer_prefixes(), base_lr=recipe.lr, decay=recipe.layer_decay
            )
        _train(model, x, y, groups, lr=recipe.lr, steps=recipe.steps(len(x)),
               batch_size=recipe.batch_size, weight_decay=recipe.weight_decay, seed=seed)  # fmt: skip
    with torch.no_grad():
        acc = float((model.eval()(xt).argmax(1) == yt).float().mean())
    return acc, count_parameters(model).trainable


def digit_transfer(
    *,
    labels_per_class: Sequence[int | str] = (1, 5, 10, "all"),
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] = METHODS,
    recipe: TransferRecipe = TransferRecipe(),
    data: ArraySplits | None = None,
    evaluate_on: str = "test",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every ``method`` x ``labels_per_class`` x ``seed`` on digits 5-9 (module docstring).

    Returns rows ``{method, labels_per_class, seed, accuracy, trainable, seconds}``
    (``accuracy`` in [0, 1] on the ``evaluate_on`` images of 5-9, ``"test"`` or ``"val"``
    (to choose a recipe without looking at the test set); ``trainable``: parameters the method
    trained; ``seconds``: its own time, without the shared pretraining), ordered by seed,
    then ``labels_per_class``, then method. Runs on one CPU thread.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: expected some of {METHODS}")
    if not seeds or not labels_per_class:
        raise ValueError("digit_transfer needs at least one seed and one labels_per_class")
    data = load_digits(seed=0, images=True) if data is None else data
    x_pool, y_pool = transfer_split(data, TARGET_CLASSES, "train")
    if evaluate_on not in ("test", "val"):
        raise ValueError(f"evaluate_on must be 'test' or 'val', got {evaluate_on!r}")
    xt, yt = transfer_split(data, TARGET_CLASSES, evaluate_on)
    rows = []
    runs = [(s, k, m) for s in seeds for k in labels_per_class for m in methods]
    bar = tqdm(total=len(runs), desc="transfer", disable=not progress)
    for seed in seeds:
        source = None
        if any(m != "scratch" for m in methods):
            source, _ = pretrain_source(seed=seed, data=data, recipe=recipe)
        for k in labels_per_class:
            idx = torch.as_tensor(labels_per_class_subset(y_pool.numpy(), k, seed=seed))
            for method in methods:
                start = time.perf_counter()
                with one_thread():
                    acc, trainable = _transfer_one(
                        method, source, x_pool[idx], y_pool[idx], xt, yt, recipe, seed
                    )
                rows.append({
                    "method": method, "labels_per_class": k, "seed": seed, "accuracy": acc,
                    "trainable": trainable, "seconds": time.perf_counter() - start,
                })  # fmt: skip
                bar.update()
    bar.close()
    return rows


def summarize(rows: Sequence[dict[str, Any]], *, baseline: str = "scratch") -> list[dict[str, Any]]:
    """Mean and standard deviation (``ddof=1``; 0 for one seed) over seeds of each
    ``(method, labels_per_class)``: rows ``{method, labels_per_class, mean, std, seeds,
    trainable, seconds, gain}`` in first-seen order; ``seconds`` is the mean per run.

    ``gain`` is the **paired** difference to ``baseline`` (same seed, so the same labelled
    images): :math:`\\frac1S\\sum_s (a_{m,s} - a_{\\text{base},s})`, ``None`` for the baseline
    itself and where it did not run. The spread over seeds is mostly *which* images were labelled, which
    both methods share, so the paired gain is the steadier comparison.
    """
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["labels_per_class"]), []).append(r)
    acc = {(r["method"], r["labels_per_class"], r["seed"]): r["accuracy"] for r in rows}
    out = []
    for (method, k), rs in groups.items():
        a = np.array([r["accuracy"] for r in rs], dtype=np.float64)
        base = [acc.get((baseline, k, r["seed"])) for r in rs]
        gain = None
        if method != baseline and all(b is not None for b in base):
            gain = float(np.mean([r["accuracy"] - b for r, b in zip(rs, base, strict=True)]))
        out.append({
            "method": method, "labels_per_class": k, "mean": float(a.mean()),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "seeds": len(a),
            "trainable": rs[0]["trainable"], "seconds": float(np.mean([r["seconds"] for r in rs])),
            "gain": gain,
        })  # fmt: skip
    return out


def format_transfer(summary: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per method, one column per label budget, ``mean ± std`` in %
    and, where :func:`summarize` found the baseline, the paired gain in brackets."""
    budgets = list(dict.fromkeys(r["labels_per_class"] for r in summary))
    methods = list(dict.fromkeys(r["method"] for r in summary))
    cell = {(r["method"], r["labels_per_class"]): r for r in summary}
    head = "| method | trainable | " + " | ".join(f"k = {k}" for k in budgets) + " |"
    lines = [head, "|" + "---|" * (len(budgets) + 2)]
    for m in methods:
        first = next(r for r in summary if r["method"] == m)
        vals = [_cell(cell[m, k]) if (m, k) in cell else "" for k in budgets]
        lines.append(f"| {m} | {first['trainable']:,} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _cell(r: dict[str, Any]) -> str:
    text = f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}"
    if r.get("gain") is not None:
        text += f" ({100 * r['gain']:+.1f})"
    return text
