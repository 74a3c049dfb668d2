"""GPU-aware training helpers: device choice, reproducibility, mixed precision, the
Trainer with its callbacks, exact checkpoints, and data parallelism.

Memory accounting and throughput measurement live in the submodules
:mod:`dlkit.train.memory` and :mod:`dlkit.train.throughput`; ``python -m
dlkit.train.ddp_demo`` is a data-parallel script to launch with ``torchrun``."""

from dlkit.train.batches import make_loader, move_to
from dlkit.train.callbacks import Callback, Checkpoint, EarlyStopping, LRSchedulerCallback
from dlkit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dlkit.train.ddp import (
    all_reduce_mean,
    destroy_process_group,
    distributed_loader,
    init_process_group,
    unwrap_model,
    wrap_model,
)
from dlkit.train.device import describe_device, get_device, mps_available, one_thread
from dlkit.train.distributed import is_main_process, rank, world_size
from dlkit.train.live_plot import LivePlot, in_notebook
from dlkit.train.lr_finder import LRFinderResult, lr_range_test
from dlkit.train.metrics import accuracy
from dlkit.train.precision import autocast, enable_tf32, grad_scaler, maybe_compile
from dlkit.train.seed import rng_state, seed_everything, set_rng_state
from dlkit.train.trainer import History, Trainer

__all__ = [
    "Callback",
    "Checkpoint",
    "CheckpointError",
    "EarlyStopping",
    "History",
    "LRFinderResult",
    "LRSchedulerCallback",
    "LivePlot",
    "Trainer",
    "accuracy",
    "all_reduce_mean",
    "autocast",
    "describe_device",
    "destroy_process_group",
    "distributed_loader",
    "enable_tf32",
    "get_device",
    "grad_scaler",
    "in_notebook",
    "init_process_group",
    "is_main_process",
    "load_checkpoint",
    "lr_range_test",
    "make_loader",
    "maybe_compile",
    "move_to",
    "mps_available",
    "one_thread",
    "rank",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "unwrap_model",
    "world_size",
    "wrap_model",
]
