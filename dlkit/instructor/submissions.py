"""Collecting student submissions for grading.

Two layouts are accepted in a submissions folder:

- nbgrader's: ``SUBMISSIONS/<student_id>/<chapter>/<chapter>.ipynb``;
- one zip per student: ``SUBMISSIONS/<student_id>.zip`` holding ``<chapter>.ipynb`` files
  (at any depth inside the zip).

Nothing here raises on a bad submission: a malformed notebook, an unexpected file
name or a missing chapter becomes a :class:`Submission` with a ``problem`` (and a
zero later), or a line in :attr:`Collection.notes`, so one bad entry never stops the
others from being graded. Zip members are read in memory, never extracted, so a
crafted path cannot write outside the grading folder.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
MAX_NOTEBOOK_BYTES = 50 * 2**20  # a notebook larger than this is refused, not parsed


@dataclass(frozen=True)
class Submission:
    """One student's notebook for one chapter; ``notebook`` is None when ``problem`` says why."""

    student_id: str
    chapter: str
    notebook: NotebookNode | None
    origin: str
    problem: str | None = None


@dataclass
class Collection:
    """Everything found in a submissions folder."""

    submissions: list[Submission] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # entries that belong to no (student, chapter)

    @property
    def students(self) -> list[str]:
        return sorted({s.student_id for s in self.submissions})


def parse_notebook(data: bytes, origin: str) -> tuple[NotebookNode | None, str | None]:
    """Parse notebook bytes; return ``(notebook, None)`` or ``(None, reason)``."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        return None, f"{origin} is {len(data) / 2**20:.0f} MiB; notebooks over 50 MiB are refused"
    try:
        text = data.decode("utf-8")
        json.loads(text)  # first, for a precise message on broken JSON
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except UnicodeDecodeError:
        return None, f"{origin} is not a notebook: not UTF-8 text"
    except json.JSONDecodeError as err:
        return None, (
            f"{origin} is not a valid notebook: malformed JSON at line {err.lineno}, "
            f"column {err.colno} ({err.msg})"
        )
    except nbformat.ValidationError as err:
        return None, f"{origin} is not a valid notebook: {err.message}"
    except Exception as err:  # nbformat raises several types for broken files
        return None, f"{origin} is not a valid notebook: {type(err).__name__}: {err}"
    return nb, None


def _expected_name(name: str, chapters: set[str]) -> str:
    """What a misnamed notebook should have been called, guessed from its chapter topic."""
    for chapter in sorted(chapters):
        topic = chapter.split("_", 1)[1]
        if chapter in name or topic in name:
            return f"{chapter}.ipynb"
    return f"<chapter>.ipynb with a chapter name such as {min(chapters, default='00_welcome')}"


def _from_folder(folder: Path, chapters: set[str], found: dict, notes: list[str]) -> None:
    student = folder.name
    for entry in sorted(folder.rglob("*")):
        rel = entry.relative_to(folder.parent).as_posix()
        if entry.is_dir() or ".ipynb_checkpoints" in entry.parts:
            continue
        parts = entry.relative_to(folder).parts
        if len(parts) == 2 and parts[0] in chapters and parts[1] == f"{parts[0]}.ipynb":
            _add(found, notes, student, parts[0], entry.read_bytes(), rel)
        elif entry.suffix == ".ipynb":
            expected = _expected_name(rel, chapters)
            chapter = (
                expected.removesuffix(".ipynb") if expected.endswith(".ipynb") else "<chapter>"
            )
            notes.append(
                f"{student}: unexpected file {rel}; expected {student}/{chapter}/{expected}"
            )


def _from_zip(path: Path, chapters: set[str], found: dict, notes: list[str]) -> None:
    student = path.stem
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename
                base = name.rsplit("/", 1)[-1]
                if info.is_dir() or "__MACOSX" in name or ".ipynb_checkpoints" in name:
                    continue
                if base.endswith(".ipynb") and base[: -len(".ipynb")] in chapters:
                    if info.file_size > MAX_NOTEBOOK_BYTES:
                        notes.append(
                            f"{student}: {path.name}:{name} is larger than 50 MiB; refused"
                        )
                        continue
                    _add(
                        found,
                        notes,
                        student,
                        base[: -len(".ipynb")],
                        archive.read(info),
                        f"{path.name}:{name}",
                    )
                elif base.endswith(".ipynb"):
                    notes.append(
                        f"{student}: unexpected file {path.name}:{name}; "
                        f"expected {_expected_name(name, chapters)}"
                    )
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        notes.append(f"{student}: {path.name} is not a readable zip file ({err})")
        found.setdefault(student, {})


def _add(
    found: dict, notes: list[str], student: str, chapter: str, data: bytes, origin: str
) -> None:
    per_student = found.setdefault(student, {})
    if chapter in per_student:
        notes.append(
            f"{student}: second {chapter} notebook {origin} ignored; graded {per_student[chapter][1]}"
        )
        return
    per_student[chapter] = (data, origin)


def collect(
    folder: Path, known_chapters: Sequence[str], chapters: Sequence[str] = ()
) -> Collection:
    """Read every submission in ``folder``.

    Args:
        folder: the submissions folder.
        known_chapters: the course's chapters; notebooks for anything else are reported.
        chapters: the chapters to grade; by default every chapter that anyone submitted.
            A student without a notebook for one of them gets a "missing" submission.
    """
    collection = Collection()
    if not folder.is_dir():
        raise FileNotFoundError(f"submissions folder {folder} does not exist")
    known = set(known_chapters)
    found: dict[str, dict[str, tuple[bytes, str]]] = {}
    for entry in sorted(folder.iterdir()):
        student = entry.stem if entry.suffix == ".zip" else entry.name
        if entry.name.startswith("."):
            continue
        if not (entry.is_dir() or entry.suffix == ".zip"):
            collection.notes.append(
                f"ignored {entry.name}: not a student folder or <student_id>.zip"
            )
            continue
        if not STUDENT_ID.match(student):
            collection.notes.append(
                f"ignored {entry.name}: {student!r} is not a valid student id "
                "(letters, digits and . _ @ + - only)"
            )
            continue
        reader = _from_folder if entry.is_dir() else _from_zip
        reader(entry, known, found, collection.notes)
        found.setdefault(student, {})

    wanted = list(chapters) or sorted({c for per_student in found.values() for c in per_student})
    for student in sorted(found):
        for chapter in wanted:
            if chapter not in found[student]:
                # Say what the student handed in instead, if anything, next to the zero.
                instead = [
                    n.split(": ", 1)[1] for n in collection.notes if n.startswith(f"{student}: ")
                ]
                problem = f"missing: no {chapter} notebook from {student}"
                if instead:
                    problem += " (" + "; ".join(instead) + ")"
                collection.submissions.append(Submission(student, chapter, None, "", problem))
                continue
            data, origin = found[student][chapter]
            nb, problem = parse_notebook(data, origin)
            collection.submissions.append(Submission(student, chapter, nb, origin, problem))
        for chapter in sorted(set(found[student]) - set(wanted)):
            collection.notes.append(
                f"{student}: {chapter} was submitted but not asked for; not graded"
            )
    return collection
