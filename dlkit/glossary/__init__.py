"""A bilingual (English / 简体中文) glossary of the course's terms, and a Chinese summary per chapter.

The data ship with the package and are validated when first read:

- ``glossary.json``: a list of records with exactly the fields of :class:`Term`;
- ``summaries_zh.json``: an object mapping each chapter (``"01_backprop"``) to one paragraph.

>>> from dlkit.glossary import terms_for
>>> [t.chinese for t in terms_for("01_backprop") if t.english == "backpropagation"]
['反向传播']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["Term", "chapter_summaries_zh", "terms", "terms_for"]

_CHAPTER_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
_GLOSSARY_FILE = "glossary.json"
_SUMMARIES_FILE = "summaries_zh.json"


@dataclass(frozen=True)
class Term:
    """One glossary entry: a term, its standard Chinese translation, and a one-line definition
    in each language."""

    english: str  # "backpropagation"
    chinese: str  # "反向传播"
    definition: str  # one line, English
    definition_zh: str  # one line, Chinese
    chapter: str  # the chapter that first teaches it, e.g. "01_backprop"


_FIELDS = tuple(f.name for f in fields(Term))


def _read_json(path: Path | None, name: str) -> Any:
    """Parse ``path``, or the packaged file ``name`` when ``path`` is None."""
    if path is None:
        text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
        where = name
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid JSON: {err}") from err


def _check_line(value: Any, what: str) -> str:
    """``value`` must be a non-empty, single-line string; ``what`` names it in the error."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} is empty")
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} spans several lines; it must be one line")
    return value


def _load_terms(path: Path | None = None) -> list[Term]:
    """Read and validate a glossary file (the packaged one by default), sorted like :func:`terms`.

    Raises ``ValueError`` naming the entry for a record with a missing or unknown field, an
    empty or multi-line string, a malformed chapter name, or a duplicate English term.
    """
    records = _read_json(path, _GLOSSARY_FILE)
    if not isinstance(records, list):
        raise ValueError("the glossary must be a JSON list of records")
    found: list[Term] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        label = f"glossary entry {index}"
        if isinstance(record, dict) and isinstance(record.get("english"), str):
            label += f" ({record['english']!r})"
        if not isinstance(record, dict):
            raise ValueError(f"{label} must be a JSON object, got {type(record).__name__}")
        missing = [name for name in _FIELDS if name not in record]
        unknown = sorted(set(record) - set(_FIELDS))
        if missing:
            raise ValueError(f"{label}: missing fields {missing}")
        if unknown:
            raise ValueError(f"{label}: unknown fields {unknown}")
        term = Term(
            **{name: _check_line(record[name], f"{label} field {name!r}") for name in _FIELDS}
        )
        if not _CHAPTER_NAME.match(term.chapter):
            raise ValueError(
                f"{label}: chapter {term.chapter!r} is not a chapter name like '01_backprop'"
            )
        key = term.english.casefold()
        if key in seen:
            raise ValueError(f"{label} repeats the English term of glossary entry {seen[key]}")
        seen[key] = index
        found.append(term)
    return sorted(found, key=lambda t: (t.chapter, t.english.casefold()))


def _load_summaries(path: Path | None = None) -> dict[str, str]:
    """Read and validate a summaries file (the packaged one by default): chapter -> one paragraph.

    Raises ``ValueError`` naming the chapter for a malformed name or an empty or multi-line text.
    """
    summaries = _read_json(path, _SUMMARIES_FILE)
    if not isinstance(summaries, dict):
        raise ValueError("the summaries must be a JSON object mapping chapter names to text")
    for chapter, text in summaries.items():
        if not _CHAPTER_NAME.match(chapter):
            raise ValueError(f"summary key {chapter!r} is not a chapter name like '01_backprop'")
        _check_line(text, f"summary of {chapter!r}")
    return dict(sorted(summaries.items()))


@cache
def _packaged_terms() -> tuple[Term, ...]:
    return tuple(_load_terms())


@cache
def _packaged_summaries() -> tuple[tuple[str, str], ...]:
    return tuple(_load_summaries().items())


def terms() -> list[Term]:
    """Every glossary term, sorted by chapter, then by English term (case-insensitive)."""
    return list(_packaged_terms())


def terms_for(chapter: str) -> list[Term]:
    """The terms first taught in ``chapter`` (e.g. ``"03_losses"``), sorted by English term;
    an empty list for a chapter without entries."""
    if not _CHAPTER_NAME.match(chapter):
        raise ValueError(f"{chapter!r} is not a chapter name like '01_backprop'")
    return [t for t in _packaged_terms() if t.chapter == chapter]


def chapter_summaries_zh() -> dict[str, str]:
    """Chapter name -> a one-paragraph summary in Simplified Chinese, in course order."""
    return dict(_packaged_summaries())
