"""Supervised fine-tuning: shifted labels, padding, the masked loss, training, exact match."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlkit.data.corpus import load_tokenizer
from dlkit.data.instructions import Example, make_instruction_examples
from dlkit.data.masking import IGNORE_INDEX
from dlkit.data.token_windows import eval_windows
from dlkit.nn.gpt import GPT, GPTConfig, next_token_loss
from dlkit.train.sft import (
    collate,
    encode_example,
    exact_match,
    generate_response,
    pretraining_loss,
    sft_experiment,
    sft_loss,
    train_sft,
)

TOK = load_tokenizer()
EOS, PAD = TOK.special_tokens["<|endoftext|>"], TOK.special_tokens["<|pad|>"]


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.modern(TOK.vocab_size, 32, 2, 2, 96, **kw))


def test_labels_are_the_next_token_on_response_positions_only() -> None:
    prompt, response = "Instruction: Write a call to f.\nResponse:", " f(x)"
    ids, labels = encode_example(TOK, prompt, response, max_len=128, eos_id=EOS)
    P, R = len(TOK.encode(prompt)), len(TOK.encode(response))
    T = P + R + 1
    assert ids.shape == labels.shape == (T,) and ids.dtype == labels.dtype == torch.long
    assert ids.tolist() == TOK.encode(prompt) + TOK.encode(response) + [EOS]
    for t in range(T):  # the definition, position by position
        expected = ids[t + 1].item() if P - 1 <= t <= T - 2 else IGNORE_INDEX
        assert labels[t].item() == expected
    assert labels[P - 1] == TOK.encode(response)[0]  # the prompt's last position predicts r_1
    assert labels[T - 2] == EOS and labels[T - 1] == IGNORE_INDEX
    assert int((labels != IGNORE_INDEX).sum()) == R + 1
    assert TOK.decode(labels[labels != IGNORE_INDEX].tolist()) == response + "<|endoftext|>"


def test_encode_example_errors() -> None:
    with pytest.raises(ValueError, match="exceed max_len=5"):
        encode_example(TOK, "a long prompt of several tokens", " x", max_len=5, eos_id=EOS)
    with pytest.raises(ValueError, match="non-empty"):
        encode_example(TOK, "prompt", "", max_len=64, eos_id=EOS)
    with pytest.raises(TypeError, match="max_len"):
        encode_example(TOK, "prompt", " x", max_len=64.0, eos_id=EOS)  # type: ignore[arg-type]


def test_collate_right_pads_ids_and_labels() -> None:
    a = encode_example(TOK, "Say:", " yes", max_len=64, eos_id=EOS)
    b = encode_example(TOK, "Say something longer:", " no thanks", max_len=64, eos_id=EOS)
    ids, labels = collate([a, b], PAD)
    T = max(len(a[0]), len(b[0]))
    assert ids.shape == labels.shape == (2, T)
    for row, (x, y) in enumerate((a, b)):
        n = len(x)
        assert torch.equal(ids[row, :n], x) and torch.equal(labels[row, :n], y)
        assert (ids[row, n:] == PAD).all() and (labels[row, n:] == IGNORE_INDEX).all()
    assert (ids[0] == PAD).any()  # the shorter one was padded
    with pytest.raises(ValueError, match="one length"):
        collate([(a[0], a[1][:-1])], PAD)
    with pytest.raises(ValueError, match="no examples"):
        collate([], PAD)


def test_sft_loss_is_cross_entropy_on_supervised_positions_only() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 11, dtype=torch.float64)
    labels = torch.full((2, 7), IGNORE_INDEX)
    labels[0, 3:6] = torch.tensor([1, 4, 9])
    labels[1, 1:3] = torch.tensor([0, 10])
    mask = labels != IGNORE_INDEX
    oracle = F.cross_entropy(logits[mask], labels[mask])  # response positions gathered by hand
    manual = -torch.log_softmax(logits[mask], -1).gather(1, labels[mask][:, None]).mean()
    loss = sft_loss(logits, labels)
    assert torch.allclose(loss, oracle) and torch.allclose(loss, manual)

    changed = logits.clone()
    changed[~mask] = torch.randn(int((~mask).sum()), 11, dtype=torch.float64) * 5
    assert torch.allclose(sft_loss(changed, labels), loss)  # prompt positions do not count
    changed[0, 4] += torch.randn(11, dtype=torch.float64)
    assert not torch.allclose(sft_loss(changed, labels), loss)  # response positions do

    x = logits.clone().requires_grad_()
    sft_loss(x, labels).backward()
    assert (x.grad[~mask] == 0).all() and (x.grad[mask].abs().sum(-1) > 0).all()


def test_sft_loss_differs_from_loss_on_every_position() -> None:
    ids, labels = encode_example(TOK, "Instruction: hi\nResponse:", " f(x)", max_len=64, eos_id=EOS)
    logits = tiny_gpt()(ids[None])  # (1, T, V)
    full = torch.cat([ids[1:], torch.tensor([EOS])])[None]  # every position's next token
    assert not torch.allclose(sft_loss(logits, labels[None]), next_token_loss(logits, full))


def test_sft_loss_errors() -> None:
    logits = torch.randn(1, 3, 5)
    with pytest.raises(ValueError, match="no supervised"):
        sft_loss(logits, torch.full((1, 3), IGNORE_INDEX))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        sft_loss(logits, torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="int64"):
        sft_loss(logits, torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        sft_loss(torch.randn(3, 5), torch.zeros(3, dtype=torch.long))


def test_right_padding_leaves_supervised_logits_unchanged() -> None:
    model = tiny_gpt().eval()
    short = encode_example(TOK, "Say:", " yes", max_len=64, eos_id=EOS)
    long = encode_example(
        TOK, "Say something much longer than that:", " no", max_len=64, eos_id=EOS
    )
    ids, _ = collate([short, long], PAD)
    assert len(short[0]) < ids.shape[1]  # the short one is padded
    with torch.no_grad():
        alone = model(short[0][None])[0]  # (T_short, V)
        batched = model(ids)[0, : len(short[0])]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_train_sft_learns_is_seeded_and_trains_only_trainable() -> None:
    examples = make_instruction_examples(8, seed=0, max_args=1)
    model = tiny_gpt()
    frozen = model.decoder.blocks[0].mlp.w1.weight
    frozen.requires_grad_(False)
    before = frozen.detach().clone()
    model.eval()
    history = train_sft(model, TOK, examples, steps=30, batch_size=4, lr=3e-3, warmup=5, seed=0)
    assert len(history.losses) == len(history.lrs) == len(history.grad_norms) == 30
    assert history.lrs[0] == 0.0 and max(history.lrs) == pytest.approx(3e-3)
    assert sum(history.losses[-5:]) / 5 < 0.8 * sum(history.losses[:5]) / 5
    assert torch.equal(frozen, before) and not model.training  # mode restored
    again = tiny_gpt()
    again.decoder.blocks[0].mlp.w1.weight.requires_grad_(False)
    other = train_sft(again, TOK, examples, steps=30, batch_size=4, lr=3e-3, warmup=5, seed=0)
    assert other.losses == pytest.approx(history.losses, rel=1e-5)


def test_train_sft_errors() -> None:
    examples = make_instruction_examples(2, seed=0)
    with pytest.raises(ValueError, match="warmup"):
        train_sft(tiny_gpt(), TOK, examples, steps=5, warmup=5)
    with pytest.raises(ValueError, match="no examples"):
        train_sft(tiny_gpt(), TOK, [], steps=5, warmup=0)
    frozen = tiny_gpt().requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        train_sft(frozen, TOK, examples, steps=5, warmup=0)


def test_exact_match_agrees_with_generate_response() -> None:
    model = tiny_gpt(seed=1).eval()
    prompts = [e.prompt for e in make_instruction_examples(6, seed=2, split="test")]
    outs = [generate_response(model, TOK, p, max_new_tokens=6) for p in prompts]
    assert all("<|endoftext|>" not in o for o in outs)
    right = [Example(p, o) for p, o in zip(prompts, outs, strict=True)]
    wrong = [Example(p, o + " wrong") for p, o in zip(prompts, outs, strict=True)]
    assert exact_match(model, TOK, right, max_new_tokens=6) == 1.0
    assert exact_match(model, TOK, wrong, max_new_tokens=6) == 0.0
    half = right[:3] + wrong[3:]
    assert exact_match(model, TOK, half, max_new_tokens=6) == pytest.approx(0.5)


def test_generate_response_stops_at_the_end_token() -> None:
    model = tiny_gpt()
    prompt = "Instruction: Say ok.\nResponse:"
    train_sft(model, TOK, [Example(prompt, " ok")], steps=40, batch_size=2, lr=1e-2, warmup=0)
    model.eval()
    assert generate_response(model, TOK, prompt, max_new_tokens=8) == " ok"
    ids = TOK.encode(prompt)
    raw = model.generate(ids, 8, temperature=0.0)[0, len(ids) :].tolist()
    assert raw[: len(TOK.encode(" ok")) + 1] == [*TOK.encode(" ok"), EOS]  # it did emit the end


def test_pretraining_loss_matches_eval_windows_with_next_token_loss() -> None:
    from dlkit.data.corpus import load_tokens

    model = tiny_gpt().eval()
    got = pretraining_loss(model, max_tokens=500)
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in eval_windows(load_tokens("val"), 96, 16, max_tokens=500):
            total += float(next_token_loss(model(x), y)) * y.numel()
            count += y.numel()
    assert count == 500 and got == pytest.approx(total / count, rel=1e-5)
    assert abs(got - math.log(TOK.vocab_size)) < 1.0  # an untrained model: near uniform


def test_sft_experiment_smoke_on_the_shipped_checkpoint() -> None:
    r = sft_experiment(n_train=16, n_test=4, steps=3, batch_size=4, eval_tokens=256, samples=1)
    assert r["exact_match_before"] == 0.0  # the pretrained model writes docstring prose
    assert 0.0 <= r["exact_match_after"] <= 1.0 and len(r["history"].losses) == 3
    assert 3.0 < r["val_loss_before"] < 5.0 and math.isfinite(r["val_loss_after"])
    assert set(r["samples"][0]) == {"prompt", "expected", "before", "after"}
