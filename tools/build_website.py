#!/usr/bin/env python3
"""Build the course website from the chapter sources, offline, in one command.

    .venv/bin/python tools/build_website.py [--out DIR] [--jobs N] [--chapters 01_backprop ...]

1. Every chapter in ``course/source/`` (folders named ``NN_topic``) is executed in quick mode
   (``DLKIT_QUICK=1``) in a fresh kernel, its working folder the chapter's, as a learner would
   run it, not as nbgrader does (``NBGRADER_EXECUTION`` is unset, so widgets talk normally and
   nbclient stores their state).
2. The executed notebook is turned into the student version with nbgrader's own preprocessors
   and the course's configuration (``course/nbgrader_config.py``): solution regions become the
   stub, hidden tests go, and the outputs of solution and graded test cells are cleared, since
   an output can give an answer away.
3. Each widget output is replaced by a static snapshot of what it showed (the figures in its
   ``Output`` widgets, the text of its HTML labels) with a note that it is interactive in
   JupyterLab or on Binder, so pages need no kernel and no script from a CDN.
4. The pages in ``website/``, the generated chapter, glossary and benchmark pages are staged in
   ``build/website/src`` and Sphinx (myst-nb, warnings as errors) builds them into
   ``build/website/html``.  Preview with ``python3 -m http.server -d build/website/html``.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
SOURCE = COURSE / "source"
WEBSITE = ROOT / "website"
BENCH_RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
DEFAULT_BUILD = ROOT / "build" / "website"

CHAPTER_RE = re.compile(r"^\d\d_[a-z0-9_]+$")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE = "interactive in JupyterLab or on Binder"
INSTRUCTOR_START = "<!-- instructor-guide:start -->"
INSTRUCTOR_END = "<!-- instructor-guide:end -->"
# Widget models that only lay out, style, show or link others: anything else is a control.
PASSIVE_MODELS = re.compile(
    r"(Layout|Style|Box|Output|HTML|HTMLMath|Label|Progress|Link|DirectionalLink)Model$"
)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


# --- what to build ------------------------------------------------------------------------


def chapters(source: Path = SOURCE) -> list[str]:
    """Chapter folders in ``source`` (``NN_topic``) that hold ``NN_topic.ipynb``, in order."""
    return sorted(
        p.name
        for p in source.iterdir()
        if p.is_dir() and CHAPTER_RE.match(p.name) and (p / f"{p.name}.ipynb").is_file()
    )


def repository_url() -> str:
    """The public repository: ``$DLKIT_REPOSITORY`` or ``[project.urls] Repository``."""
    override = os.environ.get("DLKIT_REPOSITORY", "").strip()
    if override:
        return override if "://" in override else f"https://github.com/{override}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["urls"]["Repository"].rstrip("/")


def github_slug(url: str) -> str:
    """``https://github.com/owner/name(.git)`` -> ``owner/name``."""
    match = re.fullmatch(r"https?://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", url)
    if not match:
        raise ValueError(f"not a GitHub repository address: {url!r}")
    return match.group(1)


def binder_url(chapter: str, repository: str | None = None) -> str:
    """Binder opening JupyterLab on the chapter's student notebook (``binder/`` releases it)."""
    slug = github_slug(repository or repository_url())
    return (
        f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath=course/release/{chapter}/{chapter}.ipynb"
    )


# --- execution ----------------------------------------------------------------------------


class _PollingClient(NotebookClient):
    """nbclient that waits for shell replies in one-second slices.

    A cell that displays widgets intermittently left nbclient waiting for an ``execute_reply``
    the kernel had already sent, until the cell timeout (nbclient issue #312; seen here on
    05_regularization): the asyncio poll on the shell socket missed its wake-up. Polling again
    every second finds the message that is already there.
    """

    async def async_start_new_kernel_client(self) -> Any:
        kc = await super().async_start_new_kernel_client()
        channel = kc.shell_channel
        get_msg = channel.get_msg

        async def get_msg_sliced(timeout: float | None = None) -> dict[str, Any]:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    return await get_msg(timeout=min(1.0, left))
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

        channel.get_msg = get_msg_sliced
        return kc


def execute(path: Path, timeout: int = 300) -> NotebookNode:
    """Run a notebook top to bottom in quick mode in a fresh kernel; widget state is kept."""
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_EXECUTION", "MPLBACKEND")}
    env["DLKIT_QUICK"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # --jobs kernels share the cores
    client = _PollingClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
        record_timing=False,
    )
    client.execute(env=env)
    return nb


# --- widgets as pictures ------------------------------------------------------------------


def _widget_state(nb: NotebookNode) -> dict[str, Any]:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _children(state: dict[str, Any]) -> Iterator[str]:
    """Model ids a widget refers to (``children``, ``source``/``target`` of links)."""
    for value in state.values():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and item.startswith("IPY_MODEL_"):
                yield item.removeprefix("IPY_MODEL_")


def _snapshot(model_id: str, models: dict[str, Any], seen: set[str]) -> tuple[list, list[str]]:
    """(outputs, control descriptions) of one widget tree, depth first, in display order."""
    if model_id in seen or model_id not in models:
        return [], []
    seen.add(model_id)
    model = models[model_id]
    name, state = model["model_name"], model.get("state", {})
    outputs: list[NotebookNode] = []
    controls: list[str] = []
    if name == "OutputModel":
        for out in state.get("outputs", []):
            out = nbformat.from_dict(out)
            if out.output_type == "stream":
                outputs.append(out)
            elif out.output_type in ("display_data", "execute_result"):
                view = out.get("data", {}).get(WIDGET_VIEW)
                if view:
                    inner, inner_controls = _snapshot(view["model_id"], models, seen)
                    outputs += inner
                    controls += inner_controls
                elif any(t in out.data for t in (*IMAGE_TYPES, "text/html")):
                    outputs.append(nbformat.v4.new_output("display_data", data=dict(out.data)))
    elif name in ("HTMLModel", "HTMLMathModel", "LabelModel") and state.get("value"):
        value = state["value"] if name != "LabelModel" else html.escape(state["value"])
        label = html.escape(state.get("description") or "")
        text = f"<div>{label} {value}</div>" if label else f"<div>{value}</div>"
        outputs.append(nbformat.v4.new_output("display_data", data={"text/html": text}))
    elif not PASSIVE_MODELS.search(name):
        controls.append(state.get("description") or "")  # unnamed: a cell of a grid, say
    for child in _children(state):
        inner, inner_controls = _snapshot(child, models, seen)
        outputs += inner
        controls += inner_controls
    return outputs, controls


def freeze_widgets(nb: NotebookNode) -> int:
    """Replace each widget output by a static snapshot; drop the widget state. Returns count."""
    models = _widget_state(nb)
    frozen = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        new_outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW) if "data" in out else None
            if not view:
                new_outputs.append(out)
                continue
            frozen += 1
            snapshot, controls = _snapshot(view["model_id"], models, set())
            if controls:
                names = ", ".join(dict.fromkeys(c for c in controls if c))
                named = f" ({html.escape(names)})" if names else ""
                note = (
                    f'<p class="dlkit-widget-note"><em>A snapshot of an explorer{named}: '
                    f"{WIDGET_NOTE}.</em></p>"
                )
                new_outputs.append(nbformat.v4.new_output("display_data", data={"text/html": note}))
            new_outputs += snapshot
        cell.outputs = new_outputs
    nb.metadata.pop("widgets", None)
    return frozen


# --- the student version ------------------------------------------------------------------


def nbgrader_config(course: Path = COURSE) -> Any:
    """The course's nbgrader configuration (the stub text, the delimiters)."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def strip_for_students(nb: NotebookNode, config: Any = None) -> NotebookNode:
    """Solutions to stubs, hidden tests removed, outputs of answer and test cells cleared.

    Works in place (and returns ``nb``). Uses nbgrader's ``ClearSolutions`` and
    ``ClearHiddenTests``, which also refuse a solution or hidden-test region outside a cell
    marked as such.
    """
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    config = nbgrader_config() if config is None else config
    resources: dict[str, Any] = {}
    nb, resources = ClearSolutions(config=config).preprocess(nb, resources)
    nb, resources = ClearHiddenTests(config=config).preprocess(nb, resources)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("solution") or meta.get("grade")):
            cell.outputs = []
            cell.execution_count = None
    return nb


def chapter_header(chapter: str, summary_zh: str | None, repository: str) -> NotebookNode:
    """The cell put under a chapter's title: the Binder link and the Chinese summary."""
    lines = [
        f"[Launch this chapter on Binder]({binder_url(chapter, repository)}) "
        "(JupyterLab with the widgets live and the exercises to solve).",
    ]
    if summary_zh:
        lines += ["", "```{admonition} 中文摘要", ":class: note", "", summary_zh.strip(), "```"]
    return nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"dlkit_website": "header"})


def prepare_chapter(chapter: str, source: str, timeout: int) -> dict[str, Any]:
    """Execute, freeze widgets and strip one chapter (runs in a worker process)."""
    start = time.perf_counter()
    nb = execute(Path(source) / chapter / f"{chapter}.ipynb", timeout=timeout)
    frozen = freeze_widgets(nb)
    strip_for_students(nb, nbgrader_config(Path(source).parent))
    return {
        "chapter": chapter,
        "notebook": nbformat.writes(nb),
        "widgets": frozen,
        "seconds": time.perf_counter() - start,
    }


# --- generated pages ----------------------------------------------------------------------


def _title(nb: NotebookNode, chapter: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return chapter


def _cell(text: str) -> str:
    """Text for one cell of a Markdown pipe table."""
    return " ".join(str(text).split()).replace("|", r"\|")


def _absolute_links(text: str, base: str) -> str:
    """Rewrite relative Markdown links (``](path)``) to ``base/path`` (the repository)."""

    def fix(match: re.Match[str]) -> str:
        target = match.group(1)
        if re.match(r"^([a-z]+:|#|/)", target):
            return match.group(0)
        return f"]({base}/{target})"

    return re.sub(r"\]\(([^)\s]+)\)", fix, text)


def glossary_page(built: list[str]) -> str:
    from dlkit.glossary import terms

    rows = [
        "# Glossary · 术语表",
        "",
        "Every term the chapters introduce, in English and Chinese, with the chapter that "
        "introduces it.",
        "",
        "| English | 中文 | definition | 中文释义 | chapter |",
        "| --- | --- | --- | --- | --- |",
    ]
    for term in sorted(terms(), key=lambda t: t.english.lower()):
        chapter = term.chapter or ""
        link = f"[{chapter}](chapters/{chapter}.ipynb)" if chapter in built else _cell(chapter)
        cells = [term.english, term.chinese, term.definition, term.definition_zh]
        rows.append("| " + " | ".join([*map(_cell, cells), link]) + " |")
    return "\n".join(rows) + "\n"


def benchmarks_page(results: list[Path]) -> str:
    parts = [
        "# Benchmarks",
        "",
        "Each script in `bench/` measures side by side in one run and writes its table, with the "
        "machine and its load, to `bench/results/`; these are the committed results.",
        "",
    ]
    for path in results:
        parts += [f"```{{include}} _include/bench/{path.name}", ":heading-offset: 1", "```", ""]
    return "\n".join(parts)


def chapters_index(titles: dict[str, str], repository: str) -> str:
    rows = [
        "# Chapters",
        "",
        "Each page is a chapter's notebook as a learner receives it, run once in quick mode: the "
        "exercises show their stubs, the explorers a snapshot.",
        "",
        "| chapter | Binder |",
        "| --- | --- |",
    ]
    for chapter, title in titles.items():
        binder = f"[launch]({binder_url(chapter, repository)})"
        rows.append(f"| [{_cell(title)}]({chapter}.ipynb) | {binder} |")
    rows += ["", "```{toctree}", ":hidden:", "", *titles, "```", ""]
    return "\n".join(rows)


# --- staging and Sphinx -------------------------------------------------------------------


def stage(src: Path, notebooks: dict[str, NotebookNode], repository: str) -> None:
    """Lay out the Sphinx source folder: website/, the chapters, the generated pages."""
    from dlkit.glossary import chapter_summaries_zh

    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(WEBSITE, src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    include = src / "_include"
    (include / "bench").mkdir(parents=True)
    blob = f"{repository}/blob/HEAD"
    (include / "README.md").write_text(
        _absolute_links(README.read_text(encoding="utf-8"), blob), encoding="utf-8"
    )
    results = sorted(BENCH_RESULTS.glob("*.md"))
    for path in results:
        text = _absolute_links(path.read_text(encoding="utf-8"), f"{blob}/bench/results")
        (include / "bench" / path.name).write_text(text, encoding="utf-8")
    (src / "benchmarks.md").write_text(benchmarks_page(results), encoding="utf-8")
    (src / "glossary.md").write_text(glossary_page(list(notebooks)), encoding="utf-8")

    summaries = chapter_summaries_zh()
    out = src / "chapters"
    out.mkdir()
    titles = {}
    for chapter, nb in notebooks.items():
        titles[chapter] = _title(nb, chapter)
        header = chapter_header(chapter, summaries.get(chapter), repository)
        first_markdown = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
        nb.cells.insert(first_markdown + 1, header)
        nbformat.write(nb, out / f"{chapter}.ipynb")
    (out / "index.md").write_text(chapters_index(titles, repository), encoding="utf-8")


def sphinx_build(src: Path, html_out: Path, doctrees: Path, jobs: int) -> None:
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q"]
    command += ["-j", str(jobs), "-d", str(doctrees), str(src), str(html_out)]
    subprocess.run(command, check=True)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=DEFAULT_BUILD,
        help="staging and cache folder (default build/website)",
    )
    parser.add_argument("--out", type=Path, help="HTML output folder (default BUILD_DIR/html)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once")
    parser.add_argument(
        "--chapters",
        nargs="+",
        metavar="CHAPTER",
        help="build only these chapters (quick iterations)",
    )
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    build = args.build_dir.resolve()
    html_out = (args.out or build / "html").resolve()
    found = chapters()
    wanted = args.chapters or found
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        parser.error(f"no such chapter: {', '.join(unknown)} (have {', '.join(found)})")
    repository = repository_url()

    results: dict[str, dict[str, Any]] = {}
    progress = tqdm(total=len(wanted), desc="executing chapters", unit="nb")
    if args.jobs <= 1:
        for chapter in wanted:
            progress.set_postfix_str(chapter)
            results[chapter] = prepare_chapter(chapter, str(SOURCE), args.timeout)
            progress.update()
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(prepare_chapter, chapter, str(SOURCE), args.timeout)
                for chapter in wanted
            ]
            for future in as_completed(futures):
                result = future.result()
                results[result["chapter"]] = result
                progress.set_postfix_str(result["chapter"])
                progress.update()
    progress.close()
    for chapter in wanted:
        r = results[chapter]
        print(f"  {chapter}: {r['seconds']:.1f} s, {r['widgets']} widget(s) as snapshots")

    notebooks = {c: nbformat.reads(results[c]["notebook"], as_version=4) for c in wanted}
    stage(build / "src", notebooks, repository)
    if html_out.exists():
        shutil.rmtree(html_out)
    sphinx_build(build / "src", html_out, build / "doctrees", max(1, args.jobs))

    seconds = time.perf_counter() - start
    size = folder_size(html_out)
    print(f"built {len(wanted)} chapter(s) in {seconds:.0f} s: {html_out} ({size / 2**20:.1f} MiB)")
    print(f"preview: python3 -m http.server -d {html_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
