"""A learner's JupyterLab, checked in a real browser: the student notebook runs and shows
its ipywidgets slider, and nbgrader's Validate button passes a solved notebook and fails
the blank student version.

Needs Chromium (Debian's ``chromium`` package; set ``DLKIT_CHROMIUM`` to use another
binary) and the ``playwright`` package; skips without either. Playwright's own browser
download is not used. Everything runs on 127.0.0.1; a failing test saves a screenshot.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dlkit.instructor.course import Course

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path(os.environ.get("DLKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-proxy-server",  # 127.0.0.1 only, whatever the environment's proxy says
]
CHAPTER = "00_welcome"
STUDENT = f"{CHAPTER}/{CHAPTER}.ipynb"  # paths relative to the server's root, release/
SOLUTION = f"solution_copy/{CHAPTER}.ipynb"
KERNEL_TIMEOUT_MS = 120_000  # a kernel importing torch, or nbgrader running a notebook

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DLKIT_CHROMIUM)",
    ),
]
playwright = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)
expect = playwright.expect


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server for a fresh course: its address, token and log."""

    url: str
    token: str
    log: Path

    def notebook_url(self, path: str, workspace: str) -> str:
        # A workspace per tab, so no tab restores notebooks that another tab opened.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(server: subprocess.Popen, lab: Lab, timeout: float = 60) -> None:
    """Poll the server's REST API until it answers; fail early if the server exits."""
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"JupyterLab exited with {server.returncode}:\n{lab.log.read_text()[-3000:]}"
            )
        try:
            with no_proxy.open(f"{lab.url}/api/status?token={lab.token}", timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{lab.log.read_text()[-3000:]}")


def quiet_lab_settings(settings_dir: Path) -> None:
    """User settings that stop JupyterLab from asking about news and updates (a popup
    over the notebook on first start)."""
    notification = settings_dir / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    settings = {"fetchNews": "false", "checkForUpdates": False}
    (notification / "notification.jupyterlab-settings").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def lab(course: Course, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A fresh course with the student version generated, served as a learner serves it:
    ``jupyter lab`` started in the course root (so Validate reads its nbgrader_config.py)
    and showing release/. release/solution_copy/ holds the instructor's solved notebook."""
    root = tmp_path_factory.mktemp("course")
    student_course = course.copy_to(root, [CHAPTER])
    student_course.generate([CHAPTER])
    solution = student_course.release / SOLUTION
    solution.parent.mkdir()
    shutil.copy2(course.source_notebook(CHAPTER), solution)

    state = tmp_path_factory.mktemp("jupyterlab")  # settings and workspaces, not the learner's
    quiet_lab_settings(state / "settings")
    lab = Lab(url=f"http://127.0.0.1:{free_port()}", token=secrets.token_hex(16), log=state / "log")
    command = [
        *(sys.executable, "-m", "jupyter", "lab", "--no-browser"),
        f"--ServerApp.root_dir={student_course.release}",
        f"--ServerApp.token={lab.token}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={lab.url.rsplit(':', 1)[1]}",
        "--ServerApp.port_retries=0",  # fail rather than serve on another port
        "--ServerApp.allow_root=True",  # containers and CI often run as root
        "--LabApp.news_url=None",  # no requests to the internet
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(state / "runtime")}  # no files left in ~
    with lab.log.open("w") as log:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(server, lab)
            yield lab
        finally:
            server.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab with its own cookies."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


@contextmanager
def screenshot_on_failure(page: Page, tmp_path: Path, lab: Lab) -> Iterator[None]:
    """On failure, save what the browser showed and add it and the server log to the report."""
    try:
        yield
    except Exception as error:
        shot = tmp_path / "failure.png"
        try:
            page.screenshot(path=shot, timeout=10_000)
        except playwright.Error as screenshot_error:  # keep the original failure
            shot = Path(f"none ({screenshot_error.message.splitlines()[0]})")
        error.add_note(f"screenshot: {shot}\nJupyterLab log {lab.log}, last lines:")
        error.add_note("\n".join(lab.log.read_text().splitlines()[-30:]))
        raise


def open_notebook(page: Page, lab: Lab, path: str, workspace: str) -> Locator:
    """Open ``path`` in JupyterLab and wait for its kernel to be idle; return the notebook panel."""
    page.goto(lab.notebook_url(path, workspace))
    # The status bar reads "Python 3 (ipykernel) | Idle" once the kernel is connected. The
    # toolbar's execution indicator says idle earlier, while "Run All" would still skip every
    # cell for want of a kernel.
    status_bar = page.locator("#jp-main-statusbar")
    expect(status_bar.get_by_text(re.compile(r"\| Idle$"))).to_be_visible(timeout=60_000)
    return page.locator(".jp-NotebookPanel")


def validate(page: Page, notebook: Locator) -> Locator:
    """Click nbgrader's Validate button; return the message of the dialog it opens."""
    notebook.locator(".jp-Toolbar .validate-button").click()
    dialog = page.locator(".jp-Dialog")
    message = dialog.locator("#validation-message")
    expect(message).to_be_visible(timeout=KERNEL_TIMEOUT_MS)  # nbgrader runs the whole notebook
    return message


def test_student_notebook_runs_and_its_slider_redraws_the_plot(
    lab: Lab, page: Page, tmp_path: Path
) -> None:
    with screenshot_on_failure(page, tmp_path, lab):
        notebook = open_notebook(page, lab, STUDENT, workspace="student")
        # The learner's Validate button is in the notebook toolbar.
        expect(notebook.locator(".jp-Toolbar .validate-button")).to_have_text("Validate")

        page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        slider = notebook.locator(".widget-slider")
        expect(slider).to_be_attached(timeout=KERNEL_TIMEOUT_MS)
        slider.scroll_into_view_if_needed()  # cells far below the fold are not laid out
        expect(slider).to_be_visible()

        # Moving the slider makes the kernel redraw the plot: the widget is live, not a picture.
        explorer = notebook.locator(".widget-vbox:has(.widget-slider)")
        plot = explorer.locator(".jp-OutputArea-output img")
        before = plot.get_attribute("src")
        slider.locator(".noUi-handle").press("End")
        expect(explorer.locator(".widget-readout")).to_have_text("1.20")
        expect(plot).not_to_have_attribute("src", before or "", timeout=30_000)


def test_validate_passes_the_solved_notebook(lab: Lab, page: Page, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path, lab):
        notebook = open_notebook(page, lab, SOLUTION, workspace="solution")
        message = validate(page, notebook)
        expect(message).to_contain_class("validation-success")
        expect(message).to_have_text("Success! Your notebook passes all the tests.")


def test_validate_fails_the_blank_student_notebook(lab: Lab, page: Page, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path, lab):
        notebook = open_notebook(page, lab, STUDENT, workspace="blank")
        message = validate(page, notebook)
        expect(message).to_contain_class("validation-failed")
        expect(message).to_contain_text("NotImplementedError")
