"""dlkit.nn's Transformer blocks and models.

* Block correctness: an EncoderBlock / DecoderBlock loaded with the weights of
  ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` (batch_first, pre- and
  post-norm, ReLU and GELU, bias on and off) gives the same outputs and gradients in float64.
* Properties of the models: causality, permutation equivariance without positions, the KV
  cache reproducing the full forward pass (and the same greedy tokens) for every positions
  kind, padding that changes nothing in the classifier, weight tying, the config's errors.

Tiny sizes (d_model 16, 2 layers) keep the file to seconds.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlkit.nn.kv_cache import kv_cache_bytes
from dlkit.nn.transformer import (
    DecoderOnlyLM,
    EncoderDecoder,
    SequenceClassifier,
    TransformerEncoder,
)
from dlkit.nn.transformer_blocks import DecoderBlock, EncoderBlock, TransformerStackConfig

POSITIONS = ["sinusoidal", "learned", "rope", "none"]
V = 13  # vocabulary of the tiny models


@pytest.fixture(autouse=True)
def _float64():
    """Float64 everywhere (position tables included) unless a test says otherwise."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tiny(**overrides) -> TransformerStackConfig:
    settings = {"d_model": 16, "n_heads": 4, "n_layers": 2, "d_ff": 32, "max_len": 24}
    return TransformerStackConfig(**{**settings, **overrides})


def ids(*shape: int, seed: int = 0, low: int = 0) -> torch.Tensor:
    return torch.randint(low, V, shape, generator=torch.Generator().manual_seed(seed))


def _randomize(module: nn.Module, seed: int) -> None:
    """Random weights everywhere (norm scales and biases too, so a swapped one shows)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


# ---------------------------------------------------------------- blocks vs torch.nn


def _torch_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torch's TransformerEncoder/DecoderLayer names → ours (the MLP lives under ``mlp.``)."""
    renamed = {}
    for name, value in state.items():
        if name.startswith(("linear1.", "linear2.")):
            name = "mlp." + name
        name = name.replace("multihead_attn.", "cross_attn.")
        renamed[name] = value
    return renamed


def _compare_with_grads(ours_fn, theirs_fn, inputs: list[torch.Tensor], ours, theirs) -> None:
    """Same outputs, same input gradients, same parameter gradients (by mapped name)."""
    a = [x.clone().requires_grad_(True) for x in inputs]
    b = [x.clone().requires_grad_(True) for x in inputs]
    ya, yb = ours_fn(*a), theirs_fn(*b)
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-12)
    upstream = torch.randn(ya.shape, generator=torch.Generator().manual_seed(9))
    ya.backward(upstream)
    yb.backward(upstream)
    for xa, xb in zip(a, b, strict=True):
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-9, atol=1e-11)
    theirs_grads = _torch_to_ours({n: p.grad for n, p in theirs.named_parameters()})
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs_grads[name], rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_matches_torch_encoder_layer(norm_first, activation, bias) -> None:
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(
        16, 4, dim_feedforward=32, dropout=0.0, activation=activation,
        batch_first=True, norm_first=norm_first, bias=bias,
    )  # fmt: skip
    _randomize(theirs, 1)
    ours = EncoderBlock(tiny(norm_first=norm_first, mlp=activation, bias=bias))
    ours.load_state_dict(_torch_to_ours(theirs.state_dict()))  # strict: every name maps
    x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(2))
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = True  # sequence 1 has 5 real tokens
    padding[2, 3:] = True
    # requires_grad inputs keep torch off its inference fast path (which zeroes padded rows)
    _compare_with_grads(
        lambda x: ours(x, key_padding_mask=padding),
        lambda x: theirs(x, src_key_padding_mask=padding),
        [x], ours, theirs,
    )  # fmt: skip
    causal = torch.triu(torch.ones(7, 7, dtype=torch.bool), diagonal=1)  # torch: True = blocked
    _compare_with_grads(
        lambda x: ours(x, attn_mask=causal), lambda x: theirs(x, src_mask=causal),
        [x], ours, theirs,
    )  # fmt: skip


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_matches_torch_decoder_layer(norm_first, activation, bias) -> None:
    torch.manual_seed(0)
    theirs = nn.TransformerDecoderLayer(
        16, 4, dim_feedforward=32, dropout=0.0, activation=activation,
        batch_first=True, norm_first=norm_first, bias=bias,
    )  # fmt: skip
    _randomize(theirs, 3)
    ours = DecoderBlock(tiny(norm_first=norm_first, mlp=activation, bias=bias))
    ours.load_state_dict(_torch_to_ours(theirs.state_dict()))
    gen = torch.Generator().manual_seed(4)
    tgt, memory = torch.randn(2, 6, 16, generator=gen), torch.randn(2, 9, 16, generator=gen)
    memory_padding = torch.zeros(2, 9, dtype=torch.bool)
    memory_padding[0, 4:] = True
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(6)  # float, -inf above diagonal
    _compare_with_grads(
        lambda t, m: ours(t, m, memory_key_padding_mask=memory_padding),
        lambda t, m: theirs(
            t, m, tgt_mask=tgt_mask, tgt_is_causal=True, memory_key_padding_mask=memory_padding
        ),
        [tgt, memory], ours, theirs,
    )  # fmt: skip


def test_torch_encoder_layer_without_batch_first_reads_sequence_first() -> None:
    """The pitfall: ``batch_first`` defaults to False, so a (B, T, C) batch is read as
    (T, B, C) — attention then mixes the *batch* axis and the result is silently wrong."""
    torch.manual_seed(0)
    batch_first = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    seq_first = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0)  # batch_first=False
    seq_first.load_state_dict(batch_first.state_dict())
    x = torch.randn(3, 7, 16, requires_grad=True)  # (B, T, C)
    right = batch_first(x)
    ours = EncoderBlock(tiny(norm_first=False, mlp="relu"))
    ours.load_state_dict(_torch_to_ours(batch_first.state_dict()))
    torch.testing.assert_close(ours(x), right)
    assert not torch.allclose(seq_first(x), right, atol=1e-3)  # same weights, other answer
    # ... and it is exactly the sequence-first reading: transpose in and out to fix it
    torch.testing.assert_close(seq_first(x.transpose(0, 1)).transpose(0, 1), right)


def test_blocks_record_their_attention_weights() -> None:
    enc, dec = EncoderBlock(tiny()), DecoderBlock(tiny())
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 8, 16)
    enc(x)
    assert enc.last_attention is None  # off by default: nothing kept
    enc.record_attention = dec.record_attention = True
    enc(x)
    dec(x, memory)
    assert enc.last_attention.shape == (2, 4, 5, 5)  # (B, H, T, T)
    assert dec.last_attention.shape == (2, 4, 5, 5)
    assert dec.last_cross_attention.shape == (2, 4, 5, 8)  # (B, H, L, S_mem)
    for w in (enc.last_attention, dec.last_attention, dec.last_cross_attention):
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))  # rows are softmaxes
    upper = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    assert (dec.last_attention[..., upper] == 0).all()  # causal: no look-ahead
    assert (enc.last_attention[..., upper] > 0).all()  # bidirectional


def test_decoder_block_refuses_a_missing_or_unexpected_memory() -> None:
    x = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match="needs memory"):
        DecoderBlock(tiny())(x)
    with pytest.raises(ValueError, match="no cross-attention"):
        DecoderBlock(tiny(), cross_attention=False)(x, torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match=r"memory of shape \(2, S_mem, 16\)"):
        DecoderBlock(tiny())(x, torch.randn(3, 4, 16))
    with pytest.raises(ValueError, match=r"\(B, T, 16\)"):
        EncoderBlock(tiny())(torch.randn(5, 16))


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 18}, "d_model=18 is not divisible by n_heads=4"),
        ({"norm": "batchnorm"}, "unknown norm='batchnorm'"),
        ({"mlp": "tanh"}, "unknown mlp='tanh'"),
        ({"positions": "alibi"}, "unknown positions='alibi'"),
        ({"n_layers": 0}, "n_layers must be a positive int"),
        ({"d_ff": -4}, "d_ff must be a positive int"),
        ({"max_len": 0}, "max_len must be a positive int"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
        ({"d_model": 12, "n_heads": 4, "positions": "rope"}, "even head width"),
    ],
)
def test_config_rejects_bad_values_with_clear_errors(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


def test_config_variants_build_and_run() -> None:
    for norm in ("layernorm", "rmsnorm"):
        for mlp in ("gelu", "swiglu"):
            for norm_first in (True, False):
                c = tiny(norm=norm, mlp=mlp, norm_first=norm_first, bias=False)
                logits = DecoderOnlyLM(c, V)(ids(2, 5))
                assert logits.shape == (2, 5, V) and torch.isfinite(logits).all()
    assert tiny().head_dim == 4


# ---------------------------------------------------------------- causality, permutations


def _ed_model(positions: str, **kw) -> EncoderDecoder:
    torch.manual_seed(0)
    return EncoderDecoder(tiny(positions=positions, **kw), V, V + 2).eval()


@pytest.mark.parametrize("positions", POSITIONS)
def test_future_tokens_never_change_earlier_logits(positions: str) -> None:
    torch.manual_seed(0)
    lm = DecoderOnlyLM(tiny(positions=positions), V).eval()
    ed = _ed_model(positions)
    x, src = ids(2, 9), ids(2, 6, seed=1)
    for k in (0, 4, 8):
        changed = x.clone()
        changed[:, k] = (x[:, k] + 1) % V
        for model in (lambda t: lm(t), lambda t: ed(src, t)):
            a, b = model(x), model(changed)
            torch.testing.assert_close(a[:, :k], b[:, :k], rtol=0, atol=1e-12)  # before k
            assert (a[:, k:] - b[:, k:]).abs().amax() > 1e-6  # from k on, it matters


@pytest.mark.parametrize("positions", POSITIONS)
def test_encoder_is_permutation_equivariant_only_without_positions(positions: str) -> None:
    torch.manual_seed(0)
    encoder = TransformerEncoder(tiny(positions=positions), V).eval()
    src = ids(2, 8)
    perm = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    permuted_out, out_permuted = encoder(src[:, perm]), encoder(src)[:, perm]
    if positions == "none":  # attention and the MLP treat the sequence as a set
        torch.testing.assert_close(permuted_out, out_permuted, rtol=1e-10, atol=1e-12)
    else:  # positions break the symmetry (rope does so inside the attention scores)
        assert (permuted_out - out_permuted).abs().amax() > 1e-3


# ---------------------------------------------------------------- KV cache


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("positions", POSITIONS)
def test_kv_cache_reproduces_the_full_forward_pass(positions: str, norm_first: bool) -> None:
    torch.manual_seed(0)
    lm = DecoderOnlyLM(tiny(positions=positions, norm_first=norm_first), V).eval()
    x = ids(2, 12)
    full = lm(x)  # (B, T, V), one causal pass
    with torch.no_grad():
        cache = lm.new_cache(2)
        assert cache.keys.dtype == torch.float64
        chunks = [lm(x[:, :5], cache=cache)]  # a prompt of 5, then one token at a time
        chunks += [lm(x[:, t : t + 1], cache=cache) for t in range(5, 12)]
        assert cache.length == 12
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, rtol=0, atol=1e-10)
    prompt = x[:, :3]
    cached = lm.generate(prompt, 15)
    assert torch.equal(cached, lm.generate(prompt, 15, use_cache=False))
    assert cached.shape == (2, 18) and torch.equal(cached[:, :3], prompt)


@pytest.mark.parametrize("positions", POSITIONS)
def test_kv_cache_in_float32(positions: str) -> None:
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    lm = DecoderOnlyLM(tiny(positions=positions, norm="rmsnorm", mlp="swiglu"), V).eval()
    x = ids(1, 16)
    with torch.no_grad():
        cache = lm.new_cache(1)
        assert cache.keys.dtype == torch.float32
        steps = torch.cat([lm(x[:, t : t + 1], cache=cache) for t in range(16)], dim=1)
    torch.testing.assert_close(steps, lm(x), rtol=0, atol=1e-5)
    assert torch.equal(lm.generate(x[:, :2], 10), lm.generate(x[:, :2], 10, use_cache=False))


def test_sampling_is_reproducible_and_agrees_with_and_without_cache() -> None:
    torch.manual_seed(0)
    # untied: with a tied N(0, 1) embedding the model just repeats its last token, p ≈ 1
    lm = DecoderOnlyLM(tiny(), V, tie_weights=False).eval()
    prompt = ids(3, 2)

    def sample(use_cache: bool, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return lm.generate(prompt, 12, temperature=1.5, generator=gen, use_cache=use_cache)

    assert torch.equal(sample(True, 5), sample(False, 5))
    assert torch.equal(sample(True, 5), sample(True, 5))
    assert not torch.equal(sample(True, 5), sample(True, 6))
    assert not torch.equal(sample(True, 5), lm.generate(prompt, 12))  # not the greedy path


def test_going_past_max_len_is_a_clear_error() -> None:
    lm = DecoderOnlyLM(tiny(max_len=8), V).eval()
    with pytest.raises(ValueError, match="3 prompt \\+ 6 new tokens = 9 exceeds max_len=8"):
        lm.generate(ids(1, 3), 6)
    lm.generate(ids(1, 3), 5)  # exactly max_len is fine
    with torch.no_grad():
        cache = lm.new_cache(1)
        lm(ids(1, 8), cache=cache)
        with pytest.raises(ValueError, match="max_len=8"):
            lm(ids(1, 1), cache=cache)
    with pytest.raises(ValueError, match="max_len=8"):
        lm(ids(1, 9))
    ed = EncoderDecoder(tiny(max_len=8), V, V)
    with pytest.raises(ValueError, match=r"max_len must lie in \[1, 8\]"):
        ed.greedy_decode(ids(1, 4), 1, 2, 9)


def test_cache_memory_is_two_layers_batch_length_width_bytes() -> None:
    lm = DecoderOnlyLM(tiny(n_layers=3, max_len=20), V)
    for dtype, nbytes in ((torch.float64, 8), (torch.float32, 4)):
        cache = lm.new_cache(5, dtype=dtype)
        expected = 2 * 3 * 5 * 20 * 16 * nbytes  # 2 · layers · B · T · d_model · bytes
        assert cache.nbytes == expected == kv_cache_bytes(3, 5, 20, 16, nbytes)


@pytest.mark.parametrize("positions", POSITIONS)
def test_greedy_decode_with_cache_equals_a_no_cache_loop(positions: str) -> None:
    ed = _ed_model(positions, norm_first=positions != "learned")  # post-norm once too
    bos, eos = V, V + 1
    src = ids(3, 7, low=1)
    src[2, 5:] = 0  # padding with pad_id=None: pass the mask explicitly
    mask = src == 0
    mask[:2] = False
    decoded = ed.greedy_decode(src, bos, eos, 10, src_key_padding_mask=mask)
    # the reference: recompute everything with forward() and take the arg-max each step
    tokens = torch.full((3, 1), bos)
    for _ in range(10):
        nxt = ed(src, tokens, src_key_padding_mask=mask)[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, nxt], dim=1)
    reference = tokens[:, 1:]
    finished = torch.cumsum(reference == eos, dim=1) - (reference == eos).long() > 0
    reference = torch.where(finished, torch.full_like(reference, eos), reference)
    assert torch.equal(decoded, reference[:, : decoded.shape[1]])
    uncached = ed.greedy_decode(src, bos, eos, 10, src_key_padding_mask=mask, use_cache=False)
    assert torch.equal(decoded, uncached)


def test_greedy_decode_stops_at_eos_and_pads_after_it() -> None:
    torch.manual_seed(0)
    ed = EncoderDecoder(tiny(), V, V, pad_id=0).eval()
    src = ids(4, 6, low=1)
    free = ed.greedy_decode(src, bos_id=1, eos_id=-1, max_len=8)  # no EOS can appear
    assert free.shape == (4, 8)
    eos = int(free[0, 2])  # declare the third token of sequence 0 to be the end token
    out = ed.greedy_decode(src, bos_id=1, eos_id=eos, max_len=8)
    first_eos = (free == eos).long().argmax(dim=1)
    has_eos = (free == eos).any(dim=1)
    for b in range(4):
        if has_eos[b]:
            end = int(first_eos[b])
            assert torch.equal(out[b, : end + 1], free[b, : end + 1])
            assert (out[b, end + 1 :] == 0).all()  # pad_id after the EOS
    assert out.shape[1] == (int(first_eos.max()) + 1 if has_eos.all() else 8)


# ---------------------------------------------------------------- classifier, tying


@pytest.mark.parametrize("pool", ["mean", "first"])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_padding_does_not_change_the_classifier_logits(pool: str, positions: str) -> None:
    torch.manual_seed(0)
    clf = SequenceClassifier(tiny(positions=positions), V, 3, pool=pool, padding_idx=0).eval()
    lengths = [5, 8, 2]
    seqs = [ids(1, n, seed=10 + i, low=1) for i, n in enumerate(lengths)]
    alone = torch.cat([clf(s) for s in seqs])  # (3, K), each sequence without padding
    batch = torch.zeros(3, 8, dtype=torch.long)  # right-padded with padding_idx 0
    for i, s in enumerate(seqs):
        batch[i, : s.shape[1]] = s
    logits = clf(batch)
    assert logits.shape == (3, 3)  # (B, num_classes)
    torch.testing.assert_close(logits, alone, rtol=1e-10, atol=1e-12)
    garbage = torch.where(batch == 0, ids(3, 8, seed=99, low=1), batch)  # any ids in the pad
    torch.testing.assert_close(clf(garbage, key_padding_mask=batch == 0), alone)
    # without the mask those same ids are real tokens, and the logits move
    assert (clf(garbage) - alone).abs().amax() > 1e-4


def test_classifier_pools_the_encoder_states_before_the_head() -> None:
    torch.manual_seed(0)
    clf = SequenceClassifier(tiny(), V, 4).eval()
    x = ids(2, 6, low=1)
    mask = torch.tensor([[False] * 6, [False] * 3 + [True] * 3])
    h = clf.encoder(x, mask)  # (B, T, C)
    pooled = torch.stack([h[0].mean(0), h[1, :3].mean(0)])  # (B, C), real tokens only
    torch.testing.assert_close(clf(x, key_padding_mask=mask), clf.head(pooled))
    with pytest.raises(ValueError, match="all padding"):
        clf(x, key_padding_mask=torch.ones(2, 6, dtype=torch.bool))
    first = SequenceClassifier(tiny(), V, 4, pool="first")
    with pytest.raises(ValueError, match="position 0 is padding"):
        first(x, key_padding_mask=mask.flip(1))  # left padding: no [CLS] at position 0


def test_weight_tying_shares_one_matrix() -> None:
    tied, untied = DecoderOnlyLM(tiny(), V), DecoderOnlyLM(tiny(), V, tie_weights=False)
    emb = tied.decoder.embed.tok_emb.weight
    assert tied.decoder.head.weight is emb
    n_tied = sum(p.numel() for p in tied.parameters())  # parameters() counts it once
    assert sum(p.numel() for p in untied.parameters()) - n_tied == V * 16
    tied(ids(2, 4)).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0  # gradients from both uses
