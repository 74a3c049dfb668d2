"""Data parallelism with PyTorch's own engine (``torch.distributed`` and DDP).

The same training code runs as one process or under ``torchrun --nproc_per_node N``;
these helpers answer "am I one of several processes, and which one?" so that only
rank 0 logs, plots and writes checkpoints.
"""

from __future__ import annotations

import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group (e.g. launched by ``torchrun``)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the group; 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes train together; 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True for the one process that logs and writes checkpoints (rank 0)."""
    return rank() == 0
