"""Chapter 10's graded tests catch the mistakes the chapter warns about.

Each exercise's test cell (visible and hidden tests) runs against the reference solution,
which must pass, and against a copy with one classic mistake, which must fail: LoRA's
alpha / r lost on merge or B not zero at the start; the distillation KL averaged with
``mean`` instead of ``batchmean`` or without T^2; a threshold pruning mask that removes the
wrong count on ties; int8 with one scale per tensor or truncation instead of rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "course/source/10_finetuning/10_finetuning.ipynb"
PREAMBLE = """
import copy, math
import torch
import torch.nn.functional as F
from torch import nn
from dlkit.grading import (assert_close, assert_no_shortcuts, assert_raises, assert_shape,
                           forbid_calls)
"""
THRESHOLD_MASK = """
def prune_mask(weight, sparsity):
    k = round(sparsity * weight.numel())
    if k == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    tau = weight.detach().abs().reshape(-1).sort().values[k - 1]
    return weight.abs() > tau  # removes every tie of the k-th magnitude
"""


def _cells() -> dict[str, str]:
    nb = json.loads(NOTEBOOK.read_text())
    out = {}
    for c in nb["cells"]:
        grade_id = c["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id:
            out[grade_id] = "".join(c["source"])
    return out


CELLS = _cells()
# (exercise, mistake, text in the solution, its replacement; None: append an override)
MISTAKES = [
    ("lora", "merge without alpha / r", "self.base.weight += self.scale * (self.lora_B @ self.lora_A)",
     "self.base.weight += self.lora_B @ self.lora_A"),
    ("lora", "B random at the start", "torch.zeros(base.out_features, r)",
     "0.01 * torch.randn(base.out_features, r)"),
    ("distillation", "reduction='mean' (divides by B K)", ".sum(dim=-1).mean()", ".mean()"),
    ("distillation", "no T^2 factor", "alpha * T**2 * kl", "alpha * kl"),
    ("distillation", "teacher not detached", "teacher_logits.detach() / T", "teacher_logits / T"),
    ("pruning", "threshold mask (ties)", None, THRESHOLD_MASK),
    ("quantization", "one scale per tensor", "w.abs().amax(dim=1) / 127",
     "w.abs().max().expand(w.shape[0]) / 127"),
    ("quantization", "truncation instead of rounding", "torch.round(w / scale[:, None])",
     "torch.trunc(w / scale[:, None])"),
]  # fmt: skip


def _run(exercise: str, solution: str) -> None:
    namespace: dict = {}
    exec(PREAMBLE, namespace)
    exec(solution, namespace)
    exec(CELLS[f"{exercise}_tests"], namespace)


@pytest.mark.parametrize("exercise", sorted({m[0] for m in MISTAKES}))
def test_the_reference_solution_passes(exercise: str) -> None:
    _run(exercise, CELLS[exercise])


@pytest.mark.parametrize(("exercise", "mistake", "old", "new"), MISTAKES,
                         ids=[m[1] for m in MISTAKES])  # fmt: skip
def test_each_classic_mistake_fails(exercise: str, mistake: str, old: str | None, new: str) -> None:
    solution = CELLS[exercise]
    if old is None:
        wrong = solution + "\n" + new
    else:
        assert old in solution, f"the {exercise} solution no longer contains {old!r}"
        wrong = solution.replace(old, new)
    with pytest.raises(AssertionError):  # CheckFailed is an AssertionError
        _run(exercise, wrong)
