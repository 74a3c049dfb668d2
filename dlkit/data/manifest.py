"""SHA-256 manifests for the files that ship with dlkit (corpus, checkpoints).

A folder of shipped files holds a ``MANIFEST.json``:

.. code-block:: json

    {"files": {"train.u16": {"sha256": "9f2c...", "bytes": 1234567}, ...},
     "meta": {"python_version": "3.11.7", ...}}

listing every regular file of the folder except the manifest itself, sorted by name,
with its size in bytes and the hex SHA-256 of its contents. :func:`verify_manifest`
recomputes both and refuses a folder whose files differ in any byte, or that lacks a
listed file, or holds a file that is not listed: the numbers a course prints are then
those of exactly the files it was built with. ``meta`` is free-form JSON that the
builder records (versions, counts); it is returned when the files check out.

The manifest is written with sorted keys, indent 2 and a trailing newline, so that the
same files give a byte-identical manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_NAME", "ManifestError", "sha256_file", "verify_manifest", "write_manifest"]

MANIFEST_NAME = "MANIFEST.json"
_CHUNK = 1 << 20  # read files 1 MiB at a time


class ManifestError(ValueError):
    """The files of a folder do not match its ``MANIFEST.json``."""


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_files(folder: Path) -> list[Path]:
    """The regular files of ``folder`` that a manifest covers (all but itself), sorted."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME),
        key=lambda p: p.name,
    )


def write_manifest(folder: str | Path, *, meta: dict[str, Any]) -> Path:
    """Write ``folder/MANIFEST.json`` for every regular file in ``folder``; return its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write a manifest: {folder} is not a folder")
    files = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in _listed_files(folder)
    }
    text = json.dumps({"files": files, "meta": meta}, indent=2, sort_keys=True, ensure_ascii=False)
    path = folder / MANIFEST_NAME
    path.write_text(text + "\n", encoding="utf-8")
    return path


def verify_manifest(folder: str | Path) -> dict[str, Any]:
    """Check every file of ``folder`` against its manifest; return the manifest's ``meta``.

    Raises :class:`ManifestError` naming the file for a size or SHA-256 mismatch (expected
    and actual), a listed file that is missing, or a file present but not listed.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path} not found: {folder} has no manifest to verify against")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        listed: dict[str, dict[str, Any]] = manifest["files"]
        meta: dict[str, Any] = manifest["meta"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path} is not a manifest with 'files' and 'meta': {exc}") from None
    present = {p.name: p for p in _listed_files(folder)}
    missing = sorted(set(listed) - set(present))
    if missing:
        raise ManifestError(f"{folder}: file(s) listed in {MANIFEST_NAME} are missing: {missing}")
    extra = sorted(set(present) - set(listed))
    if extra:
        raise ManifestError(f"{folder}: file(s) not listed in {MANIFEST_NAME}: {extra}")
    for name, entry in sorted(listed.items()):
        file = present[name]
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise ManifestError(
                f"{file}: expected {entry['bytes']} bytes (manifest), found {size} bytes"
            )
        digest = sha256_file(file)
        if digest != entry["sha256"]:
            raise ManifestError(
                f"{file}: SHA-256 mismatch: expected {entry['sha256']} (manifest), got {digest}"
            )
    return meta
