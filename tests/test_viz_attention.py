"""Attention heat maps and the attention explorer, headless (Agg), against the weights the
blocks record: the figure shows the right numbers for every control, and masks switch off."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dlkit.data.seq2seq import BOS_ID, PAD_ID, decode, make_seq2seq_task
from dlkit.nn.transformer import DecoderOnlyLM, TransformerEncoder
from dlkit.nn.transformer_blocks import TransformerStackConfig
from dlkit.train.seq2seq_training import seq2seq_transformer
from dlkit.viz.attention import (
    CROSS,
    DECODER,
    ENCODER,
    attention_explorer,
    attention_heatmap,
    collect_attention,
    plot_accuracy_by_length,
    plot_attention_cost,
    plot_attention_heads,
)


@pytest.fixture(scope="module")
def example():
    task = make_seq2seq_task("reverse", n_train=50, n_test=20, min_len=2, max_len=6, seed=0)
    row = int(np.argmin(task.test.src_lengths))  # the shortest source: it has padding
    model = seq2seq_transformer(task, d_model=16, n_heads=2, n_layers=2, seed=0)
    src = task.test.src[row]
    tgt_in = task.test.tgt[row][: 1 + task.test.src_lengths[row]]  # <bos> and the answer
    assert (src == PAD_ID).any()
    return model, src, tgt_in


def test_heatmap_shows_the_weights_with_token_labels() -> None:
    fig, ax = plt.subplots()
    w = np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])
    image = attention_heatmap(ax, w, ["a", "b"], ["x", "y", "z"], title="t", highlight_query=1)
    np.testing.assert_allclose(image.get_array(), w)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert image.get_clim() == (0.0, 1.0) and len(ax.patches) == 1
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        attention_heatmap(ax, w, ["a", "b"], ["x", "y"])
    plt.close(fig)


def test_heads_figure_has_one_panel_per_head() -> None:
    w = torch.softmax(torch.randn(3, 4, 5), dim=-1)
    fig = plot_attention_heads(w, list("abcd"), list("vwxyz"), ncols=2)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    for h, image in enumerate(images):
        np.testing.assert_allclose(image.get_array(), w[h].numpy(), rtol=1e-6)
    plt.close(fig)


def test_collected_maps_are_the_recorded_ones_and_recompute_exactly(example) -> None:
    model, src, tgt_in = example
    maps = collect_attention(model, src, tgt_in)
    assert list(maps) == [ENCODER, DECODER, CROSS]
    S, T = len(src), len(tgt_in)
    shapes = {ENCODER: (2, S, S), DECODER: (2, T, T), CROSS: (2, T, S)}
    with torch.no_grad():  # the same forward pass with recording switched on by hand
        for block in (*model.encoder.blocks, *model.decoder.blocks):
            block.record_attention = True
        model(torch.as_tensor(src)[None], torch.as_tensor(tgt_in)[None])
    for kind, m in maps.items():
        assert m.n_layers == 2 and tuple(m.recorded[0].shape) == shapes[kind]
        for layer in range(2):
            torch.testing.assert_close(m.recompute(layer), m.recorded[layer], atol=1e-6, rtol=0)
    torch.testing.assert_close(maps[ENCODER].recorded[1], model.encoder.blocks[1].last_attention[0])
    torch.testing.assert_close(maps[DECODER].recorded[0], model.decoder.blocks[0].last_attention[0])
    torch.testing.assert_close(
        maps[CROSS].recorded[0], model.decoder.blocks[0].last_cross_attention[0]
    )
    for block in (*model.encoder.blocks, *model.decoder.blocks):
        block.record_attention = False
    pad = torch.as_tensor(src == PAD_ID)
    enc = maps[ENCODER].weights(0)
    assert float(enc[..., pad].abs().max()) == 0.0  # nobody attends to padding
    unmasked = maps[ENCODER].weights(0, padding_mask_on=False)
    assert float(unmasked[..., pad].min()) > 0.0
    dec = maps[DECODER].weights(1)
    assert float(torch.triu(dec, diagonal=1).abs().max()) == 0.0  # causal
    free = maps[DECODER].weights(1, causal_mask_on=False)
    upper = torch.triu_indices(T, T, offset=1)
    assert float(free[:, upper[0], upper[1]].min()) > 0.0
    torch.testing.assert_close(free.sum(-1), torch.ones(2, T))


def test_collect_attention_on_encoder_and_decoder_only_models() -> None:
    config = TransformerStackConfig(
        d_model=8, n_heads=2, n_layers=3, d_ff=16, max_len=10, positions="rope"
    )
    torch.manual_seed(0)
    encoder = TransformerEncoder(config, 14, padding_idx=PAD_ID)
    maps = collect_attention(encoder, [4, 5, 6, PAD_ID])
    assert list(maps) == [ENCODER] and maps[ENCODER].n_layers == 3
    torch.testing.assert_close(
        maps[ENCODER].recompute(2), maps[ENCODER].recorded[2], atol=1e-6, rtol=0
    )
    lm = DecoderOnlyLM(config, 14)
    maps = collect_attention(lm, [1, 4, 5, 6, 7], pad_id=None)
    assert list(maps) == [DECODER] and maps[DECODER].causal
    torch.testing.assert_close(
        maps[DECODER].recompute(0), maps[DECODER].recorded[0], atol=1e-6, rtol=0
    )
    assert not any(b.record_attention for b in lm.decoder.blocks)  # flags restored
    with pytest.raises(ValueError, match="needs tgt_tokens"):
        collect_attention(seq2seq_transformer(make_seq2seq_task("sort", n_train=5, n_test=5)), [4])


def _image(fig) -> np.ndarray:
    return np.asarray(fig.axes[0].images[0].get_array())


def test_explorer_controls_change_the_figure(example, monkeypatch) -> None:
    model, src, tgt_in = example
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    widget = attention_explorer(model, src, tgt_in)
    (kind, layer, head), (query, causal, padding) = (
        box.children for box in widget.children[0].children
    )
    maps = collect_attention(model, src, tgt_in)
    np.testing.assert_allclose(_image(shown[-1]), maps[ENCODER].recorded[0].mean(0), rtol=1e-6)
    head.value = 1
    layer.value = 1
    np.testing.assert_allclose(_image(shown[-1]), maps[ENCODER].recorded[1][1], rtol=1e-6)
    assert causal.disabled and not padding.disabled
    padding.value = False
    expected = maps[ENCODER].weights(1, padding_mask_on=False)[1]
    np.testing.assert_allclose(_image(shown[-1]), expected, rtol=1e-6)
    padding.value = True
    kind.value = DECODER
    assert not causal.disabled and padding.disabled
    assert _image(shown[-1]).shape == (len(tgt_in), len(tgt_in))
    assert [label for label, _ in query.options][1] == f"0: {decode([BOS_ID])[0]}"
    causal.value = False
    upper = np.triu_indices(len(tgt_in), 1)
    assert _image(shown[-1])[upper].min() > 0
    query.value = 2
    fig = shown[-1]
    assert len(fig.axes) == 3  # heat map, its colour bar, the bars of query 2
    bars = [p.get_height() for p in fig.axes[1].patches]  # subplots first, colour bar last
    np.testing.assert_allclose(bars, _image(fig)[2], rtol=1e-6)
    for fig in shown:
        plt.close(fig)


def test_explorer_runs_every_choice_and_decodes_by_itself(example, monkeypatch) -> None:
    model, src, _ = example
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()) or plt.close(plt.gcf()))
    widget = attention_explorer(model, src)  # the decoder reads <bos> and the model's answer
    (kind, layer, head), (query, causal, padding) = (
        box.children for box in widget.children[0].children
    )
    before = len(shown)
    for k in kind.options:  # every kind, then each control through all its values
        kind.value = k
        for lay in (1, 0):
            layer.value = lay
        for _, h in (*head.options[1:], head.options[0]):
            head.value = h
        for _, q in (*query.options[1:], query.options[0]):
            query.value = q
        for mask in (False, True):
            causal.value = padding.value = mask
    assert len(shown) > before + 3 * (2 + 3 + 2)


def test_accuracy_and_cost_plots_show_the_measurements() -> None:
    from dlkit.train.attention_cost import AttentionCost
    from dlkit.train.seq2seq_training import Seq2SeqEval, Seq2SeqRun

    runs = {"gru": Seq2SeqRun(test=Seq2SeqEval(0.5, {5: 0.9, 6: 0.1}, 0.0))}
    fig, ax = plt.subplots()
    plot_accuracy_by_length(ax, runs)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [5, 6])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.9, 0.1])
    with pytest.raises(ValueError, match="not evaluated"):
        plot_accuracy_by_length(ax, {"x": Seq2SeqRun()})
    plt.close(fig)
    cost = AttentionCost([8, 16], [1.0, 2.0], [3.0, 4.0], [2**20, 4 * 2**20], [2**20, 2**21],
                         [0, 0], [0, 0], d_model=8, n_heads=2, batch_size=1)  # fmt: skip
    fig, axes = plt.subplots(1, 2)
    plot_attention_cost(axes, cost)
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), [1.0, 4.0])  # MiB
    np.testing.assert_allclose(axes[0].lines[1].get_ydata(), [3.0, 4.0])
    plt.close(fig)
