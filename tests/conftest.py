"""Shared fixtures. Everything here runs on a CPU; notebooks execute in quick mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlkit.instructor.course import Course

# nbval's kernels inherit this: notebooks shrink their work as under nbgrader.
os.environ.setdefault("DLKIT_QUICK", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def course() -> Course:
    """The real course in this repository (read-only: copy it before changing anything)."""
    return Course(REPO / "course")
