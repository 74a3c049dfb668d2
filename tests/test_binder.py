"""Binder, proven without Docker: repo2docker accepts ``binder/`` and plans the build we
expect, and that build, reproduced with pip under the same pins (tests/binder_lab.py),
runs postBuild, serves the student notebooks through ``binder/start`` and gives kernels
dlkit and the course's nbgrader configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from binder_lab import (
    SERVER_COMMAND,
    BinderBuild,
    binder_fixtures,
    clean_copy,
    constraint_pins,
    json_from,
)
from labs import Lab

binder_build, binder_server = binder_fixtures(scope="module")
CHAPTER = re.compile(r"^\d\d_[a-z0-9_]+$")
STUDENT = "00_welcome/00_welcome.ipynb"


def _steps_in_order(text: str, steps: list[str]) -> None:
    at = 0
    for step in steps:
        found = text.find(step, at)
        assert found >= 0, f"missing (or out of order) after offset {at}: {step!r}\n{text}"
        at = found + len(step)


def test_repo2docker_plans_the_binder_build(tmp_path: Path) -> None:
    repo = clean_copy(tmp_path / "repo")
    done = subprocess.run(
        [sys.executable, "-m", "repo2docker", "--no-build", "--debug", str(repo)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # The conda buildpack, which read python=3.11 from binder/environment.yml and so
    # installs its Python 3.11 base environment (a lock file) before environment.yml.
    assert "Building conda environment for python=3.11" in output, output
    dockerfile = output[output.index("FROM ") :]
    assert " /tmp/env/environment.lock\n" in dockerfile, dockerfile
    for other in ("requirements.txt", "Pipfile", "setup.py", "apt.txt", "install.R"):
        assert other not in dockerfile, f"repo2docker also picked up {other}:\n{dockerfile}"
    _steps_in_order(
        dockerfile,
        [
            # environment.yml (a symlink to ../environment.yml) installed into the env...
            "COPY --chown=0:0 src/binder/environment.yml ${REPO_DIR}/binder/environment.yml",
            'env update -p ${NB_PYTHON_PREFIX} --file "binder/environment.yml"',
            # ...then the repository, then postBuild as the notebook user from its root...
            "COPY --chown=0:0 src/ ${REPO_DIR}/",
            "USER ${NB_USER}",
            "RUN ./binder/postBuild",
            # ...and binder/start wrapped around every command the container runs.
            'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"',
            'ENTRYPOINT ["/usr/local/bin/repo2docker-entrypoint"]',
            'CMD ["jupyter", "notebook", "--ip", "0.0.0.0"]',
        ],
    )
    assert SERVER_COMMAND[:2] == ["jupyter", "notebook"], "binder_lab must mirror the CMD"


@pytest.mark.slow
def test_post_build_succeeds_in_a_clean_environment(binder_build: BinderBuild) -> None:
    print(binder_build.post_build.stdout[-5000:])
    assert binder_build.post_build.returncode == 0, "binder/postBuild failed (output above)"


@pytest.mark.slow
def test_every_chapter_has_its_student_notebook(binder_build: BinderBuild) -> None:
    binder_build.require_post_build()
    source = binder_build.repo / "course" / "source"
    release = binder_build.repo / "course" / "release"
    chapters = sorted(p.name for p in source.iterdir() if p.is_dir() and CHAPTER.match(p.name))
    assert chapters, f"no chapters in {source}"
    for chapter in chapters:
        notebooks = sorted(p.name for p in (source / chapter).glob("*.ipynb"))
        assert notebooks, f"{chapter} has no notebook"
        for name in notebooks:
            student = release / chapter / name
            assert student.is_file(), f"postBuild did not release {chapter}/{name}"
            text = student.read_text()
            assert "BEGIN SOLUTION" not in text, f"{chapter}/{name} still holds solutions"
            json.loads(text)


@pytest.mark.slow
def test_server_started_through_binder_start_opens_the_student_notebook(
    binder_server: Lab,
) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(path: str) -> tuple[int, bytes]:
        with opener.open(f"{binder_server.url}{path}?token={binder_server.token}", timeout=30) as r:
            return r.status, r.read()

    status, body = get("/api/status")
    assert status == 200, body
    status, body = get(f"/api/contents/{binder_server.release_path}/{STUDENT}")
    notebook = json.loads(body)
    assert notebook["type"] == "notebook", notebook.get("type")
    assert notebook["content"]["cells"], "the student notebook has no cells"
    status, body = get("/lab")  # repo2docker's default_url, served next to Notebook 7
    assert status == 200 and b"JupyterLab" in body, body[:500]


@pytest.mark.slow
def test_kernel_sees_dlkit_and_the_course_nbgrader_config(binder_build: BinderBuild) -> None:
    binder_build.require_post_build()
    # Where a kernel for the student notebook runs: its folder, through binder/start.
    folder = binder_build.repo / "course" / "release" / Path(STUDENT).parent
    probe = """
import json, sys
import dlkit, nbgrader, torch
from nbgrader.apps import NbGrader
app = NbGrader()
app.load_config_file()
print(json.dumps({
    "prefix": sys.prefix,
    "dlkit": dlkit.__file__,
    "torch": torch.__version__,
    "nbgrader": nbgrader.__version__,
    "timeout": app.config.Execute.timeout,
    "kernel_client": app.config.AsyncKernelManager.client_factory,
}))
"""
    found = json_from(binder_build.start("python", "-c", probe, cwd=folder))
    pins = constraint_pins(binder_build.repo / "constraints.txt")
    assert Path(found["prefix"]).resolve() == binder_build.venv.resolve(), found
    assert Path(found["dlkit"]).resolve().is_relative_to(binder_build.repo.resolve()), found
    assert found["torch"].split("+")[0] == pins["torch"], found
    assert found["nbgrader"] == pins["nbgrader"], found
    # learner_config/nbgrader_config.py, on the config path binder/start sets: the Validate
    # button's timeout and the kernel client that records stderr as stdout.
    assert found["timeout"] == 300, found
    assert found["kernel_client"] == "dlkit.instructor.stderr_outputs.StdoutKernelClient", found
