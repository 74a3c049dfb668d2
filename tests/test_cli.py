"""The `dlkit` command line: doctor, release, check; `grade` is in test_grade.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from fake_course import cell, make_course, standard_cells

from dlkit.instructor.course import Course


def dlkit(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "dlkit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_help_lists_every_command() -> None:
    done = dlkit("--help")
    assert done.returncode == 0
    for command in ("doctor", "release", "check", "grade"):
        assert command in done.stdout


def test_console_script_is_installed() -> None:
    exe = shutil.which("dlkit", path=str(Path(sys.executable).parent))
    assert exe, "the dlkit console script is missing: reinstall with the README's command"
    assert subprocess.run([exe, "--help"], capture_output=True).returncode == 0


def test_doctor_on_this_machine(course: Course) -> None:
    done = dlkit("--course", str(course.root), "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in (
        "python",
        "torch",
        "nbgrader",
        "device",
        "threads",
        "kernel",
        "lab extensions",
        "course",
    ):
        assert f"  {name}" in done.stdout
    assert "ready for the course" in done.stdout


def test_doctor_fails_clearly_on_a_broken_install(tmp_path: Path, course: Course) -> None:
    broken = tmp_path / "sklearn"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('simulated broken install')\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    done = dlkit("--course", str(course.root), "doctor", env=env)
    assert done.returncode == 1
    assert "FAIL  scikit-learn" in done.stdout and "simulated broken install" in done.stdout
    assert "not ready" in done.stdout


def test_doctor_fails_without_a_course(tmp_path: Path) -> None:
    done = dlkit("--course", str(tmp_path), "doctor")
    assert done.returncode == 1
    assert "has no chapters" in done.stdout


def test_release_generates_student_versions(tmp_path: Path, course: Course) -> None:
    copy = course.copy_to(tmp_path / "course", ["00_welcome"])
    done = dlkit("--course", str(copy.root), "release")
    assert done.returncode == 0, done.stdout + done.stderr
    student = nbformat.read(copy.release_notebook("00_welcome"), as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "raise NotImplementedError()" in text
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert "np.sqrt(var + eps)" not in text  # the solution's own line


def test_release_rejects_an_unknown_chapter(course: Course) -> None:
    done = dlkit("--course", str(course.root), "release", "99_nope")
    assert done.returncode == 2
    assert "unknown chapter(s) 99_nope" in done.stderr and "00_welcome" in done.stderr


@pytest.mark.slow
def test_check_passes_a_sound_chapter_and_fails_an_unsound_one(tmp_path: Path) -> None:
    sound = make_course(tmp_path / "sound", standard_cells())
    done = dlkit("--course", str(sound.root), "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "00_tiny: ok  solution 3/3, blank 0/3" in done.stdout

    unsound = make_course(
        tmp_path / "unsound", [*standard_cells(), cell("assert True", "tests", "free")]
    )
    done = dlkit("--course", str(unsound.root), "check")
    assert done.returncode == 1
    assert "blank student version earns 1/1 on 'free'" in done.stdout
