r"""A BERT-style encoder pretrained as a masked language model (Devlin et al., 2019).

The encoder is chapter 08's bidirectional :class:`~dlkit.nn.transformer.TransformerEncoder`:
every position attends to every other (no causal mask), so the vector :math:`h_i` of
position :math:`i` depends on the whole corrupted input :math:`\tilde x`. The MLM head turns it
into a distribution over the vocabulary, as BERT's:

.. math::

    z_i = N\bigl(\mathrm{gelu}(W_t h_i + b_t)\bigr), \qquad
    \text{logits}_i = E\, z_i + b_{\text{out}}, \qquad
    p_\theta(\cdot \mid \tilde x)_i = \mathrm{softmax}(\text{logits}_i),

with :math:`W_t \in \mathbb R^{C \times C}`, :math:`N` the config's norm, and the decoder
matrix **tied** to the token embedding :math:`E \in \mathbb R^{V \times C}` (one matrix,
counted once) plus a per-token output bias :math:`b_{\text{out}} \in \mathbb R^V`.

**Objective.** :func:`dlkit.data.masking.mask_tokens` selects a set :math:`S` of positions
(15% of the non-special ones) and corrupts them; the loss is the mean over the *selected*
positions only,

.. math:: \mathcal L_{\text{MLM}} = -\frac{1}{|S|} \sum_{i \in S} \log p_\theta(x_i \mid \tilde x)_i,

(:func:`masked_lm_loss`). The other 85% carry no loss: their input is visible, so
predicting them would be copying. :func:`masked_accuracy` is the share of :math:`S` whose
arg-max is the original token.

**No next-sentence prediction.** BERT added a second objective, predicting whether two
segments were consecutive. RoBERTa (Liu et al., 2019) ablated it: training on full
sequences of contiguous text with the MLM loss alone matched or improved the downstream
results, so NSP is not implemented here.

**Sentence vectors.** :meth:`MaskedLMEncoder.pooled` averages the encoder's vectors over the
real (non-padding) tokens, :math:`\bar h = \sum_t m_t h_t / \sum_t m_t`, the pooling of
:class:`~dlkit.nn.transformer.SequenceClassifier`; :meth:`MaskedLMEncoder.classifier` builds
that classifier around a copy of the pretrained encoder, for fine-tuning.

Initialization is BERT's: every weight matrix (embeddings, projections, the MLM transform)
:math:`\sim \mathcal N(0, 0.02^2)`, biases 0, norm gains 1.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as torch_F

from dlkit.nn.functional import gelu, log_softmax
from dlkit.nn.layers import Linear
from dlkit.nn.transformer import SequenceClassifier, TransformerEncoder
from dlkit.nn.transformer_blocks import TransformerStackConfig, make_norm

__all__ = ["IGNORE_INDEX", "MaskedLMEncoder", "masked_accuracy", "masked_lm_loss", "mean_pool"]

IGNORE_INDEX = -100  # the label of a position that is not predicted (as dlkit.data.masking)
INIT_STD = 0.02  # BERT's initializer_range


def _init_bert(module: nn.Module, std: float = INIT_STD) -> None:
    """Matrices :math:`\\sim \\mathcal N(0, \\text{std}^2)`, biases 0, vectors (norm gains) kept.

    Decided by shape and name so it covers every kernel choice of the blocks (dlkit's or
    PyTorch's layers, separate or fused projections). Padding rows of embeddings are zeroed
    again afterwards.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():  # a tied matrix is listed once
            if p.dim() >= 2:
                p.normal_(0.0, std)
            elif name.endswith("bias"):
                p.zero_()
        for sub in module.modules():
            pad = getattr(sub, "padding_idx", None)
            if pad is not None and isinstance(getattr(sub, "weight", None), Tensor):
                sub.weight[pad].zero_()


def _padding(ids: Tensor, mask: Tensor | None, padding_idx: int | None) -> Tensor | None:
    if mask is None and padding_idx is not None:
        return ids == padding_idx  # (B, T), True = padding
    return mask


def mean_pool(h: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
    """Mean of ``h`` ``(B, T, C)`` over the real positions → ``(B, C)``.

    :math:`\\bar h_b = \\sum_t m_{bt} h_{bt} / \\sum_t m_{bt}` with :math:`m_{bt} = 1` unless
    ``key_padding_mask[b, t]`` (True = padding), as :class:`SequenceClassifier` pools. A row
    that is all padding has nothing to average: ``ValueError``.
    """
    if h.dim() != 3:
        raise ValueError(f"mean_pool expects h of shape (B, T, C), got {tuple(h.shape)}")
    if key_padding_mask is None:
        return h.mean(dim=1)  # (B, C)
    if key_padding_mask.dtype != torch.bool or key_padding_mask.shape != h.shape[:2]:
        raise ValueError(
            f"mean_pool: key_padding_mask must be a bool tensor of shape {tuple(h.shape[:2])} "
            f"(True = padding), got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )
    keep = (~key_padding_mask).to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    count = keep.sum(dim=1)  # (B, 1)
    if bool((count == 0).any()):
        raise ValueError("mean_pool: a sequence is all padding; nothing to pool")
    return (h * keep).sum(dim=1) / count  # (B, C)


class MaskedLMEncoder(nn.Module):
    """A :class:`TransformerEncoder` with BERT's MLM head (see the module docstring).

    Args:
        config: the stack (any norm, MLP, positions and kernels of chapter 08's blocks;
            BERT itself is post-norm with learned positions).
        vocab_size: :math:`V`.
        padding_idx: the padding id: its embedding row is zero and, when no mask is given,
            ``ids == padding_idx`` is the key padding mask.
        tie_weights: the decoder matrix *is* the token embedding (``True``, as BERT).

    Attributes: ``encoder``, ``transform`` (:math:`W_t, b_t`), ``head_norm``, ``decoder``
    (weight :math:`E` when tied, bias :math:`b_{\\text{out}}`).
    """

    def __init__(
        self,
        config: TransformerStackConfig,
        vocab_size: int,
        *,
        padding_idx: int | None = None,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        self.config, self.vocab_size, self.padding_idx = config, vocab_size, padding_idx
        C = config.d_model
        self.encoder = TransformerEncoder(config, vocab_size, padding_idx=padding_idx)
        self.transform = Linear(C, C, bias=config.bias)  # W_t (C, C)
        self.head_norm = make_norm(config)
        self.decoder = Linear(C, vocab_size)  # (V, C) and b_out (V,)
        if tie_weights:
            self.decoder.weight = self.encoder.embed.tok_emb.weight  # one (V, C) matrix E
        self._fused = config.kernels == "torch"
        _init_bert(self)

    def encode(self, ids: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """``ids`` ``(B, T)`` → contextual vectors ``(B, T, C)``; ``key_padding_mask``
        ``(B, T)`` bool, True = padding (default: ``ids == padding_idx`` if set)."""
        return self.encoder(ids, _padding(ids, key_padding_mask, self.padding_idx))

    def forward(self, ids: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """``ids`` ``(B, T)`` (corrupted) → MLM logits ``(B, T, V)`` at every position."""
        h = self.encode(ids, key_padding_mask)  # (B, T, C)
        if self._fused:  # kernels="torch": the same math with PyTorch's kernels
            t = torch_F.gelu(torch_F.linear(h, self.transform.weight, self.transform.bias))
            return torch_F.linear(self.head_norm(t), self.decoder.weight, self.decoder.bias)
        t = gelu(self.transform(h))  # (B, T, C)
        return self.decoder(self.head_norm(t))  # (B, T, V)

    def pooled(self, ids: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """One vector per sequence ``(B, C)``: the encoder's mean over the real tokens."""
        mask = _padding(ids, key_padding_mask, self.padding_idx)
        return mean_pool(self.encoder(ids, mask), mask)  # (B, C)

    def classifier(
        self, num_classes: int, *, pool: str = "mean", share_encoder: bool = False
    ) -> SequenceClassifier:
        """A :class:`SequenceClassifier` whose encoder is this model's (pretrained) one.

        The MLM head is dropped; a new linear head ``(num_classes, C)`` is initialized as
        BERT's (:math:`\\mathcal N(0, 0.02^2)`, bias 0). The encoder is a deep copy (this
        model stays as it is) unless ``share_encoder``. ``pool="mean"`` pools like
        :meth:`pooled`.
        """
        clf = SequenceClassifier(
            self.config, self.vocab_size, num_classes, pool=pool, padding_idx=self.padding_idx
        )
        clf.encoder = self.encoder if share_encoder else copy.deepcopy(self.encoder)
        _init_bert(clf.head)
        return clf.to(self.decoder.bias.device)


def _selected(logits: Tensor, labels: Tensor, fn: str) -> tuple[Tensor, Tensor]:
    """The logits ``(N, V)`` and labels ``(N,)`` of the selected positions (label != -100)."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.dim() < 2:
        got = f"{logits.dtype} {tuple(logits.shape)}" if isinstance(logits, Tensor) else logits
        raise ValueError(f"{fn}: logits must be a float tensor (B, T, V), got {got}")
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"{fn}: labels must be an int64 tensor (B, T), got {got}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"{fn}: labels {tuple(labels.shape)} must have the shape of logits "
            f"{tuple(logits.shape)} without the last (vocabulary) axis"
        )
    selected = labels != IGNORE_INDEX  # (B, T)
    targets = labels[selected]  # (N,)
    if targets.numel() == 0:
        raise ValueError(
            f"{fn}: no selected position (every label is {IGNORE_INDEX}); the mean over the "
            "selected positions is undefined. Use a larger batch, or check the masking"
        )
    V = logits.shape[-1]
    if int(targets.min()) < 0 or int(targets.max()) >= V:
        bad = int(targets.min()) if int(targets.min()) < 0 else int(targets.max())
        raise ValueError(f"{fn}: labels must be {IGNORE_INDEX} or lie in [0, {V}), got {bad}")
    return logits[selected], targets  # (N, V), (N,)


def masked_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """:math:`-\\frac{1}{|S|}\\sum_{i \\in S} \\log p_\\theta(x_i \\mid \\tilde x)_i`, the
    mean over the selected positions :math:`S = \\{i : \\text{labels}_i \\ne -100\\}`.

    ``logits`` ``(B, T, V)``, ``labels`` ``(B, T)`` int64 as :func:`mask_tokens` returns them.
    Equals ``F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)``,
    but a batch with no selected position raises a ``ValueError`` instead of giving nan.
    """
    x, y = _selected(logits, labels, "masked_lm_loss")  # (N, V), (N,)
    log_p = log_softmax(x, dim=-1)  # (N, V)
    return -log_p.gather(1, y.unsqueeze(1)).mean()  # mean of -log p(x_i) over N positions


@torch.no_grad()
def masked_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Share of the selected positions whose arg-max logit is the original token."""
    x, y = _selected(logits, labels, "masked_accuracy")  # (N, V), (N,)
    return (x.argmax(dim=-1) == y).double().mean().item()
