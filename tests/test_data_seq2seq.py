"""The toy seq2seq tasks: the answers are right, splits are seeded and disjoint, and exact
match scores whole answers (``<eos>`` included) on hand-made examples."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from dlkit.data.seq2seq import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    PLUS_ID,
    VOCAB_SIZE,
    answer_of,
    decode,
    encode,
    exact_match,
    make_seq2seq_task,
    to_text,
)


def _digits(ids) -> list[int]:
    return [int(i) - 3 for i in ids if 3 <= int(i) <= 12]


@pytest.mark.parametrize("name", ["reverse", "sort", "add"])
def test_layout_of_sources_and_targets(name: str) -> None:
    task = make_seq2seq_task(name, n_train=300, n_test=50, min_len=2, max_len=6, seed=1)
    for split in (task.train, task.test):
        assert split.src.dtype == split.tgt.dtype == np.int64
        assert (split.tgt[:, 0] == BOS_ID).all()
        for src, tgt in zip(split.src, split.tgt, strict=True):
            n = int((src != PAD_ID).sum())
            assert (src[:n] != PAD_ID).all() and (src[n:] == PAD_ID).all()  # padding at the end
            end = list(tgt).index(EOS_ID)
            assert (tgt[end + 1 :] == PAD_ID).all() and BOS_ID not in tgt[1:]
            assert ((tgt[1:end] >= 3) & (tgt[1:end] <= 12)).all()  # only digits in the answer
    assert task.vocab_size == VOCAB_SIZE == 14
    assert task.src_width == task.train.src.shape[1] == task.test.src.shape[1]


def test_reverse_reverses_and_sort_sorts() -> None:
    for name, rule in (("reverse", lambda d: d[::-1]), ("sort", sorted)):
        task = make_seq2seq_task(name, n_train=200, n_test=20, min_len=1, max_len=9, seed=3)
        for src, tgt in zip(task.train.src, task.train.tgt, strict=True):
            assert _digits(tgt) == list(rule(_digits(src)))
        assert set(task.train.src_lengths) == set(range(1, 10))  # every length is drawn


def test_sums_are_right() -> None:
    task = make_seq2seq_task("add", n_train=500, n_test=100, min_len=1, max_len=4, seed=0)
    widths = set()
    for src, tgt in zip(task.train.src, task.train.tgt, strict=True):
        a, b = to_text(src).split("+")
        assert to_text(tgt) == str(int(a) + int(b))
        assert a == str(int(a)) and b == str(int(b))  # no leading zeros
        widths.update((len(a), len(b)))
        assert list(src).count(PLUS_ID) == 1
    assert widths == {1, 2, 3, 4}


def test_fixed_length() -> None:
    task = make_seq2seq_task("reverse", n_train=50, n_test=10, min_len=7, max_len=7)
    assert (task.train.src_lengths == 7).all() and task.src_width == 7 and task.tgt_width == 9


def test_seeds_reproduce_and_differ() -> None:
    a = make_seq2seq_task("sort", n_train=100, n_test=20, seed=5)
    b = make_seq2seq_task("sort", n_train=100, n_test=20, seed=5)
    c = make_seq2seq_task("sort", n_train=100, n_test=20, seed=6)
    np.testing.assert_array_equal(a.train.src, b.train.src)
    np.testing.assert_array_equal(a.test.tgt, b.test.tgt)
    assert not np.array_equal(a.train.src, c.train.src)
    more = make_seq2seq_task("sort", n_train=100, n_test=200, seed=5)  # same training examples
    width = min(a.src_width, more.src_width)
    np.testing.assert_array_equal(a.train.src[:, :width], more.train.src[:, :width])


@pytest.mark.parametrize("name", ["reverse", "add"])
def test_test_sources_never_appear_in_training(name: str) -> None:
    # lengths 1..3 have only 1110 reversal sources, so a careless generator would repeat many
    task = make_seq2seq_task(
        name, n_train=800, n_test=200, min_len=1, max_len=3 if name == "reverse" else 2
    )
    train = {tuple(r) for r in task.train.src}
    test = {tuple(r) for r in task.test.src}
    assert len(train) == 800 and len(test) == 200 and not train & test


def test_too_many_examples_for_the_lengths_is_an_error() -> None:
    with pytest.raises(ValueError, match="only 110 distinct sources"):
        make_seq2seq_task("reverse", n_train=100, n_test=11, min_len=1, max_len=2)
    make_seq2seq_task("reverse", n_train=100, n_test=10, min_len=1, max_len=2)  # exactly all
    with pytest.raises(ValueError, match="unknown task"):
        make_seq2seq_task("copy", n_train=10, n_test=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_len must be"):
        make_seq2seq_task("sort", min_len=5, max_len=4)
    with pytest.raises(ValueError, match="n_test must be"):
        make_seq2seq_task("sort", n_test=0)


def test_encode_decode_text() -> None:
    assert encode("12+9") == [4, 5, PLUS_ID, 12]
    assert decode([BOS_ID, 4, EOS_ID, PAD_ID]) == ["<bos>", "1", "<eos>", "<pad>"]
    assert to_text([BOS_ID, 4, 5, PLUS_ID, 3, EOS_ID, 7]) == "12+0"
    with pytest.raises(ValueError, match="can only encode"):
        encode("1-2")
    with pytest.raises(ValueError, match=r"in \[0, 14\)"):
        decode([3, 99])


def test_answer_of_and_exact_match_on_hand_examples() -> None:
    target = [BOS_ID, 5, 6, EOS_ID, PAD_ID]
    assert answer_of(target) == (5, 6)
    assert answer_of([5, 6, EOS_ID, 9, 9]) == (5, 6)  # BOS optional, tail after EOS ignored
    assert answer_of([5, 6, 7]) is None  # never finished
    targets = np.array([target, target, target, target, target])
    predictions = [
        [5, 6, EOS_ID],  # right (as greedy_decode returns it: no BOS)
        [5, 6, EOS_ID, PAD_ID, 4],  # right: anything after EOS is ignored
        [5, 6],  # no EOS: wrong
        [5, 6, 7, EOS_ID],  # one token too many: wrong
        [5, EOS_ID],  # too short: wrong
    ]
    assert exact_match(predictions, targets) == pytest.approx(2 / 5)
    assert exact_match(torch.tensor([[5, 6, EOS_ID]]), torch.tensor([target])) == 1.0
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        exact_match([[5, EOS_ID], [5, EOS_ID]], [target])
    with pytest.raises(ValueError, match="has no <eos>"):
        exact_match([[5, EOS_ID]], [[BOS_ID, 5]])


def test_tensors_and_import_without_torch() -> None:
    task = make_seq2seq_task("reverse", n_train=10, n_test=5)
    src, tgt = task.train.tensors()
    assert src.dtype == torch.int64 and tuple(tgt.shape) == task.train.tgt.shape
    code = "import sys, dlkit.data.seq2seq, dlkit.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
