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
