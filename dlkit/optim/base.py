"""What every optimizer in :mod:`dlkit.optim` shares: ``torch.optim.Optimizer`` with checks.

A subclass builds its ``defaults`` dict and writes ``step``; this base checks the
hyper-parameters of the defaults and of every parameter group (also one added later with
``add_param_group``) and evaluates an optional ``closure`` the way ``torch.optim`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from dlkit.optim.hyperparameters import check_hyperparameters

__all__ = ["CheckedOptimizer", "evaluate_closure"]


class CheckedOptimizer(Optimizer):
    """``torch.optim.Optimizer`` whose groups are checked by :func:`check_hyperparameters`."""

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]
    ) -> None:
        check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, checking its own options as strictly as the defaults."""
        check_hyperparameters({**self.defaults, **param_group})
        super().add_param_group(param_group)


def evaluate_closure(closure: Callable[[], float] | None) -> float | None:
    """``closure()`` with gradients enabled (``step`` runs under ``no_grad``), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()
