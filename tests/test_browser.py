"""Every chapter in a learner's JupyterLab, in a real browser.

For each chapter in course/source (found automatically), in JupyterLab started the way the
README starts it (``python3 tasks.py course``, in quick mode):

- the student notebook: Run All stops at the first exercise's ``NotImplementedError``
  with no error before it; no instructor tool or news pop-up is in sight; Validate fails
  it and names ``NotImplementedError``;
- the solved notebook (the instructor's source, copied beside the student versions):
  Run All ends without an error; every ipywidgets explorer renders, and changing each of
  its controls changes what it shows; Validate passes it; a screenshot of the whole
  notebook goes to the artifacts folder.

Artifacts: ``build/artifacts/browser/`` (or ``$DLKIT_ARTIFACTS/browser/``) gets
``<chapter>.png``, a screenshot per failure, and ``results.json`` with each chapter's
outcome and timings. Servers come from :data:`LAUNCHERS` (name -> context manager yielding
a :class:`labs.Lab`); each test runs against each launcher.

Needs Chromium (Debian's ``chromium`` package; set ``DLKIT_CHROMIUM`` to use another
binary) and the ``playwright`` package; skips without either. Playwright's own browser
download is not used. Everything runs on 127.0.0.1.
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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from binder_lab import binder_lab
from labs import Lab, free_port, shut_down_kernels, stop_server, wait_until_serving

from dlkit.instructor.course import Course

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = Course(REPO / "course").chapters()  # every NN_topic folder in course/source
ARTIFACTS = Path(os.environ.get("DLKIT_ARTIFACTS") or REPO / "build" / "artifacts") / "browser"
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
# Generous limits: a kernel importing torch, a whole chapter in quick mode on 2 busy cores,
# nbgrader running the whole notebook again for Validate.
KERNEL_READY_MS = 120_000
RUN_ALL_MS = 600_000
VALIDATE_MS = 600_000
WIDGET_MS = 60_000  # one explorer redrawing after a change
NO_EFFECT_MS = 20_000  # a control that changed nothing in this long has no visible effect
SERVER_START_S = 600  # tasks.py releases every chapter first (nbgrader, a few s each)

ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
WIDGET_OUTPUT = ".jp-OutputArea-output:has(> .jupyter-widgets)"  # a rendered widget view
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# Words only nbgrader's instructor tools put on screen (menus, sidebars, launcher, palette).
INSTRUCTOR_WORDS = re.compile(r"Formgrader|Create Assignment|Assignment List|Course List|Nbgrader")

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


# --- launchers: each starts a learner's server on a fresh course and yields its Lab ---------


@contextmanager
def tasks_course(tmp: Path) -> Iterator[Lab]:
    """``python3 tasks.py course --no-browser ...`` as the README runs it, on a fresh copy
    of the course (``DLKIT_COURSE``) in the .venv the test suite runs in
    (``DLKIT_SKIP_INSTALL``), with empty Jupyter user folders (a first start, and nothing
    written to the real home) and ``DLKIT_QUICK=1`` for the kernels."""
    if not (REPO / ".venv" / "bin" / "jupyter").is_file():
        pytest.skip("tasks.py serves JupyterLab from .venv, which has no jupyter here")
    course = Course(REPO / "course").copy_to(tmp / "course", CHAPTERS)
    port, token = free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}", token, tmp / "jupyterlab.log", course.release)
    user = tmp / "home"
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env |= {
        "DLKIT_COURSE": str(course.root),
        "DLKIT_SKIP_INSTALL": "1",
        "DLKIT_QUICK": "1",
        "JUPYTER_CONFIG_DIR": str(user / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(user / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(user / "jupyter-runtime"),
        "IPYTHONDIR": str(user / "ipython"),
    }
    command = [
        *(sys.executable, str(REPO / "tasks.py"), "course"),
        *("--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}"),
        "--ServerApp.port_retries=0",  # fail rather than serve on another port
        f"--IdentityProvider.token={token}",
    ]
    with lab.log.open("w") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(server, lab, timeout=SERVER_START_S)
            yield lab
        finally:
            stop_server(server)


# "binder": the server binder/start launches in a Binder-like build (a fresh virtual
# environment, postBuild; tests/binder_lab.py). Learners meet the student notebooks there,
# so the student test runs on both; the solved-notebook test (widgets, Validate's success)
# runs on the tasks.py server only, since both serve the same learner_config/ and the same
# pinned packages, and running it twice would add about 10 minutes to CI.
LAUNCHERS: dict[str, Callable[[Path], AbstractContextManager[Lab]]] = {
    "binder": binder_lab,
    "course": tasks_course,
}
SOLVED_LAUNCHERS = {"course"}


@pytest.fixture(scope="module", params=sorted(LAUNCHERS))
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with LAUNCHERS[request.param](tmp_path_factory.mktemp(request.param)) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, lab: Lab) -> Iterator[Page]:
    """A fresh tab with its own cookies; its kernels are shut down afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()
    shut_down_kernels(lab)


# --- results.json: outcome and timings per launcher, chapter and notebook ------------------

RESULTS: dict[str, Any] = {}


@contextmanager
def recorded(request: pytest.FixtureRequest, chapter: str, notebook: str) -> Iterator[dict]:
    """Time the test into results.json (rewritten after every test); yield a dict for
    the phases' times."""
    launcher = request.node.callspec.params.get("lab", "?")
    entry: dict[str, Any] = {"phases": {}}
    RESULTS.setdefault(launcher, {}).setdefault(chapter, {})[notebook] = entry
    started = time.monotonic()
    try:
        yield entry["phases"]
        entry["outcome"] = "passed"
    except BaseException as error:
        entry["outcome"] = f"failed: {str(error).splitlines()[0][:300] if str(error) else error!r}"
        raise
    finally:
        entry["seconds"] = round(time.monotonic() - started, 1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "results.json").write_text(json.dumps(RESULTS, indent=2) + "\n")


@contextmanager
def phase(phases: dict, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = round(time.monotonic() - started, 1)


@contextmanager
def screenshot_on_failure(page: Page, lab: Lab, name: str) -> Iterator[None]:
    """On failure, save what the browser showed and add it and the server log to the report."""
    try:
        yield
    except Exception as error:
        shot = ARTIFACTS / f"{name}-failure.png"
        try:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shot, timeout=10_000)
        except playwright.Error as screenshot_error:  # keep the original failure
            shot = Path(f"none ({screenshot_error.message.splitlines()[0]})")
        error.add_note(f"screenshot: {shot}\nJupyterLab log {lab.log}, last lines:")
        error.add_note("\n".join(lab.log.read_text().splitlines()[-30:]))
        raise


# --- JupyterLab, driven as a learner drives it --------------------------------------------


def open_notebook(page: Page, lab: Lab, path: str, workspace: str) -> Locator:
    """Open ``path`` in its own workspace and wait for its kernel; return the notebook panel."""
    page.goto(lab.notebook_url(path, workspace))
    wait_for_idle_kernel(page, KERNEL_READY_MS)
    return page.locator(".jp-NotebookPanel")


def wait_for_idle_kernel(page: Page, timeout_ms: int) -> None:
    # The status bar reads "Python 3 (ipykernel) | Idle" once the kernel is connected and
    # idle. (The toolbar's indicator says idle earlier, while Run All would still skip
    # every cell for want of a kernel.)
    status_bar = page.locator("#jp-main-statusbar")
    expect(status_bar.get_by_text(re.compile(r"\| Idle$"))).to_be_visible(timeout=timeout_ms)


def menu(page: Page, top: str, item: str) -> None:
    page.locator("#jp-MainMenu").get_by_role("menuitem", name=top, exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def save(page: Page, lab: Lab, path: str) -> dict:
    """Save the notebook (outputs included) and return it as nbformat JSON from disk."""
    file = lab.release / path
    before = file.stat().st_mtime_ns
    page.keyboard.press("Control+s")  # JupyterLab's Save (File > Save Notebook)
    expect(page.locator(".jp-mod-current.jp-mod-dirty")).to_have_count(0, timeout=30_000)
    deadline = time.monotonic() + 30
    while file.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.1)
    return json.loads(file.read_text())


def error_outputs(cell: dict) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o["output_type"] == "error"]


def validate(page: Page, notebook: Locator) -> Locator:
    """Click nbgrader's Validate button; return the message of the dialog it opens."""
    notebook.locator(".jp-Toolbar .validate-button").click()
    message = page.locator(".jp-Dialog #validation-message")
    expect(message).to_be_visible(timeout=VALIDATE_MS)  # nbgrader runs the whole notebook
    return message


def close_dialog(page: Page) -> None:
    page.keyboard.press("Escape")
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def expect_no_instructor_tools_or_popups(page: Page) -> None:
    """What a learner sees: no nbgrader menu, instructor sidebar or news/update toast."""
    menus = page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").all_inner_texts()
    assert "Run" in menus, menus
    tabs = [t.get_attribute("title") or "" for t in page.locator(".lm-TabBar-tab").all()]
    tabs += page.locator(".lm-TabBar-tab").all_inner_texts()
    shown = [t for t in menus + tabs if INSTRUCTOR_WORDS.search(t)]
    assert not shown, f"instructor tools visible to the learner: {shown}"
    expect(page.locator(".Toastify__toast")).to_have_count(0)


def first_exercise(notebook: dict) -> int:
    """Index of the first code cell the learner must write (nbgrader solution cell)."""
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
            return index
    raise AssertionError("the student notebook has no solution cell")


# --- widgets: every control of every explorer must change what the explorer shows ---------

# The explorer's display (plots, text and HTML in its Output and HTML widgets), hashed; ""
# while it shows nothing. Controls' own labels and readouts are not part of it.
FINGERPRINT_JS = """root => {
  const parts = [];
  for (const el of root.querySelectorAll('.widget-output, .widget-html-content')) {
    parts.push(el.textContent);
    for (const img of el.querySelectorAll('img')) parts.push(img.src);
  }
  const text = parts.join('\\u0000');
  if (!text.replace(/\\s|\\u0000/g, '')) return '';
  let hash = 5381;
  for (let i = 0; i < text.length; i++) hash = (hash * 33 + text.charCodeAt(i)) | 0;
  return text.length + ':' + hash;
}"""

# Every control of an explorer in page order, tagged data-control=INDEX; returns their
# kinds and labels. Controls drawn inside an Output widget are skipped (they are redrawn).
CONTROLS_JS = """root => {
  const kinds = [
    ['slider', '.widget-slider'], ['dropdown', '.widget-dropdown'],
    ['toggle-buttons', '.widget-toggle-buttons'], ['checkbox', '.widget-checkbox'],
    ['textarea', '.widget-textarea'], ['text', '.widget-text'], ['play', '.widget-play'],
    ['toggle', '.widget-toggle-button'], ['button', 'button.widget-button'],
  ];
  const found = [];
  for (const el of root.querySelectorAll(kinds.map(k => k[1]).join(','))) {
    if (el.closest('.widget-output') || found.some(f => f.el.contains(el))) continue;
    const kind = kinds.find(k => el.matches(k[1]))[0];
    const texts = [...el.querySelectorAll('.widget-label, .widget-label-basic'), el]
      .map(e => e.textContent.replace(/\u200b/g, '').trim()).filter(t => t);
    const label = (texts[0] || '').slice(0, 40);
    found.push({el, kind, label});
  }
  return found.map((f, i) => {
    f.el.setAttribute('data-control', String(i));
    return {kind: f.kind, label: f.label};
  });
}"""


def fingerprint(explorer: Locator) -> str:
    return explorer.evaluate(FINGERPRINT_JS)


def wait_for_change(
    page: Page, explorer: Locator, before: str, timeout_ms: int = WIDGET_MS
) -> bool:
    """Wait until the explorer shows something other than ``before`` (and not nothing)."""
    try:
        page.wait_for_function(
            f"([root, before]) => {{ const now = ({FINGERPRINT_JS})(root);"
            " return now !== '' && now !== before; }",
            arg=[explorer.element_handle(), before],
            timeout=timeout_ms,
        )
    except playwright.TimeoutError:
        return False
    return True


def settle(page: Page, explorer: Locator) -> None:
    """Wait until the kernel is idle and the explorer has stopped changing."""
    deadline = time.monotonic() + WIDGET_MS / 1000
    last = None
    while time.monotonic() < deadline:
        wait_for_idle_kernel(page, WIDGET_MS)
        now = fingerprint(explorer)
        if now and now == last:
            return
        last = now
        time.sleep(0.3)
    raise AssertionError("an explorer kept changing for two minutes")


def usable(control: Locator) -> bool:
    """Shown and enabled now (explorers hide or disable controls that do not apply)."""
    return control.evaluate(
        "e => e.checkVisibility() && !e.matches(':disabled') && !e.querySelector(':disabled')"
    )


def change(control: Locator, kind: str) -> Callable[[], None] | None:
    """Change one control a step, the way a learner would; return how to change it back
    (None for buttons, whose press cannot be undone)."""
    if kind == "slider":  # the keyboard on the (upper) handle, one step
        handle = control.locator(".noUi-handle").last
        at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        step, back = ("ArrowLeft", "ArrowRight") if at_end else ("ArrowRight", "ArrowLeft")
        handle.press(step)
        return lambda: handle.press(back)
    if kind == "dropdown":
        select = control.locator("select")
        values = select.evaluate("s => [...s.options].map(o => o.value)")
        old = select.input_value()
        select.select_option(next(v for v in values if v != old))
        return lambda: select.select_option(old)
    if kind == "toggle-buttons":
        old = control.locator("button.mod-active")
        old_value = old.get_attribute("data-value") if old.count() else None
        control.locator("button:not(.mod-active)").first.click()
        if old_value is None:
            return None
        return lambda: control.locator(f'button[data-value="{old_value}"]').click()
    if kind == "checkbox":
        box = control.locator("input[type=checkbox]")
        box.click()
        return box.click
    if kind in ("textarea", "text"):
        box = control.locator("textarea" if kind == "textarea" else "input")
        old = box.input_value()
        if box.get_attribute("type") == "number":
            number = float(old) + 1
            new = str(int(number)) if number.is_integer() else str(number)
        else:
            new = old + " and then some more words"

        def enter(value: str) -> None:
            box.fill(value)
            box.press("Enter") if kind == "text" else box.blur()  # sent on change

        enter(new)
        return lambda: enter(old)
    if kind == "play":  # play until the picture moves, then pause
        control.locator("button").first.click()
        return control.locator("button").first.click
    control.click()  # a button or a toggle button
    return control.click if kind == "toggle" else None


def exercise_widgets(page: Page, notebook: Locator, expected: int) -> list[str]:
    """Check every explorer renders and responds to each of its controls (each changed one
    step from the explorer's first state, then changed back); return one line per control."""
    explorers = notebook.locator(WIDGET_OUTPUT)
    expect(explorers).to_have_count(expected)
    done = []
    for n in range(expected):
        explorer = explorers.nth(n)
        explorer.scroll_into_view_if_needed()
        expect(explorer.locator(".jupyter-widgets").first).to_be_visible(timeout=WIDGET_MS)
        settle(page, explorer)
        controls = explorer.evaluate(CONTROLS_JS)
        waiting, responsive = list(range(len(controls))), 0
        for _ in range(2):  # a second pass for controls hidden or disabled in the first
            skipped = []
            for index in waiting:
                control = controls[index]
                what = f"explorer {n + 1}/{expected}: {control['kind']} {control['label']!r}"
                target = explorer.locator(f'[data-control="{index}"]')
                if not usable(target):
                    skipped.append(index)
                    continue
                target.scroll_into_view_if_needed()
                before = fingerprint(explorer)
                back = change(target, control["kind"])
                if not wait_for_change(page, explorer, before, NO_EFFECT_MS):
                    # A knob that the explorer's current choice does not use (a decay
                    # factor for a schedule without decay): recorded, not failed.
                    done.append(f"{what}: no visible effect in this state")
                    if back:
                        back()
                    settle(page, explorer)
                    continue
                settle(page, explorer)
                responsive += 1
                if back and control["kind"] == "play":
                    back()  # pause: it stops the changes rather than making one
                    settle(page, explorer)
                elif back:
                    changed = fingerprint(explorer)
                    back()
                    assert wait_for_change(page, explorer, changed), f"{what}: no change back"
                    settle(page, explorer)
                done.append(what)
            waiting = skipped
        for index in waiting:
            control = controls[index]
            done.append(f"explorer {n + 1}/{expected}: {control['kind']} {control['label']!r}"
                        " skipped (hidden or disabled)")  # fmt: skip
        if controls:  # (some explorers only show: no controls)
            assert responsive, f"explorer {n + 1}/{expected}: no control changes what it shows"
    return done


def screenshot_notebook(page: Page, notebook: Locator, path: Path) -> None:
    """The whole notebook in one picture: make the window as tall as the notebook
    (at most 16,000 pixels), wait for JupyterLab to lay it out, then take the picture."""
    scroller = notebook.locator(".jp-WindowedPanel-outer")
    size = page.viewport_size
    chrome = size["height"] - scroller.evaluate("e => e.clientHeight")  # menus, toolbars
    height = min(scroller.evaluate("e => e.scrollHeight") + chrome, 16_000)
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_function(
        "([e, want]) => { e.scrollTop = 0; return e.clientHeight >= want && e.scrollTop === 0; }",
        arg=[scroller.element_handle(), height - chrome - 50],
        timeout=30_000,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, timeout=60_000)
    page.set_viewport_size(size)


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_notebook_stops_at_the_first_exercise_and_fails_validate(
    lab: Lab, page: Page, chapter: str, request: pytest.FixtureRequest
) -> None:
    path = f"{chapter}/{chapter}.ipynb"
    exercise = first_exercise(json.loads((lab.release / path).read_text()))
    with (
        recorded(request, chapter, "student") as phases,
        screenshot_on_failure(page, lab, f"{chapter}-student"),
    ):
        with phase(phases, "open"):
            notebook = open_notebook(page, lab, path, workspace=f"student-{chapter}")
        expect(notebook.locator(".jp-Toolbar .validate-button")).to_have_text("Validate")
        expect_no_instructor_tools_or_popups(page)

        with phase(phases, "run_all"):
            menu(page, "Run", "Run All Cells")
            # The exercise's stub raises where its function is first called, in a later cell.
            failed = notebook.locator(ERROR_OUTPUT, has_text="NotImplementedError")
            expect(failed.first).to_be_attached(timeout=RUN_ALL_MS)
            wait_for_idle_kernel(page, RUN_ALL_MS)
        cells = save(page, lab, path)["cells"]
        errors = [(i, error_outputs(c)) for i, c in enumerate(cells) if error_outputs(c)]
        assert errors, "Run All showed no error"
        first, outputs = errors[0]
        error = outputs[0]
        where = f"cell {first}: {error['ename']}: {error['evalue']}"
        assert first >= exercise, f"an error before the first exercise (cell {exercise}): {where}"
        assert len(outputs) == 1 and error["ename"] == "NotImplementedError", where
        # ...raised by the first exercise's code: its frame is in the traceback.
        frame = f"Cell In[{cells[exercise]['execution_count']}], line"
        traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
        assert frame in traceback, f"{where} is not raised in cell {exercise}:\n{traceback}"
        later = [i for i, c in enumerate(cells[first + 1 :], first + 1) if c.get("outputs")]
        assert not later, f"Run All went on past the first error (outputs in cells {later})"
        expect_no_instructor_tools_or_popups(page)

        with phase(phases, "validate"):
            message = validate(page, notebook)
            expect(message).to_contain_class("validation-failed")
            expect(message).to_contain_text("NotImplementedError")
        close_dialog(page)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solved_notebook_runs_its_widgets_respond_and_it_passes_validate(
    lab: Lab, page: Page, chapter: str, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["lab"] not in SOLVED_LAUNCHERS:
        pytest.skip("solved notebooks are checked on the tasks.py course server (LAUNCHERS)")
    # The instructor's solved notebook, beside the student versions (as a learner's
    # finished notebook would be).
    path = f"solution_copy/{chapter}.ipynb"
    (lab.release / "solution_copy").mkdir(exist_ok=True)
    shutil.copy2(Course(REPO / "course").source_notebook(chapter), lab.release / path)
    with (
        recorded(request, chapter, "solved") as phases,
        screenshot_on_failure(page, lab, f"{chapter}-solved"),
    ):
        with phase(phases, "open"):
            notebook = open_notebook(page, lab, path, workspace=f"solved-{chapter}")
        with phase(phases, "run_all"):
            menu(page, "Run", "Run All Cells")
            # Every code cell numbered (done), or a traceback (Run All stopped there).
            page.wait_for_function(
                """() => {
                  const prompts = [...document.querySelectorAll(
                    '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')];
                  const errors = [...document.querySelectorAll(
                    '.jp-NotebookPanel .jp-OutputArea-output[data-mime-type='
                    + '"application/vnd.jupyter.stderr"]')];
                  return errors.some(e => /Traceback|Error:/.test(e.textContent))
                    || (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)));
                }""",
                timeout=RUN_ALL_MS,
            )
            wait_for_idle_kernel(page, RUN_ALL_MS)
        saved = save(page, lab, path)
        errors = [
            f"cell {i}: {o['ename']}: {o['evalue']}"
            for i, c in enumerate(saved["cells"])
            for o in error_outputs(c)
        ]
        assert not errors, f"the solved notebook shows errors: {errors}"
        unrun = [
            i
            for i, c in enumerate(saved["cells"])
            if c["cell_type"] == "code" and c["execution_count"] is None
        ]
        assert not unrun, f"Run All left code cells {unrun} unrun"

        widgets = sum(
            WIDGET_MIME in o.get("data", {}) for c in saved["cells"] for o in c.get("outputs", [])
        )
        with phase(phases, "widgets"):
            phases["controls"] = exercise_widgets(page, notebook, widgets)
        with phase(phases, "screenshot"):
            screenshot_notebook(page, notebook, ARTIFACTS / f"{chapter}.png")

        with phase(phases, "validate"):
            message = validate(page, notebook)
            expect(message).to_contain_class("validation-success")
            expect(message).to_have_text("Success! Your notebook passes all the tests.")
        close_dialog(page)
