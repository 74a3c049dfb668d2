from __future__ import annotations

import pytest

from dlkit.runtime import by_mode, quick_mode


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"NBGRADER_EXECUTION": "autograde"}, True),
        ({"NBGRADER_EXECUTION": "validate"}, True),
        ({"DLKIT_QUICK": "1"}, True),
        ({"DLKIT_QUICK": " Yes "}, True),
        (
            {"DLKIT_QUICK": "0", "NBGRADER_EXECUTION": "autograde"},
            False,
        ),  # instructor forces full size
        ({"DLKIT_QUICK": "", "NBGRADER_EXECUTION": "autograde"}, True),
    ],
)
def test_quick_mode(environ: dict[str, str], expected: bool) -> None:
    assert quick_mode(environ) is expected


def test_unknown_value_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match=r"DLKIT_QUICK='maybe' is not understood"):
        quick_mode({"DLKIT_QUICK": "maybe"})


def test_by_mode_reads_the_environment_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("DLKIT_QUICK", "0")
    assert by_mode(5000, 200) == 5000
    monkeypatch.setenv("DLKIT_QUICK", "1")
    assert by_mode(5000, 200) == 200
