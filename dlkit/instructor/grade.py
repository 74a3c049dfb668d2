"""Grading a folder of submissions into reports (``dlkit grade``).

For each (student, chapter) the notebook is autograded by plain nbgrader in a work
course under ``OUT/work`` (one submission at a time: nbgrader has no parallel
autograde and its SQLite gradebook takes one writer). Scores come from the
gradebook, failure messages from the autograded notebook. Written to ``OUT``:

- ``grades.csv``: one row per student and chapter (``student_id, chapter, score, max_score, status, message``);
- ``grades.json``: the same rows plus every graded cell's score and failure message, and the run's notes;
- ``feedback/<student_id>/``: nbgrader's HTML feedback per chapter and a ``summary.md``.

Grades are never lost: both reports are rewritten atomically after every submission,
so an interrupted run keeps what it graded, and rows from an earlier run into the
same ``OUT`` are kept unless this run grades that (student, chapter) again. If
nbgrader cannot process a submission that already has a recorded grade, the earlier
grade stays and the failure is reported.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nbformat

from dlkit.instructor.course import Course, NbgraderError
from dlkit.instructor.failures import cell_failures, first_error_outside_tests
from dlkit.instructor.gradebook import chapter_max_score, read_notebook_score
from dlkit.instructor.submissions import Submission, collect

CSV_COLUMNS = ["student_id", "chapter", "score", "max_score", "status", "message"]


@dataclass
class GradeRow:
    """One student's result for one chapter.

    ``status``: ``graded`` (autograded; ``message`` lists failing cells), ``missing``
    (no notebook), ``invalid`` (not a readable notebook) or ``error`` (nbgrader could
    not process it).
    """

    student_id: str
    chapter: str
    score: float
    max_score: float
    status: str
    message: str = ""
    cells: list[dict] = field(default_factory=list)


@dataclass
class GradeReport:
    rows: list[GradeRow]
    notes: list[str]
    out: Path

    def row(self, student_id: str, chapter: str) -> GradeRow:
        return next(r for r in self.rows if (r.student_id, r.chapter) == (student_id, chapter))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _previous_report(out: Path) -> tuple[dict[tuple[str, str], GradeRow], list[str]]:
    """Rows and notes an earlier run recorded in ``out``, so this run keeps them."""
    path = out / "grades.json"
    if not path.is_file():
        return {}, []
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        rows = {(r["student_id"], r["chapter"]): GradeRow(**r) for r in report["results"]}
        return rows, list(report["notes"])
    except (ValueError, KeyError, TypeError) as err:
        raise RuntimeError(
            f"{path} exists but cannot be read ({err}); move it away or choose another --out"
        ) from err


def write_reports(
    out: Path, rows: list[GradeRow], notes: list[str], chapters: dict[str, float]
) -> None:
    """Write ``grades.csv`` and ``grades.json`` atomically."""
    rows = sorted(rows, key=lambda r: (r.student_id, r.chapter))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    _write_atomic(out / "grades.csv", buffer.getvalue())
    report = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "chapters": chapters,
        "results": [asdict(r) for r in rows],
        "notes": notes,
    }
    _write_atomic(out / "grades.json", json.dumps(report, indent=2) + "\n")


def _autograde(
    work: Course, sub: Submission, max_score: float, nbgrader_args: Sequence[str]
) -> GradeRow:
    assert sub.notebook is not None
    target = work.root / "submitted" / sub.student_id / sub.chapter
    target.mkdir(parents=True, exist_ok=True)
    nbformat.write(sub.notebook, target / f"{sub.chapter}.ipynb")
    try:
        work.nbgrader(
            "autograde", sub.chapter, "--student", sub.student_id, "--force", *nbgrader_args
        )
        score = read_notebook_score(work.gradebook, sub.chapter, sub.student_id)
    except (NbgraderError, LookupError) as err:
        reason = err.reason if isinstance(err, NbgraderError) else str(err)
        return GradeRow(
            sub.student_id,
            sub.chapter,
            0.0,
            max_score,
            "error",
            f"nbgrader could not grade {sub.origin}: {reason}",
        )
    graded = work.root / "autograded" / sub.student_id / sub.chapter / f"{sub.chapter}.ipynb"
    graded_nb = nbformat.read(graded, as_version=4)
    reasons = cell_failures(graded_nb)
    cells = [
        {
            "grade_id": c.grade_id,
            "score": c.score,
            "max_score": c.max_score,
            "failure": reasons.get(c.grade_id, "" if c.score == c.max_score else "not full marks"),
        }
        for c in score.cells
    ]
    failed = [c["grade_id"] for c in cells if c["score"] < c["max_score"]]
    message = f"lost points in {', '.join(failed)}" if failed else ""
    root_cause = first_error_outside_tests(graded_nb) if failed else None
    if root_cause:
        message += f"; first error: {root_cause}"
    return GradeRow(
        sub.student_id, sub.chapter, score.score, score.max_score, "graded", message, cells
    )


def _feedback(work: Course, rows: list[GradeRow], out: Path) -> list[str]:
    """nbgrader's HTML feedback for the rows graded in this run, copied to
    ``out/feedback/<student>/<chapter>.html``; returns notes on any it could not make."""
    notes = []
    for chapter in sorted({r.chapter for r in rows}):
        students = [r.student_id for r in rows if r.chapter == chapter]
        try:  # one nbgrader run for the whole chapter; one per student only if that fails
            work.nbgrader("generate_feedback", chapter, "--force")
        except NbgraderError:
            for student in students:
                try:
                    work.nbgrader("generate_feedback", chapter, "--student", student, "--force")
                except NbgraderError as err:
                    notes.append(f"{student}/{chapter}: no HTML feedback ({err.reason})")
        for student in students:
            html = work.root / "feedback" / student / chapter / f"{chapter}.html"
            if html.is_file():
                dest = out / "feedback" / student
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(html, dest / f"{chapter}.html")
    return notes


def _write_summaries(out: Path, rows: list[GradeRow]) -> None:
    for student in sorted({r.student_id for r in rows}):
        lines = [f"# Grades for {student}", ""]
        for row in sorted((r for r in rows if r.student_id == student), key=lambda r: r.chapter):
            lines.append(f"## {row.chapter}: {row.score:g} / {row.max_score:g} ({row.status})")
            if row.message:
                lines.append(f"\n{row.message}")
            lines += [
                f"- {c['grade_id']}: {c['score']:g}/{c['max_score']:g}"
                + (f" — {c['failure']}" if c["failure"] else "")
                for c in row.cells
            ]
            lines.append("")
        dest = out / "feedback" / student
        dest.mkdir(parents=True, exist_ok=True)
        _write_atomic(dest / "summary.md", "\n".join(lines))


def grade_submissions(
    course: Course,
    submissions: Path,
    out: Path,
    chapters: Sequence[str] = (),
    *,
    nbgrader_args: Sequence[str] = (),
    progress: Callable[[str], None] = lambda line: None,
) -> GradeReport:
    """Grade every submission in ``submissions`` against ``course``; reports go to ``out``.

    Args:
        chapters: chapters to grade; by default every chapter that anyone submitted.
        nbgrader_args: extra ``nbgrader autograde`` options, e.g. ``--Execute.timeout=60``.
        progress: called with one line per graded submission.
    """
    asked = course.select(chapters) if chapters else []
    collection = collect(submissions, course.chapters(), asked)
    needed = sorted({s.chapter for s in collection.submissions})
    out.mkdir(parents=True, exist_ok=True)
    recorded, earlier_notes = _previous_report(out)
    notes = earlier_notes + [n for n in collection.notes if n not in earlier_notes]

    work_root = out / "work"
    if work_root.exists():
        shutil.rmtree(work_root)
    work = course.copy_to(work_root, needed)
    work.generate(needed)
    max_scores = {c: chapter_max_score(work.gradebook, c) for c in needed}

    rows = dict(recorded)
    for sub in collection.submissions:
        key = (sub.student_id, sub.chapter)
        if sub.notebook is None:
            status = "missing" if sub.problem and sub.problem.startswith("missing") else "invalid"
            row = GradeRow(
                sub.student_id, sub.chapter, 0.0, max_scores[sub.chapter], status, sub.problem or ""
            )
        else:
            row = _autograde(work, sub, max_scores[sub.chapter], nbgrader_args)
        earlier = recorded.get(key)
        if row.status == "error" and earlier is not None and earlier.status == "graded":
            notes.append(f"{sub.student_id}/{sub.chapter}: {row.message}; kept the earlier grade")
            row = earlier
        rows[key] = row
        progress(
            f"{row.student_id:<20} {row.chapter:<18} {row.score:g}/{row.max_score:g}  {row.status}"
            + (f"  {row.message}" if row.message else "")
        )
        write_reports(out, list(rows.values()), notes, max_scores)

    graded_now = [
        rows[(s.student_id, s.chapter)]
        for s in collection.submissions
        if rows[(s.student_id, s.chapter)].status == "graded" and s.notebook is not None
    ]
    notes += _feedback(work, graded_now, out)
    all_rows = sorted(rows.values(), key=lambda r: (r.student_id, r.chapter))
    write_reports(out, all_rows, notes, max_scores)
    _write_summaries(out, all_rows)
    return GradeReport(all_rows, notes, out)
