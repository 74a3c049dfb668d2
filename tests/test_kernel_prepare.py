"""prepare_kernel: warnings must not reach stderr while nbgrader runs a notebook."""

from __future__ import annotations

import warnings

import pytest

from dlkit.grading import prepare_kernel


@pytest.fixture(autouse=True)
def _restore_showwarning():
    original = warnings.showwarning
    yield
    warnings.showwarning = original


def test_under_nbgrader_warnings_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert prepare_kernel({"NBGRADER_EXECUTION": "autograde"}) is True
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("harmless", UserWarning, stacklevel=1)
    captured = capsys.readouterr()
    assert "UserWarning: harmless" in captured.out
    assert captured.err == ""


def test_a_learners_own_run_is_untouched() -> None:
    before = warnings.showwarning
    assert prepare_kernel({}) is False
    assert warnings.showwarning is before


def test_under_nbgrader_widgets_get_a_silent_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    comm = pytest.importorskip("comm")
    widgets = pytest.importorskip("ipywidgets")
    monkeypatch.setattr(comm, "create_comm", comm.create_comm)  # restored afterwards
    assert prepare_kernel({"NBGRADER_EXECUTION": "validate"}) is True
    slider = widgets.IntSlider(value=1)
    seen: list[int] = []
    slider.observe(lambda change: seen.append(change["new"]), names="value")
    slider.value = 5
    assert isinstance(slider.comm, comm.DummyComm) and seen == [5]  # callbacks still run
