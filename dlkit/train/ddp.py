r"""Distributed data parallel (DDP) with PyTorch's own engine, launched by ``torchrun``.

Every process (a *rank*) holds a full copy of the model and trains on its own shard of
each global batch. After ``loss.backward()``, ``DistributedDataParallel`` all-reduces the
gradients so that every rank holds their **mean** and takes the same optimizer step:

.. math::

    g = \frac{1}{N} \sum_{r=0}^{N-1} g_r, \qquad
    g_r = \frac{1}{b} \sum_{i \in S_r} \nabla_\theta \ell_i

for ``N`` ranks, per-rank batch ``b`` and disjoint shards :math:`S_r` of the global batch.
Substituting :math:`g_r` gives :math:`g = \frac{1}{N b} \sum_{i \in S_0 \cup \dots \cup
S_{N-1}} \nabla_\theta \ell_i`, the gradient that **one** process computes on the global
batch of :math:`B = N b` samples. So N processes with batch b train exactly like one
process with batch N·b (up to floating-point summation order) when all of these hold:

* the loss is a mean over the batch (``reduction="mean"``; with ``"sum"`` DDP's averaging
  gives :math:`\frac{1}{N}` of the single-process gradient);
* at every step all ranks hold the same number of samples ``b`` (the mean of means equals
  the global mean only for equal sizes): the dataset size must be divisible by ``N``,
  otherwise ``DistributedSampler`` pads with repeated samples (or drops the tail);
* the forward pass of a sample does not depend on the rest of its batch (no batch-norm,
  whose statistics would cover ``b`` samples instead of ``N b``; ``SyncBatchNorm`` exists
  for that) nor on per-rank randomness such as dropout;
* all ranks start from the same weights: DDP broadcasts rank 0's parameters and buffers
  when it wraps the model, and identical gradients then keep them identical.

Typical use (same script for one process and for ``torchrun --nproc_per_node N``)::

    device = init_process_group()  # one process: call get_device() instead
    model = wrap_model(MyModel(), device)
    loader = distributed_loader(dataset, batch_size=global_batch // world_size())
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on all ranks
        ...
    destroy_process_group()
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dlkit.train.device import DeviceLike, get_device
from dlkit.train.distributed import is_distributed, rank, world_size

__all__ = [
    "TORCHRUN_ENV",
    "all_reduce_mean",
    "destroy_process_group",
    "distributed_loader",
    "init_process_group",
    "unwrap_model",
    "wrap_model",
]

#: Environment variables that ``torchrun`` sets for every process it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def init_process_group(backend: str = "auto", device: DeviceLike = "auto") -> torch.device:
    """Join the process group that ``torchrun`` set up; return this process's device.

    ``device="auto"`` gives ``cuda:LOCAL_RANK`` when CUDA is available (one GPU per
    process) and the CPU otherwise; Apple MPS has no distributed backend, so "auto" never
    picks it. ``backend="auto"`` gives ``nccl`` for CUDA and ``gloo`` for the CPU. Called
    again in an initialised group, it only returns the device.
    """
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise RuntimeError(
            "init_process_group() must run under torchrun, which sets "
            f"{', '.join(TORCHRUN_ENV)}; missing here: {', '.join(missing)}. "
            "Launch the script with e.g.\n"
            "    torchrun --nproc_per_node 2 -m your.module ...\n"
            "or, for one process, skip init_process_group() and use "
            "dlkit.train.get_device()."
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    if isinstance(device, str) and device.strip().lower() == "auto":
        resolved = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    else:
        resolved = get_device(device)  # validates the name and that the device exists
    if resolved.type == "cuda":
        if resolved.index is None:
            count = torch.cuda.device_count()
            if local_rank >= count:
                raise RuntimeError(
                    f"LOCAL_RANK={local_rank} needs GPU {local_rank}, but only {count} "
                    "CUDA device(s) exist: use --nproc_per_node <= number of GPUs"
                )
            resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    elif resolved.type != "cpu":
        raise ValueError(f"no distributed backend supports {resolved.type!r}; use 'cpu' or 'cuda'")
    if backend == "auto":
        backend = "nccl" if resolved.type == "cuda" else "gloo"
    if not is_distributed():
        # env:// reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
        extra = {"device_id": resolved} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, init_method="env://", **extra)
    return resolved


def destroy_process_group() -> None:
    """Leave the process group; does nothing when there is none (safe to call twice)."""
    if is_distributed():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, device: DeviceLike) -> nn.Module:
    """Move ``model`` to ``device`` and wrap it in ``DistributedDataParallel`` if distributed.

    Wrapping broadcasts rank 0's parameters and buffers to every rank, and registers hooks
    that average gradients across ranks during ``backward()``. Not distributed, the same
    module object is returned (moved to ``device``), so one script serves both cases.
    """
    device = torch.device(device)
    model = model.to(device)
    if not is_distributed():
        return model
    device_ids = [device] if device.type == "cuda" else None  # CPU modules take none
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (for ``state_dict()``)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def distributed_loader(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    device: DeviceLike = "auto",
    **loader_kwargs: Any,
) -> DataLoader[Any]:
    r"""A ``DataLoader`` that gives this rank its shard of every global batch.

    ``batch_size`` is **per process**: the global batch is ``batch_size × world_size()``.
    The sampler is always a ``DistributedSampler`` (with ``num_replicas=1`` when not
    distributed), so call ``loader.sampler.set_epoch(epoch)`` for a new shuffle each epoch.
    Its order is a permutation ``p`` seeded by ``seed + epoch``; rank ``r`` gets
    ``p[r], p[r + N], p[r + 2N], ...``, so step ``k`` of all ranks together covers exactly
    ``p[kB : (k+1)B]`` with ``B = N·batch_size`` — the same global batches that one process
    sees with ``batch_size=B`` and the same seed.

    ``len(dataset)`` should be divisible by ``N``: otherwise the sampler repeats
    samples to even out the shards (or, with ``drop_last=True``, drops the tail), and
    the run no longer matches one process. ``drop_last`` also drops an incomplete last
    batch. Memory is pinned for faster host-to-device copies when ``device`` is CUDA;
    ``loader_kwargs`` (``num_workers``, ``pin_memory``, ...) go to ``DataLoader``.
    """
    if is_distributed():
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=shuffle, seed=seed)
    loader_kwargs.setdefault("pin_memory", get_device(device).type == "cuda")
    # The loader draws worker seeds from this generator instead of the global RNG.
    loader_kwargs.setdefault("generator", torch.Generator().manual_seed(seed + rank()))
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **loader_kwargs
    )


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    r"""The element-wise mean of ``tensor`` over all ranks, :math:`\frac{1}{N}\sum_r x_r`.

    Every rank must call it (it is a collective) with a tensor of the same shape, on
    this process's device (CUDA for NCCL). Returns a new floating-point tensor and leaves
    the argument unchanged; not distributed, it returns ``tensor`` itself. Averaging each
    parameter's ``.grad`` with it after ``backward()`` is what DDP does for you.
    """
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    if not out.is_floating_point():
        out = out.to(torch.get_default_dtype())
    dist.all_reduce(out, op=dist.ReduceOp.SUM)  # every rank now holds Σ_r x_r
    return out.div_(world_size())
