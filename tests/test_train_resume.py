"""Resume is exact: a run killed with SIGKILL mid-epoch and resumed from its last checkpoint
ends with weights bit-identical to a run that was never interrupted."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dlkit.train import Callback, Checkpoint, CheckpointError, Trainer, seed_everything

CHILD = Path(__file__).with_name("train_resume_child.py")
TIMEOUT = 120  # seconds; generous for a loaded CI machine, a normal run takes ~10 s in all
STEPS_PER_EPOCH = 10  # as in train_resume_child.py


def _start(out: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(out), *args],
        stdin=subprocess.PIPE,  # never written: --hold-at blocks on it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _lines(proc: subprocess.Popen[bytes]) -> queue.Queue[bytes]:
    """The child's stdout lines, read by a thread so that waiting can time out."""
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(b"<EOF>")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err.decode()


def _tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested state dict, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    else:
        return {}
    found: dict[str, torch.Tensor] = {}
    for key, value in items:
        found |= _tensors(value, f"{prefix}/{key}")
    return found


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    reference = _start(tmp_path / "reference")
    killed = _start(tmp_path / "killed", "--announce-at", "12", "--hold-at", "18")
    try:
        lines = _lines(killed)
        while (line := lines.get(timeout=TIMEOUT)) != b"ANNOUNCE":
            assert line != b"<EOF>", killed.communicate(timeout=TIMEOUT)[1].decode()
        os.kill(killed.pid, signal.SIGKILL)  # while it trains on (and checkpoints) steps 13..18
        killed.wait(timeout=TIMEOUT)
    finally:
        if killed.poll() is None:
            killed.kill()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "final.pt").exists()

    # The last checkpoint survived the kill intact and sits in the middle of epoch 2.
    cursor = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert cursor["epoch"] == 1 and 0 < cursor["step"] < 2 * STEPS_PER_EPOCH
    assert 12 <= cursor["global_step"] <= 18

    _finish(_start(tmp_path / "killed", "--resume"))
    _finish(reference)

    done = torch.load(tmp_path / "reference" / "final.pt", weights_only=True)
    resumed = torch.load(tmp_path / "killed" / "final.pt", weights_only=True)
    expected, got = _tensors(done["model"]), _tensors(resumed["model"])
    assert expected.keys() == got.keys() and len(expected) == 4
    unequal = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not unequal, f"weights differ after resume: {unequal}"
    expected, got = _tensors(done["optimizer"]), _tensors(resumed["optimizer"])
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert resumed["history"] == done["history"]  # losses, metrics and lr, exactly


# ------------------------------------------------------------------ in-process resumes


class _RandomAugment(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Adds fresh noise from the *global* torch RNG on every read (a random augmentation)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(48, 4, generator=g)
        self.y = (self.x.sum(dim=1) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + 0.1 * torch.randn(4), self.y[i]


class _Crash(Callback):
    """Raise after optimizer step ``step``, or as epoch ``epoch`` (0-based) starts."""

    order = 200

    def __init__(self, step: int | None = None, epoch: int | None = None) -> None:
        self.step, self.epoch = step, epoch

    def on_batch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt("simulated crash")

    def on_epoch_start(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


def _run(
    folder: Path,
    *,
    crash: _Crash | None = None,
    resume: bool = False,
    seed: int | None = 0,
    device: str = "cpu",
    precision: str = "fp32",
):
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    callbacks = [Checkpoint(folder, every_n_steps=2)]
    if crash is not None:
        callbacks.append(crash)
    # No generator: the sampler and the dataset draw from the global RNG.
    loader = DataLoader(_RandomAugment(), batch_size=8, shuffle=True)
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), device=device, callbacks=callbacks,
                      progress=False, seed=seed, precision=precision)  # fmt: skip
    history = trainer.fit(loader, epochs=3, resume_from=folder / "last.pt" if resume else None)
    return model.cpu(), history


@pytest.mark.parametrize(
    ("crash", "cursor", "seed"),
    [
        (_Crash(step=8), (1, 2), 0),  # 6 steps per epoch, a checkpoint every 2
        (_Crash(step=8), (1, 2), None),
        (_Crash(step=6), (0, 6), 0),  # after the epoch's last step, before its validation
        (_Crash(epoch=2), (2, 0), 0),  # from the end-of-epoch checkpoint
    ],
    ids=["mid-epoch", "mid-epoch-unseeded", "last-step", "epoch-boundary"],
)
def test_resume_replays_global_rng_draws_of_the_loader(tmp_path, crash, cursor, seed) -> None:
    """Even a loader without its own generator, with random augmentation, resumes exactly."""
    model, history = _run(tmp_path / "ref", seed=seed)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "run", crash=crash, seed=seed)
    meta = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert (meta["epoch"], meta["step"]) == cursor
    resumed, resumed_history = _run(tmp_path / "run", resume=True, seed=seed)
    assert resumed_history == history
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True)
    )


def test_resume_from_a_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"last\.pt does not exist"):
        _run(tmp_path, resume=True)


def test_mid_epoch_resume_needs_the_same_accumulation(tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, crash=_Crash(step=2))
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      nn.CrossEntropyLoss(), device="cpu", progress=False, grad_accum_steps=2)  # fmt: skip
    with pytest.raises(
        CheckpointError, match=r"grad_accum_steps=1; resume it mid-epoch with the same"
    ):
        trainer.fit(
            DataLoader(_RandomAugment(), batch_size=8), epochs=3, resume_from=tmp_path / "last.pt"
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_mid_epoch_resume_is_bit_identical(tmp_path, precision) -> None:
    """On a GPU with deterministic kernels, the gradient scaler's state included."""
    seed_everything(0, deterministic=True)
    try:
        model, history = _run(tmp_path / "ref", device="cuda", precision=precision)
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path / "run", crash=_Crash(step=8), device="cuda", precision=precision)
        resumed, resumed_history = _run(
            tmp_path / "run", resume=True, device="cuda", precision=precision
        )
    finally:
        torch.use_deterministic_algorithms(False)
    assert resumed_history == history
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
