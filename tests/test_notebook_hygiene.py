"""Every chapter notebook is stored clean and carries sound nbgrader metadata."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

SOURCE = Path(__file__).resolve().parents[1] / "course" / "source"
CHAPTER_ORDER = [
    "00_welcome", "01_backprop", "02_activations", "03_losses", "04_optimizers",
    "05_regularization", "06_cnn", "07_rnn", "08_transformer", "09_pretraining",
    "10_finetuning", "11_scale",
]  # fmt: skip
NOTEBOOKS = sorted(SOURCE.glob("*/*.ipynb"))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_chapters_are_named_in_course_order() -> None:
    chapters = sorted(p.name for p in SOURCE.iterdir() if p.is_dir())
    assert chapters, "course/source has no chapters"
    unknown = [c for c in chapters if c not in CHAPTER_ORDER]
    assert not unknown, f"chapters {unknown} are not in the course plan {CHAPTER_ORDER}"
    for chapter in chapters:
        notebooks = [p.name for p in (SOURCE / chapter).glob("*.ipynb")]
        assert notebooks == [f"{chapter}.ipynb"], f"{chapter}/ must hold exactly {chapter}.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; run nbstripout"
    assert "widgets" not in nb.metadata, f"{path.name}: stored widget state; run nbstripout"
    timed = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata]
    assert not timed, f"{path.name}: cells {timed} store execution timestamps; run nbstripout"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbgrader_metadata(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    ids = [_meta(c)["grade_id"] for c in nb.cells if _meta(c)]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade_id"

    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert _meta(first_code).get("locked") and "prepare_kernel()" in first_code.source, (
        f"{path.name}: the first code cell must be the locked setup cell calling prepare_kernel()"
    )
    solutions = [c for c in nb.cells if _meta(c).get("solution")]
    tests = [c for c in nb.cells if _meta(c).get("grade") and c.cell_type == "code"]
    assert solutions and tests, f"{path.name}: needs graded exercises (solution and test cells)"
    for cell in solutions:
        assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
    for cell in tests:
        assert cell.metadata.nbgrader["points"] > 0 and cell.metadata.nbgrader["locked"]
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in tests), f"{path.name}: no hidden tests"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_hard_coded_cuda_or_downloads(path: Path) -> None:
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    assert not re.search(r"\.cuda\(\)|device=['\"]cuda", text), "use dlkit.train.get_device('auto')"
    assert not re.search(r"download=True|urlretrieve|urlopen|from_pretrained\(", text)
