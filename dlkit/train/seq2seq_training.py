r"""Training and evaluating sequence-to-sequence models on the toy digit tasks.

Both models here map ``(src, tgt_in)`` to next-token logits and decode greedily with the
same call, so one training loop serves both:

- :class:`GRUSeq2Seq`: chapter 07's recurrent encoder–decoder *without* attention
  (Sutskever et al., 2014). The encoder's last hidden state :math:`h_S \in \mathbb{R}^H` is
  all the decoder ever sees of the source, a fixed-size bottleneck whatever the length.
- :func:`seq2seq_transformer`: a :class:`dlkit.nn.transformer.EncoderDecoder` sized for the
  toy tasks; its decoder attends to every encoder position through cross-attention.

:func:`train_seq2seq` minimises the teacher-forced cross-entropy over the target tokens
(``<pad>`` ignored),

.. math:: \mathcal{L} = -\frac{1}{N} \sum_{b, t:\, y_{b,t} \ne \text{pad}}
    \log p_\theta(y_{b,t} \mid y_{b,<t}, x_b),

with AdamW, a linear warm-up then a cosine decay (:class:`dlkit.optim.WarmupCosine`) and
gradient-norm clipping; :func:`evaluate_seq2seq` decodes greedily and scores the whole
answer (``<eos>`` included) with :func:`dlkit.data.seq2seq.exact_match`.

Runs are seeded (parameters by :func:`torch.manual_seed`, batches by their own generator)
and train on one CPU thread, as :mod:`dlkit.train.rnn_experiments` explains.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dlkit.data.seq2seq import Seq2SeqSplit, Seq2SeqTask, answer_of
from dlkit.nn.transformer import EncoderDecoder
from dlkit.nn.transformer_blocks import TransformerStackConfig
from dlkit.optim.schedules import WarmupCosine
from dlkit.train.device import one_thread

__all__ = [
    "GRUSeq2Seq",
    "Seq2SeqEval",
    "Seq2SeqRun",
    "evaluate_seq2seq",
    "seq2seq_transformer",
    "train_seq2seq",
]


class GRUSeq2Seq(nn.Module):
    """A GRU encoder–decoder without attention: ``h_S = Enc(src)``, ``Dec`` starts from ``h_S``.

    ``forward(src (B, S), tgt_in (B, T), src_key_padding_mask=None) -> logits (B, T, V)``;
    the encoder skips padding (``src == pad_id``, packed sequences), so :math:`h_S` is the
    state after each source's last real token. ``greedy_decode`` has
    :meth:`EncoderDecoder.greedy_decode`'s signature and output.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        hidden_size: int = 128,
        embed_dim: int = 32,
        num_layers: int = 1,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(embed_dim, hidden_size, num_layers, batch_first=True)
        self.decoder = nn.GRU(embed_dim, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def encode(self, src: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        """The final encoder state ``(num_layers, B, H)``: the whole source in one vector."""
        if src.dim() != 2:
            raise ValueError(f"GRUSeq2Seq expects src of shape (B, S), got {tuple(src.shape)}")
        padding = src == self.pad_id if src_key_padding_mask is None else src_key_padding_mask
        lengths = (~padding).sum(dim=1).clamp(min=1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(src), lengths, batch_first=True, enforce_sorted=False
        )  # (B, S, E) packed
        _, h = self.encoder(packed)  # (num_layers, B, H)
        return h

    def forward(
        self, src: Tensor, tgt_in: Tensor, src_key_padding_mask: Tensor | None = None
    ) -> Tensor:
        h = self.encode(src, src_key_padding_mask)  # (num_layers, B, H)
        out, _ = self.decoder(self.embed(tgt_in), h)  # (B, T, H)
        return self.head(out)  # (B, T, V)

    @torch.no_grad()
    def greedy_decode(
        self,
        src: Tensor,
        bos_id: int,
        eos_id: int,
        max_len: int,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Arg-max tokens ``(B, L <= max_len)``, BOS dropped, padded with ``pad_id`` after EOS."""
        h = self.encode(src, src_key_padding_mask)  # (num_layers, B, H)
        token = torch.full((src.shape[0], 1), bos_id, dtype=torch.long)  # (B, 1)
        done = torch.zeros(src.shape[0], dtype=torch.bool)  # (B,)
        out = []
        for _ in range(max_len):
            step, h = self.decoder(self.embed(token), h)  # (B, 1, H)
            nxt = self.head(step[:, -1]).argmax(dim=-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            out.append(nxt)
            done |= nxt == eos_id
            token = nxt[:, None]
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)  # (B, L)


def seq2seq_transformer(
    task: Seq2SeqTask,
    *,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    d_ff: int | None = None,
    positions: str = "sinusoidal",
    norm_first: bool = True,
    dropout: float = 0.0,
    seed: int = 0,
) -> EncoderDecoder:
    """An :class:`EncoderDecoder` for ``task`` (its vocabulary, ``pad_id`` and lengths),
    initialised from ``seed``. ``d_ff`` defaults to ``4 * d_model``; the other arguments go
    to :class:`TransformerStackConfig`."""
    config = TransformerStackConfig(
        d_model=d_model, n_heads=n_heads, n_layers=n_layers, d_ff=d_ff or 4 * d_model,
        max_len=max(task.src_width, task.tgt_width), dropout=dropout, norm_first=norm_first,
        positions=positions,
    )  # fmt: skip
    torch.manual_seed(seed)
    return EncoderDecoder(config, task.vocab_size, task.vocab_size, pad_id=task.pad_id)


@dataclass
class Seq2SeqEval:
    """Greedy-decoding exact match on one split: overall and per source length."""

    accuracy: float
    by_length: dict[int, float]  # source length -> exact match of the examples that long
    seconds: float


@dataclass
class Seq2SeqRun:
    """What one training run measured."""

    losses: list[float] = field(default_factory=list)  # teacher-forced loss per step
    lrs: list[float] = field(default_factory=list)  # learning rate used at each step
    grad_norms: list[float] = field(default_factory=list)  # global norm before clipping
    train_seconds: float = math.nan
    test: Seq2SeqEval | None = None
    model: nn.Module | None = field(default=None, repr=False)  # the trained model

    @property
    def accuracy(self) -> float:
        """Test exact match (NaN when the run was not evaluated)."""
        return math.nan if self.test is None else self.test.accuracy


def _trim(src: Tensor, tgt: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """Drop the columns that are padding in every row of the batch."""
    s = int((src != pad_id).sum(dim=1).max())
    t = int((tgt != pad_id).sum(dim=1).max())
    return src[:, :s], tgt[:, :t]  # (B, s), (B, t)


@torch.no_grad()
def evaluate_seq2seq(
    model: nn.Module,
    task: Seq2SeqTask,
    split: Seq2SeqSplit | None = None,
    *,
    batch_size: int = 500,
) -> Seq2SeqEval:
    """Greedy-decode every source of ``split`` (default: the task's test split) and score the
    answers with exact match, overall and per source length."""
    split = task.test if split is None else split
    was_training = model.training
    model.eval()
    src_all, tgt_all = split.tensors()
    right = np.zeros(len(split), dtype=bool)
    start = time.perf_counter()
    with one_thread():
        for lo in range(0, len(split), batch_size):
            src, tgt = _trim(
                src_all[lo : lo + batch_size], tgt_all[lo : lo + batch_size], task.pad_id
            )
            pred = model.greedy_decode(src, task.bos_id, task.eos_id, tgt.shape[1] - 1)  # (b, ≤T-1)
            for i, (p, t) in enumerate(zip(pred, tgt, strict=True)):
                right[lo + i] = answer_of(p) == answer_of(t)
    seconds = time.perf_counter() - start
    model.train(was_training)
    lengths = split.src_lengths
    by_length = {int(n): float(right[lengths == n].mean()) for n in np.unique(lengths)}
    return Seq2SeqEval(float(right.mean()), by_length, seconds)


def train_seq2seq(
    model: nn.Module,
    task: Seq2SeqTask,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    warmup: int = 100,
    weight_decay: float = 0.01,
    clip: float | None = 1.0,
    seed: int = 0,
    evaluate: bool = True,
    progress: bool = False,
) -> Seq2SeqRun:
    """Teacher-forced training of ``model`` on ``task.train``, then (``evaluate``) test exact match.

    Args:
        model: a :class:`EncoderDecoder` or :class:`GRUSeq2Seq` (anything with
            ``forward(src, tgt_in)`` and ``greedy_decode``).
        steps: optimizer steps; each draws ``batch_size`` examples (epochs of a seeded
            permutation of the training set).
        lr: AdamW's peak learning rate (betas 0.9, 0.98), reached after ``warmup`` steps of
            linear warm-up and followed by a cosine decay to 0 at ``steps``.
        weight_decay: AdamW's decoupled weight decay.
        clip: cap on the global gradient norm (``None``: no clipping; the norm is still
            recorded).
        seed: seeds the batch order (the model's initialisation is the caller's).
        progress: show a tqdm bar.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup must lie in [0, steps={steps}), got {warmup}")
    src_all, tgt_all = task.train.tensors()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay
    )
    schedule = WarmupCosine(optimizer, warmup, steps)
    run = Seq2SeqRun(model=model)
    order, cursor = torch.randperm(len(src_all), generator=generator), 0
    model.train()
    start = time.perf_counter()
    with one_thread():
        for _ in tqdm(range(steps), disable=not progress, desc="training", leave=False):
            if cursor + batch_size > len(order):
                order, cursor = torch.randperm(len(src_all), generator=generator), 0
            index = order[cursor : cursor + batch_size]
            cursor += batch_size
            src, tgt = _trim(src_all[index], tgt_all[index], task.pad_id)  # (B, S), (B, T)
            logits = model(src, tgt[:, :-1])  # (B, T-1, V): predict tgt[:, 1:]
            loss = nn.functional.cross_entropy(
                logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=task.pad_id
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), math.inf if clip is None else clip)
            run.lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
            run.losses.append(loss.item())
            run.grad_norms.append(float(norm))
    run.train_seconds = time.perf_counter() - start
    if evaluate:
        run.test = evaluate_seq2seq(model, task)
    return run
