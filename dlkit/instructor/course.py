"""An nbgrader course directory and how to run nbgrader inside it.

Layout (nbgrader's own): ``ROOT/nbgrader_config.py``, ``ROOT/source/<chapter>/<chapter>.ipynb``,
and the generated ``release/``, ``submitted/``, ``autograded/``, ``feedback/`` and
``gradebook.db``. A chapter is named ``NN_topic`` and holds one notebook of the same name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dlkit

CHAPTER_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
CONFIG_FILE = "nbgrader_config.py"


_EXCEPTION_LINE = re.compile(r"^\s*(?:[\w]+\.)*(\w+(?:Error|Exception|Interrupt)): (.+)$")


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds the command and its log tail,
    ``reason`` the last exception nbgrader logged (e.g. ``DeadKernelError: Kernel died``)."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        found = [m for line in log.splitlines() if (m := _EXCEPTION_LINE.match(line))]
        self.reason = (
            f"{found[-1][1]}: {found[-1][2].strip()}" if found else message.splitlines()[0]
        )


def find_course_root(start: Path | None = None) -> Path:
    """Find the course root: ``start`` (default: the current folder) or a parent that
    holds ``nbgrader_config.py`` and ``source/``, or a ``course/`` folder in one of them;
    failing that, the ``course/`` folder of the repository dlkit was installed from.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for candidate in (folder, folder / "course"):
            if (candidate / CONFIG_FILE).is_file() and (candidate / "source").is_dir():
                return candidate
    repo_course = Path(dlkit.__file__).resolve().parents[1] / "course"
    if (repo_course / CONFIG_FILE).is_file():
        return repo_course
    raise FileNotFoundError(
        f"no nbgrader course found from {here}: expected a folder with {CONFIG_FILE} and "
        "source/ (run from the repository or its course/ folder, or pass --course)"
    )


@dataclass(frozen=True)
class Course:
    """An nbgrader course directory rooted at ``root``."""

    root: Path

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    def chapters(self) -> list[str]:
        """Every chapter in ``source/``, in course order."""
        if not self.source.is_dir():
            return []
        return sorted(
            p.name for p in self.source.iterdir() if p.is_dir() and CHAPTER_NAME.match(p.name)
        )

    def source_notebook(self, chapter: str) -> Path:
        return self.source / chapter / f"{chapter}.ipynb"

    def release_notebook(self, chapter: str) -> Path:
        return self.release / chapter / f"{chapter}.ipynb"

    def select(self, chapters: Iterable[str] = ()) -> list[str]:
        """The chapters asked for (all when none), checked to exist in ``source/``."""
        known = self.chapters()
        asked = list(chapters) or known
        unknown = [c for c in asked if c not in known]
        if unknown:
            raise ValueError(
                f"unknown chapter(s) {', '.join(unknown)}; chapters in {self.source}: "
                f"{', '.join(known) or 'none'}"
            )
        return asked

    def nbgrader(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """Run ``nbgrader ARGS`` in this course and return its log; raise on failure."""
        return run_nbgrader(args, cwd=self.root, env=env)

    def generate(self, chapters: Sequence[str]) -> None:
        """Generate the student versions of ``chapters`` into ``release/``."""
        for chapter in chapters:
            self.nbgrader("generate_assignment", chapter, "--force")

    def copy_to(self, dest: Path, chapters: Sequence[str]) -> Course:
        """A fresh course at ``dest`` with this course's config and the given chapters' sources."""
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.root / CONFIG_FILE, dest / CONFIG_FILE)
        for chapter in chapters:
            shutil.copytree(
                self.source / chapter,
                dest / "source" / chapter,
                ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
                dirs_exist_ok=True,
            )
        return Course(dest)


def run_nbgrader(args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """Run nbgrader with this interpreter (so its kernels see the same packages)."""
    command = [sys.executable, "-m", "nbgrader", *args]
    full_env = {**os.environ, **(env or {})}
    # nbgrader runs helper programs (alembic) by name: find them beside this interpreter
    # even when the virtual environment is not activated.
    bin_dir = str(Path(sys.executable).parent)
    full_env["PATH"] = os.pathsep.join([bin_dir, full_env.get("PATH", "")])
    done = subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    log = done.stdout + done.stderr
    # nbgrader reports some failures only in its log while exiting 0.
    if done.returncode != 0 or "[ERROR]" in log:
        tail = "\n".join(log.strip().splitlines()[-25:])
        raise NbgraderError(
            f"`nbgrader {' '.join(args)}` failed in {cwd} (exit {done.returncode}):\n{tail}",
            log,
        )
    return log
