"""Mixed precision picks what the device supports and is a no-op where unsupported."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from dlkit.train import autocast, enable_tf32, grad_scaler, maybe_compile
from dlkit.train.precision import resolve_precision

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_on_cpu_is_plain_fp32() -> None:
    assert resolve_precision("cpu", "auto") == "fp32"
    assert isinstance(autocast("cpu", "auto"), contextlib.nullcontext)
    assert isinstance(autocast("cpu", "fp32"), contextlib.nullcontext)
    with autocast("cpu", "auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_explicit_bf16_on_cpu_uses_cpu_autocast() -> None:
    with autocast("cpu", "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32  # only inside


def test_fp16_off_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'fp16' needs a CUDA GPU.*device is cpu"):
        autocast("cpu", "fp16")


def test_unknown_precision_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'auto', 'bf16', 'fp16' or 'fp32'"):
        autocast("cpu", "half")


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])
def test_scaler_is_disabled_off_cuda_and_transparent(precision: str) -> None:
    scaler = grad_scaler("cpu", precision)
    assert not scaler.is_enabled()
    loss = torch.tensor(2.0, requires_grad=True)
    assert scaler.scale(loss) is loss  # same loop for every precision


def test_tf32_is_a_no_op_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert enable_tf32() is False


def test_auto_picks_fp16_where_bf16_is_only_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A T4 or V100 answers is_bf16_supported() True by emulation; auto must not pick it."""
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert resolve_precision("cuda", "auto") == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("cuda", "auto") == "bf16"


def test_compile_is_opt_in() -> None:
    model = nn.Linear(2, 2)
    assert maybe_compile(model, enabled=False) is model


@needs_cuda
def test_auto_on_cuda_prefers_bf16_and_scales_only_fp16() -> None:
    expected = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    assert resolve_precision("cuda", "auto") == expected
    assert grad_scaler("cuda", "fp16").is_enabled()
    assert not grad_scaler("cuda", "fp32").is_enabled()
    with autocast("cuda", "fp16"):
        out = torch.ones(4, 4, device="cuda") @ torch.ones(4, 4, device="cuda")
    assert out.dtype == torch.float16


@needs_cuda
def test_tf32_on_cuda_reports_ampere() -> None:
    try:
        major, _ = torch.cuda.get_device_capability()
        assert enable_tf32(True) is (major >= 8)
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        enable_tf32(False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")  # torch.compile's imports
def test_compiled_model_wraps_without_compiling_yet() -> None:
    model = nn.Linear(2, 2)
    compiled = maybe_compile(model, enabled=True)  # compiles lazily, on the first call
    assert compiled is not model and compiled._orig_mod is model
