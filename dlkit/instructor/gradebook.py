"""Scores read back from nbgrader's gradebook.

``nbgrader autograde`` exits 0 even when every test fails, so the gradebook is the
only trustworthy record of what a submission earned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry


@dataclass(frozen=True)
class CellScore:
    """One graded cell: ``score`` of ``max_score`` points."""

    grade_id: str
    score: float
    max_score: float
    kind: str  # "autograded test" or "manually graded"


@dataclass(frozen=True)
class NotebookScore:
    """A submitted notebook's total and its graded cells, in gradebook order."""

    score: float
    max_score: float
    cells: tuple[CellScore, ...]


def read_notebook_score(db: Path, chapter: str, student: str) -> NotebookScore:
    """The score nbgrader recorded for ``student``'s notebook of ``chapter``.

    Raises ``LookupError`` when the gradebook has no autograded submission for them.
    """
    with Gradebook(f"sqlite:///{db}") as gradebook:
        try:
            notebook = gradebook.find_submission_notebook(chapter, chapter, student)
        except MissingEntry as err:
            raise LookupError(f"no graded {chapter} notebook for {student} in {db}") from err
        cells = tuple(
            CellScore(
                grade_id=grade.name,
                score=float(grade.score),
                max_score=float(grade.max_score),
                kind="autograded test" if grade.cell.cell_type == "code" else "manually graded",
            )
            for grade in sorted(notebook.grades, key=lambda g: g.name)
        )
        return NotebookScore(float(notebook.score), float(notebook.max_score), cells)


def chapter_max_score(db: Path, chapter: str) -> float:
    """The points a chapter is worth, from the gradebook entry ``generate_assignment`` made."""
    with Gradebook(f"sqlite:///{db}") as gradebook:
        return float(gradebook.find_assignment(chapter).max_score)
