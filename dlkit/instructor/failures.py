"""Why a graded cell failed, read from an autograded notebook's outputs.

nbgrader gives a test cell zero points when it has an error output or anything on
stderr; this module turns those outputs into one line a learner or instructor can read.
"""

from __future__ import annotations

import re

from nbformat import NotebookNode

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _clean(text: str, limit: int = 500) -> str:
    text = _ANSI.sub("", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell_failure(cell: NotebookNode) -> str | None:
    """The reason a graded code cell lost its points, or None when nothing failed."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return _clean(f"{output.ename}: {output.evalue}")
        if output.output_type == "stream" and output.name == "stderr":
            return _clean(f"wrote to stderr (nbgrader scores that as a failure): {output.text}")
    return None


def cell_failures(nb: NotebookNode) -> dict[str, str]:
    """``{grade_id: reason}`` for every graded cell of ``nb`` that failed."""
    reasons = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and meta.get("grade_id"):
            reason = cell_failure(cell)
            if reason:
                reasons[meta["grade_id"]] = reason
    return reasons


def first_error_outside_tests(nb: NotebookNode) -> str | None:
    """Where the notebook first broke outside the test cells, e.g. an answer cell that
    raised or ran past the time limit: usually the root cause of the failing tests."""
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("grade"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors:
            last = errors[-1]  # a timeout shows KeyboardInterrupt, then CellTimeoutError
            where = (
                f"cell {meta['grade_id']!r}" if meta.get("grade_id") else f"code cell {index + 1}"
            )
            if last.ename == "CellTimeoutError":
                return f"{where} ran past the time limit and was stopped"
            return f"{where} raised " + _clean(f"{last.ename}: {last.evalue}".rstrip(": "))
    return None
