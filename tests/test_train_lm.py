"""dlkit.train.lm_metrics and dlkit.train.lm_training: the metrics against hand calculations,
exact evaluation against a per-position loop, and training with the Trainer: the schedule
per step, threads, validation rows, best weights, and bit-identical resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.optim.schedules import WarmupCosine
from dlkit.train import Callback, Checkpoint
from dlkit.train.lm_metrics import bits_per_byte, evaluate_lm, mean_token_nll, perplexity
from dlkit.train.lm_training import LMTrainConfig, train_lm

V = 16


def _tiny_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return GPT(GPTConfig(V, 16, 1, 2, 32, 16, dropout=dropout))


def _stream(n: int, seed: int = 0) -> np.ndarray:
    """A learnable stream: each token is the previous + 1 or + 2 (mod V), as uint16."""
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.integers(1, 3, size=n)) % V).astype(np.uint16)


def _config(**kw) -> LMTrainConfig:
    base = dict(steps=12, batch_size=4, context=8, lr=3e-3, warmup_steps=2, eval_every=4)
    return LMTrainConfig(**(base | kw))


# ---------------------------------------------------------------- metrics by hand
def test_perplexity_and_bits_per_byte_by_hand() -> None:
    assert perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(0.0) == 1.0
    # 2 bits per token (2 ln 2 nats), 3 tokens over 6 bytes: 6 bits / 6 bytes = 1 bit per byte
    assert bits_per_byte(2 * math.log(2), n_tokens=3, n_bytes=6) == pytest.approx(1.0)
    # uniform over 256 byte values, one byte per token: 8 bits per byte
    assert bits_per_byte(math.log(256), 1000, 1000) == pytest.approx(8.0)
    assert bits_per_byte(1.3, 10, 40) == pytest.approx(1.3 * 10 / (40 * math.log(2)))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_metrics_reject_impossible_losses(bad: float) -> None:
    with pytest.raises(ValueError, match="nats_per_token"):
        perplexity(bad)
    with pytest.raises(ValueError, match="nats_per_token"):
        bits_per_byte(bad, 1, 1)


@pytest.mark.parametrize("counts", [(0, 5), (5, 0), (2.5, 5), (True, 5)])
def test_bits_per_byte_rejects_bad_counts(counts) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        bits_per_byte(1.0, *counts)


# ---------------------------------------------------------------- exact evaluation
class _Bigramish(nn.Module):
    """logits_t depend on x_t only: an embedding table, easy to score by hand."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.table = nn.Embedding(V, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table(x)  # (B, T, V)


def _hand_nll(model: nn.Module, tokens: np.ndarray, context: int, max_tokens: int | None) -> float:
    """Every target once, each with the history inside its window: a loop in float64."""
    n = len(tokens) - 1 if max_tokens is None else min(max_tokens, len(tokens) - 1)
    total = 0.0
    with torch.no_grad():
        for start in range(0, n, context):
            length = min(context, n - start)
            x = torch.as_tensor(tokens[start : start + length].astype(np.int64))[None]  # (1, L)
            logp = torch.log_softmax(model(x).double(), dim=-1)[0]  # (L, V)
            for t in range(length):
                total -= float(logp[t, int(tokens[start + t + 1])])
    return total / n


@pytest.mark.parametrize("batch_size", [1, 3, 32])
@pytest.mark.parametrize("max_tokens", [None, 50, 8])
def test_evaluate_lm_matches_a_loop_over_positions(batch_size: int, max_tokens) -> None:
    tokens = _stream(203, seed=1)  # 202 targets: not a multiple of the context
    for model in (_Bigramish(), _tiny_model(seed=2)):
        ours = evaluate_lm(model, tokens, 8, batch_size=batch_size, max_tokens=max_tokens)
        assert ours == pytest.approx(_hand_nll(model, tokens, 8, max_tokens), rel=1e-6)


def test_uniform_model_scores_log_vocab_and_mode_is_restored() -> None:
    model = _Fixed(lambda x: torch.zeros(*x.shape, V)).train()  # (B, T, V) equal logits
    assert evaluate_lm(model, _stream(100), 8) == pytest.approx(math.log(V), rel=1e-6)
    assert model.training


class _Fixed(nn.Module):
    """Returns ``fn(x)`` whatever the weights (it has one, so it has a device)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn, self.p = fn, nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def test_mean_token_nll_rejects_wrong_logits_and_no_tokens() -> None:
    x = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"expected \(B, T, V\)"):
        mean_token_nll(_Fixed(lambda t: torch.zeros(2, 4, V)), [(x, x)])
    with pytest.raises(ValueError, match="no tokens"):
        mean_token_nll(_Fixed(lambda t: t), [])


# ---------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"steps": 10}, "multiple of eval_every"),
        ({"warmup_steps": 12}, "warmup_steps=12 must be < steps"),
        ({"lr": 0.0}, "lr must be"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"threads": 0}, "threads"),
        ({"eval_tokens": 0}, "eval_tokens"),
    ],
)
def test_config_validation(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _config(**change)


def test_config_round_trips_through_a_dict() -> None:
    config = _config(betas=(0.8, 0.9), grad_clip=None)
    assert LMTrainConfig(**config.to_dict()) == config
    assert config.tokens_per_step == 4 * 8


def test_train_lm_argument_errors() -> None:
    model, tokens = _tiny_model(), _stream(100)
    with pytest.raises(TypeError, match="config=LMTrainConfig"):
        train_lm(model, tokens, None)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        train_lm(model, tokens, config=_config(), resume=True)
    with pytest.raises(ValueError, match="needs at least 9"):
        train_lm(model, tokens[:8], config=_config(), progress=False)


# ---------------------------------------------------------------- training
class _Threads(Callback):
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def on_batch_end(self, trainer, logs) -> None:
        self.seen.add(torch.get_num_threads())


def test_training_learns_with_the_schedule_per_step_and_restores_threads() -> None:
    train, val = _stream(4000), _stream(400, seed=9)
    model = _tiny_model()
    config = _config(steps=90, eval_every=30, warmup_steps=5, lr=1e-2, min_lr_ratio=0.1)
    threads = _Threads()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = train_lm(model, train, val, config, bytes_per_token=2.0, callbacks=[threads],
                       progress=False, device="cpu")  # fmt: skip
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert threads.seen == {1}
    # one row per validation, at steps 30, 60, 90
    assert [row["step"] for row in run.history] == [30, 60, 90]
    assert [row["tokens"] for row in run.history] == [30 * 32, 60 * 32, 90 * 32]
    # the per-step rates are WarmupCosine's, step t using eta_t for t = 0 .. 89
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(()))], lr=1e-2)
    schedule = WarmupCosine(opt, 5, 90, min_lr=1e-3)
    expected = [schedule.lr_at(t, 1e-2, 0) for t in range(90)]
    np.testing.assert_allclose([row["lr"] for row in run.step_history], expected, rtol=1e-12)
    assert run.step_history[0]["lr"] == 0.0  # warm-up starts at 0
    assert all(row["grad_norm"] is not None for row in run.step_history)
    # each row's train_loss is the mean of its steps' losses
    steps = [row["train_loss"] for row in run.step_history]
    assert run.history[1]["train_loss"] == pytest.approx(np.mean(steps[30:60]), rel=1e-9)
    # validation: exact mean over all validation tokens, and bpb = nats / (2 ln 2)
    final = evaluate_lm(model, val, 8, batch_size=4)
    assert run.final_val_loss == pytest.approx(final, rel=1e-9)
    assert run.history[-1]["val_bpb"] == pytest.approx(final / (2.0 * math.log(2)))
    # learned: two equally likely successors => about ln 2 nats, far below ln 16
    assert run.final_val_loss < 0.6 * math.log(V)
    assert run.history[-1]["val_loss"] < run.history[0]["val_loss"]
    assert run.tokens_per_second > 0 and run.wall_seconds >= run.eval_seconds > 0
    steps_, losses = run.curve("val_loss")
    assert steps_.tolist() == [30, 60, 90] and losses.shape == (3,)


def test_without_validation_and_with_eval_tokens() -> None:
    run = train_lm(_tiny_model(), _stream(1000), None, _config(), progress=False)
    assert [row["val_loss"] for row in run.history] == [None, None, None]
    assert run.final_val_loss is None and run.best_step is None
    model, val = _tiny_model(), _stream(500, 3)
    run = train_lm(model, _stream(1000), val, _config(eval_tokens=40), progress=False)
    prefix = evaluate_lm(model, val, 8, batch_size=4, max_tokens=40)
    assert run.final_val_loss == pytest.approx(prefix, rel=1e-9)
    assert run.final_val_loss != pytest.approx(evaluate_lm(model, val, 8, batch_size=4), rel=1e-6)


def test_keep_best_restores_the_best_weights() -> None:
    train, val = _stream(2000), _stream(300, seed=5)
    model = _tiny_model()
    config = _config(steps=12, eval_every=3, lr=0.3, warmup_steps=0, min_lr_ratio=1.0,
                     eval_tokens=64)  # fmt: skip  # a rate high enough to bounce
    run = train_lm(model, train, val, config, keep_best=True, progress=False)
    losses = [row["val_loss"] for row in run.history]
    assert run.best_val_loss == min(losses)
    assert run.best_step == run.history[int(np.argmin(losses))]["step"]
    assert evaluate_lm(model, val, 8, batch_size=4, max_tokens=64) == pytest.approx(
        run.best_val_loss, rel=1e-9
    )


# ---------------------------------------------------------------- exact resume
class _Interrupt(Exception):
    pass


class _StopAt(Callback):
    """Raise after ``step`` optimizer steps, as a kill would (the checkpoints stay)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, trainer, logs) -> None:
        if trainer.global_step == self.step:
            raise _Interrupt


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("stop_at", [8, 7])  # at an epoch boundary (after step 8), mid-epoch
def test_resume_is_bit_identical(tmp_path: Path, stop_at: int) -> None:
    train, val = _stream(3000), _stream(300, seed=4)
    config = _config(steps=16, eval_every=4, grad_accum_steps=2, eval_tokens=100)
    reference_model = _tiny_model(dropout=0.1)  # dropout: the RNG state matters too
    reference = train_lm(reference_model, train, val, config, progress=False)

    model = _tiny_model(dropout=0.1)
    folder = tmp_path / "ckpt"
    extra = [_StopAt(stop_at)]
    if stop_at % config.eval_every:  # a mid-epoch checkpoint every 3 steps (last one: step 6)
        extra.append(Checkpoint(folder, every_n_steps=3, every_epoch=False))
    with pytest.raises(_Interrupt):
        train_lm(model, train, val, config, checkpoint=folder, callbacks=extra, progress=False)
    model = _tiny_model(seed=123, dropout=0.1)  # a new process: other initial weights
    resumed = train_lm(model, train, val, config, checkpoint=folder, resume=True, progress=False)

    assert resumed.history == reference.history
    assert resumed.step_history == reference.step_history
    for name, value in _weights(reference_model).items():
        assert torch.equal(model.state_dict()[name], value), name


def test_resume_refuses_another_config(tmp_path: Path) -> None:
    train = _stream(1000)
    train_lm(_tiny_model(), train, None, _config(), checkpoint=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0.003 vs now 0.001"):
        train_lm(_tiny_model(), train, None, _config(lr=1e-3), checkpoint=tmp_path,
                 resume=True, progress=False)  # fmt: skip


def test_resume_without_a_checkpoint_starts_fresh(tmp_path: Path) -> None:
    train = _stream(1000)
    a = train_lm(_tiny_model(), train, None, _config(), progress=False)
    b = train_lm(_tiny_model(), train, None, _config(), checkpoint=tmp_path / "new",
                 resume=True, progress=False)  # fmt: skip
    assert a.step_history == b.step_history
    assert (tmp_path / "new" / "last.pt").is_file()


def test_custom_loss_fn_is_used() -> None:
    calls = []

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(logits.shape))
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))

    train_lm(_tiny_model(), _stream(500), None, _config(steps=4, eval_every=4), loss_fn=loss_fn,
             progress=False)  # fmt: skip
    assert calls == [(4, 8, V)] * 4
