"""The training loop, built from PyTorch's own pieces and readable in one sitting.

One optimizer step with gradient accumulation over a group of :math:`m` micro-batches
(``m = grad_accum_steps``, fewer for a trailing partial group at the end of an epoch),
micro-batch :math:`i` holding :math:`n_i` of the group's :math:`N = \\sum_i n_i` examples:

.. math::

    g = \\sum_{i=1}^{m} \\frac{n_i}{N} \\nabla_\\theta L_i, \\qquad
    g \\leftarrow g \\cdot \\min\\!\\left(1, \\frac{c}{\\lVert g \\rVert_2}\\right), \\qquad
    \\theta \\leftarrow \\text{optimizer}(\\theta, g)

where :math:`L_i` is micro-batch :math:`i`'s mean loss and :math:`c` is ``max_grad_norm``.
:math:`\\sum_i \\frac{n_i}{N} L_i` *is* the mean loss of the group's :math:`N` examples, so
the step equals one step on that batch. Equal micro-batches of :math:`b` weigh :math:`1/m`
(each loss is divided by :math:`m`); after a short one (the last of an epoch without
``drop_last``) the group's gradient is rescaled by :math:`mb/N`. A trailing group of
:math:`r < m` micro-batches is stepped too: no batch is dropped.

Checkpoints (:meth:`Trainer.save_checkpoint`, or the ``Checkpoint`` callback) are written
only between optimizer steps, never inside an accumulation group, and resume exactly:
see :mod:`dlkit.train.resume` for how the random draws are replayed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dlkit.train.batches import batch_size, move_to
from dlkit.train.callbacks import Callback, LRSchedulerCallback
from dlkit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dlkit.train.device import DeviceLike, get_device
from dlkit.train.distributed import is_distributed, is_main_process
from dlkit.train.guards import check_devices, check_loss, forward, split_batch
from dlkit.train.metrics import RunningMeans
from dlkit.train.precision import autocast, grad_scaler, resolve_precision
from dlkit.train.resume import begin_epoch, loader_generator, resume_epoch
from dlkit.train.seed import seed_everything, set_rng_state

History = dict[str, list[float]]
Metric = Callable[[torch.Tensor, torch.Tensor], float]


class Trainer:
    """Fit ``model`` with ``optimizer`` on ``loss_fn(model(inputs), targets)``.

    Batches are ``(inputs, targets)`` pairs; each may be a tensor or a tuple/list/dict of
    tensors (``model(inputs)`` receives it as is).

    Args:
        model: moved to ``device`` now (``Module.to`` moves parameters in place, so an
            optimizer built over them stays valid).
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's *mean* loss (a scalar).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... (see :func:`dlkit.train.get_device`).
        metrics: ``{"acc": fn}`` with ``fn(outputs, targets) -> float`` the batch mean; logged
            as ``acc`` on training batches and ``val_acc`` on validation.
        callbacks: :class:`~dlkit.train.callbacks.Callback` objects (at most one
            ``LRSchedulerCallback``: chain schedules with ``SequentialLR``).
        precision: ``"fp32"`` (default), ``"auto"``, ``"bf16"`` or ``"fp16"``.
        grad_accum_steps: micro-batches per optimizer step (see the module docstring).
        max_grad_norm: clip the global gradient 2-norm to this value (None: no clipping).
        progress: show a tqdm bar (the notebook widget in Jupyter); only on rank 0.
        seed: seed everything at the start of ``fit``, and each epoch's loader generator
            from ``(seed, epoch, rank)``. ``None``: leave the RNGs alone.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        *,
        device: DeviceLike = "auto",
        metrics: Mapping[str, Metric] | None = None,
        callbacks: Sequence[Callback] = (),
        precision: str = "fp32",
        grad_accum_steps: int = 1,
        max_grad_norm: float | None = None,
        progress: bool = True,
        seed: int | None = None,
    ) -> None:
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
        schedulers = [cb.scheduler for cb in callbacks if isinstance(cb, LRSchedulerCallback)]
        if len(schedulers) > 1:
            raise ValueError("give at most one LRSchedulerCallback; combine with SequentialLR")
        self.device = get_device(device)
        self.model = model.to(self.device)
        self.optimizer, self.loss_fn = optimizer, loss_fn
        self.metrics = dict(metrics or {})
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)  # stable for ties
        self.scheduler = schedulers[0] if schedulers else None
        self.precision = resolve_precision(self.device, precision)  # fails early if unusable
        self.scaler = grad_scaler(self.device, self.precision)
        self.grad_accum_steps, self.max_grad_norm = grad_accum_steps, max_grad_norm
        self.progress, self.seed = progress, seed
        self._generator: torch.Generator | None = None  # the train loader's, set by fit
        self._devices_checked = False
        self._reset(epochs=0)

    def _reset(self, epochs: int) -> None:
        self.history: History = {}
        self.epochs, self.epoch, self.batches_done, self.global_step = epochs, 0, 0, 0
        self.should_stop, self._epoch_finished = False, False
        self._epoch_start: dict[str, Any] = {}  # RNG states when this epoch's iterator began
        self._running = RunningMeans()  # this epoch's training loss and metrics
        self._last_finite: list[float] = []  # [loss, epoch, batch index]

    # ---------------------------------------------------------------- fit
    def fit(
        self,
        train_loader: DataLoader[Any],
        val_loader: Iterable[Any] | None = None,
        *,
        epochs: int,
        resume_from: str | Path | None = None,
    ) -> History:
        """Train for ``epochs`` epochs in total and return the history.

        The history maps each metric to one value per epoch: ``loss`` (and the training
        metrics), ``val_loss``/``val_<metric>`` with a ``val_loader``, and ``lr`` (the first
        parameter group's rate at the end of that epoch, before an epoch-interval
        scheduler steps). Without ``resume_from`` a call starts a fresh history (the
        weights are kept). ``resume_from`` continues a run from a checkpoint at the exact
        batch it stopped at; ``epochs`` is still the total.
        """
        self._generator = loader_generator(train_loader)
        resume = None
        if resume_from is None:
            self._reset(epochs)
            if self.seed is not None:
                seed_everything(self.seed)
        else:
            self.epochs = epochs
            resume = self._restore(resume_from)
            if resume["step"] == 0:  # at an epoch boundary: continue from the saved states
                set_rng_state(resume["rng"])
                now = resume["extra"].get("trainer", {}).get("generator")
                if self._generator is not None and now is not None:
                    self._generator.set_state(now.cpu())
                resume = None
        self.optimizer.zero_grad(set_to_none=True)
        self._devices_checked = False
        self._call("on_fit_start")
        while self.epoch < self.epochs and not self.should_stop:
            self._train_epoch(train_loader, val_loader, resume)
            resume = None
        self._call("on_fit_end")
        return self.history

    def _train_epoch(
        self, loader: DataLoader[Any], val_loader: Iterable[Any] | None, resume: Any
    ) -> None:
        self.model.train()
        self._call("on_epoch_start")
        batches, skip = self._epoch_iterator(loader, resume)
        n = len(loader) if hasattr(loader, "__len__") else None
        k, group_loss, pending, i = self.grad_accum_steps, 0.0, 0, skip - 1
        first_size = group_size = 0  # the group's first micro-batch size and its examples
        show = self.progress and is_main_process()
        distributed = is_distributed()  # once per epoch, not per step
        ddp = hasattr(self.model, "no_sync")
        bar = tqdm(total=n, initial=skip, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                   disable=not show, leave=True)  # fmt: skip
        for i, batch in enumerate(batches, start=skip):
            start = i - i % k  # this micro-batch's group is [start, start + m)
            m = k if n is None else min(k, n - start)
            last_in_group = i + 1 == start + m
            where = partial(self._where, i, n)  # formatted only if something goes wrong
            first_batch = not self._devices_checked  # of this fit: check shapes once
            inputs, targets = self._split(move_to(batch, self.device), where)
            sync = contextlib.nullcontext()
            if not last_in_group and ddp:
                sync = self.model.no_sync()  # DDP: all-reduce only on the group's last backward
            with sync:
                outputs, loss = forward(
                    self.model,
                    self.loss_fn,
                    inputs,
                    targets,
                    self._autocast(),
                    where,
                    check_broadcast=first_batch,
                )
                value = check_loss(loss, inputs, where, self._describe_last_finite, distributed)
                size = batch_size(targets)
                first_size = size if pending == 0 else first_size
                scaled = loss if m == 1 else loss / m  # skip a no-op division (and its backward)
                if size != first_size:  # weight n_i / (m b); _reweight makes it n_i / N
                    scaled = scaled * (size / first_size)
                self.scaler.scale(scaled).backward()  # accumulates into .grad
            self._last_finite = [value, self.epoch, i]
            self._record(self._running, outputs, targets, value, size)
            group_loss, pending, group_size = group_loss + value, pending + 1, group_size + size
            bar.update(1)
            if last_in_group:
                self._reweight(m * first_size, group_size)
                self._step(i, where, logs={"loss": group_loss / pending})
                group_loss, pending, group_size = 0.0, 0, 0
        if pending:  # a loader without len() ran out inside a group of m = k
            self._reweight(k * first_size, group_size)
            self._step(i, partial(self._where, i, n), logs={"loss": group_loss / pending})
        row = self._epoch_row(val_loader)
        bar.set_postfix({key: f"{value:.4g}" for key, value in row.items()})
        bar.close()
        self._epoch_finished = True  # checkpoints from here on resume at the next epoch
        self._call("on_epoch_end", row)
        self.epoch, self.batches_done, self._epoch_finished = self.epoch + 1, 0, False

    def _epoch_iterator(self, loader: DataLoader[Any], resume: Any) -> tuple[Any, int]:
        """This epoch's batch iterator; on a mid-epoch resume, advanced past the batches done."""
        if resume is None:
            batches, self._epoch_start = begin_epoch(loader, self.epoch, self.seed)
            self._running = RunningMeans()
            return batches, 0
        done, source = resume["step"], f"checkpoint {resume['path']}"
        batches = resume_epoch(loader, self.epoch, self._epoch_start, done, resume["rng"], source)
        return batches, done

    # ---------------------------------------------------------------- one step
    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        return autocast(self.device, self.precision)

    def _split(self, batch: Any, where: Callable[[], str]) -> tuple[Any, Any]:
        inputs, targets = split_batch(batch, where)
        if not self._devices_checked:  # once per fit, before the first step
            check_devices(self.model, batch, self.device, where)
            self._devices_checked = True
        return inputs, targets

    def _reweight(self, weighted_as: int, examples: int) -> None:
        """Rescale a gradient averaged over ``weighted_as`` examples to one over ``examples``."""
        if weighted_as != examples:  # only after a short micro-batch
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(weighted_as / examples)

    def _step(self, i: int, where: Callable[[], str], logs: dict[str, float]) -> None:
        """Clip (after unscaling), step the optimizer through the scaler, zero the gradients."""
        if self.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradient g, not s * g
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            if not self.scaler.is_enabled() and not torch.isfinite(norm):
                raise FloatingPointError(
                    f"the gradient norm is {float(norm)} at {where()} although the loss was "
                    f"finite; {self._describe_last_finite()}. Look for operations with "
                    "unbounded gradients (sqrt or log near 0, division)"
                )
            logs["grad_norm"] = float(norm)
        self.scaler.step(self.optimizer)  # an fp16 scaler skips it if gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        self.batches_done = i + 1
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        self._call("on_batch_end", logs)

    def _where(self, i: int, n: int | None) -> str:
        return f"epoch {self.epoch + 1}/{self.epochs}, step {i + 1}/{n or '?'}"

    def _describe_last_finite(self) -> str:
        if not self._last_finite:
            return "no finite loss was seen before it"
        value, epoch, i = self._last_finite
        return f"the last finite loss was {value:.6g} at epoch {int(epoch) + 1}, step {int(i) + 1}"

    # ---------------------------------------------------------------- metrics
    def _record(
        self, running: RunningMeans, outputs: Any, targets: Any, loss: float, size: int
    ) -> None:
        values = {
            "loss": loss,
            **{name: float(fn(outputs, targets)) for name, fn in self.metrics.items()},
        }
        running.add(size, values)

    def _epoch_row(self, val_loader: Iterable[Any] | None) -> dict[str, float]:
        row = self._running.means(self.device)
        if val_loader is not None:
            val = self.evaluate(val_loader)
            if not val:
                raise ValueError(
                    f"the validation loader gave no batches after epoch {self.epoch + 1}"
                )
            if not math.isfinite(val["loss"]):
                raise FloatingPointError(
                    f"the validation loss is {val['loss']} after epoch "
                    f"{self.epoch + 1}/{self.epochs}; {self._describe_last_finite()}"
                )
            row |= {f"val_{name}": value for name, value in val.items()}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        for name, value in row.items():
            self.history.setdefault(name, []).append(value)
        return row

    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        """Mean loss and metrics over ``loader``, in eval mode and without gradients.

        Returns ``{"loss": ..., "<metric>": ...}``, each weighted by batch size (summed
        over processes under DDP). The model's train/eval mode is restored afterwards.
        """
        was_training = self.model.training
        self.model.eval()
        running, n = RunningMeans(), len(loader) if hasattr(loader, "__len__") else None
        try:
            with torch.no_grad():
                for i, batch in enumerate(loader):
                    where = partial(self._eval_where, i, n)
                    inputs, targets = self._split(move_to(batch, self.device), where)
                    outputs, loss = forward(
                        self.model, self.loss_fn, inputs, targets, self._autocast(), where
                    )
                    self._record(running, outputs, targets, float(loss), batch_size(targets))
            return running.means(self.device)
        finally:
            self.model.train(was_training)

    def _eval_where(self, i: int, n: int | None) -> str:
        during = f" of epoch {self.epoch + 1}/{self.epochs}" if self.epoch < self.epochs else ""
        return f"validation{during}, step {i + 1}/{n or '?'}"

    # ---------------------------------------------------------------- callbacks, checkpoints
    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _callback_keys(self) -> list[str]:
        names = [type(cb).__name__ for cb in self.callbacks]
        return [f"{name}#{names[:i].count(name)}" for i, name in enumerate(names)]

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write everything needed to resume this run exactly (see :mod:`.checkpoint`)."""
        done = self._epoch_finished
        trainer_state = {
            "epoch_start": self._epoch_start,
            "running": dict(self._running.state),
            "generator": None if self._generator is None else self._generator.get_state(),
            "last_finite": list(self._last_finite),
            "should_stop": self.should_stop,
            "grad_accum_steps": self.grad_accum_steps,
            "callbacks": {
                key: cb.state_dict()
                for key, cb in zip(self._callback_keys(), self.callbacks, strict=True)
            },
        }
        return save_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            epoch=self.epoch + 1 if done else self.epoch,
            step=0 if done else self.batches_done,
            global_step=self.global_step,
            history=self.history,
            extra={"trainer": trainer_state},
        )

    def _restore(self, path: str | Path) -> dict[str, Any]:
        """Load a checkpoint into the model, optimizer, scheduler, scaler and callbacks."""
        meta = load_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            restore_rng=False,  # restored by fit/_epoch_iterator at the right moment
        )
        state = meta["extra"].get("trainer")
        if state is None and meta["step"] != 0:
            raise CheckpointError(
                f"checkpoint {path} stops mid-epoch but was not written by a Trainer, so it "
                "lacks the epoch's RNG states needed to resume exactly"
            )
        state = state or {}
        if meta["step"] and state["grad_accum_steps"] != self.grad_accum_steps:
            raise CheckpointError(
                f"checkpoint {path} was written with grad_accum_steps="
                f"{state['grad_accum_steps']}; resume it mid-epoch with the same value"
            )
        self.history = {name: list(values) for name, values in meta["history"].items()}
        self.epoch, self.batches_done = meta["epoch"], meta["step"]
        self.global_step = meta["global_step"] or 0
        self.should_stop, self._epoch_finished = state.get("should_stop", False), False
        self._epoch_start = state.get("epoch_start", {})
        self._running = RunningMeans(state.get("running"))
        self._last_finite = list(state.get("last_finite", []))
        saved = state.get("callbacks", {})
        for key, callback in zip(self._callback_keys(), self.callbacks, strict=True):
            if key in saved:
                callback.load_state_dict(saved[key])
        return meta
