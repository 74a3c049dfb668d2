"""The learning-rate range test (Smith, 2015): sweep the learning rate, watch the loss.

Train for :math:`n` steps while the learning rate grows geometrically from
:math:`\\eta_{\\min}` to :math:`\\eta_{\\max}`,

.. math::

    \\eta_k = \\eta_{\\min} \\left(\\frac{\\eta_{\\max}}{\\eta_{\\min}}\\right)^{k/(n-1)},
    \\qquad k = 0, \\dots, n - 1,

recording each step's mini-batch loss :math:`L_k`. The raw losses are noisy, so they are
smoothed by a bias-corrected exponential moving average (the same correction as Adam's):

.. math::

    a_k = \\beta a_{k-1} + (1 - \\beta) L_k,\\quad a_{-1} = 0, \\qquad
    \\hat L_k = \\frac{a_k}{1 - \\beta^{k+1}} .

The loss first barely moves (the rate is too small), then falls, then blows up (too
large). The run stops early once :math:`\\hat L_k > d \\cdot \\min_{j \\le k} \\hat L_j`
(``diverge_factor`` :math:`d`) or a loss is not finite. :func:`suggest_lr` proposes the
rate where :math:`\\hat L` falls fastest per unit of :math:`\\log \\eta` (measured over a
decade, before the minimum of :math:`\\hat L`). The model and optimizer are restored
afterwards, so the test costs time but changes nothing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from torch import nn
from tqdm.auto import tqdm

from dlkit.train.batches import move_to
from dlkit.train.device import DeviceLike, get_device
from dlkit.train.guards import split_batch

__all__ = ["LRFinderResult", "lr_range_test", "smooth_losses", "suggest_lr"]


@dataclass(frozen=True)
class LRFinderResult:
    """What the range test measured: ``lrs``, ``losses``, ``smoothed`` (each ``(K,)``)."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float

    def plot(self, ax: Axes | None = None) -> Axes:
        """Raw and smoothed loss against the learning rate (log axis), suggestion marked."""
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(7, 3.5))
        ax.semilogx(self.lrs, self.losses, color="0.7", label="mini-batch loss")
        ax.semilogx(self.lrs, self.smoothed, color="tab:blue", label="smoothed")
        ax.axvline(self.suggestion, color="tab:red", linestyle="--",
                   label=f"suggested lr = {self.suggestion:.2g}")  # fmt: skip
        finite = self.smoothed[np.isfinite(self.smoothed)]
        raw = self.losses[np.isfinite(self.losses)]
        if finite.size:  # from below the lowest loss to a little above the starting one
            low, first = min(finite.min(), raw.min()), finite[0]
            ax.set_ylim(low - 0.1 * abs(first - low), first + 0.5 * abs(first - low) + 1e-12)
        ax.set(xlabel="learning rate", ylabel="loss", title="learning-rate range test")
        ax.legend()
        return ax


def _passes(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches of ``loader``, pass after pass, without keeping any of them.

    ``itertools.cycle`` would store every batch of the first pass to replay it; this
    starts a fresh iteration of ``loader`` whenever one ends instead.

    Raises:
        ValueError: if a pass over ``loader`` yields no batch.
    """
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("loader yielded no batches; the LR range test needs at least one")


def smooth_losses(losses: Iterable[float], beta: float = 0.9) -> np.ndarray:
    """Bias-corrected EMA :math:`\\hat L_k = a_k / (1 - \\beta^{k+1})`; shape ``(K,)``."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    average, out = 0.0, []
    for k, loss in enumerate(losses):
        average = beta * average + (1 - beta) * float(loss)
        out.append(average / (1 - beta ** (k + 1)))
    return np.array(out)


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray, *, span: float = 1.0) -> float:
    """The rate where ``smoothed`` falls fastest per unit of :math:`\\log_{10}\\eta`.

    Slopes are differences across a window ``span`` decades wide centred on each rate
    (neighbouring points differ mostly by mini-batch noise), searched before the
    minimum of ``smoothed``. Falls back to a tenth of the rate at the minimum when the
    range holds no full window before it (a range that starts too high).
    """
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if lrs.shape != smoothed.shape or lrs.ndim != 1 or lrs.size < 2:
        raise ValueError(
            f"lrs and smoothed must be 1-D of equal length >= 2, got shapes {lrs.shape} "
            f"and {smoothed.shape}"
        )
    if np.any(lrs <= 0) or np.any(np.diff(lrs) <= 0):
        raise ValueError("lrs must be positive and increasing")
    log_lrs = np.log10(lrs)
    lowest = int(np.argmin(np.where(np.isfinite(smoothed), smoothed, np.inf)))
    half = max(1, round(span / 2 / np.mean(np.diff(log_lrs))))  # points per half window
    centres = np.arange(half, lowest - half + 1)
    if centres.size == 0:
        return float(lrs[lowest] / 10)
    slope = (smoothed[centres + half] - smoothed[centres - half]) / (
        log_lrs[centres + half] - log_lrs[centres - half]
    )  # dL̂ / d log10 η, one per centre
    return float(lrs[centres[int(np.argmin(slope))]])


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    loader: Iterable[Any],
    *,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_steps: int = 100,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
    device: DeviceLike = "auto",
    restore: bool = True,
    progress: bool = True,
) -> LRFinderResult:
    """Run the range test (see the module docstring) and return what it measured.

    ``loader`` yields ``(inputs, targets)`` batches as for the
    :class:`~dlkit.train.Trainer`; if it runs out before ``num_steps`` it is iterated
    again (a new pass, reshuffled if the loader shuffles; no batch is kept). Every
    parameter group gets the same rate :math:`\\eta_k`. With ``restore`` (the default)
    the model's and optimizer's states are put back afterwards.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor}")
    device = get_device(device)
    model.to(device)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))
    used, losses, average, best = [], [], 0.0, math.inf
    was_training = model.training
    model.train()
    try:
        batches = _passes(loader)
        for k in tqdm(range(num_steps), desc="LR range test", disable=not progress):
            for group in optimizer.param_groups:
                group["lr"] = float(lrs[k])
            where = partial(str, f"LR range test step {k + 1}/{num_steps}")
            inputs, targets = split_batch(move_to(next(batches), device), where)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            value = loss.item()
            used.append(float(lrs[k]))
            losses.append(value)
            if not math.isfinite(value):
                break
            average = beta * average + (1 - beta) * value
            smoothed = average / (1 - beta ** (k + 1))
            best = min(best, smoothed)
            if smoothed > diverge_factor * best:
                break
            loss.backward()
            optimizer.step()
    finally:
        if restore:
            model.load_state_dict(saved_model)
            optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)
    if len(losses) < 2:
        raise FloatingPointError(
            f"the loss was {losses[0] if losses else 'never computed'} at the first step "
            f"(lr = {start_lr:g}); check the model and data before searching a learning rate"
        )
    lr_array, loss_array = np.array(used), np.array(losses)
    smoothed_array = smooth_losses(np.where(np.isfinite(loss_array), loss_array, np.nan), beta)
    return LRFinderResult(lr_array, loss_array, smoothed_array,
                          suggest_lr(lr_array, smoothed_array))  # fmt: skip
