"""Quick mode: how notebooks shrink their work under tests and autograding.

A learner's normal run trains full-size models. Under nbval, ``dlkit check`` and
nbgrader (which sets ``NBGRADER_EXECUTION`` to ``autograde`` or ``validate`` in the
kernel) each chapter must execute in about a minute on 2 CPU cores, so notebooks
ask :func:`quick_mode` (or :func:`by_mode`) at the point where they choose sizes.

``DLKIT_QUICK`` decides when set: ``1/true/yes/on`` forces quick mode and
``0/false/no/off`` forces full size (for an instructor who autogrades full runs).
Unset, quick mode follows ``NBGRADER_EXECUTION``. Nothing is read at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")

QUICK_ENV = "DLKIT_QUICK"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def quick_mode(environ: Mapping[str, str] | None = None) -> bool:
    """Return True when notebooks should run their small, fast configuration.

    Args:
        environ: the environment to read; ``os.environ`` (read now) by default.
    """
    env = os.environ if environ is None else environ
    flag = env.get(QUICK_ENV, "").strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    if flag:
        raise ValueError(
            f"{QUICK_ENV}={env[QUICK_ENV]!r} is not understood; "
            f"expected one of {sorted(_TRUE)} or {sorted(_FALSE)}, or leave it unset"
        )
    return bool(env.get("NBGRADER_EXECUTION"))


def by_mode(full: T, quick: T) -> T:
    """Pick ``quick`` in quick mode and ``full`` otherwise, e.g. ``by_mode(5000, 200)`` steps."""
    return quick if quick_mode() else full
