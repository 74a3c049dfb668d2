"""Binder's build and launch, reproduced without Docker or conda, for the tests.

What repo2docker does with ``binder/`` (see the Dockerfile that
``jupyter-repo2docker --no-build --debug .`` prints, checked in tests/test_binder.py):

1. copy the repository (``COPY src/ ${REPO_DIR}/``; on Binder ``REPO_DIR`` is ``HOME``);
2. install ``binder/environment.yml`` into the notebook environment (``mamba env update``);
3. run ``./binder/postBuild`` as the notebook user from the repository root;
4. start every server through ``binder/start`` (``R2D_ENTRYPOINT``), with repo2docker's
   command ``jupyter notebook --ip ... --ServerApp.default_url=/lab``.

Here: a clean copy (the files ``git ls-files --cached --others --exclude-standard`` lists, so
nothing ignored such as ``.venv/``), a fresh virtual environment (no system site-packages)
into which pip installs the packages ``environment.yml`` lists, under ``constraints.txt``
(conda names mapped to PyPI names by :data:`CONDA_TO_PYPI`), then ``postBuild`` and
``binder/start`` with that environment first on ``PATH`` and ``HOME`` = the copy, so nothing
reads or writes the real home's Jupyter configuration. The pip install is the slow part (a
few minutes the first time; pip's download cache in the real home makes later ones fast).

Use :func:`binder_lab` for a one-off server, or :func:`binder_fixtures` for module- or
session-scoped fixtures that share one build between tests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from labs import Lab, free_port, stop_server, wait_until_serving

REPO = Path(__file__).resolve().parents[1]

# conda-forge name -> PyPI name, where they differ. Every other name in environment.yml must
# be a PyPI name that constraints.txt pins (anything else fails loudly: add it here).
CONDA_TO_PYPI = {"pytorch-cpu": "torch"}
# conda packages that are the environment itself rather than something pip installs.
CONDA_ONLY = {"python", "pip"}

# repo2docker's server command (repo2docker/app.py, run without --run-cmd; the image's
# CMD is `jupyter notebook --ip 0.0.0.0`), on 127.0.0.1 with a known port and token.
SERVER_COMMAND = ["jupyter", "notebook", "--ServerApp.default_url=/lab"]
SERVER_START_TIMEOUT = 120  # seconds; a fresh environment compiles nothing but is cold
INSTALL_TIMEOUT = 3600  # seconds; torch and the Jupyter stack, with an empty pip cache


def clean_copy(dest: Path, repo: Path = REPO) -> Path:
    """Copy the files git would commit or has committed (tracked, and untracked but not
    ignored) from ``repo`` to ``dest``, keeping modes and symlinks; return ``dest``."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"cannot list the repository's files with git in {repo}: {error}")
    names = sorted(set(listed.split("\0")) - {""})
    assert names, f"git ls-files listed nothing in {repo}"
    for name in names:
        src, target = repo / name, dest / name
        if not src.is_symlink() and (not src.exists() or src.is_dir()):
            continue  # deleted in the working tree but still in the index; or a submodule
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest


def constraint_pins(constraints: Path) -> dict[str, str]:
    """``{name: version}`` from a constraints file of ``name==version`` lines."""
    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def pip_requirements(environment_yml: Path, constraints: Path) -> tuple[str, list[str]]:
    """The Python version and the pip requirements for the packages ``environment_yml``
    lists, with conda names mapped to PyPI names and conda pins turned into ``==`` pins."""
    from ruamel.yaml import YAML  # repo2docker's own YAML parser (a dependency of it)

    spec = YAML(typ="safe").load(environment_yml.read_text())
    pins = constraint_pins(constraints)
    python, requirements = "", []
    for entry in spec.get("dependencies") or []:
        if isinstance(entry, dict):  # `- pip: [...]`: already pip requirements
            requirements += [str(r) for r in entry.get("pip", [])]
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:(==|>=|<=|=|>|<)\s*([^\s=]+))?.*", entry)
        if not match:
            pytest.fail(f"{environment_yml}: cannot read the conda spec {entry!r}")
        conda_name, operator, version = match[1].lower(), match[2], match[3]
        if conda_name == "python":
            python = version or ""
            continue
        if conda_name in CONDA_ONLY:
            continue
        name = CONDA_TO_PYPI.get(conda_name, conda_name)
        if name not in pins:
            pytest.fail(
                f"{environment_yml} lists {conda_name!r}, which is neither mapped to a PyPI "
                f"name in CONDA_TO_PYPI (tests/binder_lab.py) nor pinned in {constraints.name}"
            )
        if operator == "=":  # conda's `name=1.2` means 1.2.*; the pins are exact
            operator = "=="
        requirements.append(f"{name}{operator}{version}" if operator else name)
    return python, requirements


def find_python(version: str) -> str:
    """An interpreter for ``version`` (``"3.11"``): ``python3.11`` on PATH, else this one."""
    candidates = [shutil.which(f"python{version}") if version else None, sys.executable]
    for candidate in filter(None, candidates):
        found = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not version or found == version:
            return candidate
    pytest.fail(f"binder/environment.yml pins python={version}; no python{version} found")


def outer_environment() -> dict[str, str]:
    """This process's environment without anything pointing at another Python environment
    or Jupyter configuration (the machine's pip settings, proxy and thread limits stay)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER_", "CONDA_", "PYTEST_"))
        and key
        not in {
            "VIRTUAL_ENV",
            "PYTHONPATH",
            "PYTHONHOME",
            "PYTHONSTARTUP",
            "PYTHONUSERBASE",
            "IPYTHONDIR",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
            "XDG_RUNTIME_DIR",
            "MPLCONFIGDIR",
        }
    }
    other_bins = {
        str(Path(p) / "bin") for p in {sys.prefix, os.environ.get("VIRTUAL_ENV", "")} if p
    }
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p not in other_bins]
    env["PATH"] = os.pathsep.join(path)
    return env


@dataclass
class BinderBuild:
    """A Binder-like build: the repository copy, its environment and postBuild's outcome.

    repo: the clean copy (the server's root and ``HOME``, as ``REPO_DIR`` on Binder).
    venv: the fresh environment (Binder's ``NB_PYTHON_PREFIX``).
    env: the environment postBuild and ``binder/start`` run with.
    post_build: postBuild's exit status and output (stdout and stderr together).
    times: wall seconds per step.
    """

    repo: Path
    venv: Path
    env: dict[str, str]
    post_build: subprocess.CompletedProcess[str]
    times: dict[str, float] = field(default_factory=dict)

    def require_post_build(self) -> None:
        if self.post_build.returncode != 0:
            pytest.fail(
                f"binder/postBuild exited with {self.post_build.returncode}:\n"
                f"{self.post_build.stdout[-5000:]}"
            )

    def start(
        self, *command: str, cwd: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``binder/start COMMAND...`` as Binder launches anything, from ``cwd`` (the
        repository root unless given); stdout and stderr are captured separately."""
        return subprocess.run(
            [str(self.repo / "binder" / "start"), *command],
            cwd=cwd or self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def timing(self) -> str:
        return ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.times.items())


def _run(command: list[str], step: str, **kwargs) -> None:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        pytest.fail(
            f"{step} failed ({done.returncode}): {' '.join(command)}\n"
            f"{(done.stdout + done.stderr)[-5000:]}"
        )


def build_binder(tmp: Path) -> BinderBuild:
    """Copy the repository, install environment.yml's packages into a fresh virtual
    environment and run binder/postBuild, as repo2docker would; everything under ``tmp``."""
    times: dict[str, float] = {}
    started = time.monotonic()
    repo = clean_copy(tmp / "repo")
    times["copy"] = time.monotonic() - started

    python_version, requirements = pip_requirements(
        repo / "binder" / "environment.yml", repo / "constraints.txt"
    )
    venv, outer = tmp / "venv", outer_environment()
    started = time.monotonic()
    _run([find_python(python_version), "-m", "venv", str(venv)], "creating the venv", env=outer)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # environment.yml's `pip` entry: a current pip, as conda-forge's.
    _run([*pip, "--upgrade", "pip"], "upgrading pip", env=outer)
    _run(
        [*pip, "-c", str(repo / "constraints.txt"), *requirements],
        "installing binder/environment.yml's packages",
        env=outer,
        cwd=tmp,
        timeout=INSTALL_TIMEOUT,
    )
    times["venv install"] = time.monotonic() - started

    env = outer | {
        "HOME": str(repo),
        "REPO_DIR": str(repo),
        "NB_PYTHON_PREFIX": str(venv),
        "KERNEL_PYTHON_PREFIX": str(venv),
        "VIRTUAL_ENV": str(venv),
        # As in repo2docker's Dockerfile: the user's and the repository's ~/.local/bin,
        # then the notebook environment.
        "PATH": os.pathsep.join([str(repo / ".local" / "bin"), str(venv / "bin"), outer["PATH"]]),
        "PYTHONUNBUFFERED": "1",
        "JUPYTER_CONFIG_DIR": str(repo / ".jupyter"),
        "JUPYTER_DATA_DIR": str(repo / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(repo / ".local" / "share" / "jupyter" / "runtime"),
        "DLKIT_QUICK": "1",
    }
    started = time.monotonic()
    post_build = subprocess.run(  # the Dockerfile's `RUN chmod +x ...` and `RUN ./binder/postBuild`
        ["sh", "-c", "chmod +x binder/postBuild && ./binder/postBuild"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
    )
    times["postBuild"] = time.monotonic() - started
    return BinderBuild(repo=repo, venv=venv, env=env, post_build=post_build, times=times)


@contextmanager
def serve_binder(build: BinderBuild, log: Path | None = None) -> Iterator[Lab]:
    """Start JupyterLab through ``binder/start`` with repo2docker's command, from the
    repository root; yield the running server and stop it (and its kernels) on exit."""
    build.require_post_build()
    port, token = free_port(), secrets.token_hex(16)
    log = log or build.repo.parent / "binder-server.log"
    lab = Lab(
        url=f"http://127.0.0.1:{port}",
        token=token,
        log=log,
        release=build.repo / "course" / "release",
        release_path="course/release",
    )
    command = [
        str(build.repo / "binder" / "start"),
        *SERVER_COMMAND,
        "--ip=127.0.0.1",
        f"--port={port}",
        "--no-browser",
        f"--ServerApp.token={token}",
        "--ServerApp.allow_root=True",  # CI may run as root; Binder's user is not
    ]
    started = time.monotonic()
    with log.open("w") as out:
        server = subprocess.Popen(
            command, cwd=build.repo, env=build.env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_serving(server, lab, timeout=SERVER_START_TIMEOUT)
        build.times["server start"] = time.monotonic() - started
        yield lab
    finally:
        stop_server(server)


@contextmanager
def binder_lab(tmp: Path) -> Iterator[Lab]:
    """Build as Binder does under ``tmp`` (minutes: a fresh environment) and serve it."""
    build = build_binder(tmp)
    print(f"Binder build: {build.timing()}", flush=True)
    with serve_binder(build) as lab:
        print(f"Binder server: {build.times['server start']:.1f} s", flush=True)
        yield lab


def report(config: pytest.Config, line: str) -> None:
    """Show ``line`` in pytest's output even when output is captured (stdout otherwise)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # e.g. an xdist worker: goes to captured stdout
        print(line, flush=True)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def binder_fixtures(scope: str = "module") -> tuple[Callable, Callable]:
    """Two fixtures sharing one build per ``scope``: ``binder_build`` (a
    :class:`BinderBuild`) and ``binder_server`` (a running :class:`labs.Lab`). Use:

        binder_build, binder_server = binder_fixtures()  # at a test module's top level
    """

    @pytest.fixture(scope=scope, name="binder_build")
    def build_fixture(
        tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
    ) -> BinderBuild:
        build = build_binder(tmp_path_factory.mktemp("binder"))
        report(pytestconfig, f"\nBinder build without Docker: {build.timing()}")
        return build

    @pytest.fixture(scope=scope, name="binder_server")
    def server_fixture(binder_build: BinderBuild, pytestconfig: pytest.Config) -> Iterator[Lab]:
        with serve_binder(binder_build) as lab:
            seconds = binder_build.times["server start"]
            report(pytestconfig, f"\nBinder server through binder/start: {seconds:.1f} s")
            yield lab

    return build_fixture, server_fixture


def json_from(done: subprocess.CompletedProcess[str]) -> dict:
    """The JSON object a ``python -c`` run printed last; fail with its output otherwise."""
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(f"exit {done.returncode}; stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
