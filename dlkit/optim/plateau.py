r"""Reduce the learning rate when a monitored metric stops improving.

:class:`ReduceLROnPlateau` has the arguments and behaviour of
``torch.optim.lr_scheduler.ReduceLROnPlateau``, written out here step by step. It subclasses
PyTorch's class only so that code which asks ``isinstance(s, ReduceLROnPlateau)`` to decide
whether ``step`` takes a metric (:class:`dlkit.train.LRSchedulerCallback`, for one) treats it as
one; every method it runs is defined below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, SupportsFloat

from torch.optim import Optimizer, lr_scheduler

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(lr_scheduler.ReduceLROnPlateau):
    r"""Multiply the learning rate by ``factor`` after ``patience`` steps without improvement.

    Call ``step(metric)`` once per evaluation (usually per epoch). With ``best`` the best
    metric so far (:math:`+\infty` at the start in ``"min"`` mode), a new value :math:`a`
    counts as an improvement when

    ============  =====================================  ===========================
    mode          ``threshold_mode="rel"``               ``threshold_mode="abs"``
    ============  =====================================  ===========================
    ``"min"``     :math:`a < \text{best}\,(1 - \delta)`   :math:`a < \text{best} - \delta`
    ``"max"``     :math:`a > \text{best}\,(1 + \delta)`   :math:`a > \text{best} + \delta`
    ============  =====================================  ===========================

    with :math:`\delta` = ``threshold``. Each step then:

    1. an improvement sets ``best`` :math:`= a` and the bad-step count to 0; otherwise the
       count goes up by 1;
    2. during a cool-down (``cooldown`` steps after each reduction) the count is reset to 0,
       and the cool-down counter goes down by 1;
    3. when the count *exceeds* ``patience``, every group's rate becomes
       :math:`\max(\eta\cdot\text{factor}, \text{min\_lr})` (unless that changes it by no
       more than ``eps``), the cool-down starts and the count is reset.

    So with ``patience=2`` the rate drops on the third bad step in a row. (The relative
    threshold assumes a positive metric, as in PyTorch.) A NaN metric raises ``ValueError``
    here, where PyTorch would count it as one more bad step.

    Args:
        optimizer: the optimizer whose groups' ``lr`` is reduced.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        factor: in (0, 1), the multiplier applied at each reduction.
        patience: bad steps tolerated before reducing (>= 0).
        threshold: :math:`\delta \ge 0`, how much better counts as better.
        threshold_mode: ``"rel"`` (relative to ``best``) or ``"abs"``.
        cooldown: steps to wait after a reduction before counting bad steps again (>= 0).
        min_lr: lower bound on the rate, one for all groups or one per group.
        eps: reductions smaller than this are skipped (>= 0).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        # Not super().__init__: PyTorch's base class would set the rates itself.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not threshold >= 0 or not eps >= 0:
            raise ValueError(f"threshold and eps must be >= 0, got {threshold} and {eps}")
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, Sequence) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ValueError(f"expected {groups} min_lr values (one per group), got {len(min_lrs)}")
        if any(not m >= 0 for m in min_lrs):
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        self.optimizer = optimizer
        self.factor, self.patience, self.cooldown, self.eps = factor, patience, cooldown, eps
        self.min_lrs = [float(m) for m in min_lrs]
        self._set_mode(mode, threshold, threshold_mode)
        self.last_epoch = 0
        self.best = self.mode_worse
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [float(group["lr"]) for group in optimizer.param_groups]

    def _set_mode(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric value ``a`` improves on ``best`` by more than the threshold."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (1.0 + self.threshold)
        return a > best + self.threshold

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record one value of the monitored metric and reduce the rates if it has plateaued."""
        current = float(metrics)
        if math.isnan(current):
            raise ValueError("ReduceLROnPlateau got a NaN metric: the run has diverged")
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:  # bad steps during a cool-down do not count
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self.reduce_lr()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def reduce_lr(self) -> None:
        """:math:`\\eta \\leftarrow \\max(\\eta \\cdot \\text{factor}, \\text{min\\_lr})` per group."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            raise ValueError(
                f"the optimizer has {len(groups)} parameter groups but min_lr has "
                f"{len(self.min_lrs)} values (a group added after the scheduler was made?)"
            )
        for group, floor in zip(groups, self.min_lrs, strict=True):
            old = float(group["lr"])
            new = max(old * self.factor, floor)
            if old - new > self.eps:
                group["lr"] = new

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)
        self._set_mode(self.mode, self.threshold, self.threshold_mode)
