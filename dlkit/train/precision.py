"""Mixed precision, TF32 and ``torch.compile``: speed switches that are safe by default.

Mixed precision runs matrix multiplies and convolutions in a 16-bit float while the
weights, the optimizer state and reductions such as the loss stay in float32:

- **bf16** (bfloat16) keeps float32's 8 exponent bits (range up to about 3e38) with 7
  mantissa bits, so gradients do not underflow and no loss scaling is needed.
- **fp16** (float16) has 10 mantissa bits but only 5 exponent bits: values below about
  6e-8 flush to zero, so small gradients vanish. A *gradient scaler* multiplies the loss
  by a large factor :math:`s` before ``backward`` (gradients become :math:`s\\,g`),
  divides them by :math:`s` before the optimizer step, skips steps whose gradients
  overflowed to inf/nan and adapts :math:`s`.

Nothing here touches global state at import; every function takes the device.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Literal, cast

import torch
from torch import nn

from dlkit.train.device import DeviceLike

Precision = Literal["auto", "bf16", "fp16", "fp32"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(device: DeviceLike, precision: str = "auto") -> str:
    """The precision that :func:`autocast` will actually use: ``"bf16"``, ``"fp16"`` or ``"fp32"``.

    ``"auto"`` means bf16 on a CUDA GPU that supports it (Ampere and later), fp16 (with a
    gradient scaler) on older GPUs, and fp32 on CPU and MPS: CPU autocast is often
    *slower* than fp32 for small models, and MPS support varies by macOS version, so
    reduced precision there is something to ask for, not a default.

    Raises:
        ValueError: unknown name; fp16 off CUDA (it needs a gradient scaler, which dlkit
            only enables on CUDA); bf16 on a GPU or backend without bf16 autocast.
    """
    device = torch.device(device)
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(
            f"precision {precision!r} is not known; use 'auto', 'bf16', 'fp16' or 'fp32'"
        )
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        # Native bf16 only: pre-Ampere GPUs (T4, V100) emulate it, slower than fp16.
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision 'fp16' needs a CUDA GPU (float16 gradients underflow without a "
            f"gradient scaler), but the device is {device}; use 'bf16' or 'fp32'"
        )
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"precision 'bf16' is not supported by {torch.cuda.get_device_name(device)}; "
                "use 'fp16' (with a gradient scaler) or 'auto'"
            )
        if not torch.amp.is_autocast_available(device.type):
            raise ValueError(f"this torch has no autocast for {device.type}; use 'fp32'")
    return precision


def autocast(device: DeviceLike, precision: str = "auto") -> AbstractContextManager[object]:
    """A context manager that runs the forward pass (and the loss) in mixed precision.

    Wrap the forward pass and the loss, not ``backward``: autograd replays each op in the
    dtype its forward used. In fp32 this is ``contextlib.nullcontext()``, so training code
    reads the same on every device::

        with autocast(device, "auto"):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
    """
    device = torch.device(device)
    chosen = resolve_precision(device, precision)
    if chosen == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[chosen])


def grad_scaler(device: DeviceLike, precision: str = "auto") -> torch.amp.GradScaler:
    """A ``torch.amp.GradScaler`` that is enabled only for fp16 on CUDA.

    Every other combination gets a *disabled* scaler, whose ``scale(loss)`` returns the
    loss unchanged, ``unscale_`` does nothing and ``step(opt)`` just calls ``opt.step()``,
    so one training loop serves every precision.
    """
    device = torch.device(device)
    enabled = resolve_precision(device, precision) == "fp16" and device.type == "cuda"
    return torch.amp.GradScaler(device.type, enabled=enabled)


def enable_tf32(enabled: bool = True) -> bool:
    """Let float32 matmuls and convolutions use TF32 tensor cores on Ampere+ GPUs.

    TF32 keeps float32's range but rounds the multiplicands' mantissa to 10 bits (about 3
    decimal digits), which is plenty for training and several times faster. This sets
    ``torch.set_float32_matmul_precision("high" | "highest")`` and
    ``torch.backends.cudnn.allow_tf32``; both are process-wide switches, so call it once at
    the top of a run. Returns True when TF32 is now in use: CUDA is available, the GPU is
    Ampere or newer (compute capability 8.0+) and ``enabled`` is True. Without CUDA it
    changes nothing and returns False.
    """
    if not torch.cuda.is_available():
        return False
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    torch.backends.cudnn.allow_tf32 = enabled
    major, _ = torch.cuda.get_device_capability()
    return enabled and major >= 8


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled``, else ``model`` unchanged.

    Compilation is opt-in: the first steps pay seconds to minutes of compile time, it
    needs a C++ compiler on CPU, and errors inside compiled code are harder for a learner
    to read. The compiled module shares its parameters with ``model``; its
    ``state_dict`` keys gain an ``_orig_mod.`` prefix, which dlkit's checkpoints strip.
    """
    if not enabled:
        return model
    return cast(nn.Module, torch.compile(model))
