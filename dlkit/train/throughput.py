"""Throughput versus batch size: how many samples per second a full training step processes.

A training step is forward, backward and ``optimizer.step()``. Its time is
:math:`t(B) \\approx t_0 + B\\, t_1`: a fixed cost :math:`t_0` (Python, kernel launches, the
optimizer touching every parameter) plus a per-sample cost :math:`t_1`. Throughput
:math:`B / t(B)` therefore rises with the batch size until :math:`B\\,t_1 \\gg t_0` — the
hardware is saturated — and then flattens; memory (``dlkit.train.memory``) sets the upper end.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlkit.train.device import DeviceLike, get_device

if TYPE_CHECKING:
    from matplotlib.axes import Axes

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def _sgd(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=1e-3)


@dataclass(frozen=True)
class ThroughputResult:
    """Timing of ``len(step_times)`` training steps at one batch size (seconds)."""

    batch_size: int
    step_times: tuple[float, ...]

    @property
    def seconds_per_step(self) -> float:
        """Median step time: robust to the odd slow step (garbage collection, a busy core)."""
        return statistics.median(self.step_times)

    @property
    def samples_per_second(self) -> float:
        """:math:`B / \\operatorname{median}(t)`."""
        return self.batch_size / self.seconds_per_step


def _sync(device: torch.device) -> None:
    """CUDA runs asynchronously: wait for queued kernels before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
) -> None:
    """One full step: forward, loss, backward, parameter update."""
    optimizer.zero_grad(set_to_none=True)
    loss_fn(model(inputs), targets).backward()
    optimizer.step()


def measure_throughput(
    model: nn.Module,
    make_batch: Callable[[int], tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batch_sizes: Sequence[int],
    *,
    device: DeviceLike = "cpu",
    steps: int = 5,
    warmup: int = 2,
    optimizer_factory: OptimizerFactory = _sgd,
) -> list[ThroughputResult]:
    """Time full training steps of ``model`` for each batch size; one result per batch size.

    For each ``B`` in ``batch_sizes``: ``make_batch(B)`` gives ``(inputs, targets)`` once (data
    loading is not timed), a fresh optimizer is built with ``optimizer_factory``, ``warmup``
    untimed steps run (allocator, caches, lazily created optimizer state), then ``steps`` steps
    are timed with ``time.perf_counter``, synchronizing CUDA before each clock read.

    The model is moved to ``device`` (and stays there); its weights and train/eval mode are
    restored afterwards, so measuring does not train it.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    device = get_device(device)
    was_training = model.training
    model.to(device).train()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    results = []
    try:
        for batch_size in batch_sizes:
            inputs, targets = make_batch(batch_size)
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            optimizer = optimizer_factory(model.parameters())
            for _ in range(warmup):
                _train_step(model, optimizer, loss_fn, inputs, targets)
            times = []
            for _ in range(steps):
                _sync(device)
                start = time.perf_counter()
                _train_step(model, optimizer, loss_fn, inputs, targets)
                _sync(device)
                times.append(time.perf_counter() - start)
            results.append(ThroughputResult(batch_size, tuple(times)))
    finally:  # also when a step fails, e.g. out of memory at a large batch
        model.load_state_dict(initial)
        model.train(was_training)
    return results


def plot_throughput(
    results: Sequence[ThroughputResult], ax: Axes | None = None
) -> tuple[Axes, Axes]:
    """Samples/s (left axis) and ms/step (right axis) against batch size on a log₂ x-axis.

    Returns the two axes ``(throughput_ax, time_ax)``; a new figure is made when ``ax`` is None.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    sizes = [r.batch_size for r in results]
    ax.plot(sizes, [r.samples_per_second for r in results], "o-", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("samples / s", color="tab:blue")
    ax.set_title("training throughput vs batch size")
    time_ax = ax.twinx()
    time_ax.plot(sizes, [1e3 * r.seconds_per_step for r in results], "s--", color="tab:orange")
    time_ax.set_ylabel("ms / step (median)", color="tab:orange")
    return ax, time_ax


__all__ = ["ThroughputResult", "measure_throughput", "plot_throughput"]
