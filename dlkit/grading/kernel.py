"""Kernel set-up run by each chapter's locked first cell.

nbgrader scores a test cell zero when it writes anything to stderr, and a harmless
library warning (a PyTorch ``UserWarning``, say) goes to stderr by default. The
grader already records all stderr as stdout (``dlkit.instructor.stderr_outputs``,
set in the course's nbgrader_config.py); in the kernel too, while nbgrader executes
the notebook (``NBGRADER_EXECUTION`` is set), Python warnings are printed to stdout
instead, still visible, never fatal.

Under nbgrader no browser is attached, so nobody can move a widget's slider; yet every
widget opens a *comm* whose messages intermittently leave nbclient (which nbgrader runs
notebooks with) waiting for a reply it already got, until the cell timeout (seen here:
a widget cell stalled 120–300 s in 2 of 3 runs; nbclient issue #312). So widgets get
a silent comm while nbgrader executes: they are built and their callbacks still run,
but they send nothing. A learner's own interactive run keeps Python's and Jupyter's
normal behaviour.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TextIO


def _show_on_stdout(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    text = warnings.formatwarning(message, category, filename, lineno, line)
    sys.stdout.write(text)


def _silence_widget_comms() -> None:
    """Make ipywidgets open comms that publish nothing (``comm.DummyComm``)."""
    try:
        import comm
    except ImportError:  # no Jupyter comm package: no widgets to silence
        return
    comm.create_comm = comm.DummyComm


def prepare_kernel(environ: dict[str, str] | None = None) -> bool:
    """When nbgrader is executing: warnings to stdout and silent widgets; return whether so."""
    env = os.environ if environ is None else environ
    if not env.get("NBGRADER_EXECUTION"):
        return False
    warnings.showwarning = _show_on_stdout
    _silence_widget_comms()
    return True
