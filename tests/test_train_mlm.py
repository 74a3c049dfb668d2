"""train_mlm: learns a task a bag of neighbours solves (far above the most-frequent-token
baseline), reproducible runs and masks, the warm-up + cosine rates, one thread restored
afterwards, exact validation, the baseline, the shipped corpus, argument errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from dlkit.data.corpus import corpus_meta, load_tokens
from dlkit.data.masking import IGNORE_INDEX, mask_tokens
from dlkit.nn.bert import MaskedLMEncoder
from dlkit.nn.transformer_blocks import TransformerStackConfig
from dlkit.optim.schedules import WarmupCosine
from dlkit.train.mlm_training import (
    MaskedWindows,
    evaluate_mlm,
    most_frequent_token,
    train_mlm,
)

V, EOT, PAD, MASK = 40, 36, 37, 38
SPECIAL = (EOT, PAD, MASK, 39)


def _stream(n: int, seed: int) -> np.ndarray:
    """Documents of 10..39 copies of one token, each followed by EOT: a masked token is
    whatever its neighbours are, which attention over the window finds."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while len(out) < n:
        out += [int(rng.integers(0, 32))] * int(rng.integers(10, 40)) + [EOT]
    return np.asarray(out[:n], dtype=np.uint16)


TRAIN, VAL = _stream(20_000, 0), _stream(3_000, 1)


def _model(seed: int = 0, **kw) -> MaskedLMEncoder:
    torch.manual_seed(seed)
    settings = {"d_model": 32, "n_heads": 2, "n_layers": 1, "d_ff": 64, "max_len": 16,
                "positions": "learned", "kernels": "torch", **kw}  # fmt: skip
    return MaskedLMEncoder(TransformerStackConfig(**settings), V)


def _train(model: nn.Module, **kw):
    args = {"steps": 60, "batch_size": 16, "context": 16, "lr": 1e-2, "warmup_steps": 5,
            "mask_id": MASK, "special_ids": SPECIAL, "eval_every": 30, "progress": False,
            "device": "cpu", **kw}  # fmt: skip
    return train_mlm(model, TRAIN, VAL, **args)


@pytest.fixture(scope="module")
def run():
    return _train(_model())


def test_it_learns_far_above_the_most_frequent_token_baseline(run) -> None:
    first, last = run.history
    assert [r["step"] for r in run.history] == [30, 60] and last["tokens"] == 60 * 16 * 16
    assert last["val_loss"] < first["val_loss"] < np.log(V)
    assert run.val_masked_accuracy == last["val_masked_acc"] and run.val_loss == last["val_loss"]
    assert run.baseline_accuracy < 0.1
    assert run.val_masked_accuracy > run.baseline_accuracy + 0.3
    assert 0 < last["train_masked_acc"] <= 1 and len(run.step_history) == 60
    assert run.baseline_token == most_frequent_token(TRAIN, V, SPECIAL)
    eligible = int((~np.isin(VAL[: 3000 // 16 * 16], SPECIAL)).sum())  # full windows
    assert abs(run.val_selected / eligible - 0.15) < 0.03
    assert run.tokens_per_second > 0 and run.wall_seconds >= run.eval_seconds > 0


def test_runs_are_reproducible(run) -> None:
    again = _train(_model())
    assert again.step_history == run.step_history and again.history == run.history
    other = _train(_model(), seed=1)
    assert other.step_history != run.step_history


def test_the_learning_rate_warms_up_then_follows_the_cosine(run) -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-2)
    schedule = WarmupCosine(opt, 5, 60, min_lr=1e-3)
    expected = [schedule.lr_at(t, 1e-2, 0) for t in range(60)]  # step t+1 uses lr_at(t)
    np.testing.assert_allclose([r["lr"] for r in run.step_history], expected, rtol=1e-12)
    assert run.step_history[0]["lr"] == 0.0


def test_one_thread_during_the_run_and_the_count_restored() -> None:
    seen: list[int] = []

    class Spy(MaskedLMEncoder):
        def forward(self, ids, key_padding_mask=None):
            seen.append(torch.get_num_threads())
            return super().forward(ids, key_padding_mask)

    torch.manual_seed(0)
    spy = Spy(TransformerStackConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=16), V)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _train(spy, steps=2, eval_every=2, warmup_steps=1)
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_live_plot_shows_loss_and_masked_accuracy(capsys) -> None:
    _train(_model(), steps=2, eval_every=1, warmup_steps=1, live_plot=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if "val_masked_acc" in line]
    assert len(lines) == 2 and all("val_loss" in line for line in lines)  # one per epoch


def test_masked_windows_are_reproducible_windows_of_the_tokens() -> None:
    mask = functools.partial(mask_tokens, mask_id=MASK, vocab_size=V, special_ids=SPECIAL)
    batches = MaskedWindows(TRAIN, 16, 8, 3, mask=mask, seed=0)
    assert len(batches) == 3
    batches.generator.manual_seed(5)  # what the Trainer does at each epoch start
    first = list(batches)
    batches.generator.manual_seed(5)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, batches, strict=True)
    )
    batches.generator.manual_seed(6)
    assert not torch.equal(next(iter(batches))[1], first[0][1])
    text = TRAIN.tobytes()
    for inputs, labels in first:
        assert inputs.shape == labels.shape == (8, 16) and inputs.dtype == torch.int64
        original = torch.where(labels == IGNORE_INDEX, inputs, labels)  # undo the corruption
        for row in original.numpy().astype(np.uint16):
            assert row.tobytes() in text  # a window of the stream
        assert (inputs[labels != IGNORE_INDEX] == MASK).float().mean() > 0.5


def test_validation_is_exact_whatever_the_batching() -> None:
    model = _model().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(VAL[:640].astype(np.int64)).reshape(40, 16)
    inputs, labels = mask_tokens(x, mask_id=MASK, vocab_size=V, special_ids=SPECIAL, generator=g)
    whole = evaluate_mlm(model, [(inputs, labels)])
    split = evaluate_mlm(model, list(zip(inputs.split(3), labels.split(3), strict=True)))
    assert whole[0] == pytest.approx(split[0], rel=1e-6) and whole[1] == split[1]
    with torch.no_grad():
        logits = model(inputs)
    sel = labels != IGNORE_INDEX
    assert whole[1] == (logits.argmax(-1)[sel] == labels[sel]).double().mean().item()
    with pytest.raises(ValueError, match="no selected position in any batch"):
        evaluate_mlm(model, [(inputs, torch.full_like(labels, IGNORE_INDEX))])


def test_the_baseline_predicts_the_most_frequent_non_special_train_token() -> None:
    tokens = np.array([EOT] * 50 + [3] * 20 + [7] * 20 + [2] * 5, dtype=np.uint16)
    assert most_frequent_token(tokens, V, SPECIAL) == 3  # EOT is more frequent but special
    assert most_frequent_token(torch.from_numpy(tokens.astype(np.int64)), V) == EOT
    train = np.tile(np.array([3, 3, 3, 4, EOT], dtype=np.uint16), 200)
    for token, share in ((3, 1.0), (5, 0.0)):
        val = np.tile(np.array([token] * 9 + [EOT], dtype=np.uint16), 60)
        result = train_mlm(
            _model(), train, val, steps=1, batch_size=4, context=16, lr=1e-3,
            warmup_steps=0, mask_id=MASK, special_ids=SPECIAL, progress=False, device="cpu",
        )  # fmt: skip
        assert result.baseline_token == 3 and result.baseline_accuracy == share
        assert result.val_selected > 0


def test_the_validation_positions_do_not_depend_on_the_batch_size() -> None:
    runs = [
        _train(_model(), steps=1, eval_every=1, warmup_steps=0, batch_size=b, eval_tokens=999)
        for b in (4, 7)
    ]
    assert runs[0].val_selected == runs[1].val_selected > 0
    assert runs[0].baseline_accuracy == runs[1].baseline_accuracy
    with pytest.raises(ValueError, match="eval_tokens=10 is less than one window"):
        _train(_model(), steps=1, eval_every=1, warmup_steps=0, eval_tokens=10)


def test_a_few_steps_on_the_shipped_corpus() -> None:
    special = corpus_meta()["special_tokens"]
    torch.manual_seed(0)
    config = TransformerStackConfig(
        d_model=32, n_heads=2, n_layers=1, d_ff=64, max_len=32, kernels="torch"
    )
    model = MaskedLMEncoder(config, 2048, padding_idx=special["<|pad|>"])
    result = train_mlm(
        model, load_tokens("train"), load_tokens("val"), steps=4, batch_size=4, context=32,
        lr=1e-3, warmup_steps=1, mask_id=special["<|mask|>"], special_ids=special.values(),
        eval_tokens=2048, progress=False, device="cpu",
    )  # fmt: skip
    assert result.baseline_token not in special.values()
    assert 0.10 < result.val_selected / 2048 < 0.17  # 15% of the non-special positions
    assert 0.0 <= result.val_masked_accuracy <= 1.0 and 0.0 < result.baseline_accuracy < 0.2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"steps": 10, "eval_every": 3}, ValueError, "steps=10 must be a multiple of eval_every=3"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1, got 0"),
        ({"lr": float("inf")}, ValueError, "lr must be a finite number > 0"),
        ({"mask_id": V}, ValueError, r"mask_id=40 is outside \[0, vocab_size=40\)"),
        ({"select_prob": 2.0}, ValueError, r"select_prob must lie in \[0, 1\]"),
        ({"context": 17}, ValueError, "context=17 exceeds the model's max_len=16"),
        ({"min_lr_ratio": 1.5}, ValueError, r"min_lr_ratio must lie in \[0, 1\]"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message) -> None:
    args = {"steps": 4, "eval_every": 2, **kwargs}
    with pytest.raises(error, match=message):
        _train(_model(), **args)


def test_tokens_and_vocabulary_are_checked() -> None:
    with pytest.raises(ValueError, match=r"train_tokens must be a 1-D token array"):
        train_mlm(_model(), TRAIN.reshape(2, -1), VAL, steps=1, batch_size=2, context=8,
                  lr=1e-3, warmup_steps=0, mask_id=MASK)  # fmt: skip
    with pytest.raises(ValueError, match="val_tokens holds 16 tokens; one window of context=16"):
        train_mlm(_model(), TRAIN, VAL[:16], steps=1, batch_size=2, context=16, lr=1e-3,
                  warmup_steps=0, mask_id=MASK)  # fmt: skip
    with pytest.raises(ValueError, match="pass vocab_size="):
        train_mlm(nn.Linear(2, 2), TRAIN, VAL, steps=1, batch_size=2, context=8, lr=1e-3,
                  warmup_steps=0, mask_id=MASK)  # fmt: skip
