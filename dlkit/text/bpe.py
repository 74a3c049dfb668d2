r"""A byte-level BPE tokenizer: train it, encode, decode, stream, save and load.

Token ids ``0 .. 255`` are the byte values; ids ``256 .. 255 + M`` are the :math:`M`
learned merges in learning order (:mod:`dlkit.text.merges`); the special tokens follow
(``256 + M, ...``), so ``vocab_size = 256 + M + len(special_tokens)``.

**Encoding** a text: cut it at the special tokens that are *allowed*, cut the rest into
pieces (:func:`~dlkit.text.pretokenize.pretokenize`), write each piece as its UTF-8 bytes
and apply the merges to it, always the one learned *earliest* among the pairs present
(lowest id), every occurrence left to right, until none applies. Because the merges
reproduce the training choices in order, a word seen in training is encoded exactly as
training left it. Pieces repeat a lot, so their encodings are cached.

**Special tokens** (``"<|endoftext|>"``) are never split and never merged: training
removes them from the text (they act as separators) and encoding maps each *allowed*
occurrence to its single id. ``allowed_special`` is ``"all"`` (default), ``"none"`` or a
set of special strings. Special-token text that is *not* allowed is **ordinary text**
and is encoded byte by byte like any other (it round-trips, but as several tokens); it
is not an error (``tiktoken`` raises by default instead).

**Decoding** joins the tokens' bytes and decodes them as UTF-8 with
``errors="replace"``: a token sequence that cuts a multi-byte character (``"中"`` is
three bytes, which may be split over tokens) decodes to U+FFFD ``"�"`` for the incomplete
part instead of raising. The ids of a *whole* encoding always hold whole characters, so
``decode(encode(s)) == s`` for every string ``s`` (tested with hypothesis).

**Streaming**: :meth:`BPETokenizer.encode_iterable` encodes an iterable of strings
(the lines of a large file) with memory bounded by the longest piece, and yields exactly
the ids of ``encode("".join(chunks))``. A chunk boundary can fall inside a piece
(``"they'" | "re"``: the contraction ``'re`` needs both), so it does not encode chunk by
chunk; it keeps a buffer and encodes only the pieces that text appended later cannot
change. Every piece but the last two is final: a match of :data:`GPT2_SPLIT_PATTERN`
depends on at most the next character after it (greedy runs, the ``(?!\S)`` look-ahead)
or the next two (a contraction, tried at the piece's start), and a whitespace run that
reaches the end of the buffer is always inside the last piece. Those final pieces are
encoded as found (the cut-off prefix, re-split on its own, could split differently:
``"\n\n<"`` gives ``"\n"``, ``"\n"``, ``"<"`` but ``"\n\n"`` alone is one piece). It also
holds back any end of the buffer that could be the start of an allowed special token,
and splits only the text before it (text before a special token is split on its own).

Saved as two plain-text files (:meth:`BPETokenizer.save`): ``merges.txt``, one merge per
line (``new_id left_id right_id left right``, the bytes written printable-ASCII as is and
everything else, space included, as ``\xHH``), and ``vocab.json`` (every id's bytes in
the same notation, the special tokens and the split pattern).
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import regex

from dlkit.text.merges import count_words, learn_merges, merge_pair
from dlkit.text.pretokenize import GPT2_SPLIT_PATTERN, iter_pieces, pretokenize

__all__ = ["BPETokenizer", "EncodeStep", "train_bpe"]

Pair = tuple[int, int]
CACHE_SIZE = 100_000  # encoded pieces kept; the cache is emptied when full (bounded memory)
FORMAT = "dlkit-bpe-1"


@dataclass(frozen=True)
class EncodeStep:
    """One step of :meth:`BPETokenizer.encode_steps`: the tokens of each piece after it.

    ``pair`` was merged into ``new_id`` in this step (both None for the starting bytes).
    """

    pair: Pair | None
    new_id: int | None
    pieces: tuple[tuple[int, ...], ...]

    @property
    def ids(self) -> list[int]:
        """All the pieces' tokens, in order."""
        return [i for piece in self.pieces for i in piece]


class BPETokenizer:
    """A byte-level BPE tokenizer given its ``merges`` (in learning order) and special tokens.

    Usually built by :func:`train_bpe` or :meth:`load`. ``merges[k] = (a, b)`` creates id
    ``256 + k`` and may use only ids created before it.
    """

    def __init__(self, merges: Sequence[Pair], special_tokens: Sequence[str] = ()) -> None:
        self.merges: list[Pair] = []
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for k, pair in enumerate(merges):
            new_id = 256 + k
            if len(pair) != 2 or not all(isinstance(i, int) and 0 <= i < new_id for i in pair):
                raise ValueError(
                    f"merge {k} must be a pair of ids already defined (0 .. {new_id - 1}), "
                    f"got {pair!r}"
                )
            a, b = pair
            self.merges.append((a, b))
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        self._ranks: dict[Pair, int] = {pair: 256 + k for k, pair in enumerate(self.merges)}
        if isinstance(special_tokens, str):
            raise TypeError("special_tokens must be a sequence of strings, not one string")
        self.special_tokens: dict[str, int] = {}
        for token in special_tokens:
            if not isinstance(token, str) or not token:
                raise ValueError(f"special tokens must be non-empty strings, got {token!r}")
            if token in self.special_tokens:
                raise ValueError(f"special token {token!r} is given twice")
            self.special_tokens[token] = len(self.vocab)
            self.vocab[len(self.vocab)] = token.encode("utf-8")
        self._special_ids = set(self.special_tokens.values())
        self._cache: dict[str, list[int]] = {}
        self.merge_counts: list[int] | None = None  # set by train_bpe: each merge's pair count

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )

    # --- encoding -----------------------------------------------------------------------

    def _encode_piece(self, piece: str) -> list[int]:
        """The ids of one pre-tokenized piece: its bytes, merged earliest-merge first."""
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        ids = list(piece.encode("utf-8"))
        while len(ids) >= 2:
            # the pair whose merge was learned first (lowest new id); unknown pairs rank last
            pair = min(itertools.pairwise(ids), key=lambda p: self._ranks.get(p, 1 << 62))
            if pair not in self._ranks:
                break  # no merge applies any more
            ids = merge_pair(ids, pair, self._ranks[pair])
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[piece] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of ``text`` with special-token text treated as ordinary text."""
        _check_text(text)
        ids: list[int] = []
        for piece in pretokenize(text):
            ids.extend(self._encode_piece(piece))
        return ids

    def encode(self, text: str, *, allowed_special: str | Iterable[str] = "all") -> list[int]:
        """The ids of ``text``; allowed special tokens become their single id.

        ``allowed_special``: ``"all"``, ``"none"`` or a set of this tokenizer's special
        tokens. Special-token text that is not allowed is encoded as ordinary text.
        """
        _check_text(text)
        splitter = self._special_splitter(self._allowed(allowed_special))
        if splitter is None:
            return self.encode_ordinary(text)
        ids: list[int] = []
        # re.split with a capturing group alternates ordinary text and special tokens
        for k, part in enumerate(splitter.split(text)):
            if k % 2:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def encode_iterable(
        self, chunks: Iterable[str], *, allowed_special: str | Iterable[str] = "all"
    ) -> Iterator[int]:
        """Yield the ids of ``"".join(chunks)``, reading ``chunks`` lazily (e.g. a file's lines).

        Memory stays bounded by the longest piece plus the longest chunk, whatever the
        total length; see the module docstring for why the output equals :meth:`encode`'s.
        """
        if isinstance(chunks, str):
            raise TypeError("encode_iterable expects an iterable of strings; use encode(text)")
        allowed = self._allowed(allowed_special)
        splitter = self._special_splitter(allowed)
        buffer = ""
        for chunk in chunks:
            _check_text(chunk)
            ids, buffer = self._encode_final_part(buffer + chunk, splitter, allowed)
            yield from ids
        if buffer:
            yield from self.encode(buffer, allowed_special=allowed)

    def _encode_final_part(
        self, buffer: str, splitter: regex.Pattern | None, allowed: set[str]
    ) -> tuple[list[int], str]:
        """The ids of the part of ``buffer`` that later text cannot change, and the rest."""
        tail_start = 0  # after the last allowed special token, the buffer is ordinary text
        if splitter is not None:
            for match in splitter.finditer(buffer):
                tail_start = match.end()
        # the end of the buffer might be the start of a special token: keep it back
        limit = len(buffer)
        for token in allowed:
            for k in range(min(len(token) - 1, len(buffer)), 0, -1):
                if buffer.endswith(token[:k]):
                    limit = min(limit, len(buffer) - k)
                    break
        if limit < tail_start:
            return [], buffer  # a longer special token may still match: wait for more text
        ids = self.encode(buffer[:tail_start], allowed_special=allowed)
        # text before a special token is split on its own, so split only up to `limit`
        pieces = list(iter_pieces(buffer[tail_start:limit]))
        final = pieces[:-2]  # all but the last two (module docstring)
        for _, piece in final:
            ids.extend(self._encode_piece(piece))  # the piece as found, not re-split
        rest_start = tail_start + (pieces[len(final)][0] if pieces else 0)
        return ids, buffer[rest_start:]

    def _allowed(self, allowed_special: str | Iterable[str]) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if allowed_special == "none":
            return set()
        if isinstance(allowed_special, str):
            raise ValueError(
                f'allowed_special must be "all", "none" or a set of special tokens, '
                f"got {allowed_special!r}"
            )
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"allowed_special names {sorted(unknown)}, which are not special tokens of "
                f"this tokenizer ({list(self.special_tokens)})"
            )
        return allowed

    @staticmethod
    def _special_splitter(allowed: set[str]) -> regex.Pattern | None:
        if not allowed:
            return None
        longest_first = sorted(allowed, key=lambda s: (-len(s), s))  # "<|a|>x" before "<|a|>"
        return regex.compile("(" + "|".join(regex.escape(s) for s in longest_first) + ")")

    # --- decoding -----------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token's are its UTF-8 text)."""
        try:
            token_id = operator.index(token_id)  # ints, NumPy integers, 0-d tensors
        except TypeError:
            raise TypeError(f"token ids must be integers, got {type(token_id).__name__}") from None
        try:
            return self.vocab[token_id]
        except KeyError:
            raise ValueError(
                f"unknown token id {token_id}: this vocabulary has ids 0 .. {self.vocab_size - 1}"
            ) from None

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The tokens' bytes, joined."""
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: joined bytes, UTF-8 with ``errors="replace"`` (module docstring)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- teaching -----------------------------------------------------------------------

    def encode_steps(self, text: str) -> list[EncodeStep]:
        """Every merge applied while encoding ``text`` (as ordinary text), in order.

        Step 0 holds the raw bytes of each piece; each later step applies the earliest
        learned merge present in any piece, in every piece. The last step's ``ids`` equal
        ``encode_ordinary(text)``.
        """
        _check_text(text)
        pieces = [list(piece.encode("utf-8")) for piece in pretokenize(text)]
        steps = [EncodeStep(None, None, tuple(map(tuple, pieces)))]
        while True:
            present = {p for ids in pieces for p in itertools.pairwise(ids) if p in self._ranks}
            if not present:
                return steps
            pair = min(present, key=self._ranks.__getitem__)
            new_id = self._ranks[pair]
            pieces = [merge_pair(ids, pair, new_id) for ids in pieces]
            steps.append(EncodeStep(pair, new_id, tuple(map(tuple, pieces))))

    # --- saving -------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``merges.txt`` and ``vocab.json`` into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"# {FORMAT} merges: new_id left_id right_id left right "
            "(bytes: printable ASCII as is, others as \\xHH)"
        ]
        for k, (a, b) in enumerate(self.merges):
            lines.append(
                f"{256 + k} {a} {b} {escape_bytes(self.vocab[a])} {escape_bytes(self.vocab[b])}"
            )
        (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        vocab = {
            "format": FORMAT,
            "pattern": GPT2_SPLIT_PATTERN,
            "special_tokens": self.special_tokens,
            "vocab": {str(i): escape_bytes(b) for i, b in self.vocab.items()},
        }
        (directory / "vocab.json").write_text(
            json.dumps(vocab, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> BPETokenizer:
        """The tokenizer :meth:`save` wrote; both files are checked against each other."""
        directory = Path(directory)
        merges = []
        merges_text = (directory / "merges.txt").read_text(encoding="utf-8")
        for number, line in enumerate(merges_text.splitlines(), start=1):
            if not line or line.startswith("#"):
                continue
            fields = line.split(" ")
            if len(fields) != 5 or not all(f.isdigit() for f in fields[:3]):
                raise ValueError(
                    f"merges.txt line {number} is not 'new_id left right l r': {line!r}"
                )
            new_id, a, b = map(int, fields[:3])
            if new_id != 256 + len(merges):
                raise ValueError(f"merges.txt line {number}: expected id {256 + len(merges)}")
            merges.append((a, b))
        saved = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        if saved.get("format") != FORMAT or saved.get("pattern") != GPT2_SPLIT_PATTERN:
            raise ValueError(f"vocab.json is not a {FORMAT} file with the GPT-2 split pattern")
        specials = sorted(saved["special_tokens"], key=saved["special_tokens"].__getitem__)
        tokenizer = cls(merges, specials)
        expected = {str(i): escape_bytes(b) for i, b in tokenizer.vocab.items()}
        if saved["vocab"] != expected or saved["special_tokens"] != tokenizer.special_tokens:
            raise ValueError("vocab.json does not match merges.txt (edited by hand?)")
        return tokenizer


def escape_bytes(data: bytes) -> str:
    r"""Printable ASCII except space and backslash as is, every other byte as ``\xHH``."""
    return "".join(chr(b) if 0x21 <= b <= 0x7E and b != 0x5C else f"\\x{b:02x}" for b in data)


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"expected text as a str, got {type(text).__name__}")


def train_bpe(
    text: str | Iterable[str],
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = (),
    progress: bool = False,
) -> BPETokenizer:
    """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

    ``text`` is one string or an iterable of strings (documents; each is pre-tokenized
    on its own). Special-token text is cut out of the training text first, so no merge
    ever involves it. Training stops early, with a smaller vocabulary, if every word
    becomes a single token. ``tokenizer.merge_counts`` records each merge's pair count.
    """
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if isinstance(special_tokens, str):
        raise TypeError("special_tokens must be a sequence of strings, not one string")
    minimum = 256 + len(special_tokens)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size must be at least 256 bytes + {len(special_tokens)} special tokens "
            f"= {minimum}, got {vocab_size}"
        )
    documents = [text] if isinstance(text, str) else text
    splitter = BPETokenizer._special_splitter(set(special_tokens))
    pieces: list[str] = []
    for document in documents:
        _check_text(document)
        parts = splitter.split(document)[::2] if splitter is not None else [document]
        for part in parts:  # the ordinary text between special tokens
            pieces.extend(pretokenize(part))
    merges = learn_merges(count_words(pieces), vocab_size - minimum, progress=progress)
    tokenizer = BPETokenizer([m.pair for m in merges], special_tokens)
    tokenizer.merge_counts = [m.count for m in merges]
    return tokenizer
