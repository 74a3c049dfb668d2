"""ruff (lint and format, notebooks included) is enforced by CI, not by memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (it comes with the test extra)")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command: list[str]) -> None:
    done = subprocess.run([RUFF, *command, "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, (
        f"ruff {' '.join(command)} found problems:\n{done.stdout}{done.stderr}"
    )
