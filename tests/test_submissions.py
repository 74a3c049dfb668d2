"""Collecting submissions: every odd input becomes a clear line, never an exception."""

from __future__ import annotations

import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dlkit.instructor.submissions import collect, parse_notebook

CHAPTERS = ["00_welcome", "01_backprop"]


def _nb_text() -> str:
    return nbformat.writes(new_notebook(cells=[new_code_cell("x = 1")]))


def _folder(root: Path, student: str, chapter: str, name: str | None = None) -> None:
    target = root / student / chapter
    target.mkdir(parents=True)
    (target / (name or f"{chapter}.ipynb")).write_text(_nb_text(), encoding="utf-8")


def test_folder_and_zip_layouts(tmp_path: Path) -> None:
    _folder(tmp_path, "alice", "00_welcome")
    with zipfile.ZipFile(tmp_path / "bob.zip", "w") as z:
        z.writestr("work/01_backprop.ipynb", _nb_text())
        z.writestr("__MACOSX/._01_backprop.ipynb", "junk")
    found = collect(tmp_path, CHAPTERS)
    by_key = {(s.student_id, s.chapter): s for s in found.submissions}
    assert set(by_key) == {(s, c) for s in ("alice", "bob") for c in CHAPTERS}
    assert by_key["alice", "00_welcome"].notebook is not None
    assert by_key["bob", "01_backprop"].origin == "bob.zip:work/01_backprop.ipynb"
    assert by_key["alice", "01_backprop"].problem == "missing: no 01_backprop notebook from alice"
    assert found.notes == []


def test_only_the_chapters_asked_for_are_graded(tmp_path: Path) -> None:
    _folder(tmp_path, "alice", "00_welcome")
    _folder(tmp_path, "alice", "01_backprop")
    found = collect(tmp_path, CHAPTERS, ["01_backprop"])
    assert [(s.student_id, s.chapter) for s in found.submissions] == [("alice", "01_backprop")]
    assert found.notes == ["alice: 00_welcome was submitted but not asked for; not graded"]


def test_misnamed_notebook_is_reported_with_the_expected_name(tmp_path: Path) -> None:
    _folder(tmp_path, "alice", "00_welcome", name="welcome-final.ipynb")
    found = collect(tmp_path, CHAPTERS, ["00_welcome"])
    (sub,) = found.submissions
    assert sub.notebook is None
    assert "alice/00_welcome/welcome-final.ipynb" in sub.problem
    assert "expected alice/00_welcome/00_welcome.ipynb" in sub.problem


def test_bad_zip_bad_student_id_and_stray_files(tmp_path: Path) -> None:
    (tmp_path / "carol.zip").write_bytes(b"PK\x03\x04 definitely not a zip")
    (tmp_path / "bad id!").mkdir()
    (tmp_path / "readme.txt").write_text("hello", encoding="utf-8")
    _folder(tmp_path, "dave", "00_welcome")
    found = collect(tmp_path, CHAPTERS)
    assert any("carol.zip is not a readable zip file" in n for n in found.notes)
    assert any("'bad id!' is not a valid student id" in n for n in found.notes)
    assert any("ignored readme.txt" in n for n in found.notes)
    carol = next(s for s in found.submissions if s.student_id == "carol")
    assert carol.notebook is None and carol.problem.startswith("missing")


def test_zip_member_paths_are_never_extracted(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    with zipfile.ZipFile(subs / "eve.zip", "w") as z:
        z.writestr("../../00_welcome.ipynb", _nb_text())  # a zip-slip path
    found = collect(subs, CHAPTERS, ["00_welcome"])
    assert found.submissions[0].notebook is not None  # read in memory by its base name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subs"]  # nothing written outside


def test_duplicate_notebooks_keep_the_first(tmp_path: Path) -> None:
    _folder(tmp_path, "alice", "00_welcome")
    with zipfile.ZipFile(tmp_path / "alice.zip", "w") as z:
        z.writestr("00_welcome.ipynb", _nb_text())
    found = collect(tmp_path, CHAPTERS, ["00_welcome"])
    assert len(found.submissions) == 1
    assert any(
        "second 00_welcome notebook alice.zip:00_welcome.ipynb ignored" in n for n in found.notes
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"cells": [', "malformed JSON at line 1, column 12"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "not a valid notebook"),
    ],
)
def test_parse_notebook_explains_what_is_wrong(data: bytes, message: str) -> None:
    nb, problem = parse_notebook(data, "x.ipynb")
    assert nb is None and message in problem


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect(tmp_path / "nope", CHAPTERS)
