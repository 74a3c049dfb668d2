"""Batches: reproducible loaders, moving batches to the device, describing them in errors.

Host-to-device copies are fastest from *pinned* (page-locked) host memory, and only
then can ``tensor.to("cuda", non_blocking=True)`` overlap the copy with computation. The
DataLoader decides whether its batches are pinned (``pin_memory=True``), so that is the
caller's choice; :func:`make_loader` makes it for you (pinned on CUDA only, since pinning
costs time and locked memory and buys nothing on a CPU).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from dlkit.train.device import DeviceLike, get_device


def make_loader(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    device: DeviceLike = "auto",
    num_workers: int = 0,
    drop_last: bool = False,
    **kwargs: Any,
) -> DataLoader[Any]:
    """A ``DataLoader`` with a seeded ``torch.Generator`` and ``pin_memory`` on CUDA.

    The generator makes the shuffle order a function of ``seed`` alone, independent of
    every other random draw in the program; the :class:`~dlkit.train.trainer.Trainer`
    re-seeds it each epoch from ``(trainer seed, epoch, rank)``. Other keyword arguments go to
    ``DataLoader`` unchanged.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        pin_memory=get_device(device).type == "cuda",
        num_workers=num_workers,
        drop_last=drop_last,
        **kwargs,
    )


def move_to(obj: Any, device: torch.device, *, non_blocking: bool = True) -> Any:
    """Copy every tensor in ``obj`` (a tensor, or tuples/lists/dicts of them) to ``device``.

    ``non_blocking=True`` makes copies from pinned memory asynchronous on CUDA; on a CPU,
    and for tensors already on ``device``, ``.to`` returns the tensor itself (no copy).
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {
            key: move_to(value, device, non_blocking=non_blocking) for key, value in obj.items()
        }
    if isinstance(obj, tuple | list):
        moved = [move_to(value, device, non_blocking=non_blocking) for value in obj]
        return moved if isinstance(obj, list) else tuple(moved)
    return obj


def tensors_in(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside ``obj`` (nested tuples, lists and dicts), depth first."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from tensors_in(value)
    elif isinstance(obj, tuple | list):
        for value in obj:
            yield from tensors_in(value)


def describe(obj: Any) -> str:
    """Dtype, shape and device for error messages: ``float32 (8, 5) on cpu``."""
    if isinstance(obj, torch.Tensor):
        return f"{str(obj.dtype).removeprefix('torch.')} {tuple(obj.shape)} on {obj.device}"
    if isinstance(obj, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, tuple | list):
        return "(" + ", ".join(describe(v) for v in obj) + ")"
    return type(obj).__name__


def batch_size(targets: Any) -> int:
    """How many examples a batch holds: the first dimension of its first tensor."""
    first = targets if isinstance(targets, torch.Tensor) else next(tensors_in(targets), None)
    if first is None or first.ndim == 0:
        return 1
    return int(first.shape[0])
