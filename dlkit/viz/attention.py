r"""Attention weights as heat maps, and an explorer over a trained Transformer's layers and heads.

Row :math:`i` of a heat map is query :math:`i`'s distribution over the keys,

.. math:: A_{ij} = \operatorname{softmax}_j\Big(\frac{q_i \cdot k_j}{\sqrt{d_h}} + M_{ij}\Big),
   \qquad \textstyle\sum_j A_{ij} = 1,

with :math:`M_{ij} = -\infty` where a mask forbids the pair: the causal mask of decoder
self-attention (:math:`j > i`) and the padding mask (key :math:`j` is ``<pad>``).

:func:`collect_attention` runs one example through an :class:`~dlkit.nn.transformer.EncoderDecoder`
(or a :class:`~dlkit.nn.transformer.TransformerEncoder` / ``DecoderOnlyLM``) with the blocks'
``record_attention`` switched on, and reads ``last_attention`` (and ``last_cross_attention``)
of every block. It also keeps each layer's per-head queries and keys (hooks on the attention
modules), so :meth:`AttentionMaps.weights` can recompute the weights with a mask switched
off: what the same scores give when the mask is not applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from torch import Tensor, nn

from dlkit.data.seq2seq import BOS_ID, EOS_ID, PAD_ID, answer_of, decode
from dlkit.nn.attention import attention_weights, causal_mask, split_heads
from dlkit.nn.transformer import EncoderDecoder, TransformerEncoder
from dlkit.nn.transformer_blocks import DecoderBlock, EncoderBlock
from dlkit.train.attention_cost import AttentionCost
from dlkit.train.seq2seq_training import Seq2SeqRun

__all__ = [
    "AttentionMaps",
    "attention_explorer",
    "attention_heatmap",
    "collect_attention",
    "plot_accuracy_by_length",
    "plot_attention_cost",
    "plot_attention_heads",
]

ENCODER, DECODER, CROSS = "encoder self-attention", "decoder self-attention", "cross-attention"


def _as_array(weights: object) -> np.ndarray:
    if isinstance(weights, Tensor):
        weights = weights.detach().cpu().numpy()
    return np.asarray(weights, dtype=float)


def attention_heatmap(
    ax: Axes,
    weights: object,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str],
    *,
    title: str | None = None,
    highlight_query: int | None = None,
    colorbar: bool = False,
) -> AxesImage:
    """Draw ``weights`` ``(L, S)`` (queries down, keys across) with the tokens as tick labels.

    The colour scale is fixed to :math:`[0, 1]` so maps can be compared; ``highlight_query``
    frames one query's row.
    """
    w = _as_array(weights)
    if w.ndim != 2 or w.shape != (len(query_tokens), len(key_tokens)):
        raise ValueError(
            f"weights must have shape (len(query_tokens), len(key_tokens)) = "
            f"({len(query_tokens)}, {len(key_tokens)}), got {w.shape}"
        )
    image = ax.imshow(w, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(key_tokens)), list(key_tokens), rotation=90, fontsize=8)
    ax.set_yticks(range(len(query_tokens)), list(query_tokens), fontsize=8)
    ax.set(xlabel="key", ylabel="query")
    if title:
        ax.set_title(title, fontsize=10)
    if highlight_query is not None:
        rect = plt.Rectangle(
            (-0.5, highlight_query - 0.5), len(key_tokens), 1, fill=False, edgecolor="red", lw=2
        )
        ax.add_patch(rect)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return image


def plot_attention_heads(
    weights: object,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str],
    *,
    title: str | None = None,
    ncols: int = 4,
) -> Figure:
    """One heat map per head of ``weights`` ``(H, L, S)``, in a grid of ``ncols`` columns."""
    w = _as_array(weights)
    if w.ndim != 3:
        raise ValueError(f"weights must have shape (H, L, S), got {w.shape}")
    heads = w.shape[0]
    ncols = min(ncols, heads)
    nrows = -(-heads // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h < heads:
            attention_heatmap(ax, w[h], query_tokens, key_tokens, title=f"head {h}")
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@dataclass
class AttentionMaps:
    """One kind of attention (encoder self, decoder self or cross) over all layers, one example."""

    kind: str
    recorded: list[Tensor]  # per layer (H, L, S): the block's own last_attention
    queries: list[Tensor]  # per layer (H, L, hd), after rotary positions if any
    keys: list[Tensor]  # per layer (H, S, hd)
    query_ids: list[int]
    key_ids: list[int]
    causal: bool  # a causal mask applies (decoder self-attention)
    key_padding: list[bool] = field(default_factory=list)  # per key: masked as padding

    @property
    def n_layers(self) -> int:
        return len(self.recorded)

    @property
    def n_heads(self) -> int:
        return self.recorded[0].shape[0]

    def weights(
        self, layer: int, *, causal_mask_on: bool = True, padding_mask_on: bool = True
    ) -> Tensor:
        """``(H, L, S)`` weights of ``layer``: the recorded ones with every mask on, else
        recomputed from the layer's queries and keys with the chosen masks."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must lie in [0, {self.n_layers}), got {layer}")
        if (causal_mask_on or not self.causal) and (padding_mask_on or not any(self.key_padding)):
            return self.recorded[layer]
        return self.recompute(layer, causal_mask_on=causal_mask_on, padding_mask_on=padding_mask_on)

    def recompute(
        self, layer: int, *, causal_mask_on: bool = True, padding_mask_on: bool = True
    ) -> Tensor:
        """``softmax(q k^T / sqrt(d_h) + M)`` for ``layer``, ``(H, L, S)``."""
        q, k = self.queries[layer], self.keys[layer]  # (H, L, hd), (H, S, hd)
        L, S = q.shape[-2], k.shape[-2]
        allowed = torch.ones(L, S, dtype=torch.bool)  # (L, S), True = may attend
        if self.causal and causal_mask_on:
            allowed &= causal_mask(L, S)
        if padding_mask_on and any(self.key_padding):
            allowed &= ~torch.tensor(self.key_padding)[None, :]
        return attention_weights(q, k, attn_mask=allowed)  # (H, L, S)


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """``(kind, block, attention module)`` for every attention in ``model``, in layer order."""
    found = []
    for block in model.modules():
        if isinstance(block, EncoderBlock):
            found.append((ENCODER, block, block.self_attn))
        elif isinstance(block, DecoderBlock):
            found.append((DECODER, block, block.self_attn))
            if block.cross_attn is not None:
                found.append((CROSS, block, block.cross_attn))
    if not found:
        raise TypeError(f"{type(model).__name__} has no EncoderBlock or DecoderBlock to record")
    return found


def _heads(attn: nn.Module, x: Tensor, which: int) -> Tensor:
    """Per-head projection ``which`` (0 queries, 1 keys) of ``x`` ``(1, T, E)`` -> ``(1, H, T, hd)``."""
    if attn.in_proj_weight is not None:
        weight = attn.in_proj_weight.chunk(3)[which]  # (E, E)
    else:
        weight = (attn.q_proj_weight, attn.k_proj_weight)[which]
    out = x @ weight.T  # (1, T, E)
    if attn.in_proj_bias is not None:
        out = out + attn.in_proj_bias.chunk(3)[which]
    return split_heads(out, attn.num_heads)  # (1, H, T, hd)


def _ids(tokens: object, name: str) -> Tensor:
    ids = torch.as_tensor(np.asarray(tokens), dtype=torch.long).reshape(-1)
    if ids.numel() == 0:
        raise ValueError(f"{name} must hold at least one token id")
    return ids


@torch.no_grad()
def collect_attention(
    model: nn.Module,
    src_tokens: object,
    tgt_tokens: object | None = None,
    *,
    pad_id: int | None = PAD_ID,
) -> dict[str, AttentionMaps]:
    """Run one example and return its attention maps by kind.

    Args:
        model: an ``EncoderDecoder`` (``src_tokens`` and ``tgt_tokens``, the decoder's input
            ``<bos> y_1 .. y_n``, both needed), a ``TransformerEncoder`` or any model whose
            ``forward(ids)`` runs its blocks on ``src_tokens`` alone (``DecoderOnlyLM``,
            ``SequenceClassifier``).
        src_tokens, tgt_tokens: 1-D token ids.
        pad_id: source keys equal to it are padding (``None``: no padding).

    Returns ``{"encoder self-attention": ..., "decoder self-attention": ...,
    "cross-attention": ...}`` (the kinds the model has).
    """
    src = _ids(src_tokens, "src_tokens")[None]  # (1, S)
    tgt = None if tgt_tokens is None else _ids(tgt_tokens, "tgt_tokens")[None]  # (1, T)
    is_seq2seq = isinstance(model, EncoderDecoder) or hasattr(model, "greedy_decode")
    if is_seq2seq and tgt is None:
        raise ValueError("an encoder-decoder needs tgt_tokens (the decoder's input)")
    found = _blocks(model)
    captured: dict[int, tuple[Tensor, Tensor]] = {}

    def hook_for(index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            q, k = _heads(module, args[0], 0), _heads(module, args[1], 1)  # (1, H, T, hd)
            rotary = kwargs.get("rotary")
            if rotary is not None:
                q, k = rotary(q), rotary(k)
            captured[index] = (q[0], k[0])  # (H, L, hd), (H, S, hd)

        return hook

    flags = [block.record_attention for _, block, _ in found]
    handles = [
        attn.register_forward_pre_hook(hook_for(i), with_kwargs=True)
        for i, (_, _, attn) in enumerate(found)
    ]
    was_training = model.training
    model.eval()
    try:
        for _, block, _ in found:
            block.record_attention = True
        if is_seq2seq:
            model(src, tgt)
        elif isinstance(model, TransformerEncoder):
            model(src, None if pad_id is None else src == pad_id)
        else:
            model(src)
        recorded = [
            (block.last_cross_attention if kind == CROSS else block.last_attention)[0]
            for kind, block, _ in found
        ]  # (H, L, S) each
    finally:
        for handle in handles:
            handle.remove()
        for (_, block, _), flag in zip(found, flags, strict=True):
            block.record_attention = flag
        model.train(was_training)
    src_ids, tgt_ids = src[0].tolist(), (tgt[0].tolist() if tgt is not None else None)
    src_padding = [pad_id is not None and i == pad_id for i in src_ids]
    maps: dict[str, AttentionMaps] = {}
    for i, (kind, _, _) in enumerate(found):
        if kind not in maps:
            decoder_ids = tgt_ids if is_seq2seq else src_ids
            queries = src_ids if kind == ENCODER else decoder_ids
            keys = decoder_ids if kind == DECODER else src_ids
            padding = [False] * len(keys) if kind == DECODER else src_padding
            maps[kind] = AttentionMaps(kind, [], [], [], queries, keys, kind == DECODER, padding)
        maps[kind].recorded.append(recorded[i])
        maps[kind].queries.append(captured[i][0])
        maps[kind].keys.append(captured[i][1])
    return maps


def _decoder_input(model: nn.Module, src: Tensor, bos_id: int, eos_id: int) -> list[int]:
    """``<bos>`` and the model's own greedy answer (up to, not including, ``<eos>``)."""
    max_len = model.config.max_len if hasattr(model, "config") else 64
    pred = model.greedy_decode(src[None], bos_id, eos_id, max_len)[0]  # (≤max_len,)
    ids = pred.tolist()
    answer = answer_of(ids)
    body = list(answer) if answer is not None else ids[: max_len - 1]
    return [bos_id, *body][:max_len]


def attention_explorer(
    model: nn.Module,
    src_tokens: object,
    tgt_tokens: object | None = None,
    *,
    token_names: Callable[[Sequence[int]], list[str]] = decode,
    pad_id: int | None = PAD_ID,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> widgets.Widget:
    """Explore every attention map of a trained model on one example.

    Controls: which attention (encoder self-, decoder self- or cross-attention), the layer,
    the head (or their mean), a query token (its row is framed and drawn as bars), and
    check boxes that switch the causal and padding masks off (the weights are then
    recomputed from the same queries and keys without that mask).

    For an encoder–decoder without ``tgt_tokens`` the decoder reads ``<bos>`` and the
    model's own greedy answer. ``token_names`` turns ids into tick labels (default: the
    digit tasks' :func:`dlkit.data.seq2seq.decode`).
    """
    src = _ids(src_tokens, "src_tokens")
    if tgt_tokens is None and (
        isinstance(model, EncoderDecoder) or hasattr(model, "greedy_decode")
    ):
        model.eval()
        tgt_tokens = _decoder_input(model, src, bos_id, eos_id)
    maps = collect_attention(model, src, tgt_tokens, pad_id=pad_id)
    first = next(iter(maps.values()))
    style = {"description_width": "initial"}
    kind_box = widgets.Dropdown(
        options=list(maps), value=first.kind, description="attention", style=style
    )
    layer_slider = widgets.IntSlider(
        value=0, min=0, max=first.n_layers - 1, description="layer", continuous_update=False
    )
    head_box = widgets.Dropdown(
        options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(first.n_heads)],
        value=-1, description="head",
    )  # fmt: skip
    query_box = widgets.Dropdown(description="query", style=style)
    causal_box = widgets.Checkbox(value=True, description="causal mask")
    padding_box = widgets.Checkbox(value=True, description="padding mask")
    out = widgets.Output()

    def set_queries() -> None:
        current = maps[kind_box.value]
        labels = token_names(current.query_ids)
        query_box.options = [("all", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(labels)]
        query_box.value = -1
        causal_box.disabled = not current.causal
        padding_box.disabled = not any(current.key_padding)

    def draw(change: object = None) -> None:
        current = maps[kind_box.value]
        w = current.weights(
            layer_slider.value, causal_mask_on=causal_box.value, padding_mask_on=padding_box.value
        )  # (H, L, S)
        w = w.mean(dim=0) if head_box.value < 0 else w[head_box.value]  # (L, S)
        q_labels, k_labels = token_names(current.query_ids), token_names(current.key_ids)
        query = None if query_box.value is None or query_box.value < 0 else query_box.value
        head = "mean of heads" if head_box.value < 0 else f"head {head_box.value}"
        with out:
            out.clear_output(wait=True)
            ncols = 1 if query is None else 2
            fig, axes = plt.subplots(1, ncols, figsize=(5.0 * ncols, 4.2), squeeze=False)
            attention_heatmap(
                axes[0, 0], w, q_labels, k_labels, highlight_query=query, colorbar=True,
                title=f"{current.kind}, layer {layer_slider.value}, {head}",
            )  # fmt: skip
            if query is not None:
                bar_ax = axes[0, 1]
                bar_ax.bar(range(len(k_labels)), w[query].numpy())
                bar_ax.set_xticks(range(len(k_labels)), k_labels, rotation=90, fontsize=8)
                bar_ax.set(ylim=(0, 1), xlabel="key", ylabel="weight",
                           title=f"query {query} ({q_labels[query]})")  # fmt: skip
            fig.tight_layout()
            plt.show()

    def kind_changed(change: object) -> None:
        set_queries()  # resets the query; draws once below
        draw()

    set_queries()
    kind_box.observe(kind_changed, names="value")
    for control in (layer_slider, head_box, query_box, causal_box, padding_box):
        control.observe(draw, names="value")
    draw()
    controls = widgets.VBox(
        [widgets.HBox([kind_box, layer_slider, head_box]),
         widgets.HBox([query_box, causal_box, padding_box])]
    )  # fmt: skip
    return widgets.VBox([controls, out])


def plot_accuracy_by_length(ax: Axes, runs: dict[str, Seq2SeqRun]) -> None:
    """Test exact match against source length, one line per run (e.g. GRU vs Transformer)."""
    for label, run in runs.items():
        if run.test is None:
            raise ValueError(f"run {label!r} was not evaluated (train_seq2seq(evaluate=True))")
        lengths = sorted(run.test.by_length)
        ax.plot(lengths, [run.test.by_length[n] for n in lengths], marker="o", label=label)
    ax.set(xlabel="source length", ylabel="exact match (test)", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)


def plot_attention_cost(axes: tuple[Axes, Axes], cost: AttentionCost) -> None:
    """Left: forward+backward seconds against T. Right: bytes saved for backward (log-log)."""
    time_ax, mem_ax = axes
    T = cost.lengths
    time_ax.loglog(T, cost.attention_seconds, marker="o", label="self-attention")
    time_ax.loglog(T, cost.rnn_seconds, marker="o", label="GRU")
    time_ax.set(xlabel="sequence length T", ylabel="seconds (forward + backward)")
    mem_ax.loglog(T, np.asarray(cost.attention_bytes) / 2**20, marker="o", label="self-attention")
    mem_ax.loglog(T, np.asarray(cost.rnn_bytes) / 2**20, marker="o", label="GRU")
    mem_ax.set(xlabel="sequence length T", ylabel="MiB saved for backward")
    for ax in axes:
        ax.legend(fontsize=8)
