r"""GPT-2-style pre-tokenization: cut text into pieces that BPE merges never cross.

Byte-pair encoding learns merges of adjacent tokens. Run on raw text it would happily
learn ``"dog."`` and ``"dog!"`` as separate tokens, or merge the space *after* a word into
it. GPT-2 (Radford et al., 2019) first splits the text with one regular expression and
lets BPE merge only inside each piece. :data:`GPT2_SPLIT_PATTERN` is that expression,
an alternation tried left to right at each position (the first alternative that matches
wins, and ``regex.finditer`` continues after it):

1. ``'s|'t|'re|'ve|'m|'ll|'d`` — English contractions, so ``"don't"`` becomes
   ``"don"`` + ``"'t"`` and ``"'t"`` is shared by every such word. (Lower case only,
   as in GPT-2: ``"DON'T"`` gives ``"DON"``, ``"'"``, ``"T"``.)
2. ``␣?\p{L}+`` — a run of letters of any script (``\p{L}``: the Unicode letter
   category, so ``"naïve"`` and ``"中文"`` stay whole), with at most one space in front.
   The space belongs to the *following* word: ``" the"`` is one piece, and the model
   learns one token for "the, after a space".
3. ``␣?\p{N}+`` — a run of digits (``\p{N}``, any script), optionally after one space.
4. ``␣?[^\s\p{L}\p{N}]+`` — a run of everything else that is not whitespace
   (punctuation, symbols, emoji), optionally after one space: ``"..."``, ``" =="``.
5. ``\s+(?!\S)`` — a run of whitespace that is *not* followed by a non-space character:
   at the end of the text, or, through backtracking, all of a run but its last
   character, which then stays free to be the optional space of the next word
   (``"a   b"`` gives ``"a"``, ``"  "``, ``" b"``).
6. ``\s+`` — any other whitespace run (a newline or tab right before a word, which
   alternative 2 does not take, since its optional prefix is a space only).

Every character of the text lands in exactly one piece, so ``"".join(pretokenize(t)) ==
t`` for every string (tested with hypothesis). The pattern has no anchors and no
look-behind: the pieces found from a position onwards depend only on the text from
there, which is what lets :meth:`~dlkit.text.bpe.BPETokenizer.encode_iterable` encode a
stream piece by piece.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

__all__ = ["GPT2_SPLIT_PATTERN", "GPT2_SPLIT_REGEX", "iter_pieces", "pretokenize"]

GPT2_SPLIT_PATTERN = "|".join(
    [
        r"'s|'t|'re|'ve|'m|'ll|'d",  # 1. contractions
        r" ?\p{L}+",  # 2. letters, with one optional leading space
        r" ?\p{N}+",  # 3. digits, with one optional leading space
        r" ?[^\s\p{L}\p{N}]+",  # 4. other non-space symbols, with one optional leading space
        r"\s+(?!\S)",  # 5. whitespace not followed by a non-space (leaves one for the next word)
        r"\s+",  # 6. any remaining whitespace
    ]
)
GPT2_SPLIT_REGEX = regex.compile(GPT2_SPLIT_PATTERN)


def pretokenize(text: str) -> list[str]:
    """The pieces of ``text`` under :data:`GPT2_SPLIT_PATTERN`; they concatenate to ``text``.

    >>> pretokenize("Hello world's  3.14!")
    ['Hello', ' world', "'s", ' ', ' 3', '.', '14', '!']
    """
    if not isinstance(text, str):
        raise TypeError(f"pretokenize expects a str, got {type(text).__name__}")
    return GPT2_SPLIT_REGEX.findall(text)


def iter_pieces(text: str) -> Iterator[tuple[int, str]]:
    """``(start, piece)`` for each piece of ``text``, in order (used to cut streams safely)."""
    for match in GPT2_SPLIT_REGEX.finditer(text):
        yield match.start(), match.group()
