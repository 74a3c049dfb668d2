"""The standard-library character corpus: no download, stable, clean; vocabulary; blocks."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from dlkit.data.text import (
    STDLIB_MODULES,
    CharBlocks,
    CharVocab,
    char_splits,
    clean_text,
    corpus_fingerprint,
    stdlib_corpus,
)


def test_corpus_is_built_offline_from_the_stdlib_sources(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the corpus must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    text = stdlib_corpus(("textwrap",))
    import inspect
    import textwrap

    # The module docstring "Text wrapping and filling." is under 40 characters: dropped.
    assert "Text wrapping and filling." not in text
    assert text.startswith(clean_text(inspect.cleandoc(textwrap.TextWrapper.__doc__)))
    assert "\n\n" + clean_text(inspect.cleandoc(textwrap.dedent.__doc__)) in text


def test_default_corpus_is_stable_and_clean() -> None:
    text = stdlib_corpus()
    assert text == stdlib_corpus(list(STDLIB_MODULES))
    assert len(text) > 100_000
    assert set(text) <= {chr(c) for c in range(32, 127)} | {"\n"}
    assert "  " not in text and " \n" not in text and "\t" not in text
    assert corpus_fingerprint(text) == corpus_fingerprint(stdlib_corpus())
    assert len(corpus_fingerprint(text)) == 16


def test_vocab_round_trip_and_clear_errors() -> None:
    vocab = CharVocab("hello world")
    assert vocab.chars == sorted(set("hello world")) and len(vocab) == vocab.size == 8
    ids = vocab.encode("low word")
    assert ids.dtype == np.int64 and vocab.decode(ids) == "low word"
    assert vocab.decode(torch.from_numpy(ids)) == "low word"
    with pytest.raises(ValueError, match=r"character 'z' is not in the vocabulary"):
        vocab.encode("old lz")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([0, 8])


def test_blocks_target_is_the_next_character() -> None:
    ids = np.arange(20)
    blocks = CharBlocks(ids, 5, stride=3)
    assert len(blocks) == 5  # starts 0, 3, 6, 9, 12 (12 + 5 + 1 <= 20)
    for i in range(len(blocks)):
        x, y = blocks[i]
        torch.testing.assert_close(x, torch.arange(3 * i, 3 * i + 5))
        torch.testing.assert_close(y, x + 1)
    with pytest.raises(IndexError):
        blocks[5]
    with pytest.raises(ValueError, match="at least block_size"):
        CharBlocks(np.arange(4), 5)


def test_char_splits_are_contiguous_and_disjoint() -> None:
    text = "".join(chr(97 + (i * 7) % 26) for i in range(1000))
    splits, vocab = char_splits(10, text=text, val_fraction=0.1, test_fraction=0.2)
    train, val, test = splits
    assert len(train.ids) == 700 and len(val.ids) == 100 and len(test.ids) == 200
    assert vocab.decode(train.ids) + vocab.decode(val.ids) + vocab.decode(test.ids) == text
    x, y = val[0]
    assert vocab.decode(x) == text[700:710] and vocab.decode(y) == text[701:711]
