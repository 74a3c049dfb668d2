"""The shipped corpus: SHA-256 manifests, files, splits by module, tokens that decode back."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import lzma
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest

from dlkit.data import corpus
from dlkit.data.corpus import (
    CORPUS_DIR,
    SPLITS,
    Document,
    bytes_per_token,
    corpus_meta,
    corpus_stats,
    corpus_text,
    load_documents,
    load_tokenizer,
    load_tokens,
)
from dlkit.data.manifest import ManifestError, sha256_file, verify_manifest, write_manifest

REPO = Path(__file__).resolve().parents[1]
SPECIALS = ["<|endoftext|>", "<|pad|>", "<|mask|>", "<|cls|>"]
SHIPPED = {"MANIFEST.json", "documents.jsonl.xz", "merges.txt", "vocab.json"}
SHIPPED |= {f"{split}.u16" for split in SPLITS}


def build_script():
    spec = importlib.util.spec_from_file_location("build_corpus", REPO / "tools/build_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- manifests ------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 3)
    (tmp_path / "a.txt").write_text("hello\n", encoding="utf-8")
    write_manifest(tmp_path, meta={"version": 1, "note": "ünï"})
    return tmp_path


def test_manifest_lists_every_file_with_its_sha256_and_size(folder: Path) -> None:
    text = (folder / "MANIFEST.json").read_text(encoding="utf-8")
    manifest = json.loads(text)
    assert list(manifest["files"]) == ["a.txt", "b.bin"]  # sorted, the manifest excluded
    assert manifest["files"]["a.txt"] == {
        "bytes": 6,
        "sha256": hashlib.sha256(b"hello\n").hexdigest(),
    }
    assert sha256_file(folder / "b.bin") == hashlib.sha256(bytes(range(256)) * 3).hexdigest()
    assert text.endswith("}\n") and text.startswith('{\n  "files"')  # indent 2, final newline
    assert verify_manifest(folder) == {"version": 1, "note": "ünï"}
    before = text
    write_manifest(folder, meta={"note": "ünï", "version": 1})
    assert (folder / "MANIFEST.json").read_text(encoding="utf-8") == before  # byte-stable


def test_manifest_rejects_one_changed_byte_and_names_the_file(folder: Path) -> None:
    data = bytearray((folder / "b.bin").read_bytes())
    data[100] ^= 1  # same size, different content
    (folder / "b.bin").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"b\.bin: SHA-256 mismatch") as info:
        verify_manifest(folder)
    assert sha256_file(folder / "b.bin") in str(info.value)  # the actual digest is shown


def test_manifest_rejects_a_changed_size(folder: Path) -> None:
    (folder / "a.txt").write_text("hello!\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"a\.txt: expected 6 bytes .* found 7 bytes"):
        verify_manifest(folder)


def test_manifest_rejects_missing_and_extra_files(folder: Path) -> None:
    (folder / "new.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"not listed .*\['new\.txt'\]"):
        verify_manifest(folder)
    (folder / "new.txt").unlink()
    (folder / "a.txt").unlink()
    with pytest.raises(ManifestError, match=r"missing: \['a\.txt'\]"):
        verify_manifest(folder)
    (folder / "MANIFEST.json").unlink()
    with pytest.raises(ManifestError, match="no manifest"):
        verify_manifest(folder)


# --- the shipped files ----------------------------------------------------------------


def test_shipped_corpus_matches_its_manifest_and_is_small() -> None:
    meta = verify_manifest(CORPUS_DIR)
    assert {p.name for p in CORPUS_DIR.iterdir()} == SHIPPED
    for path in CORPUS_DIR.iterdir():
        assert path.stat().st_size <= 10 * 2**20, path.name
    assert (CORPUS_DIR / "documents.jsonl.xz").stat().st_size < 2**20
    assert meta["python_version"].count(".") == 2 and meta["vocab_size"] == 2048


def test_corpus_refuses_files_that_do_not_match(tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "pycorpus"
    shutil.copytree(CORPUS_DIR, copy)
    tokens = bytearray((copy / "val.u16").read_bytes())
    tokens[0] ^= 1
    (copy / "val.u16").write_bytes(bytes(tokens))
    monkeypatch.setattr(corpus, "CORPUS_DIR", copy)
    corpus.corpus_meta.cache_clear()
    try:
        with pytest.raises(ManifestError, match=r"val\.u16"):
            corpus.corpus_stats("val")
    finally:
        corpus.corpus_meta.cache_clear()


def test_documents_are_in_order_and_well_formed() -> None:
    documents = load_documents()
    assert [d.id for d in documents] == list(range(len(documents)))
    assert all(isinstance(d, Document) for d in documents)
    assert sum(len(load_documents(s)) for s in SPLITS) == len(documents)
    for d in documents:
        assert d.split in SPLITS and d.source in {"docstring", "topic"}
        assert len(d.text) >= 40
        assert "\r" not in d.text and "\t" not in d.text and " \n" not in d.text
    # documents are grouped by module, in sorted module order, topics last
    modules = [d.module for d in documents if d.source == "docstring"]
    assert modules == sorted(modules)
    email = [d for d in documents if d.module == "email.message"]
    assert {d.area for d in email} == {"email"} and "Message.get_payload" in {d.name for d in email}
    assert email[0].name == ""  # the module's docstring comes first
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_documents("dev")


def test_splits_are_disjoint_by_module_and_follow_the_hash() -> None:
    documents = load_documents()
    modules = {s: {d.module for d in documents if d.split == s} for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not modules[a] & modules[b], (a, b)
    for d in documents:
        if d.source == "docstring":
            h = int(hashlib.sha256(d.module.encode()).hexdigest()[:16], 16) % 100
            assert d.split == ("train" if h < 90 else "val" if h < 95 else "test")
    n = {s: corpus_stats(s)["n_bytes"] for s in ("train", "val", "test")}
    assert 0.8 < n["train"] / sum(n.values()) < 0.95  # about 90% of the docstring text


def test_ood_split_is_the_pydoc_topics() -> None:
    ood = load_documents("ood")
    assert ood and all(d.source == "topic" for d in ood)
    assert {d.module for d in ood} == {"pydoc_data.topics"} and {d.area for d in ood} == {
        "reference"
    }
    assert [d.name for d in ood] == sorted(d.name for d in ood)
    assert "assignment" in {d.name for d in ood}
    assert all(d.source == "docstring" for s in ("train", "val", "test") for d in load_documents(s))


def test_tokenizer_has_2048_ids_and_the_specials_last() -> None:
    tokenizer = load_tokenizer()
    assert tokenizer.vocab_size == 2048 and len(tokenizer.merges) == 2048 - 256 - 4
    assert tokenizer.special_tokens == {t: 2044 + k for k, t in enumerate(SPECIALS)}
    assert corpus_meta()["eot_id"] == 2044
    assert corpus_meta()["special_tokens"] == tokenizer.special_tokens


@pytest.mark.parametrize("split", SPLITS)
def test_token_files_decode_back_to_the_documents(split: str) -> None:
    tokens = load_tokens(split)
    documents = load_documents(split)
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16 and tokens.ndim == 1
    with pytest.raises(ValueError, match="read-only"):
        tokens[0] = 1
    ends = np.flatnonzero(tokens == 2044)  # one <|endoftext|> after each document, nothing else
    assert len(ends) == len(documents) and ends[-1] == len(tokens) - 1
    starts = np.concatenate([[0], ends[:-1] + 1])
    tokenizer = load_tokenizer()
    rng = np.random.default_rng(0)
    picks = {0, len(documents) - 1, *rng.choice(len(documents), size=5).tolist()}
    for k in sorted(picks):
        ids = tokens[starts[k] : ends[k]].tolist()
        assert tokenizer.decode(ids) == documents[k].text, documents[k].name
        assert ids == tokenizer.encode(documents[k].text, allowed_special="none")


@pytest.mark.parametrize("split", SPLITS)
def test_meta_counts_match_the_files(split: str) -> None:
    stats = corpus_stats(split)
    documents = load_documents(split)
    assert set(stats) == {"n_documents", "n_tokens", "n_bytes"}
    assert stats["n_documents"] == len(documents)
    assert stats["n_tokens"] == (CORPUS_DIR / f"{split}.u16").stat().st_size // 2
    assert stats["n_bytes"] == sum(len(d.text.encode("utf-8")) + 1 for d in documents)
    assert bytes_per_token(split) == stats["n_bytes"] / stats["n_tokens"]
    assert 2.5 < bytes_per_token(split) < 4.5
    text = corpus_text(split)
    assert text == "\n\n".join(d.text for d in documents)
    assert len(text.encode("utf-8")) == stats["n_bytes"] + stats["n_documents"] - 2


def test_unknown_split_is_a_clear_error() -> None:
    for function in (load_tokens, corpus_stats, bytes_per_token, corpus_text):
        with pytest.raises(ValueError, match=r"unknown split 'training'.*'train', 'val'"):
            function("training")


# --- the build script -----------------------------------------------------------------


def test_build_helpers_name_and_clean_docstrings() -> None:
    import ast

    build = build_script()
    source = '''"""Module doc."""
class A:
    """Class A."""
    def f(self):
        """Method f."""
        def g():
            """Inner g."""
    class B:
        async def h(self):
            """Async h."""
if True:
    def top():
        """Top."""
'''
    names = [name for name, _ in build.docstrings(ast.parse(source))]
    assert names == ["", "A", "A.f", "A.f.<locals>.g", "A.B.h", "top"]
    assert build.clean("a\tb  \r\nc \rd\n\n") == "a    b\nc\nd"
    assert build.clean("  indented ünïcode") == "  indented ünïcode"
    assert build.split_of("email.message") == build.split_of("email.message")
    counts = {s: 0 for s in ("train", "val", "test")}
    for k in range(2000):
        counts[build.split_of(f"module{k}")] += 1
    assert 1700 < counts["train"] < 1900 and 60 < counts["val"] < 140 and 60 < counts["test"] < 140


@pytest.mark.slow
@pytest.mark.skipif(
    platform.python_version() != corpus_meta()["python_version"],
    reason="the corpus was extracted from another Python version's standard library",
)
def test_build_reproduces_the_shipped_corpus(tmp_path: Path) -> None:
    build_script().build(tmp_path, progress=False)
    ours = json.loads((tmp_path / "MANIFEST.json").read_text())
    shipped = json.loads((CORPUS_DIR / "MANIFEST.json").read_text())
    assert ours["meta"] == shipped["meta"]
    xz = "documents.jsonl.xz"  # another xz library may compress the same lines differently
    assert {k: v for k, v in ours["files"].items() if k != xz} == {
        k: v for k, v in shipped["files"].items() if k != xz
    }
    read = lambda folder: lzma.decompress((folder / xz).read_bytes())  # noqa: E731
    assert read(tmp_path) == read(CORPUS_DIR)
