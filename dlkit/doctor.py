"""Is this installation ready for the course? (``dlkit doctor`` and chapter 00.)

Each check reports ``ok``, ``warn`` (works, but something is worth knowing) or
``FAIL`` (the course will not work until it is fixed, with the fix in the message).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "run the README's set-up command (it installs with constraints.txt)"

# (distribution name, import name): what the notebooks need, then what the course tools need.
LEARNER_PACKAGES = [
    ("numpy", "numpy"),
    ("torch", "torch"),
    ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"),
    ("ipywidgets", "ipywidgets"),
    ("scikit-learn", "sklearn"),
]
COURSE_PACKAGES = [
    ("nbgrader", "nbgrader"),
    ("jupyterlab", "jupyterlab"),
    ("ipykernel", "ipykernel"),
]
LAB_EXTENSIONS = ["@jupyter/nbgrader", "@jupyter-widgets/jupyterlab-manager"]
# nbgrader's instructor tools: the learner's JupyterLab (learner_config/) hides them,
# `python3 tasks.py instructor` shows them.
INSTRUCTOR_PLUGINS = ["formgrader", "create-assignment", "course-list", "assignment-list"]
INSTRUCTOR_SERVER_EXTENSIONS = ["formgrader", "assignment_list", "course_list"]
LEARNER_CONFIG = "learner_config"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "FAIL"
    detail: str


def _package(dist: str, module: str) -> Check:
    try:
        importlib.import_module(module)
    except Exception as err:  # an install can be broken in many ways; report any
        return Check(
            dist, "FAIL", f"cannot import {module} ({type(err).__name__}: {err}); {INSTALL_HINT}"
        )
    return Check(dist, "ok", importlib.metadata.version(dist))


def environment_checks() -> list[Check]:
    """Python, the packages the notebooks import, torch's build, threads and the device."""
    checks = [
        Check(
            "python",
            "ok" if sys.version_info >= (3, 11) else "FAIL",
            f"{platform.python_version()} at {sys.executable}",
        )
    ]
    checks += [_package(dist, module) for dist, module in LEARNER_PACKAGES]
    if any(c.status == "FAIL" for c in checks if c.name == "torch"):
        return checks
    import torch

    try:  # dlkit.train imports the other learner packages: a broken one is reported above
        from dlkit.train.device import describe_device, get_device
    except ImportError as err:
        checks.append(Check("device", "FAIL", f"dlkit.train does not import: {err}"))
        return checks

    cuda = torch.version.cuda
    checks.append(Check("torch build", "ok", f"CUDA {cuda}" if cuda else "CPU only"))
    checks.append(
        Check(
            "threads", "ok", f"torch uses {torch.get_num_threads()} of {os.cpu_count()} CPU cores"
        )
    )
    try:
        device = get_device("auto")
        x = torch.ones(64, 64, device=device)
        ok = float((x @ x).sum().item()) == 64.0**3
        checks.append(
            Check(
                "device",
                "ok" if ok else "FAIL",
                describe_device(device) + ("" if ok else ": wrong result"),
            )
        )
    except Exception as err:
        checks.append(Check("device", "FAIL", f"{type(err).__name__}: {err}"))
    return checks


def _kernel_check() -> Check:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return Check("kernel", "FAIL", f"no python3 Jupyter kernel; {INSTALL_HINT}")
    exe = spec.argv[0]
    # jupyter_client runs a kernel named plain "python" with the interpreter that starts it.
    if exe in {"python", "python3"} or Path(exe).resolve() == Path(sys.executable).resolve():
        return Check("kernel", "ok", f"python3 kernel runs {sys.executable}")
    return Check(
        "kernel",
        "FAIL",
        f"the python3 kernel runs {exe}, not {sys.executable}: notebooks will not find dlkit",
    )


def _lab_extensions() -> Check:
    from jupyter_core.paths import jupyter_path

    roots = [Path(p) for p in jupyter_path("labextensions")]
    missing = [
        e for e in LAB_EXTENSIONS if not any((r / e / "package.json").is_file() for r in roots)
    ]
    if missing:
        return Check("lab extensions", "FAIL", f"missing {', '.join(missing)}; {INSTALL_HINT}")
    return Check("lab extensions", "ok", ", ".join(LAB_EXTENSIONS))


def _learner_view(course_root: Path) -> Check:
    """Does learner_config/ (beside the course) hide every instructor tool, and is the
    formgrader on where the instructor needs it (this environment, without that folder)?"""
    import json

    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager

    folder = course_root.resolve().parent / LEARNER_CONFIG
    try:
        page = json.loads((folder / "labconfig" / "page_config.json").read_text())
        server = json.loads((folder / "jupyter_server_config.json").read_text())
    except (OSError, ValueError) as err:
        return Check("learner view", "warn", f"no usable {folder}: {err}")
    hidden = page.get("disabledExtensions", {})
    switched_off = server.get("ServerApp", {}).get("jpserver_extensions", {})
    shown = [p for p in INSTRUCTOR_PLUGINS if hidden.get(f"@jupyter/nbgrader:{p}") is not True]
    shown += [
        e
        for e in INSTRUCTOR_SERVER_EXTENSIONS
        if switched_off.get(f"nbgrader.server_extensions.{e}") is not False
    ]
    if shown:
        return Check("learner view", "warn", f"{folder} leaves on: {', '.join(shown)}")
    paths = [p for p in jupyter_config_path() if Path(p).resolve() != folder]
    enabled = ExtensionConfigManager(read_config_path=paths).get_jpserver_extensions()
    if not enabled.get("nbgrader.server_extensions.formgrader"):
        return Check(
            "learner view",
            "warn",
            "nbgrader's formgrader server extension is disabled in this environment: "
            "`python3 tasks.py instructor` will not show it "
            "(jupyter server extension enable nbgrader.server_extensions.formgrader)",
        )
    here = "; this environment serves it" if str(folder) in jupyter_config_path() else ""
    return Check(
        "learner view",
        "ok",
        f"{LEARNER_CONFIG}/ hides nbgrader's instructor tools{here}; "
        "`python3 tasks.py instructor` opens them",
    )


def course_checks(course_root: Path) -> list[Check]:
    """The Jupyter side (packages, kernel, extensions) and the course folder itself."""
    checks = [_package(dist, module) for dist, module in COURSE_PACKAGES]
    if any(c.status == "FAIL" for c in checks):
        return checks
    checks += [_kernel_check(), _lab_extensions(), _learner_view(course_root)]

    from dlkit.instructor.course import Course

    course = Course(course_root)
    chapters = course.chapters()
    checks.append(
        Check(
            "course",
            "ok" if chapters else "FAIL",
            f"{course_root}: {len(chapters)} chapter(s)"
            if chapters
            else f"{course_root} has no chapters",
        )
    )
    released = [c for c in chapters if course.release_notebook(c).is_file()]
    checks.append(
        Check(
            "student notebooks",
            "ok" if len(released) == len(chapters) else "warn",
            f"{len(released)} of {len(chapters)} chapters released"
            + ("" if len(released) == len(chapters) else "; run `dlkit release`"),
        )
    )
    return checks


def format_checks(checks: list[Check]) -> str:
    """One aligned line per check."""
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{c.status:<4}  {c.name:<{width}}  {c.detail}" for c in checks)


def healthy(checks: list[Check]) -> bool:
    return not any(c.status == "FAIL" for c in checks)
