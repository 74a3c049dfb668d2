"""Callbacks: small objects the :class:`~dlkit.train.trainer.Trainer` calls at fixed points.

The loop calls, in this order::

    on_fit_start(trainer)
    for each epoch:
        on_epoch_start(trainer)
        for each optimizer step:      # grad_accum_steps micro-batches each
            on_batch_end(trainer, logs)   # logs: {"loss", "lr"} of this step
        on_epoch_end(trainer, logs)       # logs: the epoch's row of the history
    on_fit_end(trainer)

Callbacks run sorted by their ``order`` (lower first, stable for ties). The ones that
change training state (schedulers, early stopping) have order 0, :class:`LivePlot` 50 and
:class:`Checkpoint` 100, so a checkpoint always captures the state *after* this step's
scheduler update and early-stopping count: resuming from it repeats nothing.

A callback that keeps state across epochs returns it from ``state_dict`` so that
checkpoints carry it (it must be plain data: numbers, strings, lists, dicts, tensors).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch.optim.lr_scheduler import ReduceLROnPlateau

from dlkit.train.distributed import is_main_process

if TYPE_CHECKING:
    from dlkit.train.trainer import Trainer

Logs = dict[str, float]


class Callback:
    """Base class: override the hooks you need; each default does nothing."""

    order: int = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (also when resuming)."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before an epoch's first batch (``trainer.epoch`` is the 0-based epoch)."""

    def on_batch_end(self, trainer: Trainer, logs: Logs) -> None:
        """After each optimizer step (``trainer.global_step`` has been incremented)."""

    def on_epoch_end(self, trainer: Trainer, logs: Logs) -> None:
        """After the epoch's validation; ``logs`` is the row just appended to the history."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, or after early stopping."""

    def state_dict(self) -> dict[str, Any]:
        """State to store in checkpoints (plain data only); empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def _metric(logs: Logs, name: str, owner: str) -> float:
    """``logs[name]`` with an error that lists what *was* logged."""
    if name not in logs:
        hint = " (pass a val_loader to fit)" if name.startswith("val_") else ""
        raise KeyError(f"{owner} monitors {name!r}, but the epoch logged {sorted(logs)}{hint}")
    return logs[name]


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    """``value < best - min_delta`` in min mode, ``value > best + min_delta`` in max mode."""
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    After each epoch: if the value improved (``value < best - min_delta`` in ``"min"``
    mode) the count of bad epochs resets, otherwise it grows; at ``patience`` it sets
    ``trainer.should_stop`` and the loop ends after this epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: Literal["min", "max"] = "min",
        *,
        patience: int = 3,
        min_delta: float = 0.0,
    ) -> None:
        _check_mode(mode)
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, logs: Logs) -> None:
        value = _metric(logs, self.monitor, "EarlyStopping")
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            trainer.should_stop = True
            self.stopped_epoch = trainer.epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class LRSchedulerCallback(Callback):
    """Step a ``torch.optim.lr_scheduler`` scheduler each epoch or each optimizer step.

    ``interval="step"`` suits warm-up and one-cycle schedules, ``"epoch"`` step decay and
    cosine per epoch. ``ReduceLROnPlateau`` is stepped with a validation metric,
    ``scheduler.step(logs[monitor])`` (``monitor`` defaults to ``"val_loss"`` for it);
    it needs ``interval="epoch"``. The Trainer stores the scheduler's state in checkpoints.
    """

    def __init__(
        self,
        scheduler: Any,
        interval: Literal["epoch", "step"] = "epoch",
        monitor: str | None = None,
    ) -> None:
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        self.plateau = isinstance(scheduler, ReduceLROnPlateau)
        if self.plateau:
            if interval != "epoch":
                raise ValueError("ReduceLROnPlateau needs a metric per epoch: use interval='epoch'")
            monitor = monitor or "val_loss"
        elif monitor is not None:
            raise ValueError(
                f"monitor is for ReduceLROnPlateau; {type(scheduler).__name__} takes none"
            )
        self.scheduler, self.interval, self.monitor = scheduler, interval, monitor

    def on_batch_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.interval != "epoch":
            return
        if self.plateau:
            assert self.monitor is not None
            self.scheduler.step(_metric(logs, self.monitor, "ReduceLROnPlateau"))
        else:
            self.scheduler.step()


class Checkpoint(Callback):
    """Save the run to ``dirpath/last.pt`` (atomically) every epoch and/or every n steps.

    Args:
        dirpath: the folder; created if missing.
        every_n_steps: also save after every n-th optimizer step (mid-epoch), so that a
            killed run loses at most n steps. ``None``: only at epoch ends.
        every_epoch: save at the end of each epoch (after validation).
        keep_last: how many numbered snapshots ``epoch{E}-step{S}.pt`` to keep besides
            ``last.pt`` (oldest deleted first); 0 keeps only ``last.pt``.
        monitor, mode: when ``monitor`` is set (e.g. ``"val_loss"``), also save
            ``best.pt`` whenever that metric improves.

    Only the main process (rank 0) writes. Each file resumes with
    ``trainer.fit(..., resume_from=path)``.
    """

    order = 100

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        *,
        every_n_steps: int | None = None,
        every_epoch: bool = True,
        keep_last: int = 0,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        _check_mode(mode)
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1 or None, got {every_n_steps}")
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        self.dirpath = Path(dirpath)
        self.every_n_steps, self.every_epoch, self.keep_last = every_n_steps, every_epoch, keep_last
        self.monitor, self.mode = monitor, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.snapshots: list[str] = []

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.dirpath / "best.pt"

    def on_fit_start(self, trainer: Trainer) -> None:
        if not is_main_process():
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for stale in self.dirpath.glob(".*.pt.*.tmp"):  # left by a run killed mid-save
            stale.unlink(missing_ok=True)

    def on_batch_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_epoch_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.monitor is not None:
            value = _metric(logs, self.monitor, "Checkpoint")
            if _improved(value, self.best, self.mode, 0.0):
                self.best = value
                if is_main_process():
                    trainer.save_checkpoint(self.best_path)
        if self.every_epoch:
            self._save(trainer)

    def _save(self, trainer: Trainer) -> None:
        if not is_main_process():
            return
        name = f"epoch{trainer.epoch:03d}-step{trainer.global_step:06d}.pt"
        if self.keep_last and name not in self.snapshots:
            self.snapshots.append(name)  # before saving, so the checkpoint's list has it
        trainer.save_checkpoint(self.last_path)
        if self.keep_last:
            trainer.save_checkpoint(self.dirpath / name)
            while len(self.snapshots) > self.keep_last:
                (self.dirpath / self.snapshots.pop(0)).unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "snapshots": list(self.snapshots)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.snapshots = state["best"], list(state["snapshots"])
