"""The issue-3 benchmark scripts run end to end at tiny sizes and write honest reports.

Their numbers are not checked (timings belong in bench/results, not in tests); what is
checked is that each script runs, compares what it says it compares, and reports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(BENCH / name), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_trainer_overhead_trains_both_sides_alike(tmp_path: Path) -> None:
    run_script("trainer_overhead.py", "--setups", "tiny", "--repeat", "1", "--warmup", "0",
               "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "trainer_overhead.json").read_text())
    (result,) = report["setups"]
    assert result["fair"] and result["weights"]["identical"]  # same training on both sides
    assert result["ratio"] > 0 and result["steps_per_epoch"] == 512
    assert "Trainer overhead" in (tmp_path / "trainer_overhead.md").read_text()


@pytest.mark.slow
def test_gpu_precision_runs_its_workloads_on_cpu(tmp_path: Path) -> None:
    run_script("gpu_precision.py", "--device", "cpu", "--small", "--repeat", "1", "--steps", "1",
               "--warmup", "1", "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "gpu_precision.json").read_text())
    assert [r["workload"] for r in report["results"]] == ["gpt", "cnn"]
    for r in report["results"]:
        assert set(r["median_seconds_per_step"]) == {"fp32", "bf16"}  # no TF32 off CUDA
        assert r["speedup_bf16_over_fp32"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report without a GPU")
def test_gpu_precision_says_not_measured_without_cuda(tmp_path: Path) -> None:
    run_script("gpu_precision.py", "--out", str(tmp_path))
    text = (tmp_path / "gpu_precision.md").read_text()
    assert "**Not measured**: no CUDA device" in text
    assert json.loads((tmp_path / "gpu_precision.json").read_text())["results"] == []
