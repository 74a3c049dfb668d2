"""Shared fixtures. Everything here runs on a CPU; notebooks execute in quick mode (set in
the repository's root ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlkit.instructor.course import Course

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def course() -> Course:
    """The real course in this repository (read-only: copy it before changing anything)."""
    return Course(REPO / "course")
