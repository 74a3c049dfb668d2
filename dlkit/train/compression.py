r"""Compression experiments: how much a trained model can be pruned or quantized before it gets worse.

**Sparsity sweep.** For each target sparsity :math:`s_1 < s_2 < \dots` a fresh copy of the
model is magnitude-pruned (:func:`dlkit.nn.pruning.prune_by_magnitude`, no retraining) and
evaluated, giving the curve :math:`a(s)` of test accuracy against the fraction of weights
removed. With the dense accuracy :math:`a_0` and a tolerated drop :math:`\delta` (one point:
:math:`\delta = 0.01`), :func:`sparsity_at_drop` reports

.. math:: s^\star = \max\{\, s_k : a(s_j) \ge a_0 - \delta \ \text{for every } j \le k \,\},

the last sparsity of the unbroken run of passing points (a lucky pass after a failure does
not count). Pruning happens in float32 on the copy; the zeros make no dense kernel faster.

**int8 report.** :func:`int8_report` compares three variants of one model:

- ``fp32``: the model itself;
- ``int8_dynamic``: PyTorch's ``quantize_dynamic`` (int8 ``nn.Linear`` weights and GEMMs),
  measured for size (bytes of the saved ``state_dict``) and CPU latency;
- ``int8_scratch``: dlkit's per-channel int8 round trip
  (:func:`dlkit.nn.quantization.fake_quantize_linears`), measured for accuracy. It is a
  simulation in float32, so its latency is not reported and its size is the *ideal* int8
  storage, counted analytically (:func:`ideal_int8_bytes`).

Ratios: ``size_ratio`` :math:`= B_{fp32} / B_{int8}`, ``speedup``
:math:`= t_{fp32} / t_{int8}`, ``accuracy_drop`` :math:`= a_{fp32} - a_{int8}` (a fraction),
all three against ``int8_dynamic``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dlkit.nn.layers import Linear
from dlkit.nn.pruning import DEFAULT_MODULE_TYPES, prunable_modules, prune_by_magnitude, sparsity
from dlkit.nn.quantization import (
    cpu_latency,
    fake_quantize_linears,
    quantize_dynamic_int8,
    serialized_size,
)
from dlkit.train.device import one_thread
from dlkit.train.distillation import accuracy

__all__ = [
    "format_int8_report",
    "format_sparsity_sweep",
    "ideal_int8_bytes",
    "int8_report",
    "sparsity_at_drop",
    "sparsity_sweep",
    "surviving_weights",
]

_TOLERANCE = 1e-12  # accuracies are ratios of counts: absorb the rounding of baseline - drop


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return model


def _check_data(x: Any, y: Any) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise ValueError(
            f"x (N, ...) and y (N,) must hold the same N > 0 examples, got x {tuple(x.shape)} "
            f"and y {tuple(y.shape)}"
        )


def _check_sparsities(sparsities: Any) -> list[float]:
    values = list(sparsities) if isinstance(sparsities, Sequence | np.ndarray) else None
    if not values:
        raise ValueError(f"sparsities must be a non-empty sequence, got {sparsities!r}")
    for s in values:
        if isinstance(s, bool) or not isinstance(s, Real) or not 0.0 <= float(s) < 1.0:
            raise ValueError(f"each sparsity must be a number in [0, 1), got {s!r}")
    values = [float(s) for s in values]
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"sparsities must be strictly increasing, got {values}")
    return values


def _types(module_types: Sequence[type[nn.Module]] | None) -> tuple[type[nn.Module], ...]:
    return DEFAULT_MODULE_TYPES if module_types is None else tuple(module_types)


def _nonzero_weights(model: nn.Module, types: tuple[type[nn.Module], ...]) -> np.ndarray:
    """The nonzero entries of every prunable weight, flattened into one float32 array ``(n,)``."""
    flat = torch.cat(
        [m.weight.detach().reshape(-1).cpu() for m in prunable_modules(model, types).values()]
    )
    return flat[flat != 0].numpy().astype(np.float32)


def _pruned_copy(
    model: nn.Module, s: float, scope: str, types: tuple[type[nn.Module], ...]
) -> nn.Module:
    pruned = copy.deepcopy(model)
    prune_by_magnitude(pruned, s, scope=scope, module_types=types)
    return pruned


def surviving_weights(
    model: nn.Module,
    sparsity: float,
    *,
    scope: str = "global",
    module_types: Sequence[type[nn.Module]] | None = None,
) -> np.ndarray:
    """The nonzero prunable weights ``(n,)`` of a copy of ``model`` pruned to ``sparsity``.

    ``model`` is untouched. ``n`` is about ``(1 - sparsity)`` times the prunable weight count.
    """
    types = _types(module_types)
    (s,) = _check_sparsities([sparsity])
    return _nonzero_weights(_pruned_copy(_check_model(model), s, scope, types), types)


def sparsity_sweep(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    sparsities: Sequence[float],
    *,
    scope: str = "global",
    module_types: Sequence[type[nn.Module]] | None = None,
    keep_weights: bool = False,
) -> list[dict[str, Any]]:
    """Test accuracy of magnitude-pruned copies of ``model``, one per sparsity.

    Args:
        model: a trained classifier ``(N, ...) -> (N, K)``; never modified (each sparsity
            prunes its own deep copy).
        x, y: evaluation inputs ``(N, ...)`` and labels ``(N,)``.
        sparsities: strictly increasing fractions in ``[0, 1)``.
        scope: ``"global"`` or ``"layer"`` (see :func:`~dlkit.nn.pruning.prune_by_magnitude`).
        module_types: modules to prune (default: ``nn.Linear``, ``nn.Conv2d``, dlkit ``Linear``).
        keep_weights: also store the surviving nonzero weights ``(n,)`` under ``"weights"``.

    Returns one dict per sparsity: ``sparsity`` (asked), ``measured_sparsity`` (fraction of
    zeros over the pruned modules' weights) and ``accuracy`` (a fraction in [0, 1]).
    """
    _check_model(model)
    _check_data(x, y)
    values = _check_sparsities(sparsities)
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    types = _types(module_types)
    rows = []
    with one_thread():
        for s in values:
            pruned = _pruned_copy(model, s, scope, types)
            row = {"sparsity": s, "measured_sparsity": sparsity(pruned, types),
                   "accuracy": accuracy(pruned, x, y)}  # fmt: skip
            if keep_weights:
                row["weights"] = _nonzero_weights(pruned, types)
            rows.append(row)
    return rows


def _check_rows(rows: Any) -> list[Mapping[str, Any]]:
    if not isinstance(rows, Sequence) or not rows:
        raise ValueError("rows must be a non-empty list of {'sparsity', 'accuracy'} dicts")
    if any(not isinstance(r, Mapping) or not {"sparsity", "accuracy"} <= set(r) for r in rows):
        raise ValueError("every row must be a dict with 'sparsity' and 'accuracy'")
    s = [float(r["sparsity"]) for r in rows]
    if any(b <= a for a, b in itertools.pairwise(s)):
        raise ValueError(f"rows must be sorted by strictly increasing sparsity, got {s}")
    return list(rows)


def sparsity_at_drop(
    rows: Sequence[Mapping[str, Any]], *, baseline: float, drop: float = 0.01
) -> float:
    r"""The largest :math:`s_k` with :math:`a(s_j) \ge` ``baseline - drop`` for all :math:`j \le k`.

    ``rows`` as returned by :func:`sparsity_sweep` (sorted by sparsity); ``baseline`` the dense
    accuracy and ``drop`` the tolerated loss, both fractions. 0.0 when the first row fails.
    """
    rows = _check_rows(rows)
    if isinstance(baseline, bool) or not isinstance(baseline, Real) or not 0 <= baseline <= 1:
        raise ValueError(f"baseline must be an accuracy in [0, 1], got {baseline!r}")
    if isinstance(drop, bool) or not isinstance(drop, Real) or not 0 <= drop <= 1:
        raise ValueError(f"drop must be a fraction in [0, 1], got {drop!r}")
    threshold = float(baseline) - float(drop) - _TOLERANCE
    best = 0.0
    for row in rows:
        if float(row["accuracy"]) < threshold:
            break
        best = float(row["sparsity"])
    return best


def ideal_int8_bytes(model: nn.Module) -> int:
    r"""Bytes to store ``model`` with int8 per-channel ``Linear`` weights, counted analytically.

    For a weight :math:`W \in \mathbb R^{\text{out} \times \text{in}}` of an ``nn.Linear`` or
    dlkit ``Linear``: :math:`\text{out} \cdot \text{in}` bytes (one int8 code each) plus
    :math:`4 \cdot \text{out}` (one float32 scale per row). Every other parameter and
    buffer (biases, convolutions, norms) keeps its own dtype (4 bytes for float32). No file
    format overhead, unlike :func:`~dlkit.nn.quantization.serialized_size`.
    """
    _check_model(model)
    quantized = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear | Linear)}
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in quantized:
            total += t.numel() + 4 * t.shape[0]  # int8 codes + float32 scales
        else:
            total += t.numel() * t.element_size()
    return total


def int8_report(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    example: Tensor | None = None,
    repeats: int = 50,
) -> dict[str, Any]:
    """Size, accuracy and CPU latency of ``model`` in float32 and in int8 (see the module doc).

    Args:
        model: a classifier ``(N, ...) -> (N, K)``; copied to the CPU in eval mode, untouched.
        x, y: evaluation inputs ``(N, ...)`` and labels ``(N,)``.
        example: the batch timed by :func:`~dlkit.nn.quantization.cpu_latency` (default
            ``x[:256]``), one thread, median of ``repeats`` calls.

    Returns ``{"fp32", "int8_dynamic", "int8_scratch"}`` each ``{"bytes", "accuracy",
    "latency_s"}`` (``bytes`` of the saved ``state_dict`` for the first two, the analytic
    :func:`ideal_int8_bytes` for the scratch variant, whose ``latency_s`` is ``None``), plus
    ``size_ratio``, ``accuracy_drop``, ``speedup`` (fp32 against ``int8_dynamic``) and
    ``ideal_size_ratio`` (float32 parameter bytes over :func:`ideal_int8_bytes`).
    """
    _check_model(model)
    _check_data(x, y)
    x, y = x.cpu(), y.cpu()
    example = x[:256] if example is None else example.cpu()
    fp32 = copy.deepcopy(model).cpu().eval()
    dynamic = quantize_dynamic_int8(fp32).eval()
    scratch = fake_quantize_linears(fp32).eval()
    with one_thread():
        t_fp32 = cpu_latency(fp32, example, repeats=repeats)
        t_int8 = cpu_latency(dynamic, example, repeats=repeats)
        variants = {
            "fp32": {"bytes": serialized_size(fp32), "accuracy": accuracy(fp32, x, y),
                     "latency_s": t_fp32},
            "int8_dynamic": {"bytes": serialized_size(dynamic),
                             "accuracy": accuracy(dynamic, x, y), "latency_s": t_int8},
            "int8_scratch": {"bytes": ideal_int8_bytes(fp32),
                             "accuracy": accuracy(scratch, x, y), "latency_s": None},
        }  # fmt: skip
    fp32_ideal = sum(t.numel() * t.element_size() for t in [*fp32.parameters(), *fp32.buffers()])
    return {
        **variants,
        "size_ratio": variants["fp32"]["bytes"] / variants["int8_dynamic"]["bytes"],
        "accuracy_drop": variants["fp32"]["accuracy"] - variants["int8_dynamic"]["accuracy"],
        "speedup": t_fp32 / t_int8,
        "ideal_size_ratio": fp32_ideal / variants["int8_scratch"]["bytes"],
    }


def format_int8_report(report: Mapping[str, Any]) -> str:
    """The result of :func:`int8_report` as a plain-text table (accuracy in %)."""
    lines = [f"{'variant':<14} {'bytes':>10} {'accuracy':>9} {'latency':>10}"]
    for name in ("fp32", "int8_dynamic", "int8_scratch"):
        v = report[name]
        latency = "-" if v["latency_s"] is None else f"{1e3 * v['latency_s']:.3f} ms"
        lines.append(f"{name:<14} {v['bytes']:>10,} {100 * v['accuracy']:>8.2f}% {latency:>10}")
    lines.append(
        f"int8_dynamic vs fp32: {report['size_ratio']:.2f}x smaller, "
        f"{report['speedup']:.2f}x faster, accuracy drop {100 * report['accuracy_drop']:.2f} points"
    )
    lines.append("int8_scratch bytes are the ideal int8 storage (codes + scales), not a file")
    return "\n".join(lines)


def format_sparsity_sweep(rows: Sequence[Mapping[str, Any]], *, baseline: float) -> str:
    """The rows of :func:`sparsity_sweep` as a plain-text table (accuracy and drop in %)."""
    rows = _check_rows(rows)
    lines = [f"{'sparsity':>8} {'measured':>9} {'accuracy':>9} {'drop':>7}"]
    for r in rows:
        measured = r.get("measured_sparsity", float("nan"))
        lines.append(
            f"{100 * r['sparsity']:>7.1f}% {100 * measured:>8.2f}% {100 * r['accuracy']:>8.2f}% "
            f"{100 * (baseline - r['accuracy']):>6.2f}"
        )
    lines.append(f"dense baseline: {100 * baseline:.2f}%")
    return "\n".join(lines)
