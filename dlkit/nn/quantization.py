r"""Post-training int8 quantization of linear weights, from scratch and with PyTorch.

**Symmetric per-channel int8.** Each output row :math:`i` of a weight
:math:`W \in \mathbb R^{\text{out} \times \text{in}}` gets its own scale

.. math:: \Delta_i = \frac{\max_j |W_{ij}|}{127}, \qquad
   q_{ij} = \operatorname{clamp}\big(\operatorname{round}(W_{ij} / \Delta_i), -127, 127\big)
   \in \mathbb Z, \qquad \hat W_{ij} = \Delta_i\, q_{ij}.

Symmetric means the zero point is 0 (a weight of 0 maps to exactly 0) and the code range is
:math:`[-127, 127]`, leaving -128 unused so that :math:`q` and :math:`-q` are both codes.
Since :math:`|W_{ij} / \Delta_i| \le 127` the clamp never bites, and rounding to the nearest
integer gives the error bound

.. math:: |W_{ij} - \hat W_{ij}| = \Delta_i\, |W_{ij}/\Delta_i - q_{ij}| \le \Delta_i / 2 .

A row of zeros would give :math:`\Delta_i = 0`; we set its scale to 1 instead (then all
:math:`q_{ij} = 0` and :math:`\hat W_{ij} = 0` exactly). Per-channel scales matter because rows
differ in range: one shared scale would waste codes on the rows with small weights.

Storage falls from 4 bytes per weight to 1 byte plus one float32 scale per row, so a linear
layer shrinks by close to :math:`4\times` (biases stay float32).

:func:`fake_quantize_linears` replaces each weight by :math:`\hat W` in float32 ("fake"
quantization) to measure the *accuracy* of the scheme; :func:`quantize_dynamic_int8` uses
PyTorch's eager ``torch.ao.quantization.quantize_dynamic`` (int8 weights, activations quantized
on the fly per batch, int8 GEMM kernels) to measure *size and speed*. Recent PyTorch (2.13 here)
deprecates ``torch.ao`` eager quantization in favour of the separate ``torchao`` package, which
is not a dependency here; the deprecation warnings are silenced locally inside that one call.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from dlkit.nn.layers import Linear

__all__ = [
    "QMAX",
    "cpu_latency",
    "dequantize_int8",
    "fake_quantize_linears",
    "quantize_dynamic_int8",
    "quantize_int8_per_channel",
    "serialized_size",
]

QMAX = 127


def quantize_int8_per_channel(w: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric per-output-row int8 quantization.

    Args:
        w: ``(out, in)`` floating tensor.

    Returns: ``q`` ``(out, in)`` int8 in ``[-127, 127]`` and ``scale`` ``(out,)`` float32 with
    ``scale_i = max_j |w_ij| / 127`` (1.0 for an all-zero row).
    """
    if not isinstance(w, Tensor) or not w.is_floating_point():
        raise TypeError(f"w must be a floating-point tensor, got {type(w).__name__}")
    if w.dim() != 2:
        raise ValueError(f"w must have shape (out, in), got {tuple(w.shape)}")
    w32 = w.detach().to(torch.float32)
    scale = w32.abs().amax(dim=1) / QMAX  # (out,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # zero row -> scale 1
    q = torch.clamp(torch.round(w32 / scale[:, None]), -QMAX, QMAX)  # (out, in)
    return q.to(torch.int8), scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """``w_hat = scale[:, None] * q`` as float32, shape ``(out, in)``."""
    if not isinstance(q, Tensor) or q.dtype != torch.int8 or q.dim() != 2:
        raise TypeError("q must be a 2-D int8 tensor (out, in)")
    if not isinstance(scale, Tensor) or scale.shape != (q.shape[0],):
        raise ValueError(
            f"scale must have shape ({q.shape[0]},), got "
            f"{tuple(scale.shape) if isinstance(scale, Tensor) else type(scale).__name__}"
        )
    return scale.to(torch.float32)[:, None] * q.to(torch.float32)  # (out, in)


def fake_quantize_linears(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` with every ``nn.Linear`` / dlkit ``Linear`` weight replaced by
    its int8 round trip :math:`\\hat W` (float32). Biases are unchanged. ``model`` is untouched.
    """
    fake = copy.deepcopy(model)
    found = 0
    with torch.no_grad():
        for module in fake.modules():
            if isinstance(module, (nn.Linear, Linear)):
                q, scale = quantize_int8_per_channel(module.weight)
                module.weight.copy_(dequantize_int8(q, scale).to(module.weight.dtype))
                found += 1
    if found == 0:
        raise ValueError("model has no nn.Linear or dlkit Linear layer to quantize")
    return fake


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """int8 dynamic quantization of the ``nn.Linear`` layers of a copy of ``model`` (eval, CPU).

    Wraps ``torch.ao.quantization.quantize_dynamic(copy, {nn.Linear}, dtype=torch.qint8)``
    with its deprecation warnings silenced. Only ``torch.nn.Linear`` is converted (dlkit's
    ``Linear`` is not an ``nn.Linear``). ``model`` is untouched.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    source = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(source, {nn.Linear}, dtype=torch.qint8)


def serialized_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` in memory (a measurement, not a format)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def cpu_latency(model: nn.Module, example: Any, *, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall-clock seconds of ``model(example)`` under ``torch.inference_mode``.

    ``example`` is a tensor or a tuple of positional arguments. ``warmup`` untimed calls come
    first. The median is robust to the odd slow call on a shared machine.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    args = example if isinstance(example, tuple) else (example,)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(*args)
            for _ in range(repeats):
                start = time.perf_counter()
                model(*args)
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)
