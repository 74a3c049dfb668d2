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
from dlkit.train.embedding_neighbours import nearest_tokens, token_neighbours_table
from dlkit.train.live_plot import LivePlot, in_notebook
from dlkit.train.lm_metrics import bits_per_byte, evaluate_lm, perplexity
from dlkit.train.lm_training import LMRun, LMTrainConfig, train_lm
from dlkit.train.lr_finder import LRFinderResult, lr_range_test
from dlkit.train.metrics import accuracy
from dlkit.train.precision import autocast, enable_tf32, grad_scaler, maybe_compile
from dlkit.train.pretrained import PRETRAINED_DIR, load_pretrained_gpt, pretrained_log
from dlkit.train.seed import rng_state, seed_everything, set_rng_state
from dlkit.train.trainer import History, Trainer

__all__ = [
    "PRETRAINED_DIR",
    "Callback",
    "Checkpoint",
    "CheckpointError",
    "EarlyStopping",
    "History",
    "LMRun",
    "LMTrainConfig",
    "LRFinderResult",
    "LRSchedulerCallback",
    "LivePlot",
    "Trainer",
    "accuracy",
    "all_reduce_mean",
    "autocast",
    "bits_per_byte",
    "describe_device",
    "destroy_process_group",
    "distributed_loader",
    "enable_tf32",
    "evaluate_lm",
    "get_device",
    "grad_scaler",
    "in_notebook",
    "init_process_group",
    "is_main_process",
    "load_checkpoint",
    "load_pretrained_gpt",
    "lr_range_test",
    "make_loader",
    "maybe_compile",
    "move_to",
    "mps_available",
    "nearest_tokens",
    "one_thread",
    "perplexity",
    "pretrained_log",
    "rank",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "token_neighbours_table",
    "train_lm",
    "unwrap_model",
    "world_size",
    "wrap_model",
]
