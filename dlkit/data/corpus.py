r"""The shipped text corpus: Python standard-library docstrings, tokenized once with BPE.

The files in :data:`CORPUS_DIR` (``dlkit/assets/pycorpus/``) were written once by
``tools/build_corpus.py`` and are the source of truth: this module reads only them, never
the installed standard library, and checks them against ``MANIFEST.json`` (SHA-256 and
size of every file, :func:`dlkit.data.manifest.verify_manifest`) the first time they are
used in a process, so a newer Python or an edited file cannot silently change a number.

- ``documents.jsonl.xz``: one :class:`Document` per line, in a fixed order; the
  docstrings of every module, class and function (at least 40 characters) and, as the
  out-of-distribution split ``"ood"``, the help topics of ``pydoc_data.topics``
  (Language Reference prose). Docstrings are split **by module**
  (all of a module's docstrings share one split, so a class's methods cannot leak
  from train into test), by :math:`\operatorname{sha256}(\text{module}) \bmod 100`:
  about 90% train, 5% val, 5% test.
- ``merges.txt`` and ``vocab.json``: the byte-level BPE tokenizer
  (:class:`dlkit.text.BPETokenizer`) trained on the train split only; 2,048 ids in all,
  ``<|endoftext|>``, ``<|pad|>``, ``<|mask|>``, ``<|cls|>`` at 2044 .. 2047.
- ``train.u16`` ... ``ood.u16``: each split's documents, each encoded on its own
  (special-looking text in a docstring is ordinary text) and followed by one
  ``<|endoftext|>``, as raw little-endian ``uint16``; :func:`load_tokens` memory-maps them.

Bytes per token compares tokenizers and turns a loss per token into bits per byte:

.. math::

    \text{bytes/token} = \frac{N_\text{bytes}}{N_\text{tokens}}, \qquad
    \text{bits/byte} = \frac{\ell_\text{nats/token}\, N_\text{tokens}}{N_\text{bytes} \ln 2},

where :math:`N_\text{bytes}` counts each document's UTF-8 bytes plus one for the boundary
that its ``<|endoftext|>`` stands for.
"""

from __future__ import annotations

import functools
import json
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlkit.data.manifest import verify_manifest

if TYPE_CHECKING:
    from dlkit.text import BPETokenizer

__all__ = [
    "CORPUS_DIR",
    "SPLITS",
    "TOKENIZER_FILES",
    "Document",
    "bytes_per_token",
    "corpus_meta",
    "corpus_stats",
    "corpus_text",
    "load_documents",
    "load_tokenizer",
    "load_tokens",
]

CORPUS_DIR = Path(__file__).resolve().parents[1] / "assets" / "pycorpus"
SPLITS = ("train", "val", "test", "ood")
TOKENIZER_FILES = ("merges.txt", "vocab.json")  # what BPETokenizer.save writes


@dataclass(frozen=True)
class Document:
    """One text of the corpus.

    ``source`` is ``"docstring"`` or ``"topic"``; ``module`` the dotted module name
    (``"pydoc_data.topics"`` for topics); ``name`` the qualified name inside the module
    (``"Message.get_payload"``, ``""`` for the module's docstring, the key for a topic);
    ``area`` the top-level package (``"email"``; ``"reference"`` for topics).
    """

    id: int
    split: str
    source: str
    module: str
    name: str
    area: str
    text: str


@functools.cache
def corpus_meta() -> dict[str, Any]:
    """The manifest's ``meta`` (counts, Python version, tokenizer), files verified once."""
    return verify_manifest(CORPUS_DIR)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
    return split


@functools.cache
def _all_documents() -> tuple[Document, ...]:
    corpus_meta()
    data = lzma.decompress((CORPUS_DIR / "documents.jsonl.xz").read_bytes())
    return tuple(Document(**json.loads(line)) for line in data.decode("utf-8").splitlines())


def load_documents(split: str | None = None) -> list[Document]:
    """The documents of ``split`` (one of :data:`SPLITS`), or all of them, in corpus order."""
    documents = _all_documents()
    if split is None:
        return list(documents)
    _check_split(split)
    return [d for d in documents if d.split == split]


def load_tokenizer() -> BPETokenizer:
    """The corpus's BPE tokenizer (vocabulary 2,048, specials at 2044 .. 2047)."""
    from dlkit.text import BPETokenizer

    corpus_meta()
    return BPETokenizer.load(CORPUS_DIR)


def load_tokens(split: str) -> np.ndarray:
    """The token ids of ``split``: a read-only ``uint16`` memmap of shape ``(n_tokens,)``."""
    n_tokens = corpus_stats(split)["n_tokens"]
    tokens = np.memmap(CORPUS_DIR / f"{split}.u16", dtype="<u2", mode="r")  # (n_tokens,)
    if tokens.shape != (n_tokens,):
        raise ValueError(f"{split}.u16 holds {tokens.shape[0]} tokens, the manifest {n_tokens}")
    return tokens


def corpus_stats(split: str) -> dict[str, int]:
    """``{"n_documents", "n_tokens", "n_bytes"}`` of ``split`` (from the manifest)."""
    return dict(corpus_meta()["splits"][_check_split(split)])


def bytes_per_token(split: str) -> float:
    """UTF-8 bytes (plus one per document boundary) per token of ``split``."""
    stats = corpus_stats(split)
    return stats["n_bytes"] / stats["n_tokens"]


def corpus_text(split: str) -> str:
    """The texts of ``split``'s documents joined by a blank line (for baselines and plots)."""
    return "\n\n".join(d.text for d in load_documents(_check_split(split)))
