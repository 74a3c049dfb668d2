"""dlkit.train.compression on a tiny trained MLP: the sparsity sweep leaves the model alone and
hits the sparsity asked for, the 'sparsity at a drop' rule, and the int8 report's sizes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlkit.nn.pruning import layer_sparsity, prune_by_magnitude
from dlkit.train.compression import (
    format_int8_report,
    format_sparsity_sweep,
    ideal_int8_bytes,
    int8_report,
    sparsity_at_drop,
    sparsity_sweep,
    surviving_weights,
)
from dlkit.train.distillation import accuracy

N_WEIGHTS = 8 * 32 + 32 * 3  # the prunable weights of the MLP below (biases are not pruned)


@pytest.fixture(scope="module")
def trained():
    """A 8-32-3 MLP trained for 60 full-batch Adam steps on three Gaussian blobs."""
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(3, 8, generator=g)
    y = torch.arange(3).repeat(100)  # (300,)
    x = centres[y] + torch.randn(300, 8, generator=g)  # (300, 8)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x, y


def test_sweep_leaves_the_model_untouched(trained) -> None:
    model, x, y = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sparsity_sweep(model, x, y, [0.0, 0.5, 0.9], keep_weights=True)
    sparsity_sweep(model, x, y, [0.3], scope="layer")
    after = model.state_dict()
    assert before.keys() == after.keys()  # no weight_orig / weight_mask left behind
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert not any(m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_measured_sparsity_is_the_one_asked(trained, scope) -> None:
    model, x, y = trained
    rows = sparsity_sweep(model, x, y, (0.0, 0.25, 0.5, 0.9), scope=scope, keep_weights=True)
    for r in rows:
        assert r["measured_sparsity"] == pytest.approx(r["sparsity"], abs=1 / N_WEIGHTS)
        # each layer (or the pooled weights) loses exactly round(s * n) of its n weights
        sizes = [8 * 32, 32 * 3] if scope == "layer" else [N_WEIGHTS]
        kept = sum(n - round(r["sparsity"] * n) for n in sizes)
        assert r["weights"].shape == (kept,)
        assert np.all(r["weights"] != 0)
        assert 0.0 <= r["accuracy"] <= 1.0
    # the helper prunes its own copy to the same weights
    np.testing.assert_array_equal(surviving_weights(model, 0.5, scope=scope), rows[2]["weights"])
    if scope == "layer":  # every layer at the target, not only the total
        pruned = copy.deepcopy(model)
        prune_by_magnitude(pruned, 0.5, scope="layer")
        assert all(v == pytest.approx(0.5, abs=0.01) for v in layer_sparsity(pruned).values())


def test_sparsity_zero_is_the_dense_model(trained) -> None:
    model, x, y = trained
    (row,) = sparsity_sweep(model, x, y, [0.0])
    assert row["accuracy"] == accuracy(model, x, y) > 0.9
    assert row["measured_sparsity"] == 0.0


def test_sparsity_at_drop_needs_every_smaller_sparsity_to_pass() -> None:
    rows = [
        {"sparsity": 0.0, "accuracy": 0.95},
        {"sparsity": 0.5, "accuracy": 0.945},
        {"sparsity": 0.8, "accuracy": 0.94},  # exactly baseline - drop: passes
        {"sparsity": 0.9, "accuracy": 0.90},  # fails
        {"sparsity": 0.95, "accuracy": 0.96},  # a lucky pass after a failure does not count
    ]
    assert sparsity_at_drop(rows, baseline=0.95, drop=0.01) == 0.8
    assert sparsity_at_drop(rows, baseline=0.95, drop=0.0) == 0.0
    assert sparsity_at_drop(rows, baseline=0.95, drop=0.1) == 0.95
    assert sparsity_at_drop(rows[1:], baseline=0.99, drop=0.01) == 0.0  # first row fails
    with pytest.raises(ValueError, match="rows must be a non-empty list"):
        sparsity_at_drop([], baseline=0.9)
    with pytest.raises(ValueError, match="strictly increasing sparsity"):
        sparsity_at_drop(rows[::-1], baseline=0.9)
    with pytest.raises(ValueError, match="'sparsity' and 'accuracy'"):
        sparsity_at_drop([{"sparsity": 0.0}], baseline=0.9)
    with pytest.raises(ValueError, match=r"baseline must be an accuracy in \[0, 1\]"):
        sparsity_at_drop(rows, baseline=95.0)


def test_sweep_rejects_bad_inputs(trained) -> None:
    model, x, y = trained
    with pytest.raises(ValueError, match="non-empty sequence"):
        sparsity_sweep(model, x, y, [])
    with pytest.raises(ValueError, match=r"each sparsity must be a number in \[0, 1\)"):
        sparsity_sweep(model, x, y, [0.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        sparsity_sweep(model, x, y, [0.5, 0.2])
    with pytest.raises(ValueError, match="same N > 0 examples"):
        sparsity_sweep(model, x, y[:-1], [0.5])
    with pytest.raises(TypeError, match="x and y must be tensors"):
        sparsity_sweep(model, x.numpy(), y, [0.5])
    with pytest.raises(TypeError, match=r"model must be an nn\.Module"):
        sparsity_sweep(lambda t: t, x, y, [0.5])
    with pytest.raises(ValueError, match="scope must be 'layer' or 'global'"):
        sparsity_sweep(model, x, y, [0.5], scope="row")
    with pytest.raises(TypeError, match=r"model must be an nn\.Module"):
        int8_report("model", x, y)


def test_ideal_int8_bytes_is_the_formula() -> None:
    mlp = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    # int8 codes + float32 scale per row for the weights, float32 biases
    assert ideal_int8_bytes(mlp) == (8 * 32 + 4 * 32) + (32 * 3 + 4 * 3) + 4 * (32 + 3)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 4))
    expected = (
        4 * (2 * 9 + 2)  # conv weight and bias stay float32
        + 4 * (2 + 2) + 4 * (2 + 2) + 8  # BN weight, bias, running stats, int64 counter
        + (4 * 8 + 4 * 4) + 4 * 4  # the Linear: codes + scales, bias
    )  # fmt: skip
    assert ideal_int8_bytes(conv) == expected


def test_int8_report_of_a_big_linear_is_four_times_smaller() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 512))
    x, y = torch.randn(32, 512), torch.randint(0, 512, (32,))
    report = int8_report(model, x, y, repeats=3)
    assert set(report) == {"fp32", "int8_dynamic", "int8_scratch", "size_ratio",
                           "accuracy_drop", "speedup", "ideal_size_ratio"}  # fmt: skip
    assert 3.7 < report["size_ratio"] < 4.0
    assert report["ideal_size_ratio"] == pytest.approx(
        4 * (512 * 512 + 512) / (512 * 512 + 4 * 512 + 4 * 512)
    )
    assert report["int8_scratch"]["latency_s"] is None
    assert report["int8_scratch"]["bytes"] == ideal_int8_bytes(model)
    assert model[0].weight.dtype == torch.float32  # the original is not quantized


def test_int8_report_and_tables_show_the_numbers(trained) -> None:
    model, x, y = trained
    report = int8_report(model, x, y, repeats=3)
    for name in ("fp32", "int8_dynamic", "int8_scratch"):
        assert set(report[name]) == {"bytes", "accuracy", "latency_s"}
        assert report[name]["accuracy"] > 0.85
    assert report["fp32"]["accuracy"] == accuracy(model, x, y)
    # a 8-32-3 MLP is too small for int8 to pay: the packed-weight overhead outweighs the
    # saved bytes (the big Linear above shows the 4x); the ratio is still the bytes' ratio
    assert report["size_ratio"] == pytest.approx(
        report["fp32"]["bytes"] / report["int8_dynamic"]["bytes"]
    )
    assert report["accuracy_drop"] == pytest.approx(
        report["fp32"]["accuracy"] - report["int8_dynamic"]["accuracy"]
    )
    assert report["speedup"] == pytest.approx(
        report["fp32"]["latency_s"] / report["int8_dynamic"]["latency_s"]
    )
    text = format_int8_report(report)
    assert f"{report['fp32']['bytes']:,}" in text and f"{report['size_ratio']:.2f}x" in text
    assert f"{100 * report['int8_scratch']['accuracy']:.2f}%" in text

    rows = sparsity_sweep(model, x, y, [0.0, 0.9])
    table = format_sparsity_sweep(rows, baseline=rows[0]["accuracy"])
    assert f"{100 * rows[1]['accuracy']:.2f}%" in table and "90.0%" in table
    drop = 100 * (rows[0]["accuracy"] - rows[1]["accuracy"])
    assert f"{drop:.2f}" in table
