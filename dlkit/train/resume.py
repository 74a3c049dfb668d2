"""Exact resume: rebuilding an epoch's batches so a resumed run repeats no random draw.

A run that is killed in the middle of epoch :math:`e` after :math:`s` batches and resumed
must see the rest of the epoch's batches in the same order, with the same augmentations,
and then draw the same dropout masks. Everything random that a ``DataLoader`` does comes
from the global torch RNG or from its ``generator``: the sampler's permutation (drawn on
the first batch), the workers' base seed (drawn by ``iter(loader)``) and any random
transform in the dataset. So:

1. at the start of every epoch, :func:`begin_epoch` re-seeds the loader's generator from
   :math:`(\\text{seed}, e, \\text{rank})` (when there is a seed: the order then depends
   on nothing else; the rank keeps data-parallel processes' augmentations apart) and
   records the RNG and generator states *before* ``iter(loader)``;
2. a checkpoint stores those epoch-start states, the cursor :math:`(e, s)` and the RNG
   states of the moment it was written;
3. :func:`resume_epoch` restores the epoch-start states, calls ``iter(loader)``, reads
   :math:`s` batches without training on them (replaying every draw the loader makes),
   then restores the checkpoint-time RNG states.

Reading :math:`s` batches costs their loading time, not their compute. This is exact for
``num_workers=0`` and for non-persistent workers (``persistent_workers=True`` keeps
worker RNG states across epochs, which no checkpoint can capture). Under data
parallelism rank 0 writes the checkpoint, so every rank resumes with rank 0's RNG states:
the run continues correctly, but bit-identity is only promised for one process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from dlkit.train.checkpoint import CheckpointError
from dlkit.train.distributed import rank
from dlkit.train.seed import derive_seed, rng_state, set_rng_state


def loader_generator(loader: Iterable[Any]) -> torch.Generator | None:
    """The ``torch.Generator`` a ``DataLoader`` shuffles with, if it was given one."""
    return getattr(loader, "generator", None)


def _set_epoch(loader: Iterable[Any], epoch: int) -> None:
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)  # DistributedSampler: a new (seed, epoch) order per epoch


def begin_epoch(
    loader: Iterable[Any], epoch: int, seed: int | None
) -> tuple[Iterator[Any], dict[str, Any]]:
    """Start epoch ``epoch``: returns its batch iterator and the states it started from."""
    _set_epoch(loader, epoch)
    generator = loader_generator(loader)
    if generator is not None and seed is not None:
        generator.manual_seed(derive_seed(seed, epoch, rank()))
    start = {
        "rng": rng_state(),
        "generator": None if generator is None else generator.get_state(),
    }
    return iter(loader), start


def resume_epoch(
    loader: Iterable[Any],
    epoch: int,
    start: dict[str, Any],
    done: int,
    rng: dict[str, Any],
    source: str = "the checkpoint",
) -> Iterator[Any]:
    """The iterator of epoch ``epoch`` positioned after its first ``done`` batches.

    ``start`` holds the states :func:`begin_epoch` recorded for this epoch and ``rng`` the
    RNG states at the checkpoint; both come from the checkpoint named by ``source``.
    """
    total = len(loader) if hasattr(loader, "__len__") else None
    if total is not None and done > total:
        raise CheckpointError(
            f"{source} is at batch {done} of epoch {epoch + 1}, but the training loader "
            f"has only {total} batches: is it the same loader and batch size?"
        )
    _set_epoch(loader, epoch)
    set_rng_state(start["rng"])
    generator = loader_generator(loader)
    if generator is not None and start["generator"] is not None:
        generator.set_state(start["generator"].cpu())
    batches = iter(loader)
    for _ in range(done):
        next(batches)
    set_rng_state(rng)
    return batches
