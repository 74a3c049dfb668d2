"""dlkit.nn.lora: B = 0 makes step 0 the base model, merge/unmerge round trips with the α/r
scale, the frozen base gets no gradient, r (in + out) parameters per layer, why α/r (one Adam
step changes the output by the same amount at any rank), torch and dlkit Linear, a tiny GPT
with both kernels, dropout on the LoRA branch only, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlkit.nn.gpt import GPT, GPTConfig, causal_lm_loss
from dlkit.nn.layers import Linear
from dlkit.nn.lora import LoRALinear, apply_lora, lora_parameters, merge_lora, unmerge_lora

GPT_TARGETS = ["*.out_proj", "*.mlp.w1", "*.mlp.w2", "*.mlp.w3"]


def _randomize_b(m: LoRALinear, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g, dtype=m.lora_B.dtype))


def _tiny_gpt(kernels: str = "torch", seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.modern(64, 32, 2, 2, 16, kernels=kernels))


def _ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", [lambda: nn.Linear(6, 5), lambda: Linear(6, 5),
                                  lambda: Linear(6, 5, bias=False)])  # fmt: skip
def test_zero_b_gives_the_base_output_exactly(make) -> None:
    torch.manual_seed(0)
    base = make()
    x = torch.randn(3, 4, 6)
    expected = base(x).detach().clone()
    m = LoRALinear(base, r=2, alpha=4.0)
    assert torch.equal(m.lora_B, torch.zeros(5, 2))
    assert torch.equal(m(x), expected)  # B = 0: not close, identical
    assert torch.equal(m.weight, base.weight)  # the effective weight W + 0


def test_a_is_kaiming_uniform_and_only_b_moves_first() -> None:
    torch.manual_seed(0)
    m = LoRALinear(nn.Linear(400, 300), r=64, alpha=8.0)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=√5) on (r, in)
    assert m.lora_A.abs().max() <= bound
    assert m.lora_A.abs().max() > 0.99 * bound  # 25,600 draws fill the interval
    assert m.lora_A.var().item() == pytest.approx(bound**2 / 3, rel=0.05)  # U(±b): b²/3
    m(torch.randn(8, 400)).pow(2).sum().backward()
    # dL/dA = (α/r) Bᵀ Gᵀ X = 0 while B = 0; dL/dB = (α/r) Gᵀ (X Aᵀ) is not
    assert torch.equal(m.lora_A.grad, torch.zeros_like(m.lora_A))
    assert m.lora_B.grad.abs().sum() > 0


def test_forward_matches_the_formula() -> None:
    torch.manual_seed(1)
    base = Linear(7, 4)
    m = LoRALinear(base, r=3, alpha=6.0)
    _randomize_b(m)
    x = torch.randn(5, 7, dtype=torch.float32)
    W, b, A, B = base.weight, base.bias, m.lora_A, m.lora_B
    expected = x @ W.T + b + (6.0 / 3) * x @ A.T @ B.T
    torch.testing.assert_close(m(x), expected)
    torch.testing.assert_close(m(x), torch.nn.functional.linear(x, m.weight, m.bias))


@pytest.mark.parametrize("make", [lambda: nn.Linear(10, 8), lambda: Linear(10, 8)])
def test_merge_unmerge_round_trip(make) -> None:
    torch.manual_seed(2)
    base = make()
    W0 = base.weight.detach().clone()
    m = LoRALinear(base, r=4, alpha=16.0)
    _randomize_b(m, seed=3)
    x = torch.randn(6, 10)
    unmerged = m(x).detach()
    BA = m.lora_B.detach() @ m.lora_A.detach()
    m.merge()
    assert m.merged
    torch.testing.assert_close(m(x), unmerged, atol=1e-5, rtol=0)
    torch.testing.assert_close(base.weight, W0 + (16.0 / 4) * BA)  # W + α/r · BA
    assert not torch.allclose(base.weight, W0 + BA, atol=1e-3)  # without the scale: wrong
    wrong = x @ (W0 + BA).T + base.bias  # merging BA without α/r changes the outputs
    assert (wrong - unmerged).abs().max() > 0.1
    with pytest.raises(RuntimeError, match="already merged"):
        m.merge()
    m.unmerge()
    assert not m.merged
    torch.testing.assert_close(base.weight, W0, atol=1e-6, rtol=0)
    torch.testing.assert_close(m(x), unmerged, atol=1e-5, rtol=0)
    with pytest.raises(RuntimeError, match="not merged"):
        m.unmerge()


@settings(max_examples=25, deadline=None)
@given(
    d_in=st.integers(1, 12), d_out=st.integers(1, 12), data=st.data(),
    alpha=st.floats(0.1, 64.0), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_property_merge_equals_forward_and_counts(d_in, d_out, data, alpha, seed) -> None:
    r = data.draw(st.integers(1, min(d_in, d_out)))
    torch.manual_seed(seed)
    m = LoRALinear(nn.Linear(d_in, d_out, dtype=torch.float64), r=r, alpha=alpha)
    assert sum(p.numel() for p in lora_parameters(m)) == r * (d_in + d_out)
    assert m.scale == alpha / r
    _randomize_b(m, seed)
    x = torch.randn(3, d_in, dtype=torch.float64)
    y = m(x).detach()
    torch.testing.assert_close(m.delta_weight(), (alpha / r) * m.lora_B @ m.lora_A)
    m.merge()
    torch.testing.assert_close(m(x), y, atol=1e-10, rtol=1e-10)


def test_frozen_base_gets_no_gradient() -> None:
    torch.manual_seed(0)
    m = LoRALinear(Linear(5, 3), r=2, alpha=2.0)
    assert not m.base.weight.requires_grad and not m.base.bias.requires_grad
    m(torch.randn(4, 5)).sum().backward()
    assert m.base.weight.grad is None and m.base.bias.grad is None
    assert m.lora_A.grad is not None and m.lora_B.grad is not None


def test_alpha_over_r_makes_the_first_adam_step_rank_independent() -> None:
    """One Adam step from B = 0 moves B by lr·sign(grad), so for one input x
    ‖Δy‖ = (α/r) · lr · √d_out · Σ_k |A_k x|: a sum of r terms over r, about E|a·x| at any r.
    With a fixed scale (α' = α r) the same step grows like r."""

    def step_change(r: int, alpha: float, seed: int) -> tuple[float, float]:
        torch.manual_seed(seed)
        m = LoRALinear(nn.Linear(128, 128), r=r, alpha=alpha)
        x, t = torch.randn(1, 128), torch.randn(1, 128)
        y0 = m(x).detach()
        opt = torch.optim.Adam(lora_parameters(m), lr=1e-3)
        ((m(x) - t) ** 2).sum().backward()
        predicted = m.scale * 1e-3 * math.sqrt(128) * (x @ m.lora_A.T).abs().sum().item()
        opt.step()
        return (m(x).detach() - y0).norm().item(), predicted

    ranks, seeds = (4, 16, 64), range(8)
    scaled, fixed = [], []
    for r in ranks:
        changes = []
        for seed in seeds:
            got, predicted = step_change(r, 8.0, seed)
            assert got == pytest.approx(predicted, rel=1e-3)
            changes.append(got)
        scaled.append(sum(changes) / len(changes))  # mean over seeds: E|a·x| is noisy at r=4
        fixed.append(sum(step_change(r, 8.0 * r, s)[0] for s in seeds) / len(seeds))  # scale 8
    assert max(scaled) / min(scaled) < 1.3, scaled
    assert fixed[-1] / fixed[0] > 10, fixed  # 16× the rank, ~16× the change


def test_dropout_only_on_the_lora_branch() -> None:
    torch.manual_seed(0)
    base = nn.Linear(50, 40)
    m = LoRALinear(base, r=4, alpha=4.0, dropout=0.5)
    _randomize_b(m)
    x = torch.randn(20, 50)
    m.train()
    y1, y2 = m(x), m(x)
    assert not torch.allclose(y1, y2)  # the LoRA branch is dropped at random
    torch.manual_seed(1)
    y_train = m(x)
    torch.manual_seed(1)
    keep = torch.empty_like(x).bernoulli_(0.5)  # the same mask as dlkit's dropout draws
    expected = base(x) + m.scale * (x * keep / 0.5) @ m.lora_A.T @ m.lora_B.T
    torch.testing.assert_close(y_train, expected)  # base(x) sees the undropped input
    m.eval()
    torch.testing.assert_close(m(x), x @ m.weight.T + base.bias)  # eval: no dropout, W'


@pytest.mark.parametrize("kernels", ["torch", "dlkit"])
def test_gpt_lora_starts_at_base_merges_and_trains_only_adapters(kernels: str) -> None:
    model = _tiny_gpt(kernels)
    ids = _ids()
    before = model(ids).detach()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = apply_lora(model, GPT_TARGETS, r=4, alpha=8.0)
    assert names == [f"decoder.blocks.{i}.{s}" for i in range(2)
                     for s in ("self_attn.out_proj", "mlp.w1", "mlp.w3", "mlp.w2")]  # fmt: skip
    assert all(isinstance(model.get_submodule(n), LoRALinear) for n in names)
    assert torch.equal(model(ids), before)  # B = 0

    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in lora_parameters(model)}
    C, F = 32, model.config.d_ff
    per_block = 4 * (C + C) + 2 * 4 * (C + F) + 4 * (F + C)  # out_proj, w1, w3, w2
    assert sum(p.numel() for p in trainable) == 2 * per_block

    opt = torch.optim.AdamW(lora_parameters(model), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = causal_lm_loss(model(ids), ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for n, p in model.named_parameters():
        if "lora_" in n:
            continue
        assert p.grad is None, n
        assert torch.equal(p, frozen[n.replace(".base", "")]), n  # base weights untouched

    model.eval()
    adapted = model(ids).detach()
    assert (adapted - before).abs().max() > 1e-3  # the adapters changed the model
    assert merge_lora(model) == 8 and merge_lora(model) == 0
    torch.testing.assert_close(model(ids), adapted, atol=1e-5, rtol=0)
    assert unmerge_lora(model) == 8
    torch.testing.assert_close(model(ids), adapted, atol=1e-5, rtol=0)
    w = model.get_submodule("decoder.blocks.0.mlp.w1.base").weight
    torch.testing.assert_close(w, frozen["decoder.blocks.0.mlp.w1.weight"], atol=1e-6, rtol=0)


def test_fused_and_dlkit_kernels_agree_with_lora() -> None:
    fused, plain = _tiny_gpt("torch"), _tiny_gpt("dlkit")
    for model in (fused, plain):
        apply_lora(model, GPT_TARGETS, r=2, alpha=4.0)
    with torch.no_grad():
        for p in lora_parameters(fused):
            p.normal_(0, 0.1)  # B too: a trained adapter
    plain.load_state_dict(fused.state_dict())  # same names with either kernel
    ids = _ids(1)
    torch.testing.assert_close(fused(ids), plain(ids), atol=1e-5, rtol=1e-5)


def test_apply_lora_trainable_and_freeze_others() -> None:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("body", nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Linear(8, 8)))
    model.add_module("classifier", nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"'body\.1': expected a linear layer.*ReLU"):
        apply_lora(model, ["body.*"], r=2, alpha=2.0)  # matches the ReLU too
    names = apply_lora(model, ["body.0", "body.2"], r=2, alpha=2.0, trainable=["classifier.*"])
    assert names == ["body.0", "body.2"]
    grads = {n for n, p in model.named_parameters() if p.requires_grad}
    assert grads == {"body.0.lora_A", "body.0.lora_B", "body.2.lora_A", "body.2.lora_B",
                     "classifier.weight", "classifier.bias"}  # fmt: skip

    torch.manual_seed(0)
    loose = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    apply_lora(loose, ["0"], r=1, alpha=1.0, freeze_others=False)
    assert loose[1].weight.requires_grad and not loose[0].base.weight.requires_grad


def test_errors_are_clear() -> None:
    lin = nn.Linear(6, 4)
    with pytest.raises(ValueError, match=r"r must lie in \[1, min\(in, out\)\] = \[1, 4\]"):
        LoRALinear(lin, r=0, alpha=1.0)
    with pytest.raises(ValueError, match="got 5"):
        LoRALinear(lin, r=5, alpha=1.0)
    with pytest.raises(TypeError, match="r must be an int"):
        LoRALinear(lin, r=2.0, alpha=1.0)  # type: ignore[arg-type]
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
            LoRALinear(lin, r=2, alpha=bad)
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        LoRALinear(lin, r=2, alpha=1.0, dropout=1.0)
    with pytest.raises(ValueError, match="2-D weight"):
        LoRALinear(nn.Conv1d(3, 3, 2), r=1, alpha=1.0)
    with pytest.raises(ValueError, match="already a LoRALinear"):
        LoRALinear(LoRALinear(lin, r=1, alpha=1.0), r=1, alpha=1.0)
    with pytest.raises(ValueError, match=r"expects input of shape \(\.\.\., 6\), got \(2, 5\)"):
        LoRALinear(nn.Linear(6, 4), r=1, alpha=1.0)(torch.randn(2, 5))

    model = _tiny_gpt()
    with pytest.raises(ValueError, match=r"\['\*\.q_proj'\] match no module"):
        apply_lora(model, ["*.out_proj", "*.q_proj"], r=2, alpha=2.0)
    with pytest.raises(ValueError, match="RMSNorm"):
        apply_lora(model, ["*.norm1"], r=2, alpha=2.0)
    with pytest.raises(ValueError, match="tied to"):
        apply_lora(model, ["decoder.head"], r=2, alpha=2.0)
    with pytest.raises(ValueError, match="fused module"):
        apply_lora(model, ["*.mlp.w1"], r=2, alpha=2.0, dropout=0.1)
    with pytest.raises(ValueError, match=r"trainable patterns \['classifier\.\*'\]"):
        apply_lora(model, ["*.mlp.w1"], r=2, alpha=2.0, trainable=["classifier.*"])
    with pytest.raises(ValueError, match="targets is empty"):
        apply_lora(model, [], r=2, alpha=2.0)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # checked before changing
    apply_lora(model, ["*.mlp.w1"], r=2, alpha=2.0)
    with pytest.raises(ValueError, match="already a LoRALinear"):
        apply_lora(model, ["*.mlp.w1"], r=2, alpha=2.0)
    with pytest.raises(ValueError, match="inside a LoRALinear"):
        apply_lora(model, ["*.mlp.w1.base"], r=2, alpha=2.0)
    assert "r=2, alpha=2, scale=1" in repr(model.get_submodule("decoder.blocks.0.mlp.w1"))
