"""Kernel set-up run by each chapter's locked first cell.

nbgrader scores a test cell zero when it writes anything to stderr, and a harmless
library warning (a PyTorch ``UserWarning``, say) goes to stderr by default. The
Validate button runs without nbgrader's ``IgnorePattern`` filter, so the fix has to
live in the kernel: while nbgrader executes the notebook (``NBGRADER_EXECUTION`` is
set), Python warnings are printed to stdout instead, still visible, never fatal.
A learner's own interactive run keeps Python's normal behaviour.
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


def prepare_kernel(environ: dict[str, str] | None = None) -> bool:
    """Route warnings to stdout when nbgrader is executing; return whether it did."""
    env = os.environ if environ is None else environ
    if not env.get("NBGRADER_EXECUTION"):
        return False
    warnings.showwarning = _show_on_stdout
    return True
