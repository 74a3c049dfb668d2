r"""A sequence classifier on a pretrained decoder-only language model.

The backbone (a :class:`~dlkit.nn.transformer.DecoderOnlyLM`, e.g. the shipped
:class:`~dlkit.nn.gpt.GPT`) maps token ids to its final-norm hidden states
:math:`h_1, \dots, h_T \in \mathbb R^C` (``hidden_states``; the LM head is not used). A
**pooling** step turns the :math:`T_b` real (non-pad) positions of sequence :math:`b` into one
feature vector, and a new linear head scores the :math:`K` classes:

.. math:: \bar h_b = \frac1{T_b}\sum_{t \le T_b} h_{bt} \quad(\text{``mean''}) \qquad\text{or}\qquad
   \bar h_b = h_{b T_b} \quad(\text{``last''}), \qquad z_b = W \bar h_b + c, \; W \in \mathbb R^{K\times C}.

Because the backbone is **causal** (position :math:`t` attends only to positions
:math:`\le t`), pad tokens appended on the right cannot change :math:`h_{bt}` for
:math:`t \le T_b`, so right-padding a batch (:func:`pad_batch`) needs no attention mask: the
pooling just leaves the pad positions out. "last" is the natural choice for a causal model
(the last token has read the whole sequence); "mean" uses every position and is the steadier
feature on small data.

:meth:`LMClassifier.layer_prefixes` lists the parameter-name prefixes from the bottom
(embeddings) to the top (the head), the units of layer-wise learning rates
(:func:`dlkit.optim.param_groups.discriminative_lr_groups`) and of gradual unfreezing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dlkit.nn.bert import mean_pool

__all__ = ["POOLS", "LMClassifier", "pad_batch"]

POOLS = ("mean", "last")


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, max_len: int) -> Tensor:
    """Right-pad token lists into a ``LongTensor`` ``(B, T)``, ``T = min(max_len, longest)``.

    Sequences longer than ``max_len`` are truncated (their first ``max_len`` tokens kept).
    An empty batch or an empty sequence (nothing to classify) is a ``ValueError``.
    """
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"pad_batch: max_len must be a positive int, got {max_len!r}")
    if isinstance(pad_id, bool) or not isinstance(pad_id, int):
        raise TypeError(f"pad_batch: pad_id must be an int, got {pad_id!r}")
    if len(sequences) == 0:
        raise ValueError("pad_batch: got no sequences")
    lengths = [min(len(s), max_len) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"pad_batch: sequence {lengths.index(0)} is empty")
    out = torch.full((len(sequences), max(lengths)), pad_id, dtype=torch.long)  # (B, T)
    for b, (seq, n) in enumerate(zip(sequences, lengths, strict=True)):
        out[b, :n] = torch.as_tensor(list(seq[:n]), dtype=torch.long)
    return out


class LMClassifier(nn.Module):
    """``backbone`` + pooling + ``classifier = nn.Linear(C, K)``: ids ``(B, T)`` → logits ``(B, K)``.

    Args:
        backbone: a decoder-only LM with ``hidden_states(ids) -> (B, T, C)`` and
            ``config.d_model`` (the shipped GPT); stored as ``self.backbone``, used as is
            (deep-copy it first to keep the original).
        num_classes: :math:`K \\ge 2`.
        pad_id: the padding token id; positions holding it are left out of the pooling.
        pool: ``"mean"`` (over non-pad positions) or ``"last"`` (the last non-pad position).

    Inputs must be **right**-padded (:func:`pad_batch`); a pad id before a real token, or a
    row that is all padding, is a ``ValueError``.
    """

    def __init__(
        self, backbone: nn.Module, num_classes: int, *, pad_id: int, pool: str = "mean"
    ) -> None:
        super().__init__()
        if not hasattr(backbone, "hidden_states"):
            raise TypeError(
                f"LMClassifier: backbone must have hidden_states(ids) -> (B, T, C), got {type(backbone).__name__}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"LMClassifier: num_classes must be an int >= 2, got {num_classes!r}")
        if pool not in POOLS:
            raise ValueError(f"LMClassifier: pool must be one of {POOLS}, got {pool!r}")
        if isinstance(pad_id, bool) or not isinstance(pad_id, int):
            raise TypeError(f"LMClassifier: pad_id must be an int, got {pad_id!r}")
        self.backbone = backbone
        self.num_classes, self.pad_id, self.pool = num_classes, pad_id, pool
        self.d_model: int = backbone.config.d_model
        self.classifier = nn.Linear(self.d_model, num_classes)  # W (K, C), c (K,)

    def padding_mask(self, ids: Tensor) -> Tensor:
        """``(B, T)`` bool, True at pad positions; checks the ids and the right-padding."""
        if not isinstance(ids, Tensor) or ids.dtype != torch.long or ids.dim() != 2:
            got = (
                f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids).__name__
            )
            raise ValueError(f"LMClassifier expects int64 ids of shape (B, T), got {got}")
        mask = ids == self.pad_id  # (B, T)
        if bool((mask[:, :-1] & ~mask[:, 1:]).any()):
            raise ValueError(
                "LMClassifier: a pad id comes before a real token; right-pad the batch (pad_batch)"
            )
        if bool(mask[:, 0].any()):
            raise ValueError("LMClassifier: a sequence is all padding; nothing to classify")
        return mask

    def features(self, ids: Tensor) -> Tensor:
        """The pooled final hidden states ``(B, C)`` of right-padded ``ids`` ``(B, T)``."""
        mask = self.padding_mask(ids)  # (B, T)
        h = self.backbone.hidden_states(ids)  # (B, T, C)
        if self.pool == "mean":
            return mean_pool(h, mask)  # (B, C)
        last = (~mask).sum(dim=1) - 1  # (B,) index of the last real token
        return h[torch.arange(h.shape[0], device=h.device), last]  # (B, C)

    def forward(self, ids: Tensor) -> Tensor:
        """Class logits ``(B, K)``."""
        return self.classifier(self.features(ids))  # (B, K)

    def layer_prefixes(self) -> list[str]:
        """Parameter-name prefixes bottom → top: the embeddings, each block, the final norm,
        an untied LM head if it has parameters of its own, and the classifier."""
        decoder = self.backbone.decoder
        prefixes = ["backbone.decoder.embed"]
        prefixes += [f"backbone.decoder.blocks.{i}" for i in range(len(decoder.blocks))]
        prefixes.append("backbone.decoder.norm")
        shared = {id(p) for p in decoder.embed.parameters()}
        if any(id(p) not in shared for p in decoder.head.parameters()):
            prefixes.append("backbone.decoder.head")  # untied: (V, C) of its own
        return [*prefixes, "classifier"]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, pad_id={self.pad_id}, pool={self.pool!r}"
