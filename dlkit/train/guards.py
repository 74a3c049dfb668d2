"""Guards: bad input stops training with a message that says what happened and where.

Three mistakes otherwise surface as a cryptic error deep inside PyTorch, or as a run that
quietly trains on nan:

- the model's parameters and the batch on different devices (checked before the first step);
- a batch whose shape the model or the loss rejects (the original error is chained), or
  targets that an element-wise loss would silently broadcast against the outputs (PyTorch
  only warns: ``(B, 1)`` outputs against ``(B,)`` targets give a ``(B, B)`` difference);
- a loss that becomes nan or inf (stopped *before* ``backward``, so the weights stay finite;
  under data parallelism on every rank at the same step).

``where`` is a zero-argument function returning e.g. ``"epoch 2/5, step 7/32"``: the
message is only formatted when something is wrong, so the checks cost nothing per batch.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dlkit.train.batches import describe, tensors_in

Where = Callable[[], str]


def check_devices(model: nn.Module, batch: Any, device: torch.device, where: Where) -> None:
    """Raise ``RuntimeError`` naming both devices if a batch tensor is not where the model is."""
    params = {p.device for p in model.parameters()}
    data = {t.device for t in tensors_in(batch)}
    if data - params:
        raise RuntimeError(
            f"device mismatch at {where()}: the model's parameters are on "
            f"{', '.join(sorted(map(str, params)))} but the batch is on "
            f"{', '.join(sorted(map(str, data)))} (the Trainer's device is {device}); "
            f"call model.to({str(device)!r}) before fit"
        )


def split_batch(batch: Any, where: Where) -> tuple[Any, Any]:
    """``(inputs, targets)`` from a batch, or a ``TypeError`` describing what came instead."""
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        raise TypeError(
            f"batches must be (inputs, targets) pairs, but at {where()} the loader gave "
            f"{describe(batch)}"
        )
    return batch[0], batch[1]


def forward(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    inputs: Any,
    targets: Any,
    precision: AbstractContextManager[object],
    where: Where,
    *,
    check_broadcast: bool = False,
) -> tuple[Any, torch.Tensor]:
    """``outputs = model(inputs)`` and ``loss = loss_fn(outputs, targets)`` inside ``precision``.

    A ``RuntimeError`` from the model (or a ``RuntimeError``/``ValueError`` from the loss)
    is re-raised with the location and the batch's dtypes and shapes, chained to the
    original. Out-of-memory errors pass through unchanged: they are not about shapes.
    With ``check_broadcast`` (the Trainer sets it on a fit's first batch), PyTorch's
    "target size ... different to the input size" warning becomes a ``ValueError``.
    """
    with precision:
        try:
            outputs = model(inputs)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:
            raise RuntimeError(
                f"the model rejected the batch at {where()}: inputs {describe(inputs)}, "
                f"targets {describe(targets)}. Does the batch have the shape the model "
                f"expects? Original error: {_first_line(err)}"
            ) from err
        strict = warnings.catch_warnings() if check_broadcast else contextlib.nullcontext()
        try:
            with strict:
                if check_broadcast:
                    warnings.filterwarnings("error", "Using a target size", UserWarning)
                loss = loss_fn(outputs, targets)
        except torch.OutOfMemoryError:
            raise
        except UserWarning as err:
            raise ValueError(
                f"the loss would broadcast the targets against the outputs at {where()}: "
                f"outputs {describe(outputs)}, targets {describe(targets)}; reshape one to "
                f"the other's shape (e.g. targets.unsqueeze(1)). PyTorch: {_first_line(err)}"
            ) from err
        except (RuntimeError, ValueError) as err:
            raise RuntimeError(
                f"the loss rejected the batch at {where()}: outputs {describe(outputs)}, "
                f"targets {describe(targets)}. Original error: {_first_line(err)}"
            ) from err
    return outputs, loss


def check_loss(
    loss: Any,
    inputs: Any,
    where: Where,
    last_finite: Callable[[], str],
    distributed: bool = False,
) -> float:
    """The loss as a Python float; ``FloatingPointError`` if it is nan or inf.

    ``last_finite()`` describes the previous finite loss for the message. Reading the value
    costs one host-device sync per batch on a GPU: the price of never training on nan.
    ``distributed``: data-parallel training, where every rank must stop together.
    """
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise ValueError(
            f"loss_fn must return a scalar tensor (the batch's mean loss), but at {where()} "
            f"it returned {describe(loss)}"
        )
    value = loss.item()
    finite = math.isfinite(value)
    # A collective: under data parallelism every rank calls it at every step.
    if distributed and not _finite_on_every_rank(loss, finite) and finite:
        raise FloatingPointError(
            f"the loss is nan or inf on another data-parallel rank at {where()} (this "
            f"rank's loss is {value}); every rank stops together. See that rank's error."
        )
    if finite:
        return value
    bad_input = any(not t.isfinite().all() for t in tensors_in(inputs) if t.is_floating_point())
    raise FloatingPointError(
        f"the loss is {value} at {where()}; {last_finite()}. "
        + ("The batch's inputs contain nan/inf. " if bad_input else "")
        + "The weights were not updated with it. Try a lower learning rate, max_grad_norm, "
        "or check the data."
    )


def _finite_on_every_rank(loss: torch.Tensor, finite_here: bool) -> bool:
    """Whether the loss is finite on all ranks of the process group.

    Under DDP a nan on one rank must stop every rank at the same step: a rank that stopped
    alone would leave the others waiting in the next gradient all-reduce until it times
    out. One tiny all-reduce per step is the price.
    """
    flag = torch.tensor([0.0 if finite_here else 1.0], device=loss.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag.item() == 0.0


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
