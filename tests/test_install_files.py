"""The files that install the project agree with each other and with the README."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch-cpu": "torch"}  # conda-forge name -> PyPI name


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[name.lower()] = version
    return pins


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_dependency_is_pinned_and_admitted_by_its_range() -> None:
    pins, project = _pins(), _pyproject()["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra if not r.startswith("dlkit")]
    for req in requirements:
        name = req.name.lower()
        assert name in pins, f"{name} is a dependency but constraints.txt does not pin it"
        assert req.specifier.contains(pins[name]), f"pin {name}=={pins[name]} is outside {req}"


def test_torch_is_the_cpu_build_pin() -> None:
    # An open range would pull a multi-GB CUDA build on a CPU machine.
    assert _pins()["torch"] == "2.13.0"


def test_conda_environment_uses_the_same_pins() -> None:
    pins = _pins()
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"^\s*- python=3\.11$", text, re.M)
    conda = dict(re.findall(r"^\s*- ([a-z0-9-]+)=([0-9][^\s=]*)$", text, re.M))
    conda.pop("python")
    assert "pytorch-cpu" in conda, "environment.yml must install CPU PyTorch (pytorch-cpu)"
    for name, version in conda.items():
        pypi = CONDA_NAMES.get(name, name)
        assert pins.get(pypi) == version, (
            f"environment.yml pins {name}={version}, constraints {pins.get(pypi)}"
        )


LEARNER_CONFIG = REPO / "learner_config"
INSTRUCTOR_PLUGINS = ["formgrader", "create-assignment", "course-list", "assignment-list"]
INSTRUCTOR_SERVER_EXTENSIONS = ["formgrader", "assignment_list", "course_list"]


def test_binder_and_tasks_serve_the_same_learner_config() -> None:
    assert (REPO / "binder" / "environment.yml").resolve() == (REPO / "environment.yml").resolve()
    post_build = (REPO / "binder" / "postBuild").read_text()
    first_command = next(
        line for line in post_build.splitlines() if line and not line.startswith("#")
    )
    assert first_command.startswith("set -e")
    assert "dlkit release" in post_build
    start = (REPO / "binder" / "start").read_text()
    commands = [line for line in start.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[0].startswith("set -e") and commands[-1] == 'exec "$@"'
    assert 'JUPYTER_CONFIG_PATH="$repo/learner_config' in start
    tasks = (REPO / "tasks.py").read_text()
    assert 'LEARNER_CONFIG = ROOT / "learner_config"' in tasks


def _learner_jupyter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Jupyter's config path as binder/start and tasks.py set it, with empty user folders."""
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(LEARNER_CONFIG))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.chdir(tmp_path)


def test_learner_config_hides_the_instructor_tools_and_keeps_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read the way jupyterlab_server and jupyter_server read them, over this environment's
    # own config (which enables every nbgrader extension).
    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager
    from jupyterlab_server.config import get_page_config

    _learner_jupyter(monkeypatch, tmp_path)
    disabled = get_page_config([])["disabledExtensions"]
    for plugin in INSTRUCTOR_PLUGINS:
        assert f"@jupyter/nbgrader:{plugin}" in disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled, "keep the Validate button"
    manager = ExtensionConfigManager(read_config_path=jupyter_config_path())
    extensions = manager.get_jpserver_extensions()
    for name in INSTRUCTOR_SERVER_EXTENSIONS:
        assert extensions.get(f"nbgrader.server_extensions.{name}") is False
    assert extensions.get("nbgrader.server_extensions.validate_assignment") is not False


def test_learner_config_silences_news_and_update_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyterlab_server.settings_utils import _get_overrides

    _learner_jupyter(monkeypatch, tmp_path)
    overrides, error = _get_overrides(str(tmp_path / "no-app-settings"))
    assert not error
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
    lab = json.loads((LEARNER_CONFIG / "jupyter_lab_config.json").read_text())["LabApp"]
    assert lab["news_url"] is None
    assert lab["check_for_updates_class"] == "jupyterlab.NeverCheckForUpdate"


def test_nbgrader_plugins_hidden_for_learners_exist() -> None:
    import nbgrader

    lab = Path(nbgrader.__file__).parents[4] / "share/jupyter/labextensions/@jupyter/nbgrader"
    if not lab.is_dir():
        pytest.skip("nbgrader's lab extension is not installed in this environment")
    shipped = "".join(p.read_text(errors="ignore") for p in lab.rglob("*.js"))
    page = json.loads((LEARNER_CONFIG / "labconfig" / "page_config.json").read_text())
    for name in page["disabledExtensions"]:
        assert f'"{name}"' in shipped, f"no nbgrader lab plugin named {name}"


def test_learner_config_loads_the_course_nbgrader_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Validate button must see the course's timeout and stderr-as-stdout kernel
    # client from any folder the server starts in (Binder starts in the repository root).
    from nbgrader.apps import NbGrader

    _learner_jupyter(monkeypatch, tmp_path)
    app = NbGrader()
    app.load_config_file()
    assert app.config.Execute.timeout == 300
    client = app.config.AsyncKernelManager.client_factory
    assert client == "dlkit.instructor.stderr_outputs.StdoutKernelClient"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "python3 tasks.py test"
    assert f"\n{command}" in readme, "README must show the test command on its own line"
    assert re.search(rf"^{re.escape(command)}\s*$", ci, re.M), (
        ".ci/run must call the README's test command"
    )
    assert "python3 tasks.py course" in readme
