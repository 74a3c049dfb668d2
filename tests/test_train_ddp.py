"""dlkit.train.ddp: helpers outside torchrun, in a one-process group, and 2 CPU ranks vs one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from dlkit.train import ddp_demo
from dlkit.train.ddp import (
    TORCHRUN_ENV,
    all_reduce_mean,
    destroy_process_group,
    distributed_loader,
    init_process_group,
    unwrap_model,
    wrap_model,
)
from dlkit.train.distributed import is_distributed, world_size

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def test_outside_torchrun_is_a_clear_error(no_torchrun_env: None) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)missing here: RANK, WORLD_SIZE.*torchrun --nproc"):
        init_process_group()


def test_error_names_only_the_missing_variables(
    no_torchrun_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"missing here: LOCAL_RANK, MASTER_ADDR, MASTER_PORT\."):
        init_process_group()


def test_helpers_are_identities_when_not_distributed() -> None:
    assert not is_distributed()
    model = torch.nn.Linear(3, 2)
    assert wrap_model(model, "cpu") is model
    assert unwrap_model(model) is model
    x = torch.arange(4.0)
    assert all_reduce_mean(x) is x
    destroy_process_group()  # nothing to destroy: a no-op, twice
    destroy_process_group()


def test_loader_sees_the_global_batches_that_ranks_share() -> None:
    # The claim in distributed_loader's docstring, checked without processes: step k of
    # ranks 0 and 1 (batch b each) together covers step k of one process (batch 2b).
    dataset = TensorDataset(torch.arange(40))
    single = distributed_loader(dataset, 6, seed=3)  # B = 2·3; 40 = 6·6 + 4: a ragged tail
    assert isinstance(single.sampler, DistributedSampler)
    assert single.pin_memory is False  # CPU
    for epoch in range(2):
        single.sampler.set_epoch(epoch)
        ranks = []
        for r in range(2):
            sampler = DistributedSampler(dataset, num_replicas=2, rank=r, seed=3)
            sampler.set_epoch(epoch)
            ranks.append(list(DataLoader(dataset, batch_size=3, sampler=sampler)))
        for k, (global_batch,) in enumerate(single):
            shards = torch.cat([ranks[0][k][0], ranks[1][k][0]])
            assert sorted(shards.tolist()) == sorted(global_batch.tolist()), f"step {k}"
    orders = []
    for epoch in (0, 0, 1):
        single.sampler.set_epoch(epoch)
        orders.append(torch.cat([batch for (batch,) in single]).tolist())
    assert orders[0] == orders[1] != orders[2]  # seeded per epoch, reshuffled each epoch
    assert sorted(orders[0]) == list(range(40))  # one rank: every sample once, no padding


def test_loader_leaves_the_global_rng_alone() -> None:
    before = torch.get_rng_state()
    list(distributed_loader(TensorDataset(torch.arange(10)), 4))
    assert torch.equal(torch.get_rng_state(), before)


def test_one_process_group_uses_ddp(no_torchrun_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    for name, value in {**env, "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(name, value)
    try:
        device = init_process_group(device="cpu")
        assert device == torch.device("cpu") and is_distributed() and world_size() == 1
        assert init_process_group(device="cpu") == device  # already initialised: no error
        model = torch.nn.Linear(3, 2)
        wrapped = wrap_model(model, device)
        assert isinstance(wrapped, DistributedDataParallel) and unwrap_model(wrapped) is model
        x = torch.tensor([1, 2, 3])
        mean = all_reduce_mean(x)
        assert mean is not x and mean.dtype == torch.get_default_dtype()
        torch.testing.assert_close(mean, x.float())
    finally:
        destroy_process_group()
        destroy_process_group()
    assert not is_distributed()


def test_demo_refuses_uneven_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ddp_demo, "world_size", lambda: 2)
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="global_batch_size=33 is not divisible"):
        ddp_demo.train(ddp_demo.DemoConfig(global_batch_size=33), cpu)
    with pytest.raises(ValueError, match=r"samples=255 .* repeat samples"):
        ddp_demo.train(ddp_demo.DemoConfig(samples=255), cpu)


def test_demo_cli_single_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ddp_demo.main(["--out", str(tmp_path), "--epochs", "2", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "losses.json").read_text())
    assert report["world_size"] == 1 and len(report["train_loss"]) == 2
    assert report["train_loss"][1] < report["train_loss"][0]
    state = torch.load(tmp_path / "weights.pt")
    assert set(state) == set(ddp_demo.make_model(ddp_demo.DemoConfig()).state_dict())
    assert "epoch 2/2" in capsys.readouterr().out


def _average_shard_gradients(model, optimizer, shards) -> None:
    """A data-parallel step by hand: each shard's mean-loss gradient, averaged over shards."""
    per_shard = []
    for x, y in shards:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        per_shard.append([p.grad.clone() for p in model.parameters()])
    for p, grads in zip(model.parameters(), zip(*per_shard, strict=True), strict=True):
        p.grad = torch.stack(grads).mean(dim=0)
    optimizer.step()


def test_simulated_ranks_see_every_sample_once_per_epoch() -> None:
    cfg = ddp_demo.DemoConfig(samples=40, global_batch_size=8, epochs=1)
    seen: list[torch.Tensor] = []
    ddp_demo.simulate_ranks(cfg, 2, lambda m, o, shards: seen.extend(x for x, _ in shards))
    assert len(seen) == 10 and all(len(x) == 4 for x in seen)
    rows = torch.cat(seen)
    assert torch.unique(rows, dim=0).shape[0] == 40  # every sample once
    with pytest.raises(ValueError, match="n_ranks=3 must"):
        ddp_demo.simulate_ranks(cfg, 3, lambda m, o, shards: None)


# 240 samples split evenly over 2 ranks; a global batch of 64 leaves a ragged last step
# (3 × 64 + 48), which still matches because each rank then holds 24 samples.
ARGS = ["--samples", "240", "--global-batch-size", "64", "--epochs", "3", "--device", "cpu"]


@pytest.mark.slow
def test_two_cpu_ranks_match_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    out, logs = tmp_path / "ddp", tmp_path / "logs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "--log-dir", str(logs), "--tee", "3",
        "-m", "dlkit.train.ddp_demo", "--out", str(out), *ARGS,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env["OMP_NUM_THREADS"] = "1"
    child = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        text=True,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # torchrun and both of its workers
        output, _ = child.communicate()
        pytest.fail(f"torchrun did not finish in 120 s:\n{output}")
    assert child.returncode == 0, f"torchrun failed ({child.returncode}):\n{output}"

    # Only rank 0 wrote files and printed; rank 1 ran the same loop silently.
    assert sorted(p.name for p in out.iterdir()) == ["losses.json", "weights.pt"], output
    report = json.loads((out / "losses.json").read_text())
    assert report["rank"] == 0 and report["world_size"] == 2
    stdout = {p.parent.name: p.read_text() for p in logs.rglob("stdout.log")}
    assert set(stdout) == {"0", "1"}, output
    assert "rank 0 wrote weights.pt" in stdout["0"] and stdout["1"] == "", output

    cfg = ddp_demo.DemoConfig(samples=240, global_batch_size=64, epochs=3)
    single, single_losses = ddp_demo.train(cfg, torch.device("cpu"))
    ddp_state = torch.load(out / "weights.pt")
    # Same global batches, same init, gradients averaged over equal shards: the only
    # difference is the order of the float32 sums (per-rank means, then DDP's all-reduce,
    # versus one mean over 64). Each step perturbs weights by ~eps·|update| with
    # eps = 1.2e-7; over 12 steps that stays far below rtol=1e-5, atol=1e-6.
    for name, value in single.state_dict().items():
        torch.testing.assert_close(
            ddp_state[name], value, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
        )
    torch.testing.assert_close(report["train_loss"], single_losses, rtol=1e-5, atol=1e-6)
    max_diff = max((ddp_state[k] - v).abs().max().item() for k, v in single.state_dict().items())
    print(f"max |DDP - single| weight difference: {max_diff:.3g}")

    # One process playing both ranks, averaging the shards' gradients by hand, agrees too
    # (what chapter 11's exercise checks a learner's all-reduce against).
    simulated = ddp_demo.simulate_ranks(cfg, 2, _average_shard_gradients)
    for name, value in simulated.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, rtol=1e-5, atol=1e-6)

    # The tolerance discriminates: one process on the per-rank batch (32) ends elsewhere.
    per_rank, _ = ddp_demo.train(replace(cfg, global_batch_size=32), torch.device("cpu"))
    gap = max((ddp_state[k] - v).abs().max().item() for k, v in per_rank.state_dict().items())
    assert gap > 1e-3, f"batch 32 and batch 64 should train differently (gap {gap:.3g})"


def test_trainer_under_torchrun_matches_one_process(tmp_path: Path) -> None:
    """The chapters' Trainer, unchanged, on 2 CPU ranks: same weights and history as one
    process on the same global batches (grad_accum_steps=2, so DDP's no_sync and a short
    last micro-batch, 24 of 32, are exercised); only rank 0 writes files."""
    child = REPO / "tests" / "train_ddp_child.py"
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env["OMP_NUM_THREADS"] = "1"
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), str(child), str(ddp),
    ]  # fmt: skip
    for argv, out in [(command, ddp), ([sys.executable, str(child), str(single)], single)]:
        run = subprocess.Popen(argv, cwd=REPO, env=env, text=True, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            output, _ = run.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            output, _ = run.communicate()
            pytest.fail(f"{argv} did not finish in 120 s:\n{output}")
        assert run.returncode == 0, f"{argv} failed ({run.returncode}):\n{output}"
        assert sorted(p.name for p in out.iterdir()) == ["history.json", "last.pt", "weights.pt"]
    reports = {out.name: json.loads((out / "history.json").read_text()) for out in (ddp, single)}
    assert reports["ddp"]["ddp"] and reports["ddp"]["world_size"] == 2
    assert not reports["single"]["ddp"]
    # float32 sums in another order (see the test above): rtol=1e-5, atol=1e-6.
    weights = {out.name: torch.load(out / "weights.pt", weights_only=True) for out in (ddp, single)}
    for name, value in weights["single"].items():
        torch.testing.assert_close(weights["ddp"][name], value, rtol=1e-5, atol=1e-6)
    history = {name: report["history"] for name, report in reports.items()}
    assert history["ddp"].keys() == history["single"].keys() == {"loss", "lr"}
    torch.testing.assert_close(history["ddp"]["loss"], history["single"]["loss"], rtol=1e-5, atol=0)


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank(tmp_path: Path) -> None:
    """Rank 1's loss turns nan; rank 0 must stop at the same step instead of waiting in the
    next all-reduce until the process group times out."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env.update(OMP_NUM_THREADS="1", NAN_ON_RANK="1")
    logs = tmp_path / "logs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "--log-dir", str(logs), "--tee", "3",
        str(REPO / "tests" / "train_ddp_child.py"), str(tmp_path / "out"),
    ]  # fmt: skip
    run = subprocess.Popen(command, cwd=REPO, env=env, text=True, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        output, _ = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        output, _ = run.communicate()
        pytest.fail(f"a rank kept waiting after another rank's nan:\n{output}")
    assert run.returncode != 0
    errors = {p.parent.name: p.read_text() for p in logs.rglob("stderr.log")}
    assert "loss is nan at epoch 1/3" in errors["1"], output
    assert "nan or inf on another data-parallel rank at epoch 1/3" in errors["0"], output
