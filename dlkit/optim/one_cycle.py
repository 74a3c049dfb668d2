r"""The one-cycle policy (Smith and Topin, 2019): warm up to a peak learning rate, then
anneal far below the start, with momentum moving the opposite way.

A ``torch.optim.lr_scheduler.LRScheduler`` with the arguments and the learning-rate (and
momentum) sequence of ``torch.optim.lr_scheduler.OneCycleLR``, including the parameter-group
keys it writes (``initial_lr``, ``max_lr``, ``min_lr``, ``max_momentum``, ``base_momentum``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["OneCycleLR"]


def _per_group(name: str, value: float | Sequence[float], groups: int) -> list[float]:
    if isinstance(value, Sequence):
        if len(value) != groups:
            raise ValueError(
                f"expected {groups} values of {name} (one per group), got {len(value)}"
            )
        return [float(v) for v in value]
    return [float(value)] * groups


class OneCycleLR(LRScheduler):
    r"""One cycle over ``total_steps`` :math:`= N` optimizer steps.

    With peak :math:`\eta_{\max}` = ``max_lr``, start :math:`\eta_{\text{init}} =
    \eta_{\max} / \text{div\_factor}` and end :math:`\eta_{\text{end}} = \eta_{\text{init}} /
    \text{final\_div\_factor}`, and :math:`p` = ``pct_start``, the phases are (as in PyTorch,
    whose boundaries are :math:`pN - 1` and :math:`N - 1`, so the peak is at step
    :math:`pN - 1` and the end at the last step :math:`N - 1`):

    - warm-up, steps 0 to :math:`pN - 1`: learning rate :math:`\eta_{\text{init}} \to
      \eta_{\max}`, momentum ``max_momentum`` :math:`\to` ``base_momentum``;
    - annealing, to step :math:`N - 1`: learning rate :math:`\eta_{\max} \to
      \eta_{\text{end}}`, momentum ``base_momentum`` :math:`\to` ``max_momentum``.

    Within a phase from step :math:`a` to :math:`b`, with :math:`x = (t - a)/(b - a)`, a value
    moves from :math:`u` to :math:`w` as :math:`w + \tfrac12 (u - w)(1 + \cos \pi x)`
    (``anneal_strategy="cos"``) or :math:`u + (w - u)\,x` (``"linear"``).
    ``three_phase=True`` uses three phases, as PyTorch: :math:`\eta_{\text{init}} \to
    \eta_{\max}` until :math:`pN - 1`, back to :math:`\eta_{\text{init}}` at :math:`2pN - 2`,
    then down to :math:`\eta_{\text{end}}` at :math:`N - 1`.

    With ``cycle_momentum`` (the default), the group's ``momentum`` (SGD, RMSprop) or
    :math:`\beta_1` (Adam) is set each step; note this *turns momentum on* for an SGD created
    without it, as PyTorch does. Stepping past :math:`N` raises ``ValueError``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("give either total_steps or both epochs and steps_per_epoch")
            for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
                if not isinstance(value, int) or value <= 0:
                    raise ValueError(f"expected a positive integer {name}, got {value!r}")
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"expected a positive integer total_steps, got {total_steps!r}")
        if not 0.0 <= pct_start <= 1.0:
            raise ValueError(f"expected pct_start between 0 and 1, got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        if not (div_factor > 0 and final_div_factor > 0):
            raise ValueError("div_factor and final_div_factor must be > 0")
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        # (last step of the phase, start key, end key, start momentum key, end momentum key)
        warmup_end = float(pct_start * total_steps) - 1
        if three_phase:
            self.phases = [
                (warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (2 * warmup_end, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self.phases = [
                (warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]

        groups = optimizer.param_groups
        max_lrs = _per_group("max_lr", max_lr, len(groups))
        if last_epoch == -1:
            for group, peak in zip(groups, max_lrs, strict=True):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(
                    "cycle_momentum=True needs an optimizer with momentum or betas "
                    f"({type(optimizer).__name__} has neither); pass cycle_momentum=False"
                )
            self.use_beta1 = "betas" in optimizer.defaults
            highs = _per_group("max_momentum", max_momentum, len(groups))
            lows = _per_group("base_momentum", base_momentum, len(groups))
            if last_epoch == -1:
                for group, high, low in zip(groups, highs, lows, strict=True):
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def anneal(self, start: float, end: float, fraction: float) -> float:
        """From ``start`` (fraction 0) to ``end`` (fraction 1), by half a cosine or a line."""
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)
        return (end - start) * fraction + start

    def get_lr(self) -> list[float]:  # type: ignore[override]
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"stepped {step} times, but the schedule has total_steps={self.total_steps}"
            )
        lrs = []
        for group in self.optimizer.param_groups:
            phase_start = 0.0
            for index, (phase_end, lr_from, lr_to, mom_from, mom_to) in enumerate(self.phases):
                if step <= phase_end or index == len(self.phases) - 1:
                    fraction = (step - phase_start) / (phase_end - phase_start)
                    lrs.append(self.anneal(group[lr_from], group[lr_to], fraction))
                    if self.cycle_momentum:
                        momentum = self.anneal(group[mom_from], group[mom_to], fraction)
                        self._set_momentum(group, momentum)
                    break
                phase_start = phase_end
        return lrs
