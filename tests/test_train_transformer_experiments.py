"""The Transformer chapter's measurements at tiny sizes: training learns, evaluation scores
whole answers per length, runs reproduce, and the cost harness counts saved bytes exactly
(quadratic in T for attention, linear for the GRU)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dlkit.data.seq2seq import EOS_ID, PAD_ID, make_seq2seq_task
from dlkit.train.attention_cost import attention_cost, kv_cache_speedup
from dlkit.train.memory import saved_tensor_bytes
from dlkit.train.seq2seq_training import (
    GRUSeq2Seq,
    evaluate_seq2seq,
    seq2seq_transformer,
    train_seq2seq,
)
from dlkit.train.transformer_experiments import (
    compare_norm_placement,
    compare_positions,
    rnn_vs_transformer,
)


@pytest.fixture(scope="module")
def tiny():
    return make_seq2seq_task("reverse", n_train=2000, n_test=60, min_len=2, max_len=4, seed=0)


def test_transformer_learns_to_reverse(tiny) -> None:
    model = seq2seq_transformer(tiny, d_model=32, n_heads=2, n_layers=1, seed=0)
    run = train_seq2seq(model, tiny, steps=200, batch_size=32, lr=5e-3, warmup=20)
    assert run.losses[0] > math.log(10) - 0.2  # starts near chance over the digits
    assert np.mean(run.losses[-10:]) < 0.1 * run.losses[0]
    assert run.test is not None and run.accuracy > 0.9
    assert set(run.test.by_length) == set(np.unique(tiny.test.src_lengths)) == {3, 4}
    assert len(run.losses) == len(run.lrs) == len(run.grad_norms) == 200


def test_runs_reproduce_and_follow_the_schedule(tiny) -> None:
    def run(seed: int):
        model = seq2seq_transformer(tiny, d_model=16, n_heads=2, n_layers=1, seed=3)
        return train_seq2seq(
            model, tiny, steps=12, batch_size=16, lr=1e-2, warmup=4, seed=seed, evaluate=False
        )

    runs = [run(1), run(1)]
    assert runs[0].losses == runs[1].losses and runs[0].test is None
    lrs = runs[0].lrs
    assert lrs[0] == 0.0 and lrs[4] == pytest.approx(1e-2)  # linear warm-up from 0
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))  # then a cosine down
    assert run(2).losses != runs[0].losses  # another batch order
    with pytest.raises(ValueError, match="warmup must lie"):
        train_seq2seq(seq2seq_transformer(tiny, d_model=16, n_heads=2), tiny, steps=5, warmup=5)


class _Oracle(torch.nn.Module):
    """Answers every source right, except those longer than ``wrong_above`` (no EOS there)."""

    def __init__(self, wrong_above: int) -> None:
        super().__init__()
        self.wrong_above = wrong_above

    def greedy_decode(self, src, bos_id, eos_id, max_len):
        rows = []
        for s in src.tolist():
            digits = [t for t in s if t != PAD_ID][::-1]
            rows.append(digits + ([eos_id] if len(digits) <= self.wrong_above else []))
        width = max(map(len, rows))
        assert width <= max_len
        return torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows])


def test_evaluation_scores_whole_answers_per_length(tiny) -> None:
    result = evaluate_seq2seq(_Oracle(wrong_above=3), tiny)
    lengths = tiny.test.src_lengths
    assert result.by_length == {3: 1.0, 4: 0.0}  # (length 2's 100 sources are all in training)
    assert result.accuracy == pytest.approx(float(np.mean(lengths <= 3)))
    assert evaluate_seq2seq(_Oracle(wrong_above=9), tiny, tiny.train).accuracy == 1.0


def test_gru_encoder_skips_padding_and_decodes() -> None:
    torch.manual_seed(0)
    model = GRUSeq2Seq(14, hidden_size=12, embed_dim=6)
    src = torch.tensor([[4, 5, 6, PAD_ID, PAD_ID], [7, 8, 9, 10, 11]])
    h = model.encode(src)  # (1, 2, 12)
    torch.testing.assert_close(h[:, :1], model.encode(src[:1, :3]))  # padding changes nothing
    assert model(src, torch.tensor([[1, 3], [1, 4]])).shape == (2, 2, 14)
    out = model.greedy_decode(src, 1, EOS_ID, 6)
    assert out.shape[0] == 2 and out.shape[1] <= 6
    for row in out.tolist():  # after an EOS only padding follows
        if EOS_ID in row:
            assert all(t == PAD_ID for t in row[row.index(EOS_ID) + 1 :])


def test_rnn_vs_transformer_trains_both_on_the_same_budget(tiny) -> None:
    results = rnn_vs_transformer(
        tiny, steps=30, batch_size=16, warmup=5, hidden_size=16, d_model=16, n_heads=2, n_layers=1
    )
    assert list(results) == ["gru", "transformer"]
    for run in results.values():
        assert len(run.losses) == 30 and run.losses[-1] < run.losses[0]
        assert set(run.test.by_length) == {3, 4}
    assert results["gru"].losses != results["transformer"].losses


def test_no_positions_cannot_see_order(tiny) -> None:
    """Without positions the encoder's output is a set: a source and its reversal decode alike."""
    model = seq2seq_transformer(tiny, d_model=16, n_heads=2, n_layers=2, positions="none", seed=0)
    src = torch.from_numpy(tiny.test.src[:8].copy())
    flipped = src.clone()
    for i, n in enumerate(tiny.test.src_lengths[:8]):
        flipped[i, :n] = src[i, :n].flip(0)
    a, b = (model.greedy_decode(s, 1, EOS_ID, tiny.tgt_width - 1) for s in (src, flipped))
    torch.testing.assert_close(a, b)
    results = compare_positions(
        tiny, kinds=("none", "rope"), steps=3, batch_size=8, warmup=1, d_model=16, n_heads=2
    )
    assert list(results) == ["none", "rope"] and all(len(r.losses) == 3 for r in results.values())
    with pytest.raises(ValueError, match="unknown position kinds"):
        compare_positions(tiny, kinds=("alibi",), steps=3)


def test_norm_placement_runs_each_seed(tiny) -> None:
    results = compare_norm_placement(
        tiny, n_layers=2, seeds=(0, 1), steps=3, batch_size=8, d_model=16, n_heads=2, evaluate=False
    )
    assert list(results) == ["pre-norm", "post-norm"]
    assert all(len(runs) == 2 for runs in results.values())
    assert results["pre-norm"][0].losses != results["post-norm"][0].losses
    assert results["pre-norm"][0].lrs[0] == pytest.approx(2e-3)  # no warm-up by default


def test_saved_tensor_bytes_on_hand_examples() -> None:
    x = torch.randn(10, 3, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(3))
    _, nbytes = saved_tensor_bytes(lambda: x.exp().sum())
    assert nbytes == 30 * 4  # exp saves its output; sum saves nothing
    _, nbytes = saved_tensor_bytes(lambda: (x * x).sum())
    assert nbytes == 30 * 4  # x saved twice, one storage
    _, nbytes = saved_tensor_bytes(lambda: (x * w).sum(), exclude=[w])
    assert nbytes == 30 * 4  # x (for dL/dw) counts, the parameter does not


def test_attention_memory_is_quadratic_and_gru_memory_linear() -> None:
    B, H, C = 2, 2, 8
    lengths = (4, 8, 12, 16, 20)
    cost = attention_cost(lengths, d_model=C, n_heads=H, batch_size=B, repeats=1)
    attn, rnn = np.array(cost.attention_bytes), np.array(cost.rnn_bytes)
    assert (np.diff(attn) > 0).all() and (np.diff(rnn) > 0).all()
    second = np.diff(attn, 2)  # a T^2 + b T + c on an even grid: constant 2 a ΔT^2
    assert (second == second[0]).all() and second[0] > 0
    per_matrix = B * H * 4  # bytes of one (B, H, T, T) float32 tensor, per T^2
    a = second[0] / (2 * 4**2)
    assert a % per_matrix == 0 and a >= per_matrix  # whole attention-weight tensors are saved
    assert (np.diff(rnn, 2) == 0).all() and rnn[0] * 5 == rnn[-1]  # exactly proportional to T
    assert cost.attention_flops[1] == 2 * B * (4 * 8 * C * C + 2 * 8 * 8 * C)
    assert all(s > 0 for s in cost.attention_seconds + cost.rnn_seconds)
    assert "attn MiB" in cost.table() and len(cost.table().splitlines()) == 2 + len(lengths)
    causal = attention_cost((8,), d_model=C, n_heads=H, batch_size=B, causal=True, repeats=1)
    assert causal.attention_bytes[0] >= cost.attention_bytes[1]  # the mask adds, never removes


def test_kv_cache_gives_the_same_tokens() -> None:
    speed = kv_cache_speedup(
        prompt_len=4, new_tokens=6, d_model=16, n_heads=2, n_layers=1, repeats=1
    )
    assert speed.same_tokens and speed.cached_seconds > 0 and speed.uncached_seconds > 0
    assert speed.cached_tokens_per_second == pytest.approx(6 / speed.cached_seconds)
    assert speed.speedup == pytest.approx(speed.uncached_seconds / speed.cached_seconds)
    with pytest.raises(ValueError, match="new_tokens must be >= 1"):
        kv_cache_speedup(new_tokens=0)


@pytest.mark.slow
def test_quick_mode_reversal_reaches_99_percent() -> None:
    """The chapter's quick-mode run (about 8 s on one thread): whole answers right >= 99 %."""
    task = make_seq2seq_task("reverse", n_train=20_000, n_test=1_000, min_len=5, max_len=10)
    model = seq2seq_transformer(task, d_model=64, n_heads=4, n_layers=2, seed=0)
    run = train_seq2seq(model, task, steps=250, batch_size=64, lr=3e-3, warmup=50, seed=0)
    assert run.accuracy >= 0.99 and min(run.test.by_length.values()) >= 0.97
