"""Freezing by name patterns and parameter counts (dlkit.nn.freezing)."""

import pytest
import torch
from torch import nn

from dlkit.nn.freezing import ParameterCount, count_parameters, freeze, unfreeze
from dlkit.nn.gpt import GPT, GPTConfig


def _tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.modern(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_len=16))


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_freeze_all_then_unfreeze_pattern_counts_tensors():
    model = _mlp()
    assert freeze(model) == 4  # two weights, two biases
    assert freeze(model) == 0  # already frozen: nothing changed
    assert all(not p.requires_grad for p in model.parameters())
    assert unfreeze(model, "2.*") == 2
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["2.weight", "2.bias"]
    assert unfreeze(model, ["0.weight", "2.*"]) == 1  # 2.* already trainable


def test_frozen_parameters_get_no_gradient_but_pass_it_through():
    model = _mlp()
    freeze(model, "2.*")  # freeze the top: the bottom still learns through it
    model(torch.randn(5, 4)).square().sum().backward()
    assert model[2].weight.grad is None and model[2].bias.grad is None
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0


def test_pattern_matching_nothing_names_it():
    with pytest.raises(ValueError, match="backbone"):
        freeze(_mlp(), ["0.*", "backbone.*"])
    with pytest.raises(TypeError, match=r"nn\.Module"):
        freeze("model")
    with pytest.raises(TypeError, match="patterns"):
        unfreeze(_mlp(), [])


def test_count_parameters_counts_a_tied_tensor_once():
    gpt = _tiny_gpt()
    assert gpt.head.weight is gpt.tok_emb.weight
    count = count_parameters(gpt)
    assert count.total == gpt.num_parameters()
    by_hand = sum({id(p): p.numel() for m in gpt.modules() for p in m.parameters(False)}.values())
    assert count.total == by_hand
    naive = sum(p.numel() for m in gpt.modules() for p in m.parameters(recurse=False))
    assert naive == count.total + gpt.tok_emb.weight.numel()  # what double counting would give
    assert count.trainable == count.total and count.fraction == 1.0


def test_count_after_freezing_a_gpt_but_one_block():
    gpt = _tiny_gpt()
    freeze(gpt, "*")
    unfreeze(gpt, "decoder.blocks.1.*")
    count = count_parameters(gpt)
    block = sum(p.numel() for p in gpt.blocks[1].parameters())
    assert count == ParameterCount(trainable=block, total=gpt.num_parameters())
    assert count.fraction == pytest.approx(block / gpt.num_parameters())
    assert "trainable" in str(count)
    assert ParameterCount(0, 0).fraction == 0.0
