"""The package's shape: one-job subpackages, curated exports, NumPy-only scratch."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlkit"
SUBPACKAGES = ["scratch", "nn", "optim", "train", "data", "text", "viz", "grading", "instructor"]


@pytest.mark.parametrize("name", ["dlkit", *(f"dlkit.{s}" for s in SUBPACKAGES)])
def test_public_api_is_curated(name: str) -> None:
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list), f"{name} needs an explicit __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing}, which it does not define"
    assert module.__doc__, f"{name} needs a docstring saying what it is for"


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node.lineno))
    return found


def test_scratch_never_imports_torch() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {module}"
        for path in (PACKAGE / "scratch").rglob("*.py")
        for module, line in _imports(path)
        if module.split(".")[0] == "torch"
    ]
    assert not offenders, "dlkit.scratch must be NumPy-only:\n" + "\n".join(offenders)
    # And nothing it pulls in imports torch behind its back.
    code = "import sys, dlkit.scratch; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_dlkit_is_cheap() -> None:
    code = "import sys, dlkit; assert 'torch' not in sys.modules and 'nbgrader' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_star_imports() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, f"star imports hide where names come from: {offenders}"
