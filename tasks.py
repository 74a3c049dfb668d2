#!/usr/bin/env python3
"""The commands in the README: set everything up, then open the course or run the tests.

    python3 tasks.py course   install the course into .venv, generate the student notebooks
                              and open a learner's JupyterLab on them (extra arguments go
                              to `jupyter lab`, e.g. `--no-browser --port 8899`)
    python3 tasks.py instructor
                              JupyterLab on the whole course/ folder with nbgrader's
                              instructor tools (Formgrader, Create Assignment) on
    python3 tasks.py test     install everything for testing into .venv and run all tests
                              (extra arguments go to pytest, e.g. `-k grade`)
    python3 tasks.py build corpus       rebuild the shipped text corpus and its token files
    python3 tasks.py build checkpoint   retrain the shipped pretrained GPT (tens of minutes)
                              (maintainers only: both rewrite files under dlkit/assets/)

Standard library only, so it runs on a fresh Python 3.11. Every command installs with
the exact pins in constraints.txt (CPU PyTorch, the same versions on every machine) and
skips the install when nothing it depends on has changed since the last one.

The learner's JupyterLab reads the Jupyter configuration in learner_config/ (instructor
tools hidden, no news or update checks; Binder's binder/start uses the same folder).
Two environment variables are for the browser tests: DLKIT_COURSE serves another course
folder than course/, and DLKIT_SKIP_INSTALL=1 uses .venv as it is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], cwd=cwd, env=env, check=True)


def install(extra: str) -> None:
    """Create .venv if needed and install dlkit with ``extra`` under constraints.txt."""
    if os.environ.get("DLKIT_SKIP_INSTALL") == "1":
        return  # the browser tests run inside the .venv that `tasks.py test` installed
    if sys.version_info < (3, 11):  # noqa: UP036 (tasks.py runs under any python3)
        sys.exit(f"dlkit needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating the virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    inputs = b"".join((ROOT / f).read_bytes() for f in ("constraints.txt", "pyproject.toml"))
    stamp = VENV / f".installed-{extra}"
    digest = hashlib.sha256(inputs + extra.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "-c", "constraints.txt", "-e", f".[{extra}]")
    stamp.write_text(digest)


LEARNER_CONFIG = ROOT / "learner_config"


def course_root() -> Path:
    """The course folder to serve: course/, or the one DLKIT_COURSE names."""
    return Path(os.environ.get("DLKIT_COURSE") or ROOT / "course").resolve()


def jupyter_env(learner: bool) -> dict[str, str]:
    """The environment for `jupyter lab`: learner_config/ first on Jupyter's config path
    for a learner (it outranks the environment's own config), and off it for an instructor."""
    paths = [p for p in os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    paths = [p for p in paths if Path(p).resolve() != LEARNER_CONFIG]
    if learner:
        paths.insert(0, str(LEARNER_CONFIG))
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    if paths:
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    return env


def lab(root_dir: Path, cwd: Path, lab_args: list[str], env: dict[str, str]) -> None:
    """Replace this process with `jupyter lab` showing ``root_dir``, started in ``cwd``."""
    args = ["jupyter", "lab", f"--ServerApp.root_dir={root_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # containers and CI machines often run as root
    args += lab_args
    print("+", " ".join(args), flush=True)
    os.chdir(cwd)
    os.execve(str(BIN / "jupyter"), args, env)


def course(lab_args: list[str]) -> None:
    install("course")
    root = course_root()
    run(BIN / "dlkit", "--course", root, "release")
    # Start in the course folder so nbgrader also finds its nbgrader_config.py there
    # (learner_config/ loads it too); show only the student versions in release/.
    lab(root / "release", cwd=root, lab_args=lab_args, env=jupyter_env(learner=True))


def instructor(lab_args: list[str]) -> None:
    install("course")
    root = course_root()
    # Formgrader and Create Assignment work on the course folder itself (source/, release/,
    # the gradebook): serve all of it, without the learner's configuration.
    lab(root, cwd=root, lab_args=lab_args, env=jupyter_env(learner=False))


def test(pytest_args: list[str]) -> int:
    install("dev")  # test tools plus the contributor hooks (pre-commit, nbstripout)
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    # Two workers on CI's 2 cores; --dist loadfile keeps each notebook on one worker.
    command = [str(PYTHON), "-m", "pytest", "-n", "2", "--dist", "loadfile", *pytest_args]
    done = subprocess.run(command, cwd=ROOT, env=env)
    return done.returncode


BUILDS = {"corpus": "tools/build_corpus.py", "checkpoint": "tools/build_checkpoint.py"}


def build(args: list[str]) -> int:
    """Rebuild a shipped asset folder with its script in tools/ (extra arguments go to it)."""
    if not args or args[0] not in BUILDS:
        print(f"usage: python3 tasks.py build {{{'|'.join(BUILDS)}}} [options]")
        return 2
    install("dev")
    return subprocess.run([str(PYTHON), BUILDS[args[0]], *args[1:]], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"course", "instructor", "test", "build"}:
        print(__doc__)
        return 2
    if argv[0] == "course":
        course(argv[1:])
        return 0
    if argv[0] == "instructor":
        instructor(argv[1:])
        return 0
    if argv[0] == "build":
        return build(argv[1:])
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
