"""Settings for every pytest run in this repository, including ``pytest course/source/NN``.

This file sits at the repository root so that it loads however pytest is invoked; the
fixtures for the package tests live in ``tests/conftest.py``.
"""

from __future__ import annotations

import os

# nbval's kernels inherit this: notebooks shrink their work as under nbgrader.
os.environ.setdefault("DLKIT_QUICK", "1")
# `pytest -n 2` runs two workers, each starting kernels and nbgrader: one math thread per
# process keeps them from oversubscribing the cores (PyTorch's OpenMP threads spin-wait,
# and two 2-thread processes on 2 busy cores ran a small training loop 100x slower).
# Set before this process imports torch; kernels and subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
