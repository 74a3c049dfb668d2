"""Checkpoints: everything needed to resume a run exactly, written atomically.

A checkpoint is one ``torch.save`` file holding a dict::

    format, format_version, torch_version       what wrote it
    model, optimizer, scheduler, scaler          state dicts (optimizer etc. may be None)
    optimizer_class, scheduler_class             class names, checked when loading
    rng                                          seed.rng_state(): Python, NumPy, torch, CUDA
    epoch, step, global_step                     where the run is (see save_checkpoint)
    history                                      {"loss": [...], "val_loss": [...], ...}
    extra                                        anything else (the Trainer's own state)

**Atomic write.** ``torch.save`` first writes to a temporary file in the same folder,
which is flushed and ``fsync``-ed, then ``os.replace`` renames it over ``path`` in one
step. A crash (or SIGKILL) while saving leaves the previous file untouched, never a half
written one. The rename is atomic only within one file system, hence the same folder.

**Safe load.** Files are read with ``torch.load(weights_only=True)``: the unpickler only
rebuilds tensors and plain containers (dict, list, tuple, str, numbers, None), so opening
a checkpoint someone sent you cannot run code. Everything dlkit stores is of those types
(the NumPy RNG state is converted to a tensor for this reason); an ``extra`` holding other
objects is refused at load with a :class:`CheckpointError` that says so.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlkit.train.seed import rng_state, set_rng_state

FORMAT = "dlkit.checkpoint"
FORMAT_VERSION = 1
_SHOW = 5  # how many offending keys an error message lists


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, not dlkit's, or does not fit the model/optimizer."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers.

    Saving the unwrapped module keeps state-dict keys free of ``module.`` and
    ``_orig_mod.`` prefixes, so a checkpoint from a DDP or compiled run loads into a
    plain model and vice versa.
    """
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule
        else:
            return model


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int,
    step: int,
    history: Mapping[str, list[float]],
    global_step: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to ``path`` atomically and return ``path``.

    Where the run is, as a *resume cursor*:

    - ``epoch``: the 0-based epoch in progress;
    - ``step``: how many batches of that epoch are already trained (within the epoch,
      ``0 <= step <= len(loader)``). An end-of-epoch checkpoint is written as
      ``(epoch + 1, 0)``: "start the next epoch from its first batch";
    - ``global_step``: optimizer steps taken since the run began (across epochs), used
      by step-based schedules and ``every_n_steps`` checkpointing.

    The RNG states are captured now (:func:`dlkit.train.seed.rng_state`). ``model`` may be
    wrapped in DDP or ``torch.compile``; the plain module's state is stored.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": str(torch.__version__),  # a plain str: TorchVersion is not safe to load
        "model": unwrap(model).state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "optimizer_class": None if optimizer is None else type(optimizer).__name__,
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scheduler_class": None if scheduler is None else type(scheduler).__name__,
        "scaler": None if scaler is None else scaler.state_dict(),
        "rng": rng_state(),
        "epoch": int(epoch),
        "step": int(step),
        "global_step": None if global_step is None else int(global_step),
        "history": {name: [float(v) for v in values] for name, values in history.items()},
        "extra": dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder (same file system), so os.replace is an atomic rename. A unique name
    # keeps concurrent writers apart; "xb" creates it with the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_folder(path.parent)  # and so is the rename itself (POSIX)
    return path


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder; os.replace is still atomic
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    map_location: str | torch.device = "cpu",
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load ``path`` into ``model`` (and ``optimizer``, ``scheduler``, ``scaler`` if given).

    ``map_location="cpu"`` reads every tensor onto the CPU first; ``load_state_dict``
    then copies them to wherever the model's parameters live, so a GPU checkpoint loads
    on a laptop. With ``restore_rng`` the RNG states are restored too.

    Returns the metadata: ``epoch``, ``step``, ``global_step``, ``history``, ``extra``,
    ``rng``, ``torch_version``, ``format_version`` and ``path``.

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, is not a dlkit
            checkpoint, or does not match the model (missing/unexpected keys, shapes),
            the optimizer, the scheduler or the scaler. The message names the file.
    """
    path = Path(path)
    payload = _read(path, map_location)
    target = unwrap(model)
    _check_model(path, payload["model"], target)
    # All or nothing: if the optimizer, scheduler or scaler part does not fit, put back
    # what was already loaded, so a failed load leaves the objects as they were.
    parts = {"model": target, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    before = {
        name: copy.deepcopy(obj.state_dict()) for name, obj in parts.items() if obj is not None
    }
    try:
        target.load_state_dict(payload["model"])
        _load_part(path, "optimizer", optimizer, payload)
        _load_part(path, "scheduler", scheduler, payload)
        if scaler is not None and payload.get("scaler") is not None:
            try:
                scaler.load_state_dict(payload["scaler"])
            except RuntimeError as err:
                raise CheckpointError(f"checkpoint {path}: gradient scaler state: {err}") from err
    except CheckpointError:
        for name, state in before.items():
            parts[name].load_state_dict(state)
        raise
    if restore_rng:
        set_rng_state(payload["rng"])
    keys = ("epoch", "step", "global_step", "history", "extra", "rng", "torch_version")
    meta = {key: payload[key] for key in keys}
    meta.update(format_version=payload["format_version"], path=path)
    return meta


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """``torch.load`` with each way of failing turned into a CheckpointError naming ``path``."""
    if not path.exists():
        near = sorted(p.name for p in path.parent.glob("*.pt")) if path.parent.is_dir() else []
        hint = f"; {path.parent} holds {near[:_SHOW]}" if near else ""
        raise CheckpointError(f"checkpoint {path} does not exist{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): nothing was saved in it")
    with open(path, "rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            lines = [line.strip() for line in str(err).splitlines()]
            detail = next((line for line in lines if "Unsupported global" in line), lines[-1])
            raise CheckpointError(
                f"checkpoint {path} holds Python objects that safe loading "
                "(torch.load(weights_only=True)) refuses; keep 'extra' to tensors, numbers, "
                f"strings, lists and dicts. {detail}"
            ) from err
        raise CheckpointError(_corrupt(path, size, is_zip, err)) from err
    except Exception as err:  # truncated zips, random bytes: RuntimeError, KeyError, EOFError
        raise CheckpointError(_corrupt(path, size, is_zip, err)) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        keys = sorted(map(str, payload))[:_SHOW] if isinstance(payload, dict) else None
        what = f"a dict with keys {keys}" if keys is not None else type(payload).__name__
        raise CheckpointError(
            f"{path} is a PyTorch file but not a dlkit checkpoint (it holds {what}). "
            "A bare state dict loads with model.load_state_dict(torch.load(path))"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload['format_version']}, newer than "
            f"this dlkit reads ({FORMAT_VERSION}); upgrade dlkit"
        )
    return payload


def _corrupt(path: Path, size: int, is_zip: bool, err: Exception) -> str:
    if not is_zip:
        return f"checkpoint {path} ({size} bytes) is not a PyTorch file (it was not written by torch.save)"
    return (
        f"checkpoint {path} ({size} bytes) is truncated or corrupt and cannot be read "
        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no details'}); "
        "use an earlier checkpoint"
    )


def _check_model(path: Path, saved: Mapping[str, torch.Tensor], model: nn.Module) -> None:
    """Compare keys and shapes first, so the error lists what differs (not just the first)."""
    own = model.state_dict()
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in saved and saved[k].shape != own[k].shape
    ]
    problems = [
        f"{len(found)} {label}: {', '.join(found[:_SHOW])}{', ...' if len(found) > _SHOW else ''}"
        for label, found in (
            ("missing key(s) (in the model, not in the checkpoint)", missing),
            ("unexpected key(s) (in the checkpoint, not in the model)", unexpected),
            ("shape mismatch(es)", shapes),
        )
        if found
    ]
    if problems:
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__}: "
            + "; ".join(problems)
            + ". Was it saved from a different model or configuration?"
        )


def _load_part(path: Path, part: str, obj: Any, payload: Mapping[str, Any]) -> None:
    """Load the optimizer or scheduler state, checking it was saved from the same class."""
    if obj is None:
        return
    state, saved_class = payload.get(part), payload.get(f"{part}_class")
    if state is None:
        raise CheckpointError(f"checkpoint {path} holds no {part} state, but a {part} was given")
    if saved_class != type(obj).__name__:
        raise CheckpointError(
            f"checkpoint {path} holds {saved_class} {part} state, but the {part} given is "
            f"{type(obj).__name__}"
        )
    try:
        obj.load_state_dict(state)
    except (ValueError, KeyError, RuntimeError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {path}: the {part} state does not fit this {type(obj).__name__} "
            f"({err}). Was it built over the same parameters, in the same groups?"
        ) from err
