"""How long each chapter takes to run, and to autograde, in quick mode.

For every chapter in ``course/source`` (or those named with ``--chapters``), each measured
``--repeat`` times (default 3) and reported as median and min:

- **execute**: the solution notebook run top to bottom by nbclient in a fresh kernel with
  ``DLKIT_QUICK=1``. The wall time runs from kernel launch to kernel shutdown, so it
  includes the kernel's start-up, which is also reported on its own;
- **autograde**: ``nbgrader autograde CHAPTER --student ID --force`` of one submission (the
  solution notebook), run through dlkit's own pipeline (:class:`dlkit.instructor.course.Course`)
  as ``dlkit grade`` runs it; the score is read back from the gradebook;
- **empty autograde**: the same command for a one-cell notebook without code, generated as its
  own tiny assignment in the same course: nbgrader's fixed cost, to set each chapter against.

Each repeat grades a new student, so every autograde is a first submission. The work courses
live in a temporary folder under ``bench/_work`` and are removed at the end.
Results go to ``OUT/chapter_times.md`` (a table) and ``OUT/chapter_times.json`` (every sample
and the machine). Run from the repository root::

    .venv/bin/python bench/chapter_times.py [--chapters 00_welcome ...] [--repeat 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
from machine_info import describe_machine, load_average, machine_info
from nbclient import NotebookClient
from tqdm import tqdm

from dlkit.instructor.course import Course, find_course_root
from dlkit.instructor.gradebook import read_notebook_score
from dlkit.runtime import QUICK_ENV

BENCH = Path(__file__).resolve().parent
PACKAGES = ("torch", "nbgrader", "nbclient")
EMPTY = "empty_baseline"  # the one-cell assignment: what autograding costs with nothing to run
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# Quick mode, as NBGRADER_EXECUTION gives anyway; pinned against a DLKIT_QUICK in the shell.
QUICK = {QUICK_ENV: "1"}

NOTES = """\
- **Execute**: nbclient runs the solution notebook in a fresh `python3` kernel (this interpreter)
  with `DLKIT_QUICK=1`. The time runs from kernel launch to kernel shutdown: it **includes the
  kernel's start-up**, shown alone in the next column (from launch until the kernel answers).
- **Autograde**: `nbgrader autograde CHAPTER --student ID --force` in a fresh copy of the course,
  as `dlkit grade` runs it (a new Python process, gradebook writes, a fresh kernel, quick mode,
  hidden tests restored, the graded notebook written). Each repeat grades a new student.
- **Empty autograde**: the same command for a one-cell notebook without code (its own assignment
  in the same course): nbgrader's fixed cost. *Ratio* = median autograde / median empty autograde.
- **Score**: what the solution earned, read from the gradebook (full marks expected).
- Times in seconds, median and min of {runs}; the first run of a session may be slower
  (cold file caches).
"""


def execute_seconds(notebook: Path) -> tuple[float, float]:
    """Run ``notebook`` in a fresh quick-mode kernel; return (wall seconds, kernel start-up seconds)."""
    nb = nbformat.read(notebook, as_version=4)
    ready: list[float] = []
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",  # a kernelspec argv of plain `python` runs sys.executable
        resources={"metadata": {"path": str(notebook.parent)}},
        on_notebook_start=lambda **_: ready.append(time.perf_counter()),
    )
    start = time.perf_counter()
    client.execute(env={**os.environ, **QUICK})
    return time.perf_counter() - start, ready[0] - start


def autograde_seconds(work: Course, assignment: str, notebook: Path, student: str) -> float:
    """Submit ``notebook`` as ``student``'s ``assignment`` and time its autograde."""
    target = work.root / "submitted" / student / assignment
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, target / f"{assignment}.ipynb")
    start = time.perf_counter()
    work.nbgrader("autograde", assignment, "--student", student, "--force", env=QUICK)
    return time.perf_counter() - start


def add_empty_assignment(work: Course) -> Path:
    """Write the one-cell, code-free notebook of the ``EMPTY`` assignment into ``work``."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("Nothing to run.")],
        metadata={"kernelspec": KERNELSPEC},
    )
    path = work.source_notebook(EMPTY)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def summary(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples)}


def measure_chapter(course: Course, chapter: str, repeat: int, scratch: Path) -> dict[str, Any]:
    """Every measurement for ``chapter``, interleaved ``repeat`` times so drift hits all alike."""
    work = course.copy_to(scratch / chapter, [chapter])
    empty = add_empty_assignment(work)
    work.generate([chapter, EMPTY])
    solution = work.source_notebook(chapter)
    samples: dict[str, list[float]] = {
        "execute": [],
        "kernel_start": [],
        "autograde": [],
        "empty_autograde": [],
    }
    scores = []
    for i in range(repeat):
        wall, startup = execute_seconds(solution)
        samples["execute"].append(wall)
        samples["kernel_start"].append(startup)
        student = f"bench{i + 1}"
        samples["autograde"].append(autograde_seconds(work, chapter, solution, student))
        samples["empty_autograde"].append(autograde_seconds(work, EMPTY, empty, student))
        score = read_notebook_score(work.gradebook, chapter, student)
        scores.append({"score": score.score, "max_score": score.max_score})
    stats = {name: summary(values) for name, values in samples.items()}
    return {
        "chapter": chapter,
        **stats,
        "ratio": stats["autograde"]["median"] / stats["empty_autograde"]["median"],
        "scores": scores,
        "samples": samples,
    }


def to_markdown(report: dict[str, Any]) -> str:
    def pair(stat: dict[str, float]) -> str:
        return f"{stat['median']:.2f} / {stat['min']:.2f}"

    lines = [
        "# Chapter times",
        "",
        "Written by `bench/chapter_times.py`; rerun it (`.venv/bin/python bench/chapter_times.py`)"
        " to refresh.",
        "",
        "| Chapter | Execute, quick (median / min s) | of which kernel start (median s) "
        "| Autograde, 1 submission (median / min s) | Empty autograde (median / min s) "
        "| Ratio | Score |",
        "|---|--:|--:|--:|--:|--:|:-:|",
    ]
    for r in report["chapters"]:
        scores = sorted({f"{s['score']:g}/{s['max_score']:g}" for s in r["scores"]})
        lines.append(
            f"| {r['chapter']} | {pair(r['execute'])} | {r['kernel_start']['median']:.2f} "
            f"| {pair(r['autograde'])} | {pair(r['empty_autograde'])} | {r['ratio']:.2f}× "
            f"| {', '.join(scores)} |"
        )
    lines += [
        "",
        NOTES.format(runs=f"{report['repeat']} run" + "s" * (report["repeat"] != 1)),
        describe_machine(report["machine"], PACKAGES),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time each chapter's quick-mode execution and one nbgrader autograde."
    )
    parser.add_argument("--chapters", nargs="+", default=[], metavar="CHAPTER", help="default: all")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument(
        "--out", type=Path, default=BENCH / "results", help="default: bench/results"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    course = Course(find_course_root())
    try:
        chapters = course.select(args.chapters)
    except ValueError as err:
        parser.error(str(err))

    results = []
    load_at_start = load_average()
    (BENCH / "_work").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH / "_work") as scratch:
        progress = tqdm(chapters, desc="chapters", unit="chapter")
        for chapter in progress:
            progress.set_postfix_str(chapter)
            results.append(measure_chapter(course, chapter, args.repeat, Path(scratch)))

    report = {
        "repeat": args.repeat,
        "machine": machine_info(load_at_start, PACKAGES),
        "chapters": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chapter_times.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "chapter_times.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
