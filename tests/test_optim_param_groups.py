"""dlkit.optim.weight_decay_groups: which parameters decay, on dlkit's language model (tied and
untied, GPT-2 style and modern) and on a model of torch.nn modules; every parameter once,
frozen ones left out, and AdamW (torch's and dlkit's) decaying exactly the first group."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlkit.nn import DecoderOnlyLM, MultiHeadAttention, TransformerStackConfig
from dlkit.optim import AdamW, weight_decay_groups


def _lm(*, tie: bool = True, modern: bool = False) -> DecoderOnlyLM:
    torch.manual_seed(0)
    kw = (
        {"norm": "rmsnorm", "mlp": "swiglu", "positions": "rope", "bias": False}
        if modern
        else {"positions": "learned"}
    )
    config = TransformerStackConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=8, **kw)
    return DecoderOnlyLM(config, 11, tie_weights=tie)


def _check_partition(model: nn.Module, groups: list[dict]) -> None:
    """Every trainable parameter in exactly one group, once; names match the parameters."""
    named = dict(model.named_parameters())
    seen = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(seen) == len(set(seen)) == len(trainable) and set(seen) == trainable
    for g in groups:
        assert len(g["names"]) == len(g["params"])
        assert all(named[n] is p for n, p in zip(g["names"], g["params"], strict=True))


def test_gpt2_style_lm_with_tied_head() -> None:
    model = _lm()
    decay, no_decay = weight_decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    b = "decoder.blocks.0."
    assert decay["names"] == [
        b + "self_attn.in_proj_weight",
        b + "self_attn.out_proj.weight",
        b + "mlp.linear1.weight",
        b + "mlp.linear2.weight",
    ]
    assert set(no_decay["names"]) == {
        "decoder.embed.tok_emb.weight",  # = decoder.head.weight (tied): once, as an embedding
        "decoder.embed.pos.embedding.weight",  # learned positions
        b + "self_attn.in_proj_bias",
        b + "self_attn.out_proj.bias",
        b + "norm1.weight", b + "norm1.bias",
        b + "mlp.linear1.bias", b + "mlp.linear2.bias",
        b + "norm3.weight", b + "norm3.bias",
        "decoder.norm.weight", "decoder.norm.bias",
    }  # fmt: skip
    head = model.decoder.head.weight
    assert head is model.decoder.embed.tok_emb.weight
    assert sum(p is head for g in (decay, no_decay) for p in g["params"]) == 1
    assert any(p is head for p in no_decay["params"])
    _check_partition(model, [decay, no_decay])


def test_untied_head_decays_like_any_linear_weight() -> None:
    model = _lm(tie=False)
    decay, no_decay = weight_decay_groups(model, 0.1)
    assert "decoder.head.weight" in decay["names"]
    assert "decoder.embed.tok_emb.weight" in no_decay["names"]
    _check_partition(model, [decay, no_decay])


def test_modern_lm_rmsnorm_swiglu_no_biases() -> None:
    model = _lm(modern=True)
    decay, no_decay = weight_decay_groups(model, 0.05)
    b = "decoder.blocks.0."
    assert set(decay["names"]) == {
        b + "self_attn.in_proj_weight", b + "self_attn.out_proj.weight",
        b + "mlp.w1.weight", b + "mlp.w2.weight", b + "mlp.w3.weight",
    }  # fmt: skip
    assert set(no_decay["names"]) == {
        "decoder.embed.tok_emb.weight", b + "norm1.weight", b + "norm3.weight", "decoder.norm.weight"
    }  # fmt: skip
    _check_partition(model, [decay, no_decay])


class _TorchModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(10, 8)
        self.pos = nn.Embedding(6, 8)
        self.ln = nn.LayerNorm(8)
        self.rms = nn.RMSNorm(8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)  # fused in_proj_weight
        self.cross = MultiHeadAttention(8, 2, kdim=4, vdim=4)  # dlkit, q/k/v_proj_weight
        self.fc = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)
        self.conv = nn.Conv1d(8, 8, 3)  # no rule: a kernel has >= 2 axes, so it decays
        self.scale = nn.Parameter(torch.ones(8))  # no rule: a vector, no decay
        self.mix = nn.Parameter(torch.zeros(8, 8))  # no rule: a matrix, decays
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.tok.weight  # tied


def test_torch_modules_and_fallback_rule() -> None:
    model = _TorchModel()
    decay, no_decay = weight_decay_groups(model, 0.1)
    assert decay["names"] == [
        "mix",  # the module's own parameters come first in named_parameters()
        "attn.in_proj_weight", "attn.out_proj.weight",
        "cross.q_proj_weight", "cross.k_proj_weight", "cross.v_proj_weight", "cross.out_proj.weight",
        "fc.weight", "conv.weight",
    ]  # fmt: skip
    assert no_decay["names"] == [
        "scale", "tok.weight", "pos.weight", "ln.weight", "ln.bias", "rms.weight",
        "attn.in_proj_bias", "attn.out_proj.bias", "cross.in_proj_bias", "cross.out_proj.bias",
        "fc.bias", "bn.weight", "bn.bias", "conv.bias",
    ]  # fmt: skip
    assert "head.weight" not in decay["names"] + no_decay["names"]  # tied: once, as tok.weight
    _check_partition(model, [decay, no_decay])


def test_frozen_parameters_are_left_out() -> None:
    model = _lm(tie=False)
    model.decoder.embed.tok_emb.weight.requires_grad_(False)
    model.decoder.blocks[0].mlp.linear1.weight.requires_grad_(False)
    decay, no_decay = weight_decay_groups(model, 0.1)
    names = decay["names"] + no_decay["names"]
    assert "decoder.embed.tok_emb.weight" not in names
    assert "decoder.blocks.0.mlp.linear1.weight" not in names
    _check_partition(model, [decay, no_decay])


def test_no_decay_patterns() -> None:
    model = _lm(tie=False)
    decay, no_decay = weight_decay_groups(model, 0.1, no_decay=["*.head.weight"])
    assert (
        "decoder.head.weight" in no_decay["names"] and "decoder.head.weight" not in decay["names"]
    )
    decay, _ = weight_decay_groups(model, 0.1, no_decay="decoder.blocks.0.mlp.*")  # one string
    assert not [n for n in decay["names"] if ".mlp." in n]
    with pytest.raises(ValueError, match="match no parameter"):
        weight_decay_groups(model, 0.1, no_decay=["decoder.heads.weight"])


@pytest.mark.parametrize("optimizer", [torch.optim.AdamW, AdamW])
def test_adamw_decays_exactly_the_first_group(optimizer) -> None:
    model = _lm().double()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = weight_decay_groups(model, 0.5)
    opt = optimizer(groups, lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's step is 0; only the decoupled decay moves θ
    opt.step()
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    assert opt.param_groups[0]["names"] == groups[0]["names"]  # extra keys survive
    for n, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if n in groups[0]["names"] else 1.0  # θ ← θ − ηλθ
        torch.testing.assert_close(p.detach(), factor * before[n], rtol=1e-15, atol=0)
    loss = model(torch.randint(0, 11, (2, 5))).square().mean()  # and it trains
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_bad_arguments() -> None:
    model = _lm()
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
            weight_decay_groups(model, bad)
    with pytest.raises(TypeError, match="weight_decay must be a real number"):
        weight_decay_groups(model, "0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"expects an nn\.Module"):
        weight_decay_groups([nn.Parameter(torch.ones(2))], 0.1)  # type: ignore[arg-type]
