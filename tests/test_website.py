"""The course website: built offline from the chapter sources, with no answer on it.

The fast tests check the pieces on hand-made notebooks; the slow ones build the whole site once
(``tools/build_website.py``, every chapter executed in quick mode) and read the HTML.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "course" / "source"
SCRIPT = REPO / "tools" / "build_website.py"

_spec = importlib.util.spec_from_file_location("build_website", SCRIPT)
site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)

CHAPTERS = site.chapters()
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 16).decode()


# --- fast: the pieces ----------------------------------------------------------------------


def _grading(cell_id: str, *, solution: bool = False, grade: bool = False) -> dict:
    meta = {"grade_id": cell_id, "solution": solution, "grade": grade, "locked": grade}
    if grade:
        meta["points"] = 1
    return {"nbgrader": {**meta, "schema_version": 3}}


def _tiny_notebook() -> nbformat.NotebookNode:
    shown = new_output("stream", name="stdout", text="7\n")
    answer = new_code_cell(
        "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x  # secret\n    ### END SOLUTION",
        metadata=_grading("answer", solution=True),
        outputs=[new_output("stream", name="stdout", text="the answer is 42\n")],
    )
    test = new_code_cell(
        "assert double(1) == 2\n### BEGIN HIDDEN TESTS\nassert double(21) == 42\n"
        "### END HIDDEN TESTS",
        metadata=_grading("test", grade=True),
        outputs=[new_output("stream", name="stdout", text="checked 42\n")],
    )
    essay = new_markdown_cell("Because gradients vanish.", metadata=_grading("why", solution=True))
    return new_notebook(
        cells=[
            new_markdown_cell("# 99 · Tiny"),
            new_code_cell("print(7)", outputs=[shown]),
            answer,
            test,
            essay,
        ],
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        },
    )


def test_strip_for_students_clears_answers_hidden_tests_and_their_outputs() -> None:
    nb = site.strip_for_students(_tiny_notebook())
    _title, shown, answer, test, essay = nb.cells
    assert answer.source == "def double(x):\n    " + STUB.replace("\n", "\n    ")
    assert answer.outputs == [] and test.outputs == []
    assert test.source.strip() == "assert double(1) == 2"
    assert essay.source == "YOUR ANSWER HERE"
    assert shown.outputs[0]["text"] == "7\n", "outputs of ordinary cells stay"
    text = json.dumps([(c.source, c.get("outputs")) for c in nb.cells])
    for secret in ("secret", "2 * x", "double(21)", "42", "vanish"):
        assert secret not in text


def test_strip_refuses_a_solution_outside_a_solution_cell() -> None:
    nb = _tiny_notebook()
    nb.cells[1].source = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    with pytest.raises(RuntimeError, match="non-solution cell"):
        site.strip_for_students(nb)


def _model(name: str, **state: object) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def test_widgets_become_their_pictures_with_a_note() -> None:
    picture = {"output_type": "display_data", "data": {"image/png": PNG}, "metadata": {}}
    state = {
        "box": _model("VBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_out"]),
        "slider": _model("FloatSliderModel", description="learning rate η", value=0.1),
        "out": _model("OutputModel", outputs=[picture]),
        "bar": _model("HBoxModel", children=["IPY_MODEL_label"]),
        "label": _model("HTMLModel", value="training: 100%"),
    }
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    bar = {"model_id": "bar", "version_major": 2, "version_minor": 0}
    cell = new_code_cell(
        "explorer()",
        outputs=[
            new_output("display_data", data={WIDGET_VIEW: bar, "text/plain": "HBox()"}),
            new_output("execute_result", data={WIDGET_VIEW: view, "text/plain": "VBox()"}),
        ],
    )
    nb = new_notebook(cells=[cell])
    nb.metadata.widgets = {WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}

    assert site.freeze_widgets(nb) == 2
    assert "widgets" not in nb.metadata
    progress, note, image = nb.cells[0].outputs
    assert "training: 100%" in progress.data["text/html"]
    assert (
        "learning rate η" in note.data["text/html"] and site.WIDGET_NOTE in note.data["text/html"]
    )
    assert image.data == {"image/png": PNG}
    assert WIDGET_VIEW not in json.dumps(nb)


def test_new_chapters_are_picked_up(tmp_path: Path) -> None:
    for name in ("00_intro", "12_new_topic", "notes", "13_Bad", "14_empty"):
        (tmp_path / name).mkdir()
    for name in ("00_intro", "12_new_topic", "notes", "13_Bad"):
        (tmp_path / name / f"{name}.ipynb").write_text("{}")
    assert site.chapters(tmp_path) == ["00_intro", "12_new_topic"]
    assert CHAPTERS == sorted(p.parent.name for p in SOURCE.glob("[0-9][0-9]_*/*.ipynb"))


def test_binder_links_come_from_one_repository_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLKIT_REPOSITORY", raising=False)
    url = site.binder_url("01_backprop")
    assert url.startswith("https://mybinder.org/v2/gh/dlkit-course/dlkit/HEAD?labpath=")
    assert url.endswith("course/release/01_backprop/01_backprop.ipynb")
    monkeypatch.setenv("DLKIT_REPOSITORY", "someone/fork")
    assert "/gh/someone/fork/HEAD?" in site.binder_url("01_backprop")


# --- slow: the whole site ------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once for this module (``DLKIT_WEBSITE_BUILD=DIR`` reuses a build folder)."""
    reuse = os.environ.get("DLKIT_WEBSITE_BUILD")
    if reuse:
        return Path(reuse)
    build = tmp_path_factory.mktemp("website")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--build-dir", str(build), "--jobs", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"the build failed:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    return build


def _soup(path: Path):
    from bs4 import BeautifulSoup

    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _page(built: Path, chapter: str) -> Path:
    return built / "html" / "chapters" / f"{chapter}.html"


def _regions(text: str, begin: str, end: str) -> list[str]:
    return re.findall(rf"{begin}[^\n]*\n(.*?)\n[^\n]*{end}", text, re.S)


def _secret_lines() -> dict[str, set[str]]:
    """Per chapter, the non-trivial lines of its solutions and hidden tests.

    Trivial: shorter than 12 characters, or also written outside every solution and hidden-test
    region of every chapter (``rng = np.random.default_rng(0)``), so not a secret.
    """
    found_regions, seen = {}, set()
    for chapter in CHAPTERS:
        nb = nbformat.read(SOURCE / chapter / f"{chapter}.ipynb", as_version=4)
        regions, public = [], []
        for cell in nb.cells:
            found = _regions(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")
            found += _regions(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
            regions += found
            rest = cell.source
            for region in found:
                rest = rest.replace(region, "")
            if cell.metadata.get("nbgrader", {}).get("solution") and not found:
                regions.append(cell.source)  # a whole-cell answer (a written one)
            else:
                public.append(rest)
        seen |= {line.strip() for text in public for line in text.splitlines()}
        found_regions[chapter] = regions
    return {
        chapter: {
            line.strip()
            for region in regions
            for line in region.splitlines()
            if len(line.strip()) >= 12 and line.strip() not in seen
        }
        for chapter, regions in found_regions.items()
    }


@pytest.mark.slow
def test_every_chapter_has_a_page_with_binder_and_summary(built: Path) -> None:
    from dlkit.glossary import chapter_summaries_zh

    summaries = chapter_summaries_zh()
    for chapter in CHAPTERS:
        page = _page(built, chapter)
        assert page.is_file(), f"no page for {chapter}"
        soup = _soup(page)
        binder = [a["href"] for a in soup.find_all("a", href=True) if "mybinder.org" in a["href"]]
        assert site.binder_url(chapter) in binder, f"{chapter}: no Binder link"
        if chapter in summaries:
            assert "中文摘要" in soup.get_text(), f"{chapter}: no Chinese summary"


@pytest.mark.slow
def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def _page_lines(path: Path) -> tuple[set[str], str]:
    """A page's lines (of its code blocks and of its text) and its whole text."""
    soup = _soup(path)
    text = soup.get_text()
    return _lines(text).union(*(_lines(pre.get_text()) for pre in soup.find_all("pre"))), text


def test_no_solution_or_hidden_test_survives(built: Path) -> None:
    pages = {p: _page_lines(p) for p in (built / "html").rglob("*.html")}
    leaks = []
    for chapter, secrets in _secret_lines().items():
        assert secrets, f"{chapter}: found no solution text to look for"
        stripped = (built / "src" / "chapters" / f"{chapter}.ipynb").read_text(encoding="utf-8")
        cells = nbformat.reads(stripped, as_version=4).cells
        sources = _lines("\n".join(c.source for c in cells))
        leaks += [f"{chapter}.ipynb: {line!r}" for line in sorted(secrets & sources)]
        for page, (lines, _) in pages.items():
            leaks += [f"{page.name}: {line!r}" for line in sorted(secrets & lines)]
    assert not leaks, "solution or hidden-test text on the site:\n" + "\n".join(leaks[:20])
    for page, (_, text) in pages.items():
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, page.name


def _local_targets(page: Path):
    soup = _soup(page)
    for tag, attr in (("a", "href"), ("link", "href"), ("img", "src"), ("script", "src")):
        for element in soup.find_all(tag):
            value = element.get(attr)
            if value is not None:
                yield tag, value


@pytest.mark.slow
def test_no_internal_link_or_image_is_broken_and_nothing_loads_from_outside(built: Path) -> None:
    html = built / "html"
    ids: dict[Path, set[str]] = {}
    broken, external = [], []
    for page in sorted(html.rglob("*.html")):
        for tag, value in _local_targets(page):
            parts = urlsplit(value)
            if parts.scheme or value.startswith("//"):
                if tag in ("script", "img", "link") and parts.scheme in ("http", "https"):
                    if tag != "link" or "stylesheet" in value:
                        external.append(f"{page.relative_to(html)}: <{tag}> {value}")
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(html)}: {value}")
                continue
            if parts.fragment and target.suffix == ".html":
                if target not in ids:
                    soup = _soup(target)
                    ids[target] = {e.get("id") for e in soup.find_all(id=True)}
                    ids[target] |= {e.get("name") for e in soup.find_all("a", attrs={"name": True})}
                if unquote(parts.fragment) not in ids[target]:
                    broken.append(f"{page.relative_to(html)}: {value} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:30])
    assert not external, "pages load scripts or images from outside:\n" + "\n".join(external[:30])


@pytest.mark.slow
def test_math_is_rendered_with_the_site_own_mathjax(built: Path) -> None:
    for chapter in CHAPTERS:
        soup = _soup(_page(built, chapter))
        math = soup.select("span.math, div.math")
        assert math, f"{chapter}: no math markup"
        assert any(r"\(" in m.get_text() or r"\[" in m.get_text() for m in math)
        scripts = [s.get("src", "") for s in soup.find_all("script")]
        assert any(s.endswith("_static/mathjax/tex-chtml.js") for s in scripts), chapter
        assert "$$" not in " ".join(p.get_text() for p in soup.select("article p"))


@pytest.mark.slow
def test_each_chapter_shows_images_from_its_execution(built: Path) -> None:
    for chapter in CHAPTERS:
        page = _page(built, chapter)
        images = [img["src"] for img in _soup(page).select("div.cell_output img[src]")]
        files = [(page.parent / src).resolve() for src in images]
        assert any(f.suffix == ".png" and f.stat().st_size > 1000 for f in files), chapter


@pytest.mark.slow
def test_widgets_render_as_static_snapshots(built: Path) -> None:
    explorers = 0
    for chapter in CHAPTERS:
        stripped = (built / "src" / "chapters" / f"{chapter}.ipynb").read_text(encoding="utf-8")
        assert WIDGET_VIEW not in stripped and WIDGET_STATE not in stripped, chapter
        explorers += stripped.count("dlkit-widget-note")
    assert explorers >= len(CHAPTERS) // 2, "most chapters have an explorer"
    soup = _soup(_page(built, "00_welcome"))
    note = soup.find(class_="dlkit-widget-note")
    assert note is not None and site.WIDGET_NOTE in note.get_text()
    assert note.find_next("img") is not None, "the explorer's picture follows its note"


@pytest.mark.slow
def test_glossary_lists_every_term(built: Path) -> None:
    from dlkit.glossary import terms

    rows = _soup(built / "html" / "glossary.html").select("table tbody tr")
    shown = {tuple(td.get_text(" ", strip=True) for td in row.find_all("td"))[:2] for row in rows}
    words = [(t.english, t.chinese) for t in terms()]
    missing = [w for w in words if (" ".join(w[0].split()), " ".join(w[1].split())) not in shown]
    assert not missing, f"terms missing from the glossary page: {missing[:10]}"
    assert len(rows) == len(words)


def _markdown_tables(text: str) -> list[list[str]]:
    """The first body row of each pipe table, its cells as plain text."""
    rows, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-2]):
        if line.startswith("|") and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[i + 2].strip())[1:-1]]
            plain = [re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", c) for c in cells]
            rows.append([re.sub(r"[*`]|\\(?=\|)", "", c) for c in plain])
    return rows


@pytest.mark.slow
def test_benchmark_page_holds_every_results_table(built: Path) -> None:
    soup = _soup(built / "html" / "benchmarks.html")
    shown = [
        [" ".join(td.get_text(" ", strip=True).split()) for td in tr.find_all("td")]
        for tr in soup.select("table tbody tr")
    ]
    page = soup.get_text(" ")
    results = sorted((REPO / "bench" / "results").glob("*.md"))
    assert results
    for path in results:
        text = path.read_text(encoding="utf-8")
        tables = _markdown_tables(text)
        if not tables:  # a result that could not be measured here says so in words
            words = next(line for line in text.splitlines()[1:] if line.startswith("**"))
            assert "".join(words.replace("*", "").split()) in "".join(page.split()), path.name
        for row in tables:
            assert [" ".join(c.split()) for c in row] in shown, f"{path.name}: row {row} missing"
