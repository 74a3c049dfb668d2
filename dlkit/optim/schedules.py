r"""Learning-rate schedules written as closed forms :math:`\eta_t = f(t)`.

Each class is a ``torch.optim.lr_scheduler.LRScheduler``, so it works wherever PyTorch's
do (``scheduler.step()`` after ``optimizer.step()``, ``get_last_lr()``, ``state_dict()``,
:class:`dlkit.train.LRSchedulerCallback`, checkpoints). Where PyTorch has the same schedule the
sequence of learning rates is PyTorch's; PyTorch computes several of them by a *chainable
recursion* (multiply the current ``lr`` by a ratio), which agrees with the closed form up
to rounding. Here :math:`t` is ``last_epoch``, the number of ``step()`` calls so far, and
:math:`\eta_0` each parameter group's initial learning rate (``base_lrs``).

:class:`OneCycleLR` lives in ``one_cycle.py`` and :class:`ReduceLROnPlateau`, which reacts
to a metric rather than following a formula, in ``plateau.py``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = [
    "ClosedFormSchedule",
    "CosineAnnealingLR",
    "ExponentialLR",
    "MultiStepLR",
    "StepLR",
    "WarmupCosine",
]


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_gamma(gamma: float) -> None:
    if not gamma > 0:
        raise ValueError(
            f"gamma must be > 0 (the factor the learning rate is multiplied by), got {gamma}"
        )


class ClosedFormSchedule(LRScheduler):
    """Base class: a schedule given by :meth:`lr_at`, the learning rate after ``step`` steps.

    Subclasses set their attributes, then call ``super().__init__(optimizer, last_epoch)``
    and implement ``lr_at(step, base_lr, group)``.
    """

    def lr_at(self, step: int, base_lr: float, group: int) -> float:
        """The learning rate of parameter group ``group`` (initial rate ``base_lr``) at ``step``."""
        raise NotImplementedError

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [self.lr_at(self.last_epoch, base, i) for i, base in enumerate(self.base_lrs)]

    def _get_closed_form_lr(self) -> list[float]:  # what PyTorch calls for step(epoch)
        return self.get_lr()


class StepLR(ClosedFormSchedule):
    r""":math:`\eta_t = \eta_0\, \gamma^{\lfloor t / s \rfloor}`: multiply by :math:`\gamma`
    every ``step_size`` :math:`= s` steps (the first drop after step :math:`s`, not at step 0).

    As ``torch.optim.lr_scheduler.StepLR``.
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        _check_int("step_size", step_size, 1)
        _check_gamma(gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, base_lr: float, group: int) -> float:
        return base_lr * self.gamma ** (step // self.step_size)


class MultiStepLR(ClosedFormSchedule):
    r""":math:`\eta_t = \eta_0\, \gamma^{\#\{m \in M : m \le t\}}`: multiply by :math:`\gamma`
    at each milestone in ``milestones`` :math:`= M` (a repeated milestone counts twice).

    As ``torch.optim.lr_scheduler.MultiStepLR``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = sorted(milestones)
        for milestone in self.milestones:
            _check_int("each milestone", milestone, 0)
        _check_gamma(gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, base_lr: float, group: int) -> float:
        passed = bisect_right(self.milestones, step)  # milestones m <= step
        return base_lr * self.gamma**passed


class ExponentialLR(ClosedFormSchedule):
    r""":math:`\eta_t = \eta_0\, \gamma^t`. As ``torch.optim.lr_scheduler.ExponentialLR``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        _check_gamma(gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, base_lr: float, group: int) -> float:
        return base_lr * self.gamma**step


def cosine_between(high: float, low: float, progress: float) -> float:
    r"""Half a cosine from ``high`` (progress 0) to ``low`` (progress 1):
    :math:`\eta_{\min} + \tfrac12(\eta_{\max} - \eta_{\min})(1 + \cos \pi p)`."""
    return low + (high - low) * (1 + math.cos(math.pi * progress)) / 2


class CosineAnnealingLR(ClosedFormSchedule):
    r"""Cosine annealing (SGDR without restarts, Loshchilov and Hutter, 2017):

    .. math::

        \eta_t = \eta_{\min} + \tfrac12\,(\eta_0 - \eta_{\min})
            \left(1 + \cos\frac{\pi t}{T_{\max}}\right)

    from :math:`\eta_0` at :math:`t = 0` to ``eta_min`` at :math:`t = T_{\max}`. Like PyTorch's,
    the formula is used as is past :math:`T_{\max}`, so the rate climbs back up (a period of
    :math:`2T_{\max}`); stop at :math:`T_{\max}` or use :class:`WarmupCosine` to stay at the
    minimum. As ``torch.optim.lr_scheduler.CosineAnnealingLR``, computed in closed form
    where PyTorch uses a recursion.
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        _check_int("T_max", T_max, 1)
        if not eta_min >= 0:
            raise ValueError(f"eta_min must be >= 0, got {eta_min}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, base_lr: float, group: int) -> float:
        return cosine_between(base_lr, self.eta_min, step / self.T_max)


class WarmupCosine(ClosedFormSchedule):
    r"""Linear warm-up for :math:`W` steps, then a cosine down to a minimum at step :math:`T`:

    .. math::

        \eta_t = \begin{cases}
            \eta_0\, t / W & 0 \le t < W\\
            \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})
                \left(1 + \cos\left(\pi\,\frac{t - W}{T - W}\right)\right) & W \le t \le T\\
            \eta_{\min} & t > T
        \end{cases}

    so the rate rises from 0 to the optimizer's ``lr`` :math:`\eta_0` at :math:`t = W` and
    falls to ``min_lr`` :math:`\eta_{\min}` at :math:`t = T` = ``total_steps``, then stays
    there. (The warm-up starts at exactly 0, as Hugging Face's
    ``get_cosine_schedule_with_warmup``; the first update therefore does nothing.) PyTorch
    has no single class for this; step it once per optimizer step.

    Args:
        optimizer: the optimizer; each group's ``lr`` is its peak :math:`\eta_0`.
        warmup_steps: :math:`W \ge 0` (0: no warm-up).
        total_steps: :math:`T > W`.
        min_lr: :math:`\eta_{\min} \ge 0`, one for all groups or one per group.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        total_steps: int,
        min_lr: float | Sequence[float] = 0.0,
        last_epoch: int = -1,
    ) -> None:
        _check_int("warmup_steps", warmup_steps, 0)
        _check_int("total_steps", total_steps, warmup_steps + 1)
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, Sequence) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ValueError(f"expected {groups} min_lr values (one per group), got {len(min_lrs)}")
        if any(not m >= 0 for m in min_lrs):
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        self.warmup_steps, self.total_steps, self.min_lrs = warmup_steps, total_steps, min_lrs
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, base_lr: float, group: int) -> float:
        if step < self.warmup_steps:
            return base_lr * step / self.warmup_steps
        progress = min(step - self.warmup_steps, self.total_steps - self.warmup_steps) / (
            self.total_steps - self.warmup_steps
        )
        return cosine_between(base_lr, self.min_lrs[group], progress)
