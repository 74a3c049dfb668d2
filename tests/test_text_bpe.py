"""Byte-level BPE: lossless round trips, a brute-force and a Hugging Face oracle, streaming, files.

Two oracles check training. A naive trainer written here recounts every pair after every
merge (no index, no heap) and must learn exactly the same merges. Hugging Face
``tokenizers`` (Rust) trains a byte-level BPE with the same split pattern; its tie rule is
ours (highest count, then the smallest pair of ids) but it numbers the 256 bytes in the
order of GPT-2's printable stand-in characters (``"Ġ"`` for the space comes after
``"~"``), so: with the bytes renumbered its way our merges are identical, and with our own
numbering (id = byte value) they are identical up to the first tie between a pair
involving a renumbered byte and another pair, and nearly the same set after it.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.data.text import stdlib_corpus
from dlkit.text import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    get_pair_counts,
    learn_merges,
    merge_pair,
    pretokenize,
    train_bpe,
)

EOT = "<|endoftext|>"
HARD = [
    "",
    "a",
    "héllo wörld",
    "中文字符测试，还有标点。",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧",
    "tabs\tand\nnewlines\r\n  indented\n\n\n",
    "they're we'll DON'T",
    "\x00\x7f\ufffd",
    EOT,
    f"two{EOT}{EOT} specials",
]


@pytest.fixture(scope="module")
def corpus() -> str:
    # ~10 k characters of docstrings (offline), plus the hard strings 20 times to learn from
    return stdlib_corpus(["textwrap", "fnmatch", "bisect", "shlex"]) + "\n" + " ".join(HARD) * 20


@pytest.fixture(scope="module")
def tokenizer(corpus: str) -> BPETokenizer:
    return train_bpe(f"{corpus}{EOT}{corpus[:2000]}", 600, special_tokens=[EOT, "<|pad|>"])


# --- the merge rule -----------------------------------------------------------------------


def test_pair_counts_and_merge() -> None:
    assert get_pair_counts([1, 2, 1, 2, 2]) == {(1, 2): 2, (2, 1): 1, (2, 2): 1}
    assert get_pair_counts([7]) == {}
    assert merge_pair([1, 2, 1, 2, 2], (1, 2), 9) == [9, 9, 2]
    assert merge_pair([5, 5, 5, 5, 5], (5, 5), 6) == [6, 6, 5]  # left to right, no overlap
    assert merge_pair([1, 2], (2, 1), 9) == [1, 2]


def reference_merges(word_counts: Counter[bytes], num_merges: int) -> list[tuple[int, int]]:
    """Brute force: recount every pair of every word after each merge."""
    words = {word: list(word) for word in word_counts}
    merges = []
    for k in range(num_merges):
        counts: Counter[tuple[int, int]] = Counter()
        for word, ids in words.items():
            for i in range(len(ids) - 1):
                counts[ids[i], ids[i + 1]] += word_counts[word]
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # count, then smallest pair
        merges.append(best)
        for word, ids in words.items():
            out, i = [], 0
            while i < len(ids):
                if ids[i : i + 2] == list(best):
                    out.append(256 + k)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[word] = out
    return merges


def test_merges_equal_brute_force_on_a_corpus(corpus: str) -> None:
    text = corpus[:12_000]
    tokenizer = train_bpe(text, 256 + 200)
    assert len(tokenizer.merges) == 200
    assert tokenizer.merges == reference_merges(Counter(p.encode() for p in pretokenize(text)), 200)
    assert len(set(tokenizer.merge_counts)) < 200  # the corpus has ties: tie-breaking is exercised


@settings(max_examples=60, deadline=None)
@given(st.text(st.sampled_from("aab b'\n"), max_size=60), st.integers(0, 30))
def test_merges_equal_brute_force_on_tie_heavy_texts(text: str, num_merges: int) -> None:
    # a tiny alphabet: many ties, runs like "aaaa" (overlapping pairs), early stops
    words = Counter(p.encode() for p in pretokenize(text))
    ours = [m.pair for m in learn_merges(words, num_merges)]
    assert ours == reference_merges(words, num_merges)


def test_training_stops_when_every_word_is_one_token() -> None:
    tokenizer = train_bpe("ab ab ab", 1000)
    assert [tokenizer.vocab[256 + k] for k in range(len(tokenizer.merges))] == [b"ab", b" ab"]
    assert tokenizer.vocab_size == 258  # asked for 1000


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("text", HARD)
def test_round_trip_hard_strings(tokenizer: BPETokenizer, text: str) -> None:
    for allowed in ("all", "none"):
        assert tokenizer.decode(tokenizer.encode(text, allowed_special=allowed)) == text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_any_text(tokenizer: BPETokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert all(0 <= i < tokenizer.vocab_size for i in ids)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(), st.sampled_from([EOT, "<|pad|>", "<|", "|>"]))))
def test_round_trip_with_special_tokens(tokenizer: BPETokenizer, parts: list[str]) -> None:
    text = "".join(parts)
    for allowed in ("all", "none", {"<|pad|>"}):
        assert tokenizer.decode(tokenizer.encode(text, allowed_special=allowed)) == text


def test_chinese_and_emoji_are_merged_bytes(tokenizer: BPETokenizer) -> None:
    ids = tokenizer.encode("中文字符测试")
    assert len(ids) < len("中文字符测试".encode())  # learned from the corpus: merged
    assert tokenizer.decode(tokenizer.encode("😀")) == "😀"
    # a lone first byte of a 4-byte character decodes to U+FFFD, not an exception
    assert tokenizer.decode([0xF0]) == "\ufffd"
    assert tokenizer.decode([*tokenizer.encode("ok"), 0xE4, 0xB8]) == "ok\ufffd"


# --- special tokens -----------------------------------------------------------------------


def test_special_tokens_are_never_split_or_merged(tokenizer: BPETokenizer) -> None:
    eot, pad = tokenizer.special_tokens[EOT], tokenizer.special_tokens["<|pad|>"]
    assert (eot, pad) == (256 + len(tokenizer.merges), 257 + len(tokenizer.merges))
    learned = [tokenizer.vocab[256 + k] for k in range(len(tokenizer.merges))]
    assert not any(b"<|" in t or b"|>" in t or b"endoftext" in t for t in learned)
    ids = tokenizer.encode(f"a{EOT}{EOT}b<|pad|>")
    assert ids.count(eot) == 2 and ids.count(pad) == 1
    assert ids == [*tokenizer.encode("a"), eot, eot, *tokenizer.encode("b"), pad]
    # not allowed: ordinary text, several byte-level tokens, none of them special
    plain = tokenizer.encode(EOT, allowed_special="none")
    assert len(plain) > 1 and not set(plain) & {eot, pad}
    assert tokenizer.encode(EOT, allowed_special={"<|pad|>"}) == plain
    assert tokenizer.encode(f"{EOT}<|pad|>", allowed_special={"<|pad|>"}) == [*plain, pad]


def test_special_tokens_in_training_text_are_separators() -> None:
    trained = train_bpe(f"ab{EOT}ab{EOT}ab", 300, special_tokens=[EOT])
    assert [trained.vocab[256 + k] for k in range(len(trained.merges))] == [b"ab"]


def test_longest_special_token_wins() -> None:
    tokenizer = BPETokenizer([], special_tokens=["<|a|>", "<|a|>x"])
    assert tokenizer.encode("<|a|>x<|a|>") == [257, 256]


# --- streaming ----------------------------------------------------------------------------


def test_encode_iterable_equals_encode_on_lines(tokenizer: BPETokenizer, corpus: str) -> None:
    text = f"{corpus}{EOT}\n\n\n   {corpus[:3000]}"
    lines = text.splitlines(keepends=True)
    assert list(tokenizer.encode_iterable(lines)) == tokenizer.encode(text)
    assert list(tokenizer.encode_iterable(lines, allowed_special="none")) == tokenizer.encode(
        text, allowed_special="none"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(st.sampled_from(" \n\t'abrels.中😀<|>"), max_size=8),
            st.sampled_from([EOT, "<|endo", "ftext|>", "they'", "re", "   ", "\n\n"]),
        ),
        max_size=12,
    )
)
def test_encode_iterable_equals_encode_for_any_chunking(
    tokenizer: BPETokenizer, chunks: list[str]
) -> None:
    # chunk boundaries inside contractions, whitespace runs and special tokens
    for allowed in ("all", "none"):
        expected = tokenizer.encode("".join(chunks), allowed_special=allowed)
        assert list(tokenizer.encode_iterable(chunks, allowed_special=allowed)) == expected


def test_encode_iterable_streams_lazily(tokenizer: BPETokenizer) -> None:
    endless = itertools.cycle(["A line of text, ", "with they're and 中文.\n", "\n"])
    first = list(itertools.islice(tokenizer.encode_iterable(endless), 1000))  # returns: lazy
    text = "".join(
        itertools.islice(
            itertools.cycle(["A line of text, ", "with they're and 中文.\n", "\n"]), 600
        )
    )
    assert first == tokenizer.encode(text)[:1000]


# --- Hugging Face tokenizers as an oracle ------------------------------------------------


def _gpt2_byte_to_char() -> dict[int, str]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest shift to 256+."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    shifted = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(shifted)}}


def _hf_train(text: str, vocab_size: int):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT2_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=0,
        show_progress=False,
    )
    hf.train_from_iterator([text], trainer=trainer)
    char_to_byte = {c: b for b, c in _gpt2_byte_to_char().items()}
    merges = json.loads(hf.to_str())["model"]["merges"]
    as_bytes = [
        tuple(
            bytes(char_to_byte[c] for c in side)
            for side in (m.split(" ") if isinstance(m, str) else m)
        )
        for m in merges
    ]
    return hf, as_bytes


def _merge_bytes(tokenizer: BPETokenizer) -> list[tuple[bytes, bytes]]:
    return [(tokenizer.vocab[a], tokenizer.vocab[b]) for a, b in tokenizer.merges]


@pytest.fixture(scope="module")
def hf_case():
    corpus, vocab_size = stdlib_corpus(), 1000  # 226 k characters of docstrings
    hf, hf_merges = _hf_train(corpus, vocab_size)
    return corpus, vocab_size, hf, hf_merges


def test_identical_to_hugging_face_with_its_byte_numbering(hf_case) -> None:
    corpus, vocab_size, _, hf_merges = hf_case
    byte_to_char = _gpt2_byte_to_char()
    hf_order = sorted(range(256), key=byte_to_char.__getitem__)  # HF's id k is byte hf_order[k]
    renumber = {b: k for k, b in enumerate(hf_order)}
    words = Counter(bytes(renumber[b] for b in p.encode()) for p in pretokenize(corpus))
    vocab = {k: bytes([b]) for k, b in enumerate(hf_order)}
    ours = []
    for merge in learn_merges(words, vocab_size - 256):
        a, b = merge.pair
        vocab[merge.new_id] = vocab[a] + vocab[b]
        ours.append((vocab[a], vocab[b]))
    assert len(ours) == vocab_size - 256
    assert ours == hf_merges  # same counts, same tie rule: the same merges, in order


def test_close_to_hugging_face_with_our_byte_numbering(hf_case) -> None:
    corpus, vocab_size, hf, hf_merges = hf_case
    tokenizer = train_bpe(corpus, vocab_size)
    ours = _merge_bytes(tokenizer)
    first = next(k for k, (x, y) in enumerate(zip(ours, hf_merges, strict=True)) if x != y)
    assert first >= 20 and ours[:first] == hf_merges[:first]
    # the first difference is a tie: HF's pair had our pair's count at that point ...
    assert _count_of(corpus, tokenizer, first, hf_merges[first]) == tokenizer.merge_counts[first]
    # ... broken differently because one of the two holds a byte HF numbers differently
    renumbered = {b for b, c in _gpt2_byte_to_char().items() if ord(c) >= 256}
    assert any(len(t) == 1 and t[0] in renumbered for t in (*ours[first], *hf_merges[first]))
    # After it the order differs, the set barely. Measured: first difference at merge 38
    # (our " e" against HF's "an", both counted 687), 743 of 744 merges shared, the same
    # 88,703 tokens for the corpus. bench/bpe.py measures it on 1 MB.
    shared = len(set(ours) & set(hf_merges)) / len(ours)
    assert shared >= 0.99, shared
    ours_tokens, hf_tokens = len(tokenizer.encode(corpus)), len(hf.encode(corpus).ids)
    assert abs(ours_tokens - hf_tokens) <= 0.001 * hf_tokens, (ours_tokens, hf_tokens)


def _count_of(corpus: str, tokenizer: BPETokenizer, k: int, pair: tuple[bytes, bytes]) -> int:
    """Occurrences of the byte-string ``pair`` after our first ``k`` merges (HF's candidate)."""
    prefix = BPETokenizer(tokenizer.merges[:k])
    ids_of = {v: i for i, v in prefix.vocab.items()}
    if pair[0] not in ids_of or pair[1] not in ids_of:
        return -1
    target = (ids_of[pair[0]], ids_of[pair[1]])
    counts: Counter[tuple[int, int]] = Counter()
    for piece, n in Counter(pretokenize(corpus)).items():
        for p in itertools.pairwise(prefix.encode_ordinary(piece)):
            counts[p] += n
    return counts[target]


def test_same_ids_as_hugging_face_for_the_same_merges(hf_case) -> None:
    # our encoder with HF's merges (bytes -> our ids) gives HF's tokens, piece for piece
    corpus, _, hf, hf_merges = hf_case
    ids_of = {bytes([b]): b for b in range(256)}
    merges = []
    for a, b in hf_merges:
        merges.append((ids_of[a], ids_of[b]))
        ids_of.setdefault(a + b, 255 + len(merges))
    ours = BPETokenizer(merges)
    char_to_byte = {c: b for b, c in _gpt2_byte_to_char().items()}
    hf_tokens = [bytes(char_to_byte[c] for c in t) for t in hf.encode(corpus).tokens]
    assert [ours.token_bytes(i) for i in ours.encode(corpus)] == hf_tokens


# --- encode steps, files, errors ----------------------------------------------------------


def test_encode_steps_replay_the_merges(tokenizer: BPETokenizer) -> None:
    text = "the tokenizer's merges 中文"
    steps = tokenizer.encode_steps(text)
    assert steps[0].pair is None and steps[0].ids == list(text.encode())
    assert steps[-1].ids == tokenizer.encode_ordinary(text)
    for before, after in itertools.pairwise(steps):
        assert after.new_id == 256 + tokenizer.merges.index(after.pair)
        assert after.pieces == tuple(
            tuple(merge_pair(p, after.pair, after.new_id)) for p in before.pieces
        )
        assert after.new_id > (before.new_id or 0)  # merges apply in learning order
    assert [len(p) for p in steps[0].pieces] == [len(p.encode()) for p in pretokenize(text)]


def test_save_and_load_reproduce_the_tokenizer(
    tokenizer: BPETokenizer, tmp_path: Path, corpus: str
) -> None:
    tokenizer.save(tmp_path)
    lines = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#") and len(lines) == 1 + len(tokenizer.merges)
    a, b = tokenizer.merges[0]
    assert lines[1] == f"256 {a} {b} {_show(tokenizer.vocab[a])} {_show(tokenizer.vocab[b])}"
    saved = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert saved["vocab"]["32"] == "\\x20" and saved["vocab"]["65"] == "A"
    loaded = BPETokenizer.load(tmp_path)
    assert loaded.merges == tokenizer.merges and loaded.vocab == tokenizer.vocab
    assert loaded.special_tokens == tokenizer.special_tokens
    text = corpus[:5000] + EOT + "中文 😀"
    assert loaded.encode(text) == tokenizer.encode(text)
    # a hand edit that makes the two files disagree is caught
    saved["vocab"]["256"] = "zz"
    (tmp_path / "vocab.json").write_text(json.dumps(saved), encoding="utf-8")
    with pytest.raises(ValueError, match="does not match"):
        BPETokenizer.load(tmp_path)


def _show(data: bytes) -> str:
    return "".join(chr(b) if 33 <= b <= 126 and b != 92 else f"\\x{b:02x}" for b in data)


def test_clear_errors(tokenizer: BPETokenizer) -> None:
    with pytest.raises(ValueError, match=r"at least 256 bytes \+ 2 special tokens = 258"):
        train_bpe("text", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        train_bpe("text", 300.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        train_bpe([b"bytes"], 300)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="str"):
        tokenizer.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iterable of strings"):
        list(tokenizer.encode_iterable("one string"))
    with pytest.raises(TypeError, match="str"):
        list(tokenizer.encode_iterable(["ok", 3]))  # type: ignore[list-item]
    with pytest.raises(ValueError, match=f"unknown token id {tokenizer.vocab_size}"):
        tokenizer.decode([1, tokenizer.vocab_size])
    with pytest.raises(ValueError, match="unknown token id -1"):
        tokenizer.decode([-1])
    with pytest.raises(TypeError, match="integers"):
        tokenizer.decode([1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not special tokens"):
        tokenizer.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        tokenizer.encode("x", allowed_special="some")
    with pytest.raises(ValueError, match="merge 1"):
        BPETokenizer([(1, 2), (3, 300)])
    with pytest.raises(ValueError, match="twice"):
        BPETokenizer([], special_tokens=["<a>", "<a>"])


def test_dlkit_text_is_pure_python() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dlkit.text; assert not {'torch', 'numpy'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
