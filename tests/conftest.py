"""Shared fixtures. Everything here runs on a CPU; notebooks execute in quick mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlkit.instructor.course import Course

# nbval's kernels inherit this: notebooks shrink their work as under nbgrader.
os.environ.setdefault("DLKIT_QUICK", "1")
# `pytest -n 2` runs two workers, each starting kernels and nbgrader: one math thread per
# process keeps them from oversubscribing the cores (PyTorch's OpenMP threads spin-wait,
# and two 2-thread processes on 2 busy cores ran a small training loop 100x slower).
# Set before this process imports torch; kernels and subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def course() -> Course:
    """The real course in this repository (read-only: copy it before changing anything)."""
    return Course(REPO / "course")
