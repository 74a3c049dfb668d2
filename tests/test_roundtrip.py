"""The proof that grading is sound, for every chapter in course/source, and that the
proof itself catches unsound chapters."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_course import SETUP, SOLUTION, TESTS, cell, make_course, standard_cells
from nbformat.v4 import new_notebook

from dlkit.instructor.course import Course
from dlkit.instructor.roundtrip import RoundTripReport, check_chapter, check_release

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = Course(REPO / "course").chapters()


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_grading_is_sound(course: Course, chapter: str, tmp_path: Path) -> None:
    report = check_chapter(course, chapter, tmp_path)
    assert report.ok, f"{chapter}:\n" + "\n".join(report.problems)
    assert report.solution is not None and report.blank is not None
    assert report.solution.max_score > 0
    assert report.solution.score == report.solution.max_score
    assert report.blank.score == 0


@pytest.mark.slow
def test_warnings_and_stderr_noise_do_not_cost_points(tmp_path: Path) -> None:
    # One test cell warns through Python's warnings module (routed to stdout by
    # prepare_kernel); one writes a warning-shaped line straight to stderr (recorded as
    # stdout by the kernel client in nbgrader_config.py). Both must keep their points.
    noisy = [
        *standard_cells(),
        cell("import warnings\nwarnings.warn('harmless', UserWarning)\n" + TESTS, "tests", "warns"),
        cell(
            "import sys\nsys.stderr.write('lib.py:3: UserWarning: noisy\\n')\n" + TESTS,
            "tests",
            "stderr",
        ),
    ]
    report = check_chapter(make_course(tmp_path / "c", noisy), "00_tiny", tmp_path / "w")
    assert report.ok, "\n".join(report.problems)
    assert report.solution is not None and report.solution.score == 5


@pytest.mark.slow
def test_a_test_that_cannot_fail_is_reported(tmp_path: Path) -> None:
    cells = [*standard_cells(), cell("assert True", "tests", "always_passes")]
    report = check_chapter(make_course(tmp_path / "c", cells), "00_tiny", tmp_path / "w")
    assert not report.ok
    assert any(
        "'always_passes'" in p and "blank student version earns 1/1" in p for p in report.problems
    )


@pytest.mark.slow
def test_a_wrong_solution_is_reported_with_its_failure(tmp_path: Path) -> None:
    wrong = SOLUTION.replace("2 * x", "3 * x")
    cells = [
        cell(SETUP, "locked", "setup"),
        cell(wrong, "solution", "double"),
        cell(TESTS, "tests", "t"),
    ]
    report = check_chapter(make_course(tmp_path / "c", cells), "00_tiny", tmp_path / "w")
    assert not report.ok
    assert any("solution earns 0/1 on 't'" in p for p in report.problems)
    assert any("CheckFailed" in p and "double(2.0)" in p for p in report.problems)


def test_hidden_tests_or_solutions_in_a_student_version_are_reported() -> None:
    # nbgrader strips both; this guards against a chapter or config that stops it.
    source = new_notebook(cells=standard_cells())
    leaky = new_notebook(cells=standard_cells())  # the source itself, as if nothing was stripped
    report = RoundTripReport("00_tiny")
    check_release(source, leaky, report)
    assert any("hidden tests of cell 'double_hidden'" in p for p in report.problems), (
        report.problems
    )
    assert any("unstripped solution" in p for p in report.problems), report.problems
