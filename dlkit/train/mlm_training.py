r"""Masked-language-model pretraining on a token stream with :class:`dlkit.train.Trainer`.

Each optimizer step draws ``batch_size`` random windows of ``context`` tokens
(:func:`dlkit.data.token_windows.random_window_loader`), corrupts them with
:func:`dlkit.data.masking.mask_tokens` (15% of the non-special positions selected; of those
80% ``[MASK]``, 10% a random token, 10% unchanged) and minimizes the MLM loss

.. math:: \mathcal L = -\frac{1}{|S|} \sum_{i \in S} \log p_\theta(x_i \mid \tilde x)_i

over the selected positions :math:`S` (:func:`dlkit.nn.bert.masked_lm_loss`), with AdamW
(weight decay on the weight matrices only, :func:`dlkit.optim.param_groups.weight_decay_groups`),
gradient clipping and :class:`dlkit.optim.schedules.WarmupCosine` stepped once per step.

**Reproducible masking.** Batch :math:`k` of an epoch is masked with its own
``torch.Generator`` seeded from ``derive_seed(b, k)``, where :math:`b` is drawn first from
the window sampler's generator, which the Trainer re-seeds every epoch from
``(seed, epoch)``: the same seed gives the same windows *and* the same masks, and a masked
batch does not depend on how many random numbers earlier batches used.

**Validation** scores a fixed set: the first ``eval_tokens`` validation tokens in
consecutive full windows of ``context`` tokens, masked once with a generator seeded from
``seed``, so every validation point (and every ``batch_size``) measures the same selected
positions. It reports the MLM loss and the **masked
accuracy** (share of selected positions whose arg-max is the original token), next to the
**most-frequent-token baseline**: always predict the most frequent non-special training
token (a special id is never selected, so predicting one could never be right).

On a CPU the run uses ``threads`` math threads (default 1) and restores the previous count
afterwards. (:func:`dlkit.train.lm_training.train_lm` is the causal-LM counterpart; MLM
needs its own loop body only because the batch must be corrupted before the forward pass
and scored on the selected positions.)
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dlkit.data.masking import IGNORE_INDEX, mask_tokens
from dlkit.data.token_windows import as_token_array, random_window_loader
from dlkit.nn.bert import masked_accuracy, masked_lm_loss
from dlkit.optim.param_groups import weight_decay_groups
from dlkit.optim.schedules import WarmupCosine
from dlkit.train.callbacks import Callback, Logs, LRSchedulerCallback
from dlkit.train.device import DeviceLike, get_device
from dlkit.train.live_plot import LivePlot
from dlkit.train.precision import autocast
from dlkit.train.seed import derive_seed
from dlkit.train.trainer import Trainer

__all__ = ["MLMRun", "MaskedWindows", "evaluate_mlm", "most_frequent_token", "train_mlm"]

_VAL_STREAM = 0x4D4C4D  # "MLM": the key of the validation masks' seed, derive_seed(seed, key)

Masker = Callable[..., tuple[Tensor, Tensor]]


class MaskedWindows:
    """``num_batches`` random windows of ``tokens`` per iteration, each batch masked:
    ``(inputs, labels)``, int64 ``(batch_size, context)``.

    The windows come from :func:`random_window_loader` (exposed as ``windows``; its
    ``generator`` is this object's ``generator``, which the Trainer re-seeds per epoch).
    ``mask`` is :func:`mask_tokens` with its keyword arguments bound (``functools.partial``);
    batch :math:`k` gets ``generator=torch.Generator().manual_seed(derive_seed(b, k))`` with
    :math:`b` the first draw of the epoch (see the module docstring).
    """

    def __init__(
        self,
        tokens: Any,
        context: int,
        batch_size: int,
        num_batches: int,
        *,
        mask: Masker,
        seed: int | None = None,
    ) -> None:
        self.windows = random_window_loader(tokens, context, batch_size, num_batches, seed=seed)
        self.generator = self.windows.generator
        self.mask = mask

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        base = int(torch.randint(0, 2**62, (), generator=self.generator))  # this epoch's b
        for k, (x, _) in enumerate(self.windows):  # x (B, T); the shifted y is not used
            g = torch.Generator().manual_seed(derive_seed(base, k))
            yield self.mask(x, generator=g)  # (B, T), (B, T)


def most_frequent_token(tokens: Any, vocab_size: int, special_ids: Iterable[int] = ()) -> int:
    """The most frequent id of ``tokens`` that is not in ``special_ids`` (ties: lowest id)."""
    array = np.asarray(tokens.cpu() if isinstance(tokens, Tensor) else tokens)
    counts = np.bincount(array.astype(np.int64, copy=False), minlength=vocab_size)  # (V,)
    counts = counts[:vocab_size].copy()
    counts[list(special_ids)] = -1
    return int(np.argmax(counts))


@dataclass
class MLMRun:
    """The result of :func:`train_mlm`.

    Attributes:
        history: one row per validation: ``step``, ``tokens`` (seen so far), ``lr``,
            ``train_loss`` and ``train_masked_acc`` (means over the steps since the previous
            row), ``val_loss``, ``val_masked_acc`` (``None`` without validation tokens).
        step_history: one row per optimizer step: ``step``, ``lr``, ``train_loss``.
        val_loss, val_masked_accuracy: the last validation's (``None`` without one).
        baseline_accuracy: the most-frequent-token baseline on the same selected
            validation positions; ``baseline_token`` is that token (from the training split).
        val_selected: how many validation positions are scored.
        tokens_per_second: training tokens per second of training time (validation excluded).
        wall_seconds, eval_seconds: the whole call, and the part spent validating.
    """

    history: list[dict[str, Any]]
    step_history: list[dict[str, Any]]
    val_loss: float | None
    val_masked_accuracy: float | None
    baseline_accuracy: float | None
    baseline_token: int
    val_selected: int
    tokens_per_second: float
    wall_seconds: float
    eval_seconds: float


class _MLMLog(Callback):
    """Per-step rows, and at each epoch end the exact MLM loss and accuracy on ``val``."""

    order = -10  # before other callbacks, so they see val_loss / val_masked_acc

    def __init__(self, val: list[tuple[Tensor, Tensor]] | None, tokens_per_step: int) -> None:
        self.val, self.tokens_per_step = val, tokens_per_step
        self.rows: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.eval_seconds = 0.0

    def on_batch_end(self, trainer: Trainer, logs: Logs) -> None:
        self.steps.append({"step": trainer.global_step, "lr": float(logs["lr"]),
                           "train_loss": float(logs["loss"])})  # fmt: skip

    def on_epoch_end(self, trainer: Trainer, logs: Logs) -> None:
        row: dict[str, Any] = {
            "step": trainer.global_step,
            "tokens": trainer.global_step * self.tokens_per_step,
            "lr": self.steps[-1]["lr"] if self.steps else None,
            "train_loss": float(logs["loss"]),
            "train_masked_acc": float(logs["masked_acc"]),
            "val_loss": None,
            "val_masked_acc": None,
        }
        if self.val is not None:
            start = time.perf_counter()
            row["val_loss"], row["val_masked_acc"] = evaluate_mlm(
                trainer.model, self.val, device=trainer.device, precision=trainer.precision
            )
            self.eval_seconds += time.perf_counter() - start
            for name in ("val_loss", "val_masked_acc"):
                logs[name] = row[name]
                trainer.history.setdefault(name, []).append(row[name])
        self.rows.append(row)


def evaluate_mlm(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    device: DeviceLike = "cpu",
    precision: str = "fp32",
) -> tuple[float, float]:
    """``(loss, masked accuracy)`` over all selected positions of ``(inputs, labels)``
    batches, each position weighted once (sums in float64, independent of the batching).
    Eval mode, no gradients; the model's mode is restored."""
    dev = torch.device(device)
    total, correct, count = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for inputs, labels in batches:
                inputs, labels = inputs.to(dev), labels.to(dev)
                n = int((labels != IGNORE_INDEX).sum())
                if n == 0:
                    continue  # nothing selected in this batch: it adds no term
                with autocast(dev, precision):
                    logits = model(inputs)  # (B, T, V)
                logits = logits.float()
                total += float(masked_lm_loss(logits, labels)) * n
                correct += round(masked_accuracy(logits, labels) * n)
                count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate_mlm: no selected position in any batch")
    return total / count, correct / count


def _validation_set(
    tokens: Any, context: int, batch_size: int, max_tokens: int | None, mask: Masker, seed: int
) -> list[tuple[Tensor, Tensor]]:
    """The first ``max_tokens`` (default all) tokens as consecutive full windows, masked in
    one call, so the selected positions do not depend on ``batch_size``; then batched."""
    array = np.asarray(tokens.cpu() if isinstance(tokens, Tensor) else tokens)
    n = len(array) if max_tokens is None else min(max_tokens, len(array))
    if n < context:
        raise ValueError(f"train_mlm: eval_tokens={max_tokens} is less than one window ({context})")
    windows = n // context  # a last partial window is left out
    x = torch.from_numpy(array[: windows * context].astype(np.int64))  # (windows * T,)
    g = torch.Generator().manual_seed(derive_seed(seed, _VAL_STREAM))
    inputs, labels = mask(x.reshape(windows, context), generator=g)  # (windows, T) each
    return list(zip(inputs.split(batch_size), labels.split(batch_size), strict=True))


def train_mlm(
    model: nn.Module,
    train_tokens: np.ndarray | Tensor,
    val_tokens: np.ndarray | Tensor | None = None,
    *,
    steps: int,
    batch_size: int,
    context: int,
    lr: float,
    warmup_steps: int,
    mask_id: int,
    special_ids: Iterable[int] = (),
    seed: int = 0,
    eval_every: int | None = None,
    eval_tokens: int | None = None,
    vocab_size: int | None = None,
    select_prob: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
    min_lr_ratio: float = 0.1,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    grad_clip: float | None = 1.0,
    precision: str = "fp32",
    threads: int | None = 1,
    progress: bool = True,
    live_plot: bool = False,
    device: DeviceLike = "auto",
) -> MLMRun:
    """Pretrain ``model`` (ids ``(B, T)`` → logits ``(B, T, V)``, e.g. a
    :class:`~dlkit.nn.bert.MaskedLMEncoder`) as a masked language model, in place.

    Args:
        train_tokens, val_tokens: 1-D token arrays (the corpus' ``uint16`` memmaps are
            fine); without ``val_tokens`` no validation runs.
        steps, batch_size, context: optimizer steps, windows per step, tokens per window.
        lr, warmup_steps, min_lr_ratio: peak rate, linear warm-up length, and the end of the
            cosine as a fraction of ``lr``.
        mask_id, special_ids, select_prob, mask_frac, random_frac: passed to
            :func:`mask_tokens` (``special_ids``: e.g. every id of the corpus'
            ``special_tokens``).
        seed: seeds every RNG at the start, the windows and the masks.
        eval_every: steps between validations (default ``steps``: one at the end); must
            divide ``steps``.
        eval_tokens: validate on the first ``eval_tokens`` validation tokens (default all).
        vocab_size: default ``model.vocab_size``.
        weight_decay, betas, grad_clip: AdamW's decay (matrices only) and betas (BERT's
            defaults), and the gradient-norm clip (``None``: none).
        precision: ``"fp32"``, ``"bf16"``, ... (see :mod:`dlkit.train.precision`).
        threads: torch math threads on a CPU for the run (``None``: leave as is).
        progress: tqdm bars.
        live_plot: the live plot of the loss and the masked accuracy, training and
            validation (:class:`~dlkit.train.live_plot.LivePlot`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    """
    eval_every = steps if eval_every is None else eval_every
    for name, value in (("steps", steps), ("eval_every", eval_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"train_mlm: {name} must be an integer >= 1, got {value!r}")
    if steps % eval_every:
        raise ValueError(
            f"train_mlm: steps={steps} must be a multiple of eval_every={eval_every} "
            "(each validation closes a Trainer epoch of eval_every steps)"
        )
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"train_mlm: lr must be a finite number > 0, got {lr!r}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"train_mlm: min_lr_ratio must lie in [0, 1], got {min_lr_ratio}")
    if vocab_size is None:
        vocab_size = getattr(model, "vocab_size", None)
        if vocab_size is None:
            raise ValueError("train_mlm: pass vocab_size= (the model has no vocab_size)")
    max_len = getattr(getattr(model, "config", None), "max_len", None)
    if max_len is not None and context > max_len:
        raise ValueError(f"train_mlm: context={context} exceeds the model's max_len={max_len}")
    as_token_array(train_tokens, context, name="train_mlm: train_tokens")
    if val_tokens is not None:
        as_token_array(val_tokens, context, name="train_mlm: val_tokens")
    special = sorted({int(i) for i in special_ids} | {int(mask_id)})
    mask = functools.partial(
        mask_tokens, mask_id=mask_id, vocab_size=vocab_size, special_ids=special,
        select_prob=select_prob, mask_frac=mask_frac, random_frac=random_frac,
    )  # fmt: skip
    mask(torch.zeros((1, 1), dtype=torch.long))  # check the arguments now, not at step 1
    dev = get_device(device)
    threads_before = torch.get_num_threads()
    if dev.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        model.to(dev)
        optimizer = torch.optim.AdamW(weight_decay_groups(model, weight_decay), lr=lr, betas=betas)
        schedule = WarmupCosine(optimizer, warmup_steps, steps, min_lr=lr * min_lr_ratio)
        loader = MaskedWindows(train_tokens, context, batch_size, eval_every, mask=mask, seed=seed)
        val = baseline = None
        if val_tokens is not None:  # one fixed masked set: every validation scores it
            val = _validation_set(val_tokens, context, batch_size, eval_tokens, mask, seed)
        log = _MLMLog(val, batch_size * context)
        callbacks: list[Callback] = [LRSchedulerCallback(schedule, interval="step"), log]
        if live_plot:
            callbacks.append(LivePlot(("loss", "val_loss", "masked_acc", "val_masked_acc")))
        trainer = Trainer(
            model, optimizer, masked_lm_loss, device=dev,
            metrics={"masked_acc": masked_accuracy}, callbacks=callbacks,
            precision=precision, max_grad_norm=grad_clip, progress=progress, seed=seed,
        )  # fmt: skip
        trainer.fit(loader, epochs=steps // eval_every)
        token = most_frequent_token(train_tokens, vocab_size, special)
        n_val = 0
        if val is not None:
            labels = torch.cat([lab.flatten() for _, lab in val])  # (all val positions,)
            chosen = labels[labels != IGNORE_INDEX]  # (n_val,)
            n_val = int(chosen.numel())
            baseline = float((chosen == token).double().mean())
        wall = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads_before)
    last = log.rows[-1]
    return MLMRun(
        history=[dict(r) for r in log.rows],
        step_history=[dict(r) for r in log.steps],
        val_loss=last["val_loss"],
        val_masked_accuracy=last["val_masked_acc"],
        baseline_accuracy=baseline,
        baseline_token=token,
        val_selected=n_val,
        tokens_per_second=steps * batch_size * context / max(wall - log.eval_seconds, 1e-9),
        wall_seconds=wall,
        eval_seconds=log.eval_seconds,
    )
