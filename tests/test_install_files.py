"""The files that install the project agree with each other and with the README."""

from __future__ import annotations

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


def test_binder_starts_safe_and_hides_instructor_tools() -> None:
    assert (REPO / "binder" / "environment.yml").resolve() == (REPO / "environment.yml").resolve()
    post_build = (REPO / "binder" / "postBuild").read_text()
    first_command = next(
        line for line in post_build.splitlines() if line and not line.startswith("#")
    )
    assert first_command.startswith("set -e")
    for plugin in ("formgrader", "create-assignment"):
        assert plugin in post_build
    assert "validate" not in post_build.split("load_subconfig")[0], "keep the Validate button"
    assert "dlkit release" in post_build


def test_nbgrader_plugins_named_in_binder_exist() -> None:
    import nbgrader

    lab = Path(nbgrader.__file__).parents[4] / "share/jupyter/labextensions/@jupyter/nbgrader"
    if not lab.is_dir():
        pytest.skip("nbgrader's lab extension is not installed in this environment")
    shipped = "".join(p.read_text(errors="ignore") for p in lab.rglob("*.js"))
    listed = re.search(r"for plugin in ([a-z -]+); do", (REPO / "binder/postBuild").read_text())
    assert listed, "postBuild should disable nbgrader's instructor plugins in one loop"
    for name in listed[1].split():
        assert f"@jupyter/nbgrader:{name}" in shipped, f"no nbgrader lab plugin named {name}"


def test_binder_config_pointer_loads_the_course_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # postBuild writes this pointer into a Jupyter config folder; the Validate button
    # must then see the course's timeout and warning filter from any working folder.
    from nbgrader.apps import NbGrader

    config_dir, elsewhere = tmp_path / "etc-jupyter", tmp_path / "home"
    config_dir.mkdir()
    elsewhere.mkdir()
    course_config = str(REPO / "course" / "nbgrader_config.py")
    (config_dir / "nbgrader_config.py").write_text(f"load_subconfig({course_config!r})\n")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(config_dir))
    monkeypatch.chdir(elsewhere)
    app = NbGrader()
    app.load_config_file()
    assert app.config.Execute.timeout == 300
    assert app.config.IgnorePattern.enabled is True


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "python3 tasks.py test"
    assert f"\n{command}" in readme, "README must show the test command on its own line"
    assert re.search(rf"^{re.escape(command)}\s*$", ci, re.M), (
        ".ci/run must call the README's test command"
    )
    assert "python3 tasks.py course" in readme
