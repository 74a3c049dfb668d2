"""A classifier head on a decoder-only LM (dlkit.nn.lm_classifier)."""

import pytest
import torch
from torch import nn

from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.nn.lm_classifier import LMClassifier, pad_batch

PAD = 0


def _model(pool: str = "mean", **kw) -> LMClassifier:
    torch.manual_seed(0)
    cfg = GPTConfig.modern(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_len=16, **kw)
    return LMClassifier(GPT(cfg), 3, pad_id=PAD, pool=pool).eval()


def test_pad_batch_right_pads_and_truncates():
    x = pad_batch([[5, 6, 7], [8], [1, 2, 3, 4, 5, 6]], PAD, 4)
    assert x.dtype == torch.long
    assert x.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]]
    assert pad_batch([[5], [6, 7]], 9, 10).tolist() == [[5, 9], [6, 7]]  # T = longest


def test_pad_batch_errors():
    with pytest.raises(ValueError, match="no sequences"):
        pad_batch([], PAD, 4)
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pad_batch([[1], []], PAD, 4)
    with pytest.raises(ValueError, match="max_len"):
        pad_batch([[1]], PAD, 0)


@pytest.mark.parametrize("pool", ["mean", "last"])
def test_right_padding_does_not_change_features(pool):
    model = _model(pool)
    seq = [3, 9, 4, 22, 7]
    alone = model.features(torch.tensor([seq]))  # (1, C), no padding at all
    batch = pad_batch([seq, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], PAD, 16)  # seq padded to 10
    with torch.no_grad():
        padded = model.features(batch)[:1]
    torch.testing.assert_close(padded, alone.detach(), atol=1e-5, rtol=1e-5)
    # the pad positions' own states differ: pooling over them would change the feature
    h = model.backbone.hidden_states(batch)[0]  # (T, C)
    assert not torch.allclose(h.mean(dim=0), alone[0].detach(), atol=1e-3)


def test_pooling_matches_a_manual_loop():
    batch = pad_batch([[3, 9, 4], [5, 6, 7, 8, 9], [11]], PAD, 16)
    for pool in ("mean", "last"):
        model = _model(pool)
        with torch.no_grad():
            h = model.backbone.hidden_states(batch)  # (B, T, C)
            got = model.features(batch)
        for b, n in enumerate([3, 5, 1]):
            want = h[b, :n].mean(dim=0) if pool == "mean" else h[b, n - 1]
            torch.testing.assert_close(got[b], want)


def test_forward_is_the_linear_head_on_features():
    model = _model()
    batch = pad_batch([[3, 9, 4], [5, 6]], PAD, 16)
    logits = model(batch)
    assert logits.shape == (2, 3)
    assert isinstance(model.classifier, nn.Linear)
    torch.testing.assert_close(
        logits, model.features(batch) @ model.classifier.weight.T + model.classifier.bias
    )
    logits.sum().backward()  # the whole stack is trainable by default
    assert model.backbone.tok_emb.weight.grad is not None


def test_layer_prefixes_bottom_to_top():
    model = _model()
    assert model.layer_prefixes() == [
        "backbone.decoder.embed", "backbone.decoder.blocks.0", "backbone.decoder.blocks.1",
        "backbone.decoder.norm", "classifier",
    ]  # fmt: skip
    untied = _model(tie_weights=False)
    assert untied.layer_prefixes()[-2:] == ["backbone.decoder.head", "classifier"]


def test_bad_inputs_raise():
    model = _model()
    with pytest.raises(ValueError, match="right-pad"):
        model(torch.tensor([[PAD, 3, 4]]))
    with pytest.raises(ValueError, match="all padding"):
        model(torch.tensor([[3, 4], [PAD, PAD]]))
    with pytest.raises(ValueError, match="int64"):
        model(torch.tensor([[3.0, 4.0]]))
    with pytest.raises(ValueError, match="pool"):
        _model("max")
    with pytest.raises(ValueError, match="num_classes"):
        LMClassifier(model.backbone, 1, pad_id=PAD)
    with pytest.raises(TypeError, match="hidden_states"):
        LMClassifier(nn.Linear(2, 2), 3, pad_id=PAD)
