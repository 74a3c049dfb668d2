"""Data-parallel training in one readable script: one process or many, same code.

Run it as one process, or as two CPU processes that split every global batch::

    python -m dlkit.train.ddp_demo --out runs/single
    torchrun --nproc_per_node 2 -m dlkit.train.ddp_demo --out runs/ddp

Both train a small MLP on the same fixed synthetic regression data with plain SGD and
the same **global** batch, so they end with the same weights up to floating-point
summation order (see ``dlkit.train.ddp`` for the math). Only rank 0 prints and writes
``weights.pt`` (the unwrapped module's ``state_dict``) and ``losses.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from dlkit.train.ddp import (
    TORCHRUN_ENV,
    all_reduce_mean,
    destroy_process_group,
    distributed_loader,
    init_process_group,
    unwrap_model,
    wrap_model,
)
from dlkit.train.device import get_device
from dlkit.train.distributed import is_main_process, rank, world_size

__all__ = ["DemoConfig", "ShardStep", "main", "make_data", "make_model", "simulate_ranks", "train"]


@dataclass(frozen=True)
class DemoConfig:
    """Everything that determines a run. ``samples`` must be divisible by the world size."""

    samples: int = 256
    features: int = 8
    hidden: int = 32
    global_batch_size: int = 32  # split evenly across ranks
    epochs: int = 3
    lr: float = 0.1
    seed: int = 0
    dtype: str = "float32"  # or "float64"


def make_data(cfg: DemoConfig) -> TensorDataset:
    """Fixed regression data from ``cfg.seed``: y = sin(x·w) + 0.1·noise, x ∈ R^features."""
    g = torch.Generator().manual_seed(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    x = torch.randn(cfg.samples, cfg.features, generator=g, dtype=dtype)  # (n, f)
    w = torch.randn(cfg.features, 1, generator=g, dtype=dtype) / cfg.features**0.5  # (f, 1)
    y = torch.sin(x @ w) + 0.1 * torch.randn(cfg.samples, 1, generator=g, dtype=dtype)  # (n, 1)
    return TensorDataset(x, y)


def make_model(cfg: DemoConfig) -> nn.Module:
    """A two-layer MLP initialised from ``cfg.seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = nn.Sequential(
            nn.Linear(cfg.features, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1)
        )
    return model.to(getattr(torch, cfg.dtype))


def train(cfg: DemoConfig, device: torch.device) -> tuple[nn.Module, list[float]]:
    """Train on this rank's shards; return the unwrapped model and the epoch losses.

    The epoch loss is the mean squared error over all samples of the epoch, gathered
    from every rank with ``all_reduce_mean`` so that all ranks report the same number.
    """
    n_ranks = world_size()
    if cfg.global_batch_size % n_ranks:
        raise ValueError(
            f"global_batch_size={cfg.global_batch_size} is not divisible by the "
            f"world size {n_ranks}; every rank needs the same per-rank batch"
        )
    if cfg.samples % n_ranks:
        raise ValueError(
            f"samples={cfg.samples} is not divisible by the world size {n_ranks}: "
            "DistributedSampler would repeat samples to even out the shards, and the run "
            "would no longer match single-process training"
        )
    per_rank_batch = cfg.global_batch_size // n_ranks  # b = B / N
    loader = distributed_loader(make_data(cfg), per_rank_batch, seed=cfg.seed, device=device)
    model = wrap_model(make_model(cfg), device)  # DDP broadcasts rank 0's weights here
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)

    losses = []
    for epoch in range(cfg.epochs):
        loader.sampler.set_epoch(epoch)  # same permutation on every rank, new each epoch
        totals = torch.zeros(2, dtype=torch.float64, device=device)  # [Σ loss·b, Σ b]
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(model(x), y)  # mean over this rank's b samples
            loss.backward()  # DDP averages the gradients over ranks during backward
            optimizer.step()  # identical gradients -> identical step on every rank
            totals += torch.stack([loss.detach().double() * len(x), totals.new_tensor(len(x))])
        totals = all_reduce_mean(totals)  # the 1/N cancels in the ratio below
        losses.append((totals[0] / totals[1]).item())
        if is_main_process():
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {losses[-1]:.6f}", flush=True)
    return unwrap_model(model), losses


#: ``step(model, optimizer, shards)`` with ``shards[r] = (x_r, y_r)``, rank ``r``'s batch.
ShardStep = Callable[
    [nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]], None
]


def simulate_ranks(cfg: DemoConfig, n_ranks: int, step: ShardStep) -> nn.Module:
    """Play ``n_ranks`` data-parallel ranks in one process; return the trained model.

    Same data, initial weights, optimizer and samplers as :func:`train` under
    ``torchrun --nproc_per_node n_ranks``: at every step, ``step(model, optimizer,
    shards)`` receives each rank's shard of the global batch (in rank order) and must
    compute the gradients and update the one shared model. A step that averages the
    per-shard gradients (what DDP's all-reduce does) ends with the weights torchrun writes,
    up to float32 summation order.
    """
    if n_ranks < 1 or cfg.global_batch_size % n_ranks or cfg.samples % n_ranks:
        raise ValueError(
            f"n_ranks={n_ranks} must be >= 1 and divide both global_batch_size="
            f"{cfg.global_batch_size} and samples={cfg.samples}"
        )
    data, model = make_data(cfg), make_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    samplers = [
        DistributedSampler(data, num_replicas=n_ranks, rank=r, shuffle=True, seed=cfg.seed)
        for r in range(n_ranks)
    ]
    loaders = [DataLoader(data, cfg.global_batch_size // n_ranks, sampler=s) for s in samplers]
    for epoch in range(cfg.epochs):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        for shards in zip(*loaders, strict=True):  # one (x_r, y_r) per rank
            step(model, optimizer, [(x, y) for x, y in shards])
    return model


def _parse_args(argv: list[str] | None) -> tuple[DemoConfig, Path, str]:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(prog="python -m dlkit.train.ddp_demo", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for rank 0's outputs")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    for name, value in asdict(defaults).items():
        choices = ["float32", "float64"] if name == "dtype" else None
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=value, choices=choices)
    args = vars(parser.parse_args(argv))
    out, device = args.pop("out"), args.pop("device")
    return DemoConfig(**args), out, device


def main(argv: list[str] | None = None) -> int:
    """Train once as one process, or as one rank of a ``torchrun`` job."""
    cfg, out, device_spec = _parse_args(argv)
    under_torchrun = all(name in os.environ for name in TORCHRUN_ENV)
    device = init_process_group(device=device_spec) if under_torchrun else get_device(device_spec)
    if under_torchrun and device.type == "cpu":
        torch.set_num_threads(1)  # N processes on few cores: one thread each, no oversubscription
    try:
        if is_main_process():
            print(
                f"world size {world_size()}: global batch {cfg.global_batch_size} = "
                f"{world_size()} × {cfg.global_batch_size // world_size()} per rank "
                f"on {device}",
                flush=True,
            )
        model, losses = train(cfg, device)
        if is_main_process():  # one writer: the other ranks hold identical weights
            out.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), out / "weights.pt")
            report = {"world_size": world_size(), "rank": rank(), "train_loss": losses}
            report["config"] = asdict(cfg)
            (out / "losses.json").write_text(json.dumps(report, indent=2) + "\n")
            print(f"rank {rank()} wrote weights.pt and losses.json to {out}", flush=True)
        if under_torchrun:
            # Leave the group together: a rank that tore down gloo while rank 0 was still
            # writing aborted ("terminate called without an active exception") on a busy machine.
            torch.distributed.barrier()
    finally:
        destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
