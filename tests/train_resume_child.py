"""Child process for tests/test_train_resume.py (not a test itself).

Trains a small dropout MLP with Adam, a per-step LR schedule, gradient accumulation,
clipping, early stopping and a checkpoint after every optimizer step, then writes the
final model, optimizer state and history to ``OUT/final.pt``.

    python tests/train_resume_child.py OUT [--resume] [--announce-at N] [--hold-at M]

``--announce-at N`` prints ``ANNOUNCE`` after optimizer step N (the parent kills the
process when it reads it, while training goes on); ``--hold-at M`` blocks on stdin after
step M, so the run can never finish before the kill arrives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from dlkit.train import (
    Callback,
    Checkpoint,
    EarlyStopping,
    LRSchedulerCallback,
    Trainer,
    accuracy,
    make_loader,
    seed_everything,
)

EPOCHS, SAMPLES, BATCH, ACCUM = 3, 160, 8, 2  # 20 micro-batches = 10 optimizer steps per epoch


class Signal(Callback):
    order = 200  # after Checkpoint: the step's checkpoint is on disk before we announce

    def __init__(self, announce_at: int | None, hold_at: int | None) -> None:
        self.announce_at, self.hold_at = announce_at, hold_at

    def on_batch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.global_step == self.announce_at:
            print("ANNOUNCE", flush=True)
        if trainer.global_step == self.hold_at:
            print("HOLD", flush=True)
            sys.stdin.read()  # the parent never writes: blocks until SIGKILL


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--announce-at", type=int)
    parser.add_argument("--hold-at", type=int)
    args = parser.parse_args()

    torch.set_num_threads(1)
    seed_everything(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(SAMPLES + 64, 6, generator=g)
    y = (x[:, :3].sum(dim=1) > 0).long()
    train = make_loader(TensorDataset(x[:SAMPLES], y[:SAMPLES]), BATCH, shuffle=True, device="cpu")
    val = make_loader(TensorDataset(x[SAMPLES:], y[SAMPLES:]), 32, device="cpu")

    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    total = EPOCHS * SAMPLES // (BATCH * ACCUM)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-2, total_steps=total)
    trainer = Trainer(
        model,
        optimizer,
        nn.CrossEntropyLoss(),
        device="cpu",
        metrics={"acc": accuracy},
        callbacks=[
            LRSchedulerCallback(schedule, interval="step"),
            EarlyStopping("val_loss", patience=100),
            Checkpoint(args.out, every_n_steps=1),
            Signal(args.announce_at, args.hold_at),
        ],
        grad_accum_steps=ACCUM,
        max_grad_norm=1.0,
        progress=False,
        seed=0,
    )
    resume_from = args.out / "last.pt" if args.resume else None
    history = trainer.fit(train, val, epochs=EPOCHS, resume_from=resume_from)
    final = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history}
    torch.save(final, args.out / "final.pt")


if __name__ == "__main__":
    main()
