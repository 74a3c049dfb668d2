"""Layer-wise (discriminative) learning rates (dlkit.optim.param_groups)."""

import pytest
import torch
from torch import nn

from dlkit.nn.freezing import freeze
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.nn.lm_classifier import LMClassifier
from dlkit.optim.param_groups import discriminative_lr_groups


def _stack() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2))


def test_groups_match_a_hand_built_list():
    model = _stack()
    groups = discriminative_lr_groups(model, ["0", "1", "2"], base_lr=0.1, decay=0.5)
    expected = [
        {"name": "0", "lr": 0.1 * 0.25, "params": [model[0].weight, model[0].bias]},
        {"name": "1", "lr": 0.1 * 0.5, "params": [model[1].weight, model[1].bias]},
        {"name": "2", "lr": 0.1, "params": [model[2].weight, model[2].bias]},
    ]
    assert len(groups) == 3
    for got, want in zip(groups, expected, strict=True):
        assert got["name"] == want["name"]
        assert got["lr"] == pytest.approx(want["lr"])
        assert [id(p) for p in got["params"]] == [id(p) for p in want["params"]]


def test_prefix_is_a_whole_name_component():
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])  # names "1." and "10."
    prefixes = [str(i) for i in range(11)]
    groups = discriminative_lr_groups(model, prefixes, base_lr=1.0, decay=0.9)
    assert groups[1]["names"] == ["1.weight", "1.bias"]
    assert groups[10]["names"] == ["10.weight", "10.bias"]
    assert groups[0]["lr"] == pytest.approx(0.9**10)


def test_frozen_parameters_and_empty_layers_are_left_out():
    model = _stack()
    freeze(model, ["0.*", "1.weight"])
    groups = discriminative_lr_groups(model, ["0", "1", "2"], base_lr=0.1, decay=0.5)
    assert [g["name"] for g in groups] == ["1", "2"]  # layer 0 has nothing to train
    assert groups[0]["names"] == ["1.bias"]
    assert groups[0]["lr"] == pytest.approx(0.05)  # keeps the rate of its position


def test_missing_and_overlapping_prefixes_raise():
    with pytest.raises(ValueError, match=r"under no prefix: \['2.weight', '2.bias'\]"):
        discriminative_lr_groups(_stack(), ["0", "1"], base_lr=0.1, decay=0.5)
    with pytest.raises(ValueError, match="several prefixes"):
        discriminative_lr_groups(_stack(), ["0", "1", "2", "2.weight"], base_lr=0.1, decay=0.5)
    with pytest.raises(ValueError, match="decay"):
        discriminative_lr_groups(_stack(), ["0", "1", "2"], base_lr=0.1, decay=1.5)
    with pytest.raises(ValueError, match="base_lr"):
        discriminative_lr_groups(_stack(), ["0", "1", "2"], base_lr=0.0, decay=0.5)
    with pytest.raises(TypeError, match="list of prefixes"):
        discriminative_lr_groups(_stack(), "012", base_lr=0.1, decay=0.5)


def test_adamw_steps_each_layer_at_its_rate():
    """One AdamW step moves each parameter by about its group's lr (Adam's first step is
    lr · sign(g) when eps is negligible)."""
    model = _stack()
    groups = discriminative_lr_groups(model, ["0", "1", "2"], base_lr=1e-2, decay=0.1)
    opt = torch.optim.AdamW(groups, lr=123.0, weight_decay=0.0, eps=1e-12)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(8, 3)).square().sum().backward()
    opt.step()
    steps = [(p - b).abs().max().item() for p, b in zip(model.parameters(), before, strict=True)]
    assert steps[0:2] == pytest.approx([1e-4, 1e-4], rel=1e-3)
    assert steps[2:4] == pytest.approx([1e-3, 1e-3], rel=1e-3)
    assert steps[4:6] == pytest.approx([1e-2, 1e-2], rel=1e-3)


def test_covers_an_lm_classifier_exactly_once():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.modern(vocab_size=40, d_model=16, n_layers=3, n_heads=2, max_len=16))
    model = LMClassifier(gpt, 3, pad_id=0)
    groups = discriminative_lr_groups(model, model.layer_prefixes(), base_lr=1e-3, decay=0.8)
    listed = [id(p) for g in groups for p in g["params"]]
    assert sorted(listed) == sorted(id(p) for p in model.parameters())
    assert len(groups) == 3 + 3  # embed, 3 blocks, final norm, classifier
    assert groups[-1]["name"] == "classifier" and groups[-1]["lr"] == pytest.approx(1e-3)
    assert groups[0]["lr"] == pytest.approx(1e-3 * 0.8**5)
