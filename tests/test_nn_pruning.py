"""Tests for dlkit.nn.pruning: exact counts, tie-breaking, global scope, masks that survive training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlkit.nn.layers import Linear
from dlkit.nn.pruning import (
    channel_mask,
    layer_sparsity,
    magnitude_mask,
    make_permanent,
    prune_by_magnitude,
    prune_channels,
    sparsity,
)


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), Linear(16, 4))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    s=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_magnitude_mask_removes_exact_count_of_smallest(rows, cols, s, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g)
    mask = magnitude_mask(w, s)
    k = round(s * w.numel())
    assert mask.dtype == torch.bool and mask.shape == w.shape
    assert int((~mask).sum()) == k
    if 0 < k < w.numel():
        assert w[~mask].abs().max() <= w[mask].abs().min()


def test_magnitude_mask_ties_broken_by_index():
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, 2.0, 1.0, 3.0]])
    mask = magnitude_mask(w, 0.5)  # remove 4 of the five |w| = 1 entries: the first four by index
    expected = torch.tensor([[False, False, False, False], [True, True, True, True]])
    assert torch.equal(mask, expected)


def test_magnitude_mask_errors():
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_mask(torch.randn(3, 3), 1.5)
    with pytest.raises(TypeError, match="floating"):
        magnitude_mask(torch.ones(3, dtype=torch.int64), 0.5)


def test_prune_by_magnitude_layer_scope_hits_each_layer():
    model = _mlp()
    masks = prune_by_magnitude(model, 0.75)
    assert set(masks) == {"0", "2"}
    for name, frac in layer_sparsity(model).items():
        assert frac == pytest.approx(0.75), name
    assert sparsity(model) == pytest.approx(0.75)
    assert hasattr(model[0], "weight_orig") and hasattr(model[2], "weight_mask")


def test_prune_by_magnitude_global_scope_ranks_all_layers_together():
    model = _mlp()
    with torch.no_grad():
        w2 = model[2].weight
        w2.copy_(torch.sign(w2) * (1.0 + w2.abs()))  # |w2| >= 1 > every |w1| (<= 1/sqrt(8))
    scores = torch.cat([model[0].weight.abs().flatten(), model[2].weight.abs().flatten()])
    masks = prune_by_magnitude(model, 0.5, scope="global")
    kept = torch.cat([masks["0"].flatten(), masks["2"].flatten()])
    assert scores[~kept].max() <= scores[kept].min()  # oracle: global threshold
    per_layer = layer_sparsity(model)
    total = 8 * 16 + 16 * 4
    assert sparsity(model) == pytest.approx(round(0.5 * total) / total)
    assert per_layer["2"] == 0.0  # global: all removals land in the small layer
    assert per_layer["0"] == pytest.approx(round(0.5 * total) / 128)
    with pytest.raises(ValueError, match="scope"):
        prune_by_magnitude(_mlp(), 0.5, scope="row")


def test_pruned_weights_stay_zero_after_optimizer_steps():
    model = _mlp()
    masks = prune_by_magnitude(model, 0.6)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = torch.randn(32, 8), torch.randn(32, 4)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    for name, mask in masks.items():
        w = model.get_submodule(name).weight
        assert torch.all(w[~mask] == 0), name
        assert torch.all(w[mask] != 0), name  # the kept ones moved and are not zero
    # Permanent: plain parameters again, zeros kept, no hooks.
    assert make_permanent(model) == 2
    assert not hasattr(model[0], "weight_orig")
    assert isinstance(model[0].weight, nn.Parameter)
    assert sparsity(model) == pytest.approx(0.6, abs=0.01)


def test_prune_by_magnitude_on_dlkit_linear_and_conv():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    masks = prune_by_magnitude(model, 0.3)
    assert set(masks) == {"0", "2"}
    assert layer_sparsity(model)["0"] == pytest.approx(round(0.3 * 36) / 36)


def test_channel_mask_removes_smallest_l2_rows():
    w = torch.tensor([[3.0, 4.0], [0.1, 0.1], [1.0, 0.0], [0.0, -0.5]])  # norms 5, .14, 1, .5
    mask = channel_mask(w, 0.5)
    assert torch.equal(mask[:, 0], torch.tensor([True, False, True, False]))
    assert torch.equal(mask[:, 0], mask[:, 1])  # whole rows
    cols = channel_mask(w, 0.5, dim=1)  # column norms sqrt(10.26), sqrt(16.26)
    assert torch.equal(cols[0], torch.tensor([False, True]))
    with pytest.raises(TypeError):
        channel_mask(torch.randn(4), 0.5)


def test_prune_channels_zeroes_output_rows_of_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 6, 3)
    norms = conv.weight.detach().flatten(1).norm(dim=1)
    mask = prune_channels(conv, 1 / 3)
    removed = (~mask).flatten(1).all(dim=1)
    assert int(removed.sum()) == 2
    assert set(torch.nonzero(removed).flatten().tolist()) == set(norms.argsort()[:2].tolist())
    assert torch.all(conv.weight[removed] == 0)
