"""The proof that a chapter's grading is sound (``dlkit check`` and the test suite).

In a fresh temporary course: generate the student version; autograde the solution
notebook as one student and the blank student notebook as another; then read the
gradebook, because ``nbgrader autograde`` exits 0 even when tests fail. Sound means:

- the solution earns every point of every graded cell;
- the blank student version earns zero on every autograded test cell;
- hidden tests are absent from the student version and present again at autograde;
- no solution code leaks into the student version.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlkit.instructor.course import Course
from dlkit.instructor.failures import cell_failures
from dlkit.instructor.gradebook import NotebookScore, read_notebook_score

SOLUTION_STUDENT = "solution"
BLANK_STUDENT = "blank"
_HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)


@dataclass
class RoundTripReport:
    """What one chapter's round trip found; ``ok`` when ``problems`` is empty."""

    chapter: str
    solution: NotebookScore | None = None
    blank: NotebookScore | None = None
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.solution is None or self.blank is None:
            return f"{self.chapter}: FAILED before scores were read"
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"{self.chapter}: {verdict}  solution {self.solution.score:g}/{self.solution.max_score:g}, "
            f"blank {self.blank.score:g}/{self.blank.max_score:g}, "
            f"{len(self.solution.cells)} graded cells, "
            f"autograde {self.seconds.get('autograde', 0):.1f} s"
        )


def hidden_tests(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """``{grade_id: [hidden test blocks]}`` for the test cells of a source notebook."""
    found: dict[str, list[str]] = {}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        blocks = [b.strip() for b in _HIDDEN.findall(cell.source) if b.strip()]
        if grade_id and blocks:
            found[grade_id] = blocks
    return found


def _cells_by_id(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nb.cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    }


def check_release(source_nb, release_nb, report: RoundTripReport) -> None:
    """Hidden tests and solutions must not reach the student version."""
    released = _cells_by_id(release_nb)
    for grade_id, blocks in hidden_tests(source_nb).items():
        if any(block in released.get(grade_id, "") for block in blocks):
            report.problems.append(f"hidden tests of cell {grade_id!r} are in the student version")
    for cell in release_nb.cells:
        if "### BEGIN SOLUTION" in cell.source or "### BEGIN HIDDEN TESTS" in cell.source:
            report.problems.append(
                "an unstripped solution or hidden-test marker is in the student version"
            )
            break
    for cell in source_nb.cells:
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            report.problems.append("the source notebook is stored with outputs; clear them")
            break


def _check_scores(report: RoundTripReport) -> None:
    solution, blank = report.solution, report.blank
    assert solution is not None and blank is not None
    if not solution.cells:
        report.problems.append("the chapter has no graded cells")
    for cell in solution.cells:
        if cell.score != cell.max_score:
            report.problems.append(
                f"solution earns {cell.score:g}/{cell.max_score:g} on {cell.grade_id!r}; expected full marks"
            )
    for cell in blank.cells:
        if cell.kind == "autograded test" and cell.score != 0:
            report.problems.append(
                f"blank student version earns {cell.score:g}/{cell.max_score:g} on {cell.grade_id!r}; "
                "expected 0 (a test that passes without an answer cannot fail)"
            )


def _check_hidden_restored(
    course: Course, chapter: str, source_nb, report: RoundTripReport
) -> None:
    path = course.root / "autograded" / BLANK_STUDENT / chapter / f"{chapter}.ipynb"
    graded = _cells_by_id(nbformat.read(path, as_version=4))
    for grade_id, blocks in hidden_tests(source_nb).items():
        if not all(block in graded.get(grade_id, "") for block in blocks):
            report.problems.append(
                f"hidden tests of cell {grade_id!r} were not restored at autograde"
            )


def check_chapter(course: Course, chapter: str, workdir: Path) -> RoundTripReport:
    """Run the round trip for ``chapter`` in a new course under ``workdir``."""
    report = RoundTripReport(chapter)
    work = course.copy_to(workdir / chapter, [chapter])
    source_nb = nbformat.read(work.source_notebook(chapter), as_version=4)

    start = time.perf_counter()
    work.generate([chapter])
    report.seconds["generate"] = time.perf_counter() - start
    release_nb = nbformat.read(work.release_notebook(chapter), as_version=4)
    check_release(source_nb, release_nb, report)

    for student, notebook in (
        (SOLUTION_STUDENT, work.source_notebook(chapter)),
        (BLANK_STUDENT, work.release_notebook(chapter)),
    ):
        target = work.root / "submitted" / student / chapter
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebook, target / f"{chapter}.ipynb")

    start = time.perf_counter()
    work.nbgrader("autograde", chapter, "--force")
    report.seconds["autograde"] = time.perf_counter() - start

    report.solution = read_notebook_score(work.gradebook, chapter, SOLUTION_STUDENT)
    report.blank = read_notebook_score(work.gradebook, chapter, BLANK_STUDENT)
    _check_scores(report)
    _check_hidden_restored(work, chapter, source_nb, report)
    if report.solution.score != report.solution.max_score:
        solution_nb = work.root / "autograded" / SOLUTION_STUDENT / chapter / f"{chapter}.ipynb"
        for grade_id, reason in cell_failures(nbformat.read(solution_nb, as_version=4)).items():
            report.problems.append(f"solution cell {grade_id!r} failed: {reason}")
    return report
