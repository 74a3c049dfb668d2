"""Child process for tests/test_train_ddp.py (not a test itself): ``Trainer.fit`` under DDP.

Trains ``ddp_demo``'s model and data with the Trainer, the way chapters train, with two
micro-batches per optimizer step and a ``Checkpoint`` callback; only rank 0 writes
``OUT/weights.pt``, ``OUT/history.json`` and the checkpoint.

    torchrun --nproc_per_node N tests/train_ddp_child.py OUT   # N ranks
    python tests/train_ddp_child.py OUT                        # one process

With ``NAN_ON_RANK=r`` in the environment, rank ``r``'s loss turns nan at its third batch:
every rank must then stop with a ``FloatingPointError`` instead of waiting for rank ``r``.

The per-rank batch is the global batch (64) divided by the number of ranks, so every
optimizer step averages the same examples however many processes run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from dlkit.train import (
    Checkpoint,
    Trainer,
    destroy_process_group,
    distributed_loader,
    init_process_group,
    is_main_process,
    unwrap_model,
    world_size,
    wrap_model,
)
from dlkit.train.ddp_demo import DemoConfig, make_data, make_model
from dlkit.train.distributed import is_distributed

CONFIG = DemoConfig(samples=240, global_batch_size=64, epochs=3)


def _loss_fn():
    """MSE, or with NAN_ON_RANK set an MSE that turns nan on that rank's third batch."""
    nan_rank = os.environ.get("NAN_ON_RANK")
    if nan_rank is None or int(nan_rank) != int(os.environ.get("RANK", "0")):
        return nn.functional.mse_loss
    calls = []

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        value = nn.functional.mse_loss(outputs, targets)
        return value * float("nan") if len(calls) == 3 else value

    return loss


def main(out: Path) -> None:
    launched = "RANK" in os.environ
    if launched:
        init_process_group("gloo", "cpu")
    per_rank_batch = CONFIG.global_batch_size // world_size()
    loader = distributed_loader(make_data(CONFIG), per_rank_batch, seed=CONFIG.seed, device="cpu")
    model = wrap_model(make_model(CONFIG), "cpu")  # DDP when distributed
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=CONFIG.lr),
        _loss_fn(),
        device="cpu",
        grad_accum_steps=2,  # under DDP: no_sync on the first micro-batch of each group
        callbacks=[Checkpoint(out)],
        progress=False,
    )
    history = trainer.fit(loader, epochs=CONFIG.epochs)
    if is_main_process():
        torch.save(unwrap_model(model).state_dict(), out / "weights.pt")
        report = {"history": history, "world_size": world_size(), "ddp": is_distributed()}
        (out / "history.json").write_text(json.dumps(report))
    if launched:
        destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
