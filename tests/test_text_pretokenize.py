"""GPT-2 pre-tokenization: each alternative of the pattern, lossless, and the same as HF's Split."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.text.pretokenize import GPT2_SPLIT_PATTERN, iter_pieces, pretokenize


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("don't", ["don", "'t"]),  # 1. contractions
        ("we'll they're I'd", ["we", "'ll", " they", "'re", " I", "'d"]),
        ("DON'T", ["DON", "'", "T"]),  # lower-case contractions only, as in GPT-2
        ("Hello world", ["Hello", " world"]),  # 2. letters take one leading space
        ("naïve 中文字", ["naïve", " 中文字"]),  # \p{L}: any script
        ("pi 3.14159", ["pi", " 3", ".", "14159"]),  # 3. digits
        ("x == y!!", ["x", " ==", " y", "!!"]),  # 4. other symbols, one leading space
        ("ok 😀👍", ["ok", " 😀👍"]),  # emoji are symbols
        ("a   b", ["a", "  ", " b"]),  # 5. whitespace but the last char, kept for " b"
        ("end   ", ["end", "   "]),  # 5. at the end of the text: the whole run
        ("x\n    y", ["x", "\n   ", " y"]),  # 5. indentation: the last space joins " y"
        ("a\nb", ["a", "\n", "b"]),  # 6. a newline right before a word
        ("a\tb", ["a", "\t", "b"]),  # 6. so is a tab (the optional prefix is a space only)
    ],
)
def test_each_alternative(text: str, pieces: list[str]) -> None:
    assert pretokenize(text) == pieces


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_pieces_cover_the_text_exactly(text: str) -> None:
    pieces = pretokenize(text)
    assert "".join(pieces) == text
    assert all(pieces)  # no empty piece
    assert [s for s, _ in iter_pieces(text)] == [
        sum(map(len, pieces[:k])) for k in range(len(pieces))
    ]


_hf_split = None


def _hf_pieces(text: str) -> list[str]:
    global _hf_split
    if _hf_split is None:
        from tokenizers import Regex, pre_tokenizers

        _hf_split = pre_tokenizers.Split(Regex(GPT2_SPLIT_PATTERN), behavior="isolated")
    return [piece for piece, _ in _hf_split.pre_tokenize_str(text)]


# Printable ASCII, common whitespace, accented and CJK letters, digits of other scripts, emoji.
# Not all of st.text(): the `regex` package and Oniguruma ship different Unicode versions, so
# they disagree on code points assigned recently (e.g. U+19114, a letter since Unicode 16).
_ALPHABET = st.sampled_from(list(" \n\t\r'abcdeSTlmrvsx0123.,!?-=()") + list("éü中文٣😀👍\u00a0"))


@settings(max_examples=300, deadline=None)
@given(st.text(_ALPHABET, max_size=40))
def test_same_pieces_as_hugging_face_split(text: str) -> None:
    # tokenizers compiles the same pattern with Oniguruma: a second implementation of it
    assert pretokenize(text) == _hf_pieces(text)


def test_rejects_bytes() -> None:
    with pytest.raises(TypeError, match="str"):
        pretokenize(b"bytes")  # type: ignore[arg-type]
