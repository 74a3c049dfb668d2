"""Tiny nbgrader courses for tests: one chapter, a few cells, no torch, seconds to grade."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from dlkit.instructor.course import Course

REPO = Path(__file__).resolve().parents[1]

SETUP = "from dlkit.grading import assert_close, prepare_kernel\nprepare_kernel()"
SOLUTION = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
TESTS = "assert_close(double(2.0), 4.0, name='double(2.0)')"
HIDDEN = (
    "# hidden tests\n### BEGIN HIDDEN TESTS\n"
    "assert_close(double(-1.5), -3.0, name='double(-1.5)')\n### END HIDDEN TESTS"
)


def cell(source: str, kind: str, grade_id: str, points: int = 1):
    """A code cell with nbgrader metadata: kind is "locked", "solution" or "tests"."""
    meta = {"grade": kind == "tests", "solution": kind == "solution", "locked": kind != "solution"}
    meta |= {"grade_id": grade_id, "schema_version": 3}
    if kind == "tests":
        meta["points"] = points
    c = new_code_cell(source)
    c.metadata["nbgrader"] = meta
    return c


def standard_cells() -> list:
    """A sound chapter: setup, one solution cell, a visible and a hidden test cell."""
    return [
        cell(SETUP, "locked", "setup"),
        cell(SOLUTION, "solution", "double"),
        cell(TESTS, "tests", "double_visible"),
        cell(HIDDEN, "tests", "double_hidden", points=2),
    ]


def make_course(root: Path, cells: list, chapter: str = "00_tiny") -> Course:
    """A course at ``root`` with the real nbgrader_config.py and one chapter made of ``cells``."""
    (root / "source" / chapter).mkdir(parents=True)
    shutil.copy2(REPO / "course" / "nbgrader_config.py", root / "nbgrader_config.py")
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "source" / chapter / f"{chapter}.ipynb")
    return Course(root)
