"""The token view and the tokenizer explorer show the tokenizer's own encoding, readably."""

from __future__ import annotations

import html

import pytest

from dlkit.text import BPETokenizer, train_bpe
from dlkit.viz.tokenizer import TokenizerExplorer, show_tokens, token_spans, tokenizer_explorer

TEXT = "the cat sat on the mat. the cats sat on the mats. 中文 中文 中文 " * 20


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return train_bpe(TEXT, 256 + 30, special_tokens=["<|endoftext|>"])


def test_spans_are_the_encoding(tokenizer: BPETokenizer) -> None:
    text = "the mats\n中文<|endoftext|>字"
    spans = token_spans(tokenizer, text)
    assert [s.id for s in spans] == tokenizer.encode(text)
    assert b"".join(s.data for s in spans) == text.encode()
    assert [s.special for s in spans].count(True) == 1
    labels = [s.label for s in spans]
    assert "↵" in "".join(labels) and "·" in "".join(labels)  # whitespace made visible


def test_partial_characters_are_shown_as_their_bytes() -> None:
    # no merges: "字" (E5 AD 97) is three one-byte tokens, each part of the character
    spans = token_spans(BPETokenizer([]), "a字")
    assert [s.label for s in spans] == ["a", "E5", "AD", "97"]
    assert [s.complete for s in spans] == [True, False, False, False]
    assert all(s.chars == "字" for s in spans[1:])
    page = show_tokens(BPETokenizer([]), "a字").data
    assert page.count('class="dlkit-token"') == 4
    assert html.escape("part of '字' (U+5B57)") in page and "dotted" in page


def test_show_tokens_lists_every_id_in_order(tokenizer: BPETokenizer) -> None:
    text = "the cat <b>&"
    page = show_tokens(tokenizer, text).data
    ids = tokenizer.encode(text)
    positions = [page.index(f">{i}</sub>") for i in ids]
    assert positions == sorted(positions) and page.count("<sub") == len(ids)
    assert "<b>" not in page and "&lt;" in page and "&amp;<sub" in page  # the text is escaped


def test_explorer_follows_the_text(tokenizer: BPETokenizer) -> None:
    explorer = TokenizerExplorer(tokenizer, "the cat")
    assert explorer.ids == tokenizer.encode("the cat")
    explorer.text.value = "the cats sat on the mats"
    ids = tokenizer.encode("the cats sat on the mats")
    assert explorer.ids == ids
    assert explorer.chars_per_token == pytest.approx(24 / len(ids))
    assert f"<b>{len(ids)}</b> tokens for <b>24</b> characters" in explorer.stats.value
    assert explorer.tokens.value.count("<sub") == len(ids)
    # the word list is the text's pieces; the longest (in bytes) is chosen first
    assert [value for _, value in explorer.word.options] == [
        "the",
        " cats",
        " sat",
        " on",
        " the",
        " mats",
    ]
    assert explorer.word.value == " cats"
    assert explorer.steps == tokenizer.encode_steps(" cats")
    explorer.word.value = " mats"
    steps = tokenizer.encode_steps(" mats")
    assert explorer.steps == steps and steps[-1].ids == tokenizer.encode(" mats")
    assert (
        f"<b>{len(steps) - 1}</b> merges turn 5 bytes into {len(steps[-1].ids)} tokens"
        in explorer.merges.value
    )
    assert explorer.merges.value.count("<tr>") == 1 + len(steps)


def test_explorer_handles_empty_text(tokenizer: BPETokenizer) -> None:
    explorer = TokenizerExplorer(tokenizer, "")
    assert explorer.ids == [] and explorer.chars_per_token == 0.0
    assert tokenizer_explorer(tokenizer).children[0].value.startswith("Tokenizers")
