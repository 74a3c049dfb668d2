"""Tests for dlkit.nn.quantization: the int8 round trip, its error bound, torch's dynamic int8."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlkit.nn.layers import Linear
from dlkit.nn.quantization import (
    cpu_latency,
    dequantize_int8,
    fake_quantize_linears,
    quantize_dynamic_int8,
    quantize_int8_per_channel,
    serialized_size,
)


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))


@settings(max_examples=50, deadline=None)
@given(
    rows=st.integers(1, 8),
    cols=st.integers(1, 8),
    log_range=st.floats(-6.0, 4.0),
    seed=st.integers(0, 10_000),
)
def test_round_trip_error_at_most_half_a_step(rows, cols, log_range, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 10.0**log_range
    q, scale = quantize_int8_per_channel(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (rows,)
    assert int(q.abs().max()) <= 127
    err = (w - dequantize_int8(q, scale)).abs()  # (rows, cols)
    assert torch.all(err <= scale[:, None] / 2 * (1 + 1e-5))
    # the largest entry of each row maps to +-127 exactly
    assert torch.equal(q.abs().amax(dim=1), torch.full((rows,), 127, dtype=torch.int8))


def test_scale_formula_and_zero_row():
    w = torch.tensor([[0.5, -1.27, 0.0], [0.0, 0.0, 0.0], [2.54, 1.0, -0.3]])
    q, scale = quantize_int8_per_channel(w)
    assert torch.allclose(scale, torch.tensor([1.27 / 127, 1.0, 2.54 / 127]))
    assert torch.equal(q[1], torch.zeros(3, dtype=torch.int8))
    assert torch.equal(q[0], torch.tensor([50, -127, 0], dtype=torch.int8))
    assert torch.equal(dequantize_int8(q, scale)[1], torch.zeros(3))


def test_per_channel_beats_one_shared_scale():
    torch.manual_seed(0)
    w = torch.randn(8, 32) * torch.logspace(-3, 0, 8)[:, None]  # rows of very different range
    q, scale = quantize_int8_per_channel(w)
    per_channel = (w - dequantize_int8(q, scale)).abs().mean()
    s = w.abs().max() / 127
    shared = (w - torch.round(w / s) * s).abs().mean()
    assert per_channel < shared / 2


def test_quantization_errors():
    with pytest.raises(ValueError, match="out, in"):
        quantize_int8_per_channel(torch.randn(4))
    with pytest.raises(TypeError, match="floating"):
        quantize_int8_per_channel(torch.ones(2, 2, dtype=torch.int32))
    q, scale = quantize_int8_per_channel(torch.randn(3, 2))
    with pytest.raises(ValueError, match="scale"):
        dequantize_int8(q, scale[:2])
    with pytest.raises(TypeError, match="int8"):
        dequantize_int8(q.float(), scale)


def test_fake_quantize_linears_is_a_close_copy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), Linear(32, 5))
    before = [p.clone() for p in model.parameters()]
    fake = fake_quantize_linears(model)
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)  # original untouched
    for src, dst in ((model[0], fake[0]), (model[2], fake[2])):
        q, scale = quantize_int8_per_channel(src.weight)
        assert torch.equal(dst.weight, dequantize_int8(q, scale))
        assert torch.equal(dst.bias, src.bias)
        assert not torch.equal(dst.weight, src.weight)
    x = torch.randn(10, 16)
    assert torch.allclose(fake(x), model(x), atol=2e-2)
    with pytest.raises(ValueError, match="Linear"):
        fake_quantize_linears(nn.Sequential(nn.ReLU()))


def test_quantize_dynamic_int8_silent_close_and_smaller():
    model = _mlp().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qmodel = quantize_dynamic_int8(model)
    assert caught == []
    assert isinstance(model[0], nn.Linear) and type(qmodel[0]) is not nn.Linear
    x = torch.randn(20, 64)
    with torch.inference_mode():
        ref, out = model(x), qmodel(x)
    assert torch.allclose(out, ref, atol=5e-2)
    assert (out - ref).abs().max() > 0  # it really is quantized
    ratio = serialized_size(model) / serialized_size(qmodel)
    assert 3.0 < ratio < 4.0


def test_serialized_size_counts_float32_bytes():
    small, big = nn.Linear(10, 10), nn.Linear(100, 100)
    overhead = serialized_size(small) - 4 * (10 * 10 + 10)
    assert overhead > 0
    delta = serialized_size(big) - serialized_size(small)
    assert delta == pytest.approx(4 * (100 * 100 + 100 - 110), rel=0.01)


def test_cpu_latency_is_positive_and_restores_mode():
    model = _mlp().train()
    t = cpu_latency(model, torch.randn(4, 64), repeats=5, warmup=1)
    assert 0.0 < t < 1.0
    assert model.training
    with pytest.raises(ValueError, match="repeats"):
        cpu_latency(model, torch.randn(4, 64), repeats=0)
