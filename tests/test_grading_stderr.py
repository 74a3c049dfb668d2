"""What an honest answer writes to stderr never costs points, under autograde and under
Validate; an exception still does (dlkit.instructor.stderr_outputs)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import pytest
from fake_course import SETUP, cell, make_course
from jupyter_client import AsyncKernelManager
from nbformat.v4 import new_notebook
from nbgrader.preprocessors import Execute
from nbgrader.validator import Validator
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from dlkit.instructor.course import Course
from dlkit.instructor.roundtrip import SOLUTION_STUDENT, check_chapter
from dlkit.instructor.stderr_outputs import PREFIX, StdoutKernelClient, stderr_as_stdout

REPO = Path(__file__).resolve().parents[1]

# Each writes its own name to stderr in its own way.
NOISES = {
    "logging": "import logging\nlogging.warning('from logging')",
    "print": "import sys\nprint('from print', file=sys.stderr)",
    "os_write": "import os\nos.write(2, b'from os_write\\n')",
    "c_write": "import ctypes\nctypes.CDLL(None).write(2, b'from c_write\\n', 13)",
}


def _answer(name: str, noise: str, factor: int = 2) -> str:
    body = textwrap.indent(f"{noise}\nreturn {factor} * x", "    ")
    return f"def {name}(x):\n    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION"


def _test(name: str, expected: float) -> str:
    return f"assert_close({name}(2.0), {expected}, name='{name}(2.0)')"


def honest_cells() -> list:
    """Setup, then for each kind of noise a correct answer that makes it and its test."""
    cells = [cell(SETUP, "locked", "setup")]
    for kind, noise in NOISES.items():
        cells.append(cell(_answer(f"double_{kind}", noise), "solution", f"{kind}_answer"))
        cells.append(cell(_test(f"double_{kind}", 4.0), "tests", f"{kind}_test"))
    return cells


def failing_cells() -> list:
    """A wrong answer that writes to stderr, and a test cell that writes to stderr then raises."""
    return [
        cell(_answer("triple", NOISES["print"], factor=2), "solution", "wrong_answer"),
        cell(_test("triple", 6.0), "tests", "wrong_test"),
        cell(
            "import sys\nprint('about to fail', file=sys.stderr)\nraise ValueError('boom')",
            "tests",
            "raises_test",
        ),
    ]


def course_config() -> Config:
    """The configuration nbgrader (and the Validate button) read from the course."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(REPO / "course")).load_config()


def _streams(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"
    ]


# --- the message rewrite, on hand-made IOPub messages -----------------------------------


def _stream(name: str, text: str, parent: str = "cell-1") -> dict:
    return {
        "msg_type": "stream",
        "parent_header": {"msg_id": parent},
        "content": {"name": name, "text": text},
    }


def test_a_stderr_stream_becomes_stdout_with_every_line_marked() -> None:
    msg = stderr_as_stdout(_stream("stderr", "one\ntwo\n"), set())
    assert msg["content"] == {"name": "stdout", "text": f"{PREFIX}one\n{PREFIX}two\n"}


def test_a_line_split_across_messages_is_marked_once() -> None:
    mid_line: set[str] = set()
    texts = [
        stderr_as_stdout(_stream("stderr", text), mid_line)["content"]["text"]
        for text in ["10%", " done\nnext", " line\n", "last\n"]
    ]
    assert "".join(texts) == f"{PREFIX}10% done\n{PREFIX}next line\n{PREFIX}last\n"
    assert not mid_line


def test_each_cell_keeps_its_own_line_state() -> None:
    mid_line: set[str] = set()
    stderr_as_stdout(_stream("stderr", "no newline", parent="a"), mid_line)
    msg = stderr_as_stdout(_stream("stderr", "fresh\n", parent="b"), mid_line)
    assert msg["content"]["text"] == f"{PREFIX}fresh\n"


def test_stdout_errors_and_other_messages_are_left_alone() -> None:
    stdout = _stream("stdout", "hello\n")
    error = {"msg_type": "error", "parent_header": {}, "content": {"ename": "ValueError"}}
    status = {"msg_type": "status", "parent_header": {}, "content": {"execution_state": "idle"}}
    for msg in (stdout, error, status):
        before = repr(msg)
        assert stderr_as_stdout(msg, set()) is msg and repr(msg) == before


def test_the_course_config_gives_nbgrader_kernels_the_stdout_client() -> None:
    # nbgrader's Execute (in autograde and in Validator) builds its kernel manager from
    # the config it was given; no kernel is started here.
    execute = Execute(config=course_config())
    execute.nb = new_notebook()
    km = execute.create_kernel_manager()
    assert isinstance(km, AsyncKernelManager)
    assert isinstance(km.client(), StdoutKernelClient)


# --- nbgrader itself ----------------------------------------------------------------------


def kernels_capture_fd_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the kernels nbgrader starts forward fd 2 as they do outside the test suite.

    ipykernel forwards what C code writes to fd 2 as a stderr stream, except when it sees
    PYTEST_CURRENT_TEST (inherited from here, set again for each test's call phase).
    """
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)


@pytest.mark.slow
def test_stderr_from_honest_answers_keeps_full_marks_at_autograde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernels_capture_fd_2(monkeypatch)
    course = make_course(tmp_path / "c", honest_cells() + failing_cells())
    report = check_chapter(course, "00_tiny", tmp_path / "w")
    assert report.solution is not None
    scores = {c.grade_id: (c.score, c.max_score) for c in report.solution.cells}
    for kind in NOISES:
        assert scores[f"{kind}_test"] == (1, 1), (kind, report.problems)
    # Writing to stderr buys nothing either: a wrong answer or an exception still scores 0.
    assert scores["wrong_test"] == (0, 1)
    assert scores["raises_test"] == (0, 1)

    graded = nbformat.read(
        tmp_path / "w" / "00_tiny" / "autograded" / SOLUTION_STUDENT / "00_tiny" / "00_tiny.ipynb",
        as_version=4,
    )
    streams = _streams(graded)
    assert all(o.name == "stdout" for o in streams)
    shown = "".join(o.text for o in streams)
    lines = ["WARNING:root:from logging", *(f"from {k}" for k in NOISES if k != "logging")]
    for line in [*lines, "about to fail"]:
        assert f"{PREFIX}{line}\n" in shown, (line, shown)


def _validate(path: Path) -> dict:
    return Validator(config=course_config()).validate(str(path))


@pytest.mark.slow
def test_stderr_from_honest_answers_passes_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernels_capture_fd_2(monkeypatch)
    nb_path = tmp_path / "honest.ipynb"
    nbformat.write(new_notebook(cells=honest_cells()), nb_path)
    assert _validate(nb_path) == {}


@pytest.mark.slow
def test_validate_still_fails_wrong_answers_and_exceptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernels_capture_fd_2(monkeypatch)
    nb_path = tmp_path / "failing.ipynb"
    nbformat.write(new_notebook(cells=[cell(SETUP, "locked", "setup"), *failing_cells()]), nb_path)
    failed = _validate(nb_path)["failed"]
    assert [f["source"].splitlines()[0] for f in failed] == [
        _test("triple", 6.0),
        "import sys",
    ]
    assert "CheckFailed" in failed[0]["raw_error"] and "boom" in failed[1]["raw_error"]


@pytest.mark.slow
def test_nbgrader_validate_command_passes_honest_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernels_capture_fd_2(monkeypatch)
    course: Course = make_course(tmp_path / "c", honest_cells())
    log = course.nbgrader("validate", str(course.source_notebook("00_tiny")))
    assert "Success! Your notebook passes all the tests." in log, log
