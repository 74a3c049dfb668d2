"""MaskedLMEncoder and the MLM objective.

* The head against its formula written with torch's functions (float64), for both kernels.
* The encoder is bidirectional; padding changes nothing at real positions; weights tied.
* ``masked_lm_loss`` equals ``F.cross_entropy(ignore_index=-100)`` and a hand loop (values
  and gradients); no selected position is a clear error, not nan. ``masked_accuracy`` too.
* ``pooled`` is the mean over real tokens and the classifier's pooling.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlkit.data.masking import IGNORE_INDEX as DATA_IGNORE_INDEX
from dlkit.nn.bert import (
    IGNORE_INDEX,
    MaskedLMEncoder,
    masked_accuracy,
    masked_lm_loss,
    mean_pool,
)
from dlkit.nn.transformer import SequenceClassifier
from dlkit.nn.transformer_blocks import TransformerStackConfig

V = 23
KERNELS = ("dlkit", "torch")


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tiny(**overrides) -> TransformerStackConfig:
    settings = {"d_model": 16, "n_heads": 4, "n_layers": 2, "d_ff": 32, "max_len": 20}
    return TransformerStackConfig(**{**settings, **overrides})


def ids(*shape: int, seed: int = 0, low: int = 1) -> torch.Tensor:
    return torch.randint(low, V, shape, generator=torch.Generator().manual_seed(seed))


def model(seed: int = 0, **kw) -> MaskedLMEncoder:
    torch.manual_seed(seed)
    padding_idx = kw.pop("padding_idx", None)
    tie = kw.pop("tie_weights", True)
    m = MaskedLMEncoder(tiny(**kw), V, padding_idx=padding_idx, tie_weights=tie)
    with torch.no_grad():  # random biases and norm gains too, so a swapped one would show
        g = torch.Generator().manual_seed(seed + 1)
        for p in m.parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
    return m.eval()


def test_ignore_index_is_the_one_of_the_masking() -> None:
    assert IGNORE_INDEX == DATA_IGNORE_INDEX == -100


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"norm_first": False, "positions": "learned"},
        {"norm": "rmsnorm", "mlp": "swiglu", "positions": "rope", "bias": False},
    ],
)
def test_head_is_gelu_norm_then_the_tied_embedding(kernels, kw) -> None:
    m = model(kernels=kernels, **kw)
    x = ids(3, 11)
    h = m.encode(x)  # (B, T, C)
    t = F.gelu(F.linear(h, m.transform.weight, m.transform.bias))
    if m.config.norm == "layernorm":
        bias = m.head_norm.bias
        z = F.layer_norm(t, (16,), m.head_norm.weight, bias, eps=m.config.norm_eps)
    else:
        z = t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + m.config.norm_eps)
        z = z * m.head_norm.weight
    E = m.encoder.embed.tok_emb.weight  # (V, C)
    expected = z @ E.T + m.decoder.bias  # (B, T, V)
    logits = m(x)
    assert logits.shape == (3, 11, V)
    torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-12)


def test_both_kernels_give_the_same_logits_and_gradients() -> None:
    a, b = model(kernels="dlkit"), model(kernels="torch")
    b.load_state_dict(a.state_dict())
    x = ids(2, 9)
    la, lb = a(x), b(x)
    torch.testing.assert_close(la, lb, rtol=1e-10, atol=1e-12)
    labels = torch.where(ids(2, 9, seed=4) % 3 == 0, x, IGNORE_INDEX)
    masked_lm_loss(la, labels).backward()
    masked_lm_loss(lb, labels).backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_weights_are_tied_and_counted_once() -> None:
    tied, untied = model(), model(tie_weights=False)
    assert tied.decoder.weight is tied.encoder.embed.tok_emb.weight
    assert untied.decoder.weight is not untied.encoder.embed.tok_emb.weight
    n_tied = sum(p.numel() for p in tied.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == V * 16
    assert tied.decoder.bias.shape == (V,)


def test_initialization_is_berts() -> None:
    torch.manual_seed(0)
    m = MaskedLMEncoder(tiny(d_model=64, d_ff=256, positions="learned"), 500, padding_idx=0)
    E = m.encoder.embed.tok_emb.weight
    assert (E[0] == 0).all()  # the padding row
    assert abs(E[1:].std().item() - 0.02) < 0.001
    for name, p in m.named_parameters():
        if p.dim() >= 2:
            assert abs(p.std().item() - 0.02) < 0.003, name
        elif name.endswith("bias"):
            assert (p == 0).all(), name
        else:
            assert (p == 1).all(), name  # norm gains


def test_every_position_sees_the_whole_sequence() -> None:
    m = model()
    x = ids(1, 12)
    y = x.clone()
    y[0, -1] = (y[0, -1] % (V - 1)) + 1  # change only the last token
    assert y[0, -1] != x[0, -1]
    diff = (m(x) - m(y)).abs().amax(dim=-1)[0]  # (T,)
    assert (diff[:-1] > 1e-6).all()  # earlier positions changed too: no causal mask


@pytest.mark.parametrize("kernels", KERNELS)
def test_padding_changes_nothing_at_real_positions(kernels) -> None:
    m = model(padding_idx=0, kernels=kernels)
    x = ids(2, 10)
    a, b = x.clone(), x.clone()
    a[:, 7:], b[:, 7:] = 0, 0
    b[1, 8] = 5  # a real token in b's padded tail, hidden by an explicit mask
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[:, 7:] = True
    torch.testing.assert_close(m(a)[:, :7], m(b, pad)[:, :7], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.pooled(a), m.pooled(b, pad), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- the loss and accuracy


def _case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(4, 9, V, generator=g)
    labels = torch.randint(0, V, (4, 9), generator=g)
    keep = torch.rand(4, 9, generator=g) < 0.3
    keep[0, 0] = True
    return logits, torch.where(keep, labels, IGNORE_INDEX)


def test_masked_lm_loss_is_cross_entropy_over_the_selected_positions() -> None:
    logits, labels = _case()
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours = masked_lm_loss(a, labels)
    theirs = F.cross_entropy(b.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    terms = [
        -math.log(math.exp(logits[i, t, labels[i, t]]) / logits[i, t].exp().sum().item())
        for i in range(4)
        for t in range(9)
        if labels[i, t] != IGNORE_INDEX
    ]
    assert ours.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-14)
    assert (a.grad[labels == IGNORE_INDEX] == 0).all()  # unselected positions get no gradient


def test_masked_accuracy_counts_only_selected_positions() -> None:
    logits, labels = _case(seed=2)
    hits = [
        int(logits[i, t].argmax() == labels[i, t])
        for i in range(4)
        for t in range(9)
        if labels[i, t] != IGNORE_INDEX
    ]
    assert masked_accuracy(logits, labels) == pytest.approx(sum(hits) / len(hits), abs=1e-15)
    perfect = torch.where(labels == IGNORE_INDEX, 0, labels)
    one_hot = F.one_hot(perfect, V).double() * 10.0  # right at every position
    assert masked_accuracy(one_hot, labels) == 1.0


@pytest.mark.parametrize("fn", [masked_lm_loss, masked_accuracy])
def test_no_selected_position_is_an_error_not_nan(fn) -> None:
    logits = torch.randn(2, 5, V)
    with pytest.raises(ValueError, match=r"no selected position \(every label is -100\)"):
        fn(logits, torch.full((2, 5), IGNORE_INDEX))


@pytest.mark.parametrize(
    ("logits", "labels", "error", "message"),
    [
        (torch.randn(2, 5, V), torch.zeros(2, 4, dtype=torch.long), ValueError, r"labels \(2, 4\)"),
        (torch.randn(2, 5, V), torch.zeros(2, 5, dtype=torch.int32), TypeError, "int64"),
        (torch.zeros(2, 5, V, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long), ValueError,
         "logits must be a float tensor"),
        (torch.randn(2, 5, V), torch.full((2, 5), V), ValueError, rf"\[0, {V}\), got {V}"),
        (torch.randn(2, 5, V), torch.full((2, 5), -3), ValueError, r"got -3"),
    ],
)  # fmt: skip
def test_bad_logits_or_labels_are_named(logits, labels, error, message) -> None:
    with pytest.raises(error, match=message):
        masked_lm_loss(logits, labels)


# ---------------------------------------------------------------- pooling and classification


def test_pooled_is_the_mean_over_real_tokens() -> None:
    m = model(padding_idx=0)
    x = ids(3, 8)
    x[0, 5:] = 0
    x[2, 1:] = 0
    h = m.encode(x)
    expected = torch.stack([h[b, x[b] != 0].mean(dim=0) for b in range(3)])
    torch.testing.assert_close(m.pooled(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mean_pool(h), h.mean(dim=1))
    with pytest.raises(ValueError, match="all padding"):
        m.pooled(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"bool tensor of shape \(3, 8\)"):
        mean_pool(h, torch.zeros(3, 8))


def test_classifier_pools_like_pooled_and_starts_from_the_pretrained_encoder() -> None:
    m = model(padding_idx=0)
    clf = m.classifier(3)
    assert isinstance(clf, SequenceClassifier)
    x = ids(4, 10)
    x[1, 6:] = 0
    torch.testing.assert_close(clf.eval()(x), clf.head(m.pooled(x)), rtol=1e-12, atol=1e-12)
    assert (clf.head.bias == 0).all() and abs(clf.head.weight.std().item() - 0.02) < 0.02
    assert clf.encoder is not m.encoder  # a copy: fine-tuning leaves the pretrained model
    with torch.no_grad():
        clf.encoder.blocks[0].mlp.linear1.weight.mul_(-1.0)
    assert not torch.allclose(clf.head(m.pooled(x)), clf(x))
    assert m.classifier(2, share_encoder=True).encoder is m.encoder
