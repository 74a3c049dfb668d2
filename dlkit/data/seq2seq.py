r"""Toy sequence-to-sequence tasks on digits, generated from a seed, for encoder–decoders.

Three tasks, each a function of the whole input that a model must learn exactly:

- ``"reverse"``: ``3 1 4 1 5`` → ``5 1 4 1 3``. Output token :math:`j` copies input token
  :math:`n - 1 - j`: it needs to know *where* each token is, so a model without position
  information (self-attention is permutation-equivariant) cannot learn it.
- ``"sort"``: ``3 1 4 1 5`` → ``1 1 3 4 5``. The output depends only on the multiset of
  input digits, so positions do not matter.
- ``"add"``: ``1 2 + 9 9`` → ``1 1 1`` (two numbers, most significant digit first, and
  the digits of their sum); a carry makes each output digit depend on several inputs.

Token ids (one vocabulary for sources and targets, :data:`VOCAB_SIZE` = 14):

.. code-block:: text

    0 <pad>   1 <bos>   2 <eos>   3..12 digits 0..9   13 +

A source is its digits padded with ``<pad>`` to the task's widest source; a target is
``<bos>, answer, <eos>``, padded with ``<pad>``. For teacher forcing the decoder reads
``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``. A prediction is *exactly right* when its
tokens up to the first ``<eos>`` equal the answer and that ``<eos>`` is there
(:func:`exact_match`).

Train and test examples come from one seeded stream with repeated sources dropped, cut
by index, so no test source appears in training. Everything is NumPy; only
:meth:`Seq2SeqSplit.tensors` imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "PLUS_ID",
    "SEQ2SEQ_TASKS",
    "TOKENS",
    "VOCAB_SIZE",
    "Seq2SeqSplit",
    "Seq2SeqTask",
    "answer_of",
    "decode",
    "encode",
    "exact_match",
    "make_seq2seq_task",
    "to_text",
]

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
DIGIT_OFFSET = 3  # digit d has id d + 3
PLUS_ID = 13
TOKENS = ("<pad>", "<bos>", "<eos>", *(str(d) for d in range(10)), "+")
VOCAB_SIZE = len(TOKENS)
SEQ2SEQ_TASKS = ("reverse", "sort", "add")
TaskName = Literal["reverse", "sort", "add"]
_CHUNK = 1024  # candidates drawn per round: the stream does not depend on how many are needed


@dataclass(frozen=True, eq=False)
class Seq2SeqSplit:
    """``src`` ``(n, S)`` and ``tgt`` ``(n, T)`` int64 token ids, ``<pad>``-padded."""

    src: np.ndarray
    tgt: np.ndarray

    def __len__(self) -> int:
        return len(self.src)

    @property
    def src_lengths(self) -> np.ndarray:
        """Number of source tokens of each example ``(n,)`` (digits, and ``+`` for addition)."""
        return (self.src != PAD_ID).sum(axis=1)

    def tensors(self) -> tuple[Tensor, Tensor]:
        """``(src, tgt)`` as int64 torch tensors (copies)."""
        import torch

        return torch.from_numpy(self.src.copy()), torch.from_numpy(self.tgt.copy())


@dataclass(frozen=True, eq=False)
class Seq2SeqTask:
    """One toy task: its name, length range and the train / test splits."""

    name: str
    min_len: int
    max_len: int
    train: Seq2SeqSplit
    test: Seq2SeqSplit
    vocab_size: int = VOCAB_SIZE
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    @property
    def src_width(self) -> int:
        """Widest source (columns of ``src``)."""
        return self.train.src.shape[1]

    @property
    def tgt_width(self) -> int:
        """Widest target, ``<bos>`` and ``<eos>`` included (columns of ``tgt``)."""
        return self.train.tgt.shape[1]


def encode(text: str) -> list[int]:
    """Token ids of a string of digits and ``+`` (spaces ignored): ``"12+9"`` → ``[4, 5, 13, 12]``."""
    ids = []
    for char in text.replace(" ", ""):
        if char.isdigit():
            ids.append(DIGIT_OFFSET + int(char))
        elif char == "+":
            ids.append(PLUS_ID)
        else:
            raise ValueError(f"can only encode digits and '+', got {char!r} in {text!r}")
    return ids


def _row(ids: object) -> list[int]:
    values = np.asarray(ids).reshape(-1)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"token ids must be integers, got dtype {values.dtype}")
    return [int(v) for v in values]


def decode(ids: Iterable[int]) -> list[str]:
    """Token strings of every id, specials included: ``[1, 4, 2]`` → ``['<bos>', '1', '<eos>']``."""
    row = _row(ids)
    bad = [i for i in row if not 0 <= i < VOCAB_SIZE]
    if bad:
        raise ValueError(f"token ids must be in [0, {VOCAB_SIZE}), got {bad[0]}")
    return [TOKENS[i] for i in row]


def answer_of(ids: Iterable[int]) -> tuple[int, ...] | None:
    """The answer a (predicted or target) sequence spells, or ``None`` if it never ends.

    A leading ``<bos>`` is skipped; the answer is every token before the first ``<eos>``;
    whatever follows the ``<eos>`` (padding) is ignored. Without an ``<eos>`` the
    sequence did not finish its answer and gives ``None``.
    """
    row = _row(ids)
    if row and row[0] == BOS_ID:
        row = row[1:]
    if EOS_ID not in row:
        return None
    return tuple(row[: row.index(EOS_ID)])


def to_text(ids: Iterable[int]) -> str:
    """Human-readable text: digits and ``+``, stopping at ``<eos>``, skipping ``<bos>``/``<pad>``."""
    out = []
    for token in decode(ids):
        if token == "<eos>":
            break
        if token not in ("<bos>", "<pad>"):
            out.append(token)
    return "".join(out)


def exact_match(predictions: object, targets: object) -> float:
    """Fraction of rows whose whole answer is right, ``<eos>`` included.

    ``predictions`` and ``targets`` are rows of token ids (2-D arrays or tensors, or lists
    of rows of any lengths); each row is read by :func:`answer_of`, so a leading ``<bos>``
    and anything after the first ``<eos>`` do not matter, and a prediction that never
    emits ``<eos>`` is wrong.
    """
    pred_rows, target_rows = _rows(predictions), _rows(targets)
    if len(pred_rows) != len(target_rows):
        raise ValueError(
            f"got {len(pred_rows)} predictions for {len(target_rows)} targets; expected one each"
        )
    if not pred_rows:
        raise ValueError("exact_match needs at least one example")
    right = 0
    for pred, target in zip(pred_rows, target_rows, strict=True):
        expected = answer_of(target)
        if expected is None:
            raise ValueError(f"target {target} has no <eos> (id {EOS_ID})")
        right += answer_of(pred) == expected
    return right / len(pred_rows)


def _rows(batch: object) -> list[list[int]]:
    if hasattr(batch, "detach"):  # a torch tensor
        batch = batch.detach().cpu().numpy()  # type: ignore[union-attr]
    if isinstance(batch, np.ndarray):
        if batch.ndim != 2:
            raise ValueError(f"expected a 2-D batch of token ids (n, length), got {batch.shape}")
        return [_row(r) for r in batch]
    return [_row(r) for r in batch]  # type: ignore[union-attr]


def _digits(rng: np.random.Generator, n: int, min_len: int, max_len: int) -> list[list[int]]:
    lengths = rng.integers(min_len, max_len + 1, size=n)
    digits = rng.integers(0, 10, size=(n, max_len))
    return [list(row[:length]) for row, length in zip(digits, lengths, strict=True)]


def _number_digits(rng: np.random.Generator, n: int, min_len: int, max_len: int) -> list[str]:
    """``n`` numbers written with ``min_len .. max_len`` digits (no leading zeros; 0 has one)."""
    lengths = rng.integers(min_len, max_len + 1, size=n)
    out = []
    for length in lengths:
        low = 0 if length == 1 else 10 ** (int(length) - 1)
        out.append(str(int(rng.integers(low, 10 ** int(length)))))
    return out


def _candidates(
    name: str, rng: np.random.Generator, min_len: int, max_len: int
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    if name == "add":
        left = _number_digits(rng, _CHUNK, min_len, max_len)
        right = _number_digits(rng, _CHUNK, min_len, max_len)
        return [
            (tuple(encode(f"{a}+{b}")), tuple(encode(str(int(a) + int(b)))))
            for a, b in zip(left, right, strict=True)
        ]
    pairs = []
    for digits in _digits(rng, _CHUNK, min_len, max_len):
        answer = digits[::-1] if name == "reverse" else sorted(digits)
        pairs.append(
            (tuple(DIGIT_OFFSET + d for d in digits), tuple(DIGIT_OFFSET + d for d in answer))
        )
    return pairs


def _capacity(name: str, min_len: int, max_len: int) -> int:
    """How many distinct sources the task has with these lengths."""
    if name == "add":
        numbers = 10**max_len - (10 ** (min_len - 1) if min_len > 1 else 0)
        return numbers * numbers
    return sum(10**length for length in range(min_len, max_len + 1))


def _pad(rows: Sequence[Sequence[int]], width: int) -> np.ndarray:
    out = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def make_seq2seq_task(
    name: TaskName,
    *,
    n_train: int = 10_000,
    n_test: int = 1_000,
    min_len: int = 1,
    max_len: int = 8,
    seed: int = 0,
) -> Seq2SeqTask:
    """Train and test splits of a toy task, drawn from a seeded generator.

    Args:
        name: ``"reverse"``, ``"sort"`` or ``"add"``.
        n_train, n_test: examples per split (distinct sources; the test sources never
            appear in training).
        min_len, max_len: the range of sequence lengths (digits per source for reverse and
            sort, digits per operand for add), each drawn uniformly;
            ``min_len == max_len`` gives fixed-length sequences.
        seed: the generator's seed; the same seed gives the same splits, and a larger
            ``n_test`` keeps the same training examples.

    Raises:
        ValueError: unknown task, bad sizes, or fewer distinct sources than
            ``n_train + n_test``.
    """
    if name not in SEQ2SEQ_TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {list(SEQ2SEQ_TASKS)}")
    for label, value in (("n_train", n_train), ("n_test", n_test), ("min_len", min_len)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if not isinstance(max_len, int | np.integer) or max_len < min_len:
        raise ValueError(f"max_len must be an integer >= min_len={min_len}, got {max_len!r}")
    needed = n_train + n_test
    capacity = _capacity(name, min_len, max_len)
    if needed > capacity:
        raise ValueError(
            f"the {name!r} task with lengths {min_len}..{max_len} has only {capacity} distinct "
            f"sources, fewer than n_train + n_test = {needed}; use longer sequences"
        )
    rng = np.random.default_rng(seed)
    pairs: dict[tuple[int, ...], tuple[int, ...]] = {}  # insertion-ordered, one per source
    while len(pairs) < needed:
        for src, answer in _candidates(name, rng, min_len, max_len):
            if src not in pairs:
                pairs[src] = answer
                if len(pairs) == needed:
                    break
    sources = list(pairs)
    targets = [(BOS_ID, *pairs[s], EOS_ID) for s in sources]
    src = _pad(sources, max(map(len, sources)))  # (n, S)
    tgt = _pad(targets, max(map(len, targets)))  # (n, T)
    return Seq2SeqTask(
        name=name,
        min_len=int(min_len),
        max_len=int(max_len),
        train=Seq2SeqSplit(src[:n_train], tgt[:n_train]),
        test=Seq2SeqSplit(src[n_train:], tgt[n_train:]),
    )
