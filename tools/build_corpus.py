"""Build the shipped text corpus ``dlkit/assets/pycorpus/`` from CPython's standard library.

This script is the only code that reads the standard library; :mod:`dlkit.data.corpus`
reads the files it writes, so a newer Python never changes the course's numbers. It:

1. walks the stdlib source folder in sorted order, skipping ``test``, ``tests``,
   ``idlelib``, ``lib2to3``, ``turtledemo``, ``site-packages`` and ``__pycache__``, and
   parses every ``.py`` file with :mod:`ast` (never imports it);
2. keeps the docstring of every module, class and function
   (``ast.get_docstring(clean=True)``) that is at least 40 characters long after minimal
   cleaning (CRLF → LF, tabs → 4 spaces, trailing spaces stripped; Unicode kept), named by
   module and ``__qualname__``-style name (``"Message.get_payload"``, ``""`` for the
   module's own docstring);
3. adds the help topics of ``pydoc_data/topics.py`` (the Language Reference's prose, read
   with :func:`ast.literal_eval`) as the out-of-distribution split ``ood``;
4. splits the docstrings **by module** with a stable hash,
   :math:`h = \\text{int}(\\text{sha256}(\\text{module})[:16]) \\bmod 100`:
   train if :math:`h < 90`, val if :math:`h < 95`, test otherwise;
5. trains a byte-level BPE (``dlkit.text.train_bpe``, 2,048 ids in all, the four special
   tokens last) on the train split only, encodes every document on its own
   (``allowed_special="none"``) followed by one ``<|endoftext|>`` id, and writes each
   split as raw little-endian ``uint16``;
6. writes ``documents.jsonl.xz`` (one JSON object per line, fixed key order, xz preset 9),
   the tokenizer (``merges.txt``, ``vocab.json``), and ``MANIFEST.json`` with every
   file's SHA-256 and the per-split counts.

Everything is ordered and hashed deterministically: two runs with the same Python (and
xz library) give byte-identical files (``--check`` rebuilds into a temporary folder and
compares with the shipped manifest). Run from the repository root::

    .venv/bin/python tools/build_corpus.py [--out dlkit/assets/pycorpus] [--check]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import lzma
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dlkit.data.manifest import MANIFEST_NAME, write_manifest  # noqa: E402
from dlkit.text import BPETokenizer, train_bpe  # noqa: E402

DEFAULT_OUT = REPO / "dlkit" / "assets" / "pycorpus"
SKIP_DIRS = frozenset({"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages"})
SKIP_DIRS |= {"__pycache__"}
TOPICS_MODULE = "pydoc_data.topics"
MIN_CHARS = 40
VOCAB_SIZE = 2048
SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>", "<|mask|>", "<|cls|>")
SPLITS = ("train", "val", "test", "ood")
XZ_PRESET = 9
OUTPUT_FILES = (
    "documents.jsonl.xz",
    "merges.txt",
    "vocab.json",
    *(f"{split}.u16" for split in SPLITS),
)


def clean(text: str) -> str:
    """Minimal cleaning: CRLF/CR → LF, tabs → 4 spaces, trailing spaces removed per line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return "\n".join(line.rstrip(" ") for line in text.split("\n")).strip("\n")


def split_of(module: str) -> str:
    """train / val / test from the first 64 bits of the module name's SHA-256."""
    h = int(hashlib.sha256(module.encode("utf-8")).hexdigest()[:16], 16) % 100
    return "train" if h < 90 else "val" if h < 95 else "test"


def module_files(stdlib: Path) -> Iterator[tuple[str, Path]]:
    """``(module name, path)`` of every stdlib source file kept, in sorted walk order."""
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and d.isidentifier())
        rel = Path(root).relative_to(stdlib)
        for name in sorted(files):
            if not name.endswith(".py") or not name[:-3].isidentifier():
                continue
            parts = [*rel.parts, name[:-3]]
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                yield ".".join(parts), Path(root) / name


def docstrings(tree: ast.Module) -> Iterator[tuple[str, str]]:
    """``(qualname, docstring)`` of the module ("") and every class/function, source order."""
    doc = ast.get_docstring(tree, clean=True)
    if doc:
        yield "", doc

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = prefix + child.name
                doc = ast.get_docstring(child, clean=True)
                if doc:
                    yield qualname, doc
                inner = "." if isinstance(child, ast.ClassDef) else ".<locals>."
                yield from visit(child, qualname + inner)
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def extract(stdlib: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """All documents (without ids), docstrings by module name then topics by key."""
    sources: dict[str, Path] = {}
    for module, path in module_files(stdlib):
        if module in sources:
            raise ValueError(f"module {module} found twice: {sources[module]} and {path}")
        sources[module] = path
    documents: list[dict[str, Any]] = []
    skipped = {"unparsable_files": 0, "short_docstrings": 0}
    for module in sorted(sources):
        if module == TOPICS_MODULE:
            continue
        try:
            tree = ast.parse(sources[module].read_bytes(), filename=str(sources[module]))
        except (SyntaxError, ValueError):
            skipped["unparsable_files"] += 1
            continue
        for name, doc in docstrings(tree):
            text = clean(doc)
            if len(text) < MIN_CHARS:
                skipped["short_docstrings"] += 1
                continue
            documents.append(
                {"split": split_of(module), "source": "docstring", "module": module, "name": name,
                 "area": module.split(".")[0], "text": text}
            )  # fmt: skip
    for key, text in sorted(read_topics(sources[TOPICS_MODULE]).items()):
        text = clean(text)
        if len(text) >= MIN_CHARS:
            documents.append(
                {"split": "ood", "source": "topic", "module": TOPICS_MODULE, "name": key,
                 "area": "reference", "text": text}
            )  # fmt: skip
    return documents, skipped


def read_topics(path: Path) -> dict[str, str]:
    """The ``topics = {...}`` dict literal of ``pydoc_data/topics.py``, without importing it."""
    for node in ast.parse(path.read_bytes()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "topics" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise ValueError(f"no 'topics = {{...}}' assignment in {path}")


def build(out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Write every corpus file and the manifest into the (empty) folder ``out``."""
    start = time.perf_counter()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    documents, skipped = extract(stdlib)
    for k, doc in enumerate(documents):
        doc_with_id = {"id": k, **doc}  # key order: id, split, source, module, name, area, text
        documents[k] = doc_with_id
    lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents)
    (out / "documents.jsonl.xz").write_bytes(
        lzma.compress(lines.encode("utf-8"), format=lzma.FORMAT_XZ, preset=XZ_PRESET)
    )
    extract_seconds = time.perf_counter() - start

    t0 = time.perf_counter()
    train_texts = [d["text"] for d in documents if d["split"] == "train"]
    tokenizer = train_bpe(train_texts, VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, progress=progress)
    if tokenizer.vocab_size != VOCAB_SIZE:
        raise RuntimeError(f"BPE stopped at {tokenizer.vocab_size} ids, expected {VOCAB_SIZE}")
    tokenizer.save(out)  # merges.txt, vocab.json
    tokenizer = BPETokenizer.load(out)  # encode with exactly what ships
    train_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    eot = tokenizer.special_tokens[SPECIAL_TOKENS[0]]
    splits: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        ids: list[int] = []
        n_docs = n_bytes = 0
        for doc in documents:
            if doc["split"] == split:
                doc_ids = tokenizer.encode(doc["text"], allowed_special="none")
                if tokenizer.decode(doc_ids) != doc["text"]:
                    raise RuntimeError(f"document {doc['id']} does not survive encode/decode")
                ids.extend(doc_ids)
                ids.append(eot)
                n_docs += 1
                n_bytes += len(doc["text"].encode("utf-8")) + 1  # + 1 for the boundary
        np.asarray(ids, dtype="<u2").tofile(out / f"{split}.u16")
        splits[split] = {"n_bytes": n_bytes, "n_documents": n_docs, "n_tokens": len(ids)}
    encode_seconds = time.perf_counter() - t0

    modules = {s: len({d["module"] for d in documents if d["split"] == s}) for s in SPLITS}
    meta = {
        "name": "pycorpus",
        "description": "CPython standard-library docstrings (train/val/test, split by module) "
        "and pydoc_data.topics (ood); PSF licence",
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "min_chars": MIN_CHARS,
        "split_rule": "int(sha256(module)[:16], 16) % 100: <90 train, <95 val, else test",
        "skipped": skipped,
        "n_modules": modules,
        "splits": splits,
        "vocab_size": tokenizer.vocab_size,
        "special_tokens": dict(tokenizer.special_tokens),
        "eot_id": eot,
        "token_dtype": "<u2",
    }
    write_manifest(out, meta=meta)
    return {
        "meta": meta,
        "seconds": {
            "extract": round(extract_seconds, 1),
            "train_bpe": round(train_seconds, 1),
            "encode": round(encode_seconds, 1),
            "total": round(time.perf_counter() - start, 1),
        },
    }


def install(built: Path, out: Path) -> None:
    """Replace the corpus files in ``out`` by those in ``built`` (refusing unknown files)."""
    out.mkdir(parents=True, exist_ok=True)
    known = {*OUTPUT_FILES, MANIFEST_NAME}
    unknown = sorted(p.name for p in out.iterdir() if p.name not in known)
    if unknown:
        raise SystemExit(f"{out} holds files this script did not write: {unknown}; remove them")
    for name in sorted(known):
        shutil.copyfile(built / name, out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="target folder")
    parser.add_argument(
        "--check", action="store_true", help="rebuild and compare with --out, write nothing"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = build(Path(tmp), progress=not args.quiet)
        print(json.dumps(report, indent=2, sort_keys=True))
        if args.check:
            ours = (Path(tmp) / MANIFEST_NAME).read_bytes()
            shipped = args.out / MANIFEST_NAME
            if not shipped.is_file() or shipped.read_bytes() != ours:
                print(f"MISMATCH: the rebuilt corpus differs from {shipped}")
                return 1
            print(f"OK: the rebuilt corpus is byte-identical to {args.out}")
            return 0
        install(Path(tmp), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
