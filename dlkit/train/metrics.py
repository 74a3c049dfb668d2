"""Epoch metrics: per-batch values averaged over the examples of an epoch.

A metric is a function ``fn(outputs, targets) -> float`` giving the *batch mean*. The
epoch value weights each batch by its size :math:`n_j`, so a smaller last batch counts
for what it holds:

.. math:: \\bar m = \\frac{\\sum_j n_j\\, m_j}{\\sum_j n_j}

Under data parallelism each process sees a shard; :meth:`RunningMeans.means` sums the
numerators and denominators over all processes first, so every rank gets the same value
(and makes the same early-stopping decision).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist

from dlkit.train.distributed import is_distributed


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max over classes equals the target.

    Shapes: ``outputs`` ``(B, C)`` logits or probabilities, ``targets`` ``(B,)`` class indices.
    """
    return (outputs.argmax(dim=-1) == targets).float().mean().item()


class RunningMeans:
    """Sample-weighted sums of named per-batch values; ``state`` goes into checkpoints."""

    def __init__(self, state: Mapping[str, float] | None = None) -> None:
        self.state: dict[str, float] = {"n": 0.0, **(state or {})}

    def add(self, size: int, values: Mapping[str, float]) -> None:
        """Add one batch of ``size`` examples whose batch means are ``values``."""
        self.state["n"] += size
        for name, value in values.items():
            self.state[name] = self.state.get(name, 0.0) + value * size

    def means(self, device: torch.device) -> dict[str, float]:
        """``{name: sum / n}``, summed over all processes first when distributed.

        ``device`` is where the all-reduce happens: a CUDA device for NCCL, else the CPU
        (gloo). Returns ``{}`` when nothing was added.
        """
        names = list(self.state)
        sums = [self.state[name] for name in names]
        if is_distributed():
            where = device if device.type == "cuda" else torch.device("cpu")
            total = torch.tensor(sums, dtype=torch.float64, device=where)
            dist.all_reduce(total)
            sums = total.tolist()
        totals = dict(zip(names, sums, strict=True))
        count = totals.pop("n")
        return {name: value / count for name, value in totals.items()} if count else {}
