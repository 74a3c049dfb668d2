"""`dlkit grade` on a folder that mixes correct, blank, malformed, misnamed, tampered
and kernel-killing submissions: each gets the grade it earned, with a clear reason,
and no bad one stops the others or loses a grade already recorded."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from fake_course import make_course, standard_cells

from dlkit.instructor.course import Course

pytestmark = pytest.mark.slow
CHAPTER = "00_welcome"


def _grade(course: Course, submissions: Path, out: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "dlkit",
        "--course",
        str(course.root),
        "grade",
        str(submissions),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _put(folder: Path, student: str, nb: nbformat.NotebookNode) -> None:
    target = folder / student / CHAPTER
    target.mkdir(parents=True)
    nbformat.write(nb, target / f"{CHAPTER}.ipynb")


def _zip(folder: Path, student: str, member: str, nb: nbformat.NotebookNode) -> None:
    with zipfile.ZipFile(folder / f"{student}.zip", "w") as archive:
        archive.writestr(member, nbformat.writes(nb))


def _grade_cells(nb: nbformat.NotebookNode) -> list:
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


def _answer_cell(nb: nbformat.NotebookNode):
    return next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution"))


@pytest.fixture(scope="module")
def graded(course: Course, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("grade")
    work = course.copy_to(tmp / "course", [CHAPTER])
    work.generate([CHAPTER])
    solution = nbformat.read(work.source_notebook(CHAPTER), as_version=4)
    blank = nbformat.read(work.release_notebook(CHAPTER), as_version=4)

    subs = tmp / "submissions"
    subs.mkdir()
    _put(subs, "alice", solution)  # right answer, nbgrader layout
    _zip(subs, "bob", f"{CHAPTER}.ipynb", blank)  # untouched student version, as a zip
    (subs / "carol" / CHAPTER).mkdir(parents=True)
    (subs / "carol" / CHAPTER / f"{CHAPTER}.ipynb").write_text('{"cells": [', encoding="utf-8")
    _zip(subs, "dave", "homework/welcome.ipynb", solution)  # wrong file name
    # erin: right answer, but deleted every test cell: they come back at autograde.
    erin = nbformat.from_dict(solution)
    erin.cells = [c for c in erin.cells if c not in _grade_cells(erin)]
    _put(subs, "erin", erin)
    # mallory: returns an object equal to everything and replaces the tests with `pass`.
    mallory = nbformat.from_dict(blank)
    _answer_cell(mallory).source = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
        "def standardize(x, eps=1e-5):\n    return Anything()"
    )
    for c in _grade_cells(mallory):
        c.source = "pass"
    _put(subs, "mallory", mallory)
    # oscar: kills the kernel.
    oscar = nbformat.from_dict(solution)
    _answer_cell(oscar).source = "import os\nos._exit(1)"
    _put(subs, "oscar", oscar)
    (subs / "notes.txt").write_text("not a submission", encoding="utf-8")

    out = tmp / "out"
    done = _grade(course, subs, out)
    report = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    rows = {r["student_id"]: r for r in report["results"]}
    return {
        "tmp": tmp,
        "out": out,
        "stdout": done.stdout,
        "report": report,
        "rows": rows,
        "solution": solution,
    }


def test_every_student_gets_one_row_with_the_right_score(graded: dict) -> None:
    rows = graded["rows"]
    assert set(rows) == {"alice", "bob", "carol", "dave", "erin", "mallory", "oscar"}
    expected = {"alice": 3, "bob": 0, "carol": 0, "dave": 0, "erin": 3, "mallory": 0, "oscar": 0}
    assert {s: r["score"] for s, r in rows.items()} == expected
    assert all(r["max_score"] == 3 and r["chapter"] == CHAPTER for r in rows.values())


def test_statuses_and_messages_explain_each_grade(graded: dict) -> None:
    rows, notes = graded["rows"], graded["report"]["notes"]
    assert rows["alice"]["status"] == "graded" and rows["alice"]["message"] == ""
    assert rows["bob"]["status"] == "graded"
    assert "standardize_visible" in rows["bob"]["message"]
    assert rows["carol"]["status"] == "invalid" and "malformed JSON" in rows["carol"]["message"]
    assert rows["dave"]["status"] == "missing"
    assert "homework/welcome.ipynb" in rows["dave"]["message"]
    assert any(
        "dave" in n and "homework/welcome.ipynb" in n and f"{CHAPTER}.ipynb" in n for n in notes
    )
    assert any("notes.txt" in n for n in notes)
    assert rows["oscar"]["status"] == "error" and rows["oscar"]["score"] == 0
    assert "DeadKernelError: Kernel died" in rows["oscar"]["message"]


def test_cells_carry_scores_and_failure_messages(graded: dict) -> None:
    cells = {c["grade_id"]: c for c in graded["rows"]["bob"]["cells"]}
    assert set(cells) == {"standardize_visible", "standardize_hidden"}
    assert cells["standardize_hidden"]["max_score"] == 2
    assert "NotImplementedError" in cells["standardize_visible"]["failure"]
    mallory = {c["grade_id"]: c for c in graded["rows"]["mallory"]["cells"]}
    assert "CheckFailed" in mallory["standardize_visible"]["failure"]  # tests were restored
    assert all(c["failure"] == "" for c in graded["rows"]["alice"]["cells"])


def test_csv_matches_json(graded: dict) -> None:
    with open(graded["out"] / "grades.csv", encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:4] == ["student_id", "chapter", "score", "max_score"]
    assert {r["student_id"]: float(r["score"]) for r in table} == {
        s: r["score"] for s, r in graded["rows"].items()
    }


def test_feedback_per_student(graded: dict) -> None:
    feedback = graded["out"] / "feedback"
    assert (feedback / "alice" / f"{CHAPTER}.html").is_file()
    summary = (feedback / "bob" / "summary.md").read_text(encoding="utf-8")
    assert f"{CHAPTER}: 0 / 3" in summary and "NotImplementedError" in summary
    assert "3 / 3" in (feedback / "alice" / "summary.md").read_text(encoding="utf-8")


def test_a_later_run_keeps_grades_already_recorded(graded: dict, course: Course) -> None:
    later = graded["tmp"] / "later"
    _put(later, "zoe", graded["solution"])
    _grade(course, later, graded["out"])
    rows = {
        r["student_id"]: r
        for r in json.loads((graded["out"] / "grades.json").read_text())["results"]
    }
    assert rows["zoe"]["score"] == 3
    assert rows["alice"] == graded["rows"]["alice"] and rows["bob"] == graded["rows"]["bob"]
    assert len(rows) == 8


def test_an_endless_loop_is_stopped_and_the_others_still_graded(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course", standard_cells())
    course.generate(["00_tiny"])
    solution = nbformat.read(course.source_notebook("00_tiny"), as_version=4)
    looping = nbformat.from_dict(solution)
    _answer_cell(looping).source = "while True:\n    pass"
    for student, nb in (("looper", looping), ("good", solution)):
        target = tmp_path / "subs" / student / "00_tiny"
        target.mkdir(parents=True)
        nbformat.write(nb, target / "00_tiny.ipynb")
    command = [sys.executable, "-m", "dlkit", "--course", str(course.root), "grade"]
    command += [str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--timeout", "3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        r["student_id"]: r
        for r in json.loads((tmp_path / "out/grades.json").read_text())["results"]
    }
    assert rows["good"]["score"] == 3
    assert rows["looper"]["score"] == 0
    assert "cell 'double' ran past the time limit" in rows["looper"]["message"]
