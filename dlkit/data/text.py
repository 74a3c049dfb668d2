"""A character-level corpus made from the Python standard library's own docstrings.

Nothing is downloaded: the text is read from the source files of the installed
standard library. :data:`STDLIB_MODULES` names a fixed list of pure-Python modules;
for each, in that order, :func:`stdlib_corpus` parses the source file with :mod:`ast`
(the module is never imported) and collects the docstrings of the module and of every
class and function, in source order (``ast.get_docstring(clean=True)``, which is
``inspect.cleandoc``: common indentation removed, leading and trailing blank lines dropped).

Cleaning, so that the vocabulary is small and stable:

1. every character outside printable ASCII (plus newline) becomes a space;
2. tabs become spaces, runs of spaces collapse to one, trailing spaces are removed;
3. docstrings shorter than 40 characters (``"Return self."``) are dropped;
4. docstrings are joined by a blank line (``"\\n\\n"``).

The result depends only on the Python version's standard library sources, so it is the
same on every CPython 3.11 install with the same sources (a patch release may edit a
docstring; :func:`corpus_fingerprint` tells two corpora apart).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from dlkit.data.sequences import DatasetSplits

STDLIB_MODULES: tuple[str, ...] = (
    "argparse", "bisect", "calendar", "collections", "contextlib", "copy", "csv",
    "dataclasses", "difflib", "enum", "fnmatch", "fractions", "functools", "gettext",
    "glob", "heapq", "logging", "pathlib", "pprint", "queue", "random", "sched",
    "shlex", "shutil", "statistics", "string", "tempfile", "textwrap", "threading",
    "typing",
)  # fmt: skip
MIN_DOCSTRING_CHARS = 40


def _module_source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    origin = None if spec is None else spec.origin
    if origin is None or not origin.endswith(".py") or not Path(origin).is_file():
        raise FileNotFoundError(
            f"the source of the standard-library module {name!r} was not found (got {origin!r}); "
            "this corpus needs a Python install that ships the .py sources"
        )
    return Path(origin).read_text(encoding="utf-8")


def _docstrings(source: str) -> list[str]:
    """Docstrings of the module, its classes and functions, in source order."""
    tree = ast.parse(source)
    nodes = [tree] + [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    nodes.sort(key=lambda node: getattr(node, "lineno", 0))  # ast.walk is breadth-first
    return [doc for node in nodes if (doc := ast.get_docstring(node, clean=True))]


def clean_text(text: str) -> str:
    """Printable ASCII and newlines only, single spaces, no trailing spaces."""
    text = re.sub(r"[^\x20-\x7e\n]", " ", text.replace("\t", " "))
    text = re.sub(r" {2,}", " ", text)
    return re.sub(r" +\n", "\n", text).strip()


def stdlib_corpus(modules: Iterable[str] = STDLIB_MODULES) -> str:
    """The cleaned docstrings of ``modules`` (default :data:`STDLIB_MODULES`) as one string.

    About 226,000 characters over 96 distinct characters for the default modules on
    CPython 3.11. Parsing takes a second or two; the result is cached per module list.
    """
    return _corpus(tuple(modules))


@functools.lru_cache(maxsize=4)
def _corpus(modules: tuple[str, ...]) -> str:
    pieces = []
    for name in modules:
        for doc in _docstrings(_module_source(name)):
            cleaned = clean_text(doc)
            if len(cleaned) >= MIN_DOCSTRING_CHARS:
                pieces.append(cleaned)
    if not pieces:
        raise ValueError("no docstrings were found in the given modules")
    return "\n\n".join(pieces)


def corpus_fingerprint(text: str) -> str:
    """The first 16 hex digits of the text's SHA-256, to compare corpora across machines."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class CharVocab:
    """A character vocabulary: ids ``0 .. size - 1`` in sorted character order.

    >>> vocab = CharVocab("hello")
    >>> vocab.decode(vocab.encode("hole"))
    'hole'
    """

    def __init__(self, text: str) -> None:
        if not text:
            raise ValueError("a vocabulary needs at least one character")
        self.chars: list[str] = sorted(set(text))
        self.index: dict[str, int] = {c: i for i, c in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Character ids of ``text``, shape ``(len(text),)`` int64."""
        try:
            return np.array([self.index[c] for c in text], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(
                f"character {exc.args[0]!r} is not in the vocabulary of {self.size} characters "
                f"({''.join(self.chars)!r})"
            ) from None

    def decode(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> str:
        """The text for character ids (a sequence, array or 1-D tensor of ints)."""
        values = np.asarray(ids.tolist() if hasattr(ids, "tolist") else ids)
        if values.ndim != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got shape {values.shape}")
        bad = values[(values < 0) | (values >= self.size)]
        if bad.size:
            raise ValueError(f"id {int(bad[0])} is outside the vocabulary 0 .. {self.size - 1}")
        return "".join(self.chars[int(i)] for i in values)


class CharBlocks:
    """``(input, target)`` blocks of ``block_size`` ids, the target shifted by one.

    Item ``i`` is ``(ids[s : s + T], ids[s + 1 : s + T + 1])`` with ``s = i * stride``,
    both ``(T,)`` int64 tensors: at every position the target is the next character.
    A map-style dataset: ``DataLoader`` needs only ``__len__`` and ``__getitem__``. It
    does not subclass ``torch.utils.data.Dataset``, so that importing :mod:`dlkit.data`
    does not import torch (torch is imported when a ``CharBlocks`` is built).
    """

    def __init__(self, ids: np.ndarray, block_size: int, *, stride: int | None = None) -> None:
        import torch

        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        stride = block_size if stride is None else stride
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        ids = np.asarray(ids)
        if ids.ndim != 1 or len(ids) < block_size + 1:
            raise ValueError(
                f"need a 1-D array of at least block_size + 1 = {block_size + 1} ids, "
                f"got shape {ids.shape}"
            )
        self.ids = torch.from_numpy(ids.astype(np.int64))
        self.block_size = block_size
        self.stride = stride

    def __len__(self) -> int:
        return (len(self.ids) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"block {i} out of range for {len(self)} blocks")
        start = (i % len(self)) * self.stride
        chunk = self.ids[start : start + self.block_size + 1]  # (T + 1,)
        return chunk[:-1], chunk[1:]


def char_splits(
    block_size: int,
    *,
    text: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    stride: int | None = None,
) -> tuple[DatasetSplits, CharVocab]:
    """Next-character datasets over contiguous train / validation / test parts of the text.

    The text (default :func:`stdlib_corpus`) is cut into three consecutive pieces, the
    first ``1 - val_fraction - test_fraction`` of it for training, so no character
    position lies in two splits. The vocabulary covers the whole text (it is the
    character set, not a statistic), so every split can be encoded.

    Returns ``(DatasetSplits(train, val, test), vocab)`` with :class:`CharBlocks` splits.
    """
    from dlkit.data.sequences import DatasetSplits

    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("val_fraction + test_fraction must be < 1")
    text = stdlib_corpus() if text is None else text
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    n_val, n_test = int(len(ids) * val_fraction), int(len(ids) * test_fraction)
    n_train = len(ids) - n_val - n_test
    parts = ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]
    datasets: list[Dataset] = [CharBlocks(p, block_size, stride=stride) for p in parts]
    return DatasetSplits(*datasets), vocab
