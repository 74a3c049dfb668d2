"""dlkit.nn.gpt: the config, the model, its initialization, generation and the two losses.

* ``GPTConfig``: GPT-2 and modern presets, validation, the ``to_dict``/``from_dict`` round trip.
* ``GPT``: shapes and causality for both designs and both kernels; weight tying; GPT-2's
  initialization statistics; parameter counts against ``numel`` and
  ``dlkit.train.memory.count_parameters``; AdamW groups; the GPT-2 design equal to a stack of
  ``torch.nn.TransformerEncoderLayer`` with copied weights (float64).
* ``generate``: cache == no cache, greedy is the arg-max loop, seeds reproduce, stop ids,
  the ``max_len`` error.
* ``causal_lm_loss`` / ``next_token_loss`` against hand-written loops.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from dlkit.nn.gpt import GPT, GPTConfig, causal_lm_loss, next_token_loss
from dlkit.nn.transformer_blocks import TransformerStackConfig
from dlkit.train.memory import count_parameters

V = 31


def gpt2(**kw) -> GPTConfig:
    return GPTConfig.gpt2(V, 16, 2, 4, 24, **kw)


def modern(**kw) -> GPTConfig:
    return GPTConfig.modern(V, 16, 2, 4, 24, **kw)


def build(config: GPTConfig, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config).eval()


def ids(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- config


def test_presets_choose_the_two_designs() -> None:
    a, b = gpt2(), modern()
    assert (a.d_ff, a.positions, a.norm, a.mlp, a.bias) == (
        64,
        "learned",
        "layernorm",
        "gelu",
        True,
    )
    assert (b.positions, b.norm, b.mlp, b.bias) == ("rope", "rmsnorm", "swiglu", False)
    assert b.d_ff == 48 and b.d_ff % 8 == 0 and b.d_ff >= 8 * 16 / 3  # 42.7 rounded up to 48
    assert GPTConfig.modern(V, 96, 1, 4, 8).d_ff == 256  # 8·96/3 = 256 exactly
    assert GPTConfig.modern(V, 16, 1, 4, 8, d_ff=40).d_ff == 40
    assert gpt2(dropout=0.1, kernels="dlkit").kernels == "dlkit"
    assert GPTConfig(V, 16, 2, 4, 64, 24) == gpt2()  # positional order of the old config
    stack = a.stack_config()
    assert isinstance(stack, TransformerStackConfig) and stack.norm_first
    assert (stack.d_model, stack.n_layers, stack.max_len, stack.kernels) == (16, 2, 24, "torch")


def test_config_round_trips_through_json_and_rejects_unknown_keys() -> None:
    config = modern(dropout=0.1, tie_weights=False, kernels="dlkit")
    d = json.loads(json.dumps(config.to_dict()))
    assert GPTConfig.from_dict(d) == config
    with pytest.raises(ValueError, match=r"unknown keys \['max_seq_len'\]"):
        GPTConfig.from_dict({**d, "max_seq_len": 24})
    del d["vocab_size"]
    with pytest.raises(ValueError, match=r"missing keys \['vocab_size'\]"):
        GPTConfig.from_dict(d)


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"vocab_size": 0}, ValueError, "vocab_size must be a positive int"),
        ({"d_model": 30}, ValueError, "not divisible by n_heads"),
        ({"kernels": "cuda"}, ValueError, "unknown kernels"),
        ({"norm": "batchnorm"}, ValueError, "unknown norm"),
        ({"tie_weights": 1}, TypeError, "tie_weights must be a bool"),
    ],
)
def test_bad_configs_are_clear_errors(kw, error, message) -> None:
    base = {"vocab_size": V, "d_model": 32, "n_layers": 1, "n_heads": 4, "d_ff": 8, "max_len": 8}
    positional = {k: kw.pop(k) for k in list(kw) if k in base}
    with pytest.raises(error, match=message):
        GPTConfig(*{**base, **positional}.values(), **kw)
    with pytest.raises(TypeError, match="GPT expects a GPTConfig"):
        GPT(gpt2().stack_config())  # type: ignore[arg-type]


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize("kernels", ["torch", "dlkit"])
@pytest.mark.parametrize("make", [gpt2, modern], ids=["gpt2", "modern"])
def test_shapes_and_causality(make, kernels: str) -> None:
    model = build(make(kernels=kernels))
    x = ids(3, 10)
    logits = model(x)
    assert logits.shape == (3, 10, V)
    changed = x.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % V  # only the future
    later = model(changed)
    torch.testing.assert_close(later[:, :6], logits[:, :6])
    assert not torch.allclose(later[:, 6:], logits[:, 6:])


def test_head_is_tied_to_the_token_embedding() -> None:
    tied, untied = build(gpt2()), build(gpt2(tie_weights=False))
    assert tied.head.weight is tied.tok_emb.weight
    assert untied.head.weight is not untied.tok_emb.weight
    assert untied.num_parameters() - tied.num_parameters() == V * 16
    assert len(tied.blocks) == 2


def test_gpt2_initialization_statistics() -> None:
    L = 4
    model = build(GPTConfig.gpt2(64, 64, L, 4, 16, tie_weights=False))
    residual = model.residual_projections()
    assert len(residual) == 2 * L
    res = torch.cat([w.flatten() for w in residual])  # 8 · 64 · 256 and 64² values
    assert res.mean().abs() < 1e-3
    assert res.std().item() == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.03)
    others = [model.tok_emb.weight, model.decoder.embed.pos.embedding.weight, model.head.weight]
    for block in model.blocks:
        others += [block.self_attn.in_proj_weight, block.mlp.linear1.weight]
    for w in others:
        assert w.std().item() == pytest.approx(0.02, rel=0.05)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        if "norm" in name and name.endswith("weight"):
            assert torch.equal(p, torch.ones_like(p)), name


def test_modern_initialization_scales_swiglu_output() -> None:
    model = build(GPTConfig.modern(64, 64, 2, 4, 16))
    block = model.blocks[0]
    assert model.residual_projections()[1] is block.mlp.w2.weight
    assert block.mlp.w2.weight.std().item() == pytest.approx(0.01, rel=0.05)  # 0.02 / √4
    assert block.mlp.w1.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(block.norm1.weight, torch.ones(64))


def test_same_seed_same_weights() -> None:
    a, b = build(modern(), seed=5), build(modern(), seed=5)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


CONFIGS = [
    gpt2(),
    gpt2(tie_weights=False, bias=False),
    modern(),
    modern(bias=True, tie_weights=False),
    GPTConfig(V, 16, 1, 2, 20, 8, norm="rmsnorm", mlp="relu", positions="sinusoidal"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_parameter_counts(config: GPTConfig) -> None:
    model = GPT(config)
    numel = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == numel == count_parameters(config)
    table = config.max_len * config.d_model if config.positions == "learned" else 0
    embedding = config.vocab_size * config.d_model + table
    assert model.num_parameters(non_embedding=True) == numel - embedding


def test_param_groups_decay_only_weight_matrices() -> None:
    model = build(gpt2(tie_weights=False))
    decay, no_decay = model.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert "decoder.blocks.0.self_attn.in_proj_weight" in decay["names"]
    assert "decoder.head.weight" in decay["names"]
    embeddings = ["decoder.embed.tok_emb.weight", "decoder.embed.pos.embedding.weight"]
    others = ["decoder.blocks.1.norm3.weight", "decoder.blocks.0.mlp.linear2.bias"]
    for name in embeddings + others:
        assert name in no_decay["names"], name
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    torch.optim.AdamW(model.param_groups(0.1), lr=1e-3)  # accepted as groups


@pytest.mark.parametrize("kernels", ["torch", "dlkit"])
def test_gpt2_design_equals_a_torch_encoder_layer_stack(kernels: str) -> None:
    """GPT-2 = learned positions + pre-norm ``nn.TransformerEncoderLayer`` with a causal mask +
    final LayerNorm + tied head; weights copied, float64, outputs and gradients."""
    C, H, L, T = 16, 4, 2, 12
    torch.manual_seed(0)
    ours = GPT(GPTConfig.gpt2(V, C, L, H, T, kernels=kernels)).double()
    tok, pos, norm = nn.Embedding(V, C), nn.Embedding(T, C), nn.LayerNorm(C)
    layers = nn.ModuleList(
        nn.TransformerEncoderLayer(
            C, H, 4 * C, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        for _ in range(L)
    )
    for module in (tok, pos, norm, layers):
        module.double()
    with torch.no_grad():
        for p in ours.parameters():  # random everything, so a swapped tensor shows
            p.copy_(torch.randn(p.shape, dtype=torch.float64) * 0.3)
        tok.weight.copy_(ours.tok_emb.weight)
        pos.weight.copy_(ours.decoder.embed.pos.embedding.weight)
        norm.load_state_dict(ours.decoder.norm.state_dict())
        for block, layer in zip(ours.blocks, layers, strict=True):
            rename = {
                k: k.replace("mlp.", "").replace("norm3", "norm2") for k in block.state_dict()
            }
            state = {rename[k]: v for k, v in block.state_dict().items()}
            layer.load_state_dict(state, strict=True)

    def torch_forward(x: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=torch.float64)
        h = tok(x) + pos(torch.arange(x.shape[1]))
        for layer in layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return norm(h) @ tok.weight.T  # the tied head

    x = ids(3, T)
    ya, yb = ours.train()(x), torch_forward(x)
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-12)
    upstream = torch.randn(ya.shape, dtype=torch.float64)
    ya.backward(upstream)
    yb.backward(upstream)
    torch.testing.assert_close(ours.tok_emb.weight.grad, tok.weight.grad, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(
        ours.blocks[0].self_attn.in_proj_weight.grad,
        layers[0].self_attn.in_proj_weight.grad,
        rtol=1e-9,
        atol=1e-11,
    )


# ---------------------------------------------------------------- generation


@pytest.mark.parametrize("make", [gpt2, modern], ids=["gpt2", "modern"])
def test_cached_generation_equals_uncached(make) -> None:
    model = build(make()).double()
    prompt = ids(2, 5)
    kw = {"temperature": 0.8, "top_k": 10, "top_p": 0.9, "seed": 3}
    cached = model.generate(prompt, 12, **kw)
    assert cached.shape == (2, 17) and torch.equal(cached[:, :5], prompt)
    assert torch.equal(model.generate(prompt, 12, use_cache=False, **kw), cached)


def test_greedy_is_the_argmax_loop_and_deterministic() -> None:
    model = build(modern())
    x = ids(2, 4)
    out = model.generate(x, 8, temperature=0)
    assert torch.equal(model.generate(x, 8, temperature=0, seed=99), out)
    with torch.no_grad():
        for _ in range(8):
            x = torch.cat([x, model(x)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, x)


def test_seeded_sampling_reproduces_and_seeds_differ() -> None:
    model = build(gpt2())
    a = model.generate([1, 2, 3], 20, seed=0)
    assert a.shape == (1, 23) and a[0, :3].tolist() == [1, 2, 3]  # a list prompt is one row
    assert torch.equal(model.generate(torch.tensor([1, 2, 3]), 20, seed=0), a)
    assert not torch.equal(model.generate([1, 2, 3], 20, seed=1), a)
    torch.manual_seed(4)
    b = model.generate([1, 2, 3], 20)  # seed=None: torch's global generator
    torch.manual_seed(4)
    assert torch.equal(model.generate([1, 2, 3], 20), b)


def test_stop_ids_end_rows_and_fill_them() -> None:
    model = build(gpt2())
    prompt = ids(3, 4, seed=2)
    free = model.generate(prompt, 10, seed=0)  # (3, 14), no stop
    stop = int(free[0, 6])  # row 0 emits it by its third new token
    out = model.generate(prompt, 10, seed=0, stop={stop, 0})  # any collection of ids
    stop_ids = torch.tensor(sorted({stop, 0}))
    firsts = []  # each row's first stop position, or None
    for b in range(3):
        hits = torch.isin(free[b, 4:], stop_ids).nonzero()
        firsts.append(int(hits[0]) + 4 if len(hits) else None)
    length = 14 if None in firsts else max(firsts) + 1  # ends once every row has stopped
    assert out.shape == (3, length)
    for b, first in enumerate(firsts):
        end = length if first is None else first + 1
        assert torch.equal(out[b, :end], free[b, :end]), b  # other rows draw the same tokens
        if first is not None:
            assert (out[b, first:] == free[b, first]).all()  # filled with its stop id
    one = model.generate(prompt[:1], 10, seed=0)  # one row draws other tokens than three
    stop = int(one[0, 6])
    first = int((one[0, 4:] == stop).nonzero()[0]) + 4
    single = model.generate(prompt[:1], 10, seed=0, stop=stop)  # the only row stopped: ends
    assert torch.equal(single, one[:, : first + 1])


def test_generation_errors_and_mode() -> None:
    model = build(gpt2()).train()
    with pytest.raises(ValueError, match="exceeds max_len=24"):
        model.generate(ids(1, 20), 5)
    with pytest.raises(ValueError, match=r"prompt ids must lie in \[0, 31\)"):
        model.generate([0, 31], 2)
    with pytest.raises(ValueError, match="T >= 1"):
        model.generate([], 2)
    with pytest.raises(TypeError, match="integer token ids"):
        model.generate(torch.zeros(1, 3), 2)
    with pytest.raises(ValueError, match="stop ids must lie"):
        model.generate([1], 2, stop=-1)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        model.generate([1], -1)
    assert model.generate([1, 2], 0).tolist() == [[1, 2]]
    assert model.training  # generate ran in eval mode and restored training mode


# ---------------------------------------------------------------- losses


def test_causal_lm_loss_is_the_mean_shifted_nll() -> None:
    logits = torch.randn(2, 5, V, dtype=torch.float64)
    x = ids(2, 5)
    terms = []
    for b in range(2):
        for t in range(4):  # position t predicts token t + 1
            log_p = logits[b, t] - torch.logsumexp(logits[b, t], dim=0)
            terms.append(-log_p[x[b, t + 1]])
    torch.testing.assert_close(causal_lm_loss(logits, x), torch.stack(terms).mean())
    with pytest.raises(ValueError, match="T >= 2"):
        causal_lm_loss(logits[:, :1], x[:, :1])
    with pytest.raises(ValueError, match=r"must have shape \(B, T\) = \(2, 5\)"):
        causal_lm_loss(logits, x[:, :4])


def test_next_token_loss_scores_every_position() -> None:
    logits = torch.randn(3, 4, V, dtype=torch.float64)
    y = ids(3, 4, seed=1)
    hand = (
        sum(
            -(logits[b, t] - torch.logsumexp(logits[b, t], 0))[y[b, t]]
            for b in range(3)
            for t in range(4)
        )
        / 12
    )
    torch.testing.assert_close(next_token_loss(logits, y), hand)
    # the two agree when the targets are the ids shifted by one
    x = ids(3, 5, seed=2)
    full = torch.randn(3, 5, V, dtype=torch.float64)
    torch.testing.assert_close(causal_lm_loss(full, x), next_token_loss(full[:, :-1], x[:, 1:]))
    with pytest.raises(TypeError, match="integer tensor"):
        next_token_loss(logits, y.double())
    with pytest.raises(ValueError, match=r"float tensor \(B, T, V\)"):
        next_token_loss(logits[0], y)
